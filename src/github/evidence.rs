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
struct Number {
    number: i64,
}

#[derive(Deserialize)]
struct App {
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawCheckRun {
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
struct ProtectionEvent {
    action: String,
    environment: String,
    #[serde(default)]
    sha: Option<String>,
    deployment_callback_url: String,
    #[serde(default)]
    deployment: Option<RawDeployment>,
    #[serde(default)]
    pull_requests: Vec<Number>,
    repository: Repository,
    #[serde(default)]
    installation: Option<Installation>,
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

/// A completed check's conclusion as an outcome: green as branch protection counts it
/// (success, neutral, skipped), red otherwise.
fn concluded(conclusion: Option<&str>) -> (CheckOutcome, String) {
    match conclusion {
        Some(c @ ("success" | "neutral" | "skipped")) => (CheckOutcome::Passed, c.to_string()),
        Some(c) => (CheckOutcome::Failed, c.to_string()),
        None => (CheckOutcome::Pending, "completed".to_string()),
    }
}

pub(crate) fn run_outcome(
    status: Option<&str>,
    conclusion: Option<&str>,
) -> (CheckOutcome, String) {
    match status {
        Some("completed") => concluded(conclusion),
        Some(other) => (CheckOutcome::Pending, other.to_string()),
        None => (CheckOutcome::Pending, "queued".to_string()),
    }
}

/// `check_run`: the run's outcome under its name.
pub fn check_run(body: &[u8]) -> Result<CheckFacts, serde_json::Error> {
    let ev: CheckRunEvent = serde_json::from_slice(body)?;
    let run = ev.check_run;
    let (outcome, detail) = run_outcome(run.status.as_deref(), run.conclusion.as_deref());
    Ok(CheckFacts {
        repository: ev.repository.full_name,
        sha: run.head_sha,
        report: CheckReport {
            name: run.name,
            outcome,
            detail,
        },
        at: run.completed_at.or(run.started_at),
    })
}

/// `check_suite`: the whole suite's outcome under its app's slug (`github-actions`).
pub fn check_suite(body: &[u8]) -> Result<Option<CheckFacts>, serde_json::Error> {
    let ev: CheckSuiteEvent = serde_json::from_slice(body)?;
    let suite = ev.check_suite;
    let Some(name) = suite.app.and_then(|a| a.slug.or(a.name)) else {
        return Ok(None);
    };
    let (outcome, detail) = run_outcome(suite.status.as_deref(), suite.conclusion.as_deref());
    Ok(Some(CheckFacts {
        repository: ev.repository.full_name,
        sha: suite.head_sha,
        report: CheckReport {
            name,
            outcome,
            detail,
        },
        at: suite.updated_at,
    }))
}

/// A commit status's state as an outcome.
pub(crate) fn status_outcome(state: &str) -> CheckOutcome {
    match state {
        "success" => CheckOutcome::Passed,
        "pending" => CheckOutcome::Pending,
        _ => CheckOutcome::Failed,
    }
}

/// `status`: a commit status under its context.
pub fn status(body: &[u8]) -> Result<CheckFacts, serde_json::Error> {
    let ev: StatusEvent = serde_json::from_slice(body)?;
    let outcome = status_outcome(&ev.state);
    Ok(CheckFacts {
        repository: ev.repository.full_name,
        sha: ev.sha,
        report: CheckReport {
            name: ev.context,
            outcome,
            detail: ev.state,
        },
        at: ev.updated_at,
    })
}

/// `deployment_protection_rule` (`requested`).
pub fn protection(body: &[u8]) -> Result<Option<ProtectionFacts>, serde_json::Error> {
    let ev: ProtectionEvent = serde_json::from_slice(body)?;
    if ev.action != "requested" {
        return Ok(None);
    }
    let sha = ev
        .sha
        .or_else(|| ev.deployment.and_then(|d| d.sha))
        .unwrap_or_default();
    Ok(Some(ProtectionFacts {
        repository: ev.repository.full_name,
        environment: ev.environment,
        sha,
        callback_url: ev.deployment_callback_url,
        pull_requests: ev.pull_requests.into_iter().map(|p| p.number).collect(),
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
        environment,
        sha,
        deployment_id: id,
        state: status.state,
        description: status.description.unwrap_or_default(),
        log_url: status.log_url.or(status.target_url),
        at: status.updated_at,
    }))
}
