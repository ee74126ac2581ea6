//! Deployment outcomes: each delivery attempt, signed callbacks, timeouts and dry runs, and
//! what they do to the change (`implement → review → closed`). One transaction each (or one
//! per batch of attempts), with the chat notices queued alongside.

use chrono::{DateTime, Duration, Utc};

use super::context::not_found;
use super::{Actor, Workflow, WorkflowError};
use crate::deploy::{Attempt, AttemptReport};
use crate::domain::effect::NoticeEvent;
use crate::domain::lifecycle::Happening;
use crate::domain::release::{Deployment, DeploymentStatus};
use crate::domain::{ChangeType, CloseCode, DeploymentId, State};
use crate::store::Tx;
use crate::store::releases::{JobKind, NewJob};

/// One delivery attempt of a deployment's outbox item, to record.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub deployment: DeploymentId,
    pub report: AttemptReport,
    pub retry_delay: std::time::Duration,
    /// When the attempt ended.
    pub ended: DateTime<Utc>,
}

/// What the dispatcher should do with a deployment's outbox item after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered (or nothing more to send).
    Done,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
}

impl Workflow {
    /// Records one delivery attempt of a deployment and decides what comes next.
    pub(super) async fn deployment_attempted_in(
        &self,
        tx: &mut Tx,
        id: DeploymentId,
        report: &AttemptReport,
        retry_delay: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<NextStep, WorkflowError> {
        let actor = Self::scheduler_actor();
        let Some(mut dep) = tx.deployment(id).await? else {
            return Err(WorkflowError::NotFound(format!(
                "there is no deployment {id}"
            )));
        };
        if dep.status.is_finished() {
            return Ok(NextStep::Done);
        }
        dep.attempts += 1;
        let status = report
            .http_status
            .map_or_else(|| "no response".to_string(), |s| format!("HTTP {s}"));
        let (verdict, next) = match &report.outcome {
            Attempt::Finished { succeeded, .. } => (
                if *succeeded {
                    "succeeded".to_string()
                } else {
                    "failed".to_string()
                },
                NextStep::Done,
            ),
            Attempt::InProgress => (
                "accepted; waiting for the callback".to_string(),
                NextStep::Done,
            ),
            Attempt::Retry {
                reason,
                retry_after,
            } => {
                // The target may ask for more patience, never for less than our backoff.
                let wait = retry_after
                    .map_or(retry_delay, |r| r.max(retry_delay))
                    .min(std::time::Duration::from_secs(300));
                let at = now + Duration::from_std(wait).unwrap_or(Duration::minutes(5));
                if at >= dep.deadline_at {
                    (
                        format!(
                            "{reason}; giving up, the target's timeout ends before another try"
                        ),
                        NextStep::Done,
                    )
                } else {
                    (
                        format!("{reason}; retrying in {}s", wait.as_secs()),
                        NextStep::RetryAt(at),
                    )
                }
            }
            Attempt::Failed { reason } => (reason.clone(), NextStep::Done),
        };
        let detail = format!(
            "{id} attempt {}: {status}: {verdict} (delivery {})",
            dep.attempts, report.delivery
        );
        self.audit(
            tx,
            Some(dep.change),
            &actor,
            "deployment_attempt",
            detail,
            now,
        )
        .await?;
        match &report.outcome {
            Attempt::Finished {
                succeeded,
                log_url,
                message,
            } => {
                self.finish_deployment(
                    tx,
                    &mut dep,
                    *succeeded,
                    log_url.clone(),
                    message.clone(),
                    now,
                )
                .await?;
            }
            Attempt::InProgress => {
                wait_for_callback(tx, &mut dep, now).await?;
            }
            Attempt::Retry { reason, .. } if next == NextStep::Done => {
                let message = format!("gave up after {} attempts: {reason}", dep.attempts);
                self.finish_deployment(tx, &mut dep, false, None, Some(message), now)
                    .await?;
            }
            Attempt::Retry { .. } => tx.update_deployment(&dep).await?,
            Attempt::Failed { reason } => {
                self.finish_deployment(tx, &mut dep, false, None, Some(reason.clone()), now)
                    .await?;
            }
        }
        Ok(next)
    }

    /// Fails a deployment that can no longer be sent.
    pub(super) async fn fail_unsent_in(
        &self,
        tx: &mut Tx,
        id: DeploymentId,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        if let Some(mut dep) = tx.deployment(id).await?.filter(|d| !d.status.is_finished()) {
            self.finish_deployment(tx, &mut dep, false, None, Some(why.to_string()), now)
                .await?;
        }
        Ok(())
    }

    /// Finishes a dry-run deployment: nothing is called, the outcome is recorded as such.
    pub(super) async fn finish_dry_run_in(
        &self,
        tx: &mut Tx,
        id: DeploymentId,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        if let Some(mut dep) = tx.deployment(id).await?.filter(|d| !d.status.is_finished()) {
            let message = Some("dry run: the target has no url, nothing was called".to_string());
            self.finish_deployment(tx, &mut dep, true, None, message, now)
                .await?;
        }
        Ok(())
    }

    /// A signed callback from the target (`POST /webhooks/deployments/{id}`).
    pub async fn deployment_callback(
        &self,
        id: DeploymentId,
        callback: crate::deploy::Callback,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        use crate::deploy::CallbackStatus;
        let mut tx = self.store.begin().await?;
        let Some(mut dep) = tx.deployment(id).await? else {
            return Err(WorkflowError::NotFound(format!(
                "there is no deployment {id}"
            )));
        };
        let change = tx
            .change(dep.change)
            .await?
            .ok_or_else(|| not_found(dep.change))?;
        let actor = Actor::deploy_target(&change.service, &change.environment);
        if dep.status.is_finished() {
            tx.commit().await?;
            return Ok(());
        }
        let detail = format!("{id} callback: {:?}", callback.status).to_lowercase();
        self.audit(
            &mut tx,
            Some(dep.change),
            &actor,
            "deployment_callback",
            detail,
            now,
        )
        .await?;
        match callback.status {
            CallbackStatus::InProgress => {
                if dep.status == DeploymentStatus::Pending {
                    // The target has it: stop re-sending and wait for the result until the
                    // deadline (the dispatcher skips in-progress deployments).
                    wait_for_callback(&mut tx, &mut dep, now).await?;
                }
            }
            CallbackStatus::Succeeded | CallbackStatus::Failed => {
                let ok = callback.status == CallbackStatus::Succeeded;
                self.finish_deployment_by(
                    &actor,
                    &mut tx,
                    &mut dep,
                    ok,
                    callback.log_url,
                    callback.message,
                    now,
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Fails a deployment whose target never reported back in time.
    ///
    /// Fenced: nothing happens unless this process still holds `job`, which is marked done in
    /// the same transaction.
    pub async fn deployment_timed_out(
        &self,
        job: &crate::store::releases::Job,
        id: DeploymentId,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let mut tx = self.store.begin().await?;
        if !self.holds_job(&mut tx, job).await? {
            return Ok(());
        }
        tx.finish_job(job.id, "done", None, now).await?;
        if let Some(mut dep) = tx
            .deployment(id)
            .await?
            .filter(|d| !d.status.is_finished() && now >= d.deadline_at)
        {
            let message = format!(
                "no result from the target within its timeout (deadline {})",
                dep.deadline_at.to_rfc3339()
            );
            self.finish_deployment(&mut tx, &mut dep, false, None, Some(message), now)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends a deployment: `implement → review`, and on to `closed` (successful) for a
    /// successful normal or standard change. Failed and emergency changes wait in review.
    async fn finish_deployment(
        &self,
        tx: &mut Tx,
        dep: &mut Deployment,
        succeeded: bool,
        log_url: Option<String>,
        message: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let actor = Self::scheduler_actor();
        self.finish_deployment_by(&actor, tx, dep, succeeded, log_url, message, now)
            .await
    }

    /// [`Workflow::finish_deployment`] on behalf of `actor` (a target's callback).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn finish_deployment_by(
        &self,
        actor: &Actor,
        tx: &mut Tx,
        dep: &mut Deployment,
        succeeded: bool,
        log_url: Option<String>,
        message: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        dep.status = if succeeded {
            DeploymentStatus::Succeeded
        } else {
            DeploymentStatus::Failed
        };
        dep.finished_at = Some(now);
        dep.log_url = log_url;
        dep.message = message;
        tx.update_deployment(dep).await?;
        let mut change = tx
            .change(dep.change)
            .await?
            .ok_or_else(|| not_found(dep.change))?;
        let outcome = if dep.dry_run {
            "succeeded (dry run)"
        } else if succeeded {
            "succeeded"
        } else {
            "failed"
        };
        let mut detail = format!("{} {outcome}", dep.id);
        if let Some(m) = &dep.message {
            detail.push_str(&format!(": {m}"));
        }
        self.audit(
            tx,
            Some(change.id),
            actor,
            "deployment_finished",
            detail.clone(),
            now,
        )
        .await?;
        let mut happened = Vec::new();
        if change.state == State::Implement {
            change.move_to(State::Review, now)?;
            happened.push(Happening::Moved {
                from: State::Implement,
                to: State::Review,
                why: detail.clone(),
            });
            if succeeded && change.change_type != ChangeType::Emergency {
                change.move_to(State::Closed, now)?;
                change.close_code = Some(CloseCode::Successful);
                happened.push(Happening::Moved {
                    from: State::Review,
                    to: State::Closed,
                    why: "successful".into(),
                });
            }
            tx.update_change(&change).await?;
            self.audit_happenings(tx, &change, actor, &happened, now)
                .await?;
        }
        let mut text = format!("{} — {detail}", change.headline());
        if let Some(url) = &dep.log_url {
            text.push_str(&format!(" ({url})"));
        }
        if change.state == State::Review {
            text.push_str(&format!(
                "; waiting for `change close {} --review …`",
                change.id
            ));
        }
        self.notify(tx, &change, NoticeEvent::Finished, text, now)
            .await?;
        Ok(())
    }
}

/// Marks a deployment in progress and books its timeout: the target has it, so it is not sent
/// again, and the result is awaited until the deadline.
pub(super) async fn wait_for_callback(
    tx: &mut Tx,
    dep: &mut Deployment,
    now: DateTime<Utc>,
) -> Result<(), WorkflowError> {
    dep.status = DeploymentStatus::InProgress;
    tx.update_deployment(dep).await?;
    let job = NewJob {
        kind: JobKind::DeploymentTimeout,
        change: Some(dep.change),
        deployment: Some(dep.id),
        name: None,
        due_at: dep.deadline_at,
    };
    tx.insert_job(&job, now).await?;
    Ok(())
}
