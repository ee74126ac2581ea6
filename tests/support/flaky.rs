//! A chat sink that can be made to fail: while `failing`, every post is refused (as a chat
//! service outage would be); otherwise messages go to the inner `MemorySink`.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use changebot::notify::{ChatSink, MemorySink};

#[derive(Debug, Default)]
pub struct FlakySink {
    pub inner: Arc<MemorySink>,
    failing: AtomicBool,
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

    /// Posts refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ChatSink for FlakySink {
    async fn post(&self, channel: &str, text: &str) -> Result<(), String> {
        if self.failing.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err("chat service unavailable (503)".into());
        }
        self.inner.post(channel, text).await
    }
}
