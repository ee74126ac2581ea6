//! Delivers queued side effects: deployment calls and chat messages. Items are claimed with a
//! lease, delivered, and then marked done in the database; an item whose process died mid-call
//! is claimed again after its lease, and a deployment call repeated that way carries the same
//! `Idempotency-Key`, so a target that honours it deploys once.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::deploy::{self, DeployClient};
use crate::domain::DeploymentId;
use crate::domain::release::Deployment;
use crate::notify::ChatSink;
use crate::store::releases::{OutboxItem, OutboxKind};
use crate::workflow::{CallPlan, Delivery, Workflow, WorkflowError};

/// Items claimed per round; at most one wave of calls, so a round (≤ one 30 s attempt)
/// always ends well inside the claim's lease.
const BATCH: i64 = 256;
/// Deployment calls in flight at once.
const CONCURRENCY: usize = 128;

#[derive(Clone)]
pub struct Dispatcher {
    workflow: Workflow,
    client: DeployClient,
    sink: Arc<dyn ChatSink>,
}

impl Dispatcher {
    pub fn new(workflow: Workflow, client: DeployClient, sink: Arc<dyn ChatSink>) -> Self {
        Dispatcher {
            workflow,
            client,
            sink,
        }
    }

    /// Delivers everything due at `now`; returns how many items were handled.
    pub async fn run_once(&self, start: DateTime<Utc>) -> Result<usize, WorkflowError> {
        let lease = self.workflow.config().scheduler.lease;
        let begun = std::time::Instant::now();
        let mut handled = 0;
        loop {
            // Each round claims at the time it really starts, so its lease is never stale.
            let now = start + chrono::Duration::from_std(begun.elapsed()).unwrap_or_default();
            let items = self
                .workflow
                .store()
                .claim_outbox(now, now + lease, BATCH)
                .await?;
            if items.is_empty() {
                return Ok(handled);
            }
            handled += items.len();
            let started = std::time::Instant::now();
            let (chat, calls): (Vec<OutboxItem>, Vec<OutboxItem>) =
                items.into_iter().partition(|i| i.kind == OutboxKind::Chat);
            // Chat messages go out in the order they were written.
            let mut delivered = Vec::new();
            for item in &chat {
                if self.deliver_chat(item, now).await {
                    delivered.push(item.id);
                }
            }
            if let Err(e) = self.workflow.outbox_done_many(&delivered, now).await {
                tracing::error!(error = %e, "could not record chat deliveries; they may be repeated");
            }
            let ids: Vec<DeploymentId> = calls.iter().filter_map(|i| i.deployment).collect();
            let deployments: HashMap<DeploymentId, Deployment> = self
                .workflow
                .store()
                .deployments_by_id(&ids)
                .await?
                .into_iter()
                .map(|d| (d.id, d))
                .collect();
            let deployments = &deployments;
            let attempts: Vec<Delivery> = futures::stream::iter(calls)
                .map(|item| async move { self.call(&item, deployments, now).await })
                .buffer_unordered(CONCURRENCY)
                .filter_map(|d| async move { d })
                .collect()
                .await;
            tracing::debug!(calls = attempts.len(), chat = delivered.len(), elapsed = ?started.elapsed(), "outbox calls");
            let recorded = std::time::Instant::now();
            let mut result = self.workflow.deliveries_attempted(&attempts).await;
            if result.is_err() && attempts.len() > 1 {
                // Keep every attempt that can be kept: record them one by one.
                tracing::warn!("batched delivery bookkeeping failed; recording one by one");
                result = Ok(());
                for one in attempts.chunks(1) {
                    if let Err(e) = self.workflow.deliveries_attempted(one).await {
                        result = Err(e);
                    }
                }
            }
            tracing::debug!(calls = attempts.len(), elapsed = ?recorded.elapsed(), "outbox bookkeeping");
            if let Err(e) = result {
                tracing::error!(error = %e, "could not record deployment attempts; they will be retried after their lease");
            }
        }
    }

    /// Posts one chat message; `true` when delivered (the caller records it).
    async fn deliver_chat(&self, item: &OutboxItem, now: DateTime<Utc>) -> bool {
        let channel = item.channel.as_deref().unwrap_or("releases");
        let error = match self.sink.post(channel, &item.body).await {
            Ok(()) => return true,
            Err(e) => e,
        };
        let outcome = if item.attempts >= 10 {
            self.workflow.outbox_dead(item.id, &error, now).await
        } else {
            let delay = deploy::retry_delay(attempt_number(item), &mut rand::thread_rng());
            let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            self.workflow.outbox_retry(item.id, at, &error).await
        };
        if let Err(e) = outcome {
            tracing::error!(item = item.id, error = %e, "could not record a failed chat delivery");
        }
        false
    }

    /// Makes one deployment call; returns the attempt to record (None: nothing was sent).
    async fn call(
        &self,
        item: &OutboxItem,
        deployments: &HashMap<DeploymentId, Deployment>,
        now: DateTime<Utc>,
    ) -> Option<Delivery> {
        match self.try_call(item, deployments, now).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(item = item.id, error = %e, "deployment delivery failed; it will be retried after its lease");
                None
            }
        }
    }

    async fn try_call(
        &self,
        item: &OutboxItem,
        deployments: &HashMap<DeploymentId, Deployment>,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, WorkflowError> {
        let w = &self.workflow;
        let Some(dep_id) = item.deployment else {
            w.outbox_dead(item.id, "deploy item without a deployment", now)
                .await?;
            return Ok(None);
        };
        let call = match w
            .plan_call(dep_id, deployments.get(&dep_id), &item.body, now)
            .await?
        {
            CallPlan::Send(call) => call,
            CallPlan::DryRun => {
                w.finish_dry_run(dep_id, now).await?;
                w.outbox_done(item.id, now).await?;
                return Ok(None);
            }
            CallPlan::Skip => {
                w.outbox_done(item.id, now).await?;
                return Ok(None);
            }
        };
        let secret = call.secret.as_deref().map(str::as_bytes);
        let report = self.client.attempt(&call.url, secret, &call.request).await;
        let retry_delay = deploy::retry_delay(attempt_number(item), &mut rand::thread_rng());
        // The attempt took real time; record it at the time it ended.
        let ended = now + chrono::Duration::from_std(report.elapsed).unwrap_or_default();
        Ok(Some(Delivery {
            item: item.id,
            deployment: dep_id,
            report,
            retry_delay,
            ended,
        }))
    }
}

/// 1 for an item's first retry, 2 for the next, …
fn attempt_number(item: &OutboxItem) -> u32 {
    u32::try_from(item.attempts + 1).unwrap_or(u32::MAX)
}
