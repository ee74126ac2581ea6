//! The one path every surface takes: (actor, command, now) → outcome. Each mutating command
//! loads what it needs, lets the pure rules in `domain` decide, and saves the change together
//! with its audit entries in one transaction. Refusals on an existing change are audited too.

mod callbacks;
mod catch_up;
mod changes;
mod context;
mod delivery;
mod deployments;
mod effects;
mod freezes;
mod gates;
mod github;
mod import;
mod jobs;
mod kpis;
mod outcome;
mod protection;
mod queries;
mod reconcile;
mod releases;
mod review;
mod settle;
mod views;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::chat::Command;
use crate::config::Config;
use crate::domain::DomainError;
use crate::store::{Store, StoreError};

pub use crate::domain::identity::{Actor, Identity, Surface};
pub use catch_up::{PullRequestState, ReviewFacts};
pub use delivery::{CallPlan, DeployCall};
pub use deployments::{Delivery, NextStep};
pub use gates::{CheckFacts, DeploymentFacts, ProtectionFacts};
pub use github::{PullRequestFacts, Review, ReviewVerdict};
pub use import::{BACKFILL, Imported, ImportedDeployment, ImportedPull};
pub use kpis::{DEFAULT_DAYS, KpiFilter, KpiReview, MAX_DAYS};
pub use outcome::{CalendarLine, ErrorKind, Outcome, ParkedDelivery};
pub use protection::same_origin;
pub use releases::{MISSED_AFTER, REMINDER_LEAD};
pub use review::REVIEW_DAYS;
pub use settle::{MAX_CHAT_ATTEMPTS, Settled, Settlement, Shown, park_reason};
pub use views::{ChangeRecord, DEFAULT_WEEKS, ForwardSchedule, MAX_WEEKS, ServiceSchedule};

/// Why a command did not succeed. The first three are the user's to fix (exit 1); `Internal`
/// is ours (exit 2) and its details go to the log, not to the user.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

impl WorkflowError {
    pub fn is_user_error(&self) -> bool {
        !matches!(self, WorkflowError::Internal(_))
    }

    /// The work already took effect (see `store::applying`): nothing was done this time.
    pub fn is_already_applied(&self) -> bool {
        matches!(self, WorkflowError::Internal(StoreError::AlreadyApplied(_)))
    }

    /// Its kind, by the name every surface reports it under.
    pub fn kind(&self) -> ErrorKind {
        match self {
            WorkflowError::NotFound(_) => ErrorKind::NotFound,
            WorkflowError::Invalid(_) => ErrorKind::Invalid,
            WorkflowError::Refused(_) => ErrorKind::Refused,
            WorkflowError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<DomainError> for WorkflowError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(m) => WorkflowError::Invalid(m),
            DomainError::Refused(m) => WorkflowError::Refused(m),
        }
    }
}

/// The workflow: the store plus the validated configuration.
#[derive(Clone)]
pub struct Workflow {
    store: Store,
    config: Arc<Config>,
}

impl Workflow {
    pub fn new(store: Store, config: Arc<Config>) -> Self {
        Workflow { store, config }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs one command for `actor` at `now`.
    pub async fn execute(
        &self,
        actor: &Actor,
        command: Command,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        match command {
            Command::Help { topic } => crate::chat::help::help_text(topic.as_deref())
                .map(|text| Outcome::Help { text })
                .map_err(WorkflowError::Invalid),
            Command::Open {
                service,
                title,
                env,
                change_type,
                risk,
                duration,
            } => {
                let request = changes::OpenRequest {
                    service,
                    title,
                    env,
                    change_type,
                    risk,
                    duration,
                };
                self.open(actor, request, now).await
            }
            Command::Show { id } => self.show(id, now).await,
            Command::History { id } => self.history(id).await,
            Command::Explain { id } => self.explain(id, now).await,
            Command::List {
                state,
                service,
                mine,
            } => self.list(actor, state, service, mine).await,
            Command::Approve { id, comment } => self.vote(actor, id, true, comment, now).await,
            Command::Reject { id, reason } => self.vote(actor, id, false, reason, now).await,
            Command::Cancel { id, reason } => self.cancel(actor, id, reason, now).await,
            Command::Schedule { id, at } => self.schedule(actor, id, at, now).await,
            Command::Close { id, review } => self.close(actor, id, review, now).await,
            Command::ReleaseNow { id, reason } => self.release_now(actor, id, reason, now).await,
            Command::ReleaseStatus { id } => self.release_status(id).await,
            Command::ReleaseRetry { id } => self.retry_parked(actor, id, now).await,
            Command::Calendar { days, service } => self.calendar(days, service, now).await,
            Command::FreezeStart {
                name,
                until,
                service,
                reason,
            } => {
                self.freeze_start(actor, name, until, service, reason, now)
                    .await
            }
            Command::FreezeEnd { name } => self.freeze_end(actor, name, now).await,
            Command::FreezeList => self.freeze_list(now).await,
            Command::Metrics {
                days,
                service,
                environment,
            } => self.metrics(days, service, environment, now).await,
        }
    }
}
