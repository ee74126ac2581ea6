//! Freezes started and ended from chat. A freeze started after changes were booked moves each
//! affected change to its next legal slot (queued, never dropped), in the same transaction.

use chrono::{DateTime, Utc};

use super::outcome::FreezeLine;
use super::{Actor, Outcome, Workflow, WorkflowError};
use crate::chat::TimeSpec;
use crate::domain::calendar::Interval;
use crate::domain::lifecycle;
use crate::domain::{ChangeType, State};
use crate::store::{NewFreeze, Tx};

impl Workflow {
    pub(super) async fn freeze_start(
        &self,
        actor: &Actor,
        name: String,
        until: TimeSpec,
        service: Option<String>,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let org = &self.config.org;
        if actor.person().is_none() {
            let why = self.unmapped(actor, "start freezes");
            return Err(self
                .refuse_unattached(actor, "freeze start", why, now)
                .await);
        }
        let tz = match service.as_deref() {
            Some(s) => self.service_named(s)?.timezone,
            None => chrono_tz::UTC,
        };
        let end = self.resolve_time(until, tz, now)?;
        if end <= now {
            return Err(WorkflowError::Invalid(format!(
                "--until {} has already passed",
                end.to_rfc3339()
            )));
        }
        if org.freezes.iter().any(|f| f.name == name) {
            return Err(WorkflowError::Invalid(format!(
                "`{name}` is a configured freeze; pick another name"
            )));
        }
        let services: Vec<String> = service.into_iter().collect();
        let mut tx = self.store.begin().await?;
        let new = NewFreeze {
            name: name.clone(),
            start: now,
            end,
            services: services.clone(),
            reason: reason.clone(),
            started_by: actor.name(),
        };
        let Some(stored) = tx.insert_freeze(&new).await? else {
            return Err(WorkflowError::Refused(format!(
                "a freeze named `{name}` is already in force; `freeze end {name}` first"
            )));
        };
        let scope = if services.is_empty() {
            "all services".to_string()
        } else {
            services.join(", ")
        };
        let detail = format!("{name} on {scope} until {}: {reason}", end.to_rfc3339());
        self.audit(&mut tx, None, actor, "freeze_started", detail, now)
            .await?;
        let rebooked = self
            .rebook_frozen(
                &mut tx,
                actor,
                &name,
                Interval::new(now, end),
                &services,
                now,
            )
            .await?;
        tx.commit().await?;
        let freeze = FreezeLine {
            name: stored.name,
            start: Some(stored.start),
            end: Some(stored.end),
            services: stored.services,
            reason: stored.reason,
            source: "chat",
            recurring: false,
        };
        Ok(Outcome::FreezeStarted { freeze, rebooked })
    }

    /// Moves scheduled changes whose slot overlaps `frozen` to their next legal slot.
    async fn rebook_frozen(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        freeze: &str,
        frozen: Interval,
        services: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::domain::Change>, WorkflowError> {
        let org = &self.config.org;
        let mut moved = Vec::new();
        for svc in org
            .services
            .values()
            .filter(|s| services.is_empty() || services.contains(&s.name))
        {
            for env in &svc.environments {
                for booked in tx.booked_on(&svc.name, env, now, None).await? {
                    if !booked.slot.overlaps(&frozen) {
                        continue;
                    }
                    let loaded = self
                        .load(tx, crate::domain::ChangeId(booked.change), now)
                        .await?;
                    let mut change = loaded.change.clone();
                    if change.state != State::Scheduled
                        || change.change_type == ChangeType::Emergency
                    {
                        continue;
                    }
                    match lifecycle::book(&mut change, &self.context(&loaded, now), None) {
                        Ok(happened) => {
                            tx.update_change(&change).await?;
                            let because = format!("moved by freeze {freeze}");
                            self.audit_happenings_because(
                                tx,
                                &change,
                                actor,
                                &happened,
                                Some(&because),
                                now,
                            )
                            .await?;
                            moved.push(change);
                        }
                        Err(_) => {
                            // No later slot: unbooked (and announced), never left in the freeze.
                            let why = format!("freeze {freeze} covers its slot");
                            self.rebook_or_unbook(tx, loaded.change.clone(), actor, &why, now)
                                .await?;
                        }
                    }
                }
            }
        }
        Ok(moved)
    }

    pub(super) async fn freeze_end(
        &self,
        actor: &Actor,
        name: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let Some(person) = actor.person() else {
            let why = self.unmapped(actor, "end freezes");
            return Err(self.refuse_unattached(actor, "freeze end", why, now).await);
        };
        if self.config.org.freezes.iter().any(|f| f.name == name) {
            return Err(WorkflowError::Refused(format!(
                "`{name}` is configured in the config file; remove it there to end it"
            )));
        }
        let mut tx = self.store.begin().await?;
        let active = tx.freezes(now).await?;
        if let Some(f) = active.iter().find(|f| f.name == name) {
            // A freeze is a team's lock: its starter or an owner of a service it covers ends it.
            let org = &self.config.org;
            let owns =
                |svc: &crate::domain::organisation::Service| org.is_member(person, &svc.owners);
            let covered_owner = if f.services.is_empty() {
                org.services.values().any(owns)
            } else {
                f.services.iter().filter_map(|s| org.service(s)).any(owns)
            };
            if f.started_by != person && !covered_owner {
                return Err(WorkflowError::Refused(format!(
                    "{} may not end freeze {name}: only {} (who started it) or an owner of a service it covers may",
                    person, f.started_by
                )));
            }
        }
        if !tx.end_freeze(&name, person, now).await? {
            return Err(WorkflowError::NotFound(format!(
                "no freeze `{name}` is in force; `freeze list` shows them"
            )));
        }
        self.audit(&mut tx, None, actor, "freeze_ended", name.clone(), now)
            .await?;
        tx.commit().await?;
        Ok(Outcome::FreezeEnded { name })
    }
}
