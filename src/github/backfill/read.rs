//! What backfill reads from GitHub, turned into plain facts: merged pull requests of a period
//! (closed PRs, most recently updated first, page by page until they are older than the
//! period), the commits of each, and the deployments of its merge commit with their statuses.

use chrono::{DateTime, Utc};
use octocrab::{Octocrab, Page};
use serde::Deserialize;

use crate::github::commits::{ALL_PAGES, first_commit};
use crate::github::evidence::clean;
use crate::workflow::{ImportedDeployment, PullRequestFacts};

/// Pull requests per page of the listing.
const PER_PAGE: u32 = 100;
/// A bound on the listing, whatever GitHub answers (100,000 closed pull requests).
const MAX_PAGES: u32 = 1_000;
/// Deployments of one commit, and statuses of one deployment, read at most (one page each).
const MAX_LISTED: u32 = 100;
/// A deployment that has reported nothing final for this long (its latest status, or its
/// creation without any) is taken as abandoned rather than still deploying.
pub const ABANDONED_AFTER_HOURS: i64 = 24;

#[derive(Deserialize)]
struct Login {
    login: String,
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

#[derive(Deserialize)]
struct Sha {
    sha: String,
}

#[derive(Deserialize)]
struct FullName {
    full_name: String,
}

#[derive(Deserialize)]
struct Base {
    #[serde(default)]
    repo: Option<FullName>,
}

/// A closed pull request as `GET /repos/{r}/pulls?state=closed` lists it.
#[derive(Deserialize)]
struct RawPull {
    number: i64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    user: Option<Login>,
    head: Sha,
    #[serde(default)]
    base: Option<Base>,
    #[serde(default)]
    labels: Vec<Name>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    merged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
}

#[derive(Deserialize)]
struct RawDeployment {
    id: u64,
    #[serde(default)]
    environment: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct RawStatus {
    #[serde(default)]
    id: u64,
    state: String,
    created_at: DateTime<Utc>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    log_url: Option<String>,
    #[serde(default)]
    target_url: Option<String>,
}

/// A pull request merged in the period, before its details are read.
#[derive(Debug, Clone)]
pub struct MergedPull {
    pub facts: PullRequestFacts,
    pub opened_at: DateTime<Utc>,
    pub merged_at: DateTime<Utc>,
}

/// What a merged pull request's deployments came to.
#[derive(Debug, Default)]
pub struct Deployments {
    pub finished: Vec<ImportedDeployment>,
    /// The environment of each deployment still under way: its latest status is `pending`,
    /// `queued` or `in_progress` (or it has none yet), reported in the last
    /// [`ABANDONED_AFTER_HOURS`].
    pub deploying: Vec<String>,
    /// Deployments without an outcome that are not under way either (only `inactive`
    /// statuses, or silent for longer than [`ABANDONED_AFTER_HOURS`]).
    pub unfinished: usize,
}

/// What the GitHub side failed at: the call, and octocrab's error (turned into a sentence by
/// the caller).
pub struct Failed {
    pub what: String,
    pub error: octocrab::Error,
}

/// Reads one repository.
pub struct Reader {
    pub crab: Octocrab,
    /// `owner/name`.
    pub repository: String,
    /// When the backfill runs (how long a deployment has been silent is measured from it).
    pub now: DateTime<Utc>,
}

impl Reader {
    /// Pull requests merged in `[from, to]`, most recently updated first. Paging stops at the
    /// first page whose last pull request was last updated before `from` (nothing older can
    /// have been merged in the period).
    pub async fn merged_pulls(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut on_page: impl FnMut(u32),
    ) -> Result<Vec<MergedPull>, Failed> {
        let route = format!("/repos/{}/pulls", self.repository);
        let mut found = Vec::new();
        for page in 1..=MAX_PAGES {
            on_page(page);
            let query = [
                ("state", "closed".to_string()),
                ("sort", "updated".to_string()),
                ("direction", "desc".to_string()),
                ("per_page", PER_PAGE.to_string()),
                ("page", page.to_string()),
            ];
            let listed: Page<RawPull> =
                self.crab
                    .get(&route, Some(&query))
                    .await
                    .map_err(|e| Failed {
                        what: format!(
                            "the closed pull requests of {} (page {page})",
                            self.repository
                        ),
                        error: e,
                    })?;
            let older = listed.items.last().is_none_or(|p| p.updated_at < from);
            let more = listed.next.is_some();
            for raw in listed.items {
                let Some(merged_at) = raw.merged_at.filter(|m| *m >= from && *m <= to) else {
                    continue;
                };
                found.push(self.merged(raw, merged_at));
            }
            if older || !more {
                break;
            }
        }
        Ok(found)
    }

    fn merged(&self, raw: RawPull, merged_at: DateTime<Utc>) -> MergedPull {
        let repository = raw
            .base
            .and_then(|b| b.repo)
            .map_or_else(|| self.repository.clone(), |r| r.full_name);
        MergedPull {
            facts: PullRequestFacts {
                repository,
                author: raw.user.map(|u| u.login),
                number: raw.number,
                title: raw.title.unwrap_or_default(),
                head_sha: raw.head.sha,
                draft: false,
                merged: true,
                labels: raw.labels.into_iter().map(|l| l.name).collect(),
                merge_sha: raw.merge_commit_sha,
            },
            opened_at: raw.created_at.min(merged_at),
            merged_at,
        }
    }

    /// The earliest author date among the pull request's commits.
    pub async fn first_commit(&self, number: i64) -> Result<Option<DateTime<Utc>>, Failed> {
        first_commit(&self.crab, &self.repository, number, ALL_PAGES)
            .await
            .map_err(|e| Failed {
                what: format!("the commits of {}#{number}", self.repository),
                error: e,
            })
    }

    /// The deployments of commit `sha` with their outcome. A deployment's outcome is its latest
    /// `success`, `failure` or `error` status (a later `inactive`, which GitHub sets when a
    /// newer deployment replaces it, changes nothing); one whose latest status is `pending`,
    /// `queued` or `in_progress` (or that has no status yet) is still deploying, unless it has
    /// been silent for [`ABANDONED_AFTER_HOURS`]; one without an outcome otherwise is
    /// unfinished.
    pub async fn deployments(&self, sha: &str) -> Result<Deployments, Failed> {
        let route = format!("/repos/{}/deployments", self.repository);
        let listed: Vec<RawDeployment> = self
            .crab
            .get(
                &route,
                Some(&[
                    ("sha", sha.to_string()),
                    ("per_page", MAX_LISTED.to_string()),
                ]),
            )
            .await
            .map_err(|e| Failed {
                what: format!("the deployments of commit {sha} in {}", self.repository),
                error: e,
            })?;
        let mut out = Deployments::default();
        for d in listed {
            let mut statuses: Vec<RawStatus> = self
                .crab
                .get(
                    format!("{route}/{}/statuses", d.id),
                    Some(&[("per_page", MAX_LISTED)]),
                )
                .await
                .map_err(|e| Failed {
                    what: format!("the statuses of deployment {} in {}", d.id, self.repository),
                    error: e,
                })?;
            statuses.sort_by_key(|s| (s.created_at, s.id));
            let environment = clean(d.environment.as_deref().unwrap_or("production"), 100);
            let running = statuses
                .last()
                .is_none_or(|s| matches!(s.state.as_str(), "pending" | "queued" | "in_progress"));
            let outcome = statuses
                .iter()
                .rev()
                .find(|s| matches!(s.state.as_str(), "success" | "failure" | "error"));
            let heard = statuses.last().map_or(d.created_at, |s| s.created_at);
            let recent = self.now - heard < chrono::Duration::hours(ABANDONED_AFTER_HOURS);
            let end = match (outcome, running) {
                (Some(end), false) => end,
                (_, true) if recent => {
                    out.deploying.push(environment);
                    continue;
                }
                _ => {
                    out.unfinished += 1;
                    continue;
                }
            };
            let text = |t: &Option<String>| {
                t.as_deref()
                    .map(|t| clean(t, 500))
                    .filter(|t| !t.is_empty())
            };
            out.finished.push(ImportedDeployment {
                github_id: d.id,
                environment,
                started_at: d.created_at,
                finished_at: end.created_at.max(d.created_at),
                succeeded: end.state == "success",
                description: text(&end.description),
                log_url: text(&end.log_url).or_else(|| text(&end.target_url)),
            });
        }
        Ok(out)
    }
}
