//! Queuing what people are shown: notices to a channel and change cards, as typed outbox
//! effects carrying structured content. Cards are rendered from the record when they are
//! delivered ([`Workflow::card`]), so a card never shows a state older than its delivery.

use chrono::{DateTime, Utc};

use super::{Workflow, WorkflowError};
use crate::domain::effect::{Card, Notice, NoticeEvent};
use crate::domain::explain::fmt_slot;
use crate::domain::{Change, ChangeId};
use crate::store::Tx;
use crate::store::releases::{NewOutbox, OutboxKind};

/// A notice to queue.
pub(super) struct NoticeTo<'a> {
    /// The sink: `chat`, or `github` (then `channel` is a PR, `owner/repo#42`).
    pub surface: &'a str,
    pub channel: &'a str,
    pub notice: Notice,
    /// Notices on one topic supersede each other (only the newest pending one goes out).
    pub topic: Option<&'a str>,
    /// For the notice that announces a parked item: that item.
    pub parked_item: Option<i64>,
}

impl Workflow {
    /// The chat channel for a service's notices and cards.
    pub(super) fn channel_of(&self, service: &str) -> String {
        self.config
            .org
            .service(service)
            .and_then(|s| s.channel.clone())
            .unwrap_or_else(|| "releases".to_string())
    }

    /// Queues a notice.
    pub(super) async fn queue_notice(
        &self,
        tx: &mut Tx,
        to: NoticeTo<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let body = to.notice.to_stored();
        let item = NewOutbox {
            kind: OutboxKind::Notice,
            surface: to.surface,
            deployment: None,
            change: to.notice.change,
            channel: Some(to.channel),
            body: &body,
            topic: to.topic,
            parked_item: to.parked_item,
        };
        tx.insert_outbox(&item, now).await?;
        Ok(())
    }

    /// Queues a notice about `change` to its service's channel.
    pub(super) async fn notify(
        &self,
        tx: &mut Tx,
        change: &Change,
        event: NoticeEvent,
        text: String,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        self.notice_about(tx, change, event, text, None, now).await
    }

    /// Queues a notice about where a change's booking stands (booked, rebooked, unbooked,
    /// reminded). Only the newest of these goes out: after downtime a change is announced as
    /// it stands now, not once per superseded booking.
    pub(super) async fn notify_booking(
        &self,
        tx: &mut Tx,
        change: &Change,
        event: NoticeEvent,
        text: String,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let topic = format!("booking:{}", change.id);
        self.notice_about(tx, change, event, text, Some(&topic), now)
            .await
    }

    async fn notice_about(
        &self,
        tx: &mut Tx,
        change: &Change,
        event: NoticeEvent,
        text: String,
        topic: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let channel = self.channel_of(&change.service);
        let to = NoticeTo {
            surface: "chat",
            channel: &channel,
            notice: Notice {
                event,
                change: Some(change.id),
                text,
                attachment: None,
            },
            topic,
            parked_item: None,
        };
        self.queue_notice(tx, to, now).await
    }

    /// Queues `change`'s cards: in its service's channel, and for a PR change on the PR (a
    /// sticky comment and the `changebot/change` commit status) when GitHub replies are
    /// configured. Each is posted once, then kept current in place: every later write to the
    /// change or its votes queues an update of all its cards (`Tx` does that at commit).
    pub(super) async fn show_card(
        &self,
        tx: &mut Tx,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let channel = self.channel_of(&change.service);
        self.show_card_in(tx, change, "chat", &channel, now).await?;
        if let (Some(pr), true) = (&change.pull_request, self.github_replies()) {
            let place = pr_place(&pr.repository, pr.number);
            self.show_card_in(tx, change, "github", &place, now).await?;
        }
        Ok(())
    }

    /// Tells the CAB channel about an emergency change (opened as one, or relabeled to one):
    /// it bypasses the normal cadence, so the board hears of it at once.
    pub(super) async fn alert_cab_if_emergency(
        &self,
        tx: &mut Tx,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        if change.change_type != crate::domain::ChangeType::Emergency {
            return Ok(());
        }
        let to = NoticeTo {
            surface: "chat",
            channel: "cab",
            notice: Notice {
                event: NoticeEvent::Info,
                change: Some(change.id),
                text: format!(
                    "emergency change: {} — requested by {}",
                    change.headline(),
                    change.requester
                ),
                attachment: None,
            },
            topic: Some(&format!("emergency:{}", change.id)),
            parked_item: None,
        };
        self.queue_notice(tx, to, now).await
    }

    /// Whether replies on GitHub (comments, statuses) are configured.
    pub fn github_replies(&self) -> bool {
        self.config.github_credentials().is_some()
    }

    async fn show_card_in(
        &self,
        tx: &mut Tx,
        change: &Change,
        surface: &str,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let item = NewOutbox {
            kind: OutboxKind::Card,
            surface,
            deployment: None,
            change: Some(change.id),
            channel: Some(channel),
            body: "",
            topic: None,
            parked_item: None,
        };
        tx.insert_outbox(&item, now).await?;
        Ok(())
    }

    /// The card of `change` as it stands now (`None`: no such change).
    pub async fn card(
        &self,
        id: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<Option<Card>, WorkflowError> {
        let Some(change) = self.store.change(id).await? else {
            return Ok(None);
        };
        let votes = self.store.votes(id).await?;
        let checks = match &change.pull_request {
            Some(pr) => {
                self.store
                    .check_reports(&pr.repository, &pr.head_sha)
                    .await?
            }
            None => Vec::new(),
        };
        let loaded = super::context::Loaded {
            change,
            votes,
            checks,
            booked: Vec::new(),
            freezes: Vec::new(),
        };
        let policy = self.context(&loaded, now).policy_status(&loaded.change);
        let tz = self.tz_of(&loaded.change.service);
        let slot = loaded.change.slot.map(|s| fmt_slot(s, tz));
        Ok(Some(Card::of(
            &loaded.change,
            policy.as_ref(),
            slot,
            &self.config.server.public_url,
        )))
    }
}

/// How a pull request is named as a place: `owner/repo#42`.
pub fn pr_place(repository: &str, number: i64) -> String {
    format!("{repository}#{number}")
}
