//! `changebot backfill` driven as a user runs it: the binary on a config reading a fake GitHub,
//! and the history the fake holds (tests/backfill.rs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use chrono::{DateTime, Duration, Utc};

use changebot::domain::Change;
use changebot::store::{ChangeFilter, Store};

use super::github::{FakeClosedPull, FakeCommit, FakeDeployment, FakeGithub};

pub const TOKEN_ENV: &str = "CHANGEBOT_TEST_BACKFILL_TOKEN";
pub const REPO: &str = "acme/payments";

pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The history on the fake GitHub, relative to `now` (the binary runs on the system clock).
pub struct History {
    pub now: DateTime<Utc>,
}

impl History {
    pub fn ago(&self, days: i64, minutes: i64) -> DateTime<Utc> {
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

    /// Five PRs merged in the last 90 days (#11 with a failed then a succeeded deployment and
    /// a commit older than the PR; #12 failed in production, and deployed to `qa`, which
    /// payments-api does not have; #15 failed in staging, then succeeded in production; #16
    /// with a deployment that never reported anything, days ago; #13 with a deployment still
    /// running), one closed unmerged (#14) and three merged long ago (#7, #8, #9).
    pub fn seed(&self, gh: &FakeGithub) {
        for pull in [
            self.closed(11, "alice-gh", 30, Some(29)),
            self.closed(12, "carol-gh", 10, Some(9)),
            self.closed(13, "stranger", 3, Some(2)),
            self.closed(14, "alice-gh", 6, None),
            self.closed(15, "alice-gh", 6, Some(5)),
            self.closed(16, "stranger", 5, Some(4)),
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
        let merged15 = self.ago(5, 0);
        gh.add_deployment(self.deployment(
            501,
            15,
            "staging",
            merged15 + Duration::minutes(10),
            &[("failure", 5, "staging smoke tests failed")],
        ));
        gh.add_deployment(self.deployment(
            502,
            15,
            "production",
            merged15 + Duration::minutes(60),
            &[("success", 10, "deployed")],
        ));
        gh.add_deployment(self.deployment(601, 16, "production", self.ago(4, 30), &[]));
        gh.add_deployment(self.deployment(
            301,
            13,
            "production",
            self.now - Duration::minutes(30),
            &[("in_progress", 1, "")],
        ));
    }
}

/// The fixture organisation on `database_url`, reading GitHub at `api_url` with a token.
pub fn write_config(dir: &Path, database_url: &str, api_url: Option<&str>) -> PathBuf {
    let path = dir.join("changebot.toml");
    let mut text = super::ORG.replace("sqlite://unused.db", database_url);
    if let Some(api) = api_url {
        text.push_str(&format!(
            "\n[github]\ntoken_env = \"{TOKEN_ENV}\"\napi_url = \"{api}\"\n"
        ));
    }
    std::fs::write(&path, text).expect("write config");
    path
}

pub async fn backfill(config: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(super::binary())
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

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Everything backfill wrote: the changes (oldest first), and how many deployments and audit
/// entries they have.
pub async fn recorded(store: &Store) -> (Vec<Change>, usize, usize) {
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

pub async fn database(postgres: bool, dir: &Path) -> String {
    if postgres {
        let admin = super::postgres_url().expect("postgres url");
        changebot::store::testing::fresh_postgres(&admin)
            .await
            .expect("fresh postgres database")
    } else {
        format!("sqlite://{}", dir.join("backfill.db").display())
    }
}
