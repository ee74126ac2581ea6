//! Loading what the rules need inside a transaction, and saving what they decided.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::{Actor, Workflow, WorkflowError};
use crate::chat::TimeSpec;
use crate::domain::calendar::{Booked, Freeze, FreezeSpan, Interval};
use crate::domain::effect::NoticeEvent;
use crate::domain::explain::fmt_slot;
use crate::domain::lifecycle::{Context, Happening};
use crate::domain::policy::{CheckReport, Vote};
use crate::domain::{Change, ChangeId, State};
use crate::store::{NewAuditEntry, StoredFreeze, Tx};

/// A change and everything the rules read about it.
pub(super) struct Loaded {
    pub change: Change,
    pub votes: Vec<Vote>,
    /// CI reports on the change's head commit (PR changes).
    pub checks: Vec<CheckReport>,
    pub booked: Vec<Booked>,
    pub freezes: Vec<Freeze>,
}

impl Workflow {
    /// Configured freezes plus those started from chat, as one list.
    pub(super) fn all_freezes(&self, stored: &[StoredFreeze]) -> Vec<Freeze> {
        let mut all = self.config.org.freezes.clone();
        all.extend(stored.iter().map(stored_to_freeze));
        all
    }

    pub(super) async fn load(
        &self,
        tx: &mut Tx,
        id: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<Loaded, WorkflowError> {
        let change = tx.change(id).await?.ok_or_else(|| not_found(id))?;
        let votes = tx.votes(id).await?;
        let checks = match &change.pull_request {
            Some(pr) => tx.check_reports(&pr.repository, &pr.head_sha).await?,
            None => Vec::new(),
        };
        let booked = tx
            .booked_on(&change.service, &change.environment, now, Some(id))
            .await?;
        let stored = tx.freezes(now).await?;
        let freezes = self.all_freezes(&stored);
        Ok(Loaded {
            change,
            votes,
            checks,
            booked,
            freezes,
        })
    }

    pub(super) fn context<'a>(&'a self, loaded: &'a Loaded, now: DateTime<Utc>) -> Context<'a> {
        Context {
            org: &self.config.org,
            votes: &loaded.votes,
            checks: &loaded.checks,
            booked: &loaded.booked,
            freezes: &loaded.freezes,
            now,
        }
    }

    /// The service's time zone (UTC for an unknown service).
    pub(super) fn tz_of(&self, service: &str) -> Tz {
        self.config
            .org
            .service(service)
            .map_or(chrono_tz::UTC, |s| s.timezone)
    }

    /// Appends one audit entry for `change`.
    pub(super) async fn audit(
        &self,
        tx: &mut Tx,
        change: Option<ChangeId>,
        actor: &Actor,
        action: &str,
        detail: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        tx.append_audit(&NewAuditEntry {
            change,
            at: now,
            actor: actor.audit_name(),
            surface: actor.surface().to_string(),
            action: action.to_string(),
            detail: detail.into(),
        })
        .await?;
        Ok(())
    }

    /// Audits what the rules did to a change, keeps its timed jobs in step with its booking,
    /// and announces bookings.
    pub(super) async fn audit_happenings(
        &self,
        tx: &mut Tx,
        change: &Change,
        actor: &Actor,
        happened: &[Happening],
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        self.audit_happenings_because(tx, change, actor, happened, None, now)
            .await
    }

    /// Like [`Workflow::audit_happenings`], with the reason a booking moved (`moved by freeze
    /// db-failover`) written into the audit entry and the notice.
    pub(super) async fn audit_happenings_because(
        &self,
        tx: &mut Tx,
        change: &Change,
        actor: &Actor,
        happened: &[Happening],
        because: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let moved = because.map_or_else(String::new, |b| format!("{b}: "));
        let tz = self.tz_of(&change.service);
        let mut booking_changed = false;
        for h in happened {
            let (action, detail) = match h {
                Happening::Moved { from, to, why } => {
                    booking_changed |= *from == State::Scheduled || *to == State::Canceled;
                    ("transition", format!("{from} → {to}: {why}"))
                }
                Happening::Booked { slot } => {
                    booking_changed = true;
                    let text = format!(
                        "{} — {moved}booked {}",
                        change.headline(),
                        fmt_slot(*slot, tz)
                    );
                    self.notify_booking(tx, change, NoticeEvent::Booking, text, now)
                        .await?;
                    ("booked", format!("{moved}{}", fmt_slot(*slot, tz)))
                }
                Happening::Unbooked { why } => {
                    booking_changed = true;
                    ("unbooked", why.clone())
                }
            };
            self.audit(tx, Some(change.id), actor, action, detail, now)
                .await?;
        }
        if booking_changed {
            self.sync_jobs(tx, change, now).await?;
        }
        Ok(())
    }

    /// Audits a refusal that concerns no change (a freeze, say) and returns it as the error
    /// to answer with. If the audit cannot be written, that error is returned instead.
    pub(super) async fn refuse_unattached(
        &self,
        actor: &Actor,
        what: &str,
        why: String,
        now: DateTime<Utc>,
    ) -> WorkflowError {
        let audited = async {
            let mut tx = self.store.begin().await?;
            let detail = format!("{what}: {why}");
            self.audit(&mut tx, None, actor, "refused", detail, now)
                .await?;
            tx.commit().await?;
            Ok::<_, WorkflowError>(())
        };
        match audited.await {
            Ok(()) => WorkflowError::Refused(why),
            Err(e) => e,
        }
    }

    /// Records a refusal on an existing change, commits it, and returns the error to show.
    pub(super) async fn refuse(
        &self,
        mut tx: Tx,
        id: ChangeId,
        actor: &Actor,
        what: &str,
        why: String,
        now: DateTime<Utc>,
    ) -> Result<super::Outcome, WorkflowError> {
        self.audit(
            &mut tx,
            Some(id),
            actor,
            "refused",
            format!("{what}: {why}"),
            now,
        )
        .await?;
        let state = tx.change(id).await?.map(|c| c.state);
        tx.commit().await?;
        // Replies name the change and its state first.
        let why = match state {
            Some(state) if !why.starts_with(&format!("{id} ")) => format!("{id} · {state} · {why}"),
            _ => why,
        };
        Err(WorkflowError::Refused(why))
    }

    /// Resolves a typed time in `tz` (`YYYY-MM-DD HH:MM` is wall-clock time there; `+2h` is
    /// from `now`).
    pub(super) fn resolve_time(
        &self,
        spec: TimeSpec,
        tz: Tz,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, WorkflowError> {
        match spec {
            TimeSpec::Absolute(t) => Ok(t),
            TimeSpec::FromNow(d) => Ok(now + d.as_duration()),
            TimeSpec::Local(naive) => local_to_utc(naive, tz).ok_or_else(|| {
                WorkflowError::Invalid(format!(
                    "{} does not exist in {tz} (the clocks skip it); pick another time",
                    naive.format("%Y-%m-%d %H:%M")
                ))
            }),
        }
    }
}

/// Wall-clock time in `tz` → instant; the earlier one when the time happens twice.
pub(super) fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(early, _) => Some(early.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

pub(super) fn not_found(id: ChangeId) -> WorkflowError {
    WorkflowError::NotFound(format!(
        "there is no change {id}; `change list` shows the existing ones"
    ))
}

pub(super) fn stored_to_freeze(f: &StoredFreeze) -> Freeze {
    Freeze {
        name: f.name.clone(),
        span: FreezeSpan::OneOff(Interval::new(f.start, f.end)),
        services: f.services.clone(),
        reason: f.reason.clone(),
    }
}
