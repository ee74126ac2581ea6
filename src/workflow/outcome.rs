//! What a command produced, before rendering. Serialized as-is for `--json`, so field names
//! here are a contract (documented in the README).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::explain::{Blocker, Explanation};
use crate::domain::lifecycle::Happening;
use crate::domain::policy::PolicyStatus;
use crate::domain::release::Deployment;
use crate::domain::{Change, ChangeId};
use crate::store::AuditEntry;

/// What went wrong, by one name on every surface: `error.kind` under `--json` and `kind` in
/// the HTTP API's error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The command or request is not well formed (unknown words, flags or parameters).
    Usage,
    /// `--as` names nobody changebot knows.
    UnknownPerson,
    /// What it names does not exist.
    NotFound,
    /// Well formed, but a value is not acceptable.
    Invalid,
    /// The rules (or missing credentials) refuse it.
    Refused,
    /// changebot failed; the log says why.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::UnknownPerson => "unknown_person",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Refused => "refused",
            ErrorKind::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Help {
        text: String,
    },
    /// A single change after a command (open, show, approve, reject, cancel, schedule, close).
    Change {
        change: Change,
        policy: Option<PolicyStatus>,
        happened: Vec<Happening>,
        blockers: Vec<Blocker>,
    },
    History {
        change: Change,
        audit: Vec<AuditEntry>,
    },
    Explain {
        change: Change,
        explanation: Explanation,
    },
    List {
        changes: Vec<Change>,
        /// Those of `changes` flagged as unauthorized (a PR merged before its change was
        /// authorized).
        unauthorized: Vec<ChangeId>,
    },
    Calendar {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        entries: Vec<CalendarLine>,
    },
    Freezes {
        freezes: Vec<FreezeLine>,
    },
    FreezeStarted {
        freeze: FreezeLine,
        /// Booked changes the freeze pushed to a later slot.
        rebooked: Vec<Change>,
    },
    FreezeEnded {
        name: String,
    },
    /// `metrics`: the KPIs of a period.
    Metrics {
        kpis: crate::domain::kpi::Kpis,
    },
    /// `release status` / `release now`: the change, its deployments and every attempt.
    Release {
        change: Change,
        deployments: Vec<Deployment>,
        attempts: Vec<AuditEntry>,
        /// Deliveries that kept failing and wait for `release retry`.
        parked: Vec<ParkedDelivery>,
    },
}

/// An outbox item that kept failing and waits for a person (`release retry CHG-N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedDelivery {
    pub id: i64,
    /// `deploy` or `chat`.
    pub kind: String,
    pub deployment: Option<crate::domain::DeploymentId>,
    pub channel: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub queued_at: DateTime<Utc>,
}

impl From<&crate::store::releases::OutboxItem> for ParkedDelivery {
    fn from(i: &crate::store::releases::OutboxItem) -> Self {
        ParkedDelivery {
            id: i.id,
            kind: i.kind.as_str().to_string(),
            deployment: i.deployment,
            channel: i.channel.clone(),
            attempts: i.attempts,
            last_error: i.last_error.clone(),
            queued_at: i.created_at,
        }
    }
}

/// One line of `calendar`: a window opening, a freeze or a booked change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CalendarLine {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `window`, `freeze` or `change`.
    pub what: &'static str,
    pub name: String,
    pub services: Vec<String>,
    pub change: Option<ChangeId>,
}

/// A freeze as `freeze list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreezeLine {
    pub name: String,
    /// The occurrence in force or next ahead.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Empty: every service.
    pub services: Vec<String>,
    pub reason: String,
    /// `config` or `chat`.
    pub source: &'static str,
    pub recurring: bool,
}
