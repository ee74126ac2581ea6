//! Delivering what people are shown, through the chat sink: notices, and change cards posted
//! once per place and edited in place afterwards.
//!
//! A card's content is rendered from the record at delivery. Where a card already shows the
//! change (a message reference, or a post this lane made that the recorder has not written
//! yet), it is edited instead of posted, so delivering the same effect twice never posts
//! twice. Each post carries a key derived from the outbox item, the same on every retry, so a
//! sink that can deduplicate posts once even when the answer to a post was lost.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Dispatcher, attempt_number, settlement};
use crate::deploy;
use crate::domain::ChangeId;
use crate::domain::effect::{GateAnswer, Notice};
use crate::notify::{ChatSink, SinkError};
use crate::store::releases::{OutboxItem, OutboxKind};
use crate::workflow::{Settled, Settlement, Shown};

/// Cards a lane posted, by (change, place), until their references are surely recorded. A
/// lane delivers one channel's items in order, so an update right behind a post finds it here.
#[derive(Debug, Default)]
pub(super) struct Posted {
    ids: HashMap<(ChangeId, String), String>,
}

impl Posted {
    /// By the time it fills up, the recorder has long written what it holds.
    const KEEP: usize = 65_536;

    fn remember(&mut self, change: ChangeId, place: &str, message_id: &str) {
        if self.ids.len() >= Self::KEEP {
            self.ids.clear();
        }
        self.ids
            .insert((change, place.to_string()), message_id.to_string());
    }

    fn get(&self, change: ChangeId, place: &str) -> Option<String> {
        self.ids.get(&(change, place.to_string())).cloned()
    }
}

/// The delivery key of an outbox item: the same on every retry of that item.
fn key_of(item: &OutboxItem) -> String {
    format!("changebot-{}", item.id)
}

impl Dispatcher {
    /// Delivers one notice, card or card update through the sink of its surface.
    pub(super) async fn post(
        &self,
        item: OutboxItem,
        posted: &mut Posted,
        now: DateTime<Utc>,
    ) -> Settlement {
        if let Some(why) = crate::workflow::park_reason(&item, now) {
            return settlement(item, Settled::Park { why }, now);
        }
        let Some(sink) = self.sinks.get(item.surface.as_str()).cloned() else {
            let why = format!("no {} connection is configured to deliver it", item.surface);
            return settlement(item, Settled::Park { why }, now);
        };
        let result = match item.kind {
            OutboxKind::Card | OutboxKind::CardUpdate => {
                self.deliver_card(sink.as_ref(), &item, posted, now).await
            }
            OutboxKind::GateAnswer => match serde_json::from_str::<GateAnswer>(&item.body) {
                Ok(answer) => sink.answer_gate(&answer).await.map(|_| Vec::new()),
                Err(e) => Err(SinkError::Permanent(format!(
                    "the stored answer cannot be read: {e}"
                ))),
            },
            _ => {
                let notice = Notice::from_stored(&item.body);
                let channel = super::channel_of(&item);
                sink.notice(&channel, &notice, &key_of(&item))
                    .await
                    .map(|_| Vec::new())
            }
        };
        let what = match result {
            Ok(shown) => Settled::Posted { shown },
            Err(SinkError::Permanent(why)) => Settled::Park {
                why: format!("{} refused it: {why}", item.surface),
            },
            Err(e) => {
                let backoff = deploy::retry_delay(attempt_number(&item), &mut rand::thread_rng());
                let delay = match &e {
                    SinkError::Retry {
                        after: Some(after), ..
                    } => (*after).max(std::time::Duration::from_millis(100)),
                    _ => backoff,
                };
                Settled::Failed {
                    error: e.to_string(),
                    retry_at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                }
            }
        };
        settlement(item, what, now)
    }

    /// Brings the change's card in the item's place up to date: edits the message that shows
    /// it there, or posts one. Returns the card posted anew, if any.
    async fn deliver_card(
        &self,
        sink: &dyn ChatSink,
        item: &OutboxItem,
        posted: &mut Posted,
        now: DateTime<Utc>,
    ) -> Result<Vec<Shown>, SinkError> {
        let Some(change) = item.change else {
            return Ok(Vec::new());
        };
        let internal =
            |e: &dyn std::fmt::Display| SinkError::retry(format!("reading {change}: {e}"));
        let Some(card) = self
            .workflow
            .card(change, now)
            .await
            .map_err(|e| internal(&e))?
        else {
            return Ok(Vec::new()); // the change is gone: nothing to show
        };
        let surface = sink.surface();
        let place = super::channel_of(item);
        let recorded = self
            .workflow
            .store()
            .message_ref(change, surface, &place)
            .await
            .map_err(|e| internal(&e))?
            .map(|r| r.message_id);
        if let Some(message_id) = recorded.or_else(|| posted.get(change, &place)) {
            match sink.edit_card(&place, &message_id, &card).await {
                Ok(()) => return Ok(Vec::new()),
                Err(SinkError::Gone) => {
                    tracing::info!(%change, place, "a card was deleted; posting it again");
                }
                Err(e) => return Err(e),
            }
        }
        // One key per (change, surface, place): whichever item posts the card, a sink that
        // deduplicates posts it once.
        let key = format!("changebot-card-{change}-{surface}-{place}");
        let new = sink.post_card(&place, &card, &key).await?.message_id;
        posted.remember(change, &place, &new);
        Ok(vec![Shown {
            change,
            surface: surface.to_string(),
            place,
            message_id: new,
        }])
    }
}
