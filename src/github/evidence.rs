//! The GitHub events about CI and deployments, parsed into changebot's own types: check runs,
//! check suites and commit statuses (policy evidence), deployment protection rule requests
//! and deployment statuses. Only the fields changebot reads; optional ones may be missing.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::policy::{CheckOutcome, CheckReport};
use crate::workflow::{CheckFacts, DeploymentFacts, ProtectionFacts};

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct App {
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// A check run, as its webhook and `GET …/check-runs` both give it.
#[derive(Deserialize)]
pub(crate) struct RawCheckRun {
    name: String,
    head_sha: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    completed_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct CheckRunEvent {
    check_run: RawCheckRun,
    repository: Repository,
}

#[derive(Deserialize)]
struct RawCheckSuite {
    #[serde(default)]
    id: Option<u64>,
    head_sha: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    app: Option<App>,
}

#[derive(Deserialize)]
struct CheckSuiteEvent {
    check_suite: RawCheckSuite,
    repository: Repository,
}

#[derive(Deserialize)]
struct StatusEvent {
    sha: String,
    context: String,
    state: String,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
    repository: Repository,
}

#[derive(Deserialize)]
struct Installation {
    id: i64,
}

#[derive(Deserialize)]
struct RawDeployment {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    environment: Option<String>,
}

#[derive(Deserialize)]
struct Action {
    #[serde(default)]
    action: Option<String>,
}

#[derive(Deserialize)]
struct ProtectionEvent {
    environment: String,
    #[serde(default)]
    sha: Option<String>,
    deployment_callback_url: String,
    #[serde(default)]
    deployment: Option<RawDeployment>,
    #[serde(default)]
    pull_requests: Vec<RunPull>,
    repository: Repository,
    #[serde(default)]
    installation: Option<Installation>,
}

#[derive(Deserialize)]
struct RunPull {
    number: i64,
    #[serde(default)]
    head: Option<RunHead>,
}

#[derive(Deserialize)]
struct RunHead {
    sha: String,
}

#[derive(Deserialize)]
struct RawDeploymentStatus {
    state: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    log_url: Option<String>,
    #[serde(default)]
    target_url: Option<String>,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    environment: Option<String>,
}

#[derive(Deserialize)]
struct DeploymentStatusEvent {
    deployment_status: RawDeploymentStatus,
    deployment: RawDeployment,
    repository: Repository,
}

/// Outside text made safe to store and show: control characters become spaces, and it is cut
/// to `max` characters.
pub(crate) fn clean(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        return flat.to_string();
    }
    let mut cut: String = flat.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// A completed check's conclusion as an outcome: green as branch protection counts it
/// (success, neutral, skipped), red otherwise.
fn concluded(conclusion: Option<&str>) -> (CheckOutcome, String) {
    match conclusion {
        Some(c @ ("success" | "neutral" | "skipped")) => (CheckOutcome::Passed, c.to_string()),
        Some(c) => (CheckOutcome::Failed, c.to_string()),
        None => (CheckOutcome::Pending, "completed".to_string()),
    }
}

fn run_outcome(status: Option<&str>, conclusion: Option<&str>) -> (CheckOutcome, String) {
    match status {
        Some("completed") => concluded(conclusion),
        Some(other) => (CheckOutcome::Pending, other.to_string()),
        None => (CheckOutcome::Pending, "queued".to_string()),
    }
}

/// `check_run`: the run's outcome under its name.
pub fn check_run(body: &[u8]) -> Result<CheckFacts, serde_json::Error> {
    let ev: CheckRunEvent = serde_json::from_slice(body)?;
    Ok(run_facts(ev.repository.full_name, ev.check_run))
}

/// A check run of `repository` as a CI report under its name.
pub(crate) fn run_facts(repository: String, run: RawCheckRun) -> CheckFacts {
    let (outcome, detail) = run_outcome(run.status.as_deref(), run.conclusion.as_deref());
    CheckFacts {
        repository,
        sha: run.head_sha,
        report: CheckReport {
            name: clean(&run.name, 200),
            outcome,
            detail: clean(&detail, 100),
        },
        at: run.completed_at.or(run.started_at),
    }
}

/// A commit status as a CI report under its context.
pub(crate) fn status_facts(
    repository: String,
    sha: String,
    context: &str,
    state: &str,
    at: Option<DateTime<Utc>>,
) -> CheckFacts {
    CheckFacts {
        repository,
        sha,
        report: CheckReport {
            name: clean(context, 200),
            outcome: status_outcome(state),
            detail: clean(state, 100),
        },
        at,
    }
}

/// `check_suite`: one suite's outcome as `APP#SUITE-ID` (GitHub Actions makes one suite per
/// workflow run): a policy check named after the app (`github-actions`) needs them all green.
pub fn check_suite(body: &[u8]) -> Result<Option<CheckFacts>, serde_json::Error> {
    let ev: CheckSuiteEvent = serde_json::from_slice(body)?;
    let suite = ev.check_suite;
    let Some(app) = suite.app.and_then(|a| a.slug.or(a.name)) else {
        return Ok(None);
    };
    let name = match suite.id {
        Some(id) => format!("{}#{id}", clean(&app, 100)),
        None => clean(&app, 100),
    };
    let (outcome, detail) = run_outcome(suite.status.as_deref(), suite.conclusion.as_deref());
    Ok(Some(CheckFacts {
        repository: ev.repository.full_name,
        sha: suite.head_sha,
        report: CheckReport {
            name,
            outcome,
            detail: clean(&detail, 100),
        },
        at: suite.updated_at,
    }))
}

/// A commit status's state as an outcome.
fn status_outcome(state: &str) -> CheckOutcome {
    match state {
        "success" => CheckOutcome::Passed,
        "pending" => CheckOutcome::Pending,
        _ => CheckOutcome::Failed,
    }
}

/// `status`: a commit status under its context.
pub fn status(body: &[u8]) -> Result<CheckFacts, serde_json::Error> {
    let ev: StatusEvent = serde_json::from_slice(body)?;
    Ok(status_facts(
        ev.repository.full_name,
        ev.sha,
        &ev.context,
        &ev.state,
        ev.updated_at,
    ))
}

/// `deployment_protection_rule` (`requested`).
pub fn protection(body: &[u8]) -> Result<Option<ProtectionFacts>, serde_json::Error> {
    // The action first: other actions (today or later) need not carry the other fields.
    let action: Action = serde_json::from_slice(body)?;
    if action.action.as_deref() != Some("requested") {
        return Ok(None);
    }
    let ev: ProtectionEvent = serde_json::from_slice(body)?;
    // A run for a pull request deploys GitHub's test merge of it; the PR's head is the commit
    // its change was authorized for.
    let pr_head = ev
        .pull_requests
        .first()
        .and_then(|p| p.head.as_ref())
        .map(|h| h.sha.clone());
    let sha = pr_head
        .or(ev.sha)
        .or_else(|| ev.deployment.and_then(|d| d.sha))
        .unwrap_or_default();
    Ok(Some(ProtectionFacts {
        repository: ev.repository.full_name,
        environment: clean(&ev.environment, 255),
        sha,
        callback_url: ev.deployment_callback_url,
        pull_requests: ev.pull_requests.iter().map(|p| p.number).collect(),
        installation_id: ev.installation.map(|i| i.id),
    }))
}

/// `deployment_status`.
pub fn deployment_status(body: &[u8]) -> Result<Option<DeploymentFacts>, serde_json::Error> {
    let ev: DeploymentStatusEvent = serde_json::from_slice(body)?;
    let status = ev.deployment_status;
    let (Some(id), Some(sha)) = (ev.deployment.id, ev.deployment.sha) else {
        return Ok(None);
    };
    let Some(environment) = ev.deployment.environment.or(status.environment) else {
        return Ok(None);
    };
    Ok(Some(DeploymentFacts {
        repository: ev.repository.full_name,
        environment: clean(&environment, 255),
        sha,
        deployment_id: id,
        state: clean(&status.state, 50),
        description: clean(&status.description.unwrap_or_default(), 500),
        log_url: status.log_url.or(status.target_url),
        at: status.updated_at,
    }))
}
