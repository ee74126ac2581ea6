//! History from GitHub: a merged pull request and its deployments imported as a closed change
//! (`changebot backfill`), and the time of a live PR's first commit (reconciliation). The
//! GitHub side (`crate::github::backfill`) only reads; everything is written here.
//!
//! An imported change is written as it happened, not as changebot would have decided it: it
//! was opened when the PR was, merged when the PR was, deployed when GitHub's deployments ran,
//! and it is closed. Its audit entries carry those historical times and the actor
//! [`BACKFILL`], so they are told apart from what changebot saw live. It gets no card and no
//! notices: nobody needs telling about the past.

use chrono::{DateTime, Utc};

use super::changes::default_environment;
use super::effects::pr_place;
use super::github::{PullRequestFacts, classify, title_of};
use super::{Workflow, WorkflowError};
use crate::domain::change::PullRequest;
use crate::domain::release::DeploymentStatus;
use crate::domain::{ChangeId, ChangeType, CloseCode, Risk, Source, State};
use crate::store::releases::NewDeployment;
use crate::store::{NewAuditEntry, NewChange, StoreError, Tx};

/// The audit actor of everything backfill writes.
pub const BACKFILL: &str = "backfill";

/// A merged pull request as backfill found it on GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedPull {
    /// The PR (merged, with its merge commit in `merge_sha`).
    pub pr: PullRequestFacts,
    pub opened_at: DateTime<Utc>,
    pub merged_at: DateTime<Utc>,
    /// The earliest author date among its commits.
    pub first_commit_at: Option<DateTime<Utc>>,
    /// Its finished deployments (of the merge commit), in any environment.
    pub deployments: Vec<ImportedDeployment>,
    /// The environment of each of its deployments still under way.
    pub deploying: Vec<String>,
}

/// A finished GitHub deployment of a merged pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedDeployment {
    /// GitHub's id of the deployment.
    pub github_id: u64,
    pub environment: String,
    /// When GitHub created the deployment.
    pub started_at: DateTime<Utc>,
    /// When its final status (success, failure or error) was reported.
    pub finished_at: DateTime<Utc>,
    pub succeeded: bool,
    /// The final status's description, if any.
    pub description: Option<String>,
    /// The final status's log or target URL, if any.
    pub log_url: Option<String>,
}

/// What importing one pull request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// A new closed change with `deployments` deployments; `skipped` names the environments of
    /// deployments left out because the service has no such environment, `other_lanes` those
    /// left out because they went to another of the service's environments than the change's
    /// (one entry per deployment, finished or not).
    Change {
        id: ChangeId,
        deployments: usize,
        skipped: Vec<String>,
        other_lanes: Vec<String>,
    },
    /// A deployment to the environment the change would be filed under is still under way;
    /// nothing was written (a later run imports it).
    Deploying { environment: String },
    /// changebot already has a change for this pull request (live, or from an earlier
    /// backfill); nothing was written.
    Known(Option<ChangeId>),
}

impl Workflow {
    /// Imports a merged pull request as a closed change with its deployments, in one
    /// transaction, unless changebot knows the PR already (any change for its repository and
    /// number, in any state). The import runs under the exactly-once mark
    /// `backfill:OWNER/NAME#N`, so two backfills at once import it once.
    ///
    /// - The change: source github, the PR merged, requested by the PR's author (the person
    ///   mapped to that login, else `github:LOGIN`), type and risk from its labels, created
    ///   when the PR was opened, closed when its last deployment finished (or when it was
    ///   merged, without deployments).
    /// - Environment: one per change, as a live change has (the KPIs file all of a change's
    ///   deployments under it): the production-most of the service's environments the PR was
    ///   deployed to ([`lane`]), or the service's default without any. Only deployments to
    ///   it are imported; those to the service's other environments are reported in
    ///   `other_lanes`, those to environments it does not list in `skipped`. While one to it
    ///   is still under way, nothing is written ([`Imported::Deploying`]).
    /// - Close code: `unsuccessful` when the environment's last deployment failed, else
    ///   `successful` (a merged PR nobody recorded a deployment of counts as done, as a live
    ///   merge does).
    pub async fn import_pull(&self, pull: &ImportedPull) -> Result<Imported, WorkflowError> {
        let pr = &pull.pr;
        if let Some(id) = self
            .store
            .any_change_for_pr(&pr.repository, pr.number)
            .await?
        {
            return Ok(Imported::Known(Some(id)));
        }
        let key = format!("backfill:{}", pr_place(&pr.repository, pr.number));
        match crate::store::applying(key, self.import_in_tx(pull)).await {
            Err(WorkflowError::Internal(StoreError::AlreadyApplied(_))) => {
                let known = self
                    .store
                    .any_change_for_pr(&pr.repository, pr.number)
                    .await?;
                Ok(Imported::Known(known))
            }
            other => other,
        }
    }

    async fn import_in_tx(&self, pull: &ImportedPull) -> Result<Imported, WorkflowError> {
        let pr = &pull.pr;
        let service = self
            .config
            .org
            .service_for_repo(&pr.repository)
            .ok_or_else(|| {
                WorkflowError::NotFound(format!(
                    "no [[service]] lists {} in its repos",
                    pr.repository
                ))
            })?;
        let reached = pull
            .deployments
            .iter()
            .map(|d| &d.environment)
            .chain(&pull.deploying);
        let chosen = lane(&service.environments, reached);
        if let Some(env) = chosen.filter(|env| pull.deploying.contains(env)) {
            return Ok(Imported::Deploying {
                environment: env.clone(),
            });
        }
        let environment =
            chosen.map_or_else(|| default_environment(&service.environments), Clone::clone);
        let listed = |env: &String| service.environments.contains(env);
        let mut skipped = Vec::new();
        let mut other_lanes = Vec::new();
        let mut deployments = Vec::new();
        for d in &pull.deployments {
            if d.environment == environment {
                deployments.push(d);
            } else if listed(&d.environment) {
                other_lanes.push(d.environment.clone());
            } else {
                skipped.push(d.environment.clone());
            }
        }
        for env in &pull.deploying {
            if listed(env) {
                other_lanes.push(env.clone());
            } else {
                skipped.push(env.clone());
            }
        }
        deployments.sort_by_key(|d| (d.finished_at, d.started_at, d.github_id));
        let last = deployments.last();
        let closed_at = last.map_or(pull.merged_at, |d| d.finished_at.max(pull.merged_at));
        let close_code = match last {
            Some(d) if !d.succeeded => CloseCode::Unsuccessful,
            _ => CloseCode::Successful,
        };

        let mut tx = self.store.begin().await?;
        if let Some(id) = tx.any_change_for_pr(&pr.repository, pr.number).await? {
            return Ok(Imported::Known(Some(id)));
        }
        let (kind, risk) = classify(&pr.labels);
        let author = pr.author.as_deref().unwrap_or("ghost");
        let new = NewChange {
            title: title_of(pr),
            description: String::new(),
            service: service.name.clone(),
            environment,
            change_type: kind.unwrap_or(ChangeType::Normal),
            risk: risk.unwrap_or(Risk::Medium),
            state: State::Closed,
            requester: self.github_requester(author),
            source: Source::Github,
            pull_request: Some(PullRequest {
                repository: pr.repository.clone(),
                number: pr.number,
                head_sha: pr.head_sha.clone(),
                merged: true,
            }),
            duration: service.change_duration,
            approval_round: 0,
            created_at: pull.opened_at,
            first_commit_at: pull.first_commit_at,
        };
        let mut change = tx.insert_change(&new).await?;
        change.close_code = Some(close_code);
        change.updated_at = closed_at;
        tx.update_change(&change).await?;
        if let Some(sha) = &pr.merge_sha {
            tx.set_merge_sha(change.id, sha).await?;
        }

        let place = pr_place(&pr.repository, pr.number);
        let mut entries = vec![
            (
                pull.opened_at,
                "opened",
                format!(
                    "{} {} change to {}/{} from pull request {place} by github:{author}: {} \
                     (imported from GitHub)",
                    change.risk,
                    change.change_type,
                    change.service,
                    change.environment,
                    change.title
                ),
            ),
            (pull.merged_at, "merged", place.clone()),
        ];
        for d in &deployments {
            let dep = self.import_deployment(&mut tx, change.id, d).await?;
            let started = format!(
                "{} of {}/{}: GitHub deployment {} (imported)",
                dep.id, change.service, d.environment, d.github_id
            );
            entries.push((d.started_at, "deployment_started", started));
            let mut finished = format!("{} {}", dep.id, dep.status);
            if let Some(m) = &dep.message {
                finished.push_str(&format!(": {m}"));
            }
            entries.push((
                dep.finished_at.unwrap_or(closed_at),
                "deployment_finished",
                finished,
            ));
        }
        entries.push((
            closed_at,
            "transition",
            format!("review → closed: {close_code} (imported from GitHub)"),
        ));
        // In the order it happened (the trail is read in insertion order).
        entries.sort_by_key(|(at, _, _)| *at);
        for (at, action, detail) in entries {
            tx.append_audit(&NewAuditEntry {
                change: Some(change.id),
                at,
                actor: BACKFILL.to_string(),
                surface: "github".to_string(),
                action: action.to_string(),
                detail,
            })
            .await?;
        }
        tx.commit().await?;
        Ok(Imported::Change {
            id: change.id,
            deployments: deployments.len(),
            skipped,
            other_lanes,
        })
    }

    /// Writes one finished deployment as `DEP-N` with its real times and outcome.
    async fn import_deployment(
        &self,
        tx: &mut Tx,
        change: ChangeId,
        d: &ImportedDeployment,
    ) -> Result<crate::domain::release::Deployment, WorkflowError> {
        let finished_at = d.finished_at.max(d.started_at);
        let mut dep = tx
            .insert_deployment(&NewDeployment {
                change,
                dry_run: false,
                requested_by: BACKFILL.to_string(),
                reason: format!("GitHub deployment {} to {}", d.github_id, d.environment),
                started_at: d.started_at,
                deadline_at: finished_at,
            })
            .await?;
        dep.status = if d.succeeded {
            DeploymentStatus::Succeeded
        } else {
            DeploymentStatus::Failed
        };
        dep.attempts = 1;
        dep.finished_at = Some(crate::store::truncate_millis(finished_at));
        dep.log_url = d.log_url.clone();
        dep.message = d.description.clone();
        tx.update_deployment(&dep).await?;
        Ok(dep)
    }

    /// Records when the pull request of change `id` got its first commit, found by
    /// reconciliation. Idempotent: once known, the time stays (returns `false`).
    ///
    /// No audit entry: it is a fact GitHub already holds about the PR's past, not something
    /// anyone did or decided, it moves nothing and is written at most once, so an entry would
    /// be noise in every PR's trail. The change's cards are not touched either.
    pub async fn record_first_commit(
        &self,
        id: ChangeId,
        at: DateTime<Utc>,
    ) -> Result<bool, WorkflowError> {
        let mut tx = self.store.begin().await?;
        let written = tx.set_first_commit(id, at).await?;
        tx.commit().await?;
        Ok(written)
    }
}

/// The environment a change of a PR deployed to `reached` is filed under: `production` when the
/// service has it and the PR went there, else the last of the service's `environments` (they
/// are listed towards production) the PR went to; `None` when it went to none of them.
pub fn lane<'a, 'b>(
    environments: &'a [String],
    reached: impl IntoIterator<Item = &'b String>,
) -> Option<&'a String> {
    let reached: Vec<&str> = reached.into_iter().map(String::as_str).collect();
    let went = |env: &&String| reached.contains(&env.as_str());
    environments
        .iter()
        .find(|env| env.as_str() == "production")
        .filter(went)
        .or_else(|| environments.iter().rev().find(went))
}

#[cfg(test)]
mod tests {
    use super::lane;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_lane_is_production_else_the_last_listed_environment_reached() {
        let envs = names(&["production", "staging", "canary"]);
        let pick = |reached: &[&str]| lane(&envs, &names(reached)).cloned();
        assert_eq!(pick(&["staging", "production"]), Some("production".into()));
        assert_eq!(pick(&["staging", "canary"]), Some("canary".into()));
        assert_eq!(pick(&["staging", "qa"]), Some("staging".into()));
        assert_eq!(pick(&["qa"]), None);
        assert_eq!(pick(&[]), None);
    }
}
