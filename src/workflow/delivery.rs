//! Bookkeeping for the scheduler and the outbox dispatcher: what a deployment call carries,
//! marking jobs and outbox items, and scheduled announcements.

use chrono::{DateTime, Duration, Utc};

use super::effects::NoticeTo;
use super::{Workflow, WorkflowError};
use crate::deploy::{self, DeployRequest};
use crate::domain::Change;
use crate::domain::DeploymentId;
use crate::domain::effect::{Notice, NoticeEvent};
use crate::domain::explain::fmt_slot;
use crate::domain::release::{Deployment, DeploymentStatus};
use crate::store::releases::{Job, JobKind, NewJob};

/// Everything one deployment call needs.
#[derive(Debug, Clone)]
pub struct DeployCall {
    pub url: String,
    pub secret: Option<String>,
    pub request: DeployRequest,
}

/// What the dispatcher should do with a deployment's outbox item.
#[derive(Debug, Clone)]
pub enum CallPlan {
    /// POST it.
    Send(Box<DeployCall>),
    /// A dry run: record it as such, call nothing.
    DryRun,
    /// Nothing to send: finished, or waiting for a callback.
    Skip,
    /// It can no longer be sent (deadline passed, target removed from config): fail the
    /// deployment with this reason.
    Unsent(String),
}

impl Workflow {
    /// The body of a change's deployment call (docs/deployment-webhook.md). Written into the outbox when the
    /// release starts, so delivering it needs no further reads.
    pub(super) fn deploy_request(&self, change: &Change, id: DeploymentId) -> DeployRequest {
        let pr = change.pull_request.as_ref();
        DeployRequest {
            deployment_id: id,
            change_id: change.id,
            service: change.service.clone(),
            environment: change.environment.clone(),
            repository: pr.map(|p| p.repository.clone()),
            git_ref: pr.map(|p| p.head_sha.clone()),
            pull_request: pr.map(|p| p.number),
            requested_by: change.requester.clone(),
            callback_url: deploy::callback_url(&self.config.server.public_url, id),
        }
    }

    /// Decides what a deployment's outbox item (`body`: its request) should do now, given the
    /// deployment as it stands (`None`: it does not exist).
    ///
    /// A call whose deadline passed is not sent (it could start a deployment outside any
    /// window), except when `cut_off`: the previous holder may already have delivered it, and
    /// re-sending it with the same `Idempotency-Key` only asks the target for its outcome.
    pub async fn plan_call(
        &self,
        id: DeploymentId,
        dep: Option<&Deployment>,
        body: &str,
        cut_off: bool,
        now: DateTime<Utc>,
    ) -> Result<CallPlan, WorkflowError> {
        let Some(dep) = dep else {
            return Ok(CallPlan::Skip);
        };
        if dep.status.is_finished() || dep.status == DeploymentStatus::InProgress {
            return Ok(CallPlan::Skip);
        }
        if dep.dry_run {
            return Ok(CallPlan::DryRun);
        }
        let request = match serde_json::from_str::<DeployRequest>(body) {
            Ok(r) if r.deployment_id == id => r,
            _ => {
                let change = self.find_change(dep.change).await?;
                self.deploy_request(&change, id)
            }
        };
        let target = self
            .config
            .org
            .service(&request.service)
            .and_then(|s| s.deploy.get(&request.environment));
        let Some(url) = target.and_then(|t| t.url.clone()) else {
            let why = "not sent: its deployment target no longer has a url in config";
            return Ok(CallPlan::Unsent(why.to_string()));
        };
        if now >= dep.deadline_at && !cut_off {
            // Delivered this late (changebot was down) it could land outside any window.
            let why = "not sent: its deadline passed before it could be delivered";
            return Ok(CallPlan::Unsent(why.to_string()));
        }
        let secret = target.and_then(|t| self.config.secret(t.secret_env.as_deref()));
        Ok(CallPlan::Send(Box::new(DeployCall {
            url,
            secret,
            request,
        })))
    }

    /// When the next pending job falls due, if any.
    pub async fn next_job_due(&self) -> Result<Option<DateTime<Utc>>, WorkflowError> {
        Ok(self.store.next_job_due().await?)
    }

    /// Posts the releases booked in the next `days` days to `channel`.
    /// Posts the digest and books the announcement's next occurrence (`next`) in the same
    /// transaction as finishing `job`, so a digest is never posted twice nor the chain broken.
    pub async fn announce_schedule(
        &self,
        job: &Job,
        name: &str,
        channel: &str,
        days: i64,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let booked = self
            .store
            .booked_between(now, now + Duration::days(days), None)
            .await?;
        let span = if days == 1 {
            "the next 24 hours".to_string()
        } else {
            format!("the next {days} days")
        };
        let mut text = format!("{name}: {} release(s) booked in {span}", booked.len());
        for c in &booked {
            let slot = c
                .slot
                .map(|s| fmt_slot(s, self.tz_of(&c.service)))
                .unwrap_or_default();
            text.push_str(&format!(
                "\n  {} · {} · {}/{} · {} · {slot}",
                c.id, c.state, c.service, c.environment, c.title
            ));
        }
        let mut tx = self.store.begin().await?;
        if !self.holds_job(&mut tx, job).await? {
            return Ok(()); // taken over: the new holder posts it
        }
        let digest = NoticeTo {
            surface: "chat",
            channel,
            notice: Notice {
                event: NoticeEvent::Digest,
                change: None,
                text,
                attachment: None,
            },
            topic: None,
            parked_item: None,
        };
        self.queue_notice(&mut tx, digest, now).await?;
        if let Some(due_at) = next {
            let next_job = NewJob {
                kind: JobKind::Announcement,
                change: None,
                deployment: None,
                name: Some(name.to_string()),
                due_at,
            };
            tx.insert_job(&next_job, now).await?;
        }
        tx.finish_job(job.id, "done", None, now).await?;
        Ok(tx.commit().await?)
    }
}
