//! Catching up with GitHub: what reconciliation found on a pull request (its head, labels,
//! reviews, checks, merge) is compared with the change record, and whatever was missed while
//! changebot was not listening is applied through the same handlers as a webhook delivery
//! would have been, each correction audited as `reconciled`.

use chrono::{DateTime, Utc};

use super::gates::{CheckFacts, ProtectionFacts};
use super::github::{PullRequestFacts, Review, ReviewVerdict};
use super::{Actor, Identity, Surface, Workflow, WorkflowError};
use crate::domain::ChangeId;
use crate::domain::policy::Verdict;

/// A review as GitHub lists it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewFacts {
    pub reviewer: String,
    pub review: Review,
    pub submitted_at: Option<DateTime<Utc>>,
}

/// A pull request as GitHub has it now, with its reviews and the CI reports on its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestState {
    pub pr: PullRequestFacts,
    /// Closed (merged or not).
    pub closed: bool,
    pub reviews: Vec<ReviewFacts>,
    pub checks: Vec<CheckFacts>,
}

impl Workflow {
    /// Audits a correction reconciliation is about to apply.
    async fn reconciled(
        &self,
        id: ChangeId,
        what: String,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let actor = Actor::resolve(&self.config.org, Identity::Changebot, Surface::Github);
        let mut tx = self.store.begin().await?;
        let detail = format!("missed while changebot was not listening: {what}");
        self.audit(&mut tx, Some(id), &actor, "reconciled", detail, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Brings the change of a pull request up to date with GitHub. Returns how many
    /// corrections were applied (0 when nothing was missed).
    pub async fn catch_up(
        &self,
        state: &PullRequestState,
        now: DateTime<Utc>,
    ) -> Result<usize, WorkflowError> {
        let pr = &state.pr;
        let Some(change) = self.store.change_for_pr(&pr.repository, pr.number).await? else {
            return Ok(0);
        };
        let id = change.id;
        let author = pr.author.clone().unwrap_or_default();
        let as_github = |login: &str| {
            Actor::resolve(
                &self.config.org,
                Identity::Github(login.to_string()),
                Surface::Github,
            )
        };
        let mut fixed = 0;
        let short = |sha: &str| sha.chars().take(7).collect::<String>();

        let head = change.pull_request.as_ref().map(|p| p.head_sha.clone());
        if head.as_deref() != Some(pr.head_sha.as_str()) {
            self.reconciled(id, format!("new head {}", short(&pr.head_sha)), now)
                .await?;
            self.pull_request_pushed(&as_github(&author), pr, now)
                .await?;
            fixed += 1;
        }
        let (kind, risk) = super::github::classify(&pr.labels);
        let (kind, risk) = (
            kind.unwrap_or(crate::domain::ChangeType::Normal),
            risk.unwrap_or(crate::domain::Risk::Medium),
        );
        if (kind, risk) != (change.change_type, change.risk) {
            self.reconciled(id, format!("labels now say a {risk} {kind} change"), now)
                .await?;
            self.pull_request_labeled(&as_github(&author), pr, now)
                .await?;
            fixed += 1;
        }
        // Only the checks the change's policy requires matter (changebot's own status and
        // other CI are not evidence for it); of two reports of one check, the newer stands.
        let required = crate::domain::policy::select(&self.config.org.policies, &change)
            .map(|p| p.checks.clone())
            .unwrap_or_default();
        let mut latest: Vec<&CheckFacts> = Vec::new();
        for c in state.checks.iter().filter(|c| {
            c.sha == pr.head_sha
                && required
                    .iter()
                    .any(|r| crate::domain::policy::check_matches(r, &c.report.name))
        }) {
            match latest.iter_mut().find(|l| l.report.name == c.report.name) {
                Some(l) if c.at > l.at => *l = c,
                Some(_) => {}
                None => latest.push(c),
            }
        }
        let stored = self
            .store
            .check_reports(&pr.repository, &pr.head_sha)
            .await?;
        for check in latest {
            let known = stored.iter().any(|r| {
                r.name == check.report.name
                    && r.outcome == check.report.outcome
                    && r.detail == check.report.detail
            });
            if !known {
                let what = format!(
                    "check {} {} on {}",
                    check.report.name,
                    check.report.outcome.as_str(),
                    short(&check.sha)
                );
                self.reconciled(id, what, now).await?;
                self.check_reported(check, now).await?;
                fixed += 1;
            }
        }
        fixed += self.catch_up_reviews(id, state, now).await?;
        let known_merged = change.pull_request.as_ref().is_some_and(|p| p.merged);
        if state.closed && !(pr.merged && known_merged) {
            let what = if pr.merged { "merged" } else { "closed" };
            self.reconciled(id, format!("pull request {what}"), now)
                .await?;
            self.pull_request_closed(&as_github(&author), pr, now)
                .await?;
            fixed += 1;
        }
        Ok(fixed)
    }

    /// Reviews of the current head newer than the reviewer's last vote.
    async fn catch_up_reviews(
        &self,
        id: ChangeId,
        state: &PullRequestState,
        now: DateTime<Utc>,
    ) -> Result<usize, WorkflowError> {
        let Some(change) = self.store.change(id).await? else {
            return Ok(0);
        };
        let head = change.pull_request.as_ref().map(|p| p.head_sha.as_str());
        let votes = self.store.votes(id).await?;
        // The latest review per reviewer (GitHub lists them oldest first).
        let mut latest: Vec<&ReviewFacts> = Vec::new();
        for r in &state.reviews {
            latest.retain(|l| l.reviewer != r.reviewer);
            latest.push(r);
        }
        let mut fixed = 0;
        for r in latest {
            if r.review.commit.as_deref().is_some_and(|c| Some(c) != head) {
                continue;
            }
            let actor = Actor::resolve(
                &self.config.org,
                Identity::Github(r.reviewer.clone()),
                Surface::Github,
            );
            let Some(person) = actor.person() else {
                continue; // an unmapped reviewer's review never counts
            };
            let last = votes
                .iter()
                .filter(|v| v.person == person && v.round == change.approval_round)
                .max_by_key(|v| v.at);
            let wanted = match r.review.verdict {
                ReviewVerdict::Approved => Verdict::Approve,
                ReviewVerdict::ChangesRequested => Verdict::Reject,
                ReviewVerdict::Dismissed => Verdict::Withdraw,
            };
            let newer = match (last, r.submitted_at) {
                (None, _) => wanted != Verdict::Withdraw,
                // A dismissal keeps the review's original time: it takes back whatever vote
                // stands.
                (Some(v), _) if wanted == Verdict::Withdraw => v.verdict != Verdict::Withdraw,
                (Some(v), Some(at)) => at > v.at && v.verdict != wanted,
                (Some(v), None) => v.verdict != wanted,
            };
            // A vote the rules would refuse (someone outside the groups, a change no longer
            // taking votes) is not worth a correction every round.
            let votes_taken = matches!(
                change.state,
                crate::domain::State::Assess
                    | crate::domain::State::Authorize
                    | crate::domain::State::Scheduled
            );
            let may_vote = crate::domain::policy::select(&self.config.org.policies, &change)
                .is_some_and(|p| {
                    crate::domain::policy::may_vote(&self.config.org, p, &change, person).is_ok()
                });
            if !votes_taken || !may_vote {
                continue;
            }
            if !newer {
                continue;
            }
            let what = format!(
                "review {} by github:{}",
                match wanted {
                    Verdict::Approve => "approved",
                    Verdict::Reject => "changes requested",
                    Verdict::Withdraw => "dismissed",
                },
                r.reviewer
            );
            self.reconciled(id, what, now).await?;
            self.pull_request_reviewed(&actor, &r.review, now).await?;
            fixed += 1;
        }
        Ok(fixed)
    }
}

impl Workflow {
    /// A deployment protection rule request GitHub still waits on but changebot never stored
    /// (its delivery was missed): handled as if it had just arrived. `false` when it is known.
    pub async fn catch_up_protection(
        &self,
        request: &ProtectionFacts,
        now: DateTime<Utc>,
    ) -> Result<bool, WorkflowError> {
        if self
            .store
            .gate_request_known(&request.callback_url, &request.environment)
            .await?
        {
            return Ok(false);
        }
        // Only environments changebot gates: deployed through GitHub Actions, or where its
        // rule has asked by webhook before (other waits are people's or timers').
        let gated = self
            .config
            .org
            .service_for_repo(&request.repository)
            .and_then(|s| s.deploy.get(&request.environment))
            .is_some_and(|t| t.github_actions)
            || self
                .store
                .gate_rule_seen(&request.repository, &request.environment)
                .await?;
        if !gated {
            return Ok(false);
        }
        let actor = Actor::resolve(&self.config.org, Identity::Changebot, Surface::Github);
        let mut tx = self.store.begin().await?;
        let detail = format!(
            "missed while changebot was not listening: a deployment protection rule for {} in {} ({})",
            request.repository, request.environment, request.callback_url
        );
        self.audit(&mut tx, None, &actor, "reconciled", detail, now)
            .await?;
        tx.commit().await?;
        self.protection_requested(request, now, true, now).await?;
        Ok(true)
    }
}

impl Workflow {
    /// An open pull request changebot has no change for (its `opened` delivery was missed):
    /// opened now, audited as reconciled. `false` when it has one, or opens none (a draft).
    pub async fn catch_up_opened(
        &self,
        pr: &PullRequestFacts,
        now: DateTime<Utc>,
    ) -> Result<bool, WorkflowError> {
        if pr.draft
            || self
                .store
                .change_for_pr(&pr.repository, pr.number)
                .await?
                .is_some()
        {
            return Ok(false);
        }
        let author = pr.author.clone().unwrap_or_default();
        let actor = Actor::resolve(&self.config.org, Identity::Github(author), Surface::Github);
        let Some(id) = self.pull_request_opened(&actor, pr, now).await? else {
            return Ok(false);
        };
        self.reconciled(
            id,
            format!("pull request {}#{} opened", pr.repository, pr.number),
            now,
        )
        .await?;
        Ok(true)
    }
}
