//! `changebot backfill --repo OWNER/NAME --days N`: imports the pull requests merged in the
//! last N days, with their deployments, so the KPIs have history on day one.
//!
//! The GitHub side reads (`read`: closed PRs most recently updated first, paging until they
//! are older than the period; each merged PR's commits; the deployments of its merge commit
//! and their statuses) and hands plain facts to `Workflow::import_pull`, which writes each
//! PR in one transaction. A PR changebot already has a change for (live, or from an earlier
//! backfill) is skipped before anything more is read about it, so a second run only lists.
//! A failure stops the run with a sentence saying what to do; what was imported stays, and
//! running it again continues where it stopped.

mod progress;
mod read;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

pub use progress::{Bar, Lines, Progress, for_stderr};

use super::GithubClient;
use crate::config::Config;
use crate::notify::SinkError;
use crate::workflow::{Imported, ImportedPull, Workflow};
use read::{Failed, Reader};

/// `--days` when not given.
pub const DEFAULT_DAYS: u32 = 90;
/// The longest period `--days` accepts.
pub const MAX_DAYS: u32 = 3650;

/// Why a backfill did not run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The request cannot be done as asked (a repository no service lists): the user's to
    /// fix, exit 1.
    #[error("{0}")]
    Request(String),
    /// The configuration lacks what backfill needs (GitHub credentials): exit 2.
    #[error("{0}")]
    Config(String),
    /// GitHub could not be read; the sentence says why and what to do.
    #[error("{0}")]
    Github(String),
    /// The database failed (details in the log).
    #[error("{0}")]
    Store(String),
}

/// What a backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub repository: String,
    pub days: u32,
    /// Pull requests imported as closed changes.
    pub imported: usize,
    /// Pull requests changebot already had a change for.
    pub known: usize,
    /// Deployments imported.
    pub deployments: usize,
    /// Imported pull requests without a usable deployment.
    pub without_deployment: usize,
    /// Deployments skipped because the service has no such environment, per environment.
    pub other_environments: BTreeMap<String, usize>,
    /// Deployments skipped because they went to another of the service's environments than
    /// the one their change is filed under, per environment.
    pub other_lanes: BTreeMap<String, usize>,
    /// Deployments skipped because they never reported an outcome and are not under way.
    pub unfinished: usize,
    /// Pull requests not imported because a deployment to their environment is still under
    /// way (a later run imports them).
    pub deploying: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "backfill {} (last {} days): {} imported, {} already known",
            self.repository, self.days, self.imported, self.known
        )?;
        if self.imported > 0 {
            write!(f, "; {} imported", plural(self.deployments, "deployment"))?;
        }
        if self.without_deployment > 0 {
            write!(
                f,
                "; {} imported without a deployment",
                plural(self.without_deployment, "change")
            )?;
        }
        let per_environment = |counts: &BTreeMap<String, usize>| {
            let names: Vec<String> = counts
                .iter()
                .map(|(env, n)| format!("{env} ({n})"))
                .collect();
            (counts.values().sum::<usize>(), names.join(", "))
        };
        let (other, names) = per_environment(&self.other_environments);
        if other > 0 {
            write!(
                f,
                "; skipped {} to environments the service does not list: {names}",
                plural(other, "deployment"),
            )?;
        }
        let (other, names) = per_environment(&self.other_lanes);
        if other > 0 {
            write!(
                f,
                "; skipped {} to other environments than their change's (each change is filed \
                 under the production-most environment its pull request reached): {names}",
                plural(other, "deployment"),
            )?;
        }
        if self.unfinished > 0 {
            write!(
                f,
                "; skipped {} without a final status",
                plural(self.unfinished, "deployment")
            )?;
        }
        if self.deploying > 0 {
            write!(
                f,
                "; {} still deploying; run backfill again later",
                plural(self.deploying, "pull request")
            )?;
        }
        Ok(())
    }
}

/// Checks a backfill of `repository` against `config` before anything is connected: it must
/// be `OWNER/NAME`, listed in a service's `repos`, and GitHub credentials must be configured.
/// Returns the repository as config spells it and the GitHub client.
pub fn prepare(config: &Config, repository: &str) -> Result<(String, GithubClient), BackfillError> {
    let well_formed = repository.split_once('/').is_some_and(|(owner, name)| {
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        ok(owner) && ok(name)
    });
    if !well_formed {
        return Err(BackfillError::Request(format!(
            "--repo {repository}: give the repository as OWNER/NAME, for example acme/payments"
        )));
    }
    let Some(service) = config.org.service_for_repo(repository) else {
        let listed: Vec<String> = config
            .org
            .services
            .values()
            .flat_map(|s| s.repos.iter().map(move |r| format!("{r} ({})", s.name)))
            .collect();
        let listed = if listed.is_empty() {
            "no service lists any repository yet".to_string()
        } else {
            format!("configured: {}", listed.join(", "))
        };
        return Err(BackfillError::Request(format!(
            "{repository} is not in any [[service]] repos, so its changes would belong to no \
             service; add it to a service's repos or pick one of those ({listed})"
        )));
    };
    let spelled = service
        .repos
        .iter()
        .find(|r| r.eq_ignore_ascii_case(repository))
        .cloned()
        .unwrap_or_else(|| repository.to_string());
    let no_credentials = "backfill reads GitHub with changebot's credentials: in [github] set \
         token_env to the name of a variable holding a token that can read the repository's \
         pull requests and deployments (and export that variable), or app_id and \
         private_key_env for a GitHub App installed on it";
    if config.github.is_none() {
        return Err(BackfillError::Config(format!(
            "the config has no [github] section; {no_credentials}"
        )));
    }
    match GithubClient::from_config(config) {
        Ok(Some(client)) => Ok((spelled, client)),
        Ok(None) => Err(BackfillError::Config(format!(
            "[github] names no credentials that are set; {no_credentials}"
        ))),
        Err(e) => Err(BackfillError::Config(format!("{e:#}"))),
    }
}

/// Imports the pull requests of `repository` merged in the `days` days before `now`.
pub async fn run(
    workflow: &Workflow,
    client: &GithubClient,
    repository: &str,
    days: u32,
    now: DateTime<Utc>,
    progress: &mut dyn Progress,
) -> Result<Summary, BackfillError> {
    let mut summary = Summary {
        repository: repository.to_string(),
        days,
        ..Summary::default()
    };
    let result = import_all(workflow, client, &mut summary, now, progress).await;
    progress.finish();
    match result {
        Ok(()) => Ok(summary),
        Err(e) if summary.imported > 0 => {
            let kept = |why: String| {
                format!(
                    "{why} ({} imported before it stopped; they stay, and a new run skips them)",
                    summary.imported
                )
            };
            Err(match e {
                BackfillError::Github(why) => BackfillError::Github(kept(why)),
                BackfillError::Store(why) => BackfillError::Store(kept(why)),
                other => other,
            })
        }
        Err(e) => Err(e),
    }
}

async fn import_all(
    workflow: &Workflow,
    client: &GithubClient,
    summary: &mut Summary,
    now: DateTime<Utc>,
    progress: &mut dyn Progress,
) -> Result<(), BackfillError> {
    let repository = summary.repository.clone();
    let crab = client
        .for_repo(&repository)
        .await
        .map_err(|e| sink_sentence(&repository, e))?;
    let reader = Reader {
        crab,
        repository: repository.clone(),
        now,
    };
    let from = now - chrono::Duration::days(i64::from(summary.days));
    let mut pulls = reader
        .merged_pulls(from, now, |page| progress.listing(&repository, page))
        .await
        .map_err(|f| sentence(client, &repository, f))?;
    // Oldest merge first, so change ids follow history.
    pulls.sort_by_key(|p| (p.merged_at, p.facts.number));
    progress.found(&repository, pulls.len(), summary.days);
    let total = pulls.len();
    for (i, pull) in pulls.into_iter().enumerate() {
        let place = format!("{}#{}", pull.facts.repository, pull.facts.number);
        let store = workflow.store();
        let known = store
            .any_change_for_pr(&pull.facts.repository, pull.facts.number)
            .await
            .map_err(|e| store_failed(&place, &e))?;
        let what = match known {
            Some(id) => {
                summary.known += 1;
                format!("already known ({id})")
            }
            None => import_one(workflow, &reader, client, pull, summary).await?,
        };
        progress.pull(i + 1, total, &place, &what);
    }
    Ok(())
}

/// Reads one merged pull request's details and imports it; says what happened.
async fn import_one(
    workflow: &Workflow,
    reader: &Reader,
    client: &GithubClient,
    pull: read::MergedPull,
    summary: &mut Summary,
) -> Result<String, BackfillError> {
    let fail = |f: Failed| sentence(client, &reader.repository, f);
    let first_commit_at = reader.first_commit(pull.facts.number).await.map_err(fail)?;
    let deployments = match &pull.facts.merge_sha {
        Some(sha) => reader.deployments(sha).await.map_err(fail)?,
        None => read::Deployments::default(),
    };
    summary.unfinished += deployments.unfinished;
    let imported = ImportedPull {
        pr: pull.facts,
        opened_at: pull.opened_at,
        merged_at: pull.merged_at,
        first_commit_at,
        deployments: deployments.finished,
        deploying: deployments.deploying,
    };
    let place = format!("{}#{}", imported.pr.repository, imported.pr.number);
    let outcome = workflow.import_pull(&imported).await.map_err(|e| {
        tracing::error!(error = %e, pull_request = %place, "backfill could not write an imported change");
        if e.is_user_error() {
            // Not the database: the workflow's own sentence (a repository no service lists).
            BackfillError::Request(format!("could not import {place}: {e}"))
        } else {
            BackfillError::Store(format!(
                "could not import {place}: the database could not be written; see the log"
            ))
        }
    })?;
    Ok(match outcome {
        Imported::Known(id) => {
            summary.known += 1;
            id.map_or_else(
                || "already known".to_string(),
                |id| format!("already known ({id})"),
            )
        }
        Imported::Deploying { environment } => {
            summary.deploying += 1;
            format!("still deploying to {environment}; not imported yet")
        }
        Imported::Change {
            id,
            deployments,
            skipped,
            other_lanes,
        } => {
            summary.imported += 1;
            summary.deployments += deployments;
            for env in skipped {
                *summary.other_environments.entry(env).or_default() += 1;
            }
            for env in other_lanes {
                *summary.other_lanes.entry(env).or_default() += 1;
            }
            if deployments == 0 {
                summary.without_deployment += 1;
            }
            match deployments {
                0 => format!("imported as {id} (no deployment)"),
                1 => format!("imported as {id} (1 deployment)"),
                n => format!("imported as {id} ({n} deployments)"),
            }
        }
    })
}

fn store_failed(place: &str, e: &crate::store::StoreError) -> BackfillError {
    tracing::error!(error = %e, pull_request = %place, "backfill could not read the database");
    BackfillError::Store(format!(
        "could not check whether changebot knows {place}: the database could not be read; see \
         the log"
    ))
}

/// A failure to authenticate for `repository` (a GitHub App's installation, its token).
fn sink_sentence(repository: &str, e: SinkError) -> BackfillError {
    let why = match e {
        SinkError::Retry { reason, .. } => {
            format!("{reason}; run backfill again in a few minutes")
        }
        SinkError::Permanent(reason) => reason,
        SinkError::Gone => "GitHub answered 404".to_string(),
    };
    BackfillError::Github(format!("cannot read {repository} on GitHub: {why}"))
}

/// An octocrab error as a sentence about what backfill was reading and what to do.
fn sentence(client: &GithubClient, repository: &str, f: Failed) -> BackfillError {
    tracing::debug!(error = ?f.error, what = %f.what, "backfill: GitHub call failed");
    let what = &f.what;
    let text = match f.error {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let header = |name: &str| {
                source
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let exhausted = header("x-ratelimit-remaining").as_deref() == Some("0")
                || header("retry-after").is_some()
                || status == 429;
            let reset = source
                .rate_limit_reset
                .and_then(|r| DateTime::<Utc>::from_timestamp(r as i64, 0))
                .map(|t| format!(" until {}", t.format("%H:%M UTC")))
                .unwrap_or_default();
            match status {
                401 => format!(
                    "GitHub refused changebot's credentials (401) reading {what}: check the token \
                     in [github] token_env, or app_id and private_key_env"
                ),
                403 | 429 if exhausted => format!(
                    "GitHub's rate limit is used up{reset} (reading {what}); run backfill again \
                     then"
                ),
                404 => format!(
                    "GitHub answered 404 reading {what}: {repository} does not exist or \
                     changebot's credentials cannot see it (a token needs read access to the \
                     repository; a GitHub App must be installed on it)"
                ),
                403 => format!(
                    "GitHub refused reading {what} (403: {}); changebot's credentials need read \
                     access to the repository's pull requests, contents and deployments",
                    source.message
                ),
                500..=599 => format!(
                    "GitHub answered {status} reading {what}: it is having trouble; run backfill \
                     again later"
                ),
                _ => format!(
                    "GitHub answered {status} reading {what}: {}",
                    source.message
                ),
            }
        }
        octocrab::Error::Serde { .. } | octocrab::Error::Json { .. } => format!(
            "GitHub's answer for {what} is not what backfill expects from {} (is [github] \
             api_url GitHub's REST API?)",
            client.api_url()
        ),
        _ => format!(
            "could not reach GitHub at {} reading {what} (a network error or a timeout); check \
             [github] api_url and the network, then run backfill again",
            client.api_url()
        ),
    };
    BackfillError::Github(text)
}
