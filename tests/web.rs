//! The web view: access (API token, read-only token, session cookie), read-only routes,
//! escaping, security headers and error pages over plain HTTP, on both backends; then the
//! pages in a real headless Chromium driven over WebDriver (`browser` module).

mod support;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use support::Harness;

#[path = "web/browser.rs"]
mod browser;

const TOKEN_ENV: &str = "CHANGEBOT_TEST_API_TOKEN";
const TOKEN: &str = "test-api-token";
const READ_TOKEN_ENV: &str = "CHANGEBOT_TEST_READ_TOKEN";
const READ_TOKEN: &str = "test-read-token";
/// Monday 2026-11-23 10:00 Berlin; the weeknights window opens at 22:00 Berlin (21:00Z).
const MONDAY: &str = "2026-11-23T09:00:00Z";
const HOSTILE: &str = "<script>alert(1)</script>";

/// Both tokens in this process's environment (every test of this binary sets the same values).
fn export_tokens() {
    // SAFETY: every test of this binary sets these variables to the same values before any
    // reads them.
    unsafe {
        std::env::set_var(TOKEN_ENV, TOKEN);
        std::env::set_var(READ_TOKEN_ENV, READ_TOKEN);
    }
}

/// The fixture with the read-only token configured.
fn with_read_token(text: String) -> String {
    text.replacen(
        &format!("token_env = \"{TOKEN_ENV}\"\n"),
        &format!("token_env = \"{TOKEN_ENV}\"\nread_token_env = \"{READ_TOKEN_ENV}\"\n"),
        1,
    )
}

/// A harness on a fresh database (PostgreSQL when asked and available) with two changes: CHG-1
/// with a hostile title, booked for Monday 22:00 Berlin, and CHG-2 waiting for approval.
async fn booked(postgres: bool) -> Option<Harness> {
    export_tokens();
    let h = Harness::with_config(postgres, with_read_token, MONDAY).await?;
    h.ok("alice", &format!("change open payments-api {HOSTILE}"))
        .await;
    h.ok("alice", "change open payments-api Rotate keys --risk high")
        .await;
    h.set_time("2026-11-23T10:00:00Z");
    let approved = h.ok("dave", "change approve CHG-1 looks fine").await;
    assert!(
        approved.contains("booked 2026-11-23 22:00–22:30 CET"),
        "{approved}"
    );
    Some(h)
}

#[tokio::test]
async fn the_pages_answer_readers_only_and_never_change_anything() {
    let Some(h) = booked(false).await else {
        unreachable!("SQLite is always there")
    };
    http_checks(&h).await;
}

/// The same on PostgreSQL (skipped when CHANGEBOT_TEST_POSTGRES_URL is unset).
#[tokio::test]
async fn on_postgres_the_pages_answer_readers_only() {
    let Some(h) = booked(true).await else {
        eprintln!("skipping PostgreSQL: CHANGEBOT_TEST_POSTGRES_URL is unset");
        return;
    };
    http_checks(&h).await;
}

async fn get(base: &str, path: &str, token: Option<&str>) -> (StatusCode, String, Headers) {
    let mut request = client().get(format!("{base}{path}"));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.expect("call");
    let status = response.status();
    let headers = response.headers().clone();
    (status, response.text().await.expect("a body"), headers)
}

type Headers = reqwest::header::HeaderMap;

/// No redirects followed: the tests look at them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn http_checks(h: &Harness) {
    let base = support::serve_http(h).await;
    let pages = [
        "/web/schedule",
        "/web/changes/CHG-1",
        "/web/kpis",
        "/web/schedule?weeks=12&service=payments-api",
        "/web/kpis?days=7&service=payments-api",
    ];

    // Nobody: the sign-in form, 401. A wrong token: the same.
    for token in [None, Some("wrong-token")] {
        for page in pages {
            let (status, body, headers) = get(&base, page, token).await;
            assert_eq!(status, 401, "{page} with {token:?}");
            assert!(body.contains("action=\"/web/login\""), "{body}");
            assert_page_headers(&headers, page);
        }
    }
    // Either token, as a bearer: the page.
    for token in [TOKEN, READ_TOKEN] {
        for page in pages {
            let (status, body, headers) = get(&base, page, Some(token)).await;
            assert_eq!(status, 200, "{page}: {body}");
            assert!(body.contains("<title>"), "{page}");
            assert_page_headers(&headers, page);
        }
    }
    // The read-only token reads the API too; a wrong one does not.
    let (status, body, _) = get(&base, "/api/changes", Some(READ_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("CHG-1"), "{body}");
    assert_eq!(
        get(&base, "/api/changes/CHG-1", Some(READ_TOKEN)).await.0,
        200
    );
    assert_eq!(get(&base, "/api/metrics", Some(READ_TOKEN)).await.0, 200);
    assert_eq!(get(&base, "/api/changes", Some("wrong-token")).await.0, 401);

    // `/` goes to the schedule.
    let (status, _, headers) = get(&base, "/", None).await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/web/schedule");

    sign_in_checks(h, &base).await;

    // Nothing but GET (and the sign-in form's POST).
    for page in ["/web/schedule", "/web/changes/CHG-1", "/web/kpis", "/"] {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
            reqwest::Method::PATCH,
        ] {
            let status = client()
                .request(method.clone(), format!("{base}{page}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("call")
                .status();
            assert_eq!(status, 405, "{method} {page}");
        }
    }
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let status = client()
            .request(method.clone(), format!("{base}/web/login"))
            .send()
            .await
            .expect("call")
            .status();
        assert_eq!(status, 405, "{method} /web/login");
    }

    // The hostile title is text on every page that shows it.
    for page in ["/web/schedule", "/web/changes/CHG-1"] {
        let (_, body, _) = get(&base, page, Some(READ_TOKEN)).await;
        // askama writes numeric character references.
        assert!(
            body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{page}: {body}"
        );
        assert!(!body.contains(HOSTILE), "{page} lets markup through");
        assert!(
            !body.to_lowercase().contains("<script"),
            "{page} has a script"
        );
    }

    // Unknown ids and bad query values get pages that say what is wrong.
    let (status, body, headers) = get(&base, "/web/changes/CHG-999", Some(TOKEN)).await;
    assert_eq!(status, 404);
    assert!(body.contains("There is no change CHG-999"), "{body}");
    assert_page_headers(&headers, "404");
    let bad = [
        ("/web/changes/banana", "CHG-12"),
        (
            "/web/schedule?weeks=0",
            "weeks must be a whole number from 1 to 12",
        ),
        (
            "/web/schedule?weeks=13",
            "weeks must be a whole number from 1 to 12",
        ),
        (
            "/web/schedule?weeks=two",
            "weeks must be a whole number from 1 to 12",
        ),
        ("/web/schedule?service=nope", "There is no service `nope`"),
        ("/web/schedule?colour=red", "does not understand"),
        (
            "/web/kpis?days=0",
            "days must be a whole number from 1 to 366",
        ),
        (
            "/web/kpis?days=367",
            "days must be a whole number from 1 to 366",
        ),
        ("/web/kpis?service=pay%00ments", "There is no service that"),
    ];
    for (page, says) in bad {
        let (status, body, headers) = get(&base, page, Some(TOKEN)).await;
        assert_eq!(status, 400, "{page}");
        assert!(body.contains(says), "{page}: {body}");
        assert_page_headers(&headers, page);
    }

    content_checks(h, &base).await;

    // Without any token configured the view is off, and says how to turn it on.
    let mut closed = h.app.http_state();
    closed.api_token = None;
    closed.read_token = None;
    let off = serve(closed).await;
    let (status, body, _) = get(&off, "/web/schedule", Some(TOKEN)).await;
    assert_eq!(status, 503);
    assert!(body.contains("api.token_env"), "{body}");
    assert_eq!(get(&off, "/web/login", None).await.0, 503);
}

/// The sign-in form: a wrong token gets it again (401), a right one a session cookie (signed
/// with the token, not the token) that opens the pages for 12 hours or until signing out.
async fn sign_in_checks(h: &Harness, base: &str) {
    let (status, body, _) = get(base, "/web/login", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("name=\"token\""), "{body}");
    let post = |token: &str, next: &str| {
        client()
            .post(format!("{base}/web/login"))
            .form(&[("token", token), ("next", next)])
            .send()
    };
    let wrong = post("wrong-token", "/web/kpis").await.expect("call");
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.text().await.expect("body").contains("not right"));

    for token in [READ_TOKEN, TOKEN] {
        let right = post(token, "/web/changes/CHG-1").await.expect("call");
        assert_eq!(right.status(), 303);
        assert_eq!(right.headers()[LOCATION], "/web/changes/CHG-1");
        let cookie = right.headers()[SET_COOKIE]
            .to_str()
            .expect("ascii")
            .to_string();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(
            !cookie.contains(token),
            "the cookie carries the token: {cookie}"
        );
        let pair = cookie.split(';').next().expect("name=value").to_string();
        let page = client()
            .get(format!("{base}/web/changes/CHG-1"))
            .header(reqwest::header::COOKIE, &pair)
            .send()
            .await
            .expect("call");
        assert_eq!(page.status(), 200);
        // The cookie is no bearer token for the API.
        let value = pair.split_once('=').expect("=").1;
        assert_eq!(get(base, "/api/changes", Some(value)).await.0, 401);
    }
    // A session ends after 12 hours, and the browser is told so.
    let signed_in = post(READ_TOKEN, "/web/schedule").await.expect("call");
    let cookie = signed_in.headers()[SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(cookie.contains("Max-Age=43200"), "{cookie}");
    let pair = cookie.split(';').next().expect("name=value").to_string();
    let with_cookie = |pair: String| {
        client()
            .get(format!("{base}/web/schedule"))
            .header(reqwest::header::COOKIE, pair)
            .send()
    };
    let page = with_cookie(pair.clone()).await.expect("call");
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .expect("body")
            .contains("action=\"/web/logout\""),
        "a signed-in page offers signing out"
    );
    h.clock.advance(chrono::Duration::hours(12));
    assert_eq!(with_cookie(pair.clone()).await.expect("call").status(), 401);
    h.clock.advance(chrono::Duration::hours(-12));
    assert_eq!(with_cookie(pair).await.expect("call").status(), 200);

    // Signing out clears the cookie and says so.
    let out = client()
        .post(format!("{base}/web/logout"))
        .send()
        .await
        .expect("call");
    assert_eq!(out.status(), 303);
    let cleared = out.headers()[SET_COOKIE].to_str().expect("ascii");
    assert!(
        cleared.starts_with("changebot_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, body, _) = get(base, out.headers()[LOCATION].to_str().expect("ascii"), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("You are signed out."), "{body}");

    // Off-site places to go after signing in are ignored.
    let offsite = post(READ_TOKEN, "//evil.example/").await.expect("call");
    assert_eq!(offsite.headers()[LOCATION], "/web/schedule");
    let forged = client()
        .get(format!("{base}/web/schedule"))
        .header(reqwest::header::COOKIE, "changebot_session=00ff")
        .send()
        .await
        .expect("call");
    assert_eq!(forged.status(), 401);
}

/// What the pages show: the booked change in local time, the audit trail, the KPIs of the API.
async fn content_checks(h: &Harness, base: &str) {
    let (_, schedule, _) = get(base, "/web/schedule", Some(TOKEN)).await;
    assert!(schedule.contains("times in Europe/Berlin"), "{schedule}");
    assert!(
        schedule.contains("href=\"/web/changes/CHG-1\""),
        "{schedule}"
    );
    assert!(
        schedule.contains("2026-11-23 22:00–22:30 CET"),
        "{schedule}"
    );
    // The year-end freeze (from 18 December) starts within four weeks; the weeknights it
    // covers come within six, marked.
    assert!(schedule.contains("freeze year-end"), "{schedule}");
    assert!(!schedule.contains("class=\"frozen\""), "{schedule}");
    let (_, six, _) = get(base, "/web/schedule?weeks=6", Some(TOKEN)).await;
    assert!(six.contains("class=\"frozen\""), "{six}");
    assert!(six.contains("no changes: year-end"), "{six}");

    let (_, change, _) = get(base, "/web/changes/CHG-2", Some(TOKEN)).await;
    for shown in [
        "Rotate keys",
        "normal-high",
        "needs 2 more approvals from group cab (ask bob, carol, erin)",
        "opened",
    ] {
        assert!(change.contains(shown), "{shown}: {change}");
    }
    // The blockers read as `change explain` says them.
    let explain = h.ok("bob", "change explain CHG-2").await;
    let blockers: Vec<&str> = explain
        .lines()
        .filter_map(|l| l.trim().strip_prefix("blocked: "))
        .collect();
    assert!(blockers.len() >= 2, "{explain}");
    for line in blockers {
        let plain = !line.contains(['&', '<', '>', '"', '\'']);
        assert!(
            !plain || change.contains(line),
            "`{line}` missing: {change}"
        );
    }

    let (_, kpis, _) = get(base, "/web/kpis?days=7", Some(TOKEN)).await;
    let (_, api, _) = get(base, "/api/metrics?days=7", Some(TOKEN)).await;
    let api: serde_json::Value = serde_json::from_str(&api).expect("json");
    let opened = format!(
        "<td>Changes opened</td><td class=\"num\">{}</td>",
        api["changes_opened"]
    );
    assert!(kpis.contains(&opened), "{opened}: {kpis}");

    // At its slot CHG-1 is released (a dry run): its page shows the deployment and attempts.
    for now in ["2026-11-23T21:00:00Z", "2026-11-23T21:01:00Z"] {
        h.set_time(now);
        h.run_due().await;
    }
    let (_, released, _) = get(base, "/web/changes/CHG-1", Some(TOKEN)).await;
    for shown in [
        "DEP-1",
        "succeeded",
        "(dry run)",
        "deployment_started",
        "Attempts",
    ] {
        assert!(released.contains(shown), "{shown}: {released}");
    }
    let status = h.ok("bob", "release status CHG-1").await;
    assert!(status.contains("DEP-1 succeeded (dry run)"), "{status}");

    // The KPI page shows the period's chart; the chart is a PNG for readers only.
    let (_, kpis, _) = get(base, "/web/kpis?days=7&service=payments-api", Some(TOKEN)).await;
    assert!(
        kpis.contains("src=\"/web/kpis/chart.png?days=7&amp;service=payments-api\""),
        "{kpis}"
    );
    let chart = |token: Option<&'static str>| {
        let mut request = client().get(format!("{base}/web/kpis/chart.png?days=7"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };
    let png = chart(Some(READ_TOKEN)).await.expect("chart");
    assert_eq!(png.status(), 200);
    assert_eq!(
        png.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    let bytes = png.bytes().await.expect("bytes");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(chart(None).await.expect("chart").status(), 401);

    // One environment: the same numbers as the API's for it, the chart of it, and a 400 that
    // names the environments for one that does not exist.
    let page = "/web/kpis?days=7&service=payments-api&environment=production";
    let (status, kpis, _) = get(base, page, Some(TOKEN)).await;
    assert_eq!(status, 200, "{kpis}");
    assert!(kpis.contains("payments-api in production"), "{kpis}");
    assert!(
        kpis.contains("chart.png?days=7&amp;service=payments-api&amp;environment=production"),
        "{kpis}"
    );
    let (_, api, _) = get(
        base,
        "/api/metrics?days=7&service=payments-api&environment=production",
        Some(TOKEN),
    )
    .await;
    let api: serde_json::Value = serde_json::from_str(&api).expect("json");
    let succeeded = format!(
        "<td>Deployments succeeded</td><td class=\"num\">{}</td>",
        api["deployments_succeeded"].as_u64().expect("a count")
    );
    assert!(kpis.contains(&succeeded), "{succeeded}: {kpis}");
    let (status, body, _) = get(base, "/web/kpis?environment=moon", Some(TOKEN)).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("There is no environment `moon`") && body.contains("production"),
        "{body}"
    );
    let (status, _, _) = get(
        base,
        "/web/kpis/chart.png?environment=production",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
}

fn assert_page_headers(headers: &Headers, page: &str) {
    let csp = headers
        .get(CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{page}: no Content-Security-Policy"))
        .to_str()
        .expect("ascii");
    assert!(csp.contains("default-src 'none'"), "{page}: {csp}");
    assert!(!csp.contains("script-src"), "{page}: {csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{page}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{page}");
    assert_eq!(headers["cache-control"], "no-store", "{page}");
}

async fn serve(state: changebot::http::AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = changebot::http::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    base
}
