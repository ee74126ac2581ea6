//! The forward schedule of a service over a period: its window openings, each with the freezes
//! that overlap it, and the freeze spans themselves. Built on [`upcoming`].

use chrono::{DateTime, Utc};

use super::{CalendarEntry, Freeze, Interval, Window, upcoming};

/// One window occurrence and what freezes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opening {
    pub window: String,
    pub slot: Interval,
    /// Names of the freezes overlapping the occurrence, in start order, each once.
    pub frozen_by: Vec<String>,
    /// The freezes cover the whole occurrence: nothing can be booked in it.
    pub covered: bool,
}

/// One freeze interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreezeSpell {
    pub name: String,
    pub slot: Interval,
    pub reason: String,
}

/// Window openings and freeze intervals overlapping `[from, to)`, each in start order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agenda {
    pub openings: Vec<Opening>,
    pub freezes: Vec<FreezeSpell>,
}

/// The agenda of `windows` and `freezes` (those that apply to one service) over `[from, to)`.
pub fn agenda(
    windows: &[Window],
    freezes: &[Freeze],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Agenda {
    let mut slots = Vec::new();
    let mut spells = Vec::new();
    for entry in upcoming(windows, freezes, from, to) {
        match entry {
            CalendarEntry::Window { name, slot } => slots.push((name, slot)),
            CalendarEntry::Freeze { name, slot, reason } => {
                spells.push(FreezeSpell { name, slot, reason });
            }
        }
    }
    // A freeze running into the period matters to the openings it overlaps, even those
    // beyond its first interval in the period: `upcoming` lists every interval.
    let openings = slots
        .into_iter()
        .map(|(window, slot)| {
            let over: Vec<&FreezeSpell> =
                spells.iter().filter(|f| f.slot.overlaps(&slot)).collect();
            let mut frozen_by: Vec<String> = Vec::new();
            for f in &over {
                if !frozen_by.contains(&f.name) {
                    frozen_by.push(f.name.clone());
                }
            }
            let covered = covers(over.iter().map(|f| f.slot), slot);
            Opening {
                window,
                slot,
                frozen_by,
                covered,
            }
        })
        .collect();
    Agenda {
        openings,
        freezes: spells,
    }
}

/// Whether the union of `spans` covers all of `slot`.
fn covers(spans: impl Iterator<Item = Interval>, slot: Interval) -> bool {
    let mut spans: Vec<Interval> = spans.collect();
    spans.sort_unstable_by_key(|s| s.start);
    let mut reached = slot.start;
    for s in spans {
        if s.start > reached {
            break;
        }
        reached = reached.max(s.end);
    }
    reached >= slot.end
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::{CronExpr, FreezeSpan, Recurrence};
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn nightly() -> Window {
        Window {
            name: "nightly".into(),
            recurrence: Recurrence {
                cron: CronExpr::parse("0 22 * * *").expect("cron"),
                duration: Duration::hours(2),
                tz: chrono_tz::UTC,
            },
        }
    }

    fn one_off(name: &str, start: &str, end: &str) -> Freeze {
        Freeze {
            name: name.into(),
            span: FreezeSpan::OneOff(Interval::new(at(start), at(end))),
            services: Vec::new(),
            reason: "busy".into(),
        }
    }

    #[test]
    fn openings_name_the_freezes_over_them_and_say_when_they_are_covered() {
        let freezes = [
            // Covers the second night entirely, in two pieces.
            one_off("a", "2026-11-24T21:00:00Z", "2026-11-24T23:00:00Z"),
            one_off("b", "2026-11-24T23:00:00Z", "2026-11-25T01:00:00Z"),
            // Bites the third night only partly.
            one_off("c", "2026-11-25T23:30:00Z", "2026-11-26T03:00:00Z"),
        ];
        let a = agenda(
            &[nightly()],
            &freezes,
            at("2026-11-23T12:00:00Z"),
            at("2026-11-26T12:00:00Z"),
        );
        let seen: Vec<(String, Vec<String>, bool)> = a
            .openings
            .iter()
            .map(|o| (o.slot.start.to_rfc3339(), o.frozen_by.clone(), o.covered))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("2026-11-23T22:00:00+00:00".to_string(), vec![], false),
                (
                    "2026-11-24T22:00:00+00:00".to_string(),
                    vec!["a".to_string(), "b".to_string()],
                    true
                ),
                (
                    "2026-11-25T22:00:00+00:00".to_string(),
                    vec!["c".to_string()],
                    false
                ),
            ]
        );
        assert_eq!(a.freezes.len(), 3);
        assert_eq!(a.freezes[0].name, "a");
    }
}
