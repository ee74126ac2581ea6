//! `GET /web/kpis?days=N&service=S&environment=E`: the KPIs of a period, the same numbers as `metrics` and
//! `GET /api/metrics` (one computation: `Workflow::kpis_of`), and `GET /web/kpis/chart.png` with
//! the same query: the weekly review's chart of that period (days in the service's time zone,
//! UTC for all services).

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Nav, Reader, bad_request, internal, number_param, query, render, service_param};
use crate::chat::render::{percent, spread};
use crate::domain::kpi::Kpis;
use crate::http::AppState;
use crate::report::chart;
use crate::workflow::{DEFAULT_DAYS, KpiFilter, MAX_DAYS};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiQuery {
    days: Option<String>,
    service: Option<String>,
    environment: Option<String>,
}

/// What a KPI page or chart is about.
struct Scope {
    days: u32,
    service: Option<String>,
    environment: Option<String>,
}

impl Scope {
    fn filter(&self) -> KpiFilter {
        KpiFilter {
            service: self.service.clone(),
            environment: self.environment.clone(),
        }
    }

    /// "payments-api", "payments-api in production", "all services in staging".
    fn label(&self) -> String {
        let service = self.service.as_deref().unwrap_or("all services");
        match &self.environment {
            Some(env) => format!("{service} in {env}"),
            None => service.to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "kpis.html")]
struct KpiPage {
    nav: Nav,
    days: u32,
    day_choices: Vec<u32>,
    service: Option<String>,
    service_names: Vec<String>,
    environment: Option<String>,
    environment_names: Vec<String>,
    scope: String,
    from: String,
    to: String,
    sections: Vec<(&'static str, Vec<Line>)>,
    unreviewed: Vec<String>,
}

/// One KPI: what, its value with its unit, and how it is counted.
struct Line {
    name: &'static str,
    value: String,
    note: &'static str,
}

fn line(name: &'static str, value: String, note: &'static str) -> Line {
    Line { name, value, note }
}

pub async fn page(
    _: Reader,
    State(state): State<AppState>,
    q: Result<Query<KpiQuery>, QueryRejection>,
) -> Response {
    let scope = match params(&state, q) {
        Ok(p) => p,
        Err(why) => return bad_request(&why),
    };
    let days = scope.days;
    let kpis = match state
        .workflow
        .kpis_of(days, &scope.filter(), state.clock.now())
        .await
    {
        Ok(k) => k,
        Err(e) => return internal(e),
    };
    let mut day_choices = vec![7, 30, 90, 365];
    if !day_choices.contains(&days) {
        day_choices.push(days);
    }
    day_choices.sort_unstable();
    let services = &state.workflow.config().org.services;
    render(&KpiPage {
        nav: Nav::Kpis,
        days,
        day_choices,
        scope: scope.label(),
        service: scope.service,
        service_names: services.keys().cloned().collect(),
        environment: scope.environment,
        environment_names: environments(&state, None),
        from: kpis.from.format("%Y-%m-%d %H:%M UTC").to_string(),
        to: kpis.to.format("%Y-%m-%d %H:%M UTC").to_string(),
        unreviewed: kpis.unreviewed.iter().map(ToString::to_string).collect(),
        sections: sections(&kpis),
    })
}

/// The environments of `service`, or of every service, each once and sorted.
fn environments(state: &AppState, service: Option<&str>) -> Vec<String> {
    let services = &state.workflow.config().org.services;
    let mut names: Vec<String> = services
        .values()
        .filter(|s| service.is_none_or(|name| s.name == name))
        .flat_map(|s| s.environments.iter().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn sections(k: &Kpis) -> Vec<(&'static str, Vec<Line>)> {
    vec![
        (
            "Delivery",
            vec![
                line(
                    "Deployments succeeded",
                    k.deployments_succeeded.to_string(),
                    "finished in the period, dry runs included",
                ),
                line(
                    "Deployments failed",
                    k.deployments_failed.to_string(),
                    "finished in the period",
                ),
                line(
                    "Deployment frequency",
                    format!("{:.2} per day", k.deployments_per_day),
                    "succeeded deployments per 24 hours",
                ),
                line(
                    "Lead time",
                    spread(&k.lead_time),
                    "first commit (or change opened) to its first succeeded deployment (count in brackets)",
                ),
                line(
                    "Change failure rate",
                    percent(k.change_failure_rate),
                    "failed of finished deployments",
                ),
                line(
                    "Time to recover",
                    spread(&k.recovery),
                    "a failed deployment to the next success on the same service and environment",
                ),
                line(
                    "Unrecovered failures",
                    k.unrecovered_failures.to_string(),
                    "failed deployments with no later success",
                ),
                line(
                    "Rework rate",
                    format!("{} ({})", percent(k.rework_rate), k.rework_deployments),
                    "deployments right after a failed one on the same service and environment (a retry, fix or rollback)",
                ),
            ],
        ),
        (
            "Changes",
            vec![
                line(
                    "Changes opened",
                    k.changes_opened.to_string(),
                    "created in the period",
                ),
                line(
                    "Emergency changes",
                    format!("{} ({})", k.emergency_changes, percent(k.emergency_share)),
                    "share of the changes opened",
                ),
                line(
                    "Changes closed",
                    k.changes_closed.to_string(),
                    "review → closed in the period",
                ),
                line(
                    "Change success rate",
                    format!(
                        "{} ({} successful)",
                        percent(k.change_success_rate),
                        k.changes_closed_successful
                    ),
                    "successful of closed changes",
                ),
                line(
                    "Unauthorized changes",
                    k.unauthorized_changes.to_string(),
                    "flagged in the period",
                ),
                line(
                    "Approval latency",
                    spread(&k.approval_latency),
                    "time in authorize until scheduled",
                ),
            ],
        ),
        (
            "Slots",
            vec![
                line(
                    "Released in the first booked slot",
                    format!(
                        "{} of {} ({})",
                        k.started_in_first_slot,
                        k.booked_releases,
                        percent(k.first_slot_share)
                    ),
                    "releases that started inside the slot first booked",
                ),
                line(
                    "Rebookings",
                    format!(
                        "{} of {} booked changes ({} per change)",
                        k.rebookings,
                        k.changes_booked,
                        k.rebookings_per_change
                            .map_or_else(|| "n/a".to_string(), |r| format!("{r:.2}"))
                    ),
                    "bookings beyond each change's first",
                ),
            ],
        ),
    ]
}

/// The chart of the period as a PNG (drawn on a blocking thread).
pub async fn chart(
    _: Reader,
    State(state): State<AppState>,
    q: Result<Query<KpiQuery>, QueryRejection>,
) -> Response {
    let scope = match params(&state, q) {
        Ok(p) => p,
        Err(why) => return bad_request(&why),
    };
    let days = scope.days;
    let tz = scope
        .service
        .as_deref()
        .and_then(|s| state.workflow.config().org.service(s))
        .map_or(chrono_tz::UTC, |s| s.timezone);
    let series = match state
        .workflow
        .daily(days, &scope.filter(), tz, state.clock.now())
        .await
    {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let title = format!("{}: the last {days} days ({tz})", scope.label());
    let drawn = tokio::task::spawn_blocking(move || chart::render_png(&title, &series)).await;
    match drawn {
        Ok(Ok(png)) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

/// `days`, `service` and `environment` from the query, or what is wrong with them.
fn params(state: &AppState, q: Result<Query<KpiQuery>, QueryRejection>) -> Result<Scope, String> {
    let q = query(q)?;
    let days = number_param("days", q.days.as_deref(), DEFAULT_DAYS, (1, MAX_DAYS))?;
    let service = service_param(state, q.service)?;
    let environment = match q.environment.filter(|e| !e.is_empty()) {
        None => None,
        Some(env) => {
            let known = environments(state, service.as_deref());
            if !known.contains(&env) {
                let shown = if env.chars().count() > 64 || env.chars().any(char::is_control) {
                    "that".to_string()
                } else {
                    format!("`{env}`")
                };
                return Err(format!(
                    "There is no environment {shown} for {}; the environments are: {}.",
                    service.as_deref().unwrap_or("any service"),
                    known.join(", ")
                ));
            }
            Some(env)
        }
    };
    Ok(Scope {
        days,
        service,
        environment,
    })
}
