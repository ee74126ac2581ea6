//! Delivery and change KPIs (DORA and ITIL change enablement), computed from the record alone:
//! each change with its audit trail and deployments. Pure: the period and everything else are
//! passed in, and every duration is a difference of UTC instants (a DST change in the period
//! neither adds nor removes an hour).
//!
//! What counts in the period `[from, to)`:
//! - **Deployments**: finished deployments whose `finished_at` falls in the period (dry runs
//!   included: they are releases the target was told nothing about, but releases all the
//!   same). Frequency is succeeded deployments per 24 hours of the period.
//! - **Lead time**: per change, its first succeeded deployment, counted when it finished in
//!   the period; measured from the earliest of the PR's first commit (`first_commit_at`, when
//!   known: from backfill or reconciliation), the change's first `opened` audit entry (for a
//!   PR change, the PR opened) and its creation.
//! - **Change failure rate**: failed / finished deployments in the period.
//! - **Recovery**: each failed deployment finished in the period, to the next succeeded
//!   deployment (by finish time) of the same service and environment among the changes given.
//!   A failure without a later success is *unrecovered* and has no duration.
//! - **Rework rate**: finished deployments in the period that came right after a failed one
//!   of the same service and environment (by finish time), among all finished deployments in
//!   the period. The record does not say which change fixes which failure, so the deployment
//!   that follows a failure (a retry, a fix or a rollback) is taken as its rework.
//! - **Change success rate**: changes closed in the period (the `review → closed` transition;
//!   `updated_at` if the entry is missing), successful / all closed. Canceled changes are not
//!   closed changes.
//! - **Emergency share**: emergency changes among changes created in the period.
//! - **Unauthorized changes**: changes with an `unauthorized` audit entry in the period.
//! - **Approval latency**: each stay in `authorize` that ends with `authorize → scheduled` in
//!   the period, from the transition into `authorize`. A change that loses its approvals and
//!   enters `authorize` again counts once per stay. Because `authorize → scheduled` happens
//!   when a slot is found as well, this includes a wait for a slot or a merge (approximation).
//! - **First booked slot**: per change, its first deployment started in the period, if the
//!   change was ever booked before it: whether it started inside the first booked slot. The
//!   slot is read back from the `booked` entry's text (local time in the service's zone) and
//!   taken to last the change's planned duration.
//! - **Rebookings**: `booked` entries in the period beyond each change's first booking, per
//!   change booked in the period.
//! - **Unreviewed**: changes still in `review` (no post-implementation review yet) that are
//!   emergency changes or had a failed deployment, whatever the period (created before `to`).
//!
//! Percentiles use the nearest-rank method (the median of 4 values is the 2nd).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::calendar::Interval;
use super::explain::fmt_slot;
use super::release::{Deployment, DeploymentStatus};
use super::{Change, ChangeId, ChangeType, CloseCode, State};

/// One audit entry of a change, as the KPIs read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub action: String,
    pub detail: String,
}

/// A change with its audit trail (oldest first) and deployments, and its service's time zone
/// (booked slots are written in it).
#[derive(Debug, Clone)]
pub struct History {
    pub change: Change,
    pub events: Vec<Event>,
    pub deployments: Vec<Deployment>,
    pub timezone: Tz,
}

/// Which records and which period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub service: Option<String>,
    pub environment: Option<String>,
}

/// How long something took: how many, median and 90th percentile (seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub median_secs: Option<i64>,
    pub p90_secs: Option<i64>,
}

/// The KPIs of a scope. Rates and shares are fractions (0.25 is 25%); `None` when there is
/// nothing to divide by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub service: Option<String>,
    pub environment: Option<String>,
    pub deployments_succeeded: usize,
    pub deployments_failed: usize,
    pub deployments_per_day: f64,
    pub lead_time: Spread,
    pub change_failure_rate: Option<f64>,
    pub recovery: Spread,
    pub unrecovered_failures: usize,
    /// Finished deployments that followed a failed one (a retry, fix or rollback).
    pub rework_deployments: usize,
    pub rework_rate: Option<f64>,
    pub changes_closed: usize,
    pub changes_closed_successful: usize,
    pub change_success_rate: Option<f64>,
    pub changes_opened: usize,
    pub emergency_changes: usize,
    pub emergency_share: Option<f64>,
    pub unauthorized_changes: usize,
    pub approval_latency: Spread,
    pub booked_releases: usize,
    pub started_in_first_slot: usize,
    pub first_slot_share: Option<f64>,
    pub changes_booked: usize,
    pub rebookings: usize,
    pub rebookings_per_change: Option<f64>,
    /// Failed or emergency changes still in `review`.
    pub unreviewed: Vec<ChangeId>,
}

impl Scope {
    fn holds(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }

    fn covers(&self, c: &Change) -> bool {
        self.service.as_ref().is_none_or(|s| *s == c.service)
            && self
                .environment
                .as_ref()
                .is_none_or(|e| *e == c.environment)
    }
}

/// Computes every KPI of `scope` from `histories` (changes outside the scope are ignored).
pub fn compute(scope: &Scope, histories: &[History]) -> Kpis {
    let hs: Vec<&History> = histories
        .iter()
        .filter(|h| scope.covers(&h.change))
        .collect();
    let finished = |status: DeploymentStatus| {
        hs.iter()
            .flat_map(|h| &h.deployments)
            .filter(move |d| d.status == status)
            .filter(|d| d.finished_at.is_some_and(|t| scope.holds(t)))
            .count()
    };
    let (succeeded, failed) = (
        finished(DeploymentStatus::Succeeded),
        finished(DeploymentStatus::Failed),
    );
    let secs = (scope.to - scope.from).num_seconds();
    let per_day = match secs > 0 {
        true => succeeded as f64 * 86_400.0 / secs as f64,
        false => 0.0,
    };
    let lanes = lanes(&hs);
    let (recovery, unrecovered) = recovery(scope, &lanes);
    let rework = rework(scope, &lanes);
    let closed: Vec<&Change> = hs
        .iter()
        .filter(|h| h.change.state == State::Closed && scope.holds(closed_at(h)))
        .map(|h| &h.change)
        .collect();
    let successful = closed
        .iter()
        .filter(|c| c.close_code == Some(CloseCode::Successful))
        .count();
    let opened: Vec<&Change> = hs
        .iter()
        .map(|h| &h.change)
        .filter(|c| scope.holds(c.created_at))
        .collect();
    let emergency = opened
        .iter()
        .filter(|c| c.change_type == ChangeType::Emergency)
        .count();
    let unauthorized = hs
        .iter()
        .filter(|h| {
            h.events
                .iter()
                .any(|e| e.action == "unauthorized" && scope.holds(e.at))
        })
        .count();
    let (booked_releases, in_first) = first_slots(scope, &hs);
    let (changes_booked, rebookings) = rebookings(scope, &hs);
    let mut unreviewed: Vec<ChangeId> = hs
        .iter()
        .filter(|h| h.change.state == State::Review && h.change.created_at < scope.to)
        .filter(|h| {
            h.change.change_type == ChangeType::Emergency
                || h.deployments
                    .iter()
                    .any(|d| d.status == DeploymentStatus::Failed)
        })
        .map(|h| h.change.id)
        .collect();
    unreviewed.sort_unstable();
    Kpis {
        from: scope.from,
        to: scope.to,
        service: scope.service.clone(),
        environment: scope.environment.clone(),
        deployments_succeeded: succeeded,
        deployments_failed: failed,
        deployments_per_day: per_day,
        lead_time: spread(leads(scope, &hs).into_iter().map(|(_, d)| d).collect()),
        change_failure_rate: ratio(failed, succeeded + failed),
        recovery: spread(recovery),
        unrecovered_failures: unrecovered,
        rework_deployments: rework,
        rework_rate: ratio(rework, succeeded + failed),
        changes_closed: closed.len(),
        changes_closed_successful: successful,
        change_success_rate: ratio(successful, closed.len()),
        changes_opened: opened.len(),
        emergency_changes: emergency,
        emergency_share: ratio(emergency, opened.len()),
        unauthorized_changes: unauthorized,
        approval_latency: spread(approval_latencies(scope, &hs)),
        booked_releases,
        started_in_first_slot: in_first,
        first_slot_share: ratio(in_first, booked_releases),
        changes_booked,
        rebookings,
        rebookings_per_change: ratio(rebookings, changes_booked),
        unreviewed,
    }
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Count, median and p90 (nearest rank) of `durations`.
pub fn spread(mut durations: Vec<Duration>) -> Spread {
    durations.sort_unstable();
    let n = durations.len();
    let rank = |pct: usize| {
        let k = (pct * n).div_ceil(100).max(1);
        durations.get(k - 1).map(Duration::num_seconds)
    };
    Spread {
        count: n,
        median_secs: rank(50),
        p90_secs: rank(90),
    }
}

/// The states of a `transition` entry (`authorize → scheduled: why`).
fn transition(e: &Event) -> Option<(State, State)> {
    if e.action != "transition" {
        return None;
    }
    let (from, rest) = e.detail.split_once(" → ")?;
    let to = rest.split_once(':').map_or(rest, |(to, _)| to);
    Some((from.trim().parse().ok()?, to.trim().parse().ok()?))
}

fn closed_at(h: &History) -> DateTime<Utc> {
    h.events
        .iter()
        .filter(|e| transition(e).is_some_and(|(_, to)| to == State::Closed))
        .map(|e| e.at)
        .next()
        .unwrap_or(h.change.updated_at)
}

/// Each change's lead time that ended in the period: when its first succeeded deployment
/// finished, and how long it took from the start of the work.
fn leads(scope: &Scope, hs: &[&History]) -> Vec<(DateTime<Utc>, Duration)> {
    hs.iter()
        .filter_map(|h| {
            let done = h
                .deployments
                .iter()
                .filter(|d| d.status == DeploymentStatus::Succeeded)
                .filter_map(|d| d.finished_at)
                .min()?;
            let start = work_started(h);
            (scope.holds(done) && done >= start).then(|| (done, done - start))
        })
        .collect()
}

/// When the work on a change started: the PR's first commit when known, else its first
/// `opened` entry (a PR change: the PR opened) or its creation, whichever is earliest.
fn work_started(h: &History) -> DateTime<Utc> {
    let opened = h.events.iter().find(|e| e.action == "opened").map(|e| e.at);
    [opened, h.change.first_commit_at]
        .into_iter()
        .flatten()
        .fold(h.change.created_at, DateTime::min)
}

/// A finished deployment: when, and how it ended.
type Finished = (DateTime<Utc>, DeploymentStatus);

/// Finished deployments per (service, environment), in finish order.
type Lanes<'a> = BTreeMap<(&'a str, &'a str), Vec<Finished>>;

fn lanes<'a>(hs: &[&'a History]) -> Lanes<'a> {
    let mut lanes: Lanes<'a> = BTreeMap::new();
    for h in hs {
        let key = (h.change.service.as_str(), h.change.environment.as_str());
        for d in &h.deployments {
            if let (Some(t), true) = (d.finished_at, d.status.is_finished()) {
                lanes.entry(key).or_default().push((t, d.status));
            }
        }
    }
    for lane in lanes.values_mut() {
        lane.sort_by_key(|(t, _)| *t);
    }
    lanes
}

/// Recovery times, and how many failures in the period had no later success.
fn recovery(scope: &Scope, lanes: &Lanes<'_>) -> (Vec<Duration>, usize) {
    let (mut times, mut unrecovered) = (Vec::new(), 0);
    for lane in lanes.values() {
        for (i, (failed_at, status)) in lane.iter().enumerate() {
            if *status != DeploymentStatus::Failed || !scope.holds(*failed_at) {
                continue;
            }
            let next = lane[i + 1..]
                .iter()
                .find(|(t, s)| *s == DeploymentStatus::Succeeded && t > failed_at);
            match next {
                Some((t, _)) => times.push(*t - *failed_at),
                None => unrecovered += 1,
            }
        }
    }
    (times, unrecovered)
}

/// Finished deployments in the period whose predecessor in their lane failed.
fn rework(scope: &Scope, lanes: &Lanes<'_>) -> usize {
    lanes
        .values()
        .flat_map(|lane| lane.windows(2))
        .filter(|pair| pair[0].1 == DeploymentStatus::Failed && scope.holds(pair[1].0))
        .count()
}

fn approval_latencies(scope: &Scope, hs: &[&History]) -> Vec<Duration> {
    let mut out = Vec::new();
    for h in hs {
        let mut entered: Option<DateTime<Utc>> = None;
        for (e, (from, to)) in h.events.iter().filter_map(|e| Some((e, transition(e)?))) {
            match (from, to) {
                (State::Authorize, State::Scheduled) => {
                    if let Some(start) = entered.take().filter(|_| scope.holds(e.at)) {
                        out.push(e.at - start);
                    }
                }
                (_, State::Authorize) => entered = entered.or(Some(e.at)),
                (State::Authorize, _) => entered = None,
                _ => {}
            }
        }
    }
    out
}

/// The start of the slot a `booked` entry names, e.g. `moved by freeze x: 2026-11-26
/// 22:00–22:30 CET` in the service's zone, for a slot `duration` long. In the autumn hour that
/// happens twice, the reading whose slot prints as written wins (else the earlier one).
pub fn booked_start(detail: &str, tz: Tz, duration: Duration) -> Option<DateTime<Utc>> {
    let slot = detail.rsplit_once(": ").map_or(detail, |(_, s)| s).trim();
    let naive = NaiveDateTime::parse_from_str(slot.get(..16)?, "%Y-%m-%d %H:%M").ok()?;
    let prints_as_written = |t: DateTime<Utc>| fmt_slot(Interval::new(t, t + duration), tz) == slot;
    let local = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(a, b) => match prints_as_written(b.with_timezone(&Utc)) {
            true => b,
            false => a,
        },
        LocalResult::None => return None,
    };
    Some(local.with_timezone(&Utc))
}

/// Releases (first deployments started in the period) of changes booked before them, and how
/// many of those started inside the first booked slot.
fn first_slots(scope: &Scope, hs: &[&History]) -> (usize, usize) {
    let (mut releases, mut inside) = (0, 0);
    for h in hs {
        let Some(first) = h.deployments.iter().min_by_key(|d| (d.started_at, d.id)) else {
            continue;
        };
        if !scope.holds(first.started_at) {
            continue;
        }
        let booked = h
            .events
            .iter()
            .find(|e| e.action == "booked" && e.at <= first.started_at);
        let Some(booked) = booked else { continue };
        releases += 1;
        let start = booked_start(&booked.detail, h.timezone, h.change.duration);
        let end = start.map(|s| s + h.change.duration);
        if let (Some(s), Some(e)) = (start, end)
            && s <= first.started_at
            && first.started_at < e
        {
            inside += 1;
        }
    }
    (releases, inside)
}

/// Changes booked in the period, and their bookings in the period beyond each first one.
fn rebookings(scope: &Scope, hs: &[&History]) -> (usize, usize) {
    let (mut changes, mut rebooked) = (BTreeSet::new(), 0);
    for h in hs {
        let booked: Vec<&Event> = h.events.iter().filter(|e| e.action == "booked").collect();
        for (i, e) in booked.iter().enumerate() {
            if scope.holds(e.at) {
                changes.insert(h.change.id);
                rebooked += usize::from(i > 0);
            }
        }
    }
    (changes.len(), rebooked)
}

mod daily;
pub use daily::{Day, daily};

#[cfg(test)]
mod tests;
