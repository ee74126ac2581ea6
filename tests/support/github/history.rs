//! The fake GitHub's history, as backfill reads it: closed pull requests (listed most recently
//! updated first, paged with `page`/`per_page` and a `Link` header like GitHub's), the commits
//! of a pull request, the deployments of a commit and each deployment's statuses. Tests set
//! them with `add_closed_pull`, `add_commit`, `add_deployment` (a later status with
//! `add_deployment_status`); `set_page_cap` makes pages smaller than asked (GitHub caps
//! `per_page` at 100) so paging shows with a few PRs, and `fail_commits` makes the commits
//! endpoint answer 502.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{FakeGithub, Model, Shared, failure, user};

/// A closed pull request (merged when `merged_at` is set).
#[derive(Debug, Clone)]
pub struct FakeClosedPull {
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub author: String,
    pub head_sha: String,
    pub labels: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: String,
    pub merged_at: Option<String>,
    pub merge_sha: Option<String>,
}

/// A commit of a pull request (open or closed).
#[derive(Debug, Clone)]
pub struct FakeCommit {
    pub repo: String,
    pub number: u64,
    pub sha: String,
    pub authored_at: String,
}

/// A deployment of a commit, with its statuses in the order they were reported:
/// (state, at, description).
#[derive(Debug, Clone)]
pub struct FakeDeployment {
    pub repo: String,
    pub id: u64,
    pub sha: String,
    pub environment: String,
    pub created_at: String,
    pub statuses: Vec<(String, String, String)>,
}

#[derive(Debug, Default)]
pub struct HistoryModel {
    pub closed: Vec<FakeClosedPull>,
    pub commits: Vec<FakeCommit>,
    pub deployments: Vec<FakeDeployment>,
    /// The most pull requests a page holds, whatever `per_page` asks (GitHub: 100).
    pub page_cap: Option<usize>,
    /// The commits endpoint answers 502 while set.
    pub fail_commits: bool,
}

pub(super) fn history_routes() -> Router<Shared> {
    Router::new()
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/commits",
            get(list_commits),
        )
        .route("/repos/{owner}/{repo}/deployments", get(list_deployments))
        .route(
            "/repos/{owner}/{repo}/deployments/{id}/statuses",
            get(list_statuses),
        )
}

fn number(query: &HashMap<String, String>, key: &str, default: usize) -> usize {
    query
        .get(key)
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(default)
}

fn closed_json(p: &FakeClosedPull) -> Value {
    let base = format!("https://api.github.com/repos/{}", p.repo);
    let labels: Vec<Value> = p
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| json!({ "id": i + 1, "name": l, "color": "ededed", "default": false }))
        .collect();
    json!({
        "url": format!("{base}/pulls/{}", p.number), "id": 9000 + p.number,
        "node_id": format!("PR_{}", p.number), "number": p.number, "state": "closed",
        "locked": false, "title": p.title, "user": user(&p.author), "body": null,
        "labels": labels, "created_at": p.created_at, "updated_at": p.updated_at,
        "closed_at": p.closed_at, "merged_at": p.merged_at,
        "merge_commit_sha": p.merge_sha, "draft": false,
        "html_url": format!("https://github.com/{}/pull/{}", p.repo, p.number),
        "head": { "label": "acme:feature", "ref": "feature", "sha": p.head_sha },
        "base": { "label": "acme:main", "ref": "main", "sha": "0000000000000000000000000000000000000000",
                  "repo": { "id": 1, "name": p.repo.split('/').nth(1), "full_name": p.repo } }
    })
}

/// `GET /repos/{o}/{r}/pulls?state=closed`: sorted by `updated_at`, newest first (the only
/// order backfill asks for), one page of `per_page` (default 30, at most 100 or the cap), with
/// `Link: <…>; rel="next"` while more follow, and `rel="last"`.
pub(super) fn closed_page(
    m: &Model,
    repo: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let cap = m.history.page_cap.unwrap_or(100);
    let per_page = number(query, "per_page", 30).clamp(1, 100).min(cap);
    let page = number(query, "page", 1).max(1);
    let mut all: Vec<&FakeClosedPull> =
        m.history.closed.iter().filter(|p| p.repo == repo).collect();
    all.sort_by(|a, b| b.updated_at.cmp(&a.updated_at));
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|p| closed_json(p))
        .collect();
    let mut response = Json(Value::Array(items)).into_response();
    let pages = all.len().div_ceil(per_page).max(1);
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let link = |n: usize, rel: &str| {
        format!(
            "<http://{host}/repos/{repo}/pulls?state=closed&sort=updated&direction=desc&per_page={per_page}&page={n}>; rel=\"{rel}\""
        )
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(link(page + 1, "next"));
        links.push(link(pages, "last"));
    }
    if let (false, Ok(v)) = (links.is_empty(), HeaderValue::from_str(&links.join(", "))) {
        response.headers_mut().insert("link", v);
    }
    response
}

async fn list_commits(
    State(model): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if m.history.fail_commits {
        return (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "message": "Server Error" })),
        )
            .into_response();
    }
    let repo = format!("{owner}/{repo}");
    let per_page = self::number(&query, "per_page", 30).clamp(1, 100);
    let page = self::number(&query, "page", 1).max(1);
    let commits: Vec<Value> = m
        .history
        .commits
        .iter()
        .filter(|c| c.repo == repo && c.number == number)
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|c| {
            let who = json!({ "name": "Dev", "email": "dev@example.com", "date": c.authored_at });
            json!({
                "sha": c.sha, "node_id": format!("C_{}", c.sha),
                "url": format!("https://api.github.com/repos/{repo}/commits/{}", c.sha),
                "commit": { "author": who, "committer": who, "message": "work",
                            "tree": { "sha": c.sha }, "comment_count": 0 },
                "author": null, "committer": null, "parents": []
            })
        })
        .collect();
    Json(Value::Array(commits)).into_response()
}

async fn list_deployments(
    State(model): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let repo = format!("{owner}/{repo}");
    let sha = query.get("sha");
    // Newest first, as GitHub lists them.
    let mut found: Vec<&FakeDeployment> = m
        .history
        .deployments
        .iter()
        .filter(|d| d.repo == repo && sha.is_none_or(|s| *s == d.sha))
        .collect();
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    let all: Vec<Value> = found
        .iter()
        .map(|d| {
            json!({
                "url": format!("https://api.github.com/repos/{repo}/deployments/{}", d.id),
                "id": d.id, "node_id": format!("DE_{}", d.id), "sha": d.sha, "ref": "main",
                "task": "deploy", "payload": {}, "original_environment": d.environment,
                "environment": d.environment, "description": null, "creator": user("deployer"),
                "created_at": d.created_at, "updated_at": d.created_at,
                "statuses_url": format!("https://api.github.com/repos/{repo}/deployments/{}/statuses", d.id),
                "repository_url": format!("https://api.github.com/repos/{repo}")
            })
        })
        .collect();
    Json(Value::Array(all)).into_response()
}

async fn list_statuses(
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
    let Some(d) = m
        .history
        .deployments
        .iter()
        .find(|d| d.repo == repo && d.id == id)
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Not Found" })),
        )
            .into_response();
    };
    // Newest first, as GitHub lists them.
    let statuses: Vec<Value> = d
        .statuses
        .iter()
        .enumerate()
        .rev()
        .map(|(i, (state, at, description))| {
            json!({
                "url": format!("https://api.github.com/repos/{repo}/deployments/{id}/statuses/{}", id * 100 + i as u64),
                "id": id * 100 + i as u64, "node_id": format!("DES_{id}_{i}"), "state": state,
                "creator": user("deployer"), "description": description,
                "environment": d.environment, "target_url": "",
                "log_url": format!("https://ci.example/runs/{id}"),
                "created_at": at, "updated_at": at,
                "deployment_url": format!("https://api.github.com/repos/{repo}/deployments/{id}"),
                "repository_url": format!("https://api.github.com/repos/{repo}")
            })
        })
        .collect();
    Json(Value::Array(statuses)).into_response()
}

impl FakeGithub {
    pub fn add_closed_pull(&self, pull: FakeClosedPull) {
        if let Ok(mut m) = self.model.lock() {
            m.history.closed.push(pull);
        }
    }

    pub fn add_commit(&self, commit: FakeCommit) {
        if let Ok(mut m) = self.model.lock() {
            m.history.commits.push(commit);
        }
    }

    pub fn add_deployment(&self, deployment: FakeDeployment) {
        if let Ok(mut m) = self.model.lock() {
            m.history.deployments.push(deployment);
        }
    }

    /// Deployment `id` reports one more status: (state, at, description).
    pub fn add_deployment_status(&self, id: u64, state: &str, at: &str, description: &str) {
        if let Ok(mut m) = self.model.lock()
            && let Some(d) = m.history.deployments.iter_mut().find(|d| d.id == id)
        {
            d.statuses
                .push((state.into(), at.into(), description.into()));
        }
    }

    /// Pages of closed pull requests hold at most `cap` (GitHub: 100).
    pub fn set_page_cap(&self, cap: usize) {
        if let Ok(mut m) = self.model.lock() {
            m.history.page_cap = Some(cap);
        }
    }

    /// While `fail` is true, listing a pull request's commits answers 502.
    pub fn fail_commits(&self, fail: bool) {
        if let Ok(mut m) = self.model.lock() {
            m.history.fail_commits = fail;
        }
    }
}
