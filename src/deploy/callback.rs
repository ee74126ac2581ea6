//! The signed callback a deployment target POSTs to `/webhooks/deployments/{id}`.

use serde::Deserialize;

use super::{DeployError, MAX_LOG_URL_CHARS, MAX_TEXT_CHARS, truncate};

/// The body of a signed callback `POST /webhooks/deployments/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Callback {
    pub status: CallbackStatus,
    #[serde(default, deserialize_with = "de_log_url")]
    pub log_url: Option<String>,
    #[serde(default, deserialize_with = "de_message")]
    pub message: Option<String>,
    /// The deployment the result is for. Optional for compatibility with DESIGN §7's body, but
    /// when present it must match the URL, so a signed body cannot be replayed against another
    /// deployment of the same target.
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
