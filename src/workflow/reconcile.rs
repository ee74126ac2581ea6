//! Reconciliation: every `scheduled` change has exactly one pending start job, due at its
//! slot. Run at start-up and periodically by `serve`, so a job lost to a bug, a failed round or
//! a hand edit of the database never strands a change.

use chrono::{DateTime, Utc};

use super::{Workflow, WorkflowError};
use crate::domain::State;

impl Workflow {
    /// Repairs every scheduled change whose start jobs are missing, duplicated or due at the
    /// wrong time: its jobs are rewritten for its slot (a slot already past is then handled
    /// like any late start: started if still legal, otherwise rebooked and announced).
    /// Audited; returns how many changes were repaired.
    pub async fn reconcile(&self, now: DateTime<Utc>) -> Result<usize, WorkflowError> {
        let mut tx = self.store.begin().await?;
        let broken = tx.scheduled_without_one_start().await?;
        let mut fixed = 0;
        for (id, pending, at_slot) in broken {
            let Some(change) = tx.change(id).await? else {
                continue;
            };
            if change.state != State::Scheduled {
                continue;
            }
            let Some(slot) = change.slot else {
                // Scheduled without a slot: book it again like any stranded change.
                let actor = Self::scheduler_actor();
                let why = "reconciliation found it scheduled without a slot";
                self.rebook_or_unbook(&mut tx, change, &actor, why, now)
                    .await?;
                fixed += 1;
                continue;
            };
            self.sync_jobs(&mut tx, &change, now).await?;
            let detail = format!(
                "start job for {} recreated (found {pending} pending, {at_slot} at the slot)",
                slot.start.to_rfc3339()
            );
            let actor = Self::scheduler_actor();
            self.audit(&mut tx, Some(id), &actor, "reconciled", detail, now)
                .await?;
            fixed += 1;
        }
        tx.commit().await?;
        // Deployment protection rules held across a restart, a rejection or a cancel.
        let answered = self.settle_gates(now).await?;
        Ok(fixed + answered)
    }
}
