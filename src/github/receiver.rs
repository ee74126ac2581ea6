//! `POST /webhooks/github`.
//!
//! Answers: 401 unsigned or mis-signed (checked over the raw body, in constant time); 503 when
//! no webhook secret is configured or the inbox cannot store the delivery; 413 over
//! [`BODY_LIMIT`]; 400 for missing `X-GitHub-Event` / `X-GitHub-Delivery` headers or a body of
//! an event changebot uses that it cannot read; 200 for `ping`; 202 once the delivery is
//! stored (`"duplicate": true` for a redelivery, which is processed once); 202 with
//! `"ignored": true` for events and actions changebot does not use (not stored).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::events::{self, Event};
use crate::http::{AppState, RequestBody, error};
use crate::store::inbox::NewDelivery;
use crate::workflow::ErrorKind;

/// GitHub sends payloads of up to 25 MB.
pub const BODY_LIMIT: usize = 25 * 1024 * 1024;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    let Some(intake) = state.github.as_ref() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Refused,
            "the GitHub webhook is not configured: set [github] webhook_secret_env",
        );
    };
    let Some(secret) = intake.secret.as_deref() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Refused,
            "the GitHub webhook secret is not set (see [github] webhook_secret_env)",
        );
    };
    let signature = header(&headers, "x-hub-signature-256");
    if !crate::deploy::signature::verify(secret, &body, signature) {
        state.metrics.webhook("github", "unauthorized");
        return error(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Refused,
            "missing or wrong X-Hub-Signature-256",
        );
    }
    let (Some(event), Some(delivery)) = (
        header(&headers, "x-github-event"),
        header(&headers, "x-github-delivery"),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorKind::Invalid,
            "X-GitHub-Event and X-GitHub-Delivery headers are required",
        );
    };
    if delivery.len() > 100 || delivery.chars().any(|c| c.is_control()) {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorKind::Invalid,
            "X-GitHub-Delivery is not a delivery id",
        );
    }
    if !events::is_used(event) {
        state.metrics.webhook("github", "ignored");
        return (StatusCode::ACCEPTED, Json(json!({ "ignored": true }))).into_response();
    }
    let parsed = match events::parse(event, &body) {
        Ok(parsed) => parsed,
        Err(why) => {
            state.metrics.webhook("github", "malformed");
            return error(StatusCode::BAD_REQUEST, ErrorKind::Invalid, why);
        }
    };
    match parsed {
        Event::Ping => return Json(json!({ "pong": true })).into_response(),
        Event::Ignored => {
            state.metrics.webhook("github", "ignored");
            return (StatusCode::ACCEPTED, Json(json!({ "ignored": true }))).into_response();
        }
        _ => {}
    }
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorKind::Invalid,
            "the body is not UTF-8 JSON",
        );
    };
    let summary = match serde_json::to_string(&parsed) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "could not summarise a GitHub delivery");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Internal,
                "internal error; see the server log",
            );
        }
    };
    let stored = intake
        .inbox
        .accept(NewDelivery {
            delivery_id: delivery.to_string(),
            event: event.to_string(),
            body: text,
            summary,
        })
        .await;
    match stored {
        Ok(new) => {
            state
                .metrics
                .webhook("github", if new { "accepted" } else { "duplicate" });
            (
                StatusCode::ACCEPTED,
                Json(json!({ "delivery": delivery, "duplicate": !new })),
            )
                .into_response()
        }
        Err(why) => {
            tracing::error!(delivery, error = why, "could not store a GitHub delivery");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Internal,
                "the delivery could not be stored; GitHub may redeliver it",
            )
        }
    }
}
