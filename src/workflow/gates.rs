//! GitHub evidence and gates in the workflow: CI reports on a commit move the changes whose
//! policy requires those checks; deployment statuses record what GitHub Actions deployed.
//! (Deployment protection rules are in `protection.rs`.)

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::github::pre_release;
use super::{Actor, Identity, Surface, Workflow, WorkflowError};
use crate::domain::policy::{self, CheckReport};

/// A CI report on a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckFacts {
    pub repository: String,
    pub sha: String,
    pub report: CheckReport,
    /// When GitHub says it happened (a late, older report never overwrites a newer one).
    pub at: Option<DateTime<Utc>>,
}

/// GitHub asking whether a workflow run may deploy to an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionFacts {
    pub repository: String,
    pub environment: String,
    pub sha: String,
    pub callback_url: String,
    /// The pull requests of the run (usually none or one).
    pub pull_requests: Vec<i64>,
    pub installation_id: Option<i64>,
}

/// A deployment's status changed (a deployment made by GitHub Actions or anyone else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentFacts {
    pub repository: String,
    pub environment: String,
    pub sha: String,
    pub deployment_id: i64,
    /// `queued`, `in_progress`, `success`, `failure`, `error`, `inactive`, …
    pub state: String,
    pub description: String,
    pub log_url: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

impl Workflow {
    /// Who records CI evidence in the audit trail: changebot, on the GitHub surface.
    fn evidence_actor(&self) -> Actor {
        Actor::resolve(&self.config.org, Identity::Changebot, Surface::Github)
    }

    /// CI reported on a commit. The report is kept (a later push starts with none); changes
    /// whose head it is and whose policy requires that check are audited and moved as far as
    /// their rules now allow (authorized when the last required check turns green, back to
    /// `authorize` when a required check turns red before the release).
    pub async fn check_reported(
        &self,
        check: &CheckFacts,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        if self
            .config
            .org
            .service_for_repo(&check.repository)
            .is_none()
        {
            return Ok(());
        }
        let report: &CheckReport = &check.report;
        let mut tx = self.store.begin().await?;
        let at = check.at.unwrap_or(now);
        if !tx
            .record_check(&check.repository, &check.sha, report, at)
            .await?
        {
            tx.commit().await?;
            return Ok(());
        }
        let actor = self.evidence_actor();
        let short: String = check.sha.chars().take(7).collect();
        for change in tx.changes_at_head(&check.repository, &check.sha).await? {
            let head = change.pull_request.as_ref().map(|p| p.head_sha.as_str());
            let required = policy::select(&self.config.org.policies, &change).is_some_and(|p| {
                p.checks
                    .iter()
                    .any(|c| policy::check_matches(c, &report.name))
            });
            if !required || head != Some(check.sha.as_str()) || !pre_release(change.state) {
                continue;
            }
            let detail = format!(
                "check {} {} ({}) on {short}",
                report.name,
                report.outcome.as_str(),
                report.detail
            );
            self.audit(&mut tx, Some(change.id), &actor, "check", detail, now)
                .await?;
            tx.touch_card(change.id, now);
            self.advance_in(&mut tx, change.id, &actor, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
