//! `metrics` and `GET /api/metrics`: the KPIs of the last N days, computed by `domain::kpi`
//! from the record as stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::{Outcome, Workflow, WorkflowError};
use crate::domain::ChangeId;
use crate::domain::kpi::{self, Event, History, Kpis, Scope};
use crate::domain::release::Deployment;

/// The period `metrics` covers unless told otherwise.
pub const DEFAULT_DAYS: u32 = 30;
/// The longest period: a year and a day.
pub const MAX_DAYS: u32 = 366;

impl Workflow {
    pub(super) async fn metrics(
        &self,
        days: Option<u32>,
        service: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let kpis = self
            .kpis(days.unwrap_or(DEFAULT_DAYS), service.as_deref(), now)
            .await?;
        Ok(Outcome::Metrics { kpis })
    }

    /// The KPIs of `[now − days, now)`, of one service or all. `days` is 1 to 366.
    pub async fn kpis(
        &self,
        days: u32,
        service: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Kpis, WorkflowError> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(WorkflowError::Invalid(format!(
                "days must be between 1 and {MAX_DAYS}"
            )));
        }
        if let Some(s) = service.filter(|s| self.config.org.service(s).is_none()) {
            return Err(WorkflowError::NotFound(format!("unknown service `{s}`")));
        }
        let from = now - Duration::days(i64::from(days));
        let changes = self.store.changes_touched(from, now, service).await?;
        let ids: Vec<ChangeId> = changes.iter().map(|c| c.id).collect();
        let mut events: BTreeMap<ChangeId, Vec<Event>> = BTreeMap::new();
        for e in self.store.audit_of(&ids).await? {
            if let Some(id) = e.change {
                events.entry(id).or_default().push(Event {
                    at: e.at,
                    action: e.action,
                    detail: e.detail,
                });
            }
        }
        let mut deployments: BTreeMap<ChangeId, Vec<Deployment>> = BTreeMap::new();
        for d in self.store.deployments_of(&ids).await? {
            deployments.entry(d.change).or_default().push(d);
        }
        let histories: Vec<History> = changes
            .into_iter()
            .map(|change| History {
                events: events.remove(&change.id).unwrap_or_default(),
                deployments: deployments.remove(&change.id).unwrap_or_default(),
                timezone: self.tz_of(&change.service),
                change,
            })
            .collect();
        let scope = Scope {
            from,
            to: now,
            service: service.map(str::to_string),
            environment: None,
        };
        Ok(kpi::compute(&scope, &histories))
    }
}
