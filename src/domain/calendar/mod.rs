//! Maintenance windows, freezes and slot search (docs/configuration.md, `[[window]]` and `[[freeze]]`).
//!
//! Everything here is pure: instants are `DateTime<Utc>`, recurring things are
//! a 5-field crontab expression evaluated on the wall clock of an IANA time zone.
//!
//! # DST rules
//!
//! Cron matches are computed on the *naive local wall clock* of the time zone,
//! then each matching wall time is resolved to an instant:
//!
//! - a unique local time resolves to that instant;
//! - an ambiguous local time (autumn fall-back, the wall time happens twice)
//!   resolves to the EARLIER instant only, so the window opens once;
//! - a non-existent local time (spring-forward gap) is shifted forward by the
//!   gap length: it is interpreted with the UTC offset in effect just before
//!   the gap (02:30 Europe/Berlin on 2026-03-29 is read as 02:30+01:00, i.e.
//!   01:30 UTC = 03:30 CEST).
//!
//! Openings are yielded in strictly increasing order: candidates resolving
//! before the requested start (possible around fall-back) or at/before the
//! previously yielded opening (a gap-shifted time can coincide with a real one)
//! are skipped. An expression that never matches (e.g. `0 0 30 2 *`) ends the
//! iteration: croner gives up after a bounded search and reports an error,
//! which is treated as "no more openings".
//!
//! Intervals are half-open `[start, end)`; two intervals overlap when
//! `a.start < b.end && b.start < a.end`. Negative durations count as zero.

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

mod agenda;
mod check;
pub use agenda::{Agenda, FreezeSpell, Opening, agenda};
pub use check::{SlotProblem, check_slot};

/// Half-open [start, end) in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Interval { start, end }
    }

    /// Half-open overlap test.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    pub fn duration(&self) -> Duration {
        self.end - self.start
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CalendarError {
    #[error("invalid cron expression `{expr}`: {reason}")]
    BadCron { expr: String, reason: String },
    #[error("unknown time zone `{0}` (use an IANA name such as Europe/Berlin)")]
    BadTimezone(String),
}

/// A standard 5-field crontab expression (minute hour day-of-month month
/// day-of-week) with POSIX/Vixie semantics: names allowed (`Mon-Thu`, `Jan`),
/// day-of-week 0 and 7 are Sunday, and when both day fields are restricted a
/// day matches if either matches. Aliases such as `@daily` are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    cron: Box<Cron>,
}

impl CronExpr {
    /// Parses exactly five fields (no seconds field, no year field).
    pub fn parse(expr: &str) -> Result<Self, CalendarError> {
        let source = expr.trim();
        let bad = |reason: String| CalendarError::BadCron {
            expr: expr.to_string(),
            reason,
        };
        let is_alias = source.starts_with('@');
        let fields = source.split_whitespace().count();
        if !is_alias && fields != 5 {
            return Err(bad(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {fields}"
            )));
        }
        let cron = five_fields(source)
            .map_err(|_| bad(cron_problem(source)))?
            .into();
        Ok(CronExpr {
            source: source.to_string(),
            cron,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

fn five_fields(source: &str) -> Result<Cron, croner::errors::CronError> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(source)
}

/// The five fields, what each takes.
const CRON_FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or Jan-Dec"),
    ("day-of-week", "0-7 or Sun-Sat (0 and 7 are Sunday)"),
];

/// Which part of a 5-field expression croner refused, and what it takes, in our words (its
/// own messages are about its parser, not about the expression).
fn cron_problem(source: &str) -> String {
    if source.starts_with('@') {
        return "unknown alias; use @yearly, @monthly, @weekly, @daily or @hourly, or 5 fields"
            .to_string();
    }
    let fields: Vec<&str> = source.split_whitespace().collect();
    for (i, (name, takes)) in CRON_FIELDS.iter().enumerate() {
        let mut probe = ["*"; 5];
        probe[i] = fields.get(i).copied().unwrap_or("*");
        if five_fields(&probe.join(" ")).is_err() {
            return format!(
                "the {name} field `{}` is not valid; it takes {takes}, a range (1-5), a list (1,3), a step (*/15) or *",
                probe[i]
            );
        }
    }
    "its fields do not make a schedule together".to_string()
}

/// Parses an IANA time zone name such as `Europe/Berlin`.
pub fn parse_timezone(name: &str) -> Result<Tz, CalendarError> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| CalendarError::BadTimezone(name.to_string()))
}

/// UTC offset (seconds east) of `tz` at the instant written as `utc`.
fn offset_at(tz: Tz, utc: NaiveDateTime) -> i64 {
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}

fn shift(t: NaiveDateTime, secs: i64) -> Option<NaiveDateTime> {
    t.checked_add_signed(Duration::try_seconds(secs)?)
}

/// Resolves a local wall time to an instant following the module's DST rules.
fn resolve(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(dt) => Some(dt.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        chrono::LocalResult::None => {
            // In a gap the offset rises from `a` to `b`; `local - b` lies just
            // before the transition (offset `a`), `local - a` just after it
            // (offset `b`). Probing twice yields both; the smaller is `a`.
            let o1 = offset_at(tz, local);
            let o2 = offset_at(tz, shift(local, -o1)?);
            let o3 = offset_at(tz, shift(local, -o2)?);
            Some(shift(local, -o2.min(o3))?.and_utc())
        }
    }
}

/// Where to start the wall-clock search so that no opening at or after `from`
/// is missed: the local time of `from`, read with the smaller of the offsets at
/// `from` and a day earlier (a gap-shifted opening lands up to a gap after its
/// wall time).
fn search_start(tz: Tz, from: DateTime<Utc>) -> Option<NaiveDateTime> {
    let utc = from.naive_utc();
    let day_before = utc.checked_sub_signed(Duration::days(1))?;
    shift(utc, offset_at(tz, utc).min(offset_at(tz, day_before)))
}

/// Something that opens at each cron match (wall clock in `tz`) and lasts `duration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recurrence {
    pub cron: CronExpr,
    pub duration: Duration,
    pub tz: Tz,
}

impl Recurrence {
    /// Opening instants at or after `from` (UTC), in strictly increasing
    /// order, lazily, following the module's DST rules.
    pub fn openings_from(&self, from: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut cursor = search_start(self.tz, from);
        let mut inclusive = true;
        let mut last: Option<DateTime<Utc>> = None;
        std::iter::from_fn(move || {
            loop {
                let local = self
                    .cron
                    .cron
                    .find_next_occurrence(&cursor?, inclusive)
                    .ok();
                cursor = local;
                inclusive = false;
                let Some(at) = resolve(self.tz, local?) else {
                    continue;
                };
                if at < from || last.is_some_and(|l| at <= l) {
                    continue;
                }
                last = Some(at);
                return Some(at);
            }
        })
    }

    /// Occurrence intervals from the one(s) still running at `from` onwards.
    fn occurrences_from(&self, from: DateTime<Utc>) -> impl Iterator<Item = Interval> + '_ {
        let duration = self.duration.max(Duration::zero());
        let back = from
            .checked_sub_signed(duration)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.openings_from(back)
            .map_while(move |open| Some(Interval::new(open, open.checked_add_signed(duration)?)))
            .filter(move |occ| occ.end > from)
    }

    /// Every occurrence interval `[open, open+duration)` that overlaps
    /// `[from, to)`, in order, including one opened before `from` that still runs.
    pub fn intervals_overlapping(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Interval> {
        if from >= to || self.duration <= Duration::zero() {
            return Vec::new();
        }
        self.occurrences_from(from)
            .take_while(|occ| occ.start < to)
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub name: String,
    pub recurrence: Recurrence,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreezeSpan {
    OneOff(Interval),
    Recurring(Recurrence),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Freeze {
    pub name: String,
    pub span: FreezeSpan,
    /// empty = every service
    pub services: Vec<String>,
    pub reason: String,
}

impl Freeze {
    pub fn applies_to(&self, service: &str) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == service)
    }

    /// Freeze intervals overlapping `[from, to)`, in order.
    pub fn intervals_overlapping(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Interval> {
        match &self.span {
            FreezeSpan::OneOff(span) if span.overlaps(&Interval::new(from, to)) && from < to => {
                vec![*span]
            }
            FreezeSpan::OneOff(_) => Vec::new(),
            FreezeSpan::Recurring(rec) => rec.intervals_overlapping(from, to),
        }
    }
}

/// Another change already booked on the same service+environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Booked {
    pub change: i64,
    pub slot: Interval,
}

/// What a slot search needs. `windows` and `freezes` are already those that
/// apply to the service (the caller filters); `booked` are the other changes'
/// bookings on the same service+environment.
#[derive(Clone, Copy)]
pub struct SlotQuery<'a> {
    pub earliest: DateTime<Utc>,
    pub duration: Duration,
    pub windows: &'a [Window],
    pub freezes: &'a [Freeze],
    pub booked: &'a [Booked],
    /// Give up after this far past `earliest` (callers use ~366 days).
    pub horizon: Duration,
}

/// Occurrences of all `windows` still running at `from` or opening later,
/// merged in start order.
fn window_occurrences<'a>(
    windows: &'a [Window],
    from: DateTime<Utc>,
) -> impl Iterator<Item = Interval> + 'a {
    let mut streams: Vec<_> = windows
        .iter()
        .filter(|w| w.recurrence.duration > Duration::zero())
        .map(|w| w.recurrence.occurrences_from(from).peekable())
        .collect();
    std::iter::from_fn(move || {
        let mut best: Option<(usize, Interval)> = None;
        for (i, stream) in streams.iter_mut().enumerate() {
            if let Some(occ) = stream.peek()
                && best.is_none_or(|(_, b)| occ.start < b.start)
            {
                best = Some((i, *occ));
            }
        }
        let (i, occ) = best?;
        streams[i].next();
        Some(occ)
    })
}

/// Earliest legal start inside one window occurrence, or None if the change
/// cannot fit in it.
fn fit_in(
    q: &SlotQuery<'_>,
    booked: &[Booked],
    duration: Duration,
    occ: Interval,
) -> Option<Interval> {
    let frozen: Vec<Interval> = q
        .freezes
        .iter()
        .flat_map(|f| f.intervals_overlapping(occ.start, occ.end))
        .collect();
    let mut t = occ.start.max(q.earliest);
    loop {
        let slot = Interval::new(t, t.checked_add_signed(duration)?);
        if slot.end > occ.end {
            return None;
        }
        // Any blocker overlapping `slot` ends after `t`, so `t` always advances.
        let blocked_until = frozen
            .iter()
            .filter(|f| f.overlaps(&slot))
            .map(|f| f.end)
            .max()
            .or_else(|| {
                booked
                    .iter()
                    .filter(|b| b.slot.overlaps(&slot))
                    .map(|b| b.slot.end)
                    .max()
            });
        match blocked_until {
            Some(next) => t = next,
            None => return Some(slot),
        }
    }
}

/// Earliest legal slot: start >= earliest, `[start, start+duration)` inside one
/// window occurrence, overlapping no freeze interval and no booked slot; None if
/// nothing opens within the horizon (or there are no windows).
pub fn find_slot(q: &SlotQuery<'_>) -> Option<Interval> {
    let duration = q.duration.max(Duration::zero());
    let limit = q
        .earliest
        .checked_add_signed(q.horizon)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    // Bookings sorted by start, so each window occurrence only looks at those near it.
    let mut booked = q.booked.to_vec();
    booked.sort_unstable_by_key(|b| b.slot.start);
    let longest = booked
        .iter()
        .map(|b| b.slot.duration())
        .max()
        .unwrap_or_else(Duration::zero);
    window_occurrences(q.windows, q.earliest)
        .take_while(|occ| occ.start <= limit)
        .find_map(|occ| {
            let from = booked.partition_point(|b| b.slot.start + longest <= occ.start);
            let to = booked.partition_point(|b| b.slot.start < occ.end);
            fit_in(q, &booked[from..to.max(from)], duration, occ)
        })
}

/// One line of a `calendar` view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CalendarEntry {
    Window {
        name: String,
        slot: Interval,
    },
    Freeze {
        name: String,
        slot: Interval,
        reason: String,
    },
}

impl CalendarEntry {
    fn slot(&self) -> Interval {
        match self {
            CalendarEntry::Window { slot, .. } | CalendarEntry::Freeze { slot, .. } => *slot,
        }
    }
}

/// Every window occurrence and freeze interval overlapping `[from, to)`,
/// sorted by start (windows before freezes on ties).
pub fn upcoming(
    windows: &[Window],
    freezes: &[Freeze],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<CalendarEntry> {
    let mut entries: Vec<CalendarEntry> = windows
        .iter()
        .flat_map(|w| {
            w.recurrence
                .intervals_overlapping(from, to)
                .into_iter()
                .map(|slot| CalendarEntry::Window {
                    name: w.name.clone(),
                    slot,
                })
        })
        .collect();
    for f in freezes {
        entries.extend(f.intervals_overlapping(from, to).into_iter().map(|slot| {
            CalendarEntry::Freeze {
                name: f.name.clone(),
                slot,
                reason: f.reason.clone(),
            }
        }));
    }
    entries.sort_by_key(|e| e.slot().start);
    entries
}

#[cfg(test)]
mod tests;
