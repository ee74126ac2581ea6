//! `GET /web/schedule?weeks=N&service=S`: the forward schedule of change. For each service, in
//! its own time zone: window openings (marked when a freeze covers them), freezes and booked
//! changes, in time order.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::{Nav, Reader, bad_request, internal, number_param, query, render, service_param};
use crate::domain::explain::fmt_slot;
use crate::http::AppState;
use crate::workflow::{DEFAULT_WEEKS, MAX_WEEKS, ServiceSchedule};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleQuery {
    weeks: Option<String>,
    service: Option<String>,
}

#[derive(Template)]
#[template(path = "schedule.html")]
struct SchedulePage {
    nav: Nav,
    weeks: u32,
    week_choices: Vec<u32>,
    service: Option<String>,
    service_names: Vec<String>,
    from: String,
    to: String,
    services: Vec<ServiceView>,
}

struct ServiceView {
    name: String,
    zone: String,
    rows: Vec<Row>,
}

/// One line of a service's schedule.
struct Row {
    /// The local weekday of its start (`Mon`).
    weekday: String,
    /// Local start–end, as every reply shows a slot.
    when: String,
    /// `window`, `frozen`, `freeze` or `change`: the row's style.
    class: &'static str,
    what: String,
    change: Option<ChangeCell>,
    detail: String,
    /// A tag next to the detail (`frozen`, the change's state).
    tag: Option<(&'static str, String)>,
}

struct ChangeCell {
    id: String,
    title: String,
}

pub async fn page(
    _: Reader,
    State(state): State<AppState>,
    q: Result<Query<ScheduleQuery>, QueryRejection>,
) -> Response {
    let (weeks, service) = match params(&state, q) {
        Ok(p) => p,
        Err(why) => return bad_request(&why),
    };
    let now = state.clock.now();
    let schedule = match state
        .workflow
        .forward_schedule(weeks, service.as_deref(), now)
        .await
    {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let mut week_choices = vec![1, 2, DEFAULT_WEEKS, 8, MAX_WEEKS];
    if !week_choices.contains(&weeks) {
        week_choices.push(weeks);
    }
    week_choices.sort_unstable();
    week_choices.dedup();
    let page = SchedulePage {
        nav: Nav::Schedule,
        weeks,
        week_choices,
        service,
        service_names: state
            .workflow
            .config()
            .org
            .services
            .keys()
            .cloned()
            .collect(),
        from: utc(schedule.from),
        to: utc(schedule.to),
        services: schedule.services.iter().map(service_view).collect(),
    };
    render(&page)
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn service_view(s: &ServiceSchedule) -> ServiceView {
    let tz = s.timezone;
    // (start, order on ties: windows, freezes, changes)
    let mut rows: Vec<(DateTime<Utc>, u8, Row)> = Vec::new();
    for o in &s.agenda.openings {
        let (class, tag, detail) = match (o.covered, o.frozen_by.is_empty()) {
            (true, _) => (
                "frozen",
                Some(("bad", "frozen".to_string())),
                format!("no changes: {}", o.frozen_by.join(", ")),
            ),
            (false, false) => (
                "window",
                Some(("warn", "partly frozen".to_string())),
                format!("in part: {}", o.frozen_by.join(", ")),
            ),
            (false, true) => ("window", None, String::new()),
        };
        rows.push((
            o.slot.start,
            0,
            Row {
                weekday: weekday(o.slot.start, tz),
                when: fmt_slot(o.slot, tz),
                class,
                what: format!("window {}", o.window),
                change: None,
                detail,
                tag,
            },
        ));
    }
    for f in &s.agenda.freezes {
        let source = match s.started_by.get(&f.name) {
            Some(who) => format!("started from chat by {who}"),
            None => "configured".to_string(),
        };
        let detail = if f.reason.is_empty() {
            source
        } else {
            format!("{} ({source})", f.reason)
        };
        rows.push((
            f.slot.start,
            1,
            Row {
                weekday: weekday(f.slot.start, tz),
                when: fmt_slot(f.slot, tz),
                class: "freeze",
                what: format!("freeze {}", f.name),
                change: None,
                detail,
                tag: None,
            },
        ));
    }
    for c in &s.changes {
        let Some(slot) = c.slot else { continue };
        rows.push((
            slot.start,
            2,
            Row {
                weekday: weekday(slot.start, tz),
                when: fmt_slot(slot, tz),
                class: "change",
                what: String::new(),
                change: Some(ChangeCell {
                    id: c.id.to_string(),
                    title: c.title.clone(),
                }),
                detail: format!("{}, {} risk, {}", c.environment, c.risk, c.change_type),
                tag: Some(("ok", c.state.to_string())),
            },
        ));
    }
    rows.sort_by_key(|(start, order, _)| (*start, *order));
    ServiceView {
        name: s.service.clone(),
        zone: tz.name().to_string(),
        rows: rows.into_iter().map(|(_, _, row)| row).collect(),
    }
}

/// The local weekday of `t` in `tz` (`Mon`).
fn weekday(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%a").to_string()
}

/// `weeks` and `service` from the query, or what is wrong with them.
fn params(
    state: &AppState,
    q: Result<Query<ScheduleQuery>, QueryRejection>,
) -> Result<(u32, Option<String>), String> {
    let q = query(q)?;
    let weeks = number_param("weeks", q.weeks.as_deref(), DEFAULT_WEEKS, (1, MAX_WEEKS))?;
    Ok((weeks, service_param(state, q.service)?))
}
