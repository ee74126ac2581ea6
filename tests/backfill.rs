//! `changebot backfill` (issue 10): the real binary imports a repository's merged pull requests
//! and their deployments from a fake GitHub as closed changes, with their real times and the
//! first commit's time, and a second run adds nothing; on SQLite and PostgreSQL.
//! (Reconciliation filling in a live PR's first commit: tests/first_commit.rs.)

mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use chrono::{DateTime, Duration, SubsecRound, Utc};

use changebot::domain::release::DeploymentStatus;
use changebot::domain::{Change, CloseCode, Risk, Source, State};
use changebot::store::{ChangeFilter, Store};
use support::github::{FakeClosedPull, FakeCommit, FakeDeployment, FakeGithub};
use support::hooks::backends;

const TOKEN_ENV: &str = "CHANGEBOT_TEST_BACKFILL_TOKEN";
const REPO: &str = "acme/payments";

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The history on the fake GitHub, relative to `now` (the binary runs on the system clock).
struct History {
    now: DateTime<Utc>,
}

impl History {
    fn ago(&self, days: i64, minutes: i64) -> DateTime<Utc> {
        self.now - Duration::days(days) + Duration::minutes(minutes)
    }

    fn closed(
        &self,
        number: u64,
        author: &str,
        opened: i64,
        merged: Option<i64>,
    ) -> FakeClosedPull {
        let closed = merged.unwrap_or(opened - 1);
        FakeClosedPull {
            repo: REPO.into(),
            number,
            title: format!("Pull request {number}"),
            author: author.into(),
            head_sha: format!("{number:0>40}"),
            labels: if number == 11 {
                vec!["risk:low".into()]
            } else {
                vec![]
            },
            created_at: ts(self.ago(opened, 0)),
            updated_at: ts(self.ago(closed, 30)),
            closed_at: ts(self.ago(closed, 0)),
            merged_at: merged.map(|m| ts(self.ago(m, 0))),
            merge_sha: merged.map(|_| format!("m{number:0>39}")),
        }
    }

    fn deployment(
        &self,
        id: u64,
        pr: u64,
        env: &str,
        created: DateTime<Utc>,
        statuses: &[(&str, i64, &str)],
    ) -> FakeDeployment {
        FakeDeployment {
            repo: REPO.into(),
            id,
            sha: format!("m{pr:0>39}"),
            environment: env.into(),
            created_at: ts(created),
            statuses: statuses
                .iter()
                .map(|(state, after, text)| {
                    (
                        state.to_string(),
                        ts(created + Duration::minutes(*after)),
                        text.to_string(),
                    )
                })
                .collect(),
        }
    }

    /// Three PRs merged in the last 90 days (#11 with a failed then a succeeded deployment and
    /// a commit older than the PR; #12 failed in production, and deployed to `qa`, which
    /// payments-api does not have; #13 with a deployment still running), one closed unmerged
    /// (#14) and three merged long ago (#7, #8, #9).
    fn seed(&self, gh: &FakeGithub) {
        for pull in [
            self.closed(11, "alice-gh", 30, Some(29)),
            self.closed(12, "carol-gh", 10, Some(9)),
            self.closed(13, "stranger", 3, Some(2)),
            self.closed(14, "alice-gh", 6, None),
            self.closed(9, "alice-gh", 121, Some(120)),
            self.closed(8, "alice-gh", 201, Some(200)),
            self.closed(7, "alice-gh", 211, Some(210)),
        ] {
            gh.add_closed_pull(pull);
        }
        for (number, days, minutes) in [(11, 30, 60), (11, 32, 0), (12, 10, -120)] {
            gh.add_commit(FakeCommit {
                repo: REPO.into(),
                number,
                sha: format!("c{number}{days}"),
                authored_at: ts(self.ago(days, minutes)),
            });
        }
        let merged11 = self.ago(29, 0);
        gh.add_deployment(self.deployment(
            101,
            11,
            "production",
            merged11 + Duration::hours(1),
            &[("in_progress", 1, ""), ("failure", 10, "migration failed")],
        ));
        gh.add_deployment(self.deployment(
            102,
            11,
            "production",
            merged11 + Duration::hours(2),
            &[
                ("in_progress", 1, ""),
                ("success", 15, "deployed"),
                ("inactive", 7200, ""),
            ],
        ));
        let merged12 = self.ago(9, 0);
        gh.add_deployment(self.deployment(
            201,
            12,
            "production",
            merged12 + Duration::minutes(30),
            &[("failure", 10, "smoke tests failed")],
        ));
        gh.add_deployment(self.deployment(
            202,
            12,
            "qa",
            merged12 + Duration::minutes(5),
            &[("success", 3, "")],
        ));
        gh.add_deployment(self.deployment(
            301,
            13,
            "production",
            self.ago(2, 10),
            &[("in_progress", 1, "")],
        ));
    }
}

/// The fixture organisation on `database_url`, reading GitHub at `api_url` with a token.
fn write_config(dir: &Path, database_url: &str, api_url: Option<&str>) -> PathBuf {
    let path = dir.join("changebot.toml");
    let mut text = support::ORG.replace("sqlite://unused.db", database_url);
    if let Some(api) = api_url {
        text.push_str(&format!(
            "\n[github]\ntoken_env = \"{TOKEN_ENV}\"\napi_url = \"{api}\"\n"
        ));
    }
    std::fs::write(&path, text).expect("write config");
    path
}

async fn backfill(config: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(support::binary())
        .arg("--config")
        .arg(config)
        .arg("backfill")
        .args(args)
        .env(TOKEN_ENV, "gh-backfill-token")
        .env_remove("CHANGEBOT_CONFIG")
        .env_remove("CHANGEBOT_LOG")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("changebot runs")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Everything backfill wrote: the changes (oldest first), and how many deployments and audit
/// entries they have.
async fn recorded(store: &Store) -> (Vec<Change>, usize, usize) {
    let filter = ChangeFilter::default();
    let mut changes = store.list_changes(&filter).await.expect("list");
    changes.reverse();
    let (mut deployments, mut audit) = (0, 0);
    for c in &changes {
        deployments += store.deployments(c.id).await.expect("deployments").len();
        audit += store.audit(c.id).await.expect("audit").len();
    }
    (changes, deployments, audit)
}

async fn database(postgres: bool, dir: &Path) -> String {
    if postgres {
        let admin = support::postgres_url().expect("postgres url");
        changebot::store::testing::fresh_postgres(&admin)
            .await
            .expect("fresh postgres database")
    } else {
        format!("sqlite://{}", dir.join("backfill.db").display())
    }
}

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
            "backfill acme/payments (last 90 days): 3 imported, 0 already known",
            "3 deployments imported",
            "1 change imported without a deployment",
            "skipped 1 deployment to environments the service does not list: qa (1)",
            "skipped 1 deployment without a final status",
        ] {
            assert!(
                summary.contains(expected),
                "{db}: `{expected}` in {summary}"
            );
        }
        // Not a terminal: plain progress lines on stderr, oldest merge first.
        let progress = err(&first);
        for expected in [
            "backfill: 3 pull requests of acme/payments merged in the last 90 days",
            "backfill: 1/3 acme/payments#11 imported as CHG-1 (2 deployments)",
            "backfill: 2/3 acme/payments#12 imported as CHG-2 (1 deployment)",
            "backfill: 3/3 acme/payments#13 imported as CHG-3 (no deployment)",
        ] {
            assert!(
                progress.contains(expected),
                "{db}: `{expected}` in {progress}"
            );
        }
        // Paging stopped at the first page older than the period (page 3 of 4).
        let pages: Vec<String> = gh
            .requests()
            .into_iter()
            .filter(|r| r.path == "/repos/acme/payments/pulls" && r.query.contains("state=closed"))
            .map(|r| r.query)
            .collect();
        assert_eq!(pages.len(), 3, "{db}: {pages:?}");

        let store = Store::connect(&url).await.expect("store");
        let (changes, deployments, audit) = recorded(&store).await;
        assert_eq!(changes.len(), 3, "{db}: {changes:#?}");
        assert_eq!(deployments, 3, "{db}");
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
        assert_eq!(numbers, vec![11, 12, 13], "{db}");

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

        // #13: its deployment is still running, so none: closed when merged; unmapped author.
        let c13 = &changes[2];
        assert_eq!(c13.requester, "github:stranger", "{db}");
        assert_eq!(c13.first_commit_at, None, "{db}");
        assert_eq!(c13.updated_at, history.ago(2, 0), "{db}");
        assert!(
            store
                .deployments(c13.id)
                .await
                .expect("deployments")
                .is_empty(),
            "{db}"
        );

        // A second run adds nothing and says so.
        let again = backfill(&config, &["--repo", REPO]).await;
        assert_eq!(again.status.code(), Some(0), "{db}: {}", err(&again));
        assert!(
            out(&again)
                .contains("backfill acme/payments (last 90 days): 0 imported, 3 already known"),
            "{db}: {}",
            out(&again)
        );
        assert!(
            err(&again).contains("1/3 acme/payments#11 already known (CHG-1)"),
            "{db}: {}",
            err(&again)
        );
        assert_eq!(
            recorded(&store).await,
            (changes.clone(), deployments, audit),
            "{db}"
        );

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
        assert_eq!(recorded(&store).await.0.len(), 3, "{db}");

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
