//! Read-only views for the web pages: the forward schedule of change and everything about one
//! change. Computed by the same rules as `calendar`, `change show`, `change explain`,
//! `change history` and `release status`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::{ParkedDelivery, Workflow, WorkflowError};
use crate::domain::calendar::{self, Agenda};
use crate::domain::explain::{self, Explanation};
use crate::domain::policy::{PolicyStatus, Vote};
use crate::domain::release::Deployment;
use crate::domain::{Change, ChangeId};
use crate::store::AuditEntry;

/// How many weeks the forward schedule covers unless told otherwise.
pub const DEFAULT_WEEKS: u32 = 4;
/// The longest forward schedule.
pub const MAX_WEEKS: u32 = 12;

/// The forward schedule of change over `[from, to)`.
#[derive(Debug, Clone)]
pub struct ForwardSchedule {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub services: Vec<ServiceSchedule>,
}

/// One service's part of the forward schedule, to be shown in its own time zone.
#[derive(Debug, Clone)]
pub struct ServiceSchedule {
    pub service: String,
    pub timezone: Tz,
    pub agenda: Agenda,
    /// Changes booked in the period (scheduled or being released), by slot.
    pub changes: Vec<Change>,
    /// Freezes started from chat: name → who started it (configured freezes are not here).
    pub started_by: BTreeMap<String, String>,
}

/// Everything the change page shows.
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    pub change: Change,
    /// The service's time zone.
    pub timezone: Tz,
    /// The policy that decides and how its approvals stand (as `change show` has it).
    pub policy: Option<PolicyStatus>,
    pub votes: Vec<Vote>,
    /// What `change explain` says.
    pub explanation: Explanation,
    pub audit: Vec<AuditEntry>,
    pub deployments: Vec<Deployment>,
    /// The audit entries of its deployments (as `release status` lists them).
    pub attempts: Vec<AuditEntry>,
    pub parked: Vec<ParkedDelivery>,
    /// Flagged as an unauthorized change.
    pub unauthorized: bool,
}

impl Workflow {
    /// The windows, freezes and booked changes of the next `weeks` weeks (1 to
    /// [`MAX_WEEKS`]), of one service or each.
    pub async fn forward_schedule(
        &self,
        weeks: u32,
        service: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<ForwardSchedule, WorkflowError> {
        if !(1..=MAX_WEEKS).contains(&weeks) {
            return Err(WorkflowError::Invalid(format!(
                "weeks must be between 1 and {MAX_WEEKS}"
            )));
        }
        let org = &self.config.org;
        let services: Vec<&crate::domain::organisation::Service> = match service {
            Some(name) => vec![self.service_named(name)?],
            None => org.services.values().collect(),
        };
        let to = now + Duration::weeks(i64::from(weeks));
        let stored = self.store.freezes(now).await?;
        let freezes = self.all_freezes(&stored);
        let started_by: BTreeMap<String, String> = stored
            .iter()
            .map(|f| (f.name.clone(), f.started_by.clone()))
            .collect();
        let mut booked: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        for c in self.store.booked_between(now, to, service).await? {
            booked.entry(c.service.clone()).or_default().push(c);
        }
        let services = services
            .into_iter()
            .map(|s| {
                let windows: Vec<_> = s
                    .windows
                    .iter()
                    .filter_map(|w| org.windows.get(w).cloned())
                    .collect();
                let applying: Vec<_> = freezes
                    .iter()
                    .filter(|f| f.applies_to(&s.name))
                    .cloned()
                    .collect();
                let agenda = calendar::agenda(&windows, &applying, now, to);
                let started_by = agenda
                    .freezes
                    .iter()
                    .filter_map(|f| Some((f.name.clone(), started_by.get(&f.name)?.clone())))
                    .collect();
                ServiceSchedule {
                    service: s.name.clone(),
                    timezone: s.timezone,
                    agenda,
                    changes: booked.remove(&s.name).unwrap_or_default(),
                    started_by,
                }
            })
            .collect();
        Ok(ForwardSchedule {
            from: now,
            to,
            services,
        })
    }

    /// A change with its approvals against policy, explanation, audit trail and deployments.
    pub async fn change_record(
        &self,
        id: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<ChangeRecord, WorkflowError> {
        let loaded = self.load_readonly(id, now).await?;
        let timezone = self.tz_of(&loaded.change.service);
        let cx = self.context(&loaded, now);
        let policy = cx.policy_status(&loaded.change);
        let explanation = explain::explain(&loaded.change, &cx, timezone);
        let ids = [id];
        let (audit, deployments, parked, flagged) = tokio::try_join!(
            self.store.audit(id),
            self.store.deployments(id),
            self.store.parked(Some(id)),
            self.store.flagged_unauthorized(&ids),
        )?;
        let attempts = audit
            .iter()
            .filter(|e| super::releases::is_attempt(e))
            .cloned()
            .collect();
        Ok(ChangeRecord {
            timezone,
            policy,
            votes: loaded.votes.clone(),
            explanation,
            audit,
            deployments,
            attempts,
            parked: parked.iter().map(Into::into).collect(),
            unauthorized: flagged.contains(&id),
            change: loaded.change,
        })
    }
}
