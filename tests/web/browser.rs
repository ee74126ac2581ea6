//! The pages in a real headless Chromium, driven over WebDriver (fantoccini → chromedriver,
//! which the test starts on a free port and stops again, also when it panics). It signs in
//! through the form, then checks that the schedule shows the booked change at its Berlin wall
//! time, that the change page shows its audit trail, and that no page logs a console error.
//! A screenshot of each page goes to `target/web-screenshots/<page>.png`.
//!
//! Without chromedriver the test prints `skipped: …` and passes, unless
//! `CHANGEBOT_TEST_REQUIRE_BROWSER=1` (as `.ci/run` sets it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::Method;
use chrono::{DateTime, Utc};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Url;
use serde_json::{Value, json};

use super::{READ_TOKEN, booked};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test]
async fn in_chromium_the_pages_show_local_times_and_the_audit_trail_without_console_errors() {
    if !Path::new(CHROMEDRIVER).exists() {
        let required = std::env::var("CHANGEBOT_TEST_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{CHROMEDRIVER} is missing and CHANGEBOT_TEST_REQUIRE_BROWSER=1: install chromium and chromium-driver"
        );
        println!(
            "skipped: {CHROMEDRIVER} is not installed (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let Some(h) = booked(false).await else {
        unreachable!("SQLite is always there")
    };
    let slot = h
        .app
        .workflow
        .store()
        .change(changebot::domain::ChangeId(1))
        .await
        .expect("read")
        .and_then(|c| c.slot)
        .expect("CHG-1 is booked");
    let base = crate::support::serve_http(&h).await;
    let driver = Chromedriver::start().await;
    let browser = driver.session().await;
    let result = visit(&browser, &base, slot.start, slot.end).await;
    // Close the session whatever happened; the guard stops chromedriver.
    let _ = browser.close().await;
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The expected text of a slot in Berlin, worked out here rather than by changebot's helper.
fn berlin(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let tz = chrono_tz::Europe::Berlin;
    let (s, e) = (start.with_timezone(&tz), end.with_timezone(&tz));
    format!(
        "{} {}–{} {}",
        s.date_naive(),
        s.time().format("%H:%M"),
        e.time().format("%H:%M"),
        e.offset()
    )
}

async fn visit(
    c: &Client,
    base: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), String> {
    let fail = |what: &str, e: fantoccini::error::CmdError| format!("{what}: {e}");
    // Sign in through the form; the session cookie carries the rest.
    c.goto(&format!("{base}/web/login"))
        .await
        .map_err(|e| fail("open the sign-in page", e))?;
    screenshot(c, "login").await?;
    no_console_errors(c, "login").await?;
    c.find(Locator::Id("token"))
        .await
        .map_err(|e| fail("find the token field", e))?
        .send_keys(READ_TOKEN)
        .await
        .map_err(|e| fail("type the token", e))?;
    c.find(Locator::Css("button[type=submit]"))
        .await
        .map_err(|e| fail("find the sign-in button", e))?
        .click()
        .await
        .map_err(|e| fail("sign in", e))?;
    c.wait()
        .for_url(&Url::parse(&format!("{base}/web/schedule")).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| fail("land on the schedule", e))?;

    // The schedule: CHG-1 at 22:00 Berlin (21:00 UTC), in its row.
    let title = c.title().await.map_err(|e| fail("title", e))?;
    assert!(title.contains("Forward schedule"), "{title}");
    let row = c
        .find(Locator::Id("CHG-1"))
        .await
        .map_err(|e| fail("find CHG-1's row", e))?
        .text()
        .await
        .map_err(|e| fail("read CHG-1's row", e))?;
    let local = berlin(start, end);
    assert_eq!(
        local, "2026-11-23 22:00–22:30 CET",
        "the test's own arithmetic"
    );
    assert!(row.contains(&local), "the row shows {row:?}, not {local}");
    assert!(
        row.contains("<script>alert(1)</script>"),
        "title as text: {row:?}"
    );
    screenshot(c, "schedule").await?;
    no_console_errors(c, "schedule").await?;

    // Its id links to its page, which shows the audit trail.
    c.find(Locator::Css("tr#CHG-1 a"))
        .await
        .map_err(|e| fail("find CHG-1's link", e))?
        .click()
        .await
        .map_err(|e| fail("follow CHG-1's link", e))?;
    let audit = c
        .wait()
        .for_element(Locator::Id("audit"))
        .await
        .map_err(|e| fail("find the audit trail", e))?;
    let rows = audit
        .find_all(Locator::Css("tbody tr"))
        .await
        .map_err(|e| fail("audit rows", e))?;
    let mut lines = Vec::new();
    for r in rows {
        lines.push(r.text().await.map_err(|e| fail("audit row", e))?);
    }
    for (who, what) in [("alice", "opened"), ("dave", "approve"), ("dave", "booked")] {
        assert!(
            lines.iter().any(|l| l.contains(who) && l.contains(what)),
            "no `{what}` by {who} in the audit trail: {lines:#?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains(&local)),
        "the booking in local time: {lines:#?}"
    );
    screenshot(c, "change").await?;
    no_console_errors(c, "change").await?;

    c.goto(&format!("{base}/web/kpis"))
        .await
        .map_err(|e| fail("open the KPIs", e))?;
    let heading = c
        .find(Locator::Css("h1"))
        .await
        .map_err(|e| fail("KPI heading", e))?
        .text()
        .await
        .map_err(|e| fail("KPI heading text", e))?;
    assert!(heading.contains("Key performance indicators"), "{heading}");
    // The chart loaded (an image that failed would have no natural width).
    let width = c
        .execute(
            "return document.querySelector('figure.chart img').naturalWidth",
            Vec::new(),
        )
        .await
        .map_err(|e| fail("the chart's width", e))?;
    assert_eq!(width.as_u64(), Some(960), "the chart is shown");
    screenshot(c, "kpis").await?;
    no_console_errors(c, "kpis").await
}

/// Saves the whole page as `target/web-screenshots/<name>.png`.
async fn screenshot(c: &Client, name: &str) -> Result<(), String> {
    // Grow the window to the page's height so the screenshot shows all of it.
    let height = c
        .execute("return document.documentElement.scrollHeight", Vec::new())
        .await
        .map_err(|e| format!("page height: {e}"))?
        .as_u64()
        .unwrap_or(900)
        .clamp(600, 6000);
    let height = u32::try_from(height).unwrap_or(900);
    c.set_window_size(1280, height + 140)
        .await
        .map_err(|e| format!("resize: {e}"))?;
    let png = c
        .screenshot()
        .await
        .map_err(|e| format!("screenshot of {name}: {e}"))?;
    c.set_window_size(1280, 900)
        .await
        .map_err(|e| format!("resize back: {e}"))?;
    let dir = screenshots();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("screenshot: {}", path.display());
    Ok(())
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots")
}

/// Fails on any SEVERE entry of the browser's console log since the last read.
async fn no_console_errors(c: &Client, page: &str) -> Result<(), String> {
    let log = c
        .issue_cmd(BrowserLog)
        .await
        .map_err(|e| format!("read the console log: {e}"))?;
    let entries = match log {
        Value::Object(mut o) if o.contains_key("value") => o.remove("value").unwrap_or_default(),
        other => other,
    };
    let severe: Vec<&Value> = entries
        .as_array()
        .map(|a| a.iter().filter(|e| e["level"] == "SEVERE").collect())
        .unwrap_or_default();
    if severe.is_empty() {
        Ok(())
    } else {
        Err(format!("console errors on the {page} page: {severe:#?}"))
    }
}

/// chromedriver's `POST /session/{id}/se/log` for the `browser` log (not part of W3C
/// WebDriver, so fantoccini has no method for it).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, url_error::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}

/// `url::ParseError`, through reqwest (which uses the same `url` crate as fantoccini).
mod url_error {
    pub type ParseError = <reqwest::Url as std::str::FromStr>::Err;
}

/// A chromedriver process on a free port; stopped when dropped (also on panic).
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    async fn start() -> Chromedriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = format!("{}/status", driver.url);
        for _ in 0..100 {
            let ready = match reqwest::get(&status).await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not get ready on port {port} within 10 s");
    }

    /// A headless Chromium session with the browser's console log kept.
    async fn session(&self) -> Client {
        let capabilities: Capabilities = match json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        }) {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object"),
        };
        // Two crypto providers are compiled in (ring and aws-lc-rs), so rustls cannot pick
        // one by itself; chromedriver is plain HTTP anyway.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
