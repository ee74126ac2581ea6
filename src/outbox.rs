//! Delivers queued side effects: deployment calls and chat messages. Items are claimed with a
//! lease, delivered, and then marked done in the database; an item whose process died mid-call
//! is claimed again after its lease, and a deployment call repeated that way carries the same
//! `Idempotency-Key`, so a target that honours it deploys once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::deploy::{self, DeployClient};
use crate::notify::ChatSink;
use crate::store::releases::{OutboxItem, OutboxKind};
use crate::workflow::{NextStep, Workflow, WorkflowError};

/// Items claimed per round.
const BATCH: i64 = 256;
/// Deployment calls in flight at once.
const CONCURRENCY: usize = 64;

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
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<usize, WorkflowError> {
        let lease = self.workflow.config().scheduler.lease;
        let mut handled = 0;
        loop {
            let items = self
                .workflow
                .store()
                .claim_outbox(now, now + lease, BATCH)
                .await?;
            if items.is_empty() {
                return Ok(handled);
            }
            handled += items.len();
            let (chat, calls): (Vec<OutboxItem>, Vec<OutboxItem>) =
                items.into_iter().partition(|i| i.kind == OutboxKind::Chat);
            // Chat messages go out in the order they were written.
            for item in &chat {
                self.deliver_chat(item, now).await;
            }
            futures::stream::iter(calls)
                .for_each_concurrent(CONCURRENCY, |item| async move {
                    self.deliver_call(&item, now).await
                })
                .await;
        }
    }

    async fn deliver_chat(&self, item: &OutboxItem, now: DateTime<Utc>) {
        let channel = item.channel.as_deref().unwrap_or("releases");
        let result = self.sink.post(channel, &item.body).await;
        let outcome = match result {
            Ok(()) => self.workflow.outbox_done(item.id, now).await,
            Err(e) if item.attempts >= 10 => self.workflow.outbox_dead(item.id, &e, now).await,
            Err(e) => {
                let delay = deploy::retry_delay(
                    u32::try_from(item.attempts + 1).unwrap_or(u32::MAX),
                    &mut rand::thread_rng(),
                );
                self.workflow
                    .outbox_retry(
                        item.id,
                        now + chrono::Duration::from_std(delay).unwrap_or_default(),
                        &e,
                    )
                    .await
            }
        };
        if let Err(e) = outcome {
            tracing::error!(item = item.id, error = %e, "could not record a chat delivery");
        }
    }

    async fn deliver_call(&self, item: &OutboxItem, now: DateTime<Utc>) {
        if let Err(e) = self.try_call(item, now).await {
            tracing::error!(item = item.id, error = %e, "deployment delivery failed; it will be retried after its lease");
        }
    }

    async fn try_call(&self, item: &OutboxItem, now: DateTime<Utc>) -> Result<(), WorkflowError> {
        let w = &self.workflow;
        let Some(dep_id) = item.deployment else {
            return w
                .outbox_dead(item.id, "deploy item without a deployment", now)
                .await;
        };
        let Some(call) = w.deploy_call(dep_id).await? else {
            // Finished already (a duplicate claim after a crash): nothing to send.
            return w.outbox_done(item.id, now).await;
        };
        let Some(url) = call.url.as_deref() else {
            w.finish_dry_run(dep_id, now).await?;
            return w.outbox_done(item.id, now).await;
        };
        let report = self
            .client
            .attempt(
                url,
                call.secret.as_deref().map(str::as_bytes),
                &call.request,
            )
            .await;
        let delay = deploy::retry_delay(
            u32::try_from(item.attempts + 1).unwrap_or(u32::MAX),
            &mut rand::thread_rng(),
        );
        // The attempt took real time; record it at the time it ended.
        let ended = now + chrono::Duration::from_std(report.elapsed).unwrap_or_default();
        match w
            .deployment_attempted(dep_id, &report, delay, ended)
            .await?
        {
            NextStep::Done => w.outbox_done(item.id, ended).await,
            NextStep::RetryAt(at) => w.outbox_retry(item.id, at, "retrying").await,
        }
    }
}
