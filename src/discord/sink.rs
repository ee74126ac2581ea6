//! Posting to Discord through serenity's REST client: notices and change cards go to the
//! Discord channel a channel name maps to (`[discord].channels`), after the inner sink (the
//! log and the console) has them. A channel with no Discord mapping stays log-only.
//!
//! Posts carry a digest of the outbox item's key as Discord's enforced nonce, so a post whose
//! answer was lost is not repeated. Channel messages go through changebot's own HTTP client
//! (serenity's builders make the bodies): serenity drops a 429's `retry-after`, and the outbox
//! must honour it. Errors: 429 (after Discord's `retry-after`) and 5xx are retried, a deleted
//! message is `Gone` (posted again), anything else is permanent.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serenity::all::{ChannelId, CreateMessage, EditMessage, Nonce};
use serenity::http::HttpError;

use super::card;
use crate::domain::effect::{Attachment, Card, Notice};
use crate::notify::{ChatSink, Posted, SinkError};

/// Discord's limit on a message's content.
const CONTENT_MAX: usize = 2000;
/// Discord's limit on a nonce.
const NONCE_MAX: usize = 25;

pub struct DiscordSink {
    inner: Arc<dyn ChatSink>,
    rest: Rest,
    channels: BTreeMap<String, ChannelId>,
}

/// Discord's REST API for channel messages: `base` is `https://discord.com` or the proxy.
pub struct Rest {
    pub client: reqwest::Client,
    pub base: String,
    /// `Bot TOKEN` (never logged).
    pub authorization: String,
}

impl Rest {
    /// A client for `api_url` (a proxy) or Discord itself, with timeouts.
    pub fn new(token: &str, api_url: Option<&str>) -> Rest {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Rest {
            client,
            base: api_url
                .unwrap_or("https://discord.com")
                .trim_end_matches('/')
                .to_string(),
            authorization: format!("Bot {token}"),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
        gone_if_missing: bool,
    ) -> Result<serde_json::Value, SinkError> {
        self.exchange(method, path, body, None, gone_if_missing)
            .await
    }

    /// Sends `body` as JSON, or as multipart with `file` as `files[0]` (Discord's upload).
    async fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        mut body: serde_json::Value,
        file: Option<&Attachment>,
        gone_if_missing: bool,
    ) -> Result<serde_json::Value, SinkError> {
        // Nobody is ever pinged by what changebot posts (titles are anyone's text).
        body["allowed_mentions"] = serde_json::json!({ "parse": [] });
        let request = self
            .client
            .request(method, format!("{}/api/v10{path}", self.base))
            .header("authorization", &self.authorization);
        let request = match file {
            None => request.json(&body),
            Some(a) => {
                body["attachments"] = serde_json::json!([{ "id": 0, "filename": a.filename }]);
                let part = reqwest::multipart::Part::bytes(a.data.clone())
                    .file_name(a.filename.clone())
                    .mime_str(&a.content_type)
                    .map_err(|_| {
                        SinkError::Permanent(format!(
                            "the attachment's content type `{}` is not valid",
                            a.content_type
                        ))
                    })?;
                let form = reqwest::multipart::Form::new()
                    .text("payload_json", body.to_string())
                    .part("files[0]", part);
                request.multipart(form)
            }
        };
        let response = request.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            SinkError::retry(format!("the request to Discord {what}"))
        })?;
        let status = response.status().as_u16();
        let header_wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        let text = response.text().await.unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let message = json["message"].as_str().unwrap_or("no message").to_string();
        let reason = format!("Discord answered {status}: {message}");
        Err(match status {
            429 => {
                let wait = json["retry_after"].as_f64().or(header_wait);
                SinkError::Retry {
                    reason,
                    after: wait
                        .filter(|w| w.is_finite() && *w >= 0.0)
                        .map(|w| std::time::Duration::from_secs_f64(w.min(3600.0))),
                }
            }
            404 if gone_if_missing => SinkError::Gone,
            408 | 500..=599 => SinkError::retry(reason),
            _ => SinkError::Permanent(reason),
        })
    }
}

fn body_of(builder: &impl serde::Serialize) -> Result<serde_json::Value, SinkError> {
    serde_json::to_value(builder)
        .map_err(|e| SinkError::Permanent(format!("cannot encode the Discord message: {e}")))
}

fn message_id(json: &serde_json::Value) -> Result<String, SinkError> {
    json["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| SinkError::retry("Discord's answer carried no message id"))
}

impl DiscordSink {
    /// Wraps `inner` (which keeps logging everything) with posting to the mapped channels.
    pub fn new(
        inner: Arc<dyn ChatSink>,
        rest: Rest,
        channels: BTreeMap<String, ChannelId>,
    ) -> DiscordSink {
        DiscordSink {
            inner,
            rest,
            channels,
        }
    }

    fn channel(&self, name: &str) -> Option<ChannelId> {
        self.channels.get(name).copied()
    }
}

/// The delivery key as Discord's nonce: a digest of it, so long keys stay distinct.
fn nonce(key: &str) -> Nonce {
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    Nonce::String(digest.chars().take(NONCE_MAX).collect())
}

fn content(text: &str) -> String {
    if text.chars().count() <= CONTENT_MAX {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(CONTENT_MAX - 1).collect();
    cut.push('…');
    cut
}

/// A serenity error as a sentence without URLs (an interaction's URL carries its token).
pub fn describe(e: &serenity::Error) -> String {
    match e {
        serenity::Error::Http(HttpError::Request(r)) => {
            let what = if r.is_timeout() {
                "timed out"
            } else if r.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            format!("the request to Discord {what}")
        }
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => {
            format!(
                "Discord answered {}: {}",
                r.status_code.as_u16(),
                r.error.message
            )
        }
        other => other.to_string(),
    }
}

#[async_trait]
impl ChatSink for DiscordSink {
    fn surface(&self) -> &'static str {
        "chat"
    }

    async fn notice(&self, channel: &str, notice: &Notice, key: &str) -> Result<Posted, SinkError> {
        let logged = self.inner.notice(channel, notice, key).await?;
        let Some(id) = self.channel(channel) else {
            return Ok(logged);
        };
        let message = CreateMessage::new()
            .content(content(&notice.text))
            .nonce(nonce(key))
            .enforce_nonce(true);
        let path = format!("/channels/{}/messages", id.get());
        let sent = self
            .rest
            .exchange(
                reqwest::Method::POST,
                &path,
                body_of(&message)?,
                notice.attachment.as_ref(),
                false,
            )
            .await?;
        Ok(Posted {
            message_id: message_id(&sent)?,
        })
    }

    async fn post_card(&self, channel: &str, card: &Card, key: &str) -> Result<Posted, SinkError> {
        let logged = self.inner.post_card(channel, card, key).await?;
        let Some(id) = self.channel(channel) else {
            return Ok(logged);
        };
        let message = CreateMessage::new()
            .embed(card::embed(card))
            .components(card::buttons(card))
            .nonce(nonce(key))
            .enforce_nonce(true);
        let path = format!("/channels/{}/messages", id.get());
        let sent = self
            .rest
            .send(reqwest::Method::POST, &path, body_of(&message)?, false)
            .await?;
        Ok(Posted {
            message_id: message_id(&sent)?,
        })
    }

    async fn edit_card(
        &self,
        channel: &str,
        message_id: &str,
        card: &Card,
    ) -> Result<(), SinkError> {
        let Some(id) = self.channel(channel) else {
            return self.inner.edit_card(channel, message_id, card).await;
        };
        // A card first shown before Discord was configured has no Discord message: post it.
        let message: u64 = message_id
            .parse()
            .ok()
            .filter(|m| *m != 0)
            .ok_or(SinkError::Gone)?;
        let edit = EditMessage::new()
            .embed(card::embed(card))
            .components(card::buttons(card));
        let path = format!("/channels/{}/messages/{message}", id.get());
        self.rest
            .send(reqwest::Method::PATCH, &path, body_of(&edit)?, true)
            .await?;
        Ok(())
    }
}
