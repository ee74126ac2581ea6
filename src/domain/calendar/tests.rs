//! Calendar scenarios: DST, freezes over windows, conflicts, slot checks.
use super::*;

/// `MM-DDTHH:MM` in 2026, UTC.
fn utc(s: &str) -> DateTime<Utc> {
    format!("2026-{s}:00Z").parse().unwrap()
}
fn iv(a: &str, b: &str) -> Interval {
    Interval::new(utc(a), utc(b))
}
fn rec(cron: &str, minutes: i64, tz: &str) -> Recurrence {
    let (cron, tz) = (CronExpr::parse(cron).unwrap(), parse_timezone(tz).unwrap());
    let duration = Duration::minutes(minutes);
    Recurrence { cron, duration, tz }
}
fn window(name: &str, cron: &str, minutes: i64) -> Window {
    let (name, recurrence) = (name.into(), rec(cron, minutes, "Europe/Berlin"));
    Window { name, recurrence }
}
fn freeze(name: &str, span: FreezeSpan) -> Freeze {
    let (services, reason) = (vec![], "because".into());
    Freeze {
        name: name.into(),
        span,
        services,
        reason,
    }
}
fn weeknights() -> Vec<Window> {
    vec![window("weeknights", "0 22 * * Mon-Thu", 180)]
}
fn query<'a>(minutes: i64, w: &'a [Window], f: &'a [Freeze], b: &'a [Booked]) -> SlotQuery<'a> {
    SlotQuery {
        earliest: utc("03-09T08:00"), // Monday
        duration: Duration::minutes(minutes),
        windows: w,
        freezes: f,
        booked: b,
        horizon: Duration::days(366),
    }
}

/// cron | zone | from | expected openings (all UTC, 2026)
const DST_TABLE: &str = "
    30 2 * * *       | Europe/Berlin    | 03-28T00:00 | 03-28T01:30 03-29T01:30 03-30T00:30
    30 2 * * *       | Europe/Berlin    | 03-29T01:15 | 03-29T01:30 03-30T00:30
    30 1 * * *       | America/New_York | 10-31T00:00 | 10-31T05:30 11-01T05:30 11-02T06:30
    30 1 * * *       | America/New_York | 11-01T05:45 | 11-02T06:30
    0 22 * * Mon-Thu | Europe/Berlin    | 03-06T12:00 | 03-09T21:00 03-10T21:00
    */30 * * * *     | Europe/Berlin    | 03-29T00:30 | 03-29T00:30 03-29T01:00 03-29T01:30 03-29T02:00";

#[test]
fn dst_openings_follow_the_wall_clock_table() {
    for row in DST_TABLE.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = row.split('|').map(str::trim).collect();
        let r = rec(cols[0], 60, cols[1]);
        let want: Vec<_> = cols[3].split(' ').map(utc).collect();
        let got: Vec<_> = r.openings_from(utc(cols[2])).take(want.len()).collect();
        assert_eq!(got, want, "{row}");
    }
    let ny = rec("30 1 * * *", 60, "America/New_York");
    let day = ny.intervals_overlapping(utc("11-01T04:00"), utc("11-02T04:00"));
    assert_eq!(day.len(), 1, "one opening on the fall-back day: {day:?}");
}

#[test]
fn freeze_covering_first_occurrence_pushes_to_next_one() {
    let span = FreezeSpan::OneOff(iv("03-09T20:00", "03-10T02:00"));
    let (w, f) = (weeknights(), [freeze("incident", span)]);
    let slot = find_slot(&query(30, &w, &f, &[])).unwrap();
    assert_eq!(slot, iv("03-10T21:00", "03-10T21:30"));
}

#[test]
fn booked_change_moves_slot_to_its_end_or_next_occurrence() {
    let w = weeknights();
    let slot = iv("03-09T21:00", "03-09T21:45");
    let b = [Booked { change: 7, slot }];
    assert_eq!(find_slot(&query(30, &w, &[], &b)).unwrap().start, slot.end);
    // 2h30 after the booking would end past 01:00 local: next evening.
    let next = iv("03-10T21:00", "03-10T23:30");
    assert_eq!(find_slot(&query(150, &w, &[], &b)), Some(next));
    // A booking in the middle: the change goes after it and still fits.
    let slot = iv("03-09T21:30", "03-09T22:00");
    let b = [Booked { change: 8, slot }];
    let after = iv("03-09T22:00", "03-09T23:00");
    assert_eq!(find_slot(&query(60, &w, &[], &b)), Some(after));
    // Exactly the window length fits; one minute more never does.
    let full = iv("03-09T21:00", "03-10T00:00");
    assert_eq!(find_slot(&query(180, &w, &[], &[])), Some(full));
    assert_eq!(find_slot(&query(181, &w, &[], &[])), None);
}

#[test]
fn friday_freeze_still_running_blocks_saturday() {
    let span = FreezeSpan::Recurring(rec("0 15 * * Fri", 65 * 60, "Europe/Berlin"));
    let f = [freeze("friday-afternoons", span)];
    let sat = utc("03-07T07:00");
    let running = f[0].intervals_overlapping(sat, sat + Duration::days(1));
    assert_eq!(running, [iv("03-06T14:00", "03-09T07:00")]);
    let w = [window("mornings", "0 10 * * *", 120)];
    let mut q = query(30, &w, &f, &[]);
    q.earliest = sat;
    assert_eq!(find_slot(&q).unwrap().start, utc("03-09T09:00"));
    assert!(f[0].applies_to("payments-api"));
}

#[test]
fn check_slot_lists_every_problem_in_order() {
    let span = FreezeSpan::OneOff(iv("03-09T21:00", "03-09T21:20"));
    let (w, f) = (weeknights(), [freeze("release-party", span)]);
    let slot = iv("03-09T21:10", "03-09T21:40");
    let b = [Booked { change: 42, slot }];
    let q = query(30, &w, &f, &b);
    // The next legal start is past the freeze and the booking, not the window's opening.
    let next_legal = Some(("weeknights".to_string(), utc("03-09T21:40")));
    let outside = SlotProblem::OutsideWindows { next_legal };
    assert_eq!(check_slot(&q, utc("03-09T12:00")), Err(vec![outside]));
    let until = utc("03-09T21:20");
    let freeze = "release-party".to_string();
    let frozen = SlotProblem::Frozen { freeze, until };
    let conflict = SlotProblem::Conflict { change: 42, slot };
    let at = utc("03-09T21:05");
    assert_eq!(check_slot(&q, at), Err(vec![frozen, conflict]));
    // Inside Thursday's occurrence but running past its end, and in the past.
    let late = check_slot(&q, utc("03-05T23:45")).unwrap_err();
    assert_eq!(late[0], SlotProblem::InThePast);
    let (window, ends) = ("weeknights".to_string(), utc("03-06T00:00"));
    let overrun = Duration::minutes(15);
    let past_end = SlotProblem::RunsPastWindow {
        window,
        ends,
        overrun,
        fits: true,
    };
    assert_eq!(late[1], past_end);
    let ok = iv("03-09T21:40", "03-09T22:10");
    assert_eq!(check_slot(&q, ok.start), Ok(ok));
    assert_eq!(find_slot(&q), Some(ok));
}

#[test]
fn no_windows_or_never_matching_cron_gives_up_quickly() {
    let q = query(30, &[], &[], &[]);
    assert_eq!(find_slot(&q), None);
    let none = Err(vec![SlotProblem::NoWindows]);
    assert_eq!(check_slot(&q, q.earliest), none);
    let never = [window("feb-30", "0 0 30 2 *", 60)];
    assert_eq!(never[0].recurrence.openings_from(q.earliest).next(), None);
    let q = query(30, &never, &[], &[]);
    assert_eq!(find_slot(&q), None);
    let outside = SlotProblem::OutsideWindows { next_legal: None };
    assert_eq!(check_slot(&q, q.earliest), Err(vec![outside]));
}

#[test]
fn cron_and_timezone_parsing_reject_garbage() {
    for bad in "0 0 * * * *|0 0 1 1 * 2026|x||61 * * * *|0 0 * * Foo|@often".split('|') {
        let err = CronExpr::parse(bad).unwrap_err();
        assert!(matches!(&err, CalendarError::BadCron { expr, .. } if expr == bad));
        assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
    }
    // Which field is wrong and what it takes, never the parser's own words.
    for (bad, field) in [
        (
            "0 22 * * Mon-Thx",
            "the day-of-week field `Mon-Thx` is not valid; it takes 0-7",
        ),
        (
            "61 * * * *",
            "the minute field `61` is not valid; it takes 0-59",
        ),
        ("0 25 * * *", "the hour field `25` is not valid"),
        (
            "0 0 * Foo *",
            "the month field `Foo` is not valid; it takes 1-12 or Jan-Dec",
        ),
        ("@often", "unknown alias"),
    ] {
        let err = CronExpr::parse(bad).unwrap_err().to_string();
        assert!(err.contains(field), "{bad}: {err}");
        assert!(!err.to_lowercase().contains("illegal"), "{bad}: {err}");
    }
    assert_eq!(CronExpr::parse(" @daily ").unwrap().as_str(), "@daily");
    let from = utc("03-02T00:00");
    let sunday = |cron| rec(cron, 60, "UTC").openings_from(from).next();
    assert_eq!(sunday("0 9 * * 7"), Some(utc("03-08T09:00")));
    assert_eq!(sunday("0 9 * * Sun"), sunday("0 9 * * 0"));
    let mars = Err(CalendarError::BadTimezone("Mars/Olympus".into()));
    assert_eq!(parse_timezone("Mars/Olympus"), mars);
    let berlin = Ok(chrono_tz::Europe::Berlin);
    assert_eq!(parse_timezone(" Europe/Berlin "), berlin);
}

#[test]
fn upcoming_merges_windows_and_freezes_by_start() {
    let span = FreezeSpan::OneOff(iv("03-10T10:00", "03-10T12:00"));
    let (w, f) = (weeknights(), [freeze("audit", span)]);
    let got = upcoming(&w, &f, utc("03-09T00:00"), utc("03-11T00:00"));
    let starts: Vec<_> = got.iter().map(|e| e.slot().start).collect();
    let want = ["03-09T21:00", "03-10T10:00", "03-10T21:00"].map(utc);
    assert_eq!(starts, want);
    assert!(matches!(&got[1], CalendarEntry::Freeze { name, .. } if name == "audit"));
}
