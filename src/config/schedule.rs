//! `[[window]]`, `[[freeze]]` and `[[announcement]]`: cron, time zones, durations and times.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::domain::calendar::{
    CalendarError, CronExpr, Freeze, FreezeSpan, Interval, Recurrence, Window, parse_timezone,
};
use crate::domain::duration::Span;

use super::people::check_name;
use super::raw::{RawAnnouncement, RawFreeze, RawWindow, Text, TimeText};
use super::read::{Declared, Section};
use super::report::Ctx;
use super::settings::Channels;
use super::{Announcement, AnnouncementKind};

pub fn windows(ctx: &mut Ctx<'_>, raw: &Section<RawWindow>) -> BTreeMap<String, Window> {
    let mut out = BTreeMap::new();
    let mut seen = BTreeMap::new();
    for w in &raw.entries {
        let keep = check_name(ctx, "window", &w.name, &mut seen);
        let label = format!("window {}", w.name.get_ref());
        let cron = cron(ctx, &label, &w.cron);
        let duration = duration(ctx, &label, "duration", &w.duration);
        let tz = timezone(ctx, &label, w.timezone.as_ref());
        if let (true, Some(cron), Some(duration), Some(tz)) = (keep, cron, duration, tz) {
            let name = w.name.get_ref().clone();
            let recurrence = Recurrence { cron, duration, tz };
            out.insert(name.clone(), Window { name, recurrence });
        }
    }
    out
}

pub fn freezes(ctx: &mut Ctx<'_>, raw: &Section<RawFreeze>, services: &Declared) -> Vec<Freeze> {
    let mut out = Vec::new();
    let mut seen = BTreeMap::new();
    for f in &raw.entries {
        let keep = check_name(ctx, "freeze", &f.name, &mut seen);
        let label = format!("freeze {}", f.name.get_ref());
        let span = freeze_span(ctx, &label, f);
        let mut names = Vec::new();
        for s in &f.services {
            if !services.resolves(s.get_ref()) {
                ctx.error_at(
                    s,
                    format!("{label}: service `{}` is not a [[service]]", s.get_ref()),
                );
            } else if !names.contains(s.get_ref()) {
                names.push(s.get_ref().clone());
            }
        }
        if let (true, Some(span)) = (keep, span) {
            out.push(Freeze {
                name: f.name.get_ref().clone(),
                span,
                services: names,
                reason: f.reason.clone(),
            });
        }
    }
    out
}

fn freeze_span(ctx: &mut Ctx<'_>, label: &str, f: &RawFreeze) -> Option<FreezeSpan> {
    let one_off = f.start.is_some() || f.end.is_some();
    let recurring = f.cron.is_some() || f.duration.is_some() || f.timezone.is_some();
    match (one_off, recurring) {
        (true, true) => {
            ctx.error_at(
                &f.name,
                format!(
                    "{label}: give either start + end (one-off) or cron + duration + timezone \
                     (recurring), not both"
                ),
            );
            None
        }
        (false, false) => {
            ctx.error_at(
                &f.name,
                format!(
                    "{label}: needs start + end (one-off) or cron + duration + timezone (recurring)"
                ),
            );
            None
        }
        (true, false) => {
            let start = f.start.as_ref().and_then(|s| time(ctx, label, "start", s));
            let end = f.end.as_ref().and_then(|e| time(ctx, label, "end", e));
            match (&f.start, &f.end) {
                (Some(at), None) => ctx.error_at(at, format!("{label}: start needs an end")),
                (None, Some(at)) => ctx.error_at(at, format!("{label}: end needs a start")),
                _ => {}
            }
            let (start, end) = (start?, end?);
            if end <= start {
                if let Some(at) = &f.end {
                    ctx.error_at(at, format!("{label}: end {end} is not after start {start}"));
                }
                return None;
            }
            Some(FreezeSpan::OneOff(Interval::new(start, end)))
        }
        (false, true) => {
            let cron = match &f.cron {
                Some(c) => cron(ctx, label, c),
                None => {
                    ctx.error_at(&f.name, format!("{label}: a recurring freeze needs cron"));
                    None
                }
            };
            let duration = match &f.duration {
                Some(d) => duration(ctx, label, "duration", d),
                None => {
                    ctx.error_at(
                        &f.name,
                        format!("{label}: a recurring freeze needs duration"),
                    );
                    None
                }
            };
            let tz = timezone(ctx, label, f.timezone.as_ref());
            Some(FreezeSpan::Recurring(Recurrence {
                cron: cron?,
                duration: duration?,
                tz: tz?,
            }))
        }
    }
}

pub fn announcements(
    ctx: &mut Ctx<'_>,
    raw: &Section<RawAnnouncement>,
    channels: &Channels,
) -> Vec<Announcement> {
    let mut out = Vec::new();
    let mut seen = BTreeMap::new();
    for a in &raw.entries {
        let keep = check_name(ctx, "announcement", &a.name, &mut seen);
        let label = format!("announcement {}", a.name.get_ref());
        let cron = cron(ctx, &label, &a.cron);
        let tz = timezone(ctx, &label, a.timezone.as_ref());
        channels.check(ctx, &a.channel, &label);
        let what = AnnouncementKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == a.what.get_ref());
        if what.is_none() {
            let kinds: Vec<&str> = AnnouncementKind::ALL.iter().map(|k| k.as_str()).collect();
            ctx.error_at(
                &a.what,
                format!(
                    "{label}: what = `{}` is not one of: {}",
                    a.what.get_ref(),
                    kinds.join(", ")
                ),
            );
        }
        if let (true, Some(cron), Some(tz), Some(what)) = (keep, cron, tz, what) {
            out.push(Announcement {
                name: a.name.get_ref().clone(),
                cron,
                tz,
                channel: a.channel.get_ref().clone(),
                what,
            });
        }
    }
    out
}

/// A 5-field cron expression, reported at its value.
pub fn cron(ctx: &mut Ctx<'_>, label: &str, at: &Text) -> Option<CronExpr> {
    match CronExpr::parse(at.get_ref()) {
        Ok(c) => Some(c),
        Err(CalendarError::BadCron { expr, reason }) => {
            ctx.error_at(at, format!("{label}: bad cron `{expr}`: {reason}"));
            None
        }
        Err(e) => {
            ctx.error_at(at, format!("{label}: {e}"));
            None
        }
    }
}

/// An IANA time zone; absent means UTC.
pub fn timezone(ctx: &mut Ctx<'_>, label: &str, at: Option<&Text>) -> Option<Tz> {
    let Some(at) = at else { return Some(Tz::UTC) };
    match parse_timezone(at.get_ref()) {
        Ok(tz) => Some(tz),
        Err(e) => {
            ctx.error_at(at, format!("{label}: {e}"));
            None
        }
    }
}

/// A duration such as `90s`, `15m`, `3h`, `2d`.
pub fn duration(ctx: &mut Ctx<'_>, label: &str, key: &str, at: &Text) -> Option<Duration> {
    match at.get_ref().parse::<Span>() {
        Ok(span) => Some(span.as_duration()),
        Err(e) => {
            ctx.error_at(at, format!("{label}: {key}: {e}"));
            None
        }
    }
}

fn time(
    ctx: &mut Ctx<'_>,
    label: &str,
    key: &str,
    at: &toml::Spanned<TimeText>,
) -> Option<DateTime<Utc>> {
    let text = &at.get_ref().0;
    match DateTime::parse_from_rfc3339(text.trim()) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            ctx.error_at(
                at,
                format!(
                    "{label}: {key} `{text}` is not an RFC 3339 time with an offset \
                     (e.g. 2026-12-18T00:00:00+01:00)"
                ),
            );
            None
        }
    }
}

/// `[scheduler]`: tick, lease and renew, all optional. A lease must outlive one renewal
/// interval plus one renewal attempt (which may take up to one interval), or a holder that is
/// alive could lose its work to another process.
pub fn scheduler(ctx: &mut Ctx<'_>, raw: &super::raw::RawScheduler) -> super::SchedulerConfig {
    let mut out = super::SchedulerConfig::default();
    if let Some(t) = raw
        .tick
        .as_ref()
        .and_then(|t| duration(ctx, "scheduler", "tick", t))
    {
        out.tick = t;
    }
    if let Some(l) = raw
        .lease
        .as_ref()
        .and_then(|l| duration(ctx, "scheduler", "lease", l))
    {
        out.lease = l;
    }
    if let Some(r) = raw
        .renew
        .as_ref()
        .and_then(|r| duration(ctx, "scheduler", "renew", r))
    {
        out.renew = Some(r);
    }
    let renew = chrono::Duration::from_std(out.renew_every()).unwrap_or(out.lease);
    let at = raw.lease.as_ref().or(raw.renew.as_ref());
    if out.lease < Duration::seconds(1) {
        let message = format!(
            "scheduler: lease `{}` is too short; use at least 1s (default 6s)",
            show(out.lease)
        );
        match at {
            Some(at) => ctx.error_at(at, message),
            None => ctx.error(None, message),
        }
    } else if out.lease <= renew * 2 {
        let message = format!(
            "scheduler: lease `{}` cannot outlive one renewal interval ({}) plus one renewal \
             attempt (up to {}): make lease longer than {} or renew shorter than {}",
            show(out.lease),
            show(renew),
            show(renew),
            show(renew * 2),
            show(out.lease / 2),
        );
        match at {
            Some(at) => ctx.error_at(at, message),
            None => ctx.error(None, message),
        }
    }
    out
}

/// A duration as config writes it, to the millisecond when it is not whole seconds.
fn show(d: Duration) -> String {
    if d.num_milliseconds() % 1000 == 0 {
        crate::domain::duration::Span(d).to_string()
    } else {
        format!("{}ms", d.num_milliseconds())
    }
}
