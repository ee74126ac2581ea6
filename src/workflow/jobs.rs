//! Settling claimed jobs, fenced like outbox items: a job is marked done, retried or given up
//! only while its claim is still held. A release start that is given up never leaves its change
//! `scheduled` without a start job: the change is rebooked (or unbooked) in the same
//! transaction.

use chrono::{DateTime, Utc};

use super::{Workflow, WorkflowError};
use crate::domain::State;
use crate::store::Tx;
use crate::store::claims::Table;
use crate::store::releases::{Job, JobKind};

impl Workflow {
    /// Whether `tx` still holds `job`'s claim (locking it on PostgreSQL until commit).
    pub(super) async fn holds_job(&self, tx: &mut Tx, job: &Job) -> Result<bool, WorkflowError> {
        let Some(token) = job.claim_token.as_deref() else {
            return Ok(false);
        };
        Ok(tx
            .held(Table::Jobs, &[(job.id, token)])
            .await?
            .contains(&job.id))
    }

    /// Marks a claimed job finished (`done` or `canceled`); a job taken over meanwhile is left
    /// to its new holder.
    pub async fn finish_job(
        &self,
        job: &Job,
        state: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let mut tx = self.store.begin().await?;
        if self.holds_job(&mut tx, job).await? {
            tx.finish_job(job.id, state, note, now).await?;
        }
        Ok(tx.commit().await?)
    }

    /// Releases a job that failed, to be claimed again (by anyone) at `at`.
    pub async fn retry_job(
        &self,
        job: &Job,
        at: DateTime<Utc>,
        why: &str,
    ) -> Result<(), WorkflowError> {
        let mut tx = self.store.begin().await?;
        if self.holds_job(&mut tx, job).await? {
            tx.retry_job(job.id, at, why).await?;
        }
        Ok(tx.commit().await?)
    }

    /// Gives up a job that keeps failing. A release start given up rebooks its change (or
    /// unbooks it, announced), so the change is never left waiting for a start that won't come.
    pub async fn give_up_job(
        &self,
        job: &Job,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let mut tx = self.store.begin().await?;
        if !self.holds_job(&mut tx, job).await? {
            return Ok(());
        }
        tx.finish_job(job.id, "done", Some(why), now).await?;
        if let (JobKind::ReleaseStart, Some(id)) = (job.kind, job.change)
            && let Some(change) = tx.change(id).await?
            && change.state == State::Scheduled
            && let Some(slot) = change.slot.filter(|s| s.start == job.due_at)
        {
            let actor = Self::scheduler_actor();
            let why = format!("its release start failed ({why})");
            self.rebook_or_unbook_after(&mut tx, change, &actor, &why, slot.end, now)
                .await?;
        }
        Ok(tx.commit().await?)
    }
}
