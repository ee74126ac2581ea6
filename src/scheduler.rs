//! The durable scheduler: due jobs are database rows, claimed with an owned lease (renewed while
//! the round runs; see `holder.rs`) so that replicas sharing one database never run the same
//! job, and run through the workflow. `tick(now)` is public so tests drive time; `serve` calls
//! it every `[scheduler] tick`.

use chrono::{DateTime, Duration, Utc};

use crate::config::AnnouncementKind;
use crate::domain::calendar::Recurrence;
use crate::holder::Holder;
use crate::store::claims::Table;
use crate::store::releases::{Job, JobKind, NewJob};
use crate::workflow::{Workflow, WorkflowError};

/// Jobs claimed per round.
const BATCH: i64 = 512;

#[derive(Clone)]
pub struct Scheduler {
    workflow: Workflow,
    holder: Holder,
    burst: Burst,
}

/// What the scheduler tells the outbox dispatcher: deployment calls were just queued (claim
/// them now), and whether a burst of release starts is still being worked through (the
/// dispatcher's bookkeeping gives way until the starts are out, so calls go out first).
#[derive(Clone, Debug, Default)]
pub struct Burst {
    pub queued: std::sync::Arc<tokio::sync::Notify>,
    starting: std::sync::Arc<std::sync::atomic::AtomicBool>,
    calling: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Burst {
    /// Whether release starts are still due in the current burst.
    pub fn starting(&self) -> bool {
        self.starting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether deployment calls are due that the dispatcher has not claimed yet.
    pub fn calling(&self) -> bool {
        self.calling.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Set by the dispatcher: its last claim of calls came back full.
    pub fn set_calling(&self, on: bool) {
        self.calling.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn set_starting(&self, on: bool) {
        self.starting
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A job that fails is tried again after this long (by any replica), up to five times.
const JOB_RETRY: Duration = Duration::seconds(30);

impl Scheduler {
    pub fn new(workflow: Workflow, holder: Holder, burst: Burst) -> Self {
        Scheduler {
            workflow,
            holder,
            burst,
        }
    }

    /// Books the next occurrence of every configured announcement that has none pending.
    pub async fn plan_announcements(&self, now: DateTime<Utc>) -> Result<(), WorkflowError> {
        let config = self.workflow.config();
        let mut tx = self.workflow.store().begin().await?;
        for a in &config.announcements {
            if tx.announcement_pending(&a.name).await? {
                continue;
            }
            let recurrence = Recurrence {
                cron: a.cron.clone(),
                duration: Duration::zero(),
                tz: a.tz,
            };
            if let Some(due_at) = recurrence.openings_from(now).next() {
                let job = NewJob {
                    kind: JobKind::Announcement,
                    change: None,
                    deployment: None,
                    name: Some(a.name.clone()),
                    due_at,
                };
                tx.insert_job(&job, now).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs every job due at `now`; returns how many ran.
    pub async fn tick(&self, start: DateTime<Utc>) -> Result<usize, WorkflowError> {
        let lease = self.workflow.config().scheduler.lease;
        let begun = std::time::Instant::now();
        let mut ran = 0;
        loop {
            // Each round claims at the time it really starts, so its lease is never stale.
            let now = start + chrono::Duration::from_std(begun.elapsed()).unwrap_or_default();
            let jobs = self
                .workflow
                .store()
                .claim_jobs(self.holder.request(now, lease, BATCH))
                .await?;
            self.burst.set_starting(jobs.len() as i64 == BATCH);
            let Some(token) = jobs.first().and_then(|j| j.claim_token.clone()) else {
                return Ok(ran);
            };
            // Renewed until this round is done with its jobs.
            let _held = self.holder.hold(Table::Jobs, &token);
            ran += jobs.len();
            // Release starts due together commit together; everything else runs alone.
            let (starts, others): (Vec<Job>, Vec<Job>) = jobs
                .into_iter()
                .partition(|j| j.kind == JobKind::ReleaseStart && j.change.is_some());
            let started = std::time::Instant::now();
            let result = self.workflow.release_due_batch(&starts, now).await;
            if !starts.is_empty() {
                self.burst.queued.notify_one();
            }
            tracing::debug!(starts = starts.len(), elapsed = ?started.elapsed(), "release batch");
            if let Err(e) = result {
                tracing::warn!(error = %e, "batched release start failed; running them one by one");
                for job in &starts {
                    self.run(job, now).await;
                }
            }
            for job in &others {
                self.run(job, now).await;
            }
        }
    }

    /// Runs one job and marks it finished. A failure is logged and the job is tried again a
    /// little later (up to a limit), so one bad job cannot stall the others; a release start
    /// that is given up never strands its change (see `Workflow::give_up_job`).
    async fn run(&self, job: &Job, now: DateTime<Utc>) {
        let w = &self.workflow;
        let result = match (job.kind, job.change, job.deployment) {
            (JobKind::ReleaseStart, Some(change), _) => w.release_due(job, change, now).await,
            (JobKind::Reminder, Some(change), _) => w.remind(job, change, now).await,
            (JobKind::DeploymentTimeout, _, Some(dep)) => {
                w.deployment_timed_out(job, dep, now).await
            }
            (JobKind::Announcement, _, _) => self.announce(job, now).await,
            _ => Err(WorkflowError::Invalid(format!(
                "job {} of kind {} lacks its target",
                job.id, job.kind
            ))),
        };
        if let Err(e) = &result {
            tracing::error!(job = job.id, kind = %job.kind, error = %e, "job failed");
        }
        let settled = match result {
            Ok(()) => w.finish_job(job, "done", None, now).await,
            Err(e) if job.attempts >= 5 || e.is_user_error() => {
                w.give_up_job(job, &e.to_string(), now).await
            }
            Err(e) => w.retry_job(job, now + JOB_RETRY, &e.to_string()).await,
        };
        if let Err(e) = settled {
            tracing::error!(job = job.id, error = %e, "could not settle a job; it runs again after its lease");
        }
    }

    async fn announce(&self, job: &Job, now: DateTime<Utc>) -> Result<(), WorkflowError> {
        let config = self.workflow.config();
        let Some(a) = config
            .announcements
            .iter()
            .find(|a| Some(&a.name) == job.name.as_ref())
        else {
            return Ok(()); // removed from config since it was booked
        };
        let recurrence = Recurrence {
            cron: a.cron.clone(),
            duration: Duration::zero(),
            tz: a.tz,
        };
        let next = recurrence.openings_from(now + Duration::seconds(1)).next();
        let days = match a.what {
            AnnouncementKind::Next24h => 1,
            AnnouncementKind::ForwardSchedule => 7,
            AnnouncementKind::WeeklyReview => {
                return self
                    .workflow
                    .announce_review(job, &a.name, &a.channel, a.tz, next, now)
                    .await;
            }
        };
        self.workflow
            .announce_schedule(job, &a.name, &a.channel, days, next, now)
            .await?;
        Ok(())
    }
}
