//! `GET /web/changes/{id}`: a change's record, its approvals against the policy, what blocks it
//! (the text of `change explain`), its audit trail, and its deployments with their attempts.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Nav, Reader, bad_request, error_page, internal, render};
use crate::domain::ChangeId;
use crate::domain::duration::Span;
use crate::domain::explain::{fmt_local, fmt_slot};
use crate::domain::policy::Verdict;
use crate::http::AppState;
use crate::workflow::{ChangeRecord, WorkflowError};

#[derive(Template)]
#[template(path = "change.html")]
struct ChangePage {
    nav: Nav,
    id: String,
    title: String,
    state: String,
    zone: String,
    record: Vec<(&'static str, String)>,
    pull_request: Option<(String, String)>,
    unauthorized: bool,
    policy: Option<PolicyView>,
    votes: Vec<VoteRow>,
    blockers: Vec<String>,
    /// What blocks nothing but is worth knowing (`change explain`'s notes).
    notes: Vec<String>,
    /// `booked: …` or `next legal slot: …`, as `change explain` ends.
    slot_line: Option<String>,
    audit: Vec<AuditRow>,
    deployments: Vec<DeploymentRow>,
    attempts: Vec<AuditRow>,
    parked: Vec<String>,
}

struct PolicyView {
    name: String,
    satisfied: bool,
    groups: Vec<GroupRow>,
    rejections: Vec<(String, String)>,
    checks: Vec<(bool, String)>,
}

struct GroupRow {
    group: String,
    needed: u32,
    approved_by: String,
    candidates: String,
    met: bool,
}

struct VoteRow {
    at: String,
    person: String,
    verdict: &'static str,
    round: i64,
    current: bool,
    comment: String,
}

struct AuditRow {
    at: String,
    actor: String,
    surface: String,
    action: String,
    detail: String,
}

struct DeploymentRow {
    id: String,
    status: String,
    dry_run: bool,
    attempts: i64,
    requested_by: String,
    started: String,
    finished: String,
    message: String,
    /// Only an http(s) address becomes a link; anything else is shown as text.
    log_url: Option<(bool, String)>,
}

pub async fn page(_: Reader, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<ChangeId>() else {
        return bad_request("A change id looks like CHG-12.");
    };
    let now = state.clock.now();
    match state.workflow.change_record(id, now).await {
        Ok(record) => render(&view(record)),
        Err(WorkflowError::NotFound(_)) => error_page(
            StatusCode::NOT_FOUND,
            "No such change",
            &format!("There is no change {id}. The forward schedule links to the booked ones."),
        ),
        Err(e) => internal(e),
    }
}

fn view(r: ChangeRecord) -> ChangePage {
    let tz = r.timezone;
    let c = &r.change;
    let state = match c.close_code {
        Some(code) => format!("{} ({code})", c.state),
        None => c.state.to_string(),
    };
    let mut record = vec![
        ("Service", c.service.clone()),
        ("Environment", c.environment.clone()),
        ("Type", c.change_type.to_string()),
        ("Risk", c.risk.to_string()),
        ("State", state.clone()),
        ("Requester", c.requester.clone()),
        ("Source", c.source.to_string()),
        ("Duration", Span(c.duration).to_string()),
        (
            "Slot",
            c.slot
                .map_or_else(|| "not booked".to_string(), |s| fmt_slot(s, tz)),
        ),
        ("Opened", fmt_local(c.created_at, tz)),
        ("Last changed", fmt_local(c.updated_at, tz)),
        ("Approval round", c.approval_round.to_string()),
    ];
    if !c.description.is_empty() {
        record.insert(0, ("Description", c.description.clone()));
    }
    let pull_request = c.pull_request.as_ref().map(|pr| {
        let merged = if pr.merged { "merged" } else { "not merged" };
        let head: String = pr.head_sha.chars().take(7).collect();
        (
            pr.url(),
            format!("{}#{} ({merged}, head {head})", pr.repository, pr.number),
        )
    });
    let policy = r.policy.as_ref().map(|p| PolicyView {
        name: p.policy.clone(),
        satisfied: p.satisfied(),
        groups: p
            .groups
            .iter()
            .map(|g| GroupRow {
                group: g.group.clone(),
                needed: g.needed,
                approved_by: names(&g.approved_by),
                candidates: names(&g.candidates),
                met: g.missing() == 0,
            })
            .collect(),
        rejections: p
            .rejections
            .iter()
            .map(|x| (x.person.clone(), x.reason.clone()))
            .collect(),
        checks: p
            .checks
            .iter()
            .map(|k| (k.passed(), k.describe()))
            .collect(),
    });
    let votes = r
        .votes
        .iter()
        .map(|v| VoteRow {
            at: fmt_local(v.at, tz),
            person: v.person.clone(),
            verdict: match v.verdict {
                Verdict::Approve => "approved",
                Verdict::Reject => "rejected",
                Verdict::Withdraw => "withdrawn",
            },
            round: v.round,
            current: v.round == c.approval_round,
            comment: v.comment.clone(),
        })
        .collect();
    let e = &r.explanation;
    let slot_line = crate::chat::render::slot_line(e, c, tz);
    let audit_row = |a: &crate::store::AuditEntry| AuditRow {
        at: fmt_local(a.at, tz),
        actor: a.actor.clone(),
        surface: a.surface.clone(),
        action: a.action.clone(),
        detail: a.detail.clone(),
    };
    let deployments = r
        .deployments
        .iter()
        .map(|d| DeploymentRow {
            id: d.id.to_string(),
            status: d.status.to_string(),
            dry_run: d.dry_run,
            attempts: d.attempts,
            requested_by: d.requested_by.clone(),
            started: fmt_local(d.started_at, tz),
            finished: d.finished_at.map(|f| fmt_local(f, tz)).unwrap_or_default(),
            message: d.message.clone().unwrap_or_default(),
            log_url: d.log_url.as_ref().map(|u| {
                let linkable = u.starts_with("https://") || u.starts_with("http://");
                (linkable, u.clone())
            }),
        })
        .collect();
    let parked = r
        .parked
        .iter()
        .map(|p| crate::chat::render::parked_text(p, c.id))
        .collect();
    ChangePage {
        nav: Nav::Change,
        id: c.id.to_string(),
        title: c.title.clone(),
        state,
        zone: tz.name().to_string(),
        record,
        pull_request,
        unauthorized: r.unauthorized,
        policy,
        votes,
        blockers: e.blockers.iter().map(ToString::to_string).collect(),
        notes: e.notes.iter().map(ToString::to_string).collect(),
        slot_line,
        audit: r.audit.iter().map(audit_row).collect(),
        deployments,
        attempts: r.attempts.iter().map(audit_row).collect(),
        parked,
    }
}

/// Names as a list, or a dash.
fn names(list: &[String]) -> String {
    if list.is_empty() {
        "—".to_string()
    } else {
        list.join(", ")
    }
}
