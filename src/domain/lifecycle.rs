//! Moving a change along its lifecycle by itself: `new → assess → authorize → scheduled`, and
//! back to `authorize` when approvals are lost. Every decision returns what happened so the
//! workflow can audit it; nothing here saves anything.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::DomainError;
use super::calendar::{self, Booked, Freeze, Interval, SlotProblem, SlotQuery, Window};
use super::change::{Change, ChangeType, State};
use super::explain::describe_problem;
use super::organisation::Organisation;
use super::policy::{self, CheckReport, PolicyStatus, Vote};

/// How far ahead a slot search looks before giving up.
pub const HORIZON: Duration = Duration::days(366);

/// Everything the rules need to know besides the change itself.
pub struct Context<'a> {
    pub org: &'a Organisation,
    /// Every vote cast on the change (all rounds).
    pub votes: &'a [Vote],
    /// What CI reported on the change's head commit (PR changes).
    pub checks: &'a [CheckReport],
    /// Other changes' bookings on the same service and environment.
    pub booked: &'a [Booked],
    /// Every freeze known: configured ones and those started from chat.
    pub freezes: &'a [Freeze],
    pub now: DateTime<Utc>,
}

/// Something the rules did to a change, for the audit trail and notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Happening {
    Moved { from: State, to: State, why: String },
    Booked { slot: Interval },
    Unbooked { why: String },
}

impl Context<'_> {
    /// The policy status for a change, if a policy applies.
    pub fn policy_status(&self, change: &Change) -> Option<PolicyStatus> {
        policy::select(&self.org.policies, change)
            .map(|p| policy::evaluate(self.org, p, change, self.votes, self.checks))
    }

    /// Windows and freezes that apply to the change's service.
    pub fn calendar_for(&self, change: &Change) -> (Vec<Window>, Vec<Freeze>) {
        let windows = self
            .org
            .service(&change.service)
            .map(|s| self.org.windows_for(s))
            .unwrap_or_default();
        let freezes = self
            .freezes
            .iter()
            .filter(|f| f.applies_to(&change.service))
            .cloned()
            .collect();
        (windows, freezes)
    }

    /// The earliest legal slot for the change starting at `earliest`.
    pub fn next_slot(&self, change: &Change, earliest: DateTime<Utc>) -> Option<Interval> {
        if change.change_type == ChangeType::Emergency {
            return Some(Interval::new(earliest, earliest + change.duration));
        }
        let (windows, freezes) = self.calendar_for(change);
        calendar::find_slot(&SlotQuery {
            earliest,
            duration: change.duration,
            windows: &windows,
            freezes: &freezes,
            booked: self.booked,
            horizon: HORIZON,
        })
    }

    /// Checks a requested start time for the change.
    pub fn check_slot(
        &self,
        change: &Change,
        at: DateTime<Utc>,
    ) -> Result<Interval, Vec<SlotProblem>> {
        if change.change_type == ChangeType::Emergency {
            if at < self.now - Duration::minutes(1) {
                return Err(vec![SlotProblem::InThePast]);
            }
            return Ok(Interval::new(at, at + change.duration));
        }
        let (windows, freezes) = self.calendar_for(change);
        calendar::check_slot(
            &SlotQuery {
                earliest: self.now,
                duration: change.duration,
                windows: &windows,
                freezes: &freezes,
                booked: self.booked,
                horizon: HORIZON,
            },
            at,
        )
    }

    /// Checks a slot the change is already booked for against the calendar and bookings as
    /// they stand now: its windows, freezes (one started or configured since booking still
    /// wins) and the other changes' bookings. Unlike [`Context::check_slot`], a slot that has
    /// just begun is not "in the past": its start runs a moment after the slot's start.
    pub fn check_booked(&self, change: &Change, slot: Interval) -> Result<(), Vec<SlotProblem>> {
        if change.change_type == ChangeType::Emergency {
            return Ok(());
        }
        let (windows, freezes) = self.calendar_for(change);
        calendar::check_slot(
            &SlotQuery {
                earliest: slot.start,
                duration: slot.duration(),
                windows: &windows,
                freezes: &freezes,
                booked: self.booked,
                horizon: HORIZON,
            },
            slot.start,
        )
        .map(|_| ())
    }
}

fn moved(change: &mut Change, to: State, why: impl Into<String>, now: DateTime<Utc>) -> Happening {
    let from = change.state;
    change.state = to;
    change.updated_at = now;
    Happening::Moved {
        from,
        to,
        why: why.into(),
    }
}

/// Advances the change as far as the rules allow right now.
pub fn advance(change: &mut Change, cx: &Context<'_>) -> Vec<Happening> {
    let mut out = Vec::new();
    if change.state == State::New {
        out.push(moved(change, State::Assess, "record complete", cx.now));
    }
    if change.state == State::Assess {
        match policy::select(&cx.org.policies, change) {
            Some(p) => out.push(moved(
                change,
                State::Authorize,
                format!("policy {}", p.name),
                cx.now,
            )),
            None => return out,
        }
    }
    let status = cx.policy_status(change);
    let authorized = status.as_ref().is_some_and(PolicyStatus::satisfied);
    match change.state {
        State::Authorize if authorized && change.is_ready() => {
            let earliest = change.slot.map_or(cx.now, |s| s.start.max(cx.now));
            if let Some(slot) = cx.next_slot(change, earliest) {
                change.slot = Some(slot);
                out.push(moved(
                    change,
                    State::Scheduled,
                    "authorized and ready",
                    cx.now,
                ));
                out.push(Happening::Booked { slot });
            }
        }
        State::Scheduled if !authorized => {
            let why = status.map_or_else(
                || "no policy applies any more".to_string(),
                |s| {
                    if let Some(check) = s.unmet_checks().next() {
                        format!("required check {}", check.describe())
                    } else if s.rejections.is_empty() {
                        "approvals no longer satisfy the policy".to_string()
                    } else {
                        format!("rejected by {}", s.rejections[0].person)
                    }
                },
            );
            change.slot = None;
            out.push(Happening::Unbooked { why: why.clone() });
            out.push(moved(change, State::Authorize, why, cx.now));
        }
        _ => {}
    }
    out
}

/// Books a scheduled or authorized-and-ready change at `at`, or at the next legal slot.
pub fn book(
    change: &mut Change,
    cx: &Context<'_>,
    at: Option<DateTime<Utc>>,
) -> Result<Vec<Happening>, DomainError> {
    if !matches!(change.state, State::Authorize | State::Scheduled) {
        return Err(DomainError::Refused(format!(
            "{} is {}; only authorized changes can be scheduled",
            change.id, change.state
        )));
    }
    let authorized = cx.policy_status(change).is_some_and(|s| s.satisfied());
    if !authorized || !change.is_ready() {
        return Err(DomainError::Refused(format!(
            "{} is not authorized and ready yet; see `change explain {}`",
            change.id, change.id
        )));
    }
    let slot = match at {
        Some(at) => cx.check_slot(change, at).map_err(|problems| {
            let tz = cx
                .org
                .service(&change.service)
                .map_or(chrono_tz::UTC, |s| s.timezone);
            let text: Vec<String> = problems.iter().map(|p| describe_problem(p, tz)).collect();
            DomainError::Refused(format!(
                "{} cannot start then: {}",
                change.id,
                text.join("; ")
            ))
        })?,
        None => cx.next_slot(change, cx.now).ok_or_else(|| {
            DomainError::Refused(format!(
                "{} has no legal slot in the next {} days; check the service's windows and freezes",
                change.id,
                HORIZON.num_days()
            ))
        })?,
    };
    let mut out = Vec::new();
    if change.state == State::Authorize {
        out.push(moved(change, State::Scheduled, "booked on request", cx.now));
    }
    change.slot = Some(slot);
    change.updated_at = cx.now;
    out.push(Happening::Booked { slot });
    Ok(out)
}
