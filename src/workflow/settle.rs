//! Settling outbox items after a delivery try: delivered, retried later, or parked for a
//! person, recorded in groups (outcomes that arrive together share one transaction) and fenced
//! (an outcome is recorded only while its deliverer still holds the item's claim). Also the
//! bookkeeping of takeovers: a deployment call cut off by a crash is an audited attempt with
//! an unknown outcome.

use chrono::{DateTime, Duration, Utc};

use super::context::not_found;
use super::deployments::{Delivery, NextStep};
use super::effects::NoticeTo;
use super::{Actor, Outcome, Workflow, WorkflowError};
use crate::domain::effect::{Notice, NoticeEvent};
use crate::domain::{ChangeId, State};
use crate::store::Tx;
use crate::store::claims::Table;
use crate::store::releases::{JobKind, NewJob, OutboxItem, OutboxKind};

/// A chat notice is parked after this many failed tries …
pub const MAX_CHAT_ATTEMPTS: i64 = 40;
/// … or once it is this old.
pub const MAX_CHAT_AGE: Duration = Duration::hours(24);
/// A deployment call is parked after this many claims (it keeps failing, or every process
/// that takes it dies on it). Ordinary retries end earlier, at the target's timeout.
pub const MAX_DEPLOY_ATTEMPTS: i64 = 25;

/// A message that now shows a change, to remember so later moves edit it in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub change: ChangeId,
    pub surface: String,
    pub place: String,
    pub message_id: String,
}

/// What happened to one claimed item.
#[derive(Debug, Clone)]
pub enum Settled {
    /// A notice or card went out (`shown`: cards posted anew).
    Posted { shown: Vec<Shown> },
    /// The delivery failed; try again at `retry_at` unless it failed too often.
    Failed {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// A deployment call was made.
    Called(Delivery),
    /// A dry run: nothing is called, the deployment is recorded as such.
    DryRun,
    /// Nothing (more) to send: finished, or waiting for a callback.
    Nothing,
    /// The call can no longer be sent; the deployment fails with this reason.
    Unsent { why: String },
    /// Give the item up until a person retries it.
    Park { why: String },
}

/// One item's outcome, to record.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub item: OutboxItem,
    pub what: Settled,
    pub at: DateTime<Utc>,
}

/// Why a freshly claimed item should be parked instead of tried again, if it should.
pub fn park_reason(item: &OutboxItem, now: DateTime<Utc>) -> Option<String> {
    match item.kind {
        k if k.is_chat() && item.attempts > MAX_CHAT_ATTEMPTS => Some(format!(
            "not delivered after {} attempts",
            MAX_CHAT_ATTEMPTS
        )),
        k if k.is_chat() && now - item.created_at > MAX_CHAT_AGE => Some(format!(
            "not delivered within {} hours",
            MAX_CHAT_AGE.num_hours()
        )),
        OutboxKind::Deploy if item.attempts > MAX_DEPLOY_ATTEMPTS => {
            Some(format!("not settled after {MAX_DEPLOY_ATTEMPTS} attempts"))
        }
        _ => None,
    }
}

/// Why an item that just failed should not be tried again, if it should not.
fn give_up(item: &OutboxItem, now: DateTime<Utc>) -> Option<String> {
    let (max, verb) = match item.kind {
        OutboxKind::Deploy => (MAX_DEPLOY_ATTEMPTS, "settled"),
        _ => (MAX_CHAT_ATTEMPTS, "delivered"),
    };
    park_reason(item, now).or_else(|| {
        (item.attempts >= max).then(|| {
            let n = item.attempts;
            format!(
                "not {verb} after {n} attempt{}",
                if n == 1 { "" } else { "s" }
            )
        })
    })
}

impl Workflow {
    /// Records a group of outcomes in one transaction. Outcomes whose item was taken over by
    /// another holder in the meantime are refused (not recorded); returns how many were.
    pub async fn settle(&self, batch: &[Settlement]) -> Result<usize, WorkflowError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut tx = self.store.begin().await?;
        let claims: Vec<(i64, &str)> = batch
            .iter()
            .filter_map(|s| Some((s.item.id, s.item.claim_token.as_deref()?)))
            .collect();
        let held = tx.held(Table::Outbox, &claims).await?;
        let mut done = Vec::new();
        let mut refused = 0;
        for s in batch {
            // A message that was posted exists, whoever holds the item now: remember it, so
            // the next delivery edits it instead of posting another.
            if let Settled::Posted { shown } = &s.what {
                for m in shown {
                    tx.record_message_ref(m.change, &m.surface, &m.place, &m.message_id, s.at)
                        .await?;
                }
            }
            if !held.contains(&s.item.id) {
                tracing::warn!(
                    item = s.item.id,
                    "not recording a delivery outcome: its claim was taken over by another holder"
                );
                refused += 1;
                continue;
            }
            match &s.what {
                Settled::Posted { .. } | Settled::Nothing => done.push(s.item.id),
                Settled::DryRun => {
                    if let Some(dep) = s.item.deployment {
                        self.finish_dry_run_in(&mut tx, dep, s.at).await?;
                    }
                    done.push(s.item.id);
                }
                Settled::Unsent { why } => {
                    if let Some(dep) = s.item.deployment {
                        self.fail_unsent_in(&mut tx, dep, why, s.at).await?;
                    }
                    done.push(s.item.id);
                }
                Settled::Failed { error, retry_at } => match give_up(&s.item, s.at) {
                    Some(why) => {
                        let why = format!("{why}; last error: {error}");
                        self.park_in(&mut tx, &s.item, &why, s.at).await?;
                    }
                    None => tx.retry_outbox(s.item.id, *retry_at, error).await?,
                },
                Settled::Called(d) => {
                    match self
                        .deployment_attempted_in(
                            &mut tx,
                            d.deployment,
                            &d.report,
                            d.retry_delay,
                            d.ended,
                        )
                        .await?
                    {
                        NextStep::Done => done.push(s.item.id),
                        NextStep::RetryAt(at) => tx.retry_outbox(s.item.id, at, "retrying").await?,
                    }
                }
                Settled::Park { why } => self.park_in(&mut tx, &s.item, why, s.at).await?,
            }
        }
        let last = batch.iter().map(|s| s.at).max().unwrap_or_default();
        tx.finish_outbox_many(&done, last).await?;
        tx.commit().await?;
        Ok(refused)
    }

    /// Parks an item: it waits for `release retry`, its change hears about it, and a parked
    /// deployment call still ends at the target's timeout (the change is never stranded in
    /// `implement`).
    async fn park_in(
        &self,
        tx: &mut Tx,
        item: &OutboxItem,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        tracing::warn!(item = item.id, why, "outbox item parked");
        tx.park_outbox(item.id, why, now).await?;
        let what = match (item.kind, item.deployment) {
            (OutboxKind::Deploy, Some(dep)) => {
                if let Some(d) = tx
                    .deployment(dep)
                    .await?
                    .filter(|d| !d.status.is_finished())
                {
                    let job = NewJob {
                        kind: JobKind::DeploymentTimeout,
                        change: Some(d.change),
                        deployment: Some(d.id),
                        name: None,
                        due_at: d.deadline_at.max(now),
                    };
                    tx.insert_job(&job, now).await?;
                }
                format!("the deployment call of {dep}")
            }
            (OutboxKind::Card | OutboxKind::CardUpdate, _) => format!(
                "the card in #{}",
                item.channel.as_deref().unwrap_or("releases")
            ),
            _ => format!(
                "a notice to #{}",
                item.channel.as_deref().unwrap_or("releases")
            ),
        };
        if item.parked_item.is_some() {
            // The notice about a parked item is not announced in turn.
            return Ok(());
        }
        let actor = Self::scheduler_actor();
        // A card heals with the change's next move; it is audited, not announced.
        let announce = !matches!(item.kind, OutboxKind::Card | OutboxKind::CardUpdate);
        let (text, channel) = match item.change {
            Some(id) => {
                let change = tx.change(id).await?.ok_or_else(|| not_found(id))?;
                let detail = format!("{what} is parked: {why}");
                self.audit(tx, Some(id), &actor, "delivery_parked", detail, now)
                    .await?;
                if !announce {
                    return Ok(());
                }
                let text = format!(
                    "{} — {what} is parked: {why}; `release retry {id}` sends it again",
                    change.headline()
                );
                (text, self.channel_of(&change.service))
            }
            None => (format!("{what} is parked: {why}"), "releases".to_string()),
        };
        let to = NoticeTo {
            surface: "chat",
            channel: &channel,
            notice: Notice {
                event: NoticeEvent::Parked,
                change: item.change,
                text,
                attachment: None,
            },
            topic: None,
            parked_item: Some(item.id),
        };
        self.queue_notice(tx, to, now).await?;
        Ok(())
    }

    /// Records the attempt a lapsed holder was making when it stopped: the call may have
    /// reached the target, so it counts, with its outcome unknown. Fenced like [`settle`].
    pub async fn record_cut_off(
        &self,
        item: &OutboxItem,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let (Some(dep_id), Some(token), Some(from)) = (
            item.deployment,
            item.claim_token.as_deref(),
            item.taken_from.as_deref(),
        ) else {
            return Ok(());
        };
        let mut tx = self.store.begin().await?;
        if !tx
            .held(Table::Outbox, &[(item.id, token)])
            .await?
            .contains(&item.id)
        {
            return Ok(());
        }
        let Some(mut dep) = tx.deployment(dep_id).await? else {
            return Ok(());
        };
        if dep.status.is_finished() {
            return Ok(());
        }
        dep.attempts += 1;
        tx.update_deployment(&dep).await?;
        let detail = format!(
            "{dep_id} attempt {}: outcome unknown: the call was cut off when its holder \
             ({from}) stopped; sending it again with the same Idempotency-Key",
            dep.attempts
        );
        let actor = Self::scheduler_actor();
        self.audit(
            &mut tx,
            Some(dep.change),
            &actor,
            "deployment_attempt",
            detail,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `release retry CHG-N`: puts the change's parked deliveries back in the queue.
    pub(super) async fn retry_parked(
        &self,
        actor: &Actor,
        id: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let mut tx = self.store.begin().await?;
        let change = tx.change(id).await?.ok_or_else(|| not_found(id))?;
        if let Err(why) = self.may_manage(actor, &change, "retry deliveries of") {
            return self.refuse(tx, id, actor, "release retry", why, now).await;
        }
        let items = tx.unpark_outbox(id, now).await?;
        if items.is_empty() {
            let why = format!("{id} has no parked deliveries; `release status {id}` shows them");
            return self.refuse(tx, id, actor, "release retry", why, now).await;
        }
        for item in &items {
            let what = match item.deployment {
                Some(dep) => format!("deployment call of {dep}"),
                None => format!(
                    "notice to #{}",
                    item.channel.as_deref().unwrap_or("releases")
                ),
            };
            self.audit(
                &mut tx,
                Some(id),
                actor,
                "delivery_retried",
                format!("{what} queued again"),
                now,
            )
            .await?;
        }
        if change.state == State::Implement {
            tracing::info!(change = %id, "parked deployment call retried by a person");
        }
        tx.commit().await?;
        self.release_status(id).await
    }
}
