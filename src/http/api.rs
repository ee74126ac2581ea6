//! The JSON API under `/api/`: changes (filtered, paged by cursor) and KPIs. Query
//! parameters are checked by name and value; anything unknown or malformed is a 400 that
//! says which parameter and what it takes, in the same JSON as every other error.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Access, AppState, authorize, error, internal};
use crate::domain::limits::{MAX_NAME, single_line};
use crate::domain::{ChangeId, State as ChangeState};
use crate::store::ChangeFilter;
use crate::workflow::{ErrorKind, ParkedDelivery, WorkflowError};

/// The page size of `GET /api/changes` unless `limit` says otherwise, and its ceiling.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// A query string as the parameters it names, each known and given once.
type Params = BTreeMap<String, String>;

/// A malformed request: 400, kind `usage`.
fn usage(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, ErrorKind::Usage, message)
}

/// Reads a query string whose parameters must all be among `known`; `Err` says what is wrong.
fn params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    known: &[&str],
) -> Result<Params, String> {
    let Ok(Query(pairs)) = query else {
        return Err("the query string is not valid URL encoding".into());
    };
    let mut out = Params::new();
    for (key, value) in pairs {
        if !known.contains(&key.as_str()) {
            let key: String = key.chars().take(MAX_NAME).collect();
            return Err(format!(
                "unknown parameter `{}`; this endpoint takes {}",
                key.escape_debug(),
                known.join(", ")
            ));
        }
        if out.contains_key(&key) {
            return Err(format!("`{key}` is given twice"));
        }
        // Query text meets the same limits as chat: no control characters, no megabyte names.
        single_line(&key, &value, MAX_NAME)?;
        out.insert(key, value);
    }
    Ok(out)
}

/// A whole number in `range` (`default` when absent); `Err` says what it takes.
fn number(
    params: &Params,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
    default: i64,
) -> Result<i64, String> {
    match params.get(name).map(|v| v.parse::<i64>()) {
        None => Ok(default),
        Some(Ok(n)) if range.contains(&n) => Ok(n),
        Some(_) => Err(format!(
            "{name} must be a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

/// A workflow refusal as a 400 (the request named something that is not there or not
/// acceptable), an internal error as a 500.
fn workflow_error(e: WorkflowError) -> Response {
    if e.is_user_error() {
        error(StatusCode::BAD_REQUEST, e.kind(), e.to_string())
    } else {
        internal(e)
    }
}

/// `GET /api/changes?state=&service=&requester=&limit=&before=`: newest first, `limit` per
/// page; `next` is the `before` of the next page, `null` on the last.
pub(super) async fn list_changes(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, Access::Read) {
        return *r;
    }
    let known = ["state", "service", "requester", "limit", "before"];
    let q = match params(query, &known) {
        Ok(q) => q,
        Err(why) => return usage(why),
    };
    let parsed_state = match q.get("state").map(|s| s.parse::<ChangeState>()).transpose() {
        Ok(s) => s,
        Err(e) => return usage(format!("state: {e}")),
    };
    let before = match q.get("before").map(|b| b.parse::<ChangeId>()).transpose() {
        Ok(b) => b,
        Err(e) => return usage(format!("before: {e}")),
    };
    let limit = match number(&q, "limit", 1..=MAX_LIMIT, DEFAULT_LIMIT) {
        Ok(n) => n,
        Err(why) => return usage(why),
    };
    let filter = ChangeFilter {
        state: parsed_state,
        service: q.get("service").cloned(),
        requester: q.get("requester").cloned(),
        limit,
        before,
    };
    match state.workflow.changes_page(&filter).await {
        // A requester who is neither configured, nor an outside identity, nor anyone who
        // requested something is a typo: say so rather than answer an empty list. (People
        // who left the config still find their changes.)
        Ok((changes, _))
            if changes.is_empty() && !q.contains_key("before") && unknown_requester(&state, &q) =>
        {
            let r = q.get("requester").map(String::as_str).unwrap_or_default();
            error(
                StatusCode::BAD_REQUEST,
                ErrorKind::NotFound,
                format!(
                    "requester: there is no person `{}` and nobody of that name requested a \
                     change; give a configured person's name, or github:LOGIN / discord:ID",
                    r.escape_debug()
                ),
            )
        }
        Ok((changes, next)) => Json(json!({ "changes": changes, "next": next })).into_response(),
        Err(e) => workflow_error(e),
    }
}

/// Whether the query names a requester that is neither a configured person nor an outside
/// identity (`github:LOGIN`, `discord:ID`).
fn unknown_requester(state: &AppState, q: &Params) -> bool {
    use crate::domain::identity::Identity;
    q.get("requester")
        .is_some_and(|r| match Identity::parse(r) {
            Ok(Identity::Person(name)) => state.workflow.config().org.person(&name).is_none(),
            Ok(_) => false,
            Err(_) => true,
        })
}

/// `GET /api/changes/{id}`: the record, approvals, audit trail, deployments, parked deliveries.
pub(super) async fn get_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, Access::Read) {
        return *r;
    }
    let id: ChangeId = match id.parse() {
        Ok(id) => id,
        Err(e) => return usage(e.to_string()),
    };
    let store = state.workflow.store();
    let change = match store.change(id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            let message = format!("there is no change {id}");
            return error(StatusCode::NOT_FOUND, ErrorKind::NotFound, message);
        }
        Err(e) => return internal(e),
    };
    let (votes, audit, deployments, parked) = match tokio::try_join!(
        store.votes(id),
        store.audit(id),
        store.deployments(id),
        store.parked(Some(id))
    ) {
        Ok(all) => all,
        Err(e) => return internal(e),
    };
    let parked: Vec<ParkedDelivery> = parked.iter().map(Into::into).collect();
    Json(json!({
        "change": change,
        "approvals": votes,
        "audit": audit,
        "deployments": deployments,
        "parked": parked,
    }))
    .into_response()
}

/// `GET /api/metrics?days=N&service=S&environment=E`: the KPIs of the last N days (default 30).
pub(super) async fn get_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, Access::Read) {
        return *r;
    }
    let q = match params(query, &["days", "service", "environment"]) {
        Ok(q) => q,
        Err(why) => return usage(why),
    };
    let max = i64::from(crate::workflow::MAX_DAYS);
    let default = i64::from(crate::workflow::DEFAULT_DAYS);
    let days = match number(&q, "days", 1..=max, default) {
        Ok(n) => u32::try_from(n).unwrap_or(crate::workflow::DEFAULT_DAYS),
        Err(why) => return usage(why),
    };
    let filter = crate::workflow::KpiFilter {
        service: q.get("service").cloned(),
        environment: q.get("environment").cloned(),
    };
    let now = state.clock.now();
    match state.workflow.kpis_of(days, &filter, now).await {
        Ok(kpis) => Json(kpis).into_response(),
        Err(e) => workflow_error(e),
    }
}
