//! A fake GitHub REST API (in-process axum) holding PR comments and commit statuses in
//! memory, for the real octocrab client to talk to. It can be told to fail the next calls.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct FakeComment {
    pub id: u64,
    pub repo: String,
    pub number: u64,
    pub body: String,
    pub edits: usize,
}

#[derive(Debug, Clone)]
pub struct FakeStatus {
    pub repo: String,
    pub sha: String,
    pub state: String,
    pub context: String,
    pub description: String,
}

#[derive(Debug, Default)]
pub struct Model {
    pub comments: Vec<FakeComment>,
    pub statuses: Vec<FakeStatus>,
    /// Answers to give instead of the real one, in order: (status, extra headers).
    pub fail_next: VecDeque<(u16, Vec<(&'static str, String)>)>,
    pub calls: usize,
    /// Answers to deployment protection rules, in order.
    pub gate_answers: Vec<FakeGateAnswer>,
    /// GitHub App authentication, callers and comment authors (github/app_auth.rs).
    pub app: AppModel,
    /// Pull requests, reviews and check runs reconciliation reads (github/pulls.rs).
    pub pulls: PullsModel,
    /// Closed pull requests, commits and deployments backfill reads (github/history.rs).
    pub history: HistoryModel,
}

/// An answer to a deployment protection rule, as the fake received it.
#[derive(Debug, Clone)]
pub struct FakeGateAnswer {
    pub repo: String,
    pub run_id: u64,
    pub environment: String,
    pub state: String,
    pub comment: String,
}

#[derive(Clone)]
pub struct FakeGithub {
    pub url: String,
    pub model: Arc<Mutex<Model>>,
}

type Shared = Arc<Mutex<Model>>;

fn user(login: &str) -> Value {
    let u = format!("https://api.github.com/users/{login}");
    json!({
        "login": login, "id": 1, "node_id": "U_1", "avatar_url": "https://avatars.example/1",
        "gravatar_id": "", "url": u, "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following"),
        "gists_url": format!("{u}/gists"), "starred_url": format!("{u}/starred"),
        "subscriptions_url": format!("{u}/subscriptions"), "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events"),
        "received_events_url": format!("{u}/received_events"), "type": "Bot", "site_admin": false
    })
}

fn comment_json(c: &FakeComment) -> Value {
    json!({
        "id": c.id, "node_id": format!("IC_{}", c.id),
        "url": format!("https://api.github.com/repos/{}/issues/comments/{}", c.repo, c.id),
        "html_url": format!("https://github.com/{}/pull/{}#issuecomment-{}", c.repo, c.number, c.id),
        "body": c.body, "user": user("changebot[bot]"),
        "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z"
    })
}

/// A scripted failure, if one is queued.
fn failure(model: &Shared) -> Option<Response> {
    let mut m = model.lock().ok()?;
    m.calls += 1;
    let (status, headers) = m.fail_next.pop_front()?;
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(json!({ "message": "scripted failure", "documentation_url": "https://docs.github.com" })),
    )
        .into_response();
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    Some(response)
}

async fn create_comment(
    State(model): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(mut m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let c = FakeComment {
        id: 1000 + m.comments.len() as u64,
        repo: format!("{owner}/{repo}"),
        number,
        body: body["body"].as_str().unwrap_or_default().to_string(),
        edits: 0,
    };
    m.comments.push(c.clone());
    (StatusCode::CREATED, Json(comment_json(&c))).into_response()
}

async fn list_comments(
    State(model): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    comments_page(&m, &format!("{owner}/{repo}"), number, &query, &headers)
}

async fn update_comment(
    State(model): State<Shared>,
    Path((_owner, _repo, id)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(mut m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(c) = m.comments.iter_mut().find(|c| c.id == id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Not Found" })),
        )
            .into_response();
    };
    c.body = body["body"].as_str().unwrap_or_default().to_string();
    c.edits += 1;
    let c = c.clone();
    Json(comment_json(&c)).into_response()
}

async fn create_status(
    State(model): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(mut m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let s = FakeStatus {
        repo: format!("{owner}/{repo}"),
        sha,
        state: body["state"].as_str().unwrap_or_default().to_string(),
        context: body["context"].as_str().unwrap_or_default().to_string(),
        description: body["description"].as_str().unwrap_or_default().to_string(),
    };
    m.statuses.push(s.clone());
    (
        StatusCode::CREATED,
        Json(json!({ "id": m.statuses.len(), "state": s.state, "context": s.context, "description": s.description })),
    )
        .into_response()
}

// Deployment protection rules: GitHub answers 204 and keeps the review.
async fn review_gate(
    State(model): State<Shared>,
    Path((owner, repo, run_id)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(f) = failure(&model) {
        return f;
    }
    let Ok(mut m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    m.gate_answers.push(FakeGateAnswer {
        repo: format!("{owner}/{repo}"),
        run_id,
        environment: body["environment_name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        state: body["state"].as_str().unwrap_or_default().to_string(),
        comment: body["comment"].as_str().unwrap_or_default().to_string(),
    });
    StatusCode::NO_CONTENT.into_response()
}

impl FakeGithub {
    pub async fn start() -> FakeGithub {
        let model: Shared = Arc::default();
        let app = Router::new()
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                post(create_comment).get(list_comments),
            )
            .route(
                "/repos/{owner}/{repo}/issues/comments/{id}",
                post(update_comment).patch(update_comment),
            )
            .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
            .route(
                "/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule",
                post(review_gate),
            )
            .merge(app_routes())
            .merge(pull_routes())
            .merge(history_routes())
            .layer(axum::middleware::from_fn_with_state(
                model.clone(),
                record_call,
            ))
            .with_state(model.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGithub { url, model }
    }

    pub fn comments(&self) -> Vec<FakeComment> {
        self.model
            .lock()
            .map(|m| m.comments.clone())
            .unwrap_or_default()
    }

    pub fn statuses(&self) -> Vec<FakeStatus> {
        self.model
            .lock()
            .map(|m| m.statuses.clone())
            .unwrap_or_default()
    }

    pub fn gate_answers(&self) -> Vec<FakeGateAnswer> {
        self.model
            .lock()
            .map(|m| m.gate_answers.clone())
            .unwrap_or_default()
    }

    pub fn clear_failures(&self) {
        if let Ok(mut m) = self.model.lock() {
            m.fail_next.clear();
        }
    }

    pub fn fail_next(&self, status: u16, headers: Vec<(&'static str, String)>) {
        if let Ok(mut m) = self.model.lock() {
            m.fail_next.push_back((status, headers));
        }
    }
}

/// Headers GitHub sends with a webhook delivery, signed with `secret`.
pub fn signed_headers(secret: &str, event: &str, delivery: &str, body: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    let sig = changebot::deploy::signature::sign(secret.as_bytes(), body);
    for (name, value) in [
        ("x-hub-signature-256", sig.as_str()),
        ("x-github-event", event),
        ("x-github-delivery", delivery),
        ("content-type", "application/json"),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    h
}

// -------------------------------------------------------------------------------------------
// GitHub App authentication (App JWTs, installations, installation tokens), the credentials
// every call carried, `GET /user` and `GET /app`, comment authors and paginated comment
// lists: in github/app_auth.rs. The hooks here: `Model::app`, `app_routes()` and the
// `record_call` layer in `start`, and `comments_page` in `list_comments`.
// -------------------------------------------------------------------------------------------

mod app_auth;
mod history;
mod pulls;

pub use app_auth::*;
pub use history::*;
pub use pulls::*;
