//! Deployments: one attempt by changebot to release a change through its service's target.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::change::word_enum;
use super::{ChangeId, DeploymentId};

word_enum!(
    /// Where a deployment is.
    DeploymentStatus, "deployment status" {
    Pending => "pending",
    InProgress => "in_progress",
    Succeeded => "succeeded",
    Failed => "failed",
});

impl DeploymentStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, DeploymentStatus::Succeeded | DeploymentStatus::Failed)
    }
}

/// A deployment (`DEP-N`) of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub change: ChangeId,
    pub status: DeploymentStatus,
    /// The target has no `url`: recorded and announced, nothing called.
    pub dry_run: bool,
    /// HTTP attempts made so far.
    pub attempts: i64,
    pub requested_by: String,
    /// `slot` for a booked release, else the break-glass reason.
    pub reason: String,
    pub started_at: DateTime<Utc>,
    /// When waiting for the target ends in failure.
    pub deadline_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub log_url: Option<String>,
    pub message: Option<String>,
}
