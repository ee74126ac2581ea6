//! Posting to Discord through serenity's REST client: notices and change cards go to the
//! Discord channel a channel name maps to (`[discord].channels`), after the inner sink (the
//! log and the console) has them. A channel with no Discord mapping stays log-only.
//!
//! Posts carry the outbox item's key as Discord's enforced nonce, so a post whose answer was
//! lost is not repeated. Errors: 429 and 5xx are retried from the outbox (serenity, with its
//! ratelimiter off behind a proxy, hands the 429 back; its body may not decode, so the
//! retry-after is the outbox's backoff), a deleted message is `Gone` (posted again), anything
//! else is permanent.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serenity::all::{ChannelId, CreateMessage, EditMessage, MessageId, Nonce};
use serenity::http::{Http, HttpError};

use super::card;
use crate::domain::effect::{Card, Notice};
use crate::notify::{ChatSink, Posted, SinkError};

/// Discord's limit on a message's content.
const CONTENT_MAX: usize = 2000;
/// Discord's limit on a nonce.
const NONCE_MAX: usize = 25;

pub struct DiscordSink {
    inner: Arc<dyn ChatSink>,
    http: Arc<Http>,
    channels: BTreeMap<String, ChannelId>,
}

impl DiscordSink {
    /// Wraps `inner` (which keeps logging everything) with posting to the mapped channels.
    pub fn new(
        inner: Arc<dyn ChatSink>,
        http: Arc<Http>,
        channels: BTreeMap<String, ChannelId>,
    ) -> DiscordSink {
        DiscordSink {
            inner,
            http,
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

/// Sorts a serenity error into retry, gone or permanent.
pub fn classify(e: serenity::Error, gone_if_missing: bool) -> SinkError {
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => {
            let status = r.status_code.as_u16();
            let reason = format!("Discord answered {status}: {}", r.error.message);
            match status {
                404 if gone_if_missing => SinkError::Gone,
                408 | 429 | 500..=599 => SinkError::retry(reason),
                _ => SinkError::Permanent(reason),
            }
        }
        e @ serenity::Error::Http(HttpError::Request(_)) => SinkError::retry(describe(&e)),
        // A message serenity's builders refused (too long, malformed): trying again cannot help.
        serenity::Error::Model(e) => SinkError::Permanent(format!("Discord message refused: {e}")),
        other => SinkError::retry(format!("calling Discord failed: {}", describe(&other))),
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
        let sent = id
            .send_message(&self.http, message)
            .await
            .map_err(|e| classify(e, false))?;
        Ok(Posted {
            message_id: sent.id.get().to_string(),
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
        let sent = id
            .send_message(&self.http, message)
            .await
            .map_err(|e| classify(e, false))?;
        Ok(Posted {
            message_id: sent.id.get().to_string(),
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
        id.edit_message(&self.http, MessageId::new(message), edit)
            .await
            .map_err(|e| classify(e, true))?;
        Ok(())
    }
}
