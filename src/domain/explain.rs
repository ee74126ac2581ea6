//! `change explain`: evaluates the whole stack (policy, approvals, readiness, windows, freezes,
//! conflicts) and says exactly what blocks a change and who or what would unblock it.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::calendar::{Interval, SlotProblem};
use super::change::{Change, ChangeType, State};
use super::ids::ChangeId;
use super::lifecycle::{Context, HORIZON};
use super::policy::{CheckOutcome, PolicyStatus};

/// A wall-clock time in `tz`, as replies show it: `2026-11-26 22:00 CET`.
pub fn fmt_local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// A slot in `tz`: `2026-11-26 22:00–22:30 CET`.
pub fn fmt_slot(slot: Interval, tz: Tz) -> String {
    let start = slot.start.with_timezone(&tz);
    let end = slot.end.with_timezone(&tz);
    if start.date_naive() == end.date_naive() {
        format!(
            "{}–{}",
            start.format("%Y-%m-%d %H:%M"),
            end.format("%H:%M %Z")
        )
    } else {
        format!(
            "{} – {}",
            start.format("%Y-%m-%d %H:%M %Z"),
            end.format("%Y-%m-%d %H:%M %Z")
        )
    }
}

/// One thing standing between a change and its release, with what would lift it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Blocker {
    /// No `[[policy]]` matches the change.
    NoPolicy,
    /// A group still owes approvals.
    NeedsApprovals {
        group: String,
        missing: u32,
        candidates: Vec<String>,
    },
    /// A required approver rejected it.
    Rejected { person: String, reason: String },
    /// A check the policy requires is not green on the head commit.
    NeedsCheck {
        name: String,
        /// `None`: nothing reported yet.
        outcome: Option<CheckOutcome>,
        detail: String,
        /// The head commit (short), or `None` for a change without a pull request.
        commit: Option<String>,
    },
    /// A PR change waits for its merge.
    NotMerged { repository: String, number: i64 },
    /// Approved and ready, but nothing legal within the horizon.
    NoSlot,
    /// The change is longer than every window of its service, so it never fits.
    LongerThanWindows {
        /// The service's longest window and its length in seconds.
        window: String,
        window_secs: i64,
        change_secs: i64,
    },
    /// Released; the change closes with its post-implementation review.
    NeedsReview { change: ChangeId },
}

/// Something worth knowing about a change that stands in nobody's way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Note {
    /// An earlier window opening was unusable for this reason, so the change takes a later one.
    PassedOver { problem: String },
    /// The release is under way.
    Releasing { change: ChangeId },
    /// The change has ended (closed or canceled): nothing waits, nothing will happen.
    Ended { state: State },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::PassedOver { problem } => {
                write!(f, "an earlier window was passed over: {problem}")
            }
            Note::Releasing { change } => write!(
                f,
                "the release is under way; `release status {change}` shows its deployment"
            ),
            Note::Ended { state } => {
                write!(f, "the change is {state}; nothing more will happen")
            }
        }
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::NoPolicy => f.write_str(
                "no [[policy]] matches its type, risk, service and environment; add one to config",
            ),
            Blocker::NeedsApprovals {
                group,
                missing,
                candidates,
            } => {
                let plural = if *missing == 1 {
                    "approval"
                } else {
                    "approvals"
                };
                write!(f, "needs {missing} more {plural} from group {group}")?;
                if candidates.is_empty() {
                    f.write_str(" (nobody else in that group can approve: add a member)")
                } else {
                    write!(f, " (ask {})", candidates.join(", "))
                }
            }
            Blocker::Rejected { person, reason } => {
                write!(f, "rejected by {person}")?;
                if !reason.is_empty() {
                    write!(f, ": {}", super::limits::one_line(reason))?;
                }
                write!(f, " (lifted when {person} approves)")
            }
            Blocker::NeedsCheck {
                name,
                outcome,
                detail,
                commit,
            } => match (commit, outcome) {
                (None, _) => write!(
                    f,
                    "needs check {name} green, but the change has no pull request for CI to report on (open it from a pull request, or use a policy without checks)"
                ),
                (Some(sha), None) => {
                    write!(f, "needs check {name} green on {sha}: not reported yet")
                }
                (Some(sha), Some(CheckOutcome::Pending)) => {
                    write!(
                        f,
                        "needs check {name} green on {sha}: still running ({detail})"
                    )
                }
                (Some(sha), Some(_)) => write!(
                    f,
                    "needs check {name} green on {sha}: it failed ({detail}); fix it and re-run"
                ),
            },
            Blocker::NotMerged { repository, number } => {
                write!(f, "waiting for {repository}#{number} to be merged")
            }
            Blocker::LongerThanWindows {
                window,
                window_secs,
                change_secs,
            } => write!(
                f,
                "a {} change fits in no window: the longest, {window}, is {}; open it again with \
                 a shorter --duration, or configure a longer window",
                super::duration::Span(chrono::Duration::seconds(*change_secs)),
                super::duration::Span(chrono::Duration::seconds(*window_secs)),
            ),
            Blocker::NoSlot => write!(
                f,
                "no legal slot in the next {} days (check the service's windows, freezes and bookings)",
                HORIZON.num_days()
            ),
            Blocker::NeedsReview { change } => write!(
                f,
                "waits for its post-implementation review: `change close {change} --review TEXT…`"
            ),
        }
    }
}

/// What `change explain` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub state: State,
    pub policy: Option<PolicyStatus>,
    pub blockers: Vec<Blocker>,
    /// What is worth knowing but blocks nothing (windows passed over, a release under way).
    pub notes: Vec<Note>,
    /// The booked slot, if any.
    pub booked: Option<Interval>,
    /// Where the change would (or will next) be booked, if it can be.
    pub next_slot: Option<Interval>,
}

/// Why there is no slot when the reason is that the change is longer than every window.
fn longer_than_windows(change: &Change, cx: &Context<'_>) -> Option<Blocker> {
    let service = cx.org.service(&change.service)?;
    let longest = cx
        .org
        .windows_for(service)
        .into_iter()
        .max_by_key(|w| w.recurrence.duration)?;
    (longest.recurrence.duration < change.duration).then(|| Blocker::LongerThanWindows {
        window: longest.name.clone(),
        window_secs: longest.recurrence.duration.num_seconds(),
        change_secs: change.duration.num_seconds(),
    })
}

/// Evaluates everything that stands between `change` and its release.
pub fn explain(change: &Change, cx: &Context<'_>, tz: Tz) -> Explanation {
    let mut blockers = Vec::new();
    let mut notes = Vec::new();
    if change.state.is_terminal() || matches!(change.state, State::Implement | State::Review) {
        match change.state {
            State::Implement => notes.push(Note::Releasing { change: change.id }),
            State::Review => blockers.push(Blocker::NeedsReview { change: change.id }),
            state => notes.push(Note::Ended { state }),
        }
        return Explanation {
            state: change.state,
            policy: None,
            blockers,
            notes,
            booked: change.slot,
            next_slot: None,
        };
    }
    let policy = cx.policy_status(change);
    match &policy {
        None => blockers.push(Blocker::NoPolicy),
        Some(status) => {
            for r in &status.rejections {
                blockers.push(Blocker::Rejected {
                    person: r.person.clone(),
                    reason: r.reason.clone(),
                });
            }
            for g in status.groups.iter().filter(|g| g.missing() > 0) {
                blockers.push(Blocker::NeedsApprovals {
                    group: g.group.clone(),
                    missing: g.missing(),
                    candidates: g.candidates.clone(),
                });
            }
            let commit = change
                .pull_request
                .as_ref()
                .map(|pr| pr.head_sha.chars().take(7).collect::<String>());
            for c in status.unmet_checks() {
                blockers.push(Blocker::NeedsCheck {
                    name: c.name.clone(),
                    outcome: c.outcome,
                    detail: c.detail.clone(),
                    commit: commit.clone(),
                });
            }
        }
    }
    if let Some(pr) = change.pull_request.as_ref().filter(|pr| !pr.merged) {
        blockers.push(Blocker::NotMerged {
            repository: pr.repository.clone(),
            number: pr.number,
        });
    }
    let next_slot = if change.state == State::Scheduled {
        change.slot
    } else {
        cx.next_slot(change, cx.now)
    };
    match next_slot {
        None => blockers.push(longer_than_windows(change, cx).unwrap_or(Blocker::NoSlot)),
        Some(slot) if change.change_type != ChangeType::Emergency => {
            // Say why earlier window openings were passed over (freezes, conflicts).
            let mut seen = Vec::new();
            for opening in window_openings_before(change, cx, slot.start) {
                if let Err(problems) = cx.check_slot(change, opening) {
                    for p in problems {
                        // Only freezes and conflicts are news: an opening outside or too short
                        // for the change was never a candidate.
                        if matches!(
                            p,
                            SlotProblem::OutsideWindows { .. } | SlotProblem::RunsPastWindow { .. }
                        ) {
                            continue;
                        }
                        let text = describe_problem(&p, tz);
                        if !seen.contains(&text) {
                            seen.push(text.clone());
                            notes.push(Note::PassedOver { problem: text });
                        }
                    }
                }
            }
        }
        Some(_) => {}
    }
    Explanation {
        state: change.state,
        policy,
        blockers,
        notes,
        booked: change.slot,
        next_slot,
    }
}

/// Up to five window openings from now that come before `until`.
fn window_openings_before(
    change: &Change,
    cx: &Context<'_>,
    until: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let (windows, _) = cx.calendar_for(change);
    let mut openings: Vec<DateTime<Utc>> = windows
        .iter()
        .flat_map(|w| {
            w.recurrence
                .openings_from(cx.now)
                .take_while(|t| *t < until)
                .take(5)
        })
        .collect();
    openings.sort_unstable();
    openings.truncate(5);
    openings
}

/// One line per slot problem, with times in the service's zone.
pub fn describe_problem(p: &SlotProblem, tz: Tz) -> String {
    match p {
        SlotProblem::OutsideWindows {
            next_legal: Some((name, at)),
        } => {
            format!(
                "outside every window (the next legal start is {} in {name})",
                fmt_local(*at, tz)
            )
        }
        SlotProblem::OutsideWindows { next_legal: None } => "outside every window".to_string(),
        SlotProblem::Frozen { freeze, until } => {
            format!("freeze {freeze} until {}", fmt_local(*until, tz))
        }
        SlotProblem::Conflict { change, slot } => {
            format!("conflicts with CHG-{change} booked {}", fmt_slot(*slot, tz))
        }
        SlotProblem::RunsPastWindow {
            window,
            ends,
            overrun,
            fits: true,
        } => format!(
            "starts in window {window} but runs {overrun} past its end at {}; start at least {overrun} earlier, or pick a later window",
            fmt_local(*ends, tz),
            overrun = super::duration::Span(*overrun),
        ),
        SlotProblem::RunsPastWindow {
            window,
            ends,
            overrun,
            fits: false,
        } => format!(
            "starts in window {window} but runs {} past its end at {}, and the window is too short for the whole change; `change schedule` without --at finds the next slot it fits in",
            super::duration::Span(*overrun),
            fmt_local(*ends, tz),
        ),
        SlotProblem::NoWindows => "the service has no deployment windows".to_string(),
        SlotProblem::InThePast => "that time has passed".to_string(),
    }
}
