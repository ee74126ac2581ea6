//! Reconciliation with GitHub: GitHub does not redeliver a webhook that failed, so at start and
//! then periodically every pull request whose change is not yet released is read back through
//! octocrab (the PR, its reviews, the check runs and statuses on its head) and whatever was
//! missed is applied (`Workflow::catch_up`, audited as `reconciled`). A rate limit or an
//! outage pauses the round until GitHub says to come back. A PR change whose first commit's
//! time is unknown gets it filled in on the way (`commits::fill_first_commit`, best effort).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::GithubClient;
use super::client::classify;
use super::evidence::{RawCheckRun, run_facts, status_facts};
use crate::clock::Clock;
use crate::domain::{Change, ChangeId};
use crate::notify::SinkError;
use crate::workflow::{
    CheckFacts, ProtectionFacts, PullRequestFacts, PullRequestState, Review, ReviewFacts,
    ReviewVerdict, Workflow,
};

/// How often a full round runs.
pub const EVERY: Duration = Duration::from_secs(10 * 60);
/// Changes read per page of the store.
const PAGE: i64 = 100;

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
struct RawPull {
    number: i64,
    state: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
    head: Sha,
    #[serde(default)]
    labels: Vec<Name>,
    #[serde(default)]
    user: Option<Login>,
}

#[derive(Deserialize)]
struct RawBase {
    #[serde(default)]
    repo: Option<RawRepository>,
}

/// A pull request as `GET /repos/{r}/pulls` lists it.
#[derive(Deserialize)]
struct RawListedPull {
    number: i64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    draft: Option<bool>,
    head: Sha,
    #[serde(default)]
    base: Option<RawBase>,
    #[serde(default)]
    labels: Vec<Name>,
    #[serde(default)]
    user: Option<Login>,
}

#[derive(Deserialize)]
struct RawReview {
    #[serde(default)]
    user: Option<Login>,
    state: String,
    #[serde(default)]
    commit_id: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    submitted_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct RawRuns {
    #[serde(default)]
    check_runs: Vec<RawCheckRun>,
}

#[derive(Deserialize)]
struct RawStatus {
    context: String,
    state: String,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct RawCombined {
    #[serde(default)]
    statuses: Vec<RawStatus>,
}

#[derive(Deserialize)]
struct Number {
    number: i64,
}

#[derive(Deserialize)]
struct RawWorkflowRun {
    id: u64,
    head_sha: String,
    #[serde(default)]
    pull_requests: Vec<Number>,
    #[serde(default)]
    repository: Option<RawRepository>,
}

#[derive(Deserialize)]
struct RawRepository {
    full_name: String,
}

#[derive(Deserialize)]
struct RawWaitingRuns {
    #[serde(default)]
    workflow_runs: Vec<RawWorkflowRun>,
}

#[derive(Deserialize)]
struct RawPending {
    environment: Name,
}

/// The lease that makes one process at a time reconcile.
pub const LEASE: &str = "github-reconcile";
/// How often the loop says it is alive while it waits (`/readyz` wants news within 90 s).
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Reads pull requests back from GitHub and lets the workflow catch up.
#[derive(Clone)]
pub struct Reconciler {
    workflow: Workflow,
    client: GithubClient,
    /// Where a round paused by a rate limit resumes (the last change done).
    resume: Arc<std::sync::Mutex<ChangeId>>,
}

impl Reconciler {
    pub fn new(workflow: Workflow, client: GithubClient) -> Reconciler {
        Reconciler {
            workflow,
            client,
            resume: Arc::new(std::sync::Mutex::new(ChangeId(0))),
        }
    }

    /// What GitHub has now for the pull request of `change`.
    async fn read(&self, change: &Change) -> Result<Option<PullRequestState>, SinkError> {
        let Some(pr) = &change.pull_request else {
            return Ok(None);
        };
        let crab = self.client.for_repo(&pr.repository).await?;
        let base = format!("/repos/{}", pr.repository);
        let raw: RawPull = crab
            .get(format!("{base}/pulls/{}", pr.number), None::<&()>)
            .await
            .map_err(|e| classify(e, false))?;
        let merged = raw.merged.unwrap_or(false);
        let facts = PullRequestFacts {
            repository: pr.repository.clone(),
            author: raw.user.map(|u| u.login),
            number: raw.number,
            title: raw.title.unwrap_or_default(),
            head_sha: raw.head.sha,
            draft: raw.draft.unwrap_or(false),
            merged,
            labels: raw.labels.into_iter().map(|l| l.name).collect(),
            merge_sha: raw.merge_commit_sha.filter(|_| merged),
        };
        let mut reviews = Vec::new();
        for page in 1..=10u32 {
            let batch: Vec<RawReview> = crab
                .get(
                    format!("{base}/pulls/{}/reviews", pr.number),
                    Some(&[("per_page", 100), ("page", page)]),
                )
                .await
                .map_err(|e| classify(e, false))?;
            let last = batch.len() < 100;
            reviews.extend(batch.into_iter().filter_map(|r| review(&facts, r)));
            if last {
                break;
            }
        }
        let sha = &facts.head_sha;
        let runs: RawRuns = crab
            .get(
                format!("{base}/commits/{sha}/check-runs"),
                Some(&[("per_page", 100)]),
            )
            .await
            .map_err(|e| classify(e, false))?;
        let combined: RawCombined = crab
            .get(format!("{base}/commits/{sha}/status"), None::<&()>)
            .await
            .map_err(|e| classify(e, false))?;
        let mut checks: Vec<CheckFacts> = runs
            .check_runs
            .into_iter()
            .map(|r| run_facts(facts.repository.clone(), r))
            .collect();
        checks.extend(combined.statuses.into_iter().map(|s| {
            status_facts(
                facts.repository.clone(),
                sha.clone(),
                &s.context,
                &s.state,
                s.updated_at,
            )
        }));
        Ok(Some(PullRequestState {
            closed: raw.state == "closed",
            pr: facts,
            reviews,
            checks,
        }))
    }

    /// Open pull requests of `repository` without a change (their `opened` was missed).
    async fn open_pulls(
        &self,
        repository: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, ReconcileError> {
        let crab = self
            .client
            .for_repo(repository)
            .await
            .map_err(ReconcileError::Github)?;
        let mut fixed = 0;
        for page in 1..=10u32 {
            let batch: Vec<RawListedPull> = crab
                .get(
                    format!("/repos/{repository}/pulls"),
                    Some(&[
                        ("state", "open".to_string()),
                        ("per_page", "100".to_string()),
                        ("page", page.to_string()),
                    ]),
                )
                .await
                .map_err(|e| ReconcileError::Github(classify(e, false)))?;
            let last = batch.len() < 100;
            for raw in batch {
                let facts = PullRequestFacts {
                    repository: raw
                        .base
                        .and_then(|b| b.repo)
                        .map_or_else(|| repository.to_string(), |r| r.full_name),
                    author: raw.user.map(|u| u.login),
                    number: raw.number,
                    title: raw.title.unwrap_or_default(),
                    head_sha: raw.head.sha,
                    draft: raw.draft.unwrap_or(false),
                    merged: false,
                    labels: raw.labels.into_iter().map(|l| l.name).collect(),
                    merge_sha: None,
                };
                if self
                    .workflow
                    .catch_up_opened(&facts, now)
                    .await
                    .map_err(|e| ReconcileError::Workflow(e.to_string()))?
                {
                    fixed += 1;
                }
            }
            if last {
                break;
            }
        }
        Ok(fixed)
    }

    /// Workflow runs of `repository` waiting on a deployment protection rule that changebot
    /// never heard of: answered (or held) as if their request had just arrived.
    async fn waiting_runs(
        &self,
        repository: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, ReconcileError> {
        let crab = self
            .client
            .for_repo(repository)
            .await
            .map_err(ReconcileError::Github)?;
        let base = format!("/repos/{repository}/actions/runs");
        let runs: RawWaitingRuns = crab
            .get(&base, Some(&[("status", "waiting"), ("per_page", "50")]))
            .await
            .map_err(|e| ReconcileError::Github(classify(e, false)))?;
        let mut fixed = 0;
        for run in runs.workflow_runs {
            let pending: Vec<RawPending> = crab
                .get(
                    format!("{base}/{}/pending_deployments", run.id),
                    None::<&()>,
                )
                .await
                .map_err(|e| ReconcileError::Github(classify(e, false)))?;
            // GitHub's own spelling of the repository, as its webhooks carry it.
            let name = run
                .repository
                .as_ref()
                .map_or(repository, |r| r.full_name.as_str());
            let callback = format!(
                "{}/repos/{name}/actions/runs/{}/deployment_protection_rule",
                self.client.api_url().trim_end_matches('/'),
                run.id
            );
            for p in pending {
                let request = ProtectionFacts {
                    repository: name.to_string(),
                    environment: p.environment.name,
                    sha: run.head_sha.clone(),
                    callback_url: callback.clone(),
                    pull_requests: run.pull_requests.iter().map(|n| n.number).collect(),
                    installation_id: None,
                };
                match self.workflow.catch_up_protection(&request, now).await {
                    Ok(true) => fixed += 1,
                    Ok(false) => {}
                    // Refused (say, a callback not on api_url): audited, the rest goes on.
                    Err(e) if e.is_user_error() => {}
                    Err(e) => return Err(ReconcileError::Workflow(e.to_string())),
                }
            }
        }
        Ok(fixed)
    }

    /// One full round at `now`. Returns how many corrections were applied; stops early (with
    /// the error) when GitHub is unavailable or rate-limits.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<usize, ReconcileError> {
        let mut fixed = 0;
        let repos: Vec<String> = self
            .workflow
            .config()
            .org
            .services
            .values()
            .flat_map(|s| s.repos.iter().cloned())
            .collect();
        for repo in repos {
            match self.open_pulls(&repo, now).await {
                Ok(n) => fixed += n,
                Err(ReconcileError::Github(e @ (SinkError::Permanent(_) | SinkError::Gone))) => {
                    tracing::warn!(repository = %repo, error = %e, "reconciliation could not list open pull requests");
                }
                Err(e) => return Err(e),
            }
            match self.waiting_runs(&repo, now).await {
                Ok(n) => fixed += n,
                Err(ReconcileError::Github(e @ (SinkError::Permanent(_) | SinkError::Gone))) => {
                    tracing::warn!(repository = %repo, error = %e, "reconciliation could not read waiting deployments");
                }
                Err(e) => return Err(e),
            }
        }
        let mut after = self.resume.lock().map(|r| *r).unwrap_or(ChangeId(0));
        loop {
            let page = self
                .workflow
                .store()
                .open_pull_request_changes(after, PAGE)
                .await
                .map_err(|e| ReconcileError::Workflow(e.to_string()))?;
            if page.is_empty() {
                if let Ok(mut r) = self.resume.lock() {
                    *r = ChangeId(0);
                }
                return Ok(fixed);
            }
            for change in &page {
                match self.read(change).await {
                    Ok(Some(state)) => {
                        fixed += self
                            .workflow
                            .catch_up(&state, now)
                            .await
                            .map_err(|e| ReconcileError::Workflow(e.to_string()))?;
                    }
                    Ok(None) => {}
                    // A pull request gone or unreadable for good: the others still go on.
                    Err(e @ (SinkError::Permanent(_) | SinkError::Gone)) => {
                        tracing::warn!(change = %change.id, error = %e, "reconciliation skipped a pull request");
                    }
                    Err(e) => return Err(ReconcileError::Github(e)),
                }
                super::commits::fill_first_commit(&self.workflow, &self.client, change).await;
                after = change.id;
                if let Ok(mut r) = self.resume.lock() {
                    *r = after;
                }
            }
        }
    }

    /// Runs rounds until `stop` turns true: at start, then every [`EVERY`], or after the wait
    /// GitHub asked for when it rate-limited a round (backing off when it did not say). One
    /// process at a time reconciles (the lease `github-reconcile`); the others wait their turn.
    pub async fn run(
        &self,
        clock: Arc<dyn Clock>,
        holder: crate::holder::Holder,
        mut stop: tokio::sync::watch::Receiver<bool>,
        health: crate::health::Health,
    ) {
        let mut failures: u32 = 0;
        while !*stop.borrow() {
            let now = clock.now();
            let lease = chrono::Duration::from_std(EVERY).unwrap_or_default();
            let mine = self
                .workflow
                .store()
                .take_lease(LEASE, holder.instance(), now, now + lease)
                .await
                .unwrap_or(false);
            let mut healthy = true;
            let pause = if !mine {
                EVERY
            } else {
                match self.run_once(now).await {
                    Ok(fixed) => {
                        failures = 0;
                        if let Ok(mut r) = self.resume.lock() {
                            *r = ChangeId(0);
                        }
                        if fixed > 0 {
                            tracing::warn!(fixed, "reconciled pull requests with GitHub");
                        }
                        EVERY
                    }
                    Err(ReconcileError::Github(SinkError::Retry { after, reason })) => {
                        // GitHub is busy or down: a pause, not a fault of changebot's.
                        failures = failures.saturating_add(1);
                        tracing::warn!(%reason, "reconciliation with GitHub paused");
                        after.unwrap_or_else(|| {
                            Duration::from_secs(30 * 2u64.pow(failures.min(5))).min(EVERY)
                        })
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::error!(error = %e, "reconciliation with GitHub failed");
                        health.failed("github reconciliation", &e);
                        healthy = false;
                        Duration::from_secs(30 * 2u64.pow(failures.min(5))).min(EVERY)
                    }
                }
            };
            // Wait, saying every HEARTBEAT that the loop is alive.
            let until = tokio::time::Instant::now() + pause;
            loop {
                if healthy {
                    health.ok("github reconciliation");
                }
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() || *stop.borrow() {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(left.min(HEARTBEAT)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        health.stopped("github reconciliation");
    }
}

/// A review as changebot reads it, if it is a verdict.
fn review(pr: &PullRequestFacts, r: RawReview) -> Option<ReviewFacts> {
    let verdict = match r.state.to_ascii_uppercase().as_str() {
        "APPROVED" => ReviewVerdict::Approved,
        "CHANGES_REQUESTED" => ReviewVerdict::ChangesRequested,
        "DISMISSED" => ReviewVerdict::Dismissed,
        _ => return None,
    };
    Some(ReviewFacts {
        reviewer: r.user?.login,
        review: Review {
            repository: pr.repository.clone(),
            number: pr.number,
            verdict,
            commit: r.commit_id,
            comment: r.body.unwrap_or_default(),
        },
        submitted_at: r.submitted_at,
    })
}

/// Why a reconciliation round stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("GitHub: {0}")]
    Github(SinkError),
    #[error("{0}")]
    Workflow(String),
}
