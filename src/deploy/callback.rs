//! The signed callback a deployment target POSTs to `/webhooks/deployments/{id}`.

use serde::Deserialize;

use super::{DeployError, MAX_LOG_URL_CHARS, MAX_TEXT_CHARS, truncate};
use crate::domain::DeploymentId;

/// A deployment result: the body of a signed callback `POST /webhooks/deployments/{id}` (read
/// with [`Callback::parse_for`]), and also the body of a 2xx answer to the deployment call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Callback {
    pub status: CallbackStatus,
    #[serde(default, deserialize_with = "de_log_url")]
    pub log_url: Option<String>,
    #[serde(default, deserialize_with = "de_message")]
    pub message: Option<String>,
    /// The deployment the result is for. A callback must carry it and it must match the URL
    /// ([`Callback::parse_for`]), so a signed body cannot be replayed against another
    /// deployment. A 2xx answer to the call itself may leave it out.
    #[serde(default)]
    pub deployment_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    Succeeded,
    Failed,
    InProgress,
}

impl Callback {
    /// Parses a callback body. Unknown extra fields are ignored; an unknown `status` is an error.
    /// `message` is shortened to [`MAX_TEXT_CHARS`]; a `log_url` that is not an http(s) URL or is
    /// longer than [`MAX_LOG_URL_CHARS`] is dropped (it is shown as a link).
    pub fn parse(body: &[u8]) -> Result<Callback, DeployError> {
        serde_json::from_slice(body).map_err(|e| DeployError::InvalidCallback(e.to_string()))
    }

    /// Parses the body of a callback POSTed to deployment `url`'s URL. Besides what
    /// [`Callback::parse`] checks, the body must name its deployment in `deployment_id`, and it
    /// must be `url`: a body signed for one deployment can never finish another.
    pub fn parse_for(body: &[u8], url: DeploymentId) -> Result<Callback, CallbackError> {
        let callback =
            Callback::parse(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
        let Some(named) = callback.deployment_id.as_deref() else {
            return Err(CallbackError::MissingDeploymentId(url));
        };
        match named.parse::<DeploymentId>() {
            Ok(id) if id == url => Ok(callback),
            Ok(_) => Err(CallbackError::WrongDeployment {
                url,
                body: truncate(named, 40),
            }),
            Err(_) => Err(CallbackError::Malformed(format!(
                "invalid deployment callback: `deployment_id` `{}` is not a deployment id \
                 (expected DEP-N)",
                truncate(named, 40)
            ))),
        }
    }
}

/// Why a callback body is refused (HTTP 400). Nothing is recorded for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("{0}; expected JSON like {{\"deployment_id\":\"DEP-7\",\"status\":\"succeeded\"}}")]
    Malformed(String),
    #[error(
        "the callback body has no `deployment_id`; it must name the deployment it reports on, \
         here \"deployment_id\":\"{0}\", so that it cannot be replayed against another one"
    )]
    MissingDeploymentId(DeploymentId),
    #[error(
        "the callback body is for `{body}`, but it was posted to {url}'s URL; post each result to \
         the callback_url of the deployment it names"
    )]
    WrongDeployment { url: DeploymentId, body: String },
}

impl CallbackError {
    /// A stable name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CallbackError::Malformed(_) => "malformed",
            CallbackError::MissingDeploymentId(_) => "missing_deployment_id",
            CallbackError::WrongDeployment { .. } => "wrong_deployment",
        }
    }
}

fn de_message<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw
        .map(|m| truncate(m.trim(), MAX_TEXT_CHARS))
        .filter(|m| !m.is_empty()))
}

fn de_log_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.map(|u| u.trim().to_owned()).filter(|u| {
        u.chars().count() <= MAX_LOG_URL_CHARS
            && reqwest::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"))
    }))
}
