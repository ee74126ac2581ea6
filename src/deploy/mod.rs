//! Deployment webhooks (docs/deployment-webhook.md): the signed POST to a service's deployment target, how one HTTP
//! attempt is classified, the retry backoff, and the signed callback a target sends back.
//!
//! This module does one attempt at a time and keeps no state; scheduling retries, waiting for the
//! callback and recording the audit trail belong to the caller.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::domain::{ChangeId, DeploymentId};

mod backoff;
mod callback;
pub mod signature;

pub use backoff::retry_delay;
pub use callback::{Callback, CallbackError, CallbackStatus};
pub use signature::{sign, verify};

use backoff::parse_retry_after;

/// Longest reason or message (in characters) taken into an [`Attempt`] or a [`Callback`]: they end up
/// in the audit trail and in chat.
pub const MAX_TEXT_CHARS: usize = 500;
/// Longest `log_url` kept; longer ones are dropped.
pub const MAX_LOG_URL_CHARS: usize = 2000;
/// At most this many bytes of a target's response body are read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of a response body is quoted in a reason.
const SNIPPET_CHARS: usize = 200;

pub const HEADER_EVENT: &str = "X-Changebot-Event";
pub const HEADER_DELIVERY: &str = "X-Changebot-Delivery";
pub const HEADER_IDEMPOTENCY_KEY: &str = "Idempotency-Key";
pub const HEADER_SIGNATURE: &str = "X-Changebot-Signature-256";

/// The JSON body POSTed to a deployment target (docs/deployment-webhook.md). `repository`, `ref` and `pull_request`
/// are `null` for changes without a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRequest {
    pub deployment_id: DeploymentId,
    pub change_id: ChangeId,
    pub service: String,
    pub environment: String,
    pub repository: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub pull_request: Option<i64>,
    pub requested_by: String,
    pub callback_url: String,
}

/// `<public_url>/webhooks/deployments/DEP-7`, tolerating a trailing slash on `public_url`.
pub fn callback_url(public_url: &str, deployment: DeploymentId) -> String {
    format!(
        "{}/webhooks/deployments/{deployment}",
        public_url.trim_end_matches('/')
    )
}

/// What one HTTP attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx with `{"status":"succeeded"|"failed"}` (optional `log_url`, `message`).
    Finished {
        succeeded: bool,
        log_url: Option<String>,
        message: Option<String>,
    },
    /// A 202, or a 2xx with `{"status":"in_progress"}`: wait for the signed callback.
    InProgress,
    /// 5xx, 408, 429, or a network error or timeout: try again later. `retry_after` comes from a
    /// `Retry-After` header (seconds or HTTP date) when there is one.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Any other 4xx, a 3xx (redirects are not followed), an unusable URL, or a 2xx whose body is
    /// not understood: fail at once.
    Failed { reason: String },
}

/// One attempt, with what the audit trail wants to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    pub outcome: Attempt,
    /// The response's status, `None` when no response came (network error, timeout, bad URL).
    pub http_status: Option<u16>,
    /// The `X-Changebot-Delivery` sent with this attempt.
    pub delivery: uuid::Uuid,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("could not build the deployment HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("invalid deployment callback: {0}")]
    InvalidCallback(String),
}

/// Sends deployment requests. Cheap to clone (shares one connection pool).
#[derive(Debug, Clone)]
pub struct DeployClient {
    http: reqwest::Client,
    attempt_timeout: Duration,
}

impl DeployClient {
    /// `attempt_timeout` bounds each HTTP attempt: connecting, and the whole request and response.
    pub fn new(attempt_timeout: Duration) -> Result<Self, DeployError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("changebot/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(attempt_timeout)
            .timeout(attempt_timeout)
            .build()
            .map_err(DeployError::Client)?;
        Ok(Self {
            http,
            attempt_timeout,
        })
    }

    /// One signed POST of `request` to `url`, with a fresh `X-Changebot-Delivery`. Without a
    /// `secret` the signature header is left out. HTTP and network problems are reported as
    /// [`Attempt`] values; this never panics and never logs the secret.
    pub async fn attempt(
        &self,
        url: &str,
        secret: Option<&[u8]>,
        request: &DeployRequest,
    ) -> AttemptReport {
        let delivery = uuid::Uuid::new_v4();
        let started = Instant::now();
        let (outcome, http_status) = self.send(url, secret, request, delivery).await;
        let elapsed = started.elapsed();
        tracing::info!(
            deployment = %request.deployment_id,
            %delivery,
            status = http_status,
            elapsed_ms = elapsed.as_millis() as u64,
            outcome = outcome_name(&outcome),
            "deployment webhook attempt"
        );
        AttemptReport {
            outcome,
            http_status,
            delivery,
            elapsed,
        }
    }

    async fn send(
        &self,
        url: &str,
        secret: Option<&[u8]>,
        request: &DeployRequest,
        delivery: uuid::Uuid,
    ) -> (Attempt, Option<u16>) {
        let target = match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            Ok(u) => {
                return (
                    failed(format!("unsupported URL scheme `{}`", u.scheme())),
                    None,
                );
            }
            Err(e) => return (failed(format!("invalid deployment target URL: {e}")), None),
        };
        let body = match serde_json::to_vec(request) {
            Ok(b) => b,
            Err(e) => return (failed(format!("could not encode the request: {e}")), None),
        };
        let mut builder = self
            .http
            .post(target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_EVENT, "deployment")
            .header(HEADER_DELIVERY, delivery.to_string())
            .header(HEADER_IDEMPOTENCY_KEY, request.deployment_id.to_string());
        if let Some(secret) = secret {
            builder = builder.header(HEADER_SIGNATURE, sign(secret, &body));
        }
        let response = match builder.body(body).send().await {
            Ok(r) => r,
            Err(e) => return (self.network_failure(e), None),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match read_limited(response).await {
            Ok(b) => b,
            // The status arrived but the body did not: only a 2xx needs the body to be understood.
            Err(e) if status.is_success() && status.as_u16() != 202 => {
                return (self.network_failure(e), Some(status.as_u16()));
            }
            Err(_) => Vec::new(),
        };
        let outcome = classify(status, retry_after, location.as_deref(), &body);
        (outcome, Some(status.as_u16()))
    }

    fn network_failure(&self, error: reqwest::Error) -> Attempt {
        let error = error.without_url();
        let reason = if error.is_timeout() {
            format!("timed out after {:?}", self.attempt_timeout)
        } else if error.is_connect() {
            format!("could not connect: {}", error_chain(&error))
        } else {
            format!("request failed: {}", error_chain(&error))
        };
        Attempt::Retry {
            reason: truncate(&reason, MAX_TEXT_CHARS),
            retry_after: None,
        }
    }
}

fn outcome_name(outcome: &Attempt) -> &'static str {
    match outcome {
        Attempt::Finished {
            succeeded: true, ..
        } => "succeeded",
        Attempt::Finished { .. } => "failed",
        Attempt::InProgress => "in_progress",
        Attempt::Retry { .. } => "retry",
        Attempt::Failed { .. } => "failed_permanently",
    }
}

fn failed(reason: String) -> Attempt {
    Attempt::Failed {
        reason: truncate(&reason, MAX_TEXT_CHARS),
    }
}

/// Reads at most `MAX_RESPONSE_BYTES` of the body; anything beyond is ignored.
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_RESPONSE_BYTES - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok(out)
}

/// What a response means, from its status, headers and (possibly truncated) body.
fn classify(
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    location: Option<&str>,
    body: &[u8],
) -> Attempt {
    let code = status.as_u16();
    let head = status_line(status);
    if code == 202 {
        return Attempt::InProgress;
    }
    if status.is_success() {
        return match serde_json::from_slice::<Callback>(body) {
            Ok(c) => match c.status {
                CallbackStatus::InProgress => Attempt::InProgress,
                done => Attempt::Finished {
                    succeeded: done == CallbackStatus::Succeeded,
                    log_url: c.log_url,
                    message: c.message,
                },
            },
            Err(e) => failed(format!(
                "{head} with a body that is not a deployment result ({e}); expected JSON like \
                 {{\"status\":\"succeeded\"}}, got: {}",
                snippet(body)
            )),
        };
    }
    if status.is_redirection() {
        let to = location.map(|l| format!(" to {l}")).unwrap_or_default();
        return failed(format!("{head}: redirect{to} not followed"));
    }
    let detail = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        format!(": {}", snippet(body))
    };
    if status.is_server_error() || code == 408 || code == 429 {
        Attempt::Retry {
            reason: truncate(&format!("{head}{detail}"), MAX_TEXT_CHARS),
            retry_after,
        }
    } else {
        failed(format!("{head}{detail}"))
    }
}

fn status_line(status: reqwest::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// A one-line, shortened rendering of a response body for a reason.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        "an empty body".to_owned()
    } else {
        truncate(&flat, SNIPPET_CHARS)
    }
}

/// Cuts `text` to at most `max` characters (on a character boundary), marking the cut with `…`.
/// Text from a deployment target, made safe to store and show: control characters (NUL, CR,
/// LF, escapes …) become spaces, so it can neither break a database (PostgreSQL refuses NUL in
/// text) nor forge a line in a log or reply; then it is shortened to `max` characters.
fn truncate(text: &str, max: usize) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match text.char_indices().nth(max) {
        None => text,
        Some(_) => {
            let keep: String = text.chars().take(max.saturating_sub(1)).collect();
            format!("{keep}…")
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = inner.source();
    }
    parts.join(": ")
}
