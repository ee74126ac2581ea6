//! Delivers queued side effects: deployment calls and chat notices.
//!
//! Every item proceeds on its own. Deployment calls run concurrently (up to [`CONCURRENCY`] in
//! flight), each as its own task, so a slow or dead target delays only its own change; chat
//! notices go out in order per channel, one lane per channel, never behind a deployment call.
//! Each outcome is recorded as it arrives: outcomes that arrive together share one transaction
//! ([`Workflow::settle`]), but nothing waits for a slow one.
//!
//! Items are claimed with an owned lease that this process renews while it works (see
//! `holder.rs`); completion writes are fenced, so an outcome is recorded only while this
//! process still holds the item. An item whose holder died mid-call is taken over one lease
//! later; the cut-off call is audited as an attempt with an unknown outcome and re-sent with the
//! same `Idempotency-Key`, so a target that honours it deploys once.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::clock::Clock;
use crate::deploy::{self, DeployClient};
use crate::domain::DeploymentId;
use crate::domain::release::Deployment;
use crate::health::Health;
use crate::holder::{Held, Holder};
use crate::notify::ChatSink;
use crate::store::claims::Table;
use crate::store::releases::{OutboxItem, OutboxKind};
use crate::workflow::{CallPlan, Delivery, Settled, Settlement, Workflow, WorkflowError};

/// Items claimed per round.
const BATCH: i64 = 256;
/// Deployment calls in flight at once.
pub const CONCURRENCY: usize = 128;
/// Outcomes recorded together at most.
const RECORD_GROUP: usize = 512;

#[derive(Clone)]
pub struct Dispatcher {
    workflow: Workflow,
    client: DeployClient,
    sink: Arc<dyn ChatSink>,
    holder: Holder,
}

/// An outcome on its way to the recorder, with the claim it keeps alive until recorded.
type Outcome = (Settlement, Arc<Held>);
/// One queue per chat channel, so each channel's notices go out in order.
type Lanes = HashMap<String, mpsc::UnboundedSender<(OutboxItem, Arc<Held>)>>;

/// The clock of a [`Dispatcher::run_once`] round: the time it was given, plus the real time
/// spent since (attempts take real time).
struct Elapsing {
    start: DateTime<Utc>,
    begun: std::time::Instant,
}

impl Clock for Elapsing {
    fn now(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::from_std(self.begun.elapsed()).unwrap_or_default()
    }
}

impl Dispatcher {
    pub fn new(
        workflow: Workflow,
        client: DeployClient,
        sink: Arc<dyn ChatSink>,
        holder: Holder,
    ) -> Self {
        Dispatcher {
            workflow,
            client,
            sink,
            holder,
        }
    }

    /// Claims up to `limit` due items (of `kind`, or any); parks those that failed too often.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        kind: Option<OutboxKind>,
        limit: i64,
    ) -> Result<Option<(Vec<OutboxItem>, Arc<Held>)>, WorkflowError> {
        let lease = self.workflow.config().scheduler.lease;
        let mut req = self.holder.request(now, lease, limit);
        req.kind = kind.map(|k| k.as_str());
        let items = self.workflow.store().claim_outbox(req).await?;
        let Some(token) = items.first().and_then(|i| i.claim_token.clone()) else {
            return Ok(None);
        };
        let held = self.holder.hold(Table::Outbox, &token);
        Ok(Some((items, held)))
    }

    /// The deployments the claimed calls are for, in one query.
    async fn deployments_of(
        &self,
        items: &[OutboxItem],
    ) -> Result<HashMap<DeploymentId, Deployment>, WorkflowError> {
        let ids: Vec<DeploymentId> = items.iter().filter_map(|i| i.deployment).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self
            .workflow
            .store()
            .deployments_by_id(&ids)
            .await?
            .into_iter()
            .map(|d| (d.id, d))
            .collect())
    }

    /// Delivers everything due at `start` and records every outcome before returning (tests
    /// and `App::run_due` drive time with this); returns how many items were handled. Items
    /// proceed exactly as in [`Dispatcher::run`], each on its own task.
    pub async fn run_once(&self, start: DateTime<Utc>) -> Result<usize, WorkflowError> {
        let begun = std::time::Instant::now();
        let clock: Arc<dyn Clock> = Arc::new(Elapsing { start, begun });
        let calls = Arc::new(Semaphore::new(CONCURRENCY));
        let mut handled = 0;
        loop {
            // Each round claims at the time it really starts, so its lease is never stale.
            let now = clock.now();
            let Some((items, held)) = self.claim(now, None, BATCH).await? else {
                return Ok(handled);
            };
            handled += items.len();
            let (outcomes, arrivals) = mpsc::unbounded_channel::<Outcome>();
            let mut tasks = tokio::task::JoinSet::new();
            let mut lanes = HashMap::new();
            let (chat, deploys): (Vec<_>, Vec<_>) =
                items.into_iter().partition(|i| i.kind == OutboxKind::Chat);
            self.start_posts(chat, &held, &mut lanes, &outcomes, &clock, &mut tasks);
            self.start_calls(deploys, &held, &calls, &outcomes, &clock, &mut tasks)
                .await?;
            drop((lanes, outcomes, held));
            let finished = async { while tasks.join_next().await.is_some() {} };
            tokio::join!(finished, self.recorder(arrivals, Health::default()));
        }
    }

    /// Delivers continuously until `stop` turns true: claims every tick (or when `wake` is
    /// notified), starts each item on its own, and records outcomes as they arrive. On stop it
    /// claims nothing more and waits for the calls in flight to be recorded.
    pub async fn run(
        &self,
        clock: Arc<dyn Clock>,
        tick: std::time::Duration,
        wake: &Notify,
        mut stop: watch::Receiver<bool>,
        health: Health,
    ) {
        let (outcomes, arrivals) = mpsc::unbounded_channel::<Outcome>();
        let recorder = self.recorder(arrivals, health.clone());
        let claimer = async move {
            let calls = Arc::new(Semaphore::new(CONCURRENCY));
            let mut in_flight = tokio::task::JoinSet::new();
            let mut lanes = Lanes::new();
            while !*stop.borrow() {
                while in_flight.try_join_next().is_some() {}
                let now = clock.now();
                let result = self
                    .claim_round(now, &calls, &mut in_flight, &mut lanes, &outcomes, &clock)
                    .await;
                let busy = match result {
                    Ok(full) => {
                        health.ok("dispatcher");
                        full
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "outbox round failed");
                        health.failed("dispatcher", &e);
                        false
                    }
                };
                if busy {
                    tokio::task::yield_now().await;
                    continue;
                }
                tokio::select! {
                    () = tokio::time::sleep(tick) => {}
                    () = wake.notified() => {}
                    _ = stop.changed() => {}
                }
            }
            health.stopped("dispatcher");
            // Closing the lanes ends their tasks once their queued notices are out; the calls
            // in flight finish too (each attempt is bounded). Their outcomes reach the
            // recorder, which ends when the last sender is gone.
            drop(lanes);
            drop(outcomes);
            while in_flight.join_next().await.is_some() {}
        };
        tokio::join!(claimer, recorder);
    }

    /// One claiming round of [`run`]: chat notices into their channel's lane, deployment calls
    /// into their own tasks (as many as there are free call slots). `true` when a claim came
    /// back full (more may be due at once).
    async fn claim_round(
        &self,
        now: DateTime<Utc>,
        calls: &Arc<Semaphore>,
        in_flight: &mut tokio::task::JoinSet<()>,
        lanes: &mut Lanes,
        outcomes: &mpsc::UnboundedSender<Outcome>,
        clock: &Arc<dyn Clock>,
    ) -> Result<bool, WorkflowError> {
        let mut full = false;
        if let Some((items, held)) = self.claim(now, Some(OutboxKind::Chat), BATCH).await? {
            full |= items.len() as i64 == BATCH;
            self.start_posts(items, &held, lanes, outcomes, clock, in_flight);
        }
        let free = calls.available_permits();
        if free == 0 {
            return Ok(true);
        }
        let limit = i64::try_from(free).unwrap_or(BATCH).min(BATCH);
        if let Some((items, held)) = self.claim(now, Some(OutboxKind::Deploy), limit).await? {
            full |= items.len() as i64 == limit;
            self.start_calls(items, &held, calls, outcomes, clock, in_flight)
                .await?;
        }
        Ok(full)
    }

    /// Queues chat notices on their channel's lane (opening lanes as needed).
    fn start_posts(
        &self,
        items: Vec<OutboxItem>,
        held: &Arc<Held>,
        lanes: &mut Lanes,
        outcomes: &mpsc::UnboundedSender<Outcome>,
        clock: &Arc<dyn Clock>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        for item in items {
            let lane = lanes
                .entry(channel_of(&item))
                .or_insert_with(|| self.open_lane(outcomes.clone(), clock.clone(), tasks));
            if let Err(mpsc::error::SendError((item, _))) = lane.send((item, held.clone())) {
                tracing::error!(
                    item = item.id,
                    "chat lane closed; the notice goes out after its lease"
                );
            }
        }
    }

    /// Starts each deployment call on its own task, at most [`CONCURRENCY`] in flight.
    async fn start_calls(
        &self,
        items: Vec<OutboxItem>,
        held: &Arc<Held>,
        calls: &Arc<Semaphore>,
        outcomes: &mpsc::UnboundedSender<Outcome>,
        clock: &Arc<dyn Clock>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Result<(), WorkflowError> {
        let deployments = Arc::new(self.deployments_of(&items).await?);
        for item in items {
            let (this, held, outcomes) = (self.clone(), held.clone(), outcomes.clone());
            let (deployments, calls, clock) = (deployments.clone(), calls.clone(), clock.clone());
            tasks.spawn(async move {
                let Ok(_permit) = calls.acquire_owned().await else {
                    return;
                };
                let settled = this.call(item, &deployments, clock.now()).await;
                let _ = outcomes.send((settled, held));
            });
        }
        Ok(())
    }

    /// A task that posts one channel's notices in order, for as long as the dispatcher runs.
    fn open_lane(
        &self,
        outcomes: mpsc::UnboundedSender<Outcome>,
        clock: Arc<dyn Clock>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> mpsc::UnboundedSender<(OutboxItem, Arc<Held>)> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(OutboxItem, Arc<Held>)>();
        let this = self.clone();
        tasks.spawn(async move {
            while let Some((item, held)) = rx.recv().await {
                let settled = this.post(item, clock.now()).await;
                let _ = outcomes.send((settled, held));
            }
        });
        tx
    }

    /// Records outcomes as they arrive: whatever has arrived by the time the previous group is
    /// recorded goes into the next group.
    async fn recorder(&self, mut arrivals: mpsc::UnboundedReceiver<Outcome>, health: Health) {
        let mut group = Vec::new();
        while arrivals.recv_many(&mut group, RECORD_GROUP).await > 0 {
            let (settlements, held): (Vec<Settlement>, Vec<Arc<Held>>) = group.drain(..).unzip();
            if self.record(settlements).await {
                health.ok("recorder");
            } else {
                health.failed("recorder", "outcomes could not be recorded; see the log");
            }
            drop(held);
        }
        health.stopped("recorder");
    }

    /// Records a group of outcomes; if the group fails, each one alone, so one bad outcome
    /// cannot lose the others. Outcomes that cannot be recorded are delivered again after
    /// their lease (a repeated call carries the same `Idempotency-Key`). `false` on failure.
    async fn record(&self, group: Vec<Settlement>) -> bool {
        let result = match self.workflow.settle(&group).await {
            Err(e) if group.len() > 1 => {
                tracing::warn!(error = %e, "recording outcomes together failed; recording them one by one");
                let mut last = Ok(0);
                for one in group.chunks(1) {
                    if let Err(e) = self.workflow.settle(one).await {
                        last = Err(e);
                    }
                }
                last
            }
            other => other,
        };
        match result {
            Ok(0) => true,
            Ok(refused) => {
                tracing::warn!(
                    refused,
                    "outcomes refused: their items were taken over by another holder"
                );
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record delivery outcomes; they will be delivered again after their lease");
                false
            }
        }
    }

    /// Posts one chat notice.
    async fn post(&self, item: OutboxItem, now: DateTime<Utc>) -> Settlement {
        if let Some(why) = crate::workflow::park_reason(&item, now) {
            return settlement(item, Settled::Park { why }, now);
        }
        let channel = channel_of(&item);
        let what = match self.sink.post(&channel, &item.body).await {
            Ok(()) => Settled::Posted,
            Err(error) => {
                let delay = deploy::retry_delay(attempt_number(&item), &mut rand::thread_rng());
                Settled::Failed {
                    error,
                    retry_at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                }
            }
        };
        settlement(item, what, now)
    }

    /// Makes one deployment call (or decides there is nothing to send).
    async fn call(
        &self,
        item: OutboxItem,
        deployments: &HashMap<DeploymentId, Deployment>,
        now: DateTime<Utc>,
    ) -> Settlement {
        if let Some(why) = crate::workflow::park_reason(&item, now) {
            return settlement(item, Settled::Park { why }, now);
        }
        let w = &self.workflow;
        let Some(dep_id) = item.deployment else {
            let why = "a deployment call without a deployment".to_string();
            return settlement(item, Settled::Park { why }, now);
        };
        let cut_off = item.taken_from.is_some();
        if cut_off && let Err(e) = w.record_cut_off(&item, now).await {
            tracing::error!(item = item.id, error = %e, "could not record a cut-off attempt");
        }
        let plan = w
            .plan_call(dep_id, deployments.get(&dep_id), &item.body, cut_off, now)
            .await;
        let call = match plan {
            Ok(CallPlan::Send(call)) => call,
            Ok(CallPlan::DryRun) => return settlement(item, Settled::DryRun, now),
            Ok(CallPlan::Skip) => return settlement(item, Settled::Nothing, now),
            Err(e) => {
                tracing::error!(item = item.id, error = %e, "could not prepare a deployment call");
                let delay = deploy::retry_delay(attempt_number(&item), &mut rand::thread_rng());
                let what = Settled::Failed {
                    error: e.to_string(),
                    retry_at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                };
                return settlement(item, what, now);
            }
        };
        let secret = call.secret.as_deref().map(str::as_bytes);
        let report = self.client.attempt(&call.url, secret, &call.request).await;
        let retry_delay = deploy::retry_delay(attempt_number(&item), &mut rand::thread_rng());
        // The attempt took real time; record it at the time it ended.
        let ended = now + chrono::Duration::from_std(report.elapsed).unwrap_or_default();
        let delivery = Delivery {
            deployment: dep_id,
            report,
            retry_delay,
            ended,
        };
        settlement(item, Settled::Called(delivery), ended)
    }
}

fn settlement(item: OutboxItem, what: Settled, at: DateTime<Utc>) -> Settlement {
    Settlement { item, what, at }
}

fn channel_of(item: &OutboxItem) -> String {
    item.channel
        .clone()
        .unwrap_or_else(|| "releases".to_string())
}

/// 1 for an item's first delivery, 2 for the next, … (its claims so far).
fn attempt_number(item: &OutboxItem) -> u32 {
    u32::try_from(item.attempts.max(1)).unwrap_or(u32::MAX)
}
