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

const MERGED: &str = "3333333333333333333333333333333333333333";

/// payments-api/production is deployed by a GitHub Actions workflow gated by changebot.
fn via_actions(text: String) -> String {
    text.replacen(
        "change_duration = \"30m\"\n",
        "change_duration = \"30m\"\n[service.deploy.production]\ngithub_actions = true\ntimeout = \"1h\"\n",
        1,
    )
}

fn merged_pr_body() -> Vec<u8> {
    let mut body: serde_json::Value =
        serde_json::from_slice(&pr_body("closed", "alice-gh", SHA1, true, &["risk:low"]))
            .expect("json");
    body["pull_request"]["merge_commit_sha"] = MERGED.into();
    body.to_string().into_bytes()
}

#[tokio::test]
async fn a_protection_rule_outside_the_window_is_held_then_approved_once_across_a_restart() {
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness_edited(postgres, &gh.url, via_actions)
            .await
            .expect("harness");
        let base = support::serve_http(&h).await;
        let id = |n: &str| format!("{db}-{n}");

        // An approved, merged PR: booked for Monday 22:00 Berlin (21:00 UTC).
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
        send(&h, &base, "pull_request", &id("merge"), merged_pr_body()).await;
        assert_eq!(state_of(&h, 1).await, State::Scheduled, "{db}");

        // The deploy workflow on main asks at 09:00: held, nothing answered.
        send(
            &h,
            &base,
            "deployment_protection_rule",
            &id("p1"),
            protection_body(&gh.url, 77, "production", MERGED, &[]),
        )
        .await;
        assert!(
            gh.gate_answers().is_empty(),
            "{db}: held: {:?}",
            gh.gate_answers()
        );
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(
            history.contains("held") && history.contains("approved when that slot opens"),
            "{db}: {history}"
        );
        // A re-run asks again: still the same change, still held.
        send(
            &h,
            &base,
            "deployment_protection_rule",
            &id("p1-rerun"),
            protection_body(&gh.url, 77, "production", MERGED, &[]),
        )
        .await;
        assert!(gh.gate_answers().is_empty(), "{db}");
        assert_eq!(
            h.app.workflow.store().count_changes().await.expect("count"),
            1,
            "{db}: no duplicate change"
        );

        // changebot restarts; the window opens: the answer goes out, approved, exactly once.
        let h = h.restart().await;
        let base = support::serve_http(&h).await;
        h.set_time("2026-11-23T21:00:00Z");
        for _ in 0..4 {
            h.run_due().await;
        }
        let answers = gh.gate_answers();
        assert_eq!(answers.len(), 1, "{db}: {answers:?}");
        assert_eq!(
            (
                answers[0].state.as_str(),
                answers[0].environment.as_str(),
                answers[0].run_id
            ),
            ("approved", "production", 77),
            "{db}"
        );
        assert!(
            answers[0].comment.contains("/api/changes/CHG-1") && answers[0].comment.len() <= 1024,
            "{db}: {:?}",
            answers[0]
        );
        assert_eq!(
            state_of(&h, 1).await,
            State::Implement,
            "{db}: waiting for the workflow"
        );
        // Another sweep, a redelivered request after the answer: nothing more is sent.
        h.app
            .workflow
            .settle_gates(support::at("2026-11-23T21:01:00Z"))
            .await
            .expect("sweep");
        h.run_due().await;
        assert_eq!(gh.gate_answers().len(), 1, "{db}");

        // The workflow reports: the release is recorded as a success.
        send(
            &h,
            &base,
            "deployment_status",
            &id("d1"),
            deployment_status_body(501, "production", MERGED, "in_progress"),
        )
        .await;
        send(
            &h,
            &base,
            "deployment_status",
            &id("d2"),
            deployment_status_body(501, "production", MERGED, "success"),
        )
        .await;
        assert_eq!(state_of(&h, 1).await, State::Closed, "{db}");
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(
            history.contains("GitHub deployment 501 success"),
            "{db}: {history}"
        );
        assert!(!history.contains("unauthorized"), "{db}: {history}");
    }
}

#[tokio::test]
async fn rejected_changes_unknown_commits_and_foreign_callbacks_are_answered_or_refused() {
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness_edited(postgres, &gh.url, via_actions)
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
            review_body("dave-gh", "changes_requested", SHA1),
        )
        .await;
        // A preview deployment of the PR's head asks: rejected at once, with the reason.
        send(
            &h,
            &base,
            "deployment_protection_rule",
            &id("p1"),
            protection_body(&gh.url, 80, "production", SHA1, &[42]),
        )
        .await;
        let answers = gh.gate_answers();
        assert_eq!(answers.len(), 1, "{db}: {answers:?}");
        assert_eq!(answers[0].state, "rejected", "{db}");
        assert!(
            answers[0].comment.contains("rejected by dave"),
            "{db}: {:?}",
            answers[0]
        );

        // A commit no change covers: rejected, saying so.
        send(
            &h,
            &base,
            "deployment_protection_rule",
            &id("p2"),
            protection_body(&gh.url, 81, "production", SHA2, &[]),
        )
        .await;
        let answers = gh.gate_answers();
        assert_eq!(answers.len(), 2, "{db}: {answers:?}");
        assert!(
            answers[1].state == "rejected" && answers[1].comment.contains("no open change covers"),
            "{db}: {:?}",
            answers[1]
        );

        // A callback URL on another host never gets an answer (nor a token).
        send(
            &h,
            &base,
            "deployment_protection_rule",
            &id("p3"),
            protection_body("https://evil.example", 82, "production", SHA1, &[42]),
        )
        .await;
        assert_eq!(gh.gate_answers().len(), 2, "{db}");
        let refused = h
            .app
            .workflow
            .store()
            .audit_unattached(10)
            .await
            .expect("audit");
        assert!(
            refused.iter().any(|e| e.detail.contains("evil.example")),
            "{db}: {refused:#?}"
        );
    }
}

#[tokio::test]
async fn a_deployment_that_bypassed_the_rule_is_flagged_unauthorized_once() {
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness_edited(postgres, &gh.url, via_actions)
            .await
            .expect("harness");
        let base = support::serve_http(&h).await;
        let id = |n: &str| format!("{db}-{n}");

        // Held (not authorized yet), but an administrator deploys anyway.
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
            "deployment_protection_rule",
            &id("p1"),
            protection_body(&gh.url, 90, "production", SHA1, &[42]),
        )
        .await;
        assert!(gh.gate_answers().is_empty(), "{db}");
        send(
            &h,
            &base,
            "deployment_status",
            &id("d1"),
            deployment_status_body(700, "production", SHA1, "in_progress"),
        )
        .await;
        send(
            &h,
            &base,
            "deployment_status",
            &id("d2"),
            deployment_status_body(700, "production", SHA1, "success"),
        )
        .await;
        let list = h.ok("alice", "change list").await;
        assert!(list.contains("UNAUTHORIZED"), "{db}: {list}");
        let history = h.ok("alice", "change history CHG-1").await;
        assert_eq!(
            history.matches("without changebot's approval").count(),
            1,
            "{db}: flagged once: {history}"
        );
        assert!(
            h.chat()
                .iter()
                .any(|m| m.contains("unauthorized deployment")),
            "{db}: the CAB hears of it: {:?}",
            h.chat()
        );

        // A staging deployment (not gated) is not judged.
        send(
            &h,
            &base,
            "deployment_status",
            &id("d3"),
            deployment_status_body(701, "staging", SHA1, "success"),
        )
        .await;
        let history = h.ok("alice", "change history CHG-1").await;
        assert_eq!(
            history.matches("without changebot's approval").count(),
            1,
            "{db}: {history}"
        );
    }
}

#[tokio::test]
async fn what_happened_on_github_while_changebot_was_down_is_picked_up_by_reconciliation() {
    use support::github::{FakePull, FakeReview};
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness_edited(postgres, &gh.url, via_actions)
            .await
            .expect("harness");
        let base = support::serve_http(&h).await;
        send(
            &h,
            &base,
            "pull_request",
            &format!("{db}-open"),
            pr_body("opened", "alice-gh", SHA1, false, &["risk:low"]),
        )
        .await;
        assert_eq!(state_of(&h, 1).await, State::Authorize, "{db}");

        // While changebot was down: a push, an approval of the new head, the merge.
        gh.set_pull(FakePull {
            repo: "acme/payments".into(),
            number: 42,
            title: "Enable card vault v2".into(),
            author: "alice-gh".into(),
            head_sha: SHA2.into(),
            state: "closed".into(),
            merged: true,
            merge_sha: Some(MERGED.into()),
            labels: vec!["risk:low".into()],
        });
        gh.add_review(FakeReview {
            repo: "acme/payments".into(),
            number: 42,
            login: "dave-gh".into(),
            state: "APPROVED".into(),
            commit: SHA2.into(),
            submitted_at: "2026-11-23T09:30:00Z".into(),
        });
        let reconciler = h
            .app
            .github
            .as_ref()
            .and_then(|g| g.reconciler.clone())
            .expect("a reconciler with GitHub credentials");

        // GitHub rate-limits the first read: the round stops, nothing changes, and it says
        // when to come back.
        let reset = (chrono::Utc::now().timestamp() + 60).to_string();
        gh.fail_next(
            403,
            vec![
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", reset),
            ],
        );
        let err = reconciler
            .run_once(support::at("2026-11-23T10:00:00Z"))
            .await
            .expect_err("rate limited");
        assert!(err.to_string().contains("403"), "{db}: {err}");
        assert_eq!(state_of(&h, 1).await, State::Authorize, "{db}");

        let fixed = reconciler
            .run_once(support::at("2026-11-23T10:00:00Z"))
            .await
            .expect("round");
        assert!(fixed >= 3, "{db}: head, review and merge: {fixed}");
        assert_eq!(
            state_of(&h, 1).await,
            State::Scheduled,
            "{db}: approved and merged"
        );
        let history = h.ok("alice", "change history CHG-1").await;
        for expected in [
            "missed while changebot was not listening: new head 2222222",
            "missed while changebot was not listening: review approved by github:dave-gh",
            "missed while changebot was not listening: pull request merged",
            "dave via github:dave-gh",
        ] {
            assert!(
                history.contains(expected),
                "{db}: `{expected}` in {history}"
            );
        }
        assert!(!history.contains("unauthorized"), "{db}: {history}");

        // A deployment waiting on the protection rule whose request never arrived: the change's
        // slot is tonight, so it is held (stored), and a later round does not ask again.
        gh.add_waiting_run(support::github::FakeWaitingRun {
            repo: "acme/payments".into(),
            id: 555,
            head_sha: MERGED.into(),
            pull_requests: vec![],
            environment: "production".into(),
        });
        let fixed = reconciler
            .run_once(support::at("2026-11-23T10:05:00Z"))
            .await
            .expect("round");
        assert_eq!(
            fixed,
            1,
            "{db}: {:#?} {:#?}",
            h.app.workflow.store().audit_unattached(10).await,
            gh.model
                .lock()
                .map(|m| m.app.requests.clone())
                .unwrap_or_default()
                .iter()
                .map(|c| format!("{} {}?{}", c.method, c.path, c.query))
                .collect::<Vec<_>>()
        );
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(history.contains("held"), "{db}: {history}");

        // A second round finds nothing missed.
        h.run_due().await;
        let again = reconciler
            .run_once(support::at("2026-11-23T10:10:00Z"))
            .await
            .expect("round");
        assert_eq!(
            again,
            0,
            "{db}: {}",
            h.ok("alice", "change history CHG-1").await
        );
    }
}

#[tokio::test]
async fn a_comment_processed_again_after_a_crash_runs_its_commands_once() {
    use changebot::workflow::{Actor, Identity, Surface};
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness(postgres, &gh.url).await.expect("harness");
        let w = &h.app.workflow;
        let alice = Actor::resolve(
            &w.config().org,
            Identity::Github("alice-gh".into()),
            Surface::Github,
        );
        let body =
            "/change open payments-api production \"rotate the vault keys\"\n/change show CHG-1";
        let now = support::at(MONDAY);
        let first = w
            .pull_request_commented(&alice, "acme/payments", 7, body, "delivery-7", now)
            .await
            .expect("first");
        assert!(first[0].contains("CHG-1"), "{db}: {first:?}");
        // The same delivery again (the process died before marking it done).
        let again = w
            .pull_request_commented(&alice, "acme/payments", 7, body, "delivery-7", now)
            .await
            .expect("again");
        assert!(again[0].contains("already done"), "{db}: {again:?}");
        assert_eq!(
            w.store().count_changes().await.expect("count"),
            1,
            "{db}: opened once"
        );
        h.run_due().await;
        let replies = gh
            .comments()
            .into_iter()
            .filter(|c| c.body.contains("@alice-gh"))
            .count();
        assert_eq!(replies, 1, "{db}: one reply: {:#?}", gh.comments());
    }
}

#[tokio::test]
async fn a_missed_pull_request_and_a_missed_dismissal_are_reconciled() {
    use support::github::{FakePull, FakeReview};
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness(postgres, &gh.url).await.expect("harness");
        let pull = FakePull {
            repo: "acme/payments".into(),
            number: 42,
            title: "Enable card vault v2".into(),
            author: "alice-gh".into(),
            head_sha: SHA1.into(),
            state: "open".into(),
            merged: false,
            merge_sha: None,
            labels: vec!["risk:low".into()],
        };
        gh.set_pull(pull);
        let review = |state: &str, at: &str| FakeReview {
            repo: "acme/payments".into(),
            number: 42,
            login: "dave-gh".into(),
            state: state.into(),
            commit: SHA1.into(),
            submitted_at: at.into(),
        };
        gh.add_review(review("APPROVED", "2026-11-23T08:30:00Z"));
        let reconciler = h
            .app
            .github
            .as_ref()
            .and_then(|g| g.reconciler.clone())
            .expect("reconciler");
        // The PR was opened and approved while changebot was down: both are picked up.
        reconciler
            .run_once(support::at(MONDAY))
            .await
            .expect("round");
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(history.contains("reconciled: missed while changebot was not listening: pull request acme/payments#42 opened"), "{db}: {history}");
        assert!(
            history.contains("dave via github:dave-gh"),
            "{db}: {history}"
        );
        let explain = h.ok("alice", "change explain CHG-1").await;
        assert!(
            !explain.contains("needs 1 more approval"),
            "{db}: {explain}"
        );

        // The review is dismissed (GitHub keeps its original time): the approval is withdrawn.
        gh.add_review(review("DISMISSED", "2026-11-23T08:30:00Z"));
        let fixed = reconciler
            .run_once(support::at("2026-11-23T09:10:00Z"))
            .await
            .expect("round");
        assert_eq!(fixed, 1, "{db}");
        let explain = h.ok("alice", "change explain CHG-1").await;
        assert!(explain.contains("needs 1 more approval"), "{db}: {explain}");
        // And nothing more on the next round.
        let again = reconciler
            .run_once(support::at("2026-11-23T09:20:00Z"))
            .await
            .expect("round");
        assert_eq!(again, 0, "{db}");
    }
}

#[tokio::test]
async fn a_run_for_a_superseded_commit_is_rejected_and_a_replayed_request_answers_once() {
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness_edited(postgres, &gh.url, via_actions)
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
        // A run of the first commit asks: held (not merged yet).
        send(
            &h,
            &base,
            "deployment_protection_rule",
            &id("p1"),
            protection_body(&gh.url, 61, "production", SHA1, &[42]),
        )
        .await;
        assert!(gh.gate_answers().is_empty(), "{db}");
        // A push (new round), approved again, merged.
        send(
            &h,
            &base,
            "pull_request",
            &id("push"),
            pr_body("synchronize", "alice-gh", SHA2, false, &["risk:low"]),
        )
        .await;
        send(
            &h,
            &base,
            "pull_request_review",
            &id("r2"),
            review_body("dave-gh", "approved", SHA2),
        )
        .await;
        send(
            &h,
            &base,
            "pull_request",
            &id("merge"),
            pr_body("closed", "alice-gh", SHA2, true, &["risk:low"]),
        )
        .await;
        assert_eq!(state_of(&h, 1).await, State::Scheduled, "{db}");
        // The slot opens: the old run is rejected as superseded, never approved.
        h.set_time("2026-11-23T21:00:00Z");
        for _ in 0..3 {
            h.run_due().await;
        }
        let answers = gh.gate_answers();
        assert_eq!(answers.len(), 1, "{db}: {answers:?}");
        assert_eq!(answers[0].state, "rejected", "{db}");
        assert!(
            answers[0].comment.contains("superseded"),
            "{db}: {:?}",
            answers[0]
        );

        // The same request processed again (a crash before the delivery was marked done):
        // nothing is sent again.
        let facts: serde_json::Value =
            serde_json::from_slice(&protection_body(&gh.url, 61, "production", SHA1, &[42]))
                .expect("json");
        let request = changebot::workflow::ProtectionFacts {
            repository: "acme/payments".into(),
            environment: "production".into(),
            sha: SHA1.into(),
            callback_url: facts["deployment_callback_url"]
                .as_str()
                .unwrap_or_default()
                .into(),
            pull_requests: vec![42],
            installation_id: None,
        };
        h.app
            .workflow
            .protection_requested(
                &request,
                support::at(MONDAY),
                false,
                support::at("2026-11-23T21:01:00Z"),
            )
            .await
            .expect("replay");
        h.run_due().await;
        assert_eq!(gh.gate_answers().len(), 1, "{db}: {:?}", gh.gate_answers());
    }
}
