//! `check_slot`: whether a requested start is legal, and every reason it is not.

use chrono::{DateTime, Duration, Utc};

use super::{Interval, SlotQuery, Window};

/// Why a particular start time is not legal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotProblem {
    /// `at` lies in no occurrence of any window. `next_legal`: the earliest legal start
    /// after `at` (windows, freezes and bookings respected) and the window it is in, if any.
    OutsideWindows {
        next_legal: Option<(String, DateTime<Utc>)>,
    },
    /// Starts inside an occurrence of `window` but runs `overrun` past its end at `ends`.
    /// `fits`: starting `overrun` earlier stays inside that occurrence (else it is too short).
    RunsPastWindow {
        window: String,
        ends: DateTime<Utc>,
        overrun: Duration,
        fits: bool,
    },
    /// Overlaps a freeze occurrence.
    Frozen {
        freeze: String,
        until: DateTime<Utc>,
    },
    /// Overlaps another booked change.
    Conflict { change: i64, slot: Interval },
    /// The service has no windows at all.
    NoWindows,
    /// `at` is before `earliest`.
    InThePast,
}

/// Candidates that may overlap `slot`, even when it is empty.
fn probe(slot: &Interval) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = slot.start.checked_add_signed(Duration::nanoseconds(1));
    (slot.start, slot.end.max(end.unwrap_or(slot.end)))
}

/// Checks a requested start. Err lists every problem found: past, windows,
/// each freeze, each conflict, in that order.
pub fn check_slot(q: &SlotQuery<'_>, at: DateTime<Utc>) -> Result<Interval, Vec<SlotProblem>> {
    let duration = q.duration.max(Duration::zero());
    let end = at
        .checked_add_signed(duration)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let slot = Interval::new(at, end);
    let (from, to) = probe(&slot);
    let mut problems = Vec::new();
    if at < q.earliest {
        problems.push(SlotProblem::InThePast);
    }
    if q.windows.is_empty() {
        problems.push(SlotProblem::NoWindows);
    } else {
        let inside = q.windows.iter().any(|w| {
            w.recurrence
                .intervals_overlapping(from, to)
                .iter()
                .any(|occ| occ.start <= at && end <= occ.end)
        });
        if !inside {
            let problem = runs_past(q.windows, at, end).unwrap_or_else(|| {
                let after = SlotQuery {
                    earliest: at.max(q.earliest),
                    ..*q
                };
                let next_legal = super::find_slot(&after).and_then(|slot| {
                    let window = window_at(q.windows, slot.start)?;
                    Some((window, slot.start))
                });
                SlotProblem::OutsideWindows { next_legal }
            });
            problems.push(problem);
        }
    }
    for freeze in q.freezes {
        let until = freeze
            .intervals_overlapping(from, to)
            .into_iter()
            .filter(|f| f.overlaps(&slot))
            .map(|f| f.end)
            .max();
        if let Some(until) = until {
            problems.push(SlotProblem::Frozen {
                freeze: freeze.name.clone(),
                until,
            });
        }
    }
    for b in q.booked.iter().filter(|b| b.slot.overlaps(&slot)) {
        problems.push(SlotProblem::Conflict {
            change: b.change,
            slot: b.slot,
        });
    }
    if problems.is_empty() {
        Ok(slot)
    } else {
        Err(problems)
    }
}

/// The name of a window with an occurrence running at `at`.
fn window_at(windows: &[Window], at: DateTime<Utc>) -> Option<String> {
    let (from, to) = probe(&Interval::new(at, at));
    windows
        .iter()
        .find(|w| {
            w.recurrence
                .intervals_overlapping(from, to)
                .iter()
                .any(|occ| occ.contains(at))
        })
        .map(|w| w.name.clone())
}

/// When `at` starts inside window occurrences but `end` runs past them: the one that ends
/// last (the smallest overrun).
fn runs_past(windows: &[Window], at: DateTime<Utc>, end: DateTime<Utc>) -> Option<SlotProblem> {
    let (from, to) = probe(&Interval::new(at, at));
    windows
        .iter()
        .flat_map(|w| {
            w.recurrence
                .intervals_overlapping(from, to)
                .into_iter()
                .filter(|occ| occ.contains(at))
                .map(|occ| (w.name.clone(), occ))
        })
        .max_by_key(|(_, occ)| occ.end)
        .map(|(window, occ)| SlotProblem::RunsPastWindow {
            window,
            ends: occ.end,
            overrun: end - occ.end,
            fits: end - occ.end <= at - occ.start,
        })
}
