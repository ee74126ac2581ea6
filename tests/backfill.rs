//! `changebot backfill` (issue 10): the real binary imports a repository's merged pull requests
//! and their deployments from a fake GitHub as closed changes, with their real times and the
//! first commit's time, and a second run adds nothing; on SQLite and PostgreSQL.
//! (Reconciliation filling in a live PR's first commit: tests/first_commit.rs.)

mod support;

use chrono::{DateTime, Duration, SubsecRound, Utc};

use changebot::domain::release::DeploymentStatus;
use changebot::domain::{CloseCode, Risk, Source, State};
use changebot::store::Store;
use support::backfill::*;
use support::github::FakeGithub;
use support::hooks::backends;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_pull_requests_become_closed_changes_with_their_deployments_once() {
    for (db, postgres) in backends().await {
        let gh = FakeGithub::start().await;
        gh.set_page_cap(2);
        let history = History {
            now: Utc::now().trunc_subsecs(0),
        };
        history.seed(&gh);
        let dir = tempfile::tempdir().expect("tempdir");
        let url = database(postgres, dir.path()).await;
        let config = write_config(dir.path(), &url, Some(&gh.url));

        let first = backfill(&config, &["--repo", REPO, "--days", "90"]).await;
        assert_eq!(
            first.status.code(),
            Some(0),
            "{db}: {}{}",
            out(&first),
            err(&first)
        );
        let summary = out(&first);
        for expected in [
            "backfill acme/payments (last 90 days): 4 imported, 0 already known",
            "4 deployments imported",
            "1 change imported without a deployment",
            "skipped 1 deployment to environments the service does not list: qa (1)",
            "skipped 1 deployment to other environments than their change's (each change is \
             filed under the production-most environment its pull request reached): staging (1)",
            "skipped 1 deployment without a final status",
            "1 pull request still deploying; run backfill again later",
        ] {
            assert!(
                summary.contains(expected),
                "{db}: `{expected}` in {summary}"
            );
        }
        // Not a terminal: plain progress lines on stderr, oldest merge first.
        let progress = err(&first);
        for expected in [
            "backfill: 5 pull requests of acme/payments merged in the last 90 days",
            "backfill: 1/5 acme/payments#11 imported as CHG-1 (2 deployments)",
            "backfill: 2/5 acme/payments#12 imported as CHG-2 (1 deployment)",
            "backfill: 3/5 acme/payments#15 imported as CHG-3 (1 deployment)",
            "backfill: 4/5 acme/payments#16 imported as CHG-4 (no deployment)",
            "backfill: 5/5 acme/payments#13 still deploying to production; not imported yet",
        ] {
            assert!(
                progress.contains(expected),
                "{db}: `{expected}` in {progress}"
            );
        }
        // Paging stopped at the first page older than the period (page 4 of 5).
        let pages: Vec<String> = gh
            .requests()
            .into_iter()
            .filter(|r| r.path == "/repos/acme/payments/pulls" && r.query.contains("state=closed"))
            .map(|r| r.query)
            .collect();
        assert_eq!(pages.len(), 4, "{db}: {pages:?}");

        let store = Store::connect(&url).await.expect("store");
        let (changes, deployments, audit) = recorded(&store).await;
        assert_eq!(changes.len(), 4, "{db}: {changes:#?}");
        assert_eq!(deployments, 4, "{db}");
        for c in &changes {
            assert_eq!(
                (c.state, c.source),
                (State::Closed, Source::Github),
                "{db}: {c:?}"
            );
            assert!(
                c.pull_request.as_ref().is_some_and(|p| p.merged),
                "{db}: {c:?}"
            );
        }
        let numbers: Vec<i64> = changes
            .iter()
            .filter_map(|c| c.pull_request.as_ref().map(|p| p.number))
            .collect();
        assert_eq!(numbers, vec![11, 12, 15, 16], "{db}");

        // #11: opened 30 days ago, its first commit 2 days before that, a failed and then a
        // succeeded deployment, closed successful when the second finished.
        let c11 = &changes[0];
        let merged11 = history.ago(29, 0);
        assert_eq!(c11.created_at, history.ago(30, 0), "{db}");
        assert_eq!(c11.first_commit_at, Some(history.ago(32, 0)), "{db}");
        assert_eq!(c11.close_code, Some(CloseCode::Successful), "{db}");
        assert_eq!(
            (c11.requester.as_str(), c11.risk),
            ("alice", Risk::Low),
            "{db}"
        );
        assert_eq!(c11.environment, "production", "{db}");
        assert_eq!(c11.updated_at, merged11 + Duration::minutes(135), "{db}");
        let deps = store.deployments(c11.id).await.expect("deployments");
        let seen: Vec<_> = deps
            .iter()
            .map(|d| (d.status, d.started_at, d.finished_at, d.message.clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    DeploymentStatus::Failed,
                    merged11 + Duration::minutes(60),
                    Some(merged11 + Duration::minutes(70)),
                    Some("migration failed".to_string())
                ),
                (
                    DeploymentStatus::Succeeded,
                    merged11 + Duration::minutes(120),
                    Some(merged11 + Duration::minutes(135)),
                    Some("deployed".to_string())
                ),
            ],
            "{db}"
        );
        let trail = store.audit(c11.id).await.expect("audit");
        let actions: Vec<(&str, &str, DateTime<Utc>)> = trail
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str(), e.at))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("opened", "backfill", history.ago(30, 0)),
                ("merged", "backfill", merged11),
                (
                    "deployment_started",
                    "backfill",
                    merged11 + Duration::minutes(60)
                ),
                (
                    "deployment_finished",
                    "backfill",
                    merged11 + Duration::minutes(70)
                ),
                (
                    "deployment_started",
                    "backfill",
                    merged11 + Duration::minutes(120)
                ),
                (
                    "deployment_finished",
                    "backfill",
                    merged11 + Duration::minutes(135)
                ),
                ("transition", "backfill", merged11 + Duration::minutes(135)),
            ],
            "{db}"
        );
        assert!(
            trail[6].detail.starts_with("review → closed: successful"),
            "{db}: {trail:?}"
        );

        // #12: failed in production (qa skipped): closed unsuccessful; carol is mapped.
        let c12 = &changes[1];
        assert_eq!(c12.close_code, Some(CloseCode::Unsuccessful), "{db}");
        assert_eq!(c12.requester, "carol", "{db}");
        assert_eq!(c12.first_commit_at, Some(history.ago(10, -120)), "{db}");
        let deps = store.deployments(c12.id).await.expect("deployments");
        assert_eq!(deps.len(), 1, "{db}: {deps:?}");
        assert_eq!(deps[0].status, DeploymentStatus::Failed, "{db}");

        // #15: failed in staging, then succeeded in production. One change, one lane: on
        // production with its production deployment only, closed successful when it finished.
        let c15 = &changes[2];
        let merged15 = history.ago(5, 0);
        assert_eq!(c15.environment, "production", "{db}");
        assert_eq!(c15.close_code, Some(CloseCode::Successful), "{db}");
        assert_eq!(c15.updated_at, merged15 + Duration::minutes(70), "{db}");
        let deps = store.deployments(c15.id).await.expect("deployments");
        let seen: Vec<_> = deps
            .iter()
            .map(|d| (d.status, d.started_at, d.reason.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![(
                DeploymentStatus::Succeeded,
                merged15 + Duration::minutes(60),
                "GitHub deployment 502 to production"
            )],
            "{db}"
        );
        let trail = store.audit(c15.id).await.expect("audit");
        assert!(
            trail.iter().all(|e| !e.detail.contains("staging")),
            "{db}: {trail:?}"
        );

        // #16: its only deployment never reported anything and is days old: imported without
        // it, on the service's default environment, closed when merged; unmapped author.
        let c16 = &changes[3];
        assert_eq!(c16.requester, "github:stranger", "{db}");
        assert_eq!(c16.environment, "production", "{db}");
        assert_eq!(c16.close_code, Some(CloseCode::Successful), "{db}");
        assert_eq!(c16.updated_at, history.ago(4, 0), "{db}");
        assert!(
            store
                .deployments(c16.id)
                .await
                .expect("deployments")
                .is_empty(),
            "{db}"
        );

        // #13: its production deployment is still running, so it is not imported yet.
        assert_eq!(
            store.any_change_for_pr(REPO, 13).await.expect("lookup"),
            None,
            "{db}"
        );

        // A second run adds nothing and says so; #13 is still deploying.
        let again = backfill(&config, &["--repo", REPO]).await;
        assert_eq!(again.status.code(), Some(0), "{db}: {}", err(&again));
        for expected in [
            "backfill acme/payments (last 90 days): 0 imported, 4 already known",
            "1 pull request still deploying; run backfill again later",
        ] {
            assert!(
                out(&again).contains(expected),
                "{db}: `{expected}` in {}",
                out(&again)
            );
        }
        assert!(
            err(&again).contains("1/5 acme/payments#11 already known (CHG-1)"),
            "{db}: {}",
            err(&again)
        );
        assert_eq!(
            recorded(&store).await,
            (changes.clone(), deployments, audit),
            "{db}"
        );

        // Once #13's deployment has finished, a later run imports it with that deployment.
        let finished13 = history.now - Duration::minutes(5);
        gh.add_deployment_status(301, "success", &ts(finished13), "deployed");
        let later = backfill(&config, &["--repo", REPO]).await;
        assert_eq!(later.status.code(), Some(0), "{db}: {}", err(&later));
        assert!(
            out(&later).contains(
                "backfill acme/payments (last 90 days): 1 imported, 4 already known; 1 \
                 deployment imported"
            ) && !out(&later).contains("still deploying"),
            "{db}: {}",
            out(&later)
        );
        let (changes, _, _) = recorded(&store).await;
        assert_eq!(changes.len(), 5, "{db}");
        let c13 = &changes[4];
        assert_eq!(
            c13.pull_request.as_ref().map(|p| p.number),
            Some(13),
            "{db}"
        );
        assert_eq!(c13.requester, "github:stranger", "{db}");
        assert_eq!(c13.first_commit_at, None, "{db}");
        assert_eq!(
            (c13.environment.as_str(), c13.close_code, c13.updated_at),
            ("production", Some(CloseCode::Successful), finished13),
            "{db}"
        );
        let deps = store.deployments(c13.id).await.expect("deployments");
        assert_eq!(deps.len(), 1, "{db}: {deps:?}");
        assert_eq!(deps[0].status, DeploymentStatus::Succeeded, "{db}");

        // A repository no service lists: exit 1, naming the configured ones; GitHub is not asked.
        let calls = gh.requests().len();
        let unknown = backfill(&config, &["--repo", "acme/unknown"]).await;
        assert_eq!(unknown.status.code(), Some(1), "{db}: {}", err(&unknown));
        assert!(
            err(&unknown).contains("acme/unknown is not in any [[service]] repos")
                && err(&unknown).contains("acme/payments (payments-api)"),
            "{db}: {}",
            err(&unknown)
        );
        assert_eq!(gh.requests().len(), calls, "{db}");

        // GitHub says 404: the token cannot see the repository; exit 2, nothing changes.
        gh.fail_next(404, vec![]);
        let hidden = backfill(&config, &["--repo", REPO]).await;
        assert_eq!(hidden.status.code(), Some(2), "{db}: {}", err(&hidden));
        assert!(
            err(&hidden).contains("credentials cannot see it"),
            "{db}: {}",
            err(&hidden)
        );
        assert!(
            !err(&hidden).contains("scripted failure"),
            "{db}: GitHub's text stays out: {}",
            err(&hidden)
        );
        assert_eq!(recorded(&store).await.0.len(), 5, "{db}");

        // Rate-limited: when to come back, in a sentence.
        let reset = (Utc::now() + Duration::minutes(20)).timestamp().to_string();
        gh.fail_next(
            403,
            vec![
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", reset),
            ],
        );
        let limited = backfill(&config, &["--repo", REPO]).await;
        assert_eq!(limited.status.code(), Some(2), "{db}: {}", err(&limited));
        assert!(
            err(&limited).contains("GitHub's rate limit is used up until")
                && err(&limited).contains("run backfill again then"),
            "{db}: {}",
            err(&limited)
        );
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_without_github_credentials_or_with_bad_days_says_what_to_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("none.db").display());
    let config = write_config(dir.path(), &url, None);
    let none = backfill(&config, &["--repo", REPO]).await;
    assert_eq!(none.status.code(), Some(2), "{}", err(&none));
    assert!(
        err(&none).contains("no [github] section") && err(&none).contains("token_env"),
        "{}",
        err(&none)
    );
    let zero = backfill(&config, &["--repo", REPO, "--days", "0"]).await;
    assert_eq!(zero.status.code(), Some(1), "{}", err(&zero));
    assert!(err(&zero).contains("--days"), "{}", err(&zero));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_written_is_a_sentence_not_the_drivers_text() {
    let gh = FakeGithub::start().await;
    let history = History {
        now: Utc::now().trunc_subsecs(0),
    };
    history.seed(&gh);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database(false, dir.path()).await;
    let config = write_config(dir.path(), &url, Some(&gh.url));
    let migrate = tokio::process::Command::new(support::binary())
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .env_remove("CHANGEBOT_CONFIG")
        .output()
        .await
        .expect("migrate runs");
    assert!(migrate.status.success(), "{}", err(&migrate));
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
        sqlx::query(
            "CREATE TRIGGER refuse_changes BEFORE INSERT ON changes \
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
        )
        .execute(&mut conn)
        .await
        .expect("trigger");
        conn.close().await.expect("close");
    }
    let failed = backfill(&config, &["--repo", REPO]).await;
    assert_eq!(failed.status.code(), Some(2), "{}", err(&failed));
    let said: Vec<String> = err(&failed)
        .lines()
        .filter(|l| l.starts_with("backfill: could not"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        said,
        vec![
            "backfill: could not import acme/payments#11: the database could not be written; \
             see the log"
                .to_string()
        ],
        "{}",
        err(&failed)
    );
    // The driver's text is in the log (stderr too), on its own line.
    assert!(err(&failed).contains("disk on fire"), "{}", err(&failed));
}
