//! A chat sink that can be made to fail: while `failing`, every delivery is refused (as a chat
//! service outage would be, optionally with a rate limit's retry-after); with `lose_acks`, a
//! delivery reaches the inner `MemorySink` but its answer is lost (a crash or a dropped
//! connection between posting and recording the post). Otherwise messages go to `inner`.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use changebot::domain::effect::{Card, Notice};
use changebot::notify::{ChatSink, MemorySink, Posted, SinkError};

#[derive(Debug, Default)]
pub struct FlakySink {
    pub inner: Arc<MemorySink>,
    failing: AtomicBool,
    lose_acks: AtomicBool,
    retry_after: Mutex<Option<Duration>>,
    refused: AtomicUsize,
}

impl FlakySink {
    pub fn new(inner: Arc<MemorySink>) -> FlakySink {
        FlakySink {
            inner,
            ..FlakySink::default()
        }
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// While failing, answer like a rate limit: try again after `after`.
    pub fn set_retry_after(&self, after: Option<Duration>) {
        if let Ok(mut r) = self.retry_after.lock() {
            *r = after;
        }
    }

    /// Deliver, but lose the answer.
    pub fn set_lose_acks(&self, lose: bool) {
        self.lose_acks.store(lose, Ordering::SeqCst);
    }

    /// Deliveries refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    fn refuse(&self) -> Option<SinkError> {
        if !self.failing.load(Ordering::SeqCst) {
            return None;
        }
        self.refused.fetch_add(1, Ordering::SeqCst);
        let after = self.retry_after.lock().ok().and_then(|r| *r);
        Some(SinkError::Retry {
            reason: "chat service unavailable (503)".into(),
            after,
        })
    }

    fn answer<T>(&self, result: Result<T, SinkError>) -> Result<T, SinkError> {
        if result.is_ok() && self.lose_acks.load(Ordering::SeqCst) {
            return Err(SinkError::retry(
                "connection reset before the answer arrived",
            ));
        }
        result
    }
}

#[async_trait]
impl ChatSink for FlakySink {
    fn surface(&self) -> &'static str {
        self.inner.surface()
    }

    async fn notice(&self, channel: &str, notice: &Notice, key: &str) -> Result<Posted, SinkError> {
        if let Some(e) = self.refuse() {
            return Err(e);
        }
        self.answer(self.inner.notice(channel, notice, key).await)
    }

    async fn post_card(&self, channel: &str, card: &Card, key: &str) -> Result<Posted, SinkError> {
        if let Some(e) = self.refuse() {
            return Err(e);
        }
        self.answer(self.inner.post_card(channel, card, key).await)
    }

    async fn edit_card(
        &self,
        channel: &str,
        message_id: &str,
        card: &Card,
    ) -> Result<(), SinkError> {
        if let Some(e) = self.refuse() {
            return Err(e);
        }
        self.answer(self.inner.edit_card(channel, message_id, card).await)
    }
}
