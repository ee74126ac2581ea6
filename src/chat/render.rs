//! Outcomes → plain-text replies. Every reply about a change starts with
//! `CHG-N · state · service/environment · title`.

use std::fmt::Write as _;

use chrono_tz::Tz;

use crate::domain::explain::{Explanation, fmt_local, fmt_slot};
use crate::domain::kpi::{Kpis, Spread};
use crate::domain::lifecycle::Happening;
use crate::domain::limits::one_line;
use crate::domain::organisation::Organisation;
use crate::domain::policy::PolicyStatus;
use crate::domain::{Change, ChangeId};
use crate::workflow::{CalendarLine, Outcome, ParkedDelivery};

/// Renders an outcome as the reply text.
pub fn render(outcome: &Outcome, org: &Organisation) -> String {
    let mut out = String::new();
    let tz_of = |service: &str| org.service(service).map_or(chrono_tz::UTC, |s| s.timezone);
    match outcome {
        Outcome::Help { text } => out.push_str(text),
        Outcome::Change {
            change,
            policy,
            happened,
            blockers,
        } => {
            let tz = tz_of(&change.service);
            headline(&mut out, change, tz);
            let _ = writeln!(
                out,
                "  {} change, {} risk, {}, requested by {}",
                change.change_type,
                change.risk,
                crate::domain::duration::Span(change.duration),
                change.requester
            );
            for h in happened {
                match h {
                    Happening::Moved { to, why, .. } => {
                        let _ = writeln!(out, "  → {to} ({why})");
                    }
                    Happening::Booked { slot } => {
                        let _ = writeln!(out, "  → booked {}", fmt_slot(*slot, tz));
                    }
                    Happening::Unbooked { why } => {
                        let _ = writeln!(out, "  → booking released ({why})");
                    }
                }
            }
            if let Some(p) = policy {
                policy_line(&mut out, p, change.state.is_terminal());
            }
            if let (Some(slot), false) = (
                change.slot,
                happened
                    .iter()
                    .any(|h| matches!(h, Happening::Booked { .. })),
            ) {
                let _ = writeln!(out, "  slot: {}", fmt_slot(slot, tz));
            }
            if !change.state.is_terminal() {
                for b in blockers {
                    let _ = writeln!(out, "  blocked: {b}");
                }
            }
        }
        Outcome::History { change, audit } => {
            let tz = tz_of(&change.service);
            headline(&mut out, change, tz);
            for e in audit {
                let _ = writeln!(
                    out,
                    "  {}  {} ({})  {}{}{}",
                    fmt_local(e.at, tz),
                    e.actor,
                    e.surface,
                    e.action,
                    if e.detail.is_empty() { "" } else { ": " },
                    one_line(&e.detail)
                );
            }
        }
        Outcome::Explain {
            change,
            explanation,
        } => {
            let tz = tz_of(&change.service);
            headline(&mut out, change, tz);
            if let Some(p) = &explanation.policy {
                policy_line(&mut out, p, change.state.is_terminal());
            }
            if explanation.blockers.is_empty() {
                let _ = writeln!(out, "  nothing blocks it");
            }
            for b in &explanation.blockers {
                let _ = writeln!(out, "  blocked: {b}");
            }
            for n in &explanation.notes {
                let _ = writeln!(out, "  note: {n}");
            }
            if let Some(line) = slot_line(explanation, change, tz) {
                let _ = writeln!(out, "  {line}");
            }
        }
        Outcome::List {
            changes,
            unauthorized,
        } => {
            if changes.is_empty() {
                out.push_str("no changes match");
            }
            for c in changes {
                let tz = tz_of(&c.service);
                out.push_str(&c.headline());
                if let Some(slot) = c.slot.filter(|_| !c.state.is_terminal()) {
                    let _ = write!(out, " · {}", fmt_slot(slot, tz));
                }
                if unauthorized.contains(&c.id) {
                    out.push_str(" · UNAUTHORIZED (merged before it was authorized)");
                }
                out.push('\n');
            }
        }
        Outcome::Calendar { from, to, entries } => {
            let _ = writeln!(
                out,
                "calendar {} → {} ({} entries)",
                from.format("%Y-%m-%d"),
                to.format("%Y-%m-%d"),
                entries.len()
            );
            // A calendar of one service shows everything in that service's zone.
            let mut zones: Vec<Tz> = entries
                .iter()
                .filter_map(|e| e.services.first().and_then(|s| org.service(s)))
                .map(|s| s.timezone)
                .collect();
            zones.dedup();
            let common = match zones.as_slice() {
                [one] => Some(*one),
                _ => org_zone(org),
            };
            for e in entries {
                calendar_line(&mut out, e, org, common);
            }
        }
        Outcome::Freezes { freezes } => {
            if freezes.is_empty() {
                out.push_str("no freezes in force or ahead");
            }
            for f in freezes {
                let scope = if f.services.is_empty() {
                    "all services".to_string()
                } else {
                    f.services.join(", ")
                };
                let tz = zone_of(&f.services, &f.name, org, org_zone(org));
                let _ = write!(out, "{} ({}, {scope})", f.name, f.source);
                if let (Some(s), Some(e)) = (f.start, f.end) {
                    let prefix = if f.recurring { " next" } else { "" };
                    let _ = write!(out, "{prefix} {} → {}", fmt_local(s, tz), fmt_local(e, tz));
                }
                if !f.reason.is_empty() {
                    let _ = write!(out, ": {}", one_line(&f.reason));
                }
                out.push('\n');
            }
        }
        Outcome::FreezeStarted { freeze, rebooked } => {
            let scope = if freeze.services.is_empty() {
                "all services".to_string()
            } else {
                freeze.services.join(", ")
            };
            let tz = freeze.services.first().map_or(chrono_tz::UTC, |s| tz_of(s));
            let until = freeze.end.map(|e| fmt_local(e, tz)).unwrap_or_default();
            let _ = writeln!(
                out,
                "freeze {} started on {scope} until {until}: {}",
                freeze.name,
                one_line(&freeze.reason)
            );
            for c in rebooked {
                let slot = c
                    .slot
                    .map(|s| fmt_slot(s, tz_of(&c.service)))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {} moved to {slot}", c.id);
            }
        }
        Outcome::FreezeEnded { name } => {
            let _ = write!(out, "freeze {name} ended");
        }
        Outcome::Metrics { kpis } => metrics_lines(&mut out, kpis),
        Outcome::Release {
            change,
            deployments,
            attempts,
            parked,
        } => {
            let tz = tz_of(&change.service);
            headline(&mut out, change, tz);
            release_lines(&mut out, deployments, attempts, tz);
            for p in parked {
                let _ = writeln!(out, "  parked: {}", parked_text(p, change.id));
            }
        }
    }
    out.trim_end().to_string()
}

/// How `change explain` ends: the booked slot, or where the change would be booked next.
pub(crate) fn slot_line(explanation: &Explanation, change: &Change, tz: Tz) -> Option<String> {
    match (explanation.booked, explanation.next_slot) {
        (Some(slot), _) => Some(format!("booked: {}", fmt_slot(slot, tz))),
        (None, Some(slot)) if !change.state.is_terminal() => {
            Some(format!("next legal slot: {}", fmt_slot(slot, tz)))
        }
        _ => None,
    }
}

/// A parked delivery of `change`, and how to send it again.
pub(crate) fn parked_text(p: &ParkedDelivery, change: ChangeId) -> String {
    let what = match (&p.deployment, &p.channel) {
        (Some(dep), _) => format!("deployment call of {dep}"),
        (None, Some(ch)) => format!("notice to #{ch}"),
        (None, None) => "notice".to_string(),
    };
    let why = p
        .last_error
        .as_ref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    format!(
        "{what} after {} attempts{why}; `release retry {change}` sends it again",
        p.attempts
    )
}

fn headline(out: &mut String, c: &Change, _tz: Tz) {
    out.push_str(&c.headline());
    if let Some(code) = c.close_code {
        let _ = write!(out, " · {code}");
    }
    out.push('\n');
}

/// `policy normal (pending): payments-owners 0/1`; an ended change's unmet policy is history,
/// not something pending.
fn policy_line(out: &mut String, p: &PolicyStatus, ended: bool) {
    let groups: Vec<String> = p
        .groups
        .iter()
        .map(|g| {
            let who = if g.approved_by.is_empty() {
                String::new()
            } else {
                format!(" ({})", g.approved_by.join(", "))
            };
            format!("{} {}/{}{who}", g.group, g.approved_by.len(), g.needed)
        })
        .collect();
    let verdict = match (p.satisfied(), ended) {
        (true, _) => "satisfied",
        (false, false) => "pending",
        (false, true) => "never satisfied",
    };
    if groups.is_empty() {
        let _ = writeln!(out, "  policy {}: no approval needed", p.policy);
    } else {
        let _ = writeln!(
            out,
            "  policy {} ({verdict}): {}",
            p.policy,
            groups.join(", ")
        );
    }
}

/// The one time zone every configured service shares, if they share one.
fn org_zone(org: &Organisation) -> Option<Tz> {
    let mut zones = org.services.values().map(|s| s.timezone);
    let first = zones.next()?;
    zones.all(|z| z == first).then_some(first)
}

/// The zone to show something in: its first service's, else `common` (the one zone of the
/// whole reply), else a configured freeze's own, else UTC.
fn zone_of(services: &[String], freeze: &str, org: &Organisation, common: Option<Tz>) -> Tz {
    services
        .first()
        .and_then(|s| org.service(s))
        .map(|s| s.timezone)
        .or(common)
        .or_else(|| {
            org.freezes
                .iter()
                .find(|f| f.name == freeze)
                .and_then(|f| match &f.span {
                    crate::domain::calendar::FreezeSpan::Recurring(r) => Some(r.tz),
                    crate::domain::calendar::FreezeSpan::OneOff(_) => None,
                })
        })
        .unwrap_or(chrono_tz::UTC)
}

fn calendar_line(out: &mut String, e: &CalendarLine, org: &Organisation, common: Option<Tz>) {
    let tz = zone_of(&e.services, &e.name, org, common);
    let what = match e.change {
        Some(id) => format!("{id} {}", e.name),
        None => format!("{} {}", e.what, e.name),
    };
    let scope = if e.services.is_empty() {
        "all services".to_string()
    } else {
        e.services.join(", ")
    };
    let _ = writeln!(
        out,
        "  {}  {what} ({scope})",
        fmt_slot(crate::domain::calendar::Interval::new(e.start, e.end), tz)
    );
}

/// `release status`: deployments and their attempts.
pub(crate) fn release_lines(
    out: &mut String,
    deployments: &[crate::domain::release::Deployment],
    attempts: &[crate::store::AuditEntry],
    tz: Tz,
) {
    if deployments.is_empty() {
        out.push_str("  no deployment yet\n");
    }
    for d in deployments {
        let dry = if d.dry_run { " (dry run)" } else { "" };
        let _ = write!(
            out,
            "  {} {}{dry}, started {} by {}",
            d.id,
            d.status,
            fmt_local(d.started_at, tz),
            d.requested_by
        );
        if let Some(f) = d.finished_at {
            let _ = write!(out, ", finished {}", fmt_local(f, tz));
        }
        if let Some(m) = &d.message {
            let _ = write!(out, ": {m}");
        }
        if let Some(u) = &d.log_url {
            let _ = write!(out, " ({u})");
        }
        out.push('\n');
    }
    for a in attempts {
        let _ = writeln!(out, "    {}  {}", fmt_local(a.at, tz), one_line(&a.detail));
    }
}

/// A median alone (`none` when nothing was measured).
fn median(s: &Spread) -> String {
    s.median_secs.map_or_else(|| "none".to_string(), span)
}

/// A 90th percentile alone (`none` when nothing was measured).
fn p90(s: &Spread) -> String {
    s.p90_secs.map_or_else(|| "none".to_string(), span)
}

/// Local days `Mon 2026-11-16 to Sun 2026-11-22 (Europe/Berlin)`.
fn span_of_days(first: chrono::NaiveDate, last: chrono::NaiveDate, tz: Tz) -> String {
    format!(
        "{} to {} ({tz})",
        first.format("%a %Y-%m-%d"),
        last.format("%a %Y-%m-%d")
    )
}

/// The days a chart covers, as its title says them.
pub fn days_span(days: &[crate::domain::kpi::Day], tz: Tz) -> String {
    match (days.first(), days.last()) {
        (Some(f), Some(l)) => span_of_days(f.date, l.date, tz),
        _ => "no days".to_string(),
    }
}

/// The weekly review: this period's KPIs, each with the previous period's value, and the
/// changes still waiting for a post-implementation review (`waiting`: headline and why).
pub fn review(
    name: &str,
    now: &Kpis,
    before: &Kpis,
    tz: chrono_tz::Tz,
    waiting: &[(String, &str)],
) -> String {
    let mut out = String::new();
    let local = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).date_naive();
    let (first, last) = (
        local(now.from),
        local(now.to - chrono::Duration::seconds(1)),
    );
    let _ = writeln!(
        out,
        "{name}: {} against the {} days before",
        span_of_days(first, last, tz),
        (last - first).num_days() + 1
    );
    let _ = writeln!(
        out,
        "  deployments: {} succeeded (was {}), {} failed (was {}) · {:.2}/day (was {:.2}) · failure rate {} (was {})",
        now.deployments_succeeded,
        before.deployments_succeeded,
        now.deployments_failed,
        before.deployments_failed,
        now.deployments_per_day,
        before.deployments_per_day,
        percent(now.change_failure_rate),
        percent(before.change_failure_rate)
    );
    let _ = writeln!(
        out,
        "  lead time: median {} (was {}) · approval latency: median {}, p90 {} (was {}, {})",
        median(&now.lead_time),
        median(&before.lead_time),
        median(&now.approval_latency),
        p90(&now.approval_latency),
        median(&before.approval_latency),
        p90(&before.approval_latency)
    );
    let _ = writeln!(
        out,
        "  recovery: median {} (was {}) · {} unrecovered (was {}) · rework {} (was {})",
        median(&now.recovery),
        median(&before.recovery),
        now.unrecovered_failures,
        before.unrecovered_failures,
        percent(now.rework_rate),
        percent(before.rework_rate)
    );
    let _ = writeln!(
        out,
        "  changes: {} opened (was {}), emergency {} (was {}) · {} closed (was {}), successful {} (was {}) · {} unauthorized (was {})",
        now.changes_opened,
        before.changes_opened,
        percent(now.emergency_share),
        percent(before.emergency_share),
        now.changes_closed,
        before.changes_closed,
        percent(now.change_success_rate),
        percent(before.change_success_rate),
        now.unauthorized_changes,
        before.unauthorized_changes
    );
    let _ = writeln!(
        out,
        "  slots: {} in their first booked slot (was {}) · {} rebookings (was {})",
        percent(now.first_slot_share),
        percent(before.first_slot_share),
        now.rebookings,
        before.rebookings
    );
    if waiting.is_empty() {
        out.push_str("No failed or emergency change is waiting for its review.\n");
    } else {
        let _ = writeln!(
            out,
            "Waiting for a post-implementation review (change close CHG-N --review \"…\"):"
        );
        for (headline, why) in waiting {
            let _ = writeln!(out, "  {headline} ({why})");
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// `metrics`: the KPIs as a compact block, one line per theme.
fn metrics_lines(out: &mut String, k: &Kpis) {
    let scope = match (&k.service, &k.environment) {
        (Some(s), Some(e)) => format!("{s}/{e}"),
        (Some(s), None) => s.clone(),
        (None, Some(e)) => format!("all services/{e}"),
        (None, None) => "all services".to_string(),
    };
    let _ = writeln!(
        out,
        "metrics {} → {} ({} days, {scope})",
        k.from.format("%Y-%m-%d %H:%M UTC"),
        k.to.format("%Y-%m-%d %H:%M UTC"),
        (k.to - k.from).num_days()
    );
    let _ = writeln!(
        out,
        "  deployments: {} succeeded, {} failed · {:.2}/day · failure rate {}",
        k.deployments_succeeded,
        k.deployments_failed,
        k.deployments_per_day,
        percent(k.change_failure_rate)
    );
    let _ = writeln!(out, "  lead time: {}", spread(&k.lead_time));
    let _ = writeln!(
        out,
        "  recovery: {} · {} unrecovered · rework {} ({})",
        spread(&k.recovery),
        k.unrecovered_failures,
        k.rework_deployments,
        percent(k.rework_rate)
    );
    let _ = writeln!(
        out,
        "  changes: {} opened, {} emergency ({}) · {} closed, {} successful ({}) · {} unauthorized",
        k.changes_opened,
        k.emergency_changes,
        percent(k.emergency_share),
        k.changes_closed,
        k.changes_closed_successful,
        percent(k.change_success_rate),
        k.unauthorized_changes
    );
    let _ = writeln!(out, "  approval latency: {}", spread(&k.approval_latency));
    let _ = writeln!(
        out,
        "  slots: {} of {} releases in their first booked slot ({}) · {} rebookings of {} booked changes",
        k.started_in_first_slot,
        k.booked_releases,
        percent(k.first_slot_share),
        k.rebookings,
        k.changes_booked
    );
    let unreviewed: Vec<String> = k.unreviewed.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "  failed or emergency without review: {}",
        if unreviewed.is_empty() {
            "none".to_string()
        } else {
            unreviewed.join(", ")
        }
    );
}

/// How long something took: `median 3h05m, p90 4h10m (12)`, or `none`.
pub(crate) fn spread(s: &crate::domain::kpi::Spread) -> String {
    match (s.median_secs, s.p90_secs) {
        (Some(m), Some(p)) => format!("median {}, p90 {} ({})", span(m), span(p), s.count),
        _ => "none".to_string(),
    }
}

/// A rate or share as a whole percentage (`25%`), `n/a` when there was nothing to divide by.
pub(crate) fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_string(), |r| format!("{:.0}%", r * 100.0))
}

/// Seconds as `45s`, `12m`, `3h05m` or `2d04h`.
pub(crate) fn span(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m:02}m"),
        (d, h, _) => format!("{d}d{h:02}h"),
    }
}
