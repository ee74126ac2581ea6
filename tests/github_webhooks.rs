//! GitHub webhooks (issue 8): the receiver's answers, the durable inbox, and pull requests
//! becoming change records, with replies written through the real octocrab client to a fake
//! GitHub API.

mod support;

use std::path::Path;

use changebot::domain::{ChangeId, State};
use support::Harness;
use support::github::{FakeGithub, signed_headers};
use support::hooks::*;

#[test]
fn githubs_documented_test_vector_verifies() {
    let secret = b"It's a Secret to Everybody";
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert!(changebot::deploy::signature::verify(
        secret,
        b"Hello, World!",
        Some(sig)
    ));
    assert!(!changebot::deploy::signature::verify(
        secret,
        b"Hello, World?",
        Some(sig)
    ));
}

#[tokio::test]
async fn every_octokit_example_is_acknowledged_and_processed_without_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/github");
    if !root.is_dir() {
        eprintln!(
            "SKIPPED: {} is absent, so the GitHub payload conformance test ran nothing",
            root.display()
        );
        return;
    }
    let gh = FakeGithub::start().await;
    let h = harness(false, &gh.url).await.expect("harness");
    let base = support::serve_http(&h).await;
    let mut ran = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures")
        .flatten()
        .collect();
    dirs.sort_by_key(|d| d.path());
    for dir in dirs.into_iter().filter(|d| d.path().is_dir()) {
        let event = dir.file_name().to_string_lossy().to_string();
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .collect();
        files.sort_by_key(|f| f.path());
        for file in files {
            let body = std::fs::read(file.path()).expect("read");
            let delivery = format!("fixture-{ran}");
            let (status, text) = deliver(&base, &event, &delivery, &body).await;
            assert!(
                (200..300).contains(&status),
                "{event}/{}: {status} {text}",
                file.file_name().to_string_lossy()
            );
            ran += 1;
        }
    }
    h.run_due().await;
    h.run_due().await;
    println!(
        "posted {ran} octokit webhook examples from {}",
        root.display()
    );
    assert!(ran > 50, "expected the octokit examples, ran {ran}");
    // The examples' PR on Codertocat/Hello-World became a change.
    let list = h.ok("alice", "change list").await;
    assert!(list.contains("CHG-1"), "{list}");
}

#[tokio::test]
async fn bad_deliveries_get_the_right_answer_and_change_nothing() {
    let gh = FakeGithub::start().await;
    let h = harness(false, &gh.url).await.expect("harness");
    let base = support::serve_http(&h).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/webhooks/github");
    let body = pr_body("opened", "alice-gh", SHA1, false, &[]);

    let unsigned = http
        .post(&url)
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", "d-1")
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(unsigned.status(), 401);
    let mut wrong = signed_headers("not-the-secret", "pull_request", "d-1", &body);
    wrong.remove("content-type");
    let res = http
        .post(&url)
        .headers(wrong)
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 401);
    let mut headless = signed_headers(SECRET, "pull_request", "d-1", &body);
    headless.remove("x-github-delivery");
    let res = http
        .post(&url)
        .headers(headless)
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    let (status, _) = deliver(&base, "pull_request", "d-2", b"{\"action\": \"opened\", ").await;
    assert_eq!(status, 400, "malformed JSON of a used event");
    let (status, text) = deliver(&base, "star", "d-3", b"{\"action\":\"created\"}").await;
    assert_eq!(status, 202, "unused events are acknowledged: {text}");
    assert!(text.contains("ignored"));
    let big = vec![b' '; 26 * 1024 * 1024];
    let (status, _) = deliver(&base, "pull_request", "d-4", &big).await;
    assert_eq!(status, 413);

    h.run_due().await;
    let list = h.ok("alice", "change list").await;
    assert!(!list.contains("CHG-1"), "nothing was opened: {list}");
}

#[tokio::test]
async fn without_a_secret_the_webhook_answers_503() {
    let h = Harness::sqlite_with_config(
        |text| format!("{text}\n[github]\nwebhook_secret_env = \"CHANGEBOT_TEST_UNSET_SECRET\"\n"),
        MONDAY,
    )
    .await;
    let base = support::serve_http(&h).await;
    let (status, text) = deliver(&base, "ping", "d-1", b"{}").await;
    assert_eq!(status, 503, "{text}");
}

#[tokio::test]
async fn a_redelivery_is_acknowledged_and_processed_once() {
    let gh = FakeGithub::start().await;
    let h = harness(false, &gh.url).await.expect("harness");
    let base = support::serve_http(&h).await;
    let body = pr_body("opened", "alice-gh", SHA1, false, &[]);
    let (status, first) = deliver(&base, "pull_request", "same-id", &body).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = deliver(&base, "pull_request", "same-id", &body).await;
    assert_eq!(status, 202);
    assert!(again.contains("\"duplicate\":true"), "{again}");
    h.run_due().await;
    h.run_due().await;
    let list = h.ok("alice", "change list").await;
    assert!(list.contains("CHG-1") && !list.contains("CHG-2"), "{list}");
}

#[tokio::test]
async fn a_pull_request_is_a_change_whose_approvals_gate_and_audit_follow_the_pr() {
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness(postgres, &gh.url).await.expect("harness");
        let base = support::serve_http(&h).await;
        let mut n = 0;
        let mut send = async |event: &str, body: Vec<u8>| {
            n += 1;
            let (status, text) = deliver(&base, event, &format!("{db}-{n}"), &body).await;
            assert!(
                (200..300).contains(&status),
                "{db}: {event}: {status} {text}"
            );
            h.run_due().await;
            h.run_due().await;
        };

        // Opened by alice (alice-gh): a change, a sticky comment and a pending status.
        send(
            "pull_request",
            pr_body("opened", "alice-gh", SHA1, false, &["risk:low"]),
        )
        .await;
        let shown = h.ok("alice", "change show CHG-1").await;
        assert!(
            shown.contains("authorize") && shown.contains("low"),
            "{db}: {shown}"
        );
        let comments = gh.comments();
        assert_eq!(comments.len(), 1, "{db}: one sticky comment: {comments:#?}");
        assert!(comments[0].body.contains("CHG-1"), "{db}");
        let last = gh.statuses().last().cloned().expect("a status");
        assert_eq!(
            (last.state.as_str(), last.context.as_str()),
            ("pending", "changebot/change")
        );
        assert_eq!(last.sha, SHA1);

        // A review by `carol` (a person's name, but not her login carol-gh) does not count.
        send("pull_request_review", review_body("dave", "approved", SHA1)).await;
        let explain = h.ok("alice", "change explain CHG-1").await;
        assert!(
            explain.contains("payments-owners"),
            "{db}: still waiting: {explain}"
        );

        // dave-gh approves: authorized, the status turns green, the same comment is edited.
        send(
            "pull_request_review",
            review_body("dave-gh", "approved", SHA1),
        )
        .await;
        let last = gh.statuses().last().cloned().expect("a status");
        assert_eq!(last.state, "success", "{db}: {last:?}");
        assert_eq!(gh.comments().len(), 1, "{db}: still one comment");
        assert!(gh.comments()[0].edits >= 1, "{db}");

        // A push starts a new approval round: pending again.
        send(
            "pull_request",
            pr_body("synchronize", "alice-gh", SHA2, false, &["risk:low"]),
        )
        .await;
        let last = gh.statuses().last().cloned().expect("a status");
        assert_eq!(
            (last.state.as_str(), last.sha.as_str()),
            ("pending", SHA2),
            "{db}"
        );

        // `/change approve` in a comment by someone outside the groups is refused with a reply.
        send(
            "issue_comment",
            comment_body("carol-gh", "/change approve lgtm"),
        )
        .await;
        let replies: Vec<_> = gh
            .comments()
            .into_iter()
            .filter(|c| c.body.contains("@carol-gh"))
            .collect();
        assert_eq!(replies.len(), 1, "{db}: {:#?}", gh.comments());
        assert!(
            replies[0].body.contains("carol is not in a group"),
            "{db}: {}",
            replies[0].body
        );

        // Approved again on the new head, then merged: booked like any approved change.
        send(
            "pull_request_review",
            review_body("dave-gh", "approved", SHA2),
        )
        .await;
        send(
            "pull_request",
            pr_body("closed", "alice-gh", SHA2, true, &["risk:low"]),
        )
        .await;
        let change = h
            .app
            .workflow
            .store()
            .change(ChangeId(1))
            .await
            .expect("read")
            .expect("CHG-1");
        assert_eq!(change.state, State::Scheduled, "{db}");
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(
            history.contains("dave via github:dave-gh"),
            "{db}: {history}"
        );
        assert!(
            history.contains("approval round 1 starts"),
            "{db}: {history}"
        );
    }
}

#[tokio::test]
async fn a_merge_without_an_authorized_change_is_flagged_and_closing_unmerged_cancels() {
    let gh = FakeGithub::start().await;
    let h = harness(false, &gh.url).await.expect("harness");
    let base = support::serve_http(&h).await;
    deliver(
        &base,
        "pull_request",
        "u-1",
        &pr_body("opened", "alice-gh", SHA1, false, &[]),
    )
    .await;
    h.run_due().await;
    deliver(
        &base,
        "pull_request",
        "u-2",
        &pr_body("closed", "alice-gh", SHA1, true, &[]),
    )
    .await;
    h.run_due().await;
    h.run_due().await;
    let history = h.ok("alice", "change history CHG-1").await;
    assert!(history.contains("unauthorized"), "{history}");
    let list = h.ok("alice", "change list").await;
    assert!(
        list.lines()
            .any(|l| l.starts_with("CHG-1 ") && l.contains("UNAUTHORIZED")),
        "{list}"
    );
    let cab: Vec<_> = h
        .sink
        .messages()
        .into_iter()
        .filter(|(c, _)| c == "cab")
        .collect();
    assert_eq!(cab.len(), 1, "{cab:?}");
    assert!(cab[0].1.contains("unauthorized change"), "{}", cab[0].1);

    let mut other = pr_body("opened", "alice-gh", SHA1, false, &[]);
    other = String::from_utf8(other)
        .expect("utf8")
        .replace("42", "43")
        .into_bytes();
    deliver(&base, "pull_request", "u-3", &other).await;
    h.run_due().await;
    let closed = String::from_utf8(pr_body("closed", "alice-gh", SHA1, false, &[]))
        .expect("utf8")
        .replace("42", "43");
    deliver(&base, "pull_request", "u-4", closed.as_bytes()).await;
    h.run_due().await;
    let shown = h.ok("alice", "change show CHG-2").await;
    assert!(shown.contains("canceled"), "{shown}");

    // A merge of a PR changebot never saw as a change is recorded and flagged too.
    let unseen = String::from_utf8(pr_body("closed", "alice-gh", SHA1, true, &[]))
        .expect("utf8")
        .replace("42", "44");
    deliver(&base, "pull_request", "u-5", unseen.as_bytes()).await;
    h.run_due().await;
    let history = h.ok("alice", "change history CHG-3").await;
    assert!(history.contains("unauthorized"), "{history}");
}

#[tokio::test]
async fn a_merge_delivered_after_backfill_imported_the_pr_changes_nothing() {
    use changebot::workflow::{Imported, ImportedPull, PullRequestFacts};
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness(postgres, &gh.url).await.expect("harness");
        let base = support::serve_http(&h).await;
        let merged_at = changebot::clock::Clock::now(&h.clock) - chrono::Duration::hours(2);
        let pull = ImportedPull {
            pr: PullRequestFacts {
                repository: "acme/payments".into(),
                author: Some("alice-gh".into()),
                number: 42,
                title: "Enable card vault v2".into(),
                head_sha: SHA1.into(),
                draft: false,
                merged: true,
                labels: vec![],
                merge_sha: Some(SHA2.into()),
            },
            opened_at: merged_at - chrono::Duration::hours(1),
            merged_at,
            first_commit_at: None,
            deployments: vec![],
            deploying: vec![],
        };
        let imported = h.app.workflow.import_pull(&pull).await.expect("import");
        assert!(
            matches!(imported, Imported::Change { id, .. } if id == ChangeId(1)),
            "{imported:?}"
        );
        // The merge's delivery comes late (a backlog, a redelivery): the PR's closed change
        // already records the merge, so nothing new is opened or flagged.
        let merged = pr_body("closed", "alice-gh", SHA1, true, &[]);
        for delivery in ["late-1", "late-2"] {
            deliver(&base, "pull_request", delivery, &merged).await;
            h.run_due().await;
        }
        h.run_due().await;
        let latest = h
            .app
            .workflow
            .store()
            .any_change_for_pr("acme/payments", 42);
        assert_eq!(latest.await.expect("lookup"), Some(ChangeId(1)), "{db}");
        let history = h.ok("alice", "change history CHG-1").await;
        assert!(!history.contains("unauthorized"), "{db}: {history}");
        let shown = h.ok("alice", "change show CHG-1").await;
        assert!(shown.contains("closed"), "{db}: {shown}");
        assert!(
            !h.sink.messages().iter().any(|(c, _)| c == "cab"),
            "{:?}",
            h.sink.messages()
        );
    }
}

#[tokio::test]
async fn replies_survive_github_errors_and_rate_limits_and_are_written_once() {
    let gh = FakeGithub::start().await;
    let h = harness(false, &gh.url).await.expect("harness");
    let base = support::serve_http(&h).await;
    // GitHub is down for longer than octocrab's own retries.
    for _ in 0..20 {
        gh.fail_next(502, vec![]);
    }
    deliver(
        &base,
        "pull_request",
        "f-1",
        &pr_body("opened", "alice-gh", SHA1, false, &[]),
    )
    .await;
    h.run_due().await;
    assert!(gh.comments().is_empty(), "the first try failed");
    gh.clear_failures();
    h.set_time("2026-11-23T09:05:00Z");
    h.run_due().await;
    assert_eq!(gh.comments().len(), 1, "written once after the retry");

    // A rate limit with a reset: nothing is retried before it.
    // The reset is an instant on GitHub's (the real) clock, two minutes ahead.
    let reset = chrono::Utc::now().timestamp() + 120;
    gh.fail_next(
        403,
        vec![
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", reset.to_string()),
        ],
    );
    deliver(
        &base,
        "pull_request_review",
        "f-2",
        &review_body("dave-gh", "approved", SHA1),
    )
    .await;
    h.run_due().await;
    assert_eq!(gh.comments()[0].edits, 0, "refused by the rate limit");
    h.set_time("2026-11-23T09:06:00Z");
    h.run_due().await;
    assert_eq!(gh.comments()[0].edits, 0, "not before the reset");
    h.set_time("2026-11-23T09:07:30Z");
    h.run_due().await;
    assert_eq!(gh.comments()[0].edits, 1, "edited once after the reset");
    assert_eq!(gh.comments().len(), 1);
    assert_eq!(
        gh.statuses().last().map(|s| s.state.clone()).as_deref(),
        Some("success")
    );
}

#[tokio::test]
async fn the_pr_author_is_the_requester_whoever_sends_the_event_and_bots_and_other_repos_are_not_heard()
 {
    let gh = FakeGithub::start().await;
    let h = harness(false, &gh.url).await.expect("harness");
    let base = support::serve_http(&h).await;
    // dave marks alice's PR ready for review: alice requested it, so dave may approve.
    let body = String::from_utf8(pr_body("ready_for_review", "dave-gh", SHA1, false, &[]))
        .expect("utf8")
        .replace(
            "\"user\":{\"login\":\"dave-gh\"}",
            "\"user\":{\"login\":\"alice-gh\"}",
        );
    deliver(&base, "pull_request", "a-1", body.as_bytes()).await;
    h.run_due().await;
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(shown.contains("requested by alice"), "{shown}");
    deliver(
        &base,
        "pull_request_review",
        "a-2",
        &review_body("dave-gh", "approved", SHA1),
    )
    .await;
    h.run_due().await;
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(
        shown.contains("scheduled") || shown.contains("authorize"),
        "{shown}"
    );
    let history = h.ok("alice", "change history CHG-1").await;
    assert!(history.contains("approved"), "{history}");

    // A bot's comment and a comment in a repository no service owns run nothing.
    let bot = String::from_utf8(comment_body("changebot[bot]", "/change cancel CHG-1 bye"))
        .expect("utf8");
    deliver(&base, "issue_comment", "a-3", bot.as_bytes()).await;
    let elsewhere = String::from_utf8(comment_body("alice-gh", "/change cancel CHG-1 bye"))
        .expect("utf8")
        .replace("acme/payments", "someone/else");
    deliver(&base, "issue_comment", "a-4", elsewhere.as_bytes()).await;
    h.run_due().await;
    let shown = h.ok("alice", "change show CHG-1").await;
    assert!(!shown.contains("canceled"), "{shown}");
}
