//! The fake GitHub's pull requests as reconciliation reads them back: the PR, its reviews, the
//! check runs and the combined status of a commit. Tests set them directly (as if GitHub got
//! them while changebot was down) with `set_pull`, `add_review`, `add_check_run`.

use axum::Json;
use axum::Router;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{FakeGithub, Shared, failure};

/// A pull request as GitHub has it.
#[derive(Debug, Clone)]
pub struct FakePull {
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub author: String,
    pub head_sha: String,
    pub state: String,
    pub merged: bool,
    pub merge_sha: Option<String>,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct FakeReview {
    pub repo: String,
    pub number: u64,
    pub login: String,
    pub state: String,
    pub commit: String,
    pub submitted_at: String,
}

#[derive(Debug, Clone)]
pub struct FakeRun {
    pub repo: String,
    pub sha: String,
    pub name: String,
    pub conclusion: Option<String>,
    pub at: String,
}

/// A workflow run waiting on a deployment protection rule for `environment`.
#[derive(Debug, Clone)]
pub struct FakeWaitingRun {
    pub repo: String,
    pub id: u64,
    pub head_sha: String,
    pub pull_requests: Vec<u64>,
    pub environment: String,
}

#[derive(Debug, Default)]
pub struct PullsModel {
    pub pulls: Vec<FakePull>,
    pub reviews: Vec<FakeReview>,
    pub runs: Vec<FakeRun>,
    pub waiting: Vec<FakeWaitingRun>,
}

pub(super) fn pull_routes() -> Router<Shared> {
    Router::new()
        .route("/repos/{owner}/{repo}/pulls", get(list_pulls))
        .route("/repos/{owner}/{repo}/pulls/{number}", get(get_pull))
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/reviews",
            get(list_reviews),
        )
        .route(
            "/repos/{owner}/{repo}/commits/{sha}/check-runs",
            get(list_runs),
        )
        .route(
            "/repos/{owner}/{repo}/commits/{sha}/status",
            get(combined_status),
        )
        .route("/repos/{owner}/{repo}/actions/runs", get(waiting_runs))
        .route(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/pending_deployments",
            get(pending_deployments),
        )
}

async fn waiting_runs(
    State(model): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let repo = format!("{owner}/{repo}");
    let runs: Vec<Value> = m
        .pulls
        .waiting
        .iter()
        .filter(|r| r.repo == repo)
        .map(|r| {
            let prs: Vec<Value> = r
                .pull_requests
                .iter()
                .map(|n| json!({ "number": n }))
                .collect();
            json!({ "id": r.id, "head_sha": r.head_sha, "status": "waiting", "pull_requests": prs })
        })
        .collect();
    Json(json!({ "total_count": runs.len(), "workflow_runs": runs })).into_response()
}

async fn pending_deployments(
    State(model): State<Shared>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let repo = format!("{owner}/{repo}");
    let pending: Vec<Value> = m
        .pulls
        .waiting
        .iter()
        .filter(|r| r.repo == repo && r.id == id)
        .map(|r| json!({ "environment": { "id": 1, "name": r.environment }, "wait_timer": 0 }))
        .collect();
    Json(Value::Array(pending)).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "message": "Not Found" })),
    )
        .into_response()
}

fn pull_json(p: &FakePull) -> Value {
    let labels: Vec<Value> = p.labels.iter().map(|l| json!({ "name": l })).collect();
    json!({
        "number": p.number, "state": p.state, "title": p.title, "draft": false,
        "merged": p.merged, "merge_commit_sha": p.merge_sha,
        "head": { "sha": p.head_sha, "ref": "feature" },
        "base": { "ref": "main", "repo": { "full_name": p.repo } },
        "labels": labels, "user": { "login": p.author }
    })
}

async fn list_pulls(
    State(model): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let repo = format!("{owner}/{repo}");
    // Closed pull requests are history (github/history.rs).
    if query.get("state").map(String::as_str) == Some("closed") {
        return super::history::closed_page(&m, &repo, &query, &headers);
    }
    let open: Vec<Value> = m
        .pulls
        .pulls
        .iter()
        .filter(|p| p.repo == repo && p.state == "open")
        .map(pull_json)
        .collect();
    Json(Value::Array(open)).into_response()
}

async fn get_pull(
    State(model): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let repo = format!("{owner}/{repo}");
    let Some(p) = m
        .pulls
        .pulls
        .iter()
        .find(|p| p.repo == repo && p.number == number)
    else {
        return not_found();
    };
    let labels: Vec<Value> = p.labels.iter().map(|l| json!({ "name": l })).collect();
    Json(json!({
        "number": p.number, "state": p.state, "title": p.title, "draft": false,
        "merged": p.merged, "merge_commit_sha": p.merge_sha,
        "head": { "sha": p.head_sha, "ref": "feature" }, "labels": labels,
        "user": { "login": p.author }
    }))
    .into_response()
}

async fn list_reviews(
    State(model): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let repo = format!("{owner}/{repo}");
    let all: Vec<Value> = m
        .pulls
        .reviews
        .iter()
        .filter(|r| r.repo == repo && r.number == number)
        .map(|r| {
            json!({
                "user": { "login": r.login }, "state": r.state, "commit_id": r.commit,
                "body": "", "submitted_at": r.submitted_at
            })
        })
        .collect();
    Json(Value::Array(all)).into_response()
}

async fn list_runs(
    State(model): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let repo = format!("{owner}/{repo}");
    let runs: Vec<Value> = m
        .pulls
        .runs
        .iter()
        .filter(|r| r.repo == repo && r.sha == sha)
        .map(|r| {
            json!({
                "name": r.name, "head_sha": r.sha,
                "status": if r.conclusion.is_some() { "completed" } else { "in_progress" },
                "conclusion": r.conclusion, "started_at": r.at, "completed_at": r.at
            })
        })
        .collect();
    Json(json!({ "total_count": runs.len(), "check_runs": runs })).into_response()
}

async fn combined_status(
    State(model): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let repo = format!("{owner}/{repo}");
    // changebot's own statuses are part of the combined status too, as on GitHub.
    let statuses: Vec<Value> = m
        .statuses
        .iter()
        .filter(|s| s.repo == repo && s.sha == sha)
        .map(|s| json!({ "context": s.context, "state": s.state, "updated_at": "2026-11-23T09:00:00Z" }))
        .collect();
    Json(json!({ "state": "pending", "sha": sha, "statuses": statuses })).into_response()
}

impl FakeGithub {
    /// Sets (or replaces) what GitHub has for a pull request.
    pub fn set_pull(&self, pull: FakePull) {
        if let Ok(mut m) = self.model.lock() {
            m.pulls
                .pulls
                .retain(|p| !(p.repo == pull.repo && p.number == pull.number));
            m.pulls.pulls.push(pull);
        }
    }

    pub fn add_review(&self, review: FakeReview) {
        if let Ok(mut m) = self.model.lock() {
            m.pulls.reviews.push(review);
        }
    }

    pub fn add_waiting_run(&self, run: FakeWaitingRun) {
        if let Ok(mut m) = self.model.lock() {
            m.pulls.waiting.push(run);
        }
    }

    pub fn add_check_run(&self, run: FakeRun) {
        if let Ok(mut m) = self.model.lock() {
            m.pulls.runs.push(run);
        }
    }
}
