//! GitHub gates beyond approvals (issue 8): CI evidence required by a policy, deployment
//! protection rules, deployment statuses and reconciliation, through the real router with the
//! real octocrab client against a fake GitHub.

mod support;

use changebot::domain::{ChangeId, State};
use support::Harness;
use support::github::FakeGithub;
use support::hooks::*;

/// The standard policy needs green `build` and `test` and no approvals; normal changes also
/// need a green `build`.
fn with_checks(text: String) -> String {
    text.replace(
        "name = \"standard\"\nwhen = { type = \"standard\" }\nrequire = []\n",
        "name = \"standard\"\nwhen = { type = \"standard\" }\nrequire = []\nchecks = [\"build\", \"test\"]\n",
    )
    .replace(
        "name = \"normal\"\nwhen = { type = \"normal\" }\nrequire = [{ group = \"owners\", count = 1 }]\n",
        "name = \"normal\"\nwhen = { type = \"normal\" }\nrequire = [{ group = \"owners\", count = 1 }]\nchecks = [\"build\"]\n",
    )
}

async fn state_of(h: &Harness, id: i64) -> State {
    h.app
        .workflow
        .store()
        .change(ChangeId(id))
        .await
        .expect("read")
        .expect("change")
        .state
}

#[tokio::test]
async fn a_standard_change_is_authorized_by_green_ci_alone_and_a_push_resets_the_checks() {
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness_edited(postgres, &gh.url, with_checks)
            .await
            .expect("harness");
        let base = support::serve_http(&h).await;
        let id = |n: &str| format!("{db}-{n}");

        send(
            &h,
            &base,
            "pull_request",
            &id("open"),
            pr_body("opened", "alice-gh", SHA1, false, &["change:standard"]),
        )
        .await;
        let last = gh.statuses().last().cloned().expect("a status");
        assert_eq!(last.state, "pending", "{db}: {last:?}");
        assert!(
            last.description.contains("build (not reported)")
                && last.description.contains("test (not reported)"),
            "{db}: the status says which checks are missing: {last:?}"
        );

        // build goes red: explain says so, the gate stays pending.
        send(
            &h,
            &base,
            "check_run",
            &id("b1"),
            check_run_body(
                "build",
                SHA1,
                "completed",
                Some("failure"),
                "2026-11-23T09:01:00Z",
            ),
        )
        .await;
        let explain = h.ok("alice", "change explain CHG-1").await;
        assert!(
            explain.contains("needs check build green on 1111111: it failed (failure)")
                && explain.contains("needs check test green on 1111111: not reported yet"),
            "{db}: {explain}"
        );

        // A late, older "in progress" report never overwrites the newer result.
        send(
            &h,
            &base,
            "check_run",
            &id("b0"),
            check_run_body("build", SHA1, "in_progress", None, "2026-11-23T09:00:30Z"),
        )
        .await;
        let explain = h.ok("alice", "change explain CHG-1").await;
        assert!(explain.contains("it failed (failure)"), "{db}: {explain}");

        // Re-run green, and the `test` commit status green: authorized by CI alone.
        send(
            &h,
            &base,
            "check_run",
            &id("b2"),
            check_run_body(
                "build",
                SHA1,
                "completed",
                Some("success"),
                "2026-11-23T09:05:00Z",
            ),
        )
        .await;
        let last = gh.statuses().last().cloned().expect("a status");
        assert_eq!(
            last.state, "pending",
            "{db}: test is still missing: {last:?}"
        );
        send(
            &h,
            &base,
            "status",
            &id("t1"),
            status_body("test", SHA1, "success", "2026-11-23T09:06:00Z"),
        )
        .await;
        let last = gh.statuses().last().cloned().expect("a status");
        assert_eq!(
            (last.state.as_str(), last.sha.as_str()),
            ("success", SHA1),
            "{db}: {last:?}"
        );
        let explain = h.ok("alice", "change explain CHG-1").await;
        assert!(!explain.contains("needs check"), "{db}: {explain}");
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(
            history.contains("check test passed (success) on 1111111"),
            "{db}: {history}"
        );

        // A push: the new head has no reports, so the gate is pending again.
        send(
            &h,
            &base,
            "pull_request",
            &id("push"),
            pr_body("synchronize", "alice-gh", SHA2, false, &["change:standard"]),
        )
        .await;
        let last = gh.statuses().last().cloned().expect("a status");
        assert_eq!(
            (last.state.as_str(), last.sha.as_str()),
            ("pending", SHA2),
            "{db}: {last:?}"
        );
        let explain = h.ok("alice", "change explain CHG-1").await;
        assert!(
            explain.contains("needs check build green on 2222222: not reported yet"),
            "{db}: {explain}"
        );

        // Green on the new head, then merged: booked.
        send(
            &h,
            &base,
            "check_run",
            &id("b3"),
            check_run_body(
                "build",
                SHA2,
                "completed",
                Some("success"),
                "2026-11-23T09:10:00Z",
            ),
        )
        .await;
        send(
            &h,
            &base,
            "check_run",
            &id("t3"),
            check_run_body(
                "test",
                SHA2,
                "completed",
                Some("skipped"),
                "2026-11-23T09:10:00Z",
            ),
        )
        .await;
        send(
            &h,
            &base,
            "pull_request",
            &id("merge"),
            pr_body("closed", "alice-gh", SHA2, true, &["change:standard"]),
        )
        .await;
        assert_eq!(state_of(&h, 1).await, State::Scheduled, "{db}");
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(
            !history.contains("unauthorized"),
            "{db}: merged after green CI: {history}"
        );
    }
}

#[tokio::test]
async fn approvals_and_checks_are_both_needed_and_a_chat_change_says_it_has_no_ci() {
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness_edited(postgres, &gh.url, with_checks)
            .await
            .expect("harness");
        let base = support::serve_http(&h).await;
        let id = |n: &str| format!("{db}-{n}");

        send(
            &h,
            &base,
            "pull_request",
            &id("open"),
            pr_body("opened", "alice-gh", SHA1, false, &["risk:low"]),
        )
        .await;
        send(
            &h,
            &base,
            "pull_request_review",
            &id("r1"),
            review_body("dave-gh", "approved", SHA1),
        )
        .await;
        let last = gh.statuses().last().cloned().expect("a status");
        assert_eq!(
            last.state, "pending",
            "{db}: approved but build is missing: {last:?}"
        );
        assert!(
            last.description.contains("checks: build (not reported)"),
            "{db}: {last:?}"
        );
        send(
            &h,
            &base,
            "check_run",
            &id("b1"),
            check_run_body(
                "build",
                SHA1,
                "completed",
                Some("success"),
                "2026-11-23T09:01:00Z",
            ),
        )
        .await;
        let last = gh.statuses().last().cloned().expect("a status");
        assert_eq!(last.state, "success", "{db}: {last:?}");

        // A check the policy does not name changes nothing about the change.
        let before = h.ok("alice", "change history CHG-1").await;
        send(
            &h,
            &base,
            "check_run",
            &id("lint"),
            check_run_body(
                "lint",
                SHA1,
                "completed",
                Some("failure"),
                "2026-11-23T09:02:00Z",
            ),
        )
        .await;
        assert_eq!(h.ok("alice", "change history CHG-1").await, before, "{db}");

        // A normal change opened from chat has no CI to report on: explain says so.
        h.ok(
            "alice",
            "change open payments-api production \"rotate keys\" --risk low",
        )
        .await;
        let explain = h.ok("alice", "change explain CHG-2").await;
        assert!(
            explain.contains("needs check build green, but the change has no pull request"),
            "{db}: {explain}"
        );
    }
}
