//! The fake GitHub's App authentication: the App's JWT (RS256, checked against the throwaway
//! test key in tests/fixtures), repository installations, installation tokens with a set
//! lifetime, the credentials every call carried, `GET /user` and `GET /app`; plus comment
//! authors and paginated comment lists (GitHub's `per_page`/`page`, default 30, with a `Link`
//! header).

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{FakeComment, FakeGithub, Model, Shared, comment_json, user};

/// The App id the fake's JWT check expects (`iss`).
pub const TEST_APP_ID: u64 = 4242;
pub const TEST_APP_SLUG: &str = "changebot";
/// The installation every repository has unless `set_installation` says otherwise.
pub const TEST_INSTALLATION: u64 = 7;
/// Who wrote a comment unless `add_comment` said otherwise; also `GET /user`'s login.
pub const BOT_LOGIN: &str = "changebot[bot]";
/// The throwaway test App's keys (tests/fixtures/README.md).
pub const TEST_APP_PRIVATE_KEY: &str = include_str!("../../fixtures/github-app-test-key.pem");
const TEST_APP_PUBLIC_KEY: &str = include_str!("../../fixtures/github-app-test-key.pub.pem");

/// An installation token the fake issued.
#[derive(Debug, Clone)]
pub struct Minted {
    pub token: String,
    pub installation: u64,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// One request the fake received, with the credentials it carried.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    /// It carried an installation token the fake never issued or that had expired.
    pub bad_token: bool,
}

#[derive(Debug)]
pub struct AppModel {
    pub app_id: u64,
    /// Repository (`owner/name`) → its installation; `None`: the App is not installed there.
    pub installations: HashMap<String, Option<u64>>,
    pub token_lifetime: chrono::Duration,
    pub minted: Vec<Minted>,
    pub jwts_verified: usize,
    pub jwts_rejected: usize,
    pub installation_lookups: usize,
    pub requests: Vec<Call>,
    pub comment_authors: HashMap<u64, String>,
}

impl Default for AppModel {
    fn default() -> Self {
        AppModel {
            app_id: TEST_APP_ID,
            installations: HashMap::new(),
            token_lifetime: chrono::Duration::hours(1),
            minted: Vec::new(),
            jwts_verified: 0,
            jwts_rejected: 0,
            installation_lookups: 0,
            requests: Vec::new(),
            comment_authors: HashMap::new(),
        }
    }
}

impl AppModel {
    fn installation_of(&self, repo: &str) -> Option<u64> {
        self.installations
            .get(repo)
            .copied()
            .unwrap_or(Some(TEST_INSTALLATION))
    }

    fn author_of(&self, comment: u64) -> &str {
        self.comment_authors
            .get(&comment)
            .map(String::as_str)
            .unwrap_or(BOT_LOGIN)
    }
}

pub(super) fn app_routes() -> Router<Shared> {
    Router::new()
        .route("/repos/{owner}/{repo}/installation", get(repo_installation))
        .route(
            "/app/installations/{id}/access_tokens",
            post(create_access_token),
        )
        .route("/app", get(get_app))
        .route("/user", get(get_user))
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "message": "Not Found", "documentation_url": "https://docs.github.com" })),
    )
        .into_response()
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "message": message, "documentation_url": "https://docs.github.com" })),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Checks the App's JWT as GitHub does (`Some`: the refusal to answer with): RS256 by the App's key, `iss` the App id, not expired,
/// at most 10 minutes long. Counts the outcome.
fn refuse_jwt(model: &Shared, headers: &HeaderMap) -> Option<Response> {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: Value,
        iat: i64,
        exp: i64,
    }
    let Ok(mut m) = model.lock() else {
        return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    };
    let app_id = m.app.app_id;
    let checked = (|| {
        let token = bearer(headers).ok_or("no bearer token")?;
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(TEST_APP_PUBLIC_KEY.as_bytes())
            .map_err(|_| "test public key")?;
        let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|_| "not a JWT signed by the App's key")?
            .claims;
        let iss_ok = claims.iss.as_u64() == Some(app_id)
            || claims.iss.as_str() == Some(app_id.to_string().as_str());
        if !iss_ok {
            return Err("iss is not the App id");
        }
        if claims.exp - claims.iat > 11 * 60 {
            return Err("a JWT may last 10 minutes at most");
        }
        Ok(())
    })();
    match checked {
        Ok(()) => {
            m.app.jwts_verified += 1;
            None
        }
        Err(why) => {
            m.app.jwts_rejected += 1;
            Some(unauthorized(&format!(
                "A JSON web token could not be decoded ({why})"
            )))
        }
    }
}

/// Records every call's credentials; an installation token (`ghs_…`) the fake did not issue
/// or that has expired gets 401, as on GitHub.
pub(super) async fn record_call(
    State(model): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let authorization = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bad_token = {
        let Ok(mut m) = model.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let now = chrono::Utc::now();
        let bad = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .filter(|t| t.starts_with("ghs_"))
            .is_some_and(|t| {
                !m.app
                    .minted
                    .iter()
                    .any(|x| x.token == t && x.expires_at > now)
            });
        m.app.requests.push(Call {
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            query: request.uri().query().unwrap_or_default().to_string(),
            authorization,
            bad_token: bad,
        });
        bad
    };
    if bad_token {
        return unauthorized("Bad credentials");
    }
    next.run(request).await
}

fn installation_json(id: u64, app_id: u64) -> Value {
    json!({
        "id": id, "account": user("acme"), "app_id": app_id, "target_type": "Organization",
        "access_tokens_url": format!("https://api.github.com/app/installations/{id}/access_tokens"),
        "repositories_url": "https://api.github.com/installation/repositories",
        "html_url": format!("https://github.com/organizations/acme/settings/installations/{id}"),
        "permissions": { "issues": "write", "pull_requests": "write", "statuses": "write",
                         "metadata": "read" },
        "events": ["pull_request", "pull_request_review", "issue_comment"],
        "repository_selection": "all",
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
    })
}

async fn repo_installation(
    State(model): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_jwt(&model, &headers) {
        return refused;
    }
    let Ok(mut m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    m.app.installation_lookups += 1;
    match m.app.installation_of(&format!("{owner}/{repo}")) {
        Some(id) => Json(installation_json(id, m.app.app_id)).into_response(),
        None => not_found(),
    }
}

async fn create_access_token(
    State(model): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_jwt(&model, &headers) {
        return refused;
    }
    let Ok(mut m) = model.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let known = id == TEST_INSTALLATION || m.app.installations.values().any(|i| *i == Some(id));
    if !known {
        return not_found();
    }
    let minted = Minted {
        token: format!("ghs_test{}", m.app.minted.len() + 1),
        installation: id,
        expires_at: chrono::Utc::now() + m.app.token_lifetime,
    };
    m.app.minted.push(minted.clone());
    let expires_at = minted
        .expires_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (
        StatusCode::CREATED,
        Json(json!({
            "token": minted.token, "expires_at": expires_at,
            "permissions": { "issues": "write", "pull_requests": "write", "statuses": "write" },
            "repository_selection": "all"
        })),
    )
        .into_response()
}

async fn get_app(State(model): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse_jwt(&model, &headers) {
        return refused;
    }
    let app_id = model.lock().map(|m| m.app.app_id).unwrap_or(TEST_APP_ID);
    Json(json!({
        "id": app_id, "slug": TEST_APP_SLUG, "node_id": "A_1", "owner": user("acme"),
        "name": "changebot", "description": "", "external_url": "https://changebot.example",
        "html_url": format!("https://github.com/apps/{TEST_APP_SLUG}"),
        "permissions": {}, "events": []
    }))
    .into_response()
}

async fn get_user() -> Response {
    Json(user(BOT_LOGIN)).into_response()
}

/// One page of a PR's comments (GitHub's `per_page`, default 30, at most 100, and `page`),
/// with a `Link: <…>; rel="next"` header while more follow. Like GitHub's, the link names
/// the repository by id (`/repositories/1/…`), a URL only a client following it would use.
pub(super) fn comments_page(
    m: &Model,
    repo: &str,
    number: u64,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let per_page = query
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let all: Vec<&FakeComment> = m
        .comments
        .iter()
        .filter(|c| c.repo == repo && c.number == number)
        .collect();
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|c| {
            let mut v = comment_json(c);
            v["user"] = user(m.app.author_of(c.id));
            v
        })
        .collect();
    let mut response = Json(Value::Array(items)).into_response();
    if page * per_page < all.len() {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        let link = format!(
            "<http://{host}/repositories/1/issues/{number}/comments?per_page={per_page}&page={}>; rel=\"next\"",
            page + 1
        );
        if let Ok(v) = HeaderValue::from_str(&link) {
            response.headers_mut().insert("link", v);
        }
    }
    response
}

impl FakeGithub {
    /// The App's installation on `repo` (`owner/name`); `None`: not installed there.
    pub fn set_installation(&self, repo: &str, installation: Option<u64>) {
        if let Ok(mut m) = self.model.lock() {
            m.app.installations.insert(repo.to_string(), installation);
        }
    }

    /// How long the installation tokens minted from now on last.
    pub fn set_token_lifetime(&self, lifetime: chrono::Duration) {
        if let Ok(mut m) = self.model.lock() {
            m.app.token_lifetime = lifetime;
        }
    }

    pub fn minted(&self) -> Vec<Minted> {
        self.model
            .lock()
            .map(|m| m.app.minted.clone())
            .unwrap_or_default()
    }

    /// Every request so far, with the credentials it carried.
    pub fn requests(&self) -> Vec<Call> {
        self.model
            .lock()
            .map(|m| m.app.requests.clone())
            .unwrap_or_default()
    }

    /// (App JWTs accepted, App JWTs refused).
    pub fn jwts(&self) -> (usize, usize) {
        self.model
            .lock()
            .map(|m| (m.app.jwts_verified, m.app.jwts_rejected))
            .unwrap_or_default()
    }

    pub fn installation_lookups(&self) -> usize {
        self.model
            .lock()
            .map(|m| m.app.installation_lookups)
            .unwrap_or_default()
    }

    /// Adds a comment by `author` to `repo#number`, as if written on GitHub; returns its id.
    pub fn add_comment(&self, repo: &str, number: u64, author: &str, body: &str) -> u64 {
        let Ok(mut m) = self.model.lock() else {
            return 0;
        };
        let id = 1000 + m.comments.len() as u64;
        m.comments.push(FakeComment {
            id,
            repo: repo.to_string(),
            number,
            body: body.to_string(),
            edits: 0,
        });
        m.app.comment_authors.insert(id, author.to_string());
        id
    }
}
