//! Scenarios from the change-record core: policies, approvals, booking, explain and history,
//! driven through the same workflow every surface uses, on a real SQLite database.

mod support;

use support::Harness;

/// Wednesday 2026-12-16, 10:00 in Berlin. Windows open Mon–Thu 22:00 Berlin for 3h; the
/// year-end freeze runs 2026-12-18 00:00 → 2027-01-04 08:00 Berlin.
const WEDNESDAY_MORNING: &str = "2026-12-16T09:00:00Z";

#[tokio::test]
async fn high_risk_change_needs_cab_and_owners_then_books_past_conflicts_and_the_freeze() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;

    // Two standard changes take Wednesday's and Thursday's windows (no approval needed).
    let first = h
        .ok(
            "dave",
            "change open payments-api Rotate TLS certificates --type standard --duration 3h",
        )
        .await;
    assert!(
        first.starts_with("CHG-1 · scheduled · payments-api/production · Rotate TLS certificates"),
        "{first}"
    );
    assert!(
        first.contains("booked 2026-12-16 22:00–01:00")
            || first.contains("2026-12-16 22:00 CET – 2026-12-17 01:00 CET"),
        "{first}"
    );
    let second = h
        .ok(
            "dave",
            "change open payments-api Bump log level --type standard --duration 2h",
        )
        .await;
    assert!(second.starts_with("CHG-2 · scheduled"), "{second}");
    assert!(
        second.contains("2026-12-17 22:00–00:00") || second.contains("2026-12-17 22:00 CET"),
        "{second}"
    );

    // The high-risk change waits for two CAB members and one owner.
    let opened = h
        .ok(
            "alice",
            "change open payments-api Migrate ledger to new schema --risk high",
        )
        .await;
    assert!(
        opened.starts_with("CHG-3 · authorize · payments-api/production"),
        "{opened}"
    );
    let explain = h.ok("alice", "change explain CHG-3").await;
    assert!(
        explain.contains("needs 2 more approvals from group cab (ask bob, carol, erin)"),
        "{explain}"
    );
    assert!(
        explain.contains("needs 1 more approval from group payments-owners (ask dave)"),
        "{explain}"
    );

    // Self-approval is refused and audited; the change does not move.
    let refusal = h.refused("alice", "change approve CHG-3").await;
    assert!(refusal.contains("no self-approval"), "{refusal}");
    // Someone in no required group cannot approve.
    let refusal = h.refused("frank", "change approve CHG-3 lgtm").await;
    assert!(
        refusal.contains("frank is not in a group CHG-3 needs (cab, payments-owners)"),
        "{refusal}"
    );

    let after_bob = h
        .ok("bob", "change approve CHG-3 reviewed the runbook")
        .await;
    assert!(after_bob.starts_with("CHG-3 · authorize"), "{after_bob}");
    assert!(
        after_bob.contains("needs 1 more approval from group cab"),
        "{after_bob}"
    );
    // One person counts once: a second approval by bob changes nothing.
    let again = h.ok("bob", "change approve CHG-3").await;
    assert!(
        again.contains("needs 1 more approval from group cab"),
        "{again}"
    );

    h.ok("carol", "change approve CHG-3").await;
    let explain = h.ok("alice", "change explain CHG-3").await;
    assert!(
        !explain.contains("group cab"),
        "cab is satisfied now: {explain}"
    );
    assert!(
        explain.contains("needs 1 more approval from group payments-owners (ask dave)"),
        "{explain}"
    );

    // The owner's approval satisfies the policy: booked at the first legal slot, which skips
    // Wednesday (CHG-1), Thursday (CHG-2) and the year-end freeze.
    let booked = h.ok("dave", "change approve CHG-3").await;
    assert!(booked.starts_with("CHG-3 · scheduled"), "{booked}");
    assert!(
        booked.contains("booked 2027-01-04 22:00–22:30 CET"),
        "{booked}"
    );
    let explain = h.ok("alice", "change explain CHG-3").await;
    assert!(
        explain.contains("booked: 2027-01-04 22:00–22:30 CET"),
        "{explain}"
    );
    assert!(explain.contains("conflicts with CHG-1"), "{explain}");
    assert!(explain.contains("conflicts with CHG-2"), "{explain}");
    assert!(explain.contains("freeze year-end"), "{explain}");

    // History shows every step, with actor and time, oldest first.
    let history = h.ok("bob", "change history CHG-3").await;
    let steps: Vec<&str> = history.lines().skip(1).collect();
    let expected = [
        ("alice (console)", "opened"),
        ("alice (console)", "transition: new → assess"),
        (
            "alice (console)",
            "transition: assess → authorize: policy normal-high",
        ),
        (
            "alice (console)",
            "refused: approve: alice requested CHG-3; no self-approval",
        ),
        (
            "frank (console)",
            "refused: approve: frank is not in a group",
        ),
        ("bob (console)", "approved: reviewed the runbook"),
        // bob's second approval changed nothing and is not recorded again.
        ("carol (console)", "approved"),
        ("dave (console)", "approved"),
        ("dave (console)", "transition: authorize → scheduled"),
        ("dave (console)", "booked: 2027-01-04 22:00–22:30 CET"),
    ];
    assert_eq!(steps.len(), expected.len(), "{history}");
    for (line, (actor, what)) in steps.iter().zip(expected) {
        assert!(
            line.contains("2026-12-16 10:00 CET"),
            "time missing in {line}"
        );
        assert!(
            line.contains(actor) && line.contains(what),
            "expected {actor} {what} in {line}"
        );
    }
}

#[tokio::test]
async fn a_rejection_by_a_required_approver_unbooks_until_withdrawn() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    h.ok("alice", "change open payments-api Enable new fraud rules")
        .await;
    let booked = h.ok("dave", "change approve CHG-1").await;
    assert!(booked.starts_with("CHG-1 · scheduled"), "{booked}");

    let rejected = h
        .ok(
            "dave",
            "change reject CHG-1 the rules table is not migrated yet",
        )
        .await;
    assert!(rejected.starts_with("CHG-1 · authorize"), "{rejected}");
    assert!(
        rejected.contains(
            "rejected by dave: the rules table is not migrated yet (lifted when dave approves)"
        ),
        "{rejected}"
    );

    let again = h.ok("dave", "change approve CHG-1 migrated").await;
    assert!(
        again.starts_with("CHG-1 · scheduled"),
        "withdrawn by approving: {again}"
    );
}

#[tokio::test]
async fn standard_change_is_booked_at_once_without_approval() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    let reply = h
        .ok(
            "frank",
            "change open payments-api Restart workers --type standard",
        )
        .await;
    assert!(
        reply.starts_with("CHG-1 · scheduled · payments-api/production"),
        "{reply}"
    );
    assert!(
        reply.contains("policy standard: no approval needed"),
        "{reply}"
    );
    assert!(
        reply.contains("booked 2026-12-16 22:00–22:30 CET"),
        "{reply}"
    );
}

#[tokio::test]
async fn emergency_change_needs_the_emergency_group_and_may_be_booked_inside_a_freeze() {
    // Monday 2026-12-21, inside the year-end freeze.
    let h = Harness::sqlite("2026-12-21T13:00:00Z").await;
    let opened = h
        .ok(
            "alice",
            "change open payments-api Hotfix double charges --type emergency --risk high",
        )
        .await;
    assert!(opened.starts_with("CHG-1 · authorize"), "{opened}");
    assert!(
        opened.contains("needs 1 more approval from group emergency (ask erin)"),
        "{opened}"
    );

    let refusal = h.refused("bob", "change approve CHG-1").await;
    assert!(
        refusal.contains("not in a group CHG-1 needs (emergency)"),
        "{refusal}"
    );

    let booked = h.ok("erin", "change approve CHG-1 go").await;
    assert!(booked.starts_with("CHG-1 · scheduled"), "{booked}");
    assert!(
        booked.contains("booked 2026-12-21 14:00–14:30 CET"),
        "booked for now, inside the freeze: {booked}"
    );

    // It can only be closed with a review, and only after its release.
    let usage = h.refused("alice", "change close CHG-1").await;
    assert!(usage.contains("--review"), "{usage}");
    let early = h
        .refused("alice", "change close CHG-1 --review fixed")
        .await;
    assert!(early.contains("CHG-1 is scheduled"), "{early}");
}

#[tokio::test]
async fn schedule_at_a_frozen_time_is_refused_with_the_reason_and_a_legal_time_is_accepted() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    h.ok("alice", "change open payments-api Tune connection pool")
        .await;
    h.ok("dave", "change approve CHG-1").await;
    let refusal = h
        .refused("alice", "change schedule CHG-1 --at 2026-12-21 22:00")
        .await;
    assert!(refusal.contains("freeze year-end"), "{refusal}");
    let refusal = h
        .refused("alice", "change schedule CHG-1 --at 2026-12-16 12:00")
        .await;
    assert!(refusal.contains("outside every window"), "{refusal}");
    let moved = h
        .ok("alice", "change schedule CHG-1 --at 2026-12-17 23:00")
        .await;
    assert!(
        moved.contains("booked 2026-12-17 23:00–23:30 CET"),
        "{moved}"
    );
}

#[tokio::test]
async fn cancel_is_for_requester_owners_and_approvers_only() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    h.ok("alice", "change open payments-api Drop legacy endpoint")
        .await;
    let refusal = h.refused("frank", "change cancel CHG-1").await;
    assert!(refusal.contains("frank may not cancel CHG-1"), "{refusal}");
    let canceled = h.ok("alice", "change cancel CHG-1 not needed").await;
    assert!(
        canceled.starts_with(
            "CHG-1 · canceled · payments-api/production · Drop legacy endpoint · canceled"
        ),
        "{canceled}"
    );
    let refusal = h.refused("dave", "change approve CHG-1").await;
    assert!(refusal.contains("CHG-1 is canceled"), "{refusal}");
}

#[tokio::test]
async fn freeze_started_from_chat_moves_a_booked_change_to_the_next_legal_slot() {
    let h = Harness::sqlite("2026-11-23T09:00:00Z").await; // Monday
    h.ok("alice", "change open payments-api Reindex --type standard")
        .await;
    let listed = h.ok("bob", "change list --state scheduled").await;
    assert!(listed.contains("2026-11-23 22:00–22:30 CET"), "{listed}");
    let reply = h
        .ok("bob", "freeze start db-migration --until 2026-11-24 12:00 --service payments-api --reason primary failover")
        .await;
    assert!(
        reply.contains("freeze db-migration started on payments-api"),
        "{reply}"
    );
    assert!(
        reply.contains("CHG-1 moved to 2026-11-24 22:00–22:30 CET"),
        "{reply}"
    );
    let freezes = h.ok("bob", "freeze list").await;
    assert!(
        freezes.contains("db-migration (chat, payments-api)"),
        "{freezes}"
    );
    let refusal = h.refused("frank", "freeze end db-migration").await;
    assert!(
        refusal.contains("frank may not end freeze db-migration"),
        "{refusal}"
    );
    h.ok("bob", "freeze end db-migration").await;
    let refusal = h.refused("bob", "freeze end db-migration").await;
    assert!(
        refusal.contains("no freeze `db-migration` is in force"),
        "{refusal}"
    );
}

#[tokio::test]
async fn calendar_shows_windows_freezes_and_booked_changes() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    h.ok("alice", "change open payments-api Reindex --type standard")
        .await;
    let cal = h.ok("alice", "calendar --days 3").await;
    assert!(cal.contains("window weeknights (payments-api)"), "{cal}");
    assert!(
        cal.contains("CHG-1 Reindex payments-api/production"),
        "{cal}"
    );
    assert!(cal.contains("freeze year-end"), "{cal}");
}

#[tokio::test]
async fn state_written_by_one_process_is_read_by_the_next_on_sqlite() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    h.ok("alice", "change open payments-api Persist me --risk high")
        .await;
    h.ok("bob", "change approve CHG-1").await;
    let h = h.restart().await;
    let shown = h.ok("carol", "change show CHG-1").await;
    assert!(
        shown.starts_with("CHG-1 · authorize · payments-api/production · Persist me"),
        "{shown}"
    );
    assert!(shown.contains("cab 1/2 (bob)"), "{shown}");
}

#[tokio::test]
async fn state_written_by_one_process_is_read_by_the_next_on_postgres() {
    let Some(h) = Harness::postgres(WEDNESDAY_MORNING).await else {
        return;
    };
    h.ok("alice", "change open payments-api Persist me --risk high")
        .await;
    h.ok("bob", "change approve CHG-1").await;
    let h = h.restart().await;
    let shown = h.ok("carol", "change show CHG-1").await;
    assert!(
        shown.starts_with("CHG-1 · authorize · payments-api/production · Persist me"),
        "{shown}"
    );
    assert!(shown.contains("cab 1/2 (bob)"), "{shown}");
    let history = h.ok("carol", "change history CHG-1").await;
    assert!(history.contains("bob (console)  approved"), "{history}");
}

#[tokio::test]
async fn unknown_ids_services_and_bad_times_are_clear_errors() {
    let h = Harness::sqlite(WEDNESDAY_MORNING).await;
    assert!(
        h.refused("alice", "change show CHG-99")
            .await
            .contains("there is no change CHG-99")
    );
    assert!(
        h.refused("alice", "change open billing Something")
            .await
            .contains("unknown service `billing`")
    );
    assert!(
        h.refused("alice", "change open payments-api X --env qa")
            .await
            .contains("no environment `qa`")
    );
    assert!(
        h.refused("alice", "change schedule CHG-1 --at tomorrow")
            .await
            .contains("is not a time")
    );
    assert!(
        h.refused("alice", "change open payments-api X --risk extreme")
            .await
            .contains("low, medium, high")
    );
    assert!(
        h.refused("alice", "deploy everything")
            .await
            .contains("unknown command `deploy`")
    );
    assert!(
        h.refused("alice", "change list --colour red")
            .await
            .contains("unknown flag `--colour`")
    );
}
