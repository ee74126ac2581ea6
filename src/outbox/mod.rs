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

mod posts;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::clock::Clock;
use crate::deploy::{self, DeployClient};
use crate::domain::DeploymentId;
use crate::domain::release::Deployment;
use crate::health::Health;
use crate::holder::{Held, Holder};
use crate::notify::ChatSink;
use crate::scheduler::Burst;
use crate::store::claims::Table;
use crate::store::releases::OutboxItem;
use crate::workflow::{CallPlan, Delivery, Settled, Settlement, Workflow, WorkflowError};

/// Items claimed per round.
const BATCH: i64 = 256;
/// The kinds the chat loop delivers, and the kinds the call loop does.
const CHAT_KINDS: &[&str] = &["notice", "card", "card_update"];
const CALL_KINDS: &[&str] = &["deploy"];
/// Deployment calls in flight at once.
pub const CONCURRENCY: usize = 256;
/// Outcomes recorded together at most.
const RECORD_GROUP: usize = 512;
/// When the call slots are full, more calls are claimed once this many are free again.
const REFILL: usize = 128;
/// How long the recorder lets outcomes gather before recording a small group: they share one
/// commit instead of each paying for its own.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);
/// How long the recorder gives way to a burst of release starts at most.
const YIELD_AT_MOST: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Clone)]
pub struct Dispatcher {
    workflow: Workflow,
    client: DeployClient,
    /// The sinks notices and cards go through, by surface (`chat`, `github`).
    sinks: Arc<HashMap<&'static str, Arc<dyn ChatSink>>>,
    holder: Holder,
    burst: Burst,
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
        burst: Burst,
    ) -> Self {
        let mut sinks: HashMap<&'static str, Arc<dyn ChatSink>> = HashMap::new();
        sinks.insert(sink.surface(), sink);
        Dispatcher {
            workflow,
            client,
            sinks: Arc::new(sinks),
            holder,
            burst,
        }
    }

    /// Adds the sink for another surface (GitHub).
    pub fn with_sink(mut self, sink: Arc<dyn ChatSink>) -> Self {
        let mut sinks = (*self.sinks).clone();
        sinks.insert(sink.surface(), sink);
        self.sinks = Arc::new(sinks);
        self
    }

    /// Claims up to `limit` due items (of `kind`, or any); parks those that failed too often.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        kinds: &[&str],
        limit: i64,
    ) -> Result<Option<(Vec<OutboxItem>, Arc<Held>)>, WorkflowError> {
        let lease = self.workflow.config().scheduler.lease;
        let mut req = self.holder.request(now, lease, limit);
        req.kinds = kinds;
        let began = std::time::Instant::now();
        let items = self.workflow.store().claim_outbox(req).await?;
        tracing::debug!(?kinds, claimed = items.len(), elapsed = ?began.elapsed(), "outbox claim");
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
            let Some((items, held)) = self.claim(now, &[], BATCH).await? else {
                return Ok(handled);
            };
            handled += items.len();
            let (outcomes, arrivals) = mpsc::unbounded_channel::<Outcome>();
            let mut tasks = tokio::task::JoinSet::new();
            let mut lanes = HashMap::new();
            let (chat, deploys): (Vec<_>, Vec<_>) =
                items.into_iter().partition(|i| i.kind.is_chat());
            self.start_posts(chat, &held, &mut lanes, &outcomes, &clock, &mut tasks);
            self.start_calls(deploys, &held, &calls, &outcomes, &clock, &mut tasks)
                .await?;
            drop((lanes, outcomes, held));
            let finished = async { while tasks.join_next().await.is_some() {} };
            tokio::join!(finished, self.recorder(arrivals, Health::default()));
        }
    }

    /// Delivers continuously until `stop` turns true: chat notices and deployment calls are
    /// claimed by two loops of their own (a burst of calls never waits behind notices, nor the
    /// other way round), each item runs on its own task, and outcomes are recorded as they
    /// arrive. On stop nothing more is claimed, and the calls in flight finish and are recorded.
    pub async fn run(
        &self,
        clock: Arc<dyn Clock>,
        tick: std::time::Duration,
        stop: watch::Receiver<bool>,
        health: Health,
    ) {
        let (outcomes, arrivals) = mpsc::unbounded_channel::<Outcome>();
        let recorder = self.recorder(arrivals, health.clone());
        let chat = self.chat_loop(
            clock.clone(),
            tick,
            stop.clone(),
            outcomes.clone(),
            health.clone(),
        );
        let calls = self.call_loop(clock, tick, stop, outcomes, health);
        tokio::join!(chat, calls, recorder);
    }

    /// Claims chat notices every tick and queues them on their channel's lane.
    async fn chat_loop(
        &self,
        clock: Arc<dyn Clock>,
        tick: std::time::Duration,
        mut stop: watch::Receiver<bool>,
        outcomes: mpsc::UnboundedSender<Outcome>,
        health: Health,
    ) {
        let mut lanes = Lanes::new();
        let mut tasks = tokio::task::JoinSet::new();
        while !*stop.borrow() {
            let full = match self.claim(clock.now(), CHAT_KINDS, BATCH).await {
                Ok(claimed) => {
                    health.ok("chat dispatcher");
                    claimed.is_some_and(|(items, held)| {
                        let full = items.len() as i64 == BATCH;
                        self.start_posts(items, &held, &mut lanes, &outcomes, &clock, &mut tasks);
                        full
                    })
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming chat notices failed");
                    health.failed("chat dispatcher", &e);
                    false
                }
            };
            // During a burst of release starts, notices wait for the next tick: the calls
            // go out first.
            if !full || self.burst.starting() {
                tokio::select! {
                    () = tokio::time::sleep(tick) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        health.stopped("chat dispatcher");
        // Closing the lanes ends their tasks once their queued notices are out.
        drop(lanes);
        drop(outcomes);
        while tasks.join_next().await.is_some() {}
    }

    /// Claims deployment calls as call slots free up (at once when the scheduler has just
    /// queued some) and starts each on its own task.
    async fn call_loop(
        &self,
        clock: Arc<dyn Clock>,
        tick: std::time::Duration,
        mut stop: watch::Receiver<bool>,
        outcomes: mpsc::UnboundedSender<Outcome>,
        health: Health,
    ) {
        let calls = Arc::new(Semaphore::new(CONCURRENCY));
        let mut in_flight = tokio::task::JoinSet::new();
        while !*stop.borrow() {
            while in_flight.try_join_next().is_some() {}
            let limit = i64::try_from(calls.available_permits())
                .unwrap_or(BATCH)
                .min(BATCH);
            let mut full = false;
            if limit > 0 {
                let claimed = self.claim(clock.now(), CALL_KINDS, limit).await;
                match claimed {
                    Ok(Some((items, held))) => {
                        full = items.len() as i64 == limit;
                        self.burst.set_calling(full);
                        let started = self
                            .start_calls(items, &held, &calls, &outcomes, &clock, &mut in_flight)
                            .await;
                        match started {
                            Ok(()) => health.ok("dispatcher"),
                            Err(e) => health.failed("dispatcher", &e),
                        }
                    }
                    Ok(None) => {
                        self.burst.set_calling(false);
                        health.ok("dispatcher");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "claiming deployment calls failed");
                        health.failed("dispatcher", &e);
                    }
                }
            }
            if calls.available_permits() < REFILL {
                // The call slots are (nearly) all taken: claim more once some free up, or at
                // the next tick.
                let wait = tokio::time::sleep(tick);
                tokio::pin!(wait);
                while calls.available_permits() < REFILL && !*stop.borrow() {
                    tokio::select! {
                        Some(_) = in_flight.join_next() => {}
                        () = &mut wait => break,
                        _ = stop.changed() => {}
                    }
                }
                continue;
            }
            if full {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = self.burst.queued.notified() => {}
                _ = stop.changed() => {}
            }
        }
        health.stopped("dispatcher");
        self.burst.set_calling(false);
        // The calls in flight finish (each attempt is bounded) and their outcomes reach the
        // recorder, which ends when the last sender is gone.
        drop(outcomes);
        while in_flight.join_next().await.is_some() {}
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
                .entry(format!("{}:{}", item.surface, channel_of(&item)))
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
            // The slot is taken before the task starts, so the claim loop sees it gone.
            let Ok(permit) = calls.clone().acquire_owned().await else {
                break; // closed: only when shutting down; the item goes out after its lease
            };
            let (this, held, outcomes) = (self.clone(), held.clone(), outcomes.clone());
            let (deployments, clock) = (deployments.clone(), clock.clone());
            tasks.spawn(async move {
                let _permit = permit;
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
            // Cards this lane posted whose references may not be recorded yet.
            let mut posted = posts::Posted::default();
            while let Some((item, held)) = rx.recv().await {
                let settled = this.post(item, &mut posted, clock.now()).await;
                let _ = outcomes.send((settled, held));
            }
        });
        tx
    }

    /// Records outcomes as they arrive: whatever has arrived by the time the previous group is
    /// recorded goes into the next group.
    async fn recorder(&self, mut arrivals: mpsc::UnboundedReceiver<Outcome>, health: Health) {
        let mut group = Vec::new();
        let mut failing = false;
        loop {
            // Idle is healthy, unless the last group could not be recorded.
            let idle = crate::health::STALL_AFTER / 3;
            match tokio::time::timeout(idle, arrivals.recv_many(&mut group, RECORD_GROUP)).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => {
                    if !failing {
                        health.ok("recorder");
                    }
                    continue;
                }
            }
            // During a burst of release starts the bookkeeping gives way (for a while) so
            // that the calls still to start go out first.
            let began = std::time::Instant::now();
            while (self.burst.starting() || self.burst.calling()) && began.elapsed() < YIELD_AT_MOST
            {
                tokio::time::sleep(GATHER).await;
            }
            if group.len() < RECORD_GROUP {
                tokio::time::sleep(GATHER).await;
                while group.len() < RECORD_GROUP {
                    match arrivals.try_recv() {
                        Ok(outcome) => group.push(outcome),
                        Err(_) => break,
                    }
                }
            }
            let (settlements, held): (Vec<Settlement>, Vec<Arc<Held>>) = group.drain(..).unzip();
            let (n, began) = (settlements.len(), std::time::Instant::now());
            let recorded = self.record(settlements).await;
            tracing::debug!(outcomes = n, elapsed = ?began.elapsed(), "recorded");
            failing = !recorded;
            if recorded {
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
            // Not sent again before the attempt it repeats is on record.
            tracing::error!(item = item.id, error = %e, "could not record a cut-off attempt");
            let delay = deploy::retry_delay(attempt_number(&item), &mut rand::thread_rng());
            let what = Settled::Failed {
                error: format!("could not record the cut-off attempt: {e}"),
                retry_at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
            };
            return settlement(item, what, now);
        }
        let plan = w
            .plan_call(dep_id, deployments.get(&dep_id), &item.body, cut_off, now)
            .await;
        let call = match plan {
            Ok(CallPlan::Send(call)) => call,
            Ok(CallPlan::DryRun) => return settlement(item, Settled::DryRun, now),
            Ok(CallPlan::Skip) => return settlement(item, Settled::Nothing, now),
            Ok(CallPlan::Unsent(why)) => return settlement(item, Settled::Unsent { why }, now),
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
