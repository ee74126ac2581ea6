//! Where messages for people go: the sink the outbox delivers notices and change cards through.
//! Until Discord is connected, they go to the log (notices also to the console); the Discord
//! adapter implements the same trait.
//!
//! Sinks get structured content (`domain::effect`) and render it their own way. A post returns
//! the id of the message it created, so the engine can edit that message later; a failure says
//! whether and when to try again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::domain::effect::{Card, GateAnswer, Notice};

/// A message a sink created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub message_id: String,
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth trying again; no sooner than `after` when the surface said so (a rate limit).
    #[error("{reason}")]
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Trying again cannot help (unknown channel, no permission): a person must look.
    #[error("{0}")]
    Permanent(String),
    /// The message to edit no longer exists (someone deleted it).
    #[error("the message no longer exists")]
    Gone,
}

impl SinkError {
    pub fn retry(reason: impl Into<String>) -> SinkError {
        SinkError::Retry {
            reason: reason.into(),
            after: None,
        }
    }
}

/// A chat destination. `channel` is a channel name from config (`releases`, `cab`, …).
///
/// `key` identifies one delivery: the engine passes the same key when it delivers the same
/// effect again (after a crash between posting and recording the post), so a sink that can
/// deduplicate (Discord's message nonce) posts once.
#[async_trait]
pub trait ChatSink: Send + Sync {
    /// The surface its messages are recorded under (`chat`, `discord`).
    fn surface(&self) -> &'static str;

    async fn notice(&self, channel: &str, notice: &Notice, key: &str) -> Result<Posted, SinkError>;

    async fn post_card(&self, channel: &str, card: &Card, key: &str) -> Result<Posted, SinkError>;

    async fn edit_card(
        &self,
        channel: &str,
        message_id: &str,
        card: &Card,
    ) -> Result<(), SinkError>;

    /// Answers a deployment protection rule (GitHub only).
    async fn answer_gate(&self, answer: &GateAnswer) -> Result<(), SinkError> {
        Err(SinkError::Permanent(format!(
            "the {} connection cannot answer deployment protection rules (for {})",
            self.surface(),
            answer.repository
        )))
    }
}

/// Writes notices to the log and, when a console is attached, to it; cards go to the log only
/// (the console shows a change when asked: `change show`).
#[derive(Debug)]
pub struct LogSink {
    console: broadcast::Sender<String>,
}

impl Default for LogSink {
    fn default() -> Self {
        LogSink {
            console: broadcast::channel(256).0,
        }
    }
}

impl LogSink {
    /// Messages as the console prints them (`#channel text`).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.console.subscribe()
    }
}

#[async_trait]
impl ChatSink for LogSink {
    fn surface(&self) -> &'static str {
        "chat"
    }

    async fn notice(&self, channel: &str, notice: &Notice, key: &str) -> Result<Posted, SinkError> {
        let text = match &notice.attachment {
            Some(a) => format!(
                "{}\n  [attached: {}, {} KiB; posted as a file on Discord]",
                notice.text,
                a.filename,
                a.data.len().div_ceil(1024)
            ),
            None => notice.text.clone(),
        };
        tracing::info!(channel, "{text}");
        // Nobody listening is fine: the log has it.
        let _ = self.console.send(format!("#{channel} {text}"));
        Ok(Posted {
            message_id: key.to_string(),
        })
    }

    async fn post_card(&self, channel: &str, card: &Card, key: &str) -> Result<Posted, SinkError> {
        tracing::info!(channel, change = %card.change, "card: {}", card.headline);
        Ok(Posted {
            message_id: key.to_string(),
        })
    }

    async fn edit_card(
        &self,
        channel: &str,
        message_id: &str,
        card: &Card,
    ) -> Result<(), SinkError> {
        tracing::info!(channel, change = %card.change, message_id, "card updated: {}", card.headline);
        Ok(())
    }
}

/// A card as a [`MemorySink`] holds it.
#[derive(Debug, Clone)]
pub struct ShownCard {
    pub message_id: String,
    pub channel: String,
    pub card: Card,
    /// How often it was edited after it was posted.
    pub edits: usize,
}

#[derive(Debug, Default)]
struct Memory {
    messages: Vec<(String, String)>,
    /// Every notice as posted, attachment included.
    notices: Vec<(String, Notice)>,
    cards: Vec<ShownCard>,
    /// Delivery key → message id: the same key posts once.
    keys: HashMap<String, String>,
}

/// Keeps every message in memory, in order (for tests and dry runs). Like a real surface it
/// gives each post an id, and it honours delivery keys: a key seen before posts nothing new.
#[derive(Debug, Default)]
pub struct MemorySink {
    memory: Mutex<Memory>,
    next: AtomicU64,
}

impl MemorySink {
    /// Notices posted so far, as (channel, text).
    pub fn messages(&self) -> Vec<(String, String)> {
        self.memory
            .lock()
            .map(|m| m.messages.clone())
            .unwrap_or_default()
    }

    /// Notices posted so far, whole (with their attachments), as (channel, notice).
    pub fn notices(&self) -> Vec<(String, Notice)> {
        self.memory
            .lock()
            .map(|m| m.notices.clone())
            .unwrap_or_default()
    }

    /// Cards posted so far, each as it stands after its edits.
    pub fn cards(&self) -> Vec<ShownCard> {
        self.memory
            .lock()
            .map(|m| m.cards.clone())
            .unwrap_or_default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> Result<T, SinkError> {
        let mut memory = self
            .memory
            .lock()
            .map_err(|_| SinkError::Permanent("message store poisoned".to_string()))?;
        Ok(f(&mut memory))
    }

    fn new_id(&self) -> String {
        format!("m{}", self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

#[async_trait]
impl ChatSink for MemorySink {
    fn surface(&self) -> &'static str {
        "chat"
    }

    async fn notice(&self, channel: &str, notice: &Notice, key: &str) -> Result<Posted, SinkError> {
        let id = self.new_id();
        self.with(|m| {
            if let Some(seen) = m.keys.get(key) {
                return Posted {
                    message_id: seen.clone(),
                };
            }
            m.keys.insert(key.to_string(), id.clone());
            m.messages.push((channel.to_string(), notice.text.clone()));
            m.notices.push((channel.to_string(), notice.clone()));
            Posted { message_id: id }
        })
    }

    async fn post_card(&self, channel: &str, card: &Card, key: &str) -> Result<Posted, SinkError> {
        let id = self.new_id();
        self.with(|m| {
            if let Some(seen) = m.keys.get(key) {
                return Posted {
                    message_id: seen.clone(),
                };
            }
            m.keys.insert(key.to_string(), id.clone());
            m.cards.push(ShownCard {
                message_id: id.clone(),
                channel: channel.to_string(),
                card: card.clone(),
                edits: 0,
            });
            Posted { message_id: id }
        })
    }

    async fn edit_card(
        &self,
        _channel: &str,
        message_id: &str,
        card: &Card,
    ) -> Result<(), SinkError> {
        self.with(|m| {
            let Some(shown) = m.cards.iter_mut().find(|c| c.message_id == message_id) else {
                return Err(SinkError::Gone);
            };
            shown.card = card.clone();
            shown.edits += 1;
            Ok(())
        })?
    }
}
