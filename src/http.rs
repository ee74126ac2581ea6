//! The HTTP surface (axum): health, readiness, the read-only change API and the web view
//! ([`crate::web`]). Webhook routes are added by the integrations that own them.
//!
//! Request bodies are limited per route: [`BODY_LIMIT`] unless a route sets its own with
//! `.layer(DefaultBodyLimit::max(n))` (as a webhook carrying large payloads will). Handlers read
//! bodies through [`RequestBody`], so a body over the limit gets `413` and one that does not
//! arrive in time (the server's body timeout, [`crate::http_server`]) gets `408`, both as JSON
//! like every other API error.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::deploy::{self, Callback};
use crate::domain::DeploymentId;
use crate::metrics::Metrics;
use crate::workflow::{ErrorKind, Workflow, WorkflowError};

mod api;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub workflow: Workflow,
    /// Bearer token for `/api/*` and the web view; with `read_token` also `None`, both are off
    /// (503).
    pub api_token: Option<Arc<str>>,
    /// A token that may only read: the web view and the GET routes of `/api/*`.
    pub read_token: Option<Arc<str>>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// How the background loops are doing.
    pub health: crate::health::Health,
    /// The GitHub webhook; `None` answers 503.
    pub github: Option<crate::github::Intake>,
}

/// The largest request body a route accepts unless it says otherwise.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The largest deployment callback (`POST /webhooks/deployments/{id}`): a status and a message.
pub const CALLBACK_BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/changes", get(api::list_changes))
        .route("/api/changes/{id}", get(api::get_change))
        .route("/api/metrics", get(api::get_metrics))
        .route("/metrics", get(metrics))
        .route(
            "/webhooks/deployments/{id}",
            post(deployment_callback).layer(DefaultBodyLimit::max(CALLBACK_BODY_LIMIT)),
        )
        .route(
            "/webhooks/github",
            post(crate::github::receiver::receive)
                .layer(DefaultBodyLimit::max(crate::github::receiver::BODY_LIMIT)),
        )
        .merge(crate::web::router())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                ErrorKind::NotFound,
                "no such endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// A route that exists, asked with a method it does not take: 405 in JSON (an HTML page for
/// the web view), like every other error.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    let message = format!("{path} does not take {method}");
    if path == "/" || path == "/web" || path.starts_with("/web/") {
        return crate::web::error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "That is not how this page is used",
            "The pages of the web view only read: open them with a plain link.",
        );
    }
    error(StatusCode::METHOD_NOT_ALLOWED, ErrorKind::Usage, message)
}

/// The whole request body, read within the route's size limit and the server's body timeout.
/// A failure is answered in JSON and closes the connection (the rest of the body is unread).
pub struct RequestBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RequestBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        Bytes::from_request(req, state)
            .await
            .map(RequestBody)
            .map_err(body_rejected)
    }
}

fn body_rejected(rejection: BytesRejection) -> Response {
    let chain = std::iter::successors(
        Some(&rejection as &(dyn std::error::Error + 'static)),
        |e| e.source(),
    );
    let timed_out = chain
        .filter_map(|e| e.downcast_ref::<crate::http_server::BodyTimedOut>())
        .next()
        .copied();
    let mut response = match timed_out {
        Some(t) => error(
            StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Invalid,
            t.to_string(),
        ),
        None if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Invalid,
            "the request body is larger than this endpoint accepts",
        ),
        None => error(
            StatusCode::BAD_REQUEST,
            ErrorKind::Invalid,
            "the request body could not be read",
        ),
    };
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Ready when the database answers and every background loop is healthy; otherwise 503 with
/// the reasons, one per line.
async fn readyz(State(state): State<AppState>) -> Response {
    let mut problems = state.health.problems();
    if let Err(e) = state.workflow.store().ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        problems.insert(0, format!("the database does not answer: {e}"));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        let text = format!("not ready:\n{}\n", problems.join("\n"));
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

/// An error answer: `{"error": "<a sentence>", "kind": K}`, with the kinds `--json` uses.
pub(crate) fn error(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Response {
    let body = json!({ "error": message.into(), "kind": kind });
    (status, Json(body)).into_response()
}

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// The read-only token: the web view and the GET routes of `/api/*`.
    Read,
    /// The API token: everything.
    Full,
}

impl AppState {
    /// Whether any token is configured; without one `/api/*` and the web view are off.
    pub fn tokens_configured(&self) -> bool {
        self.api_token.is_some() || self.read_token.is_some()
    }

    /// What `given` grants, checked against both tokens, each in constant time
    /// ([`token_matches`]); `None` for neither.
    pub fn access_of(&self, given: &str) -> Option<Access> {
        self.grant(|token| token_matches(given, token))
    }

    /// The highest access whose token `presented` vouches for: every configured token is
    /// tried (no early exit).
    pub(crate) fn grant(&self, presented: impl Fn(&str) -> bool) -> Option<Access> {
        let full = self.api_token.as_deref().is_some_and(&presented);
        let read = self.read_token.as_deref().is_some_and(&presented);
        match (full, read) {
            (true, _) => Some(Access::Full),
            (false, true) => Some(Access::Read),
            (false, false) => None,
        }
    }
}

/// The token of `Authorization: Bearer …`, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110): `bearer` works as well as `Bearer`.
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}

/// Checks `Authorization: Bearer …` in constant time ([`token_matches`]) for at least `needed`.
fn authorize(state: &AppState, headers: &HeaderMap, needed: Access) -> Result<(), Box<Response>> {
    if !state.tokens_configured() {
        return Err(Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Refused,
            "the API is disabled: set the environment variable named by api.token_env \
             (or api.read_token_env for read access)",
        )));
    }
    match state.access_of(bearer(headers).unwrap_or_default()) {
        Some(access) if access >= needed => Ok(()),
        Some(_) => Err(Box::new(error(
            StatusCode::FORBIDDEN,
            ErrorKind::Refused,
            "the read-only token may only read; this needs the API token",
        ))),
        None => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Refused,
            "missing or wrong bearer token",
        ))),
    }
}

/// Whether `given` is the `expected` token. Both are hashed to fixed-length SHA-256 digests and
/// the digests compared in constant time, so the answer takes as long for a token of any length
/// (a plain `ct_eq` on the tokens returns at once when the lengths differ, leaking the length).
pub(crate) fn token_matches(given: &str, expected: &str) -> bool {
    bool::from(token_digest(given).ct_eq(&token_digest(expected)))
}

/// SHA-256 of a bearer token: 32 bytes whatever the token's length.
fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "API request failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Internal,
        "internal error; see the server log",
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    // KPIs over the last 30 days, for every service and each one, from the record.
    let now = state.clock.now();
    match state
        .workflow
        .kpis_everywhere(crate::metrics::KPI_DAYS, now)
        .await
    {
        Ok(all) => {
            for (filter, k) in all {
                state.metrics.set_kpis(&filter, &k);
            }
        }
        Err(e) => return internal(e),
    }
    match state
        .metrics
        .render(state.workflow.store(), state.clock.now())
        .await
    {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /webhooks/deployments/{id}`: the target reports a result, signed like our call.
///
/// The order matters. The signature is checked against the secrets of all configured targets
/// before anything is looked up, so a caller without a secret gets the same 401 for every id and
/// cannot probe which deployments exist. The body must then name the deployment in the URL, and
/// only then is the deployment looked up and the signature required to be its own target's.
async fn deployment_callback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    let reject = |status: StatusCode, result: &str, message: String| {
        state.metrics.webhook("deployment", result);
        let kind = match status {
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::BAD_REQUEST => ErrorKind::Invalid,
            _ => ErrorKind::Refused,
        };
        error(status, kind, message)
    };
    // The id's spelling only: nothing is looked up yet.
    let Ok(id) = id.parse::<DeploymentId>() else {
        return reject(
            StatusCode::NOT_FOUND,
            "unknown",
            format!("`{id}` is not a deployment id (expected DEP-N)"),
        );
    };
    let secrets = state.workflow.callback_secrets();
    if secrets.is_empty() {
        return reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_secret",
            "deployment callbacks are off: no deployment target has a secret; set the \
             environment variable named by its secret_env"
                .into(),
        );
    }
    let signature = headers
        .get(deploy::HEADER_SIGNATURE)
        .and_then(|v| v.to_str().ok());
    // Every secret is tried (no early exit), each in constant time.
    let signers: Vec<_> = secrets
        .iter()
        .filter(|s| s.signed(&body, signature))
        .map(|s| s.target.clone())
        .collect();
    if signers.is_empty() {
        return reject(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "missing or wrong X-Changebot-Signature-256: sign the exact body with your \
             deployment target's secret"
                .into(),
        );
    }
    let callback = match Callback::parse_for(&body, id) {
        Ok(c) => c,
        Err(e) => return reject(StatusCode::BAD_REQUEST, e.kind(), e.to_string()),
    };
    match state.workflow.deployment_target(id).await {
        Ok(target) if signers.contains(&target) => {}
        Ok(target) => {
            return reject(
                StatusCode::UNAUTHORIZED,
                "wrong_target",
                format!(
                    "{id} is a deployment of {target}, and this body is not signed with that \
                     target's secret; a target may only report on its own deployments"
                ),
            );
        }
        Err(WorkflowError::NotFound(m)) => return reject(StatusCode::NOT_FOUND, "unknown", m),
        Err(e) => return internal(e),
    }
    match state
        .workflow
        .deployment_callback(id, callback, state.clock.now())
        .await
    {
        Ok(()) => {
            state.metrics.webhook("deployment", "accepted");
            (StatusCode::OK, Json(json!({ "ok": true }))).into_response()
        }
        Err(e) if e.is_user_error() => reject(StatusCode::CONFLICT, "refused", e.to_string()),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_any_length_are_compared_as_fixed_length_digests() {
        let expected = "s3cret-api-token";
        for token in [
            "",
            "s",
            expected,
            "s3cret-api-token-and-then-a-much-longer-tail",
        ] {
            assert_eq!(token_digest(token).len(), 32, "{token:?}");
        }
        assert!(token_matches(expected, expected));
        for wrong in [
            "",
            "s3cret",
            "s3cret-api-toke",
            "s3cret-api-token ",
            "s3cret-api-token-and-then-a-much-longer-tail",
            "S3CRET-API-TOKEN",
            "x3cret-api-token",
        ] {
            assert!(!token_matches(wrong, expected), "{wrong:?} must not match");
        }
    }
}
