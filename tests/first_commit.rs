//! GitHub reconciliation fills in when a live pull request's first commit was authored (change
//! lead time starts there), best effort: a failure to read the commits is retried next round
//! and holds up nothing else; on SQLite and PostgreSQL.

mod support;

use changebot::domain::{ChangeId, Risk};
use changebot::workflow::{Actor, Identity, PullRequestFacts, Surface};
use support::github::{FakeCommit, FakeGithub, FakePull};
use support::hooks::{SHA1, backends, harness};

const REPO: &str = "acme/payments";

#[tokio::test]
async fn reconciliation_fills_in_a_live_pull_requests_first_commit_best_effort() {
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        let h = harness(postgres, &gh.url).await.expect("harness");
        let w = &h.app.workflow;
        let alice = Actor::resolve(
            &w.config().org,
            Identity::Github("alice-gh".into()),
            Surface::Github,
        );
        let facts = PullRequestFacts {
            repository: REPO.into(),
            author: Some("alice-gh".into()),
            number: 42,
            title: "Enable card vault v2".into(),
            head_sha: SHA1.into(),
            draft: false,
            merged: false,
            labels: vec![],
            merge_sha: None,
        };
        let now = support::at("2026-11-23T09:00:00Z");
        let id = w
            .pull_request_opened(&alice, &facts, now)
            .await
            .expect("opened")
            .expect("a change");
        let first = support::at("2026-11-20T14:00:00Z");
        for at in ["2026-11-21T08:00:00Z", "2026-11-20T14:00:00Z"] {
            gh.add_commit(FakeCommit {
                repo: REPO.into(),
                number: 42,
                sha: format!("c{at}"),
                authored_at: at.into(),
            });
        }
        // Meanwhile on GitHub the PR got a `risk:high` label.
        gh.set_pull(FakePull {
            repo: REPO.into(),
            number: 42,
            title: "Enable card vault v2".into(),
            author: "alice-gh".into(),
            head_sha: SHA1.into(),
            state: "open".into(),
            merged: false,
            merge_sha: None,
            labels: vec!["risk:high".into()],
        });
        let reconciler = h
            .app
            .github
            .as_ref()
            .and_then(|g| g.reconciler.clone())
            .expect("reconciler");
        let read = |id: ChangeId| async move {
            w.store().change(id).await.expect("read").expect("change")
        };

        // The commits cannot be read: the round still applies the label, and goes on.
        gh.fail_commits(true);
        let fixed = reconciler
            .run_once(support::at("2026-11-23T09:10:00Z"))
            .await
            .expect("round");
        assert!(fixed >= 1, "{db}: {fixed}");
        let change = read(id).await;
        assert_eq!(
            (change.risk, change.first_commit_at),
            (Risk::High, None),
            "{db}"
        );

        // Next round it is filled in, without an audit entry.
        gh.fail_commits(false);
        let entries = w.store().audit(id).await.expect("audit").len();
        reconciler
            .run_once(support::at("2026-11-23T09:20:00Z"))
            .await
            .expect("round");
        assert_eq!(read(id).await.first_commit_at, Some(first), "{db}");
        assert_eq!(
            w.store().audit(id).await.expect("audit").len(),
            entries,
            "{db}"
        );

        // Once known, it is not asked for again.
        let commit_calls = || {
            gh.requests()
                .iter()
                .filter(|r| r.path.ends_with("/commits"))
                .count()
        };
        let before = commit_calls();
        reconciler
            .run_once(support::at("2026-11-23T09:30:00Z"))
            .await
            .expect("round");
        assert_eq!(commit_calls(), before, "{db}");
        assert_eq!(read(id).await.first_commit_at, Some(first), "{db}");
    }
}
