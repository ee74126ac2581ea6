//! Deployment protection rules: GitHub asks whether a workflow run may deploy to an
//! environment, and changebot answers once through the request's callback URL:
//!
//! - approved when the change is authorized and its booked slot is open (or its release has
//!   started);
//! - rejected, with the reason, when it was rejected, canceled, already released, or there is
//!   no change for the commit and environment;
//! - otherwise held: stored, and answered when the slot opens (the release start answers it)
//!   or as soon as a sweep finds it decided. Marking a request answered and queuing the answer
//!   happen in one transaction, so it is sent once, across restarts and replicas.
//!
//! A `deployment_status` records the outcome of a release made by GitHub Actions, and flags a
//! deployment that ran without changebot's approval (a bypassed rule) as unauthorized.

use chrono::{DateTime, Utc};

use super::effects::NoticeTo;
use super::gates::{DeploymentFacts, ProtectionFacts};
use super::{Actor, Identity, Surface, Workflow, WorkflowError};
use crate::domain::effect::{GateAnswer, Notice, NoticeEvent};
use crate::domain::explain::fmt_slot;
use crate::domain::release::DeploymentStatus;
use crate::domain::{Change, State};
use crate::store::Tx;
use crate::store::gates::{GateRequest, NewGateRequest};
use crate::store::releases::{NewOutbox, OutboxKind};

/// What changebot says to a protection rule request now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Approve(String),
    Reject(String),
    Hold(String),
}

/// Whether `url` is on the same scheme, host and port as `api_url` (credentials and answers go
/// nowhere else).
pub fn same_origin(url: &str, api_url: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(api_url)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

fn short(sha: &str) -> String {
    sha.chars().take(7).collect()
}

impl Workflow {
    fn github_actor(&self, login: &str) -> Actor {
        Actor::resolve(
            &self.config.org,
            Identity::Github(login.to_string()),
            Surface::Github,
        )
    }

    /// A `deployment_protection_rule` request that arrived at `asked_at`: stored, then
    /// answered now or held. A request already stored (a replayed delivery) changes nothing;
    /// with `only_if_new` (reconciliation) a stored one is never reopened.
    pub async fn protection_requested(
        &self,
        req: &ProtectionFacts,
        asked_at: DateTime<Utc>,
        only_if_new: bool,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let actor = self.github_actor("github-actions[bot]");
        let Some(gh) = &self.config.github else {
            return Ok(());
        };
        if self.config.org.service_for_repo(&req.repository).is_none() {
            return Ok(()); // not a repository changebot manages
        }
        if !same_origin(&req.callback_url, &gh.api_url) {
            let why = format!(
                "it asked to be answered at {}, which is not on the configured GitHub API ({}); \
                 nothing was sent",
                req.callback_url, gh.api_url
            );
            let what = format!("deployment protection rule for {}", req.repository);
            return Err(self.refuse_unattached(&actor, &what, why, now).await);
        }
        let mut tx = self.store.begin().await?;
        let change = self.gate_change(&mut tx, req).await?;
        let (stored, fresh) = tx
            .upsert_gate_request(&NewGateRequest {
                callback_url: &req.callback_url,
                environment: &req.environment,
                repository: &req.repository,
                sha: &req.sha,
                pr_number: req.pull_requests.first().copied(),
                installation_id: req.installation_id,
                change: change.as_ref().map(|c| c.id),
                at: asked_at,
                only_if_new,
            })
            .await?;
        if !fresh {
            tx.commit().await?;
            return Ok(());
        }
        let decision = match &change {
            None => Decision::Reject(format!(
                "no open change covers {} in {} (commit {}); open one from its pull request",
                req.repository,
                req.environment,
                short(&req.sha)
            )),
            Some(c) if c.environment != req.environment => Decision::Reject(format!(
                "{} covers {}/{}, not {}; no change covers this deployment",
                c.id, c.service, c.environment, req.environment
            )),
            Some(c) => self.decide(&mut tx, c, &stored, now).await?,
        };
        if let (Decision::Hold(why), Some(c)) = (&decision, &change) {
            let detail = format!(
                "deployment of {} to {} held: {why}",
                short(&req.sha),
                req.environment
            );
            self.audit(&mut tx, Some(c.id), &actor, "gate_held", detail, now)
                .await?;
        }
        self.answer(&mut tx, &stored, change.as_ref(), decision, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The change a request is about: its pull request's, else the one whose head (or merge
    /// commit) is the deployed commit.
    async fn gate_change(
        &self,
        tx: &mut Tx,
        req: &ProtectionFacts,
    ) -> Result<Option<Change>, WorkflowError> {
        for number in &req.pull_requests {
            if let Some(c) = tx.change_for_pr(&req.repository, *number).await? {
                return Ok(Some(c));
            }
        }
        let at_head = tx.changes_at_head(&req.repository, &req.sha).await?;
        Ok(at_head
            .iter()
            .find(|c| c.environment == req.environment)
            .or(at_head.first())
            .cloned())
    }

    /// What to answer for `request` about `change` now.
    async fn decide(
        &self,
        tx: &mut Tx,
        change: &Change,
        request: &GateRequest,
        now: DateTime<Utc>,
    ) -> Result<Decision, WorkflowError> {
        let id = change.id;
        // Only the change's current commit may deploy: a run for an earlier push (whose
        // approvals were reset) is superseded.
        let current = tx
            .changes_at_head(&request.repository, &request.sha)
            .await?
            .iter()
            .any(|c| c.id == id);
        if !current && !change.state.is_terminal() {
            let head = change
                .pull_request
                .as_ref()
                .map_or_else(String::new, |p| short(&p.head_sha));
            return Ok(Decision::Reject(format!(
                "commit {} is not {id}'s current commit ({head}); a newer push superseded it",
                short(&request.sha)
            )));
        }
        match change.state {
            State::Closed | State::Canceled => {
                return Ok(Decision::Reject(format!("{id} is {}", change.state)));
            }
            State::Review => {
                return Ok(Decision::Reject(format!(
                    "{id} was already released; a new deployment needs a new change"
                )));
            }
            State::Implement => {
                return Ok(Decision::Approve(format!("{id} is being released now")));
            }
            _ => {}
        }
        let loaded = self.load(tx, id, now).await?;
        let cx = self.context(&loaded, now);
        let tz = self.tz_of(&change.service);
        if let Some(r) = cx
            .policy_status(&loaded.change)
            .and_then(|s| s.rejections.into_iter().next())
        {
            let reason = if r.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", r.reason)
            };
            return Ok(Decision::Reject(format!(
                "{id} was rejected by {}{reason}",
                r.person
            )));
        }
        let via_actions = self
            .config
            .org
            .service(&change.service)
            .and_then(|s| s.deploy.get(&change.environment))
            .is_some_and(|t| t.github_actions);
        Ok(match (change.state, change.slot) {
            // The workflow deploys: its release start (due now) opens the gate, so the
            // deployment it reports belongs to a started release.
            (State::Scheduled, Some(slot)) if slot.contains(now) && via_actions => {
                Decision::Hold(format!("{id}'s slot is open; its release starts now"))
            }
            (State::Scheduled, Some(slot)) if slot.contains(now) => Decision::Approve(format!(
                "{id} is authorized and its slot {} is open",
                fmt_slot(slot, tz)
            )),
            (State::Scheduled, Some(slot)) => Decision::Hold(format!(
                "{id} is authorized and booked for {}; approved when that slot opens",
                fmt_slot(slot, tz)
            )),
            _ => {
                let explained = crate::domain::explain::explain(&loaded.change, &cx, tz);
                let why: Vec<String> = explained.blockers.iter().map(|b| b.to_string()).collect();
                Decision::Hold(format!(
                    "{id} is not authorized yet: {}",
                    if why.is_empty() {
                        "waiting to be booked".to_string()
                    } else {
                        why.join("; ")
                    }
                ))
            }
        })
    }

    /// Answers a waiting request (once: a request answered already is left alone).
    async fn answer(
        &self,
        tx: &mut Tx,
        request: &GateRequest,
        change: Option<&Change>,
        decision: Decision,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let (approved, why) = match decision {
            Decision::Hold(_) => return Ok(()),
            Decision::Approve(why) => (true, why),
            Decision::Reject(why) => (false, why),
        };
        let link = change.map(|c| {
            format!(
                " — {}/api/changes/{}",
                self.config.server.public_url.trim_end_matches('/'),
                c.id
            )
        });
        let mut comment = format!("changebot: {why}{}", link.unwrap_or_default());
        if comment.chars().count() > GateAnswer::COMMENT_MAX {
            comment = comment.chars().take(GateAnswer::COMMENT_MAX - 1).collect();
            comment.push('…');
        }
        let word = if approved { "approved" } else { "rejected" };
        if !tx
            .answer_gate_request(request.id, word, &comment, now)
            .await?
        {
            return Ok(());
        }
        let answer = GateAnswer {
            repository: request.repository.clone(),
            callback_url: request.callback_url.clone(),
            environment: request.environment.clone(),
            approved,
            comment: comment.clone(),
        };
        let body = serde_json::to_string(&answer)
            .map_err(|e| WorkflowError::Invalid(format!("cannot encode the answer: {e}")))?;
        tx.insert_outbox(
            &NewOutbox {
                kind: OutboxKind::GateAnswer,
                deployment: None,
                change: change.map(|c| c.id),
                channel: Some(&request.repository),
                surface: "github",
                body: &body,
                topic: None,
                parked_item: None,
            },
            now,
        )
        .await?;
        let detail = format!(
            "deployment of {} to {} {word}: {why}",
            short(&request.sha),
            request.environment
        );
        let actor = Self::scheduler_actor();
        self.audit(
            tx,
            change.map(|c| c.id),
            &actor,
            "gate_answered",
            detail,
            now,
        )
        .await?;
        Ok(())
    }

    /// Answers the held requests of `change` that can be answered now (its release started,
    /// it was rejected or canceled).
    pub(super) async fn settle_gates_of(
        &self,
        tx: &mut Tx,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        for request in tx.waiting_gate_requests(change.id).await? {
            if request.environment != change.environment {
                continue;
            }
            let decision = self.decide(tx, change, &request, now).await?;
            self.answer(tx, &request, Some(change), decision, now)
                .await?;
        }
        Ok(())
    }

    /// Answers every held request that can be answered now. Run by `serve` at start and
    /// periodically, so an answer is never stranded (a restart, a rejection, a cancel).
    /// Returns how many were answered.
    pub async fn settle_gates(&self, now: DateTime<Utc>) -> Result<usize, WorkflowError> {
        let waiting = self.store.waiting_gate_changes().await?;
        let mut answered = 0;
        for id in waiting {
            let mut tx = self.store.begin().await?;
            let Some(change) = tx.change(id).await? else {
                continue;
            };
            let before = tx.waiting_gate_requests(id).await?.len();
            self.settle_gates_of(&mut tx, &change, now).await?;
            answered += before - tx.waiting_gate_requests(id).await?.len();
            tx.commit().await?;
        }
        Ok(answered)
    }

    /// A `deployment_status`: the outcome of a release made by GitHub Actions finishes its
    /// deployment; a deployment that ran without changebot's approval is flagged.
    pub async fn deployment_reported(
        &self,
        d: &DeploymentFacts,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let Some(service) = self.config.org.service_for_repo(&d.repository) else {
            return Ok(());
        };
        let finished = matches!(d.state.as_str(), "success" | "failure" | "error");
        if !finished && d.state != "in_progress" {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        let change = tx
            .changes_at_head(&d.repository, &d.sha)
            .await?
            .into_iter()
            .find(|c| c.environment == d.environment);
        let via_actions = service
            .deploy
            .get(&d.environment)
            .is_some_and(|t| t.github_actions);
        // Only a release made by GitHub Actions is finished by GitHub's deployment status (a
        // webhook target reports through its own callback).
        if let Some(change) = change
            .as_ref()
            .filter(|c| c.state == State::Implement && via_actions)
        {
            if finished {
                let running = tx
                    .deployments(change.id)
                    .await?
                    .into_iter()
                    .rev()
                    .find(|dep| dep.status == DeploymentStatus::InProgress && !dep.dry_run);
                if let Some(mut dep) = running {
                    let actor = Actor::deploy_target(&change.service, &change.environment);
                    let message = format!(
                        "GitHub deployment {} {}{}",
                        d.deployment_id,
                        d.state,
                        if d.description.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", d.description)
                        }
                    );
                    self.finish_deployment_by(
                        &actor,
                        &mut tx,
                        &mut dep,
                        d.state == "success",
                        d.log_url.clone(),
                        Some(message),
                        now,
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            return Ok(());
        }
        // Was this deployment let through? Only environments changebot gates are judged: the
        // service deploys them through GitHub Actions, or a protection rule asked before.
        if change.as_ref().is_some_and(|c| c.state == State::Implement) {
            tx.commit().await?;
            return Ok(()); // a release changebot started
        }
        let gated = via_actions || tx.gate_rule_seen(&d.repository, &d.environment).await?;
        let approved = tx
            .gate_requests_for(&d.repository, &d.sha, &d.environment)
            .await?
            .iter()
            .any(|r| r.answer.as_deref() == Some("approved"));
        let key = format!("deployment:{}:{}", d.repository, d.deployment_id);
        if !gated || approved || !tx.mark_delivery_applied(&key, now).await? {
            tx.commit().await?;
            return Ok(());
        }
        let why = format!(
            "GitHub deployment {} of {} to {} ran ({}) without changebot's approval; an \
             administrator may have bypassed the deployment protection rule",
            d.deployment_id,
            short(&d.sha),
            d.environment,
            d.state
        );
        let actor = self.github_actor("github-actions[bot]");
        let id = change.as_ref().map(|c| c.id);
        self.audit(&mut tx, id, &actor, "unauthorized", why.clone(), now)
            .await?;
        let headline = change
            .as_ref()
            .map_or_else(|| d.repository.clone(), Change::headline);
        let cab = NoticeTo {
            surface: "chat",
            channel: "cab",
            notice: Notice {
                event: NoticeEvent::Info,
                change: id,
                text: format!("unauthorized deployment: {headline} — {why}"),
                attachment: None,
            },
            topic: None,
            parked_item: None,
        };
        self.queue_notice(&mut tx, cab, now).await?;
        tx.commit().await?;
        Ok(())
    }
}
