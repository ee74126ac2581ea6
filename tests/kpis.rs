//! KPIs through the workflow: two changes released by the scheduler (one succeeds, one fails)
//! give the same numbers through the chat command `metrics` and `GET /api/metrics`.

mod support;

use serde_json::Value;
use support::Harness;
use support::target::{FakeTarget, Reply};

const TOKEN_ENV: &str = "CHANGEBOT_TEST_API_TOKEN";
const TOKEN: &str = "test-api-token";

/// Monday 2026-11-23 10:00 Berlin; the weeknights window opens at 22:00 Berlin (21:00Z).
const MONDAY: &str = "2026-11-23T09:00:00Z";

async fn get(base: &str, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{base}/api/metrics{query}"));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.expect("call");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn metrics_in_chat_and_the_api_agree_on_a_success_and_an_unrecovered_failure() {
    let target = scripted_target().await;
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    scenario(h, target).await;
}

/// The same on PostgreSQL (skipped when CHANGEBOT_TEST_POSTGRES_URL is unset).
#[tokio::test]
async fn on_postgres_metrics_in_chat_and_the_api_agree() {
    let target = scripted_target().await;
    let Some((h, _sink)) = Harness::flaky(true, Some(&target.url), MONDAY).await else {
        return;
    };
    scenario(h, target).await;
}

/// A target whose first release succeeds and whose second fails.
async fn scripted_target() -> FakeTarget {
    // SAFETY: both tests of this binary set this variable to the same value before reading it.
    unsafe { std::env::set_var(TOKEN_ENV, TOKEN) };
    let target = FakeTarget::start().await;
    target.script(&[
        Reply::Status(200, r#"{"status":"succeeded"}"#),
        Reply::Status(200, r#"{"status":"failed","message":"boom"}"#),
    ]);
    target
}

/// Two changes opened 09:00Z and approved 10:00Z; the first succeeds at 21:00Z, the second
/// fails at 21:30Z; the KPIs are read the next morning.
async fn scenario(h: Harness, target: FakeTarget) {
    h.ok("alice", "change open payments-api Enable card vault v2")
        .await;
    h.ok("alice", "change open payments-api Rotate keys").await;
    h.set_time("2026-11-23T10:00:00Z");
    let one = h.ok("dave", "change approve CHG-1").await;
    assert!(one.contains("booked 2026-11-23 22:00–22:30 CET"), "{one}");
    let two = h.ok("dave", "change approve CHG-2").await;
    assert!(two.contains("booked 2026-11-23 22:30–23:00 CET"), "{two}");
    for now in [
        "2026-11-23T21:00:00Z",
        "2026-11-23T21:01:00Z",
        "2026-11-23T21:30:00Z",
        "2026-11-23T21:31:00Z",
    ] {
        h.set_time(now);
        h.run_due().await;
    }
    assert_eq!(target.received().len(), 2, "both released");
    h.set_time("2026-11-24T09:00:00Z");

    let chat = h.ok("bob", "metrics --days 7").await;
    let base = support::serve_http(&h).await;
    let (status, api) = get(&base, "?days=7", Some(TOKEN)).await;
    assert_eq!(status, 200, "{api}");

    // The numbers, from the API…
    assert_eq!(api["deployments_succeeded"], 1, "{api}");
    assert_eq!(api["deployments_failed"], 1);
    assert_eq!(api["change_failure_rate"], 0.5);
    assert_eq!(api["unrecovered_failures"], 1);
    assert_eq!(api["recovery"]["count"], 0);
    assert_eq!(api["changes_opened"], 2);
    assert_eq!(api["emergency_changes"], 0);
    assert_eq!(api["changes_closed"], 1);
    assert_eq!(api["change_success_rate"], 1.0);
    assert_eq!(api["unauthorized_changes"], 0);
    // Opened 09:00Z, released at 21:00Z: 12 hours.
    assert_eq!(api["lead_time"]["count"], 1);
    assert_eq!(api["lead_time"]["median_secs"], 12 * 3600);
    // Authorize at 09:00Z, approved (and booked) at 10:00Z.
    assert_eq!(api["approval_latency"]["count"], 2);
    assert_eq!(api["approval_latency"]["median_secs"], 3600);
    assert_eq!(api["approval_latency"]["p90_secs"], 3600);
    assert_eq!(api["booked_releases"], 2);
    assert_eq!(api["started_in_first_slot"], 2);
    assert_eq!(api["rebookings"], 0);
    assert_eq!(api["unreviewed"], serde_json::json!(["CHG-2"]));
    let per_day = api["deployments_per_day"].as_f64().expect("a number");
    assert!((per_day - 1.0 / 7.0).abs() < 1e-9, "{per_day}");

    // …and the same in chat.
    for line in [
        "metrics 2026-11-17 09:00 UTC → 2026-11-24 09:00 UTC (7 days, all services)",
        "deployments: 1 succeeded, 1 failed · 0.14/day · failure rate 50%",
        "lead time: median 12h00m, p90 12h00m (1)",
        "recovery: none · 1 unrecovered · rework 0 (0%)",
        "changes: 2 opened, 0 emergency (0%) · 1 closed, 1 successful (100%) · 0 unauthorized",
        "approval latency: median 1h00m, p90 1h00m (2)",
        "slots: 2 of 2 releases in their first booked slot (100%) · 0 rebookings of 2 booked changes",
        "failed or emergency without review: CHG-2",
    ] {
        assert!(chat.contains(line), "`{line}` missing in:\n{chat}");
    }

    // One service: the same here; another service has nothing.
    let (_, mine) = get(&base, "?days=7&service=payments-api", Some(TOKEN)).await;
    assert_eq!(mine["deployments_failed"], 1);
    assert_eq!(mine["service"], "payments-api");
    let scoped = h.ok("bob", "metrics --service payments-api --days 7").await;
    assert!(scoped.contains("(7 days, payments-api)"), "{scoped}");
    // One environment: both releases went to production; staging saw none.
    let (_, prod) = get(&base, "?days=7&environment=production", Some(TOKEN)).await;
    assert_eq!(prod["deployments_failed"], 1, "{prod}");
    assert_eq!(prod["environment"], "production");
    let (_, staging) = get(
        &base,
        "?days=7&service=payments-api&environment=staging",
        Some(TOKEN),
    )
    .await;
    assert_eq!(staging["deployments_failed"], 0, "{staging}");
    assert_eq!(staging["deployments_succeeded"], 0);
    let env_chat = h
        .ok(
            "bob",
            "metrics --days 7 --service payments-api --env staging",
        )
        .await;
    assert!(
        env_chat.contains("(7 days, payments-api/staging)")
            && env_chat.contains("deployments: 0 succeeded, 0 failed"),
        "{env_chat}"
    );
    // Default period: 30 days.
    let (_, month) = get(&base, "", Some(TOKEN)).await;
    assert_eq!(month["from"], "2026-10-25T09:00:00Z");
    assert!(
        h.ok("bob", "metrics")
            .await
            .contains("(30 days, all services)")
    );

    // The same 30-day numbers as Prometheus gauges, for all services and each one.
    let scrape = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let gauge_in = |kpi: &str, service: &str, environment: &str| -> f64 {
        let prefix = format!(
            "changebot_kpi{{kpi=\"{kpi}\",service=\"{service}\",environment=\"{environment}\"}} "
        );
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{scrape}"))
    };
    let gauge = |kpi: &str, service: &str| gauge_in(kpi, service, "all");
    let month_per_day = month["deployments_per_day"].as_f64().expect("a number");
    assert!((gauge("deployments_per_day", "all") - month_per_day).abs() < 1e-9);
    assert!((gauge("change_failure_rate", "payments-api") - 0.5).abs() < 1e-9);
    assert_eq!(gauge("unreviewed_changes", "all"), 1.0);
    assert_eq!(gauge("rework_rate", "all"), 0.0);
    let prod_rate = gauge_in("change_failure_rate", "payments-api", "production");
    assert!((prod_rate - 0.5).abs() < 1e-9);
    assert!(gauge_in("change_failure_rate", "payments-api", "staging").is_nan());
    assert!(
        gauge("recovery_time_median_seconds", "all").is_nan(),
        "nothing recovered"
    );

    // Bad values: 400 in JSON, or a usage message in chat; no token: 401.
    for query in [
        "?days=0",
        "?days=367",
        "?days=seven",
        "?days=-1",
        "?service=nope",
        "?environment=nope",
        "?service=payments-api&environment=qa",
        "?colour=blue",
    ] {
        let (status, body) = get(&base, query, Some(TOKEN)).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"].is_string(), "{query}: {body}");
    }
    assert_eq!(get(&base, "?days=7", None).await.0, 401);
    assert_eq!(get(&base, "?days=7", Some("nope")).await.0, 401);
    for line in [
        "metrics --days 0",
        "metrics --days 400",
        "metrics --service nope",
        "metrics --env qa",
    ] {
        let refusal = h.refused("bob", line).await;
        assert!(
            refusal.contains("from 1 to 366") || refusal.contains("unknown "),
            "{line}: {refusal}"
        );
    }
}
