//! Release scenarios: booked changes are released by themselves in their slot, exactly once,
//! through the service's deployment webhook (a real local HTTP server), with a manual clock.

mod support;

use changebot::clock::Clock;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use support::target::{FakeTarget, Reply};
use support::{DEPLOY_SECRET, Harness};

/// Monday 2026-11-23 10:00 Berlin; the weeknights window opens at 22:00 Berlin (21:00Z).
const MONDAY: &str = "2026-11-23T09:00:00Z";

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Opens CHG-1 on payments-api (normal, medium) and has the owner approve it: booked 22:00.
async fn booked_change(h: &Harness) {
    h.ok("alice", "change open payments-api Enable card vault v2")
        .await;
    let booked = h.ok("dave", "change approve CHG-1").await;
    assert!(
        booked.contains("booked 2026-11-23 22:00–22:30 CET"),
        "{booked}"
    );
}

#[tokio::test]
async fn approved_change_is_reminded_released_once_at_its_slot_and_closed() {
    let target = FakeTarget::start().await;
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    booked_change(&h).await;

    h.set_time("2026-11-23T19:59:00Z");
    h.run_due().await;
    assert_eq!(
        h.chat().len(),
        1,
        "only the booking notice so far: {:?}",
        h.chat()
    );

    h.set_time("2026-11-23T20:00:00Z");
    h.run_due().await;
    assert!(
        target.received().is_empty(),
        "nothing deployed before the slot"
    );

    h.set_time("2026-11-23T21:00:00Z");
    h.run_due().await;
    h.set_time("2026-11-23T21:05:00Z");
    h.run_due().await;

    let received = target.received();
    assert_eq!(received.len(), 1, "exactly one POST");
    let call = &received[0];
    assert_eq!(call.header("x-changebot-event"), "deployment");
    assert_eq!(call.header("idempotency-key"), "DEP-1");
    assert!(uuid::Uuid::parse_str(&call.header("x-changebot-delivery")).is_ok());
    assert_eq!(
        call.header("x-changebot-signature-256"),
        format!("sha256={}", hmac_hex(DEPLOY_SECRET, &call.body))
    );
    let body = call.json();
    assert_eq!(body["deployment_id"], "DEP-1");
    assert_eq!(body["change_id"], "CHG-1");
    assert_eq!(body["service"], "payments-api");
    assert_eq!(body["environment"], "production");
    assert_eq!(body["requested_by"], "alice");
    assert_eq!(
        body["callback_url"],
        "http://127.0.0.1:8080/webhooks/deployments/DEP-1"
    );
    assert!(
        body["repository"].is_null() && body["ref"].is_null() && body["pull_request"].is_null()
    );

    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(
        shown.starts_with(
            "CHG-1 · closed · payments-api/production · Enable card vault v2 · successful"
        ),
        "{shown}"
    );

    let chat = h.chat();
    let expected = [
        "— booked 2026-11-23 22:00–22:30 CET",
        "— starts in 60 minutes",
        "— release started: DEP-1",
        "— DEP-1 succeeded",
    ];
    assert_eq!(chat.len(), expected.len(), "{chat:#?}");
    for (message, wanted) in chat.iter().zip(expected) {
        assert!(
            message.starts_with("CHG-1 · ") && message.contains(wanted),
            "expected `{wanted}` in `{message}`"
        );
    }

    // Nothing more happens later: the release ran once.
    h.set_time("2026-11-24T21:00:00Z");
    h.run_due().await;
    assert_eq!(target.received().len(), 1);
    let status = h.ok("alice", "release status CHG-1").await;
    assert!(status.contains("DEP-1 succeeded"), "{status}");
    assert!(
        status.contains("DEP-1 attempt 1: HTTP 200: succeeded"),
        "{status}"
    );
}

#[tokio::test]
async fn accepted_deployment_waits_for_a_signed_callback_and_rejects_a_forged_one() {
    let target = FakeTarget::start().await;
    target.script(&[Reply::Status(202, "{}")]);
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    let base = support::serve_http(&h).await;
    booked_change(&h).await;
    h.set_time("2026-11-23T21:00:00Z");
    h.run_due().await;
    assert!(
        h.ok("alice", "change show CHG-1")
            .await
            .starts_with("CHG-1 · implement")
    );

    let http = reqwest::Client::new();
    let url = format!("{base}/webhooks/deployments/DEP-1");
    let body = concat!(
        r#"{"deployment_id":"DEP-1","status":"succeeded","#,
        r#""log_url":"https://ci.example/runs/7","message":"rolled out"}"#
    );

    let forged = http
        .post(&url)
        .header(
            "X-Changebot-Signature-256",
            format!("sha256={}", hmac_hex("wrong-secret", body.as_bytes())),
        )
        .body(body)
        .send()
        .await
        .expect("callback");
    assert_eq!(forged.status(), 401);
    let unsigned = http.post(&url).body(body).send().await.expect("callback");
    assert_eq!(unsigned.status(), 401);
    assert!(
        h.ok("alice", "change show CHG-1")
            .await
            .starts_with("CHG-1 · implement"),
        "nothing changed"
    );

    // A correctly signed body naming another deployment is refused (no replay across DEPs).
    let other = r#"{"status":"succeeded","deployment_id":"DEP-2"}"#;
    let replayed = http
        .post(&url)
        .header(
            "X-Changebot-Signature-256",
            format!("sha256={}", hmac_hex(DEPLOY_SECRET, other.as_bytes())),
        )
        .body(other)
        .send()
        .await
        .expect("callback");
    assert_eq!(replayed.status(), 400);
    assert!(
        h.ok("alice", "change show CHG-1")
            .await
            .starts_with("CHG-1 · implement"),
        "nothing changed"
    );

    let signed = http
        .post(&url)
        .header(
            "X-Changebot-Signature-256",
            format!("sha256={}", hmac_hex(DEPLOY_SECRET, body.as_bytes())),
        )
        .body(body)
        .send()
        .await
        .expect("callback");
    assert_eq!(signed.status(), 200);
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(
        shown.starts_with(
            "CHG-1 · closed · payments-api/production · Enable card vault v2 · successful"
        ),
        "{shown}"
    );
    h.run_due().await;
    assert!(
        h.chat()
            .last()
            .is_some_and(|m| m.contains("DEP-1 succeeded: rolled out (https://ci.example/runs/7)")),
        "{:?}",
        h.chat()
    );

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            "changebot_webhook_deliveries_total{source=\"deployment\",result=\"bad_signature\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("changebot_deployments{status=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("changebot_outbox_backlog 0"), "{metrics}");
}

#[tokio::test]
async fn no_callback_before_the_timeout_fails_the_release_into_review() {
    let target = FakeTarget::start().await;
    target.script(&[Reply::Status(200, r#"{"status":"in_progress"}"#)]);
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    booked_change(&h).await;
    h.set_time("2026-11-23T21:00:00Z");
    h.run_due().await;
    h.set_time("2026-11-23T21:14:00Z");
    h.run_due().await;
    assert!(
        h.ok("alice", "change show CHG-1")
            .await
            .starts_with("CHG-1 · implement")
    );

    h.set_time("2026-11-23T21:15:00Z");
    h.run_due().await;
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(shown.starts_with("CHG-1 · review"), "{shown}");
    let last = h.chat().last().cloned().unwrap_or_default();
    assert!(
        last.contains("DEP-1 failed: no result from the target within its timeout"),
        "{last}"
    );
    assert!(
        last.contains("waiting for `change close CHG-1 --review …`"),
        "{last}"
    );

    let closed = h
        .ok(
            "alice",
            "change close CHG-1 --review target hung; adding a health check",
        )
        .await;
    assert!(
        closed.starts_with(
            "CHG-1 · closed · payments-api/production · Enable card vault v2 · unsuccessful"
        ),
        "{closed}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_and_one_deployment_results() {
    let target = FakeTarget::start().await;
    target.script(&[Reply::Status(503, "busy"), Reply::Status(503, "busy")]);
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    booked_change(&h).await;
    h.set_time("2026-11-23T21:00:00Z");
    for _ in 0..20 {
        h.run_due().await;
        h.clock.advance(chrono::Duration::seconds(30));
    }
    let received = target.received();
    assert_eq!(received.len(), 3, "503, 503, 200");
    assert!(
        received
            .iter()
            .all(|r| r.header("idempotency-key") == "DEP-1")
    );
    let deliveries: std::collections::HashSet<String> = received
        .iter()
        .map(|r| r.header("x-changebot-delivery"))
        .collect();
    assert_eq!(deliveries.len(), 3, "a new delivery id per attempt");

    let status = h.ok("alice", "release status CHG-1").await;
    assert_eq!(
        status.lines().filter(|l| l.starts_with("  DEP-")).count(),
        1,
        "one deployment: {status}"
    );
    assert!(status.contains("DEP-1 attempt 1: HTTP 503"), "{status}");
    assert!(status.contains("DEP-1 attempt 2: HTTP 503"), "{status}");
    assert!(
        status.contains("DEP-1 attempt 3: HTTP 200: succeeded"),
        "{status}"
    );
    assert!(
        h.ok("alice", "change show CHG-1")
            .await
            .contains("· closed ·")
    );
}

#[tokio::test]
async fn a_client_error_fails_at_once_without_retrying() {
    let target = FakeTarget::start().await;
    target.script(&[Reply::Status(400, r#"{"error":"unknown service"}"#)]);
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    booked_change(&h).await;
    h.set_time("2026-11-23T21:00:00Z");
    for _ in 0..5 {
        h.run_due().await;
        h.clock.advance(chrono::Duration::minutes(1));
    }
    assert_eq!(target.received().len(), 1);
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(shown.starts_with("CHG-1 · review"), "{shown}");
    let status = h.ok("alice", "release status CHG-1").await;
    assert!(status.contains("DEP-1 failed"), "{status}");
}

#[tokio::test]
async fn a_dry_run_target_is_recorded_and_announced_as_such() {
    let h = Harness::sqlite(MONDAY).await;
    booked_change(&h).await;
    h.set_time("2026-11-23T21:00:00Z");
    h.run_due().await;
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(
        shown.contains("· closed ·") && shown.contains("successful"),
        "{shown}"
    );
    let status = h.ok("alice", "release status CHG-1").await;
    assert!(status.contains("DEP-1 succeeded (dry run)"), "{status}");
    assert!(
        h.chat()
            .iter()
            .any(|m| m.contains("release started (dry run)")),
        "{:?}",
        h.chat()
    );
}

#[tokio::test]
async fn a_release_missed_while_down_runs_if_its_window_is_still_open() {
    let target = FakeTarget::start().await;
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    booked_change(&h).await;
    // Down from before the slot until 22:40 Berlin; the window is open until 01:00.
    h.set_time("2026-11-23T21:40:00Z");
    h.run_due().await;
    assert_eq!(target.received().len(), 1);
    assert!(
        h.ok("alice", "change show CHG-1")
            .await
            .contains("· closed ·")
    );
}

#[tokio::test]
async fn a_release_missed_after_its_window_closed_is_rebooked_and_announced() {
    let target = FakeTarget::start().await;
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    booked_change(&h).await;
    // Down until Tuesday morning: the window closed, so the next legal slot is Tuesday 22:00.
    h.set_time("2026-11-24T08:00:00Z");
    h.run_due().await;
    assert!(target.received().is_empty());
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(shown.starts_with("CHG-1 · scheduled"), "{shown}");
    assert!(shown.contains("2026-11-24 22:00–22:30 CET"), "{shown}");
    assert!(
        h.chat().iter().any(|m| m.contains(
            "missed its slot while changebot was down; rebooked for 2026-11-24 22:00–22:30 CET"
        )),
        "{:?}",
        h.chat()
    );
    h.set_time("2026-11-24T21:00:00Z");
    h.run_due().await;
    assert_eq!(target.received().len(), 1, "released at the new slot");
}

#[tokio::test]
async fn break_glass_is_for_approved_emergency_changes_only_and_they_need_a_review_to_close() {
    let target = FakeTarget::start().await;
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    booked_change(&h).await;
    let refusal = h
        .refused("alice", "release now CHG-1 --reason customers down")
        .await;
    assert!(refusal.contains("only for emergency changes"), "{refusal}");

    h.ok(
        "alice",
        "change open payments-api Roll back ledger --type emergency --risk high",
    )
    .await;
    let refusal = h
        .refused("alice", "release now CHG-2 --reason customers down")
        .await;
    assert!(
        refusal.contains("needs its emergency approval first"),
        "{refusal}"
    );
    h.ok("erin", "change approve CHG-2 go").await;
    let refusal = h
        .refused("frank", "release now CHG-2 --reason I saw it on twitter")
        .await;
    assert!(refusal.contains("frank may not release CHG-2"), "{refusal}");
    let started = h
        .ok(
            "alice",
            "release now CHG-2 --reason double charges in production",
        )
        .await;
    assert!(started.starts_with("CHG-2 · implement"), "{started}");
    assert!(started.contains("DEP-1 pending"), "{started}");
    h.run_due().await;
    h.clock.advance(chrono::Duration::minutes(5));
    h.run_due().await;
    assert_eq!(target.received().len(), 1, "started once, by hand");
    let shown = h.ok("alice", "change show CHG-2").await;
    assert!(
        shown.starts_with("CHG-2 · review"),
        "emergency changes wait for a review: {shown}"
    );
    let closed = h
        .ok(
            "alice",
            "change close CHG-2 --review rolled back; root cause in INC-42",
        )
        .await;
    assert!(
        closed.starts_with(
            "CHG-2 · closed · payments-api/production · Roll back ledger · successful"
        ),
        "{closed}"
    );
    let history = h.ok("alice", "change history CHG-2").await;
    assert!(
        history.contains("break_glass: double charges in production"),
        "{history}"
    );
    assert!(
        history.contains("review: rolled back; root cause in INC-42"),
        "{history}"
    );
}

#[tokio::test]
async fn the_daily_digest_lists_the_next_24_hours_of_releases_on_its_cron() {
    let h = Harness::sqlite("2026-11-23T07:00:00Z").await; // Monday 08:00 Berlin
    h.ok(
        "alice",
        "change open payments-api Rotate keys --type standard",
    )
    .await;
    h.app
        .scheduler
        .plan_announcements(h.clock.now())
        .await
        .expect("plan");
    h.app
        .scheduler
        .plan_announcements(h.clock.now())
        .await
        .expect("planning twice books once");

    h.set_time("2026-11-23T07:59:00Z");
    h.run_due().await;
    assert!(
        !h.chat().iter().any(|m| m.starts_with("daily-digest")),
        "{:?}",
        h.chat()
    );

    h.set_time("2026-11-23T08:00:00Z");
    h.run_due().await;
    let digests: Vec<(String, String)> = h
        .sink
        .messages()
        .into_iter()
        .filter(|(_, m)| m.starts_with("daily-digest"))
        .collect();
    assert_eq!(digests.len(), 1, "{digests:?}");
    let (channel, text) = &digests[0];
    assert_eq!(channel, "releases");
    assert!(
        text.starts_with("daily-digest: 1 release(s) booked in the next 24 hours"),
        "{text}"
    );
    assert!(
        text.contains(
            "CHG-1 · scheduled · payments-api/production · Rotate keys · 2026-11-23 22:00–22:30 CET"
        ),
        "{text}"
    );

    // The next occurrence is booked: Tuesday 09:00 Berlin.
    h.set_time("2026-11-24T08:00:00Z");
    h.run_due().await;
    let count = h
        .chat()
        .iter()
        .filter(|m| m.starts_with("daily-digest"))
        .count();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn a_freeze_from_chat_announces_the_changes_it_moved() {
    let h = Harness::sqlite(MONDAY).await;
    booked_change(&h).await;
    h.ok("bob", "freeze start incident --until 2026-11-24 06:00 --service payments-api --reason incident INC-7").await;
    h.run_due().await;
    let chat = h.chat();
    assert!(
        chat.last()
            .is_some_and(|m| m.starts_with("CHG-1 · scheduled")
                && m.contains("booked 2026-11-24 22:00–22:30 CET")),
        "{chat:?}"
    );
    let history = h.ok("alice", "change history CHG-1").await;
    assert!(
        history.contains(
            "bob (console)  booked: moved by freeze incident: 2026-11-24 22:00–22:30 CET"
        ),
        "{history}"
    );
    // The old slot's jobs are gone: nothing runs Monday night.
    h.set_time("2026-11-23T21:00:00Z");
    h.run_due().await;
    assert!(
        h.ok("alice", "change show CHG-1")
            .await
            .starts_with("CHG-1 · scheduled")
    );
}

#[tokio::test]
async fn a_freeze_added_after_booking_stops_the_start_and_the_change_is_rebooked() {
    let target = FakeTarget::start().await;
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    booked_change(&h).await;
    // A freeze that appears without rebooking anything, as one added to the config file would.
    let mut tx = h.app.workflow.store().begin().await.expect("tx");
    let freeze = changebot::store::NewFreeze {
        name: "incident".into(),
        start: support::at("2026-11-23T20:00:00Z"),
        end: support::at("2026-11-24T06:00:00Z"),
        services: vec![],
        reason: "INC-9".into(),
        started_by: "bob".into(),
    };
    tx.insert_freeze(&freeze)
        .await
        .expect("insert")
        .expect("new name");
    tx.commit().await.expect("commit");

    h.set_time("2026-11-23T21:00:00Z");
    h.run_due().await;
    assert!(target.received().is_empty(), "a freeze beats the booking");
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(
        shown.starts_with("CHG-1 · scheduled") && shown.contains("2026-11-24 22:00–22:30 CET"),
        "{shown}"
    );
    let last = h.chat().last().cloned().unwrap_or_default();
    assert!(
        last.contains("cannot start now: freeze incident until")
            && last.contains("rebooked for 2026-11-24 22:00–22:30 CET"),
        "{last}"
    );
}

#[tokio::test]
async fn a_call_that_could_not_be_sent_before_its_deadline_is_failed_not_sent_late() {
    let target = FakeTarget::start().await;
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    booked_change(&h).await;
    h.set_time("2026-11-23T21:00:00Z");
    h.app
        .scheduler
        .tick(support::at("2026-11-23T21:00:00Z"))
        .await
        .expect("start");
    // changebot is down until long after the target's 15-minute timeout.
    h.set_time("2026-11-24T08:00:00Z");
    h.run_due().await;
    assert!(target.received().is_empty(), "never sent late");
    let status = h.ok("alice", "release status CHG-1").await;
    assert!(
        status.contains("DEP-1 failed")
            && status.contains("its deadline passed before it could be delivered"),
        "{status}"
    );
    assert!(
        h.ok("alice", "change show CHG-1")
            .await
            .starts_with("CHG-1 · review")
    );
}
