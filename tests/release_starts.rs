//! Release starts against the calendar: a start that comes on time is checked against the slot
//! it was booked for (the scheduler's `now` is always a few milliseconds past it), and a start
//! that comes late (changebot was down) against the time really left, other bookings included.

mod support;

use support::Harness;
use support::target::{FakeTarget, Reply};

/// Monday 2026-11-23 10:00 Berlin. The fixture's weeknights window opens at 22:00 Berlin
/// (21:00Z) for 3h; changes last 30m.
const MONDAY: &str = "2026-11-23T09:00:00Z";

/// The fixture's weeknights window, as written in tests/fixtures/org.toml.
const WEEKNIGHTS: &str = "cron = \"0 22 * * Mon-Thu\"\nduration = \"3h\"";

/// Replaces the first `from` in a config text, which must be there.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the fixture no longer has `{from}`");
    text.replacen(from, to, 1)
}

/// Opens a standard change (no approval needed, so it is booked at once) and books it at
/// `at` (Berlin wall clock).
async fn standard_change_at(h: &Harness, title: &str, id: &str, at: &str) -> String {
    h.ok(
        "alice",
        &format!("change open payments-api {title} --type standard"),
    )
    .await;
    h.ok("alice", &format!("change schedule {id} --at {at}"))
        .await
}

/// Asserts `id` was started by the scheduler, as `dep`.
async fn assert_started(h: &Harness, id: &str, dep: &str) {
    let status = h.ok("alice", &format!("release status {id}")).await;
    assert!(status.contains(dep), "{id} should have {dep}:\n{status}");
    let chat = h.chat();
    assert!(
        chat.iter()
            .any(|m| m.starts_with(&format!("{id} · ")) && m.contains("release started")),
        "{chat:#?}"
    );
}

/// Asserts `id` was started on time, in its own slot, as `dep`: never rebooked.
async fn assert_started_on_time(h: &Harness, id: &str, dep: &str) {
    assert_started(h, id, dep).await;
    let chat = h.chat();
    assert!(
        !chat
            .iter()
            .any(|m| m.starts_with(&format!("{id} · ")) && m.contains("rebooked")),
        "{id} was rebooked: {chat:#?}"
    );
}

#[tokio::test]
async fn the_last_slot_of_a_window_starts_a_few_milliseconds_late() {
    // A one-minute window every two minutes, and one-minute changes: every slot is the last
    // one of its window occurrence.
    let h = Harness::sqlite_with_config(
        |text| {
            let text = replaced(
                &text,
                WEEKNIGHTS,
                "cron = \"*/2 * * * *\"\nduration = \"1m\"",
            );
            replaced(
                &text,
                "change_duration = \"30m\"",
                "change_duration = \"1m\"",
            )
        },
        MONDAY,
    )
    .await;
    let booked = standard_change_at(&h, "Restart workers", "CHG-1", "2026-11-23 10:30").await;
    assert!(
        booked.contains("booked 2026-11-23 10:30–10:31 CET"),
        "{booked}"
    );

    h.set_time("2026-11-23T09:30:00.004Z");
    h.run_due().await;
    assert_started_on_time(&h, "CHG-1", "DEP-1").await;
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(!shown.starts_with("CHG-1 · scheduled"), "{shown}");
    assert!(
        shown.contains("slot: 2026-11-23 10:30–10:31 CET"),
        "an on-time start keeps its booking: {shown}"
    );
}

#[tokio::test]
async fn a_slot_ending_where_a_configured_freeze_begins_starts_on_time() {
    let h = Harness::sqlite_with_config(
        |text| {
            text + "\n[[freeze]]\nname = \"release-train\"\n\
                    start = \"2026-11-23T23:00:00+01:00\"\nend = \"2026-11-24T08:00:00+01:00\"\n"
        },
        MONDAY,
    )
    .await;
    let booked = standard_change_at(&h, "Rotate keys", "CHG-1", "2026-11-23 22:30").await;
    assert!(
        booked.contains("booked 2026-11-23 22:30–23:00 CET"),
        "{booked}"
    );

    h.set_time("2026-11-23T21:30:00.004Z");
    h.run_due().await;
    assert_started_on_time(&h, "CHG-1", "DEP-1").await;
}

#[tokio::test]
async fn a_slot_ending_where_a_freeze_from_chat_begins_starts_on_time() {
    let h = Harness::sqlite(MONDAY).await;
    let booked = standard_change_at(&h, "Rotate keys", "CHG-1", "2026-11-23 22:30").await;
    assert!(
        booked.contains("booked 2026-11-23 22:30–23:00 CET"),
        "{booked}"
    );
    // A stored freeze, as `freeze start` writes it, beginning exactly at the slot's end.
    let mut tx = h.app.workflow.store().begin().await.expect("tx");
    let freeze = changebot::store::NewFreeze {
        name: "incident".into(),
        start: support::at("2026-11-23T22:00:00Z"),
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

    h.set_time("2026-11-23T21:30:00.004Z");
    h.run_due().await;
    assert_started_on_time(&h, "CHG-1", "DEP-1").await;
}

#[tokio::test]
async fn a_change_as_long_as_its_window_starts_a_few_milliseconds_late() {
    let h = Harness::sqlite_with_config(
        |text| {
            replaced(
                &text,
                WEEKNIGHTS,
                "cron = \"0 22 * * Mon-Thu\"\nduration = \"30m\"",
            )
        },
        MONDAY,
    )
    .await;
    let opened = h
        .ok(
            "alice",
            "change open payments-api Restart workers --type standard",
        )
        .await;
    assert!(
        opened.contains("booked 2026-11-23 22:00–22:30 CET"),
        "{opened}"
    );

    h.set_time("2026-11-23T21:00:00.004Z");
    h.run_due().await;
    assert_started_on_time(&h, "CHG-1", "DEP-1").await;
}

#[tokio::test]
async fn a_late_start_that_would_run_into_the_next_booking_is_rebooked_after_it() {
    let h = Harness::sqlite(MONDAY).await;
    let first = h
        .ok(
            "alice",
            "change open payments-api Migrate ledger --type standard",
        )
        .await;
    assert!(
        first.contains("booked 2026-11-23 22:00–22:30 CET"),
        "{first}"
    );
    let second = h
        .ok("alice", "change open payments-api Reindex --type standard")
        .await;
    assert!(
        second.contains("booked 2026-11-23 22:30–23:00 CET"),
        "{second}"
    );

    // Down from before 22:00 until 22:10 Berlin: 22:10–22:40 would overlap CHG-2.
    h.set_time("2026-11-23T21:10:00Z");
    h.run_due().await;
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(shown.starts_with("CHG-1 · scheduled"), "{shown}");
    assert!(
        shown.contains("slot: 2026-11-23 23:00–23:30 CET"),
        "rebooked after CHG-2: {shown}"
    );
    assert!(
        h.chat().iter().any(|m| m.starts_with("CHG-1 · ")
            && m.contains(
                "missed its slot while changebot was down; rebooked for 2026-11-23 23:00–23:30 CET"
            )),
        "{:#?}",
        h.chat()
    );
    let status = h.ok("alice", "release status CHG-1").await;
    assert!(!status.contains("DEP-"), "nothing started: {status}");

    // CHG-2 keeps its slot and starts in it; CHG-1 follows in its new one.
    h.set_time("2026-11-23T21:30:00.004Z");
    h.run_due().await;
    assert_started_on_time(&h, "CHG-2", "DEP-1").await;
    h.set_time("2026-11-23T22:00:00.004Z");
    h.run_due().await;
    assert_started(&h, "CHG-1", "DEP-2").await;
}

#[tokio::test]
async fn a_late_start_with_room_left_in_its_window_runs_from_the_actual_time() {
    let h = Harness::sqlite(MONDAY).await;
    h.ok(
        "alice",
        "change open payments-api Migrate ledger --type standard",
    )
    .await;
    // The next booking begins ten minutes after the late start would end.
    let second = standard_change_at(&h, "Reindex", "CHG-2", "2026-11-23 22:50").await;
    assert!(
        second.contains("booked 2026-11-23 22:50–23:20 CET"),
        "{second}"
    );

    h.set_time("2026-11-23T21:10:00Z");
    h.run_due().await;
    assert_started(&h, "CHG-1", "DEP-1").await;
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(
        shown.contains("slot: 2026-11-23 22:10–22:40 CET"),
        "a late start books the time it ran: {shown}"
    );
    let other = h.ok("alice", "change show CHG-2").await;
    assert!(
        other.starts_with("CHG-2 · scheduled")
            && other.contains("slot: 2026-11-23 22:50–23:20 CET"),
        "{other}"
    );
}

#[tokio::test]
async fn an_on_time_start_yields_to_a_running_emergency_release_but_not_to_itself() {
    let target = FakeTarget::start().await;
    // The emergency release stays in progress until its 15-minute timeout.
    target.script(&[Reply::Status(200, r#"{"status":"in_progress"}"#)]);
    let h = Harness::sqlite_deploying_to(&target.url, MONDAY).await;
    let opened = h
        .ok(
            "alice",
            "change open payments-api Migrate ledger --type standard",
        )
        .await;
    assert!(
        opened.contains("booked 2026-11-23 22:00–22:30 CET"),
        "{opened}"
    );

    h.set_time("2026-11-23T20:50:00Z");
    h.ok(
        "alice",
        "change open payments-api Hotfix double charges --type emergency --duration 1h",
    )
    .await;
    h.ok("erin", "change approve CHG-2").await;
    h.run_due().await;
    let emergency = h.ok("alice", "change show CHG-2").await;
    assert!(
        emergency.starts_with("CHG-2 · implement")
            && emergency.contains("slot: 2026-11-23 21:50–22:50 CET"),
        "{emergency}"
    );

    h.set_time("2026-11-23T21:00:00.004Z");
    h.run_due().await;
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(
        shown.starts_with("CHG-1 · scheduled")
            && shown.contains("slot: 2026-11-23 22:50–23:20 CET"),
        "{shown}"
    );
    let last = h
        .chat()
        .into_iter()
        .rfind(|m| m.starts_with("CHG-1 · "))
        .unwrap_or_default();
    assert!(
        last.contains("cannot start now:")
            && last.contains("CHG-2")
            && last.contains("rebooked for 2026-11-23 22:50–23:20 CET"),
        "{last}"
    );
    assert_eq!(target.received().len(), 1, "only the emergency release ran");
}
