//! Processing stored GitHub deliveries through the workflow.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::events::Event;
use crate::clock::Clock;
use crate::holder::Holder;
use crate::store::Store;
use crate::store::inbox::StoredDelivery;
use crate::workflow::{Actor, Identity, Surface, Workflow, WorkflowError};

/// A delivery that keeps failing is given up after this many tries.
const MAX_ATTEMPTS: i64 = 10;
/// Deliveries claimed at a time.
const BATCH: i64 = 64;
/// The pause between full batches.
const YIELD: std::time::Duration = std::time::Duration::from_millis(20);
/// While at least this many deliveries wait for their acknowledgement, processing steps
/// aside (acknowledging within GitHub's 10 s is what must never slip; processing catches up
/// right after)...
const ACKS_BUSY: usize = 8;
/// ...but never for longer than this between batches, so processing always progresses.
const STEP_ASIDE_AT_MOST: std::time::Duration = std::time::Duration::from_millis(250);

/// Claims stored deliveries and applies them, oldest first.
#[derive(Clone)]
pub struct Processor {
    workflow: Workflow,
    inbox: Store,
    holder: Holder,
    /// The webhook's inbox writer, to see how busy acknowledging is.
    writer: Option<super::InboxWriter>,
}

impl Processor {
    pub fn new(workflow: Workflow, inbox: Store, holder: Holder) -> Processor {
        Processor {
            workflow,
            inbox,
            holder,
            writer: None,
        }
    }

    /// Steps aside while `writer` has many acknowledgements waiting.
    pub fn yielding_to(mut self, writer: super::InboxWriter) -> Processor {
        self.writer = Some(writer);
        self
    }

    /// Whether acknowledging is busy enough that processing should wait (for at most
    /// `STEP_ASIDE_AT_MOST` since the last batch).
    fn step_aside(&self, last_batch: std::time::Instant) -> bool {
        self.writer
            .as_ref()
            .is_some_and(|w| w.acks_waiting() >= ACKS_BUSY)
            && last_batch.elapsed() < STEP_ASIDE_AT_MOST
    }

    /// Processes every delivery due at `now`, then answers held deployment protection rules
    /// that can be answered; returns how many deliveries were handled.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<usize, WorkflowError> {
        self.workflow.settle_gates(now).await?;
        let mut handled = 0;
        loop {
            match self.run_batch(now).await? {
                0 => return Ok(handled),
                n => handled += n,
            }
        }
    }

    /// Processes one batch of due deliveries; returns how many were handled.
    async fn run_batch(&self, now: DateTime<Utc>) -> Result<usize, WorkflowError> {
        let mut handled = 0;
        {
            let lease = self.workflow.config().scheduler.lease;
            let req = self.holder.request(now, lease, BATCH);
            let claimed = self.inbox.claim_deliveries(req).await?;
            if claimed.is_empty() {
                return Ok(0);
            }
            // Deliveries that went through are marked done together: one write per batch.
            let token = claimed[0].claim_token.clone().unwrap_or_default();
            let mut done = Vec::with_capacity(claimed.len());
            for d in &claimed {
                if self.handle(d, now).await? {
                    done.push(d.id);
                }
                handled += 1;
            }
            self.inbox.finish_deliveries(&done, &token, now).await?;
        }
        Ok(handled)
    }

    /// Processes deliveries until `stop` turns true, polling every `tick`.
    pub async fn run(
        &self,
        clock: Arc<dyn Clock>,
        tick: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
        health: crate::health::Health,
    ) {
        let mut last_batch = std::time::Instant::now();
        while !*stop.borrow() {
            if self.step_aside(last_batch) {
                tokio::select! {
                    () = tokio::time::sleep(YIELD) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            last_batch = std::time::Instant::now();
            // Between full batches the processor pauses briefly, so a flood of deliveries is
            // acknowledged promptly and worked through right behind.
            let pause = match self.run_batch(clock.now()).await {
                Ok(n) => {
                    health.ok("github inbox");
                    if n as i64 >= BATCH { YIELD } else { tick }
                }
                Err(e) => {
                    tracing::error!(error = %e, "processing GitHub deliveries failed");
                    health.failed("github inbox", &e);
                    tick
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        health.stopped("github inbox");
    }

    /// Applies one delivery; `true` when it is done (applied, or refused by the rules), else
    /// it was put back for a retry or given up.
    async fn handle(&self, d: &StoredDelivery, now: DateTime<Utc>) -> Result<bool, WorkflowError> {
        match self.apply(d, now).await {
            // Refused or invalid: the rules said no and audited it; nothing to retry.
            Ok(()) => Ok(true),
            Err(e) if e.is_user_error() => Ok(true),
            Err(e) if d.attempts >= MAX_ATTEMPTS => {
                tracing::error!(delivery = d.delivery_id, error = %e, "giving up a GitHub delivery");
                let why = format!("gave up after {} attempts: {e}", d.attempts);
                self.inbox.finish_delivery(d, Some(&why), now).await?;
                Ok(false)
            }
            Err(e) => {
                tracing::warn!(delivery = d.delivery_id, error = %e, "a GitHub delivery failed; retrying");
                let delay = Duration::seconds(2_i64.saturating_pow(d.attempts.clamp(0, 10) as u32));
                self.inbox
                    .retry_delivery(d, now + delay, &e.to_string())
                    .await?;
                Ok(false)
            }
        }
    }

    fn actor(&self, login: &str) -> Actor {
        let org = &self.workflow.config().org;
        Actor::resolve(org, Identity::Github(login.to_string()), Surface::Github)
    }

    async fn apply(&self, d: &StoredDelivery, now: DateTime<Utc>) -> Result<(), WorkflowError> {
        let event: Event = match serde_json::from_str(&d.summary) {
            Ok(e) => e,
            Err(why) => {
                let why = format!("delivery {} cannot be read back: {why}", d.delivery_id);
                return Err(WorkflowError::Invalid(why));
            }
        };
        let w = &self.workflow;
        match event {
            Event::Ping | Event::Ignored => Ok(()),
            Event::Opened { sender, pr } => w
                .pull_request_opened(&self.actor(&sender), &pr, now)
                .await
                .map(|_| ()),
            Event::Pushed { sender, pr } => {
                w.pull_request_pushed(&self.actor(&sender), &pr, now).await
            }
            Event::Labeled { sender, pr } => {
                w.pull_request_labeled(&self.actor(&sender), &pr, now).await
            }
            Event::Closed { sender, pr } => {
                w.pull_request_closed(&self.actor(&sender), &pr, now).await
            }
            Event::Reviewed { reviewer, review } => {
                w.pull_request_reviewed(&self.actor(&reviewer), &review, now)
                    .await
            }
            Event::Commented {
                author,
                repository,
                number,
                body,
            } => w
                .pull_request_commented(
                    &self.actor(&author),
                    &repository,
                    number,
                    &body,
                    &d.delivery_id,
                    now,
                )
                .await
                .map(|_| ()),
            Event::Checked { check } => w.check_reported(&check, now).await,
            Event::ProtectionRequested { request } => {
                w.protection_requested(&request, d.received_at, false, now)
                    .await
            }
            Event::DeploymentStatus { deployment } => w.deployment_reported(&deployment, now).await,
        }
    }
}
