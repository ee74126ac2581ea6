//! Where chat messages go: the channel abstraction the outbox delivers through. Until Discord is
//! connected, messages go to the log and to the console; the Discord adapter implements the
//! same trait.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::broadcast;

/// A chat destination. `channel` is a channel name from config (`releases`, `cab`, …).
#[async_trait]
pub trait ChatSink: Send + Sync {
    async fn post(&self, channel: &str, text: &str) -> Result<(), String>;
}

/// Writes messages to the log and, when a console is attached, to it.
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
    async fn post(&self, channel: &str, text: &str) -> Result<(), String> {
        tracing::info!(channel, "{text}");
        // Nobody listening is fine: the log has it.
        let _ = self.console.send(format!("#{channel} {text}"));
        Ok(())
    }
}

/// Keeps every message in memory, in order (for tests and dry runs).
#[derive(Debug, Default)]
pub struct MemorySink {
    messages: Mutex<Vec<(String, String)>>,
}

impl MemorySink {
    pub fn messages(&self) -> Vec<(String, String)> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl ChatSink for MemorySink {
    async fn post(&self, channel: &str, text: &str) -> Result<(), String> {
        self.messages
            .lock()
            .map_err(|_| "message store poisoned".to_string())?
            .push((channel.to_string(), text.to_string()));
        Ok(())
    }
}
