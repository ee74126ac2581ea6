//! Pure change-management rules: no I/O, no clock, no async. Time is always passed in.
//!
//! Architecture invariant: nothing here imports tokio, sqlx, axum, serenity, octocrab or
//! reqwest (checked by `tests/architecture.rs`).

pub mod calendar;
pub mod change;
pub mod duration;
pub mod effect;
pub mod explain;
pub mod identity;
pub mod ids;
pub mod kpi;
pub mod lifecycle;
pub mod limits;
pub mod organisation;
pub mod policy;
pub mod release;

pub use change::{Change, ChangeType, CloseCode, Risk, Source, State};
pub use ids::{ChangeId, DeploymentId};

/// Why the rules said no. `Invalid` is malformed input; `Refused` is a well-formed request the
/// rules do not allow (the message says why and, where possible, what would unblock it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
}
