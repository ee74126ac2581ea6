//! The release engine's robustness, through the real workflow, store (SQLite and PostgreSQL)
//! and HTTP router: owned and fenced claims, parked deliveries retried by a person,
//! reconciliation of scheduled changes with their start jobs, notices coalesced after downtime,
//! and readiness that reflects the background loops.

mod support;

use chrono::Duration;

use changebot::domain::ChangeId;
use changebot::holder::Holder;
use changebot::workflow::{Settled, Settlement};

use support::Harness;
use support::target::FakeTarget;

/// Monday 2026-11-23 10:00 Berlin; the weeknights window opens at 22:00 Berlin (21:00Z).
const MONDAY: &str = "2026-11-23T09:00:00Z";

/// Both backends, PostgreSQL only when configured.
async fn backends() -> Vec<(&'static str, bool)> {
    let mut out = vec![("sqlite", false)];
    if support::postgres_url().is_some() {
        out.push(("postgres", true));
    } else {
        eprintln!("skipping PostgreSQL: CHANGEBOT_TEST_POSTGRES_URL is unset");
    }
    out
}

/// Opens CHG-1 on payments-api and has the owner approve it: booked 22:00 Berlin, with its
/// booking notice queued (not yet delivered).
async fn booked_change(h: &Harness) {
    h.ok("alice", "change open payments-api Enable card vault v2")
        .await;
    let booked = h.ok("dave", "change approve CHG-1").await;
    assert!(
        booked.contains("booked 2026-11-23 22:00–22:30 CET"),
        "{booked}"
    );
}

/// Runs raw SQL against the harness's database (to break things the way bugs and operators do).
async fn exec_sql(url: &str, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .expect("sql");
    conn.close().await.expect("close");
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

#[tokio::test]
async fn a_stalled_holders_late_outcome_is_refused_and_a_live_holder_keeps_its_work() {
    for (name, postgres) in backends().await {
        let (h, _sink) = Harness::flaky(postgres, None, MONDAY)
            .await
            .expect("harness");
        booked_change(&h).await;
        let store = h.app.workflow.store();
        let lease = Duration::seconds(6);
        let t0 = support::at(MONDAY);
        let (a, b) = (Holder::new(), Holder::new());

        // A claims the booking notice and keeps renewing: B finds nothing while A lives.
        let notices: &[&str] = &["notice"];
        let mut req = a.request(t0, lease, 10);
        req.kinds = notices;
        let claimed = store.claim_outbox(req).await.expect("claim");
        assert_eq!(claimed.len(), 1, "{name}: the booking notice");
        let token = claimed[0].claim_token.clone().expect("token");
        let held = a.hold(changebot::store::claims::Table::Outbox, &token);
        a.renew(store, t0 + Duration::seconds(10))
            .await
            .expect("renew");
        let t7 = t0 + Duration::seconds(7);
        assert!(
            store
                .claim_outbox({
                    let mut req = b.request(t7, lease, 10);
                    req.kinds = notices;
                    req
                })
                .await
                .expect("claim")
                .is_empty(),
            "{name}: a renewed claim is not taken over"
        );

        // A stalls (no more renewals); after its lease B takes the item over.
        drop(held);
        let t11 = t0 + Duration::seconds(11);
        let mut req = b.request(t11, lease, 10);
        req.kinds = notices;
        let taken = store.claim_outbox(req).await.expect("claim");
        assert_eq!(taken.len(), 1, "{name}: taken over once the lease ran out");
        assert_eq!(taken[0].taken_from.as_deref(), Some(a.instance()));

        // A wakes up and reports its (late) delivery: refused, nothing recorded.
        let late = Settlement {
            item: claimed[0].clone(),
            what: Settled::Posted { shown: Vec::new() },
            at: t11,
        };
        let refused = h.app.workflow.settle(&[late]).await.expect("settle");
        assert_eq!(
            refused, 1,
            "{name}: the stalled holder's completion is refused"
        );
        // B's own completion goes through.
        let mine = Settlement {
            item: taken[0].clone(),
            what: Settled::Posted { shown: Vec::new() },
            at: t11,
        };
        assert_eq!(h.app.workflow.settle(&[mine]).await.expect("settle"), 0);
        let t30 = t0 + Duration::seconds(30);
        assert!(
            store
                .claim_outbox({
                    let mut req = a.request(t30, lease, 10);
                    req.kinds = notices;
                    req
                })
                .await
                .expect("claim")
                .is_empty(),
            "{name}: delivered once, by its holder"
        );
    }
}

#[tokio::test]
async fn a_notice_that_keeps_failing_is_parked_announced_and_retried_by_a_person() {
    for (name, postgres) in backends().await {
        let (h, sink) = Harness::flaky(postgres, None, MONDAY)
            .await
            .expect("harness");
        booked_change(&h).await;
        sink.set_failing(true);
        // MAX_CHAT_ATTEMPTS tries, ten minutes apart (longer than any backoff step): then it
        // is parked.
        let max = changebot::workflow::MAX_CHAT_ATTEMPTS;
        let mut t = support::at(MONDAY);
        for _ in 0..max {
            h.clock.set(t);
            h.run_due().await;
            t += Duration::minutes(10);
        }
        let parked = h
            .app
            .workflow
            .store()
            .parked(Some(ChangeId(1)))
            .await
            .expect("parked");
        let kinds: Vec<&str> = parked.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["card", "notice"],
            "{name}: the card and the booking notice are parked"
        );
        assert!(parked.iter().all(|p| p.attempts == max), "{name}");
        assert!(h.chat().is_empty(), "{name}: nothing got through yet");

        // Chat comes back: the change's channel hears about the parked notice.
        sink.set_failing(false);
        h.clock.set(t);
        h.run_due().await;
        let chat = h.chat();
        assert_eq!(chat.len(), 1, "{name}: {chat:?}");
        assert!(
            chat[0].starts_with("CHG-1 · scheduled · payments-api/production")
                && chat[0].contains(&format!(
                    "a notice to #releases is parked: not delivered after {max}"
                ))
                && chat[0].contains("`release retry CHG-1` sends it again"),
            "{name}: {}",
            chat[0]
        );
        // Visible in release status, the API and /metrics.
        let status = h.ok("alice", "release status CHG-1").await;
        assert!(
            status.contains(&format!("parked: notice to #releases after {max} attempts")),
            "{name}: {status}"
        );
        let base = support::serve_http(&h).await;
        let (_, metrics) = get(&format!("{base}/metrics"), None).await;
        assert!(
            metrics.contains("changebot_outbox_parked 2"),
            "{name}: {metrics}"
        );
        // Only people who may manage the change retry it.
        let refusal = h.refused("frank", "release retry CHG-1").await;
        assert!(refusal.contains("frank may not"), "{name}: {refusal}");
        let retried = h.ok("alice", "release retry CHG-1").await;
        assert!(!retried.contains("parked:"), "{name}: {retried}");
        h.run_due().await;
        let chat = h.chat();
        assert_eq!(chat.len(), 2, "{name}: {chat:?}");
        assert!(
            chat[1].contains("booked 2026-11-23 22:00–22:30 CET"),
            "{name}"
        );
        let (_, metrics) = get(&format!("{base}/metrics"), None).await;
        assert!(metrics.contains("changebot_outbox_parked 0"), "{name}");
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(
            history.contains("delivery_parked") && history.contains("delivery_retried"),
            "{name}: {history}"
        );
        assert!(
            h.refused("alice", "release retry CHG-1")
                .await
                .contains("no parked deliveries"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_parked_notice_api_field_lists_parked_deliveries() {
    let (h, sink) = Harness::flaky(false, None, MONDAY).await.expect("harness");
    booked_change(&h).await;
    sink.set_failing(true);
    let mut t = support::at(MONDAY);
    for _ in 0..changebot::workflow::MAX_CHAT_ATTEMPTS {
        h.clock.set(t);
        h.run_due().await;
        t += Duration::minutes(10);
    }
    // SAFETY: set once in this test process; no other test reads this variable.
    unsafe { std::env::set_var("CHANGEBOT_TEST_API_TOKEN", "t0ken") };
    let h = h.restart().await;
    let base = support::serve_http(&h).await;
    let (status, body) = get(&format!("{base}/api/changes/CHG-1"), Some("t0ken")).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["parked"][0]["kind"], "card", "{json}");
    assert_eq!(json["parked"][1]["kind"], "notice", "{json}");
    assert_eq!(
        json["parked"][1]["attempts"],
        changebot::workflow::MAX_CHAT_ATTEMPTS,
        "{json}"
    );
}

#[tokio::test]
async fn a_scheduled_change_without_its_start_job_is_reconciled_and_released() {
    for (name, postgres) in backends().await {
        let target = FakeTarget::start().await;
        let (h, _sink) = Harness::flaky(postgres, Some(&target.url), MONDAY)
            .await
            .expect("harness");
        booked_change(&h).await;
        // A bug or a hand edit loses the start job.
        exec_sql(
            &h.url,
            "UPDATE jobs SET state = 'canceled' WHERE kind = 'release_start'",
        )
        .await;
        let now = support::at(MONDAY);
        assert_eq!(
            h.app.workflow.reconcile(now).await.expect("reconcile"),
            1,
            "{name}"
        );
        assert_eq!(
            h.app.workflow.reconcile(now).await.expect("reconcile"),
            0,
            "{name}: repaired once"
        );
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(history.contains("reconciled"), "{name}: {history}");
        h.set_time("2026-11-23T21:00:00Z");
        h.run_due().await;
        assert_eq!(target.received().len(), 1, "{name}: released at its slot");
    }
}

#[tokio::test]
async fn a_release_start_given_up_after_errors_rebooks_its_change() {
    for (name, postgres) in backends().await {
        let (h, _sink) = Harness::flaky(postgres, None, MONDAY)
            .await
            .expect("harness");
        booked_change(&h).await;
        let slot = support::at("2026-11-23T21:00:00Z");
        let holder = Holder::new();
        let jobs = h
            .app
            .workflow
            .store()
            .claim_jobs(holder.request(slot, Duration::seconds(6), 10))
            .await
            .expect("claim");
        let start = jobs
            .iter()
            .find(|j| j.kind == changebot::store::releases::JobKind::ReleaseStart)
            .expect("the start job");
        h.app
            .workflow
            .give_up_job(start, "internal error: boom", slot)
            .await
            .expect("give up");
        let show = h.ok("alice", "change show CHG-1").await;
        assert!(
            show.starts_with("CHG-1 · scheduled")
                && show.contains("slot: 2026-11-23 22:30–23:00 CET"),
            "{name}: rebooked after the slot that failed: {show}"
        );
        let now = slot + Duration::minutes(1);
        assert_eq!(
            h.app.workflow.reconcile(now).await.expect("reconcile"),
            0,
            "{name}: and it has its start job"
        );
    }
}

#[tokio::test]
async fn notices_superseded_while_down_go_out_once_as_the_change_stands_now() {
    let (h, _sink) = Harness::flaky(false, None, MONDAY).await.expect("harness");
    booked_change(&h).await;
    // While nothing is delivered (changebot's dispatcher is down, people use the CLI), the
    // booking moves three times.
    h.ok(
        "alice",
        "freeze start db-failover --until 2026-11-24T06:00:00Z --reason failover test",
    )
    .await;
    h.ok("alice", "change schedule CHG-1 --at 2026-11-25T22:30")
        .await;
    let booking: Vec<String> = h
        .chat()
        .into_iter()
        .filter(|m| m.contains("booked"))
        .collect();
    assert!(booking.is_empty(), "nothing delivered yet: {booking:?}");
    h.run_due().await;
    let about_booking: Vec<String> = h
        .chat()
        .into_iter()
        .filter(|m| m.starts_with("CHG-1") && m.contains("booked"))
        .collect();
    assert_eq!(
        about_booking.len(),
        1,
        "one notice: where CHG-1 stands now: {:?}",
        h.chat()
    );
    assert!(
        about_booking[0].contains("booked 2026-11-25 22:30–23:00 CET"),
        "{}",
        about_booking[0]
    );
    let history = h.ok("alice", "change history CHG-1").await;
    assert!(
        history.contains("moved by freeze db-failover: 2026-11-24 22:00"),
        "the freeze is named in the audit trail: {history}"
    );
}

#[tokio::test]
async fn a_change_moved_by_a_freeze_says_so_in_its_notice() {
    let (h, _sink) = Harness::flaky(false, None, MONDAY).await.expect("harness");
    booked_change(&h).await;
    h.run_due().await;
    h.ok(
        "alice",
        "freeze start db-failover --until 2026-11-24T06:00:00Z --reason failover test",
    )
    .await;
    h.run_due().await;
    let chat = h.chat();
    assert!(
        chat.iter().any(|m| m.starts_with("CHG-1 · scheduled")
            && m.contains("moved by freeze db-failover: booked 2026-11-24 22:00")),
        "{chat:?}"
    );
}
