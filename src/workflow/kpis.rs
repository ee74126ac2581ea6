//! `metrics`, `GET /api/metrics`, the Prometheus KPI gauges and the weekly review: the KPIs of
//! a period, computed by `domain::kpi` from the record as stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::{Outcome, Workflow, WorkflowError};
use crate::domain::ChangeId;
use crate::domain::kpi::{self, Day, Event, History, Kpis, Scope};
use crate::domain::release::Deployment;

/// The period `metrics` covers unless told otherwise.
pub const DEFAULT_DAYS: u32 = 30;
/// The longest period: a year and a day.
pub const MAX_DAYS: u32 = 366;
/// How far before a period its history is read: a failure up to this long before a period
/// still makes the next deployment in its lane rework.
const LOOKBACK: Duration = Duration::days(30);

/// Which KPIs: the last `days` days, of one service and/or one environment, or all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KpiFilter {
    pub service: Option<String>,
    pub environment: Option<String>,
}

/// What the weekly review reports: this period, the one before it, and this period day by day.
#[derive(Debug, Clone)]
pub struct KpiReview {
    pub current: Kpis,
    pub previous: Kpis,
    pub days: Vec<Day>,
}

impl Workflow {
    pub(super) async fn metrics(
        &self,
        days: Option<u32>,
        service: Option<String>,
        environment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let filter = KpiFilter {
            service,
            environment,
        };
        let kpis = self
            .kpis_of(days.unwrap_or(DEFAULT_DAYS), &filter, now)
            .await?;
        Ok(Outcome::Metrics { kpis })
    }

    /// The KPIs of `[now − days, now)` of what `filter` selects. `days` is 1 to 366.
    pub async fn kpis_of(
        &self,
        days: u32,
        filter: &KpiFilter,
        now: DateTime<Utc>,
    ) -> Result<Kpis, WorkflowError> {
        let scope = self.scope(days, filter, now)?;
        let histories = self.histories(&scope).await?;
        Ok(kpi::compute(&scope, &histories))
    }

    /// The `days` whole local days (in `tz`) before the day of `until`, against the `days`
    /// before them, and those days one by one: what the weekly review posts. Whole days, so
    /// a review that runs late covers the same week, and its chart has no partial days.
    pub async fn review(
        &self,
        days: u32,
        filter: &KpiFilter,
        tz: Tz,
        until: DateTime<Utc>,
    ) -> Result<KpiReview, WorkflowError> {
        let checked = self.scope(days, filter, until)?;
        let midnight = |date: chrono::NaiveDate| {
            date.and_hms_opt(0, 0, 0)
                .and_then(|t| t.and_local_timezone(tz).earliest())
                .map_or(until, |t| t.with_timezone(&Utc))
        };
        let today = until.with_timezone(&tz).date_naive();
        let back = |n: u32| today - chrono::Days::new(u64::from(n));
        let scope = Scope {
            from: midnight(back(days)),
            to: midnight(today),
            ..checked
        };
        let before = Scope {
            from: midnight(back(days * 2)),
            to: scope.from,
            ..scope.clone()
        };
        let both = Scope {
            from: before.from,
            ..scope.clone()
        };
        let histories = self.histories(&both).await?;
        Ok(KpiReview {
            current: kpi::compute(&scope, &histories),
            previous: kpi::compute(&before, &histories),
            days: kpi::daily(&scope, &histories, tz),
        })
    }

    /// The last `days` days one local day (in `tz`) at a time: the KPI page's chart.
    pub async fn daily(
        &self,
        days: u32,
        filter: &KpiFilter,
        tz: Tz,
        now: DateTime<Utc>,
    ) -> Result<Vec<Day>, WorkflowError> {
        let scope = self.scope(days, filter, now)?;
        let histories = self.histories(&scope).await?;
        Ok(kpi::daily(&scope, &histories, tz))
    }

    /// The KPIs of the last `days` days for everything, each service, and each service's
    /// environment (`None` stands for all), from one read of the record: the Prometheus gauges.
    pub async fn kpis_everywhere(
        &self,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<(KpiFilter, Kpis)>, WorkflowError> {
        let all = self.scope(days, &KpiFilter::default(), now)?;
        let histories = self.histories(&all).await?;
        let mut filters = vec![KpiFilter::default()];
        for s in self.config.org.services.values() {
            let service = Some(s.name.clone());
            filters.push(KpiFilter {
                service: service.clone(),
                environment: None,
            });
            filters.extend(s.environments.iter().map(|e| KpiFilter {
                service: service.clone(),
                environment: Some(e.clone()),
            }));
        }
        Ok(filters
            .into_iter()
            .map(|f| {
                let scope = Scope {
                    service: f.service.clone(),
                    environment: f.environment.clone(),
                    ..all.clone()
                };
                (f, kpi::compute(&scope, &histories))
            })
            .collect())
    }

    /// The scope of the last `days` days, with the filter's names checked against config.
    fn scope(
        &self,
        days: u32,
        filter: &KpiFilter,
        now: DateTime<Utc>,
    ) -> Result<Scope, WorkflowError> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(WorkflowError::Invalid(format!(
                "days must be a whole number from 1 to {MAX_DAYS}"
            )));
        }
        let org = &self.config.org;
        let service = match &filter.service {
            Some(s) => Some(self.service_named(s)?),
            None => None,
        };
        if let Some(env) = &filter.environment {
            let known = |s: &crate::domain::organisation::Service| s.environments.contains(env);
            let found = match service {
                Some(s) => known(s),
                None => org.services.values().any(known),
            };
            if !found {
                let whose = service.map_or("any service".to_string(), |s| s.name.clone());
                return Err(WorkflowError::NotFound(format!(
                    "unknown environment `{env}`: it is not one of {whose}'s environments"
                )));
            }
        }
        Ok(Scope {
            from: now - Duration::days(i64::from(days)),
            to: now,
            service: filter.service.clone(),
            environment: filter.environment.clone(),
        })
    }

    /// Every change the period touches, with its audit trail and deployments, reading
    /// [`LOOKBACK`] further back so a deployment early in the period sees the failure before
    /// it (rework) even when that failure's change saw nothing since.
    async fn histories(&self, scope: &Scope) -> Result<Vec<History>, WorkflowError> {
        let changes = self
            .store
            .changes_touched(scope.from - LOOKBACK, scope.to, scope.service.as_deref())
            .await?;
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
        Ok(changes
            .into_iter()
            .map(|change| History {
                events: events.remove(&change.id).unwrap_or_default(),
                deployments: deployments.remove(&change.id).unwrap_or_default(),
                timezone: self.tz_of(&change.service),
                change,
            })
            .collect())
    }
}
