//! The period day by day, for the weekly review's chart: finished deployments by outcome and
//! the lead times that ended, per local calendar day of a time zone. A day is a calendar day
//! in that zone, so a DST week has a 23-hour and a 25-hour day, and every deployment falls on
//! exactly one of them.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{History, Scope, Spread, leads, spread};
use crate::domain::release::DeploymentStatus;

/// One local day of the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    /// Succeeded deployments that called a target.
    pub succeeded: usize,
    /// Succeeded dry runs (no target was called).
    pub dry_runs: usize,
    pub failed: usize,
    /// Lead times of the changes whose first success finished that day.
    pub lead_time: Spread,
}

/// Every local day (in `tz`) that the period `[scope.from, scope.to)` touches, oldest first,
/// with what happened on it among `histories` in the scope.
pub fn daily(scope: &Scope, histories: &[History], tz: Tz) -> Vec<Day> {
    let day_of = |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
    let hs: Vec<&History> = histories
        .iter()
        .filter(|h| scope.covers(&h.change))
        .collect();
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    if scope.to > scope.from {
        let (first, last) = (day_of(scope.from), day_of(scope.to - Duration::seconds(1)));
        for date in first.iter_days().take_while(|d| *d <= last) {
            days.insert(date, empty(date));
        }
    }
    for d in hs.iter().flat_map(|h| &h.deployments) {
        let Some(at) = d.finished_at.filter(|t| scope.holds(*t)) else {
            continue;
        };
        let Some(day) = days.get_mut(&day_of(at)) else {
            continue;
        };
        match (d.status, d.dry_run) {
            (DeploymentStatus::Succeeded, false) => day.succeeded += 1,
            (DeploymentStatus::Succeeded, true) => day.dry_runs += 1,
            (DeploymentStatus::Failed, _) => day.failed += 1,
            _ => {}
        }
    }
    let mut lead_times: BTreeMap<NaiveDate, Vec<Duration>> = BTreeMap::new();
    for (done, took) in leads(scope, &hs) {
        lead_times.entry(day_of(done)).or_default().push(took);
    }
    for (date, took) in lead_times {
        if let Some(day) = days.get_mut(&date) {
            day.lead_time = spread(took);
        }
    }
    days.into_values().collect()
}

fn empty(date: NaiveDate) -> Day {
    Day {
        date,
        succeeded: 0,
        dry_runs: 0,
        failed: 0,
        lead_time: Spread::default(),
    }
}
