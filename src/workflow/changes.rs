//! Commands that change a change: open, approve/reject, cancel, schedule, close.

use chrono::{DateTime, Utc};

use super::context::{Loaded, not_found};
use super::{Actor, Identity, Outcome, Workflow, WorkflowError};
use crate::chat::TimeSpec;
use crate::domain::duration::Span;
use crate::domain::lifecycle::{self, Happening};
use crate::domain::policy::{self, Verdict, Vote};
use crate::domain::{Change, ChangeId, ChangeType, CloseCode, Risk, Source, State};
use crate::store::NewChange;

pub(super) struct OpenRequest {
    pub service: String,
    pub title: String,
    pub env: Option<String>,
    pub change_type: Option<ChangeType>,
    pub risk: Option<Risk>,
    pub duration: Option<Span>,
}

impl Workflow {
    pub(super) async fn open(
        &self,
        actor: &Actor,
        req: OpenRequest,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let service = self.service_named(&req.service)?;
        let environment = match req.env {
            Some(env) if service.environments.contains(&env) => env,
            Some(env) => {
                return Err(WorkflowError::Invalid(format!(
                    "{} has no environment `{env}` (it has: {})",
                    service.name,
                    service.environments.join(", ")
                )));
            }
            None => default_environment(&service.environments),
        };
        let new = NewChange {
            title: req.title.trim().to_string(),
            description: String::new(),
            service: service.name.clone(),
            environment,
            change_type: req.change_type.unwrap_or(ChangeType::Normal),
            risk: req.risk.unwrap_or(Risk::Medium),
            state: State::New,
            requester: actor.name(),
            source: Source::Chat,
            pull_request: None,
            duration: req
                .duration
                .map_or(service.change_duration, Span::as_duration),
            approval_round: 0,
            created_at: now,
            first_commit_at: None,
        };
        let mut tx = self.store.begin().await?;
        let change = tx.insert_change(&new).await?;
        let detail = format!(
            "{} {} change to {}/{}: {}",
            change.risk, change.change_type, change.service, change.environment, change.title
        );
        self.audit(&mut tx, Some(change.id), actor, "opened", detail, now)
            .await?;
        self.show_card(&mut tx, &change, now).await?;
        self.alert_cab_if_emergency(&mut tx, &change, now).await?;
        let loaded = self.load(&mut tx, change.id, now).await?;
        let mut change = loaded.change.clone();
        let happened = lifecycle::advance(&mut change, &self.context(&loaded, now));
        tx.update_change(&change).await?;
        self.audit_happenings(&mut tx, &change, actor, &happened, now)
            .await?;
        tx.commit().await?;
        Ok(self.change_outcome(change, &loaded, happened, now))
    }

    pub(super) async fn vote(
        &self,
        actor: &Actor,
        id: ChangeId,
        approve: bool,
        comment: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let what = if approve { "approve" } else { "reject" };
        let mut tx = self.store.begin().await?;
        let mut loaded = self.load(&mut tx, id, now).await?;
        let change = &loaded.change;
        if !matches!(
            change.state,
            State::Assess | State::Authorize | State::Scheduled
        ) {
            let why = format!("{id} is {}; there is nothing to {what}", change.state);
            return self.refuse(tx, id, actor, what, why, now).await;
        }
        let Some(policy) = policy::select(&self.config.org.policies, change) else {
            let why = format!(
                "{id}: no [[policy]] applies, so nobody can {what} it; add a policy to config"
            );
            return self.refuse(tx, id, actor, what, why, now).await;
        };
        let Some(person) = actor.person() else {
            let why = self.unmapped(actor, &format!("{what} changes"));
            return self.refuse(tx, id, actor, what, why, now).await;
        };
        if !approve && person == change.requester {
            let why = format!(
                "{person} requested {id}; a requester does not reject their own change \
                 (`change cancel {id} REASON…` withdraws it)"
            );
            return self.refuse(tx, id, actor, what, why, now).await;
        }
        if let Err(why) = policy::may_vote(&self.config.org, policy, change, person) {
            return self.refuse(tx, id, actor, what, why, now).await;
        }
        let verdict = if approve {
            Verdict::Approve
        } else {
            Verdict::Reject
        };
        // The same vote again (a second click, a repeated review) with nothing new to say
        // changes nothing and is not recorded twice. The transaction still commits, so the
        // command that sent it counts as applied and a redelivery of it never runs later.
        let comment_text = comment.trim();
        let unchanged = loaded
            .votes
            .iter()
            .rev()
            .find(|v| v.person == person && v.round == change.approval_round)
            .is_some_and(|v| {
                v.verdict == verdict && (comment_text.is_empty() || v.comment == comment_text)
            });
        if unchanged {
            tx.commit().await?;
            let change = loaded.change.clone();
            return Ok(self.change_outcome(change, &loaded, Vec::new(), now));
        }
        let vote = Vote {
            person: person.to_string(),
            verdict,
            comment: comment.trim().to_string(),
            round: change.approval_round,
            at: now,
        };
        tx.insert_vote(id, &vote).await?;
        let action = if approve { "approved" } else { "rejected" };
        self.audit(&mut tx, Some(id), actor, action, vote.comment.clone(), now)
            .await?;
        loaded.votes.push(vote);
        let mut change = loaded.change.clone();
        let happened = lifecycle::advance(&mut change, &self.context(&loaded, now));
        tx.update_change(&change).await?;
        self.audit_happenings(&mut tx, &change, actor, &happened, now)
            .await?;
        tx.commit().await?;
        Ok(self.change_outcome(change, &loaded, happened, now))
    }

    pub(super) async fn cancel(
        &self,
        actor: &Actor,
        id: ChangeId,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let mut tx = self.store.begin().await?;
        let loaded = self.load(&mut tx, id, now).await?;
        let mut change = loaded.change.clone();
        if let Err(why) = self.may_manage(actor, &change, "cancel") {
            return self.refuse(tx, id, actor, "cancel", why, now).await;
        }
        let from = change.state;
        if let Err(e) = change.move_to(State::Canceled, now) {
            return self
                .refuse(tx, id, actor, "cancel", e.to_string(), now)
                .await;
        }
        change.close_code = Some(CloseCode::Canceled);
        change.slot = None;
        tx.update_change(&change).await?;
        let why = if reason.trim().is_empty() {
            "no reason given".to_string()
        } else {
            reason.trim().to_string()
        };
        let happened = vec![Happening::Moved {
            from,
            to: State::Canceled,
            why,
        }];
        self.audit_happenings(&mut tx, &change, actor, &happened, now)
            .await?;
        tx.commit().await?;
        Ok(self.change_outcome(change, &loaded, happened, now))
    }

    pub(super) async fn schedule(
        &self,
        actor: &Actor,
        id: ChangeId,
        at: Option<TimeSpec>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let mut tx = self.store.begin().await?;
        let loaded = self.load(&mut tx, id, now).await?;
        let mut change = loaded.change.clone();
        if let Err(why) = self.may_manage(actor, &change, "schedule") {
            return self.refuse(tx, id, actor, "schedule", why, now).await;
        }
        let at = at
            .map(|t| self.resolve_time(t, self.tz_of(&change.service), now))
            .transpose()?;
        let happened = match lifecycle::book(&mut change, &self.context(&loaded, now), at) {
            Ok(h) => h,
            Err(e) => {
                return self
                    .refuse(tx, id, actor, "schedule", e.to_string(), now)
                    .await;
            }
        };
        tx.update_change(&change).await?;
        self.audit_happenings(&mut tx, &change, actor, &happened, now)
            .await?;
        tx.commit().await?;
        Ok(self.change_outcome(change, &loaded, happened, now))
    }

    pub(super) async fn close(
        &self,
        actor: &Actor,
        id: ChangeId,
        review: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, WorkflowError> {
        let mut tx = self.store.begin().await?;
        let loaded = self.load(&mut tx, id, now).await?;
        let mut change = loaded.change.clone();
        if let Err(why) = self.may_manage(actor, &change, "close") {
            return self.refuse(tx, id, actor, "close", why, now).await;
        }
        if change.state != State::Review {
            let why = format!(
                "{id} is {}; a change is closed with a review after its release (`change cancel` stops one that has not started)",
                change.state
            );
            return self.refuse(tx, id, actor, "close", why, now).await;
        }
        let failed = tx
            .deployments(id)
            .await?
            .last()
            .is_some_and(|d| d.status == crate::domain::release::DeploymentStatus::Failed);
        let code = if failed {
            CloseCode::Unsuccessful
        } else {
            CloseCode::Successful
        };
        change.move_to(State::Closed, now)?;
        change.close_code = Some(code);
        tx.update_change(&change).await?;
        self.audit(&mut tx, Some(id), actor, "review", review.trim(), now)
            .await?;
        let happened = vec![Happening::Moved {
            from: State::Review,
            to: State::Closed,
            why: format!("closed {code}"),
        }];
        self.audit_happenings(&mut tx, &change, actor, &happened, now)
            .await?;
        tx.commit().await?;
        Ok(self.change_outcome(change, &loaded, happened, now))
    }

    /// Requester, the service's owners, and anyone in a group the change's policy names may
    /// cancel, schedule or close it.
    pub(super) fn may_manage(
        &self,
        actor: &Actor,
        change: &Change,
        what: &str,
    ) -> Result<(), String> {
        let org = &self.config.org;
        if actor.is(&change.requester) {
            return Ok(());
        }
        let mut groups: Vec<&str> = Vec::new();
        if let Some(s) = org.service(&change.service) {
            groups.push(&s.owners);
        }
        if let Some(p) = policy::select(&org.policies, change) {
            for (group, _) in policy::required_groups(org, p, change) {
                if !groups.contains(&group) {
                    groups.push(group);
                }
            }
        }
        let person = actor.person().unwrap_or_default();
        if groups.iter().any(|g| org.is_member(person, g)) {
            return Ok(());
        }
        Err(format!(
            "{} may not {what} {}: only its requester ({}) or members of {} may",
            actor.name(),
            change.id,
            change.requester,
            groups.join(", ")
        ))
    }

    /// Why an identity that maps to no configured person may not `what`.
    pub(super) fn unmapped(&self, actor: &Actor, what: &str) -> String {
        let identity = actor.identity();
        let mut why = format!(
            "{identity} is not mapped to any [[person]] in config: it may open and read changes \
             but may not {what}"
        );
        let look_alike = match identity {
            Identity::Github(name) | Identity::Discord(name) => self.config.org.person(name),
            _ => None,
        };
        if let Some(p) = look_alike {
            why.push_str(&format!(
                "; it is not the person {} just because the names match: only a `{}` key in \
                 their [[person]] entry makes it them",
                p.name,
                if matches!(identity, Identity::Github(_)) {
                    "github"
                } else {
                    "discord"
                },
            ));
        }
        why
    }

    pub(super) fn change_outcome(
        &self,
        change: Change,
        loaded: &Loaded,
        happened: Vec<Happening>,
        now: DateTime<Utc>,
    ) -> Outcome {
        let cx = self.context(loaded, now);
        let policy = cx.policy_status(&change);
        let explanation =
            crate::domain::explain::explain(&change, &cx, self.tz_of(&change.service));
        Outcome::Change {
            change,
            policy,
            happened,
            blockers: explanation.blockers,
        }
    }

    pub(super) async fn find_change(&self, id: ChangeId) -> Result<Change, WorkflowError> {
        self.store.change(id).await?.ok_or_else(|| not_found(id))
    }
}

pub(super) fn default_environment(envs: &[String]) -> String {
    envs.iter()
        .find(|e| *e == "production")
        .or_else(|| envs.last())
        .cloned()
        .unwrap_or_else(|| "production".to_string())
}
