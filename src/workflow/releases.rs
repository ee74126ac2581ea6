//! Releases: starting a booked change's deployment, recording each delivery attempt and the
//! outcome, break-glass `release now`, and `release status`. Every step is one transaction
//! that also queues its side effects (deployment call, chat notices) in the outbox.

use chrono::{DateTime, Duration, Utc};

use super::context::not_found;
use super::{Actor, Outcome, Workflow, WorkflowError};
use crate::domain::calendar::Interval;
use crate::domain::effect::NoticeEvent;
use crate::domain::explain::{describe_problem, fmt_slot};
use crate::domain::lifecycle::{self, Happening};
use crate::domain::release::Deployment;
use crate::domain::{Change, ChangeId, ChangeType, State};
use crate::store::Tx;
use crate::store::claims::Table;
use crate::store::releases::Job;
use crate::store::releases::{JobKind, NewDeployment, NewJob, NewOutbox, OutboxKind};

/// How long before its slot a change's reminder goes out.
pub const REMINDER_LEAD: Duration = Duration::minutes(60);
/// A release start that runs this late counts as missed (the bot was down).
pub const MISSED_AFTER: Duration = Duration::minutes(1);

impl Workflow {
    pub(super) fn scheduler_actor() -> Actor {
        Actor::changebot()
    }

    /// Keeps a change's timed jobs in step with its booking: a scheduled change has one
    /// release start at its slot and one reminder an hour before; anything else has none.
    pub(super) async fn sync_jobs(
        &self,
        tx: &mut Tx,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        tx.cancel_change_jobs(change.id, now).await?;
        if let (State::Scheduled, Some(slot)) = (change.state, change.slot) {
            let job = |kind, due_at| NewJob {
                kind,
                change: Some(change.id),
                deployment: None,
                name: None,
                due_at,
            };
            if slot.start - REMINDER_LEAD > now {
                tx.insert_job(&job(JobKind::Reminder, slot.start - REMINDER_LEAD), now)
                    .await?;
            }
            tx.insert_job(&job(JobKind::ReleaseStart, slot.start), now)
                .await?;
        }
        Ok(())
    }

    /// Starts the deployment of a scheduled change: `scheduled → implement`, a new `DEP-N`, the
    /// call queued in the outbox, the start announced.
    pub(super) async fn start_release(
        &self,
        tx: &mut Tx,
        change: &mut Change,
        actor: &Actor,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Deployment, WorkflowError> {
        let target = self
            .config
            .org
            .service(&change.service)
            .and_then(|s| s.deploy.get(&change.environment))
            .cloned();
        let via_github = target.as_ref().is_some_and(|t| t.github_actions);
        let dry_run = !via_github && target.as_ref().is_none_or(|t| t.url.is_none());
        let timeout = target.map_or(Duration::minutes(15), |t| t.timeout);
        let deployment = tx
            .insert_deployment(&NewDeployment {
                change: change.id,
                dry_run,
                requested_by: actor.name(),
                reason: reason.to_string(),
                started_at: now,
                deadline_at: now + timeout,
            })
            .await?;
        let from = change.state;
        change.move_to(State::Implement, now)?;
        tx.update_change(change).await?;
        // The booking's jobs are canceled by `audit_happenings` (scheduled → implement).
        let why = format!("{} started ({reason})", deployment.id);
        let happened = [Happening::Moved {
            from,
            to: State::Implement,
            why,
        }];
        self.audit_happenings(tx, change, actor, &happened, now)
            .await?;
        let what = if via_github {
            "GitHub Actions (its deployment protection rule is approved now)"
        } else if dry_run {
            "dry run (no target url)"
        } else {
            "deployment webhook"
        };
        let detail = format!(
            "{} of {}/{}: {what}",
            deployment.id, change.service, change.environment
        );
        self.audit(
            tx,
            Some(change.id),
            actor,
            "deployment_started",
            detail,
            now,
        )
        .await?;
        let mut deployment = deployment;
        if via_github {
            // The workflow deploys; its deployment_status reports the outcome (or the timeout
            // fails it).
            super::deployments::wait_for_callback(tx, &mut deployment, now).await?;
        } else {
            let request = serde_json::to_string(&self.deploy_request(change, deployment.id))
                .map_err(|e| {
                    WorkflowError::Invalid(format!("cannot encode the deployment request: {e}"))
                })?;
            let call = NewOutbox {
                kind: OutboxKind::Deploy,
                surface: "target",
                deployment: Some(deployment.id),
                change: Some(change.id),
                channel: None,
                body: &request,
                topic: None,
                parked_item: None,
            };
            tx.insert_outbox(&call, now).await?;
        }
        // Deployment protection rules held for this change's window are answered now.
        self.settle_gates_of(tx, change, now).await?;
        let dry = if dry_run { " (dry run)" } else { "" };
        let text = format!(
            "{} · implement · {}/{} · {} — release started{dry}: {}",
            change.id, change.service, change.environment, change.title, deployment.id
        );
        self.notify(tx, change, NoticeEvent::Started, text, now)
            .await?;
        Ok(deployment)
    }

    /// Runs a due `release_start` job for `id`. A start that comes late (the bot was down)
    /// still runs if the time left fits its window, clear of freezes and other bookings;
    /// otherwise the change is rebooked.
    ///
    /// Fenced: nothing happens unless this process still holds `job`, which is marked done in
    /// the same transaction.
    pub async fn release_due(
        &self,
        job: &Job,
        id: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let mut tx = self.store.begin().await?;
        if !self.holds_job(&mut tx, job).await? {
            return Ok(());
        }
        let freezes = self.all_freezes(&tx.freezes(now).await?);
        self.release_due_in(&mut tx, id, job.due_at, &freezes, now)
            .await?;
        tx.finish_job(job.id, "done", None, now).await?;
        Ok(tx.commit().await?)
    }

    /// Runs many claimed `release_start` jobs in one transaction, marking them done with them
    /// (one commit for a burst of releases due in the same minute). Jobs whose claim was taken
    /// over meanwhile (this process stalled past its lease) are left to their new holder.
    pub async fn release_due_batch(
        &self,
        due: &[Job],
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let mut tx = self.store.begin().await?;
        let claims: Vec<(i64, &str)> = due
            .iter()
            .filter_map(|j| Some((j.id, j.claim_token.as_deref()?)))
            .collect();
        let held = tx.held(Table::Jobs, &claims).await?;
        let freezes = self.all_freezes(&tx.freezes(now).await?);
        let mut done = Vec::with_capacity(due.len());
        for job in due.iter().filter(|j| held.contains(&j.id)) {
            if let Some(id) = job.change {
                self.release_due_in(&mut tx, id, job.due_at, &freezes, now)
                    .await?;
            }
            done.push(job.id);
        }
        tx.finish_jobs_many(&done, now).await?;
        Ok(tx.commit().await?)
    }

    /// Starts a change whose slot has come, unless something changed under it: a freeze
    /// started or configured since booking, a window removed, or another booking in the way
    /// beats the booking. A start on time (at most `MISSED_AFTER` after the slot's start) is
    /// checked for the slot it was booked for, which it keeps: the scheduler always runs a
    /// moment after the slot begins, and the last slot of a window must still start. A start
    /// that comes late (changebot was down) is checked for the time really left, `[now, now +
    /// duration)`, and books that. A change that cannot start is rebooked for its next legal
    /// slot, or unbooked if there is none; either way it is announced, never dropped.
    async fn release_due_in(
        &self,
        tx: &mut Tx,
        id: ChangeId,
        due_at: DateTime<Utc>,
        freezes: &[crate::domain::calendar::Freeze],
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let actor = Self::scheduler_actor();
        let mut change = tx.change(id).await?.ok_or_else(|| not_found(id))?;
        let Some(booked_slot) = change
            .slot
            .filter(|s| change.state == State::Scheduled && s.start == due_at)
        else {
            // Rebooked, canceled or already started: this job is stale.
            return Ok(());
        };
        let late = now - due_at > MISSED_AFTER;
        let slot = if late {
            Interval::new(now, now + change.duration)
        } else {
            booked_slot
        };
        // Other changes' bookings on the same service and environment (one indexed query).
        let booked = tx
            .booked_on(&change.service, &change.environment, slot.start, Some(id))
            .await?;
        let cx = lifecycle::Context {
            org: &self.config.org,
            votes: &[],
            checks: &[],
            booked: &booked,
            freezes,
            now,
        };
        if let Err(problems) = cx.check_booked(&change, slot) {
            let tz = self.tz_of(&change.service);
            let why = if late {
                "missed its slot while changebot was down".to_string()
            } else {
                let text: Vec<String> = problems.iter().map(|p| describe_problem(p, tz)).collect();
                format!("cannot start now: {}", text.join("; "))
            };
            return self.rebook_or_unbook(tx, change, &actor, &why, now).await;
        }
        // On time, the booking stands; late, it now runs from the actual start.
        change.slot = Some(slot);
        self.start_release(tx, &mut change, &actor, "slot", now)
            .await?;
        Ok(())
    }

    /// Moves a change that cannot start to its next legal slot, or back to `authorize` when
    /// there is none, and announces which.
    pub(super) async fn rebook_or_unbook(
        &self,
        tx: &mut Tx,
        change: Change,
        actor: &Actor,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        self.rebook_or_unbook_after(tx, change, actor, why, now, now)
            .await
    }

    /// Like [`Workflow::rebook_or_unbook`], looking for a slot that starts no earlier than
    /// `earliest` (after the slot that just failed, so a failing start is not retried in the
    /// same slot forever).
    pub(super) async fn rebook_or_unbook_after(
        &self,
        tx: &mut Tx,
        mut change: Change,
        actor: &Actor,
        why: &str,
        earliest: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let loaded = self.load(tx, change.id, now).await?;
        let cx = self.context(&loaded, earliest.max(now));
        let tz = self.tz_of(&change.service);
        let text = match lifecycle::book(&mut change, &cx, None) {
            Ok(happened) => {
                tx.update_change(&change).await?;
                self.audit_happenings(tx, &change, actor, &happened, now)
                    .await?;
                let slot = change.slot.map(|s| fmt_slot(s, tz)).unwrap_or_default();
                format!("{} — {why}; rebooked for {slot}", change.headline())
            }
            Err(e) => {
                change.slot = None;
                let happened = [
                    Happening::Unbooked {
                        why: format!("{why}; {e}"),
                    },
                    Happening::Moved {
                        from: State::Scheduled,
                        to: State::Authorize,
                        why: "no legal slot".into(),
                    },
                ];
                change.move_to(State::Authorize, now)?;
                tx.update_change(&change).await?;
                self.audit_happenings(tx, &change, actor, &happened, now)
                    .await?;
                format!(
                    "{} — {why}; no legal slot found, so it is unbooked: `change schedule {}` once one exists",
                    change.headline(),
                    change.id
                )
            }
        };
        self.notify_booking(tx, &change, NoticeEvent::Booking, text, now)
            .await
    }

    /// Sends the T-60 reminder for a scheduled change.
    ///
    /// Fenced like [`Workflow::release_due`].
    pub async fn remind(
        &self,
        job: &Job,
        id: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let due_at = job.due_at;
        let mut tx = self.store.begin().await?;
        if !self.holds_job(&mut tx, job).await? {
            return Ok(());
        }
        tx.finish_job(job.id, "done", None, now).await?;
        let change = tx.change(id).await?.ok_or_else(|| not_found(id))?;
        // A reminder that comes after its slot started (changebot was down) is pointless.
        if change.state == State::Scheduled
            && change.slot.map(|s| s.start - REMINDER_LEAD) == Some(due_at)
            && change.slot.is_some_and(|s| s.start > now)
        {
            let tz = self.tz_of(&change.service);
            let slot = change.slot.map(|s| fmt_slot(s, tz)).unwrap_or_default();
            let text = format!("{} — starts in 60 minutes ({slot})", change.headline());
            self.notify_booking(&mut tx, &change, NoticeEvent::Reminder, text, now)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `release now CHG-N --reason …`: break-glass start of an approved emergency change.
    pub(super) async fn release_now(
        &self,
        actor: &Actor,
        id: ChangeId,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let mut tx = self.store.begin().await?;
        let loaded = self.load(&mut tx, id, now).await?;
        let mut change = loaded.change.clone();
        if let Err(why) = self.may_manage(actor, &change, "release") {
            return self.refuse(tx, id, actor, "release now", why, now).await;
        }
        if change.change_type != ChangeType::Emergency {
            let why = format!(
                "{id} is a {} change; break-glass release is only for emergency changes (use `change schedule`)",
                change.change_type
            );
            return self.refuse(tx, id, actor, "release now", why, now).await;
        }
        let authorized = self
            .context(&loaded, now)
            .policy_status(&change)
            .is_some_and(|s| s.satisfied());
        if !authorized || change.state != State::Scheduled {
            let why = format!(
                "{id} is {} and needs its emergency approval first; see `change explain {id}`",
                change.state
            );
            return self.refuse(tx, id, actor, "release now", why, now).await;
        }
        self.audit(&mut tx, Some(id), actor, "break_glass", reason.clone(), now)
            .await?;
        self.start_release(
            &mut tx,
            &mut change,
            actor,
            &format!("break-glass: {reason}"),
            now,
        )
        .await?;
        tx.commit().await?;
        self.release_status(id).await
    }

    /// `release status CHG-N`: the change, its deployments and every attempt.
    pub(super) async fn release_status(&self, id: ChangeId) -> Result<Outcome, WorkflowError> {
        let change = self.find_change(id).await?;
        let deployments = self.store.deployments(id).await?;
        let attempts = self
            .store
            .audit(id)
            .await?
            .into_iter()
            .filter(is_attempt)
            .collect();
        let parked = self.store.parked(Some(id)).await?;
        Ok(Outcome::Release {
            change,
            deployments,
            attempts,
            parked: parked.iter().map(Into::into).collect(),
        })
    }
}

/// Whether an audit entry is about a deployment (started, attempt, callback, finished): what
/// `release status` lists as attempts.
pub(super) fn is_attempt(entry: &crate::store::AuditEntry) -> bool {
    entry.action.starts_with("deployment_")
}
