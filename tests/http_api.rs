//! The HTTP surface: health, readiness and the read-only change API behind a bearer token.

mod support;

use support::Harness;

const TOKEN_ENV: &str = "CHANGEBOT_TEST_API_TOKEN";
const TOKEN: &str = "test-api-token";

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

#[tokio::test]
async fn the_change_api_answers_with_the_right_token_only() {
    // SAFETY: this test binary has one test reading this variable, and it sets it first.
    unsafe { std::env::set_var(TOKEN_ENV, TOKEN) };
    let h = Harness::sqlite("2026-11-23T09:00:00Z").await;
    h.ok("alice", "change open payments-api Rotate keys --risk high")
        .await;
    h.ok("bob", "change approve CHG-1 fine by me").await;
    let base = serve(h.app.http_state()).await;
    let http = reqwest::Client::new();

    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );

    let anonymous = http
        .get(format!("{base}/api/changes"))
        .send()
        .await
        .expect("call");
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .get(format!("{base}/api/changes"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("call");
    assert_eq!(wrong.status(), 401);

    let list: serde_json::Value = http
        .get(format!(
            "{base}/api/changes?state=authorize&service=payments-api"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call")
        .json()
        .await
        .expect("json");
    assert_eq!(list["changes"][0]["id"], "CHG-1");
    assert_eq!(list["changes"][0]["state"], "authorize");

    // Hostile query text is refused in JSON, on both counts.
    for query in ["service=pay%00ments", "requester=a%0D%0Aforged"] {
        let res = http
            .get(format!("{base}/api/changes?{query}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("call");
        assert_eq!(res.status(), 400, "{query}");
        let body: serde_json::Value = res.json().await.expect("json error");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("control character")),
            "{body}"
        );
    }
    let res = http
        .get(format!("{base}/no/such/thing"))
        .send()
        .await
        .expect("call");
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.expect("json 404");
    assert!(body["error"].is_string());

    let one: serde_json::Value = http
        .get(format!("{base}/api/changes/CHG-1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call")
        .json()
        .await
        .expect("json");
    assert_eq!(one["change"]["title"], "Rotate keys");
    assert_eq!(one["approvals"][0]["person"], "bob");
    assert_eq!(one["approvals"][0]["comment"], "fine by me");
    assert!(
        one["audit"].as_array().is_some_and(|a| a.len() >= 4),
        "{one}"
    );
    assert!(one["deployments"].as_array().is_some_and(|d| d.is_empty()));

    let missing = http
        .get(format!("{base}/api/changes/CHG-9"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(missing.status(), 404);
    let bad = http
        .get(format!("{base}/api/changes/banana"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(bad.status(), 400);
    let bad_state = http
        .get(format!("{base}/api/changes?state=sleeping"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(bad_state.status(), 400);

    // Without a configured token the API is off, not open.
    let mut closed = h.app.http_state();
    closed.api_token = None;
    let base = serve(closed).await;
    let off = http
        .get(format!("{base}/api/changes"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(off.status(), 503);
}

/// A fresh harness per backend (PostgreSQL when CHANGEBOT_TEST_POSTGRES_URL is set), served
/// with the API token set in its state (no environment variable involved).
async fn served(postgres: bool) -> Option<(Harness, String)> {
    let h = Harness::with_config(postgres, |t| t, "2026-11-23T09:00:00Z").await?;
    let mut state = h.app.http_state();
    state.api_token = Some(TOKEN.into());
    let base = serve(state).await;
    Some((h, base))
}

async fn get_json(base: &str, path: &str) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("call");
    let status = res.status().as_u16();
    let body = res
        .json()
        .await
        .unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
    (status, body)
}

#[tokio::test]
async fn api_errors_carry_the_cli_kinds_and_unknown_filters_are_errors() {
    for postgres in [false, true] {
        let Some((h, base)) = served(postgres).await else {
            continue;
        };
        h.ok("alice", "change open payments-api Rotate keys").await;
        let cases: &[(&str, u16, &str, &str)] = &[
            (
                "/api/changes?state=sleeping",
                400,
                "usage",
                "state: `sleeping` is not a",
            ),
            (
                "/api/changes?service=nope",
                400,
                "not_found",
                "unknown service `nope`",
            ),
            (
                "/api/changes?colour=blue",
                400,
                "usage",
                "unknown parameter `colour`",
            ),
            (
                "/api/changes?state=new&state=new",
                400,
                "usage",
                "given twice",
            ),
            (
                "/api/changes?limit=lots",
                400,
                "usage",
                "limit must be a whole number from 1 to 500",
            ),
            (
                "/api/changes?limit=0",
                400,
                "usage",
                "limit must be a whole number from 1 to 500",
            ),
            (
                "/api/changes?before=yesterday",
                400,
                "usage",
                "before: `yesterday` is not a change id",
            ),
            (
                "/api/changes/CHG-9",
                404,
                "not_found",
                "there is no change CHG-9",
            ),
            ("/api/changes/banana", 400, "usage", "is not a change id"),
            (
                "/api/metrics?colour=blue",
                400,
                "usage",
                "unknown parameter `colour`",
            ),
            (
                "/api/metrics?days=seven",
                400,
                "usage",
                "days must be a whole number from 1 to 366",
            ),
            ("/api/metrics?service=nope", 400, "not_found", "nope"),
            (
                "/api/changes?requester=alcie",
                400,
                "not_found",
                "requester: there is no person `alcie` and nobody of that name requested",
            ),
            ("/no/such/thing", 404, "not_found", "no such endpoint"),
        ];
        for (path, status, kind, message) in cases {
            let (got, body) = get_json(&base, path).await;
            assert_eq!(got, *status, "postgres={postgres} {path}: {body}");
            assert_eq!(body["kind"], *kind, "postgres={postgres} {path}: {body}");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(message),
                "postgres={postgres} {path}: {body}"
            );
            assert!(!error.contains("Failed to deserialize"), "{path}: {body}");
        }
        let anonymous = reqwest::get(format!("{base}/api/changes"))
            .await
            .expect("call");
        assert_eq!(anonymous.status(), 401);
        let body: serde_json::Value = anonymous.json().await.expect("json");
        assert_eq!(body["kind"], "refused", "{body}");
        // The scheme is case-insensitive.
        let lower = reqwest::Client::new()
            .get(format!("{base}/api/changes"))
            .header("authorization", format!("bearer {TOKEN}"))
            .send()
            .await
            .expect("call");
        assert_eq!(lower.status(), 200);
        // A method a route does not take is a 405 in the same JSON.
        for (method, path) in [
            (reqwest::Method::POST, "/api/changes"),
            (reqwest::Method::DELETE, "/api/changes/CHG-1"),
            (reqwest::Method::GET, "/webhooks/github"),
            (reqwest::Method::PUT, "/webhooks/deployments/DEP-1"),
        ] {
            let res = reqwest::Client::new()
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("call");
            assert_eq!(res.status(), 405, "{method} {path}");
            let body: serde_json::Value = res
                .json()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
            assert_eq!(body["kind"], "usage", "{body}");
            let expected = format!("{path} does not take {method}");
            assert_eq!(body["error"], expected.as_str(), "{body}");
        }
    }
}

#[tokio::test]
async fn paging_returns_a_cursor_to_the_next_page() {
    for postgres in [false, true] {
        let Some((h, base)) = served(postgres).await else {
            continue;
        };
        for n in 1..=5 {
            h.ok("alice", &format!("change open payments-api Change {n}"))
                .await;
        }
        let ids = |body: &serde_json::Value| -> Vec<String> {
            body["changes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| c["id"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        let (status, first) = get_json(&base, "/api/changes?limit=2").await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(ids(&first), ["CHG-5", "CHG-4"], "postgres={postgres}");
        assert_eq!(first["next"], "CHG-4", "postgres={postgres}: {first}");
        let (_, second) = get_json(&base, "/api/changes?limit=2&before=CHG-4").await;
        assert_eq!(ids(&second), ["CHG-3", "CHG-2"], "postgres={postgres}");
        assert_eq!(second["next"], "CHG-2", "postgres={postgres}: {second}");
        let (_, last) = get_json(&base, "/api/changes?limit=2&before=CHG-2").await;
        assert_eq!(ids(&last), ["CHG-1"], "postgres={postgres}");
        assert!(last["next"].is_null(), "postgres={postgres}: {last}");
        let (_, exact) = get_json(&base, "/api/changes?limit=5").await;
        assert!(
            exact["next"].is_null(),
            "a full last page has no next: {exact}"
        );
    }
}

#[tokio::test]
async fn every_metric_family_is_there_from_the_first_scrape() {
    for postgres in [false, true] {
        let Some((_h, base)) = served(postgres).await else {
            continue;
        };
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for name in [
            "changebot_jobs_due",
            "changebot_jobs_late",
            "changebot_outbox_backlog",
            "changebot_outbox_parked",
            "changebot_deployments",
            "changebot_webhook_deliveries",
            "changebot_kpi",
        ] {
            assert!(families.contains(&name), "{name} is not registered: {text}");
        }
        for family in families {
            let sampled = text
                .lines()
                .any(|l| !l.starts_with('#') && l.starts_with(family));
            assert!(
                sampled,
                "postgres={postgres}: {family} has no sample yet: {text}"
            );
        }
        assert!(
            text.contains(
                "changebot_webhook_deliveries_total{source=\"github\",result=\"accepted\"} 0"
            ),
            "{text}"
        );
    }
}
