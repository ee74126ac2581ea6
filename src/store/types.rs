//! Records the store reads and writes besides the domain's own types.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::change::PullRequest;
use crate::domain::{ChangeId, ChangeType, Risk, Source, State};

/// A change record before it has an id. It starts without a slot or close code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub title: String,
    pub description: String,
    pub service: String,
    pub environment: String,
    pub change_type: ChangeType,
    pub risk: Risk,
    pub state: State,
    pub requester: String,
    pub source: Source,
    pub pull_request: Option<PullRequest>,
    /// Planned duration (stored in whole seconds).
    pub duration: chrono::Duration,
    pub approval_round: i64,
    /// Also the initial `updated_at`.
    pub created_at: DateTime<Utc>,
    /// When the PR's first commit was authored, when known.
    pub first_commit_at: Option<DateTime<Utc>>,
}

/// One line of the audit trail (append-only: the database refuses UPDATE and DELETE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub change: Option<ChangeId>,
    pub at: DateTime<Utc>,
    /// Who did it: a person, `github:login`, `discord:id`, or `changebot` for the bot itself.
    pub actor: String,
    /// Where it came from: chat, console, discord, github, api, scheduler, …
    pub surface: String,
    /// What happened (a short verb phrase such as `approve`, `state authorize → scheduled`).
    pub action: String,
    /// Why, or any further detail.
    pub detail: String,
}

/// An audit line to append; `change` is `None` for events not tied to a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub change: Option<ChangeId>,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub surface: String,
    pub action: String,
    pub detail: String,
}

/// A freeze started from chat (`freeze start`), while it is not ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFreeze {
    pub id: i64,
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Services it applies to; empty means every service.
    pub services: Vec<String>,
    pub reason: String,
    pub started_by: String,
}

/// A freeze to start from chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFreeze {
    pub name: String,
    pub start: DateTime<Utc>,
    /// Must be after `start` (the database refuses otherwise).
    pub end: DateTime<Utc>,
    /// Empty means every service.
    pub services: Vec<String>,
    pub reason: String,
    pub started_by: String,
}

/// Which changes [`Store::list_changes`](super::Store::list_changes) returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    pub state: Option<State>,
    pub service: Option<String>,
    pub requester: Option<String>,
    /// Page size; 0 (or negative) means 50.
    pub limit: i64,
    /// Keyset paging: only changes with an id below this one (pass the last id of a page).
    pub before: Option<ChangeId>,
}
