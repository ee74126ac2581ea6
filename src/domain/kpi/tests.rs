//! KPIs on hand-built histories with known answers.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::domain::change::Source;
use crate::domain::{DeploymentId, Risk};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("test time").to_utc()
}

const BERLIN: Tz = chrono_tz::Europe::Berlin;

fn change(id: i64, service: &str, kind: ChangeType, state: State, created: &str) -> Change {
    Change {
        id: ChangeId(id),
        title: format!("change {id}"),
        description: String::new(),
        service: service.into(),
        environment: "production".into(),
        change_type: kind,
        risk: Risk::Medium,
        state,
        close_code: (state == State::Closed).then_some(CloseCode::Successful),
        requester: "alice".into(),
        source: Source::Chat,
        pull_request: None,
        duration: Duration::minutes(30),
        slot: None,
        approval_round: 1,
        created_at: t(created),
        updated_at: t(created),
        first_commit_at: None,
    }
}

fn dep(id: i64, change: i64, ok: bool, started: &str, finished: &str) -> Deployment {
    Deployment {
        id: DeploymentId(id),
        change: ChangeId(change),
        status: match ok {
            true => DeploymentStatus::Succeeded,
            false => DeploymentStatus::Failed,
        },
        dry_run: true,
        attempts: 1,
        requested_by: "changebot".into(),
        reason: "slot".into(),
        started_at: t(started),
        deadline_at: t(started) + Duration::minutes(15),
        finished_at: Some(t(finished)),
        log_url: None,
        message: None,
    }
}

fn ev(at: &str, action: &str, detail: &str) -> Event {
    Event {
        at: t(at),
        action: action.into(),
        detail: detail.into(),
    }
}

/// `opened`, `new → assess → authorize` at `opened`, then `authorize → scheduled` and
/// `booked SLOT` at `scheduled`.
fn trail(opened: &str, scheduled: &str, slot: &str) -> Vec<Event> {
    vec![
        ev(opened, "opened", "chat"),
        ev(opened, "transition", "new → assess: record complete"),
        ev(opened, "transition", "assess → authorize: policy normal"),
        ev(
            scheduled,
            "transition",
            "authorize → scheduled: authorized and ready",
        ),
        ev(scheduled, "booked", slot),
    ]
}

fn history(change: Change, events: Vec<Event>, deployments: Vec<Deployment>) -> History {
    History {
        change,
        events,
        deployments,
        timezone: BERLIN,
    }
}

fn scope(from: &str, to: &str, service: Option<&str>) -> Scope {
    Scope {
        from: t(from),
        to: t(to),
        service: service.map(str::to_string),
        environment: None,
    }
}

/// The week of Monday 2026-11-23 (UTC): four changes.
fn week() -> Vec<History> {
    use ChangeType::{Emergency, Normal};
    // CHG-1: approved after 2 h, released in its first slot, closed.
    let mut one = trail(
        "2026-11-23T09:00:00Z",
        "2026-11-23T11:00:00Z",
        "2026-11-23 22:00–22:30 CET",
    );
    one.push(ev(
        "2026-11-23T21:05:00Z",
        "transition",
        "review → closed: ok",
    ));
    // CHG-2: approved after 4 h, moved by a freeze to Tuesday, failed there.
    let mut two = trail(
        "2026-11-23T10:00:00Z",
        "2026-11-23T14:00:00Z",
        "2026-11-23 22:00–22:30 CET",
    );
    two.push(ev(
        "2026-11-23T20:00:00Z",
        "booked",
        "moved by freeze db: 2026-11-24 22:00–22:30 CET",
    ));
    // CHG-3: emergency, approved after 30 min, released at once (break-glass), recovers CHG-2.
    let three = trail(
        "2026-11-25T08:00:00Z",
        "2026-11-25T08:30:00Z",
        "2026-11-25 22:00–22:30 CET",
    );
    // CHG-4: another service, merged unauthorized, failed with no success after.
    let four = vec![
        ev("2026-11-26T08:00:00Z", "opened", "github"),
        ev(
            "2026-11-26T09:00:00Z",
            "unauthorized",
            "merged before approval",
        ),
    ];
    vec![
        history(
            change(
                1,
                "payments-api",
                Normal,
                State::Closed,
                "2026-11-23T09:00:00Z",
            ),
            one,
            vec![dep(
                1,
                1,
                true,
                "2026-11-23T21:00:00Z",
                "2026-11-23T21:05:00Z",
            )],
        ),
        history(
            change(
                2,
                "payments-api",
                Normal,
                State::Review,
                "2026-11-23T10:00:00Z",
            ),
            two,
            vec![dep(
                2,
                2,
                false,
                "2026-11-24T21:00:00Z",
                "2026-11-24T21:10:00Z",
            )],
        ),
        history(
            change(
                3,
                "payments-api",
                Emergency,
                State::Review,
                "2026-11-25T08:00:00Z",
            ),
            three,
            vec![dep(
                3,
                3,
                true,
                "2026-11-25T09:00:00Z",
                "2026-11-25T09:10:00Z",
            )],
        ),
        history(
            change(4, "web", Normal, State::Review, "2026-11-26T08:00:00Z"),
            four,
            vec![dep(
                4,
                4,
                false,
                "2026-11-26T10:00:00Z",
                "2026-11-26T10:01:00Z",
            )],
        ),
    ]
}

const MON: &str = "2026-11-23T00:00:00Z";
const NEXT_MON: &str = "2026-11-30T00:00:00Z";

#[test]
fn a_week_of_four_changes_gives_the_known_numbers() {
    let k = compute(&scope(MON, NEXT_MON, None), &week());
    assert_eq!((k.deployments_succeeded, k.deployments_failed), (2, 2));
    assert!((k.deployments_per_day - 2.0 / 7.0).abs() < 1e-9);
    assert_eq!(k.change_failure_rate, Some(0.5));
    // Lead times 12h05m (CHG-1) and 1h10m (CHG-3).
    assert_eq!(
        k.lead_time,
        Spread {
            count: 2,
            median_secs: Some(4200),
            p90_secs: Some(43_500)
        }
    );
    // DEP-2 failed Tue 21:10, DEP-3 succeeded Wed 09:10; DEP-4 (web) never recovered.
    assert_eq!(k.recovery.count, 1);
    assert_eq!(k.recovery.median_secs, Some(12 * 3600));
    assert_eq!(k.unrecovered_failures, 1);
    // DEP-3 came right after DEP-2 failed in payments-api/production: rework.
    assert_eq!(k.rework_deployments, 1);
    assert_eq!(k.rework_rate, Some(0.25));
    assert_eq!((k.changes_closed, k.changes_closed_successful), (1, 1));
    assert_eq!(k.change_success_rate, Some(1.0));
    assert_eq!((k.changes_opened, k.emergency_changes), (4, 1));
    assert_eq!(k.emergency_share, Some(0.25));
    assert_eq!(k.unauthorized_changes, 1);
    // 30 min, 2 h, 4 h.
    assert_eq!(
        k.approval_latency,
        Spread {
            count: 3,
            median_secs: Some(7200),
            p90_secs: Some(14_400)
        }
    );
    assert_eq!((k.booked_releases, k.started_in_first_slot), (3, 1));
    assert_eq!((k.changes_booked, k.rebookings), (3, 1));
    assert_eq!(k.rebookings_per_change, Some(1.0 / 3.0));
    assert_eq!(k.unreviewed, vec![ChangeId(2), ChangeId(3), ChangeId(4)]);
}

#[test]
fn one_service_sees_only_its_own_changes() {
    let k = compute(&scope(MON, NEXT_MON, Some("payments-api")), &week());
    assert_eq!((k.deployments_succeeded, k.deployments_failed), (2, 1));
    assert_eq!((k.recovery.count, k.unrecovered_failures), (1, 0));
    assert_eq!(k.unauthorized_changes, 0);
    assert_eq!(k.unreviewed, vec![ChangeId(2), ChangeId(3)]);
    let web = compute(&scope(MON, NEXT_MON, Some("web")), &week());
    assert_eq!(web.change_failure_rate, Some(1.0));
    assert_eq!(web.unreviewed, vec![ChangeId(4)]);
}

#[test]
fn an_empty_period_is_all_zero_and_none() {
    for histories in [Vec::new(), week()] {
        // Before anything happened, and a period of no length at all.
        for s in [
            scope("2026-01-01T00:00:00Z", "2026-01-08T00:00:00Z", None),
            scope(MON, MON, None),
        ] {
            let k = compute(&s, &histories);
            assert_eq!((k.deployments_succeeded, k.deployments_failed), (0, 0));
            assert_eq!(k.deployments_per_day, 0.0);
            assert_eq!(k.lead_time, Spread::default());
            assert_eq!(k.recovery, Spread::default());
            assert_eq!(k.approval_latency, Spread::default());
            assert_eq!(k.unrecovered_failures, 0);
            assert_eq!(k.change_failure_rate, None);
            assert_eq!(k.change_success_rate, None);
            assert_eq!(k.emergency_share, None);
            assert_eq!(k.first_slot_share, None);
            assert_eq!(k.rebookings_per_change, None);
            assert_eq!(
                k.unauthorized_changes + k.changes_opened + k.changes_closed,
                0
            );
            assert!(k.unreviewed.is_empty());
        }
    }
}

#[test]
fn a_failure_with_no_later_success_is_unrecovered_not_zero() {
    let histories = vec![
        history(
            change(1, "payments-api", ChangeType::Normal, State::Closed, MON),
            Vec::new(),
            vec![dep(
                1,
                1,
                true,
                "2026-11-23T09:00:00Z",
                "2026-11-23T09:05:00Z",
            )],
        ),
        history(
            change(2, "payments-api", ChangeType::Normal, State::Review, MON),
            Vec::new(),
            vec![dep(
                2,
                2,
                false,
                "2026-11-24T09:00:00Z",
                "2026-11-24T09:05:00Z",
            )],
        ),
    ];
    let k = compute(&scope(MON, NEXT_MON, None), &histories);
    assert_eq!(k.recovery, Spread::default());
    assert_eq!(k.unrecovered_failures, 1);
    assert_eq!(k.change_failure_rate, Some(0.5));
    assert_eq!(k.unreviewed, vec![ChangeId(2)]);
}

/// Europe/Berlin leaves summer time on Sunday 2026-10-25 (03:00 CEST → 02:00 CET): the local
/// week Mon 19 – Mon 26 lasts 169 hours, and a day across the change 25 hours.
#[test]
fn a_week_with_a_dst_change_measures_in_utc() {
    // Local midnights in Berlin: Mon 19 00:00 CEST and Mon 26 00:00 CET.
    let s = scope("2026-10-18T22:00:00Z", "2026-10-25T23:00:00Z", None);
    // CHG-1: opened Sat 22:00 CEST, approved Sun 01:00 CEST, booked into 02:30–03:00 CET (the
    // second 02:30) and released there. CHG-2: opened Sat 22:00 CEST, approved and released
    // Sun 22:00 CET: 24 wall-clock hours, 25 real ones.
    let mut one = trail(
        "2026-10-24T20:00:00Z",
        "2026-10-24T23:00:00Z",
        "2026-10-25 02:30–03:00 CET",
    );
    one.push(ev(
        "2026-10-25T01:35:00Z",
        "transition",
        "review → closed: ok",
    ));
    let two = trail(
        "2026-10-24T20:00:00Z",
        "2026-10-25T20:00:00Z",
        "2026-10-25 22:00–22:30 CET",
    );
    let histories = vec![
        history(
            change(
                1,
                "payments-api",
                ChangeType::Normal,
                State::Closed,
                "2026-10-24T20:00:00Z",
            ),
            one,
            vec![dep(
                1,
                1,
                true,
                "2026-10-25T01:30:00Z",
                "2026-10-25T01:35:00Z",
            )],
        ),
        history(
            change(
                2,
                "payments-api",
                ChangeType::Normal,
                State::Closed,
                "2026-10-24T20:00:00Z",
            ),
            two,
            vec![dep(
                2,
                2,
                true,
                "2026-10-25T21:00:00Z",
                "2026-10-25T21:00:00Z",
            )],
        ),
    ];
    let k = compute(&s, &histories);
    assert!((k.deployments_per_day - 2.0 * 24.0 / 169.0).abs() < 1e-9);
    // 5h35m, and 25 hours (not the 24 the wall clock shows).
    assert_eq!(k.lead_time.median_secs, Some(5 * 3600 + 35 * 60));
    assert_eq!(k.lead_time.p90_secs, Some(25 * 3600));
    assert_eq!(k.approval_latency.median_secs, Some(3 * 3600));
    assert_eq!(k.approval_latency.p90_secs, Some(24 * 3600));
    assert_eq!((k.booked_releases, k.started_in_first_slot), (2, 2));
    assert_eq!(
        booked_start("2026-10-25 02:30–03:00 CET", BERLIN, Duration::minutes(30)),
        Some(t("2026-10-25T01:30:00Z")),
        "the second 02:30, in CET"
    );
    assert_eq!(
        booked_start("2026-10-25 02:30–02:00 CET", BERLIN, Duration::minutes(30)),
        Some(t("2026-10-25T00:30:00Z")),
        "the first 02:30, in CEST"
    );
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let of = |secs: &[i64]| spread(secs.iter().map(|s| Duration::seconds(*s)).collect());
    assert_eq!(of(&[]), Spread::default());
    assert_eq!(
        of(&[7]),
        Spread {
            count: 1,
            median_secs: Some(7),
            p90_secs: Some(7)
        }
    );
    let ten = of(&[10, 1, 9, 2, 8, 3, 7, 4, 6, 5]);
    assert_eq!((ten.median_secs, ten.p90_secs), (Some(5), Some(9)));
}

#[test]
fn transitions_and_bookings_are_read_from_the_audit_text() {
    let e = ev(
        MON,
        "transition",
        "authorize → scheduled: authorized and ready",
    );
    assert_eq!(transition(&e), Some((State::Authorize, State::Scheduled)));
    assert_eq!(transition(&ev(MON, "booked", "x → y")), None);
    assert_eq!(transition(&ev(MON, "transition", "garbage")), None);
    assert_eq!(
        booked_start(
            "moved by freeze db: 2026-11-24 22:00–22:30 CET",
            BERLIN,
            Duration::minutes(30)
        ),
        Some(t("2026-11-24T21:00:00Z"))
    );
    assert_eq!(booked_start("", BERLIN, Duration::minutes(30)), None);
    assert_eq!(
        booked_start("ünïcödé ✓", BERLIN, Duration::minutes(30)),
        None
    );
}

#[test]
fn rework_is_the_deployment_after_a_failure_in_the_same_lane() {
    let mut staging = change(5, "payments-api", ChangeType::Normal, State::Review, MON);
    staging.environment = "staging".into();
    let histories = vec![
        history(
            change(1, "payments-api", ChangeType::Normal, State::Review, MON),
            Vec::new(),
            vec![
                dep(1, 1, false, "2026-11-23T09:00:00Z", "2026-11-23T09:05:00Z"),
                // A retry that fails again is rework too, and so is the fix after it.
                dep(2, 1, false, "2026-11-23T10:00:00Z", "2026-11-23T10:05:00Z"),
            ],
        ),
        history(
            change(2, "payments-api", ChangeType::Normal, State::Closed, MON),
            Vec::new(),
            vec![
                dep(3, 2, true, "2026-11-23T11:00:00Z", "2026-11-23T11:05:00Z"),
                dep(4, 2, true, "2026-11-23T12:00:00Z", "2026-11-23T12:05:00Z"),
            ],
        ),
        // Another environment's success does not rework production's failure.
        history(
            staging,
            Vec::new(),
            vec![dep(
                5,
                5,
                true,
                "2026-11-23T09:30:00Z",
                "2026-11-23T09:35:00Z",
            )],
        ),
    ];
    let k = compute(&scope(MON, NEXT_MON, None), &histories);
    assert_eq!(k.rework_deployments, 2, "DEP-2 and DEP-3");
    assert_eq!(k.rework_rate, Some(2.0 / 5.0));
    let mut production = scope(MON, NEXT_MON, None);
    production.environment = Some("production".into());
    let p = compute(&production, &histories);
    assert_eq!((p.deployments_succeeded, p.deployments_failed), (2, 2));
    assert_eq!(p.rework_rate, Some(0.5));
    let mut staging_only = production.clone();
    staging_only.environment = Some("staging".into());
    let s = compute(&staging_only, &histories);
    assert_eq!((s.deployments_succeeded, s.rework_deployments), (1, 0));
    // The failure's retry finished outside the period: not this period's rework.
    let later = compute(&scope("2026-11-23T10:06:00Z", NEXT_MON, None), &histories);
    assert_eq!(later.rework_deployments, 1);
}

#[test]
fn days_are_local_calendar_days_even_in_a_dst_week() {
    // Berlin leaves summer time on Sunday 2026-10-25: that day has 25 hours.
    let (from, to) = ("2026-10-22T22:00:00Z", "2026-10-29T23:00:00Z");
    let histories = vec![history(
        change(1, "payments-api", ChangeType::Normal, State::Review, from),
        vec![ev("2026-10-22T22:00:00Z", "opened", "chat")],
        vec![
            // 00:30 CEST on the 25th, and 00:30 CET on the 26th.
            dep(1, 1, false, "2026-10-24T22:00:00Z", "2026-10-24T22:30:00Z"),
            dep(2, 1, true, "2026-10-25T23:00:00Z", "2026-10-25T23:30:00Z"),
        ],
    )];
    let days = daily(&scope(from, to, None), &histories, BERLIN);
    let dates: Vec<String> = days.iter().map(|d| d.date.to_string()).collect();
    assert_eq!(dates.len(), 7, "{dates:?}");
    assert_eq!(dates.first().map(String::as_str), Some("2026-10-23"));
    assert_eq!(dates.last().map(String::as_str), Some("2026-10-29"));
    let on = |date: &str| {
        days.iter()
            .find(|d| d.date.to_string() == date)
            .expect("day")
    };
    assert_eq!(on("2026-10-25").failed, 1);
    let monday = on("2026-10-26");
    // A dry run (the test deployments call no target) is its own part of the stack.
    assert_eq!(
        (monday.succeeded, monday.dry_runs, monday.failed),
        (0, 1, 0)
    );
    // Opened Fri 00:00 local, done Mon 00:30 local: 3 days and 1 hour in UTC instants.
    assert_eq!(monday.lead_time.median_secs, Some(3 * 86_400 + 3600 + 1800));
    let total: usize = days
        .iter()
        .map(|d| d.succeeded + d.dry_runs + d.failed)
        .sum();
    assert_eq!(total, 2);
    assert!(daily(&scope(MON, MON, None), &histories, BERLIN).is_empty());
}

#[test]
fn lead_time_starts_at_the_first_commit_when_it_is_known() {
    let mut pr = change(1, "payments-api", ChangeType::Normal, State::Closed, MON);
    let deployed = vec![dep(
        1,
        1,
        true,
        "2026-11-24T09:00:00Z",
        "2026-11-24T10:00:00Z",
    )];
    let opened = vec![ev(MON, "opened", "github")];
    let from_open = compute(
        &scope(MON, NEXT_MON, None),
        &[history(pr.clone(), opened.clone(), deployed.clone())],
    );
    assert_eq!(from_open.lead_time.median_secs, Some(34 * 3600));
    // The first commit was two days before the PR opened.
    pr.first_commit_at = Some(t("2026-11-21T00:00:00Z"));
    let from_commit = compute(
        &scope(MON, NEXT_MON, None),
        &[history(pr.clone(), opened.clone(), deployed.clone())],
    );
    assert_eq!(from_commit.lead_time.median_secs, Some((48 + 34) * 3600));
    // A commit time after the PR opened (rebased history) does not shorten it.
    pr.first_commit_at = Some(t("2026-11-23T12:00:00Z"));
    let rebased = compute(
        &scope(MON, NEXT_MON, None),
        &[history(pr, opened, deployed)],
    );
    assert_eq!(rebased.lead_time.median_secs, Some(34 * 3600));
}
