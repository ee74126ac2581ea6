//! Pull requests as change records: what GitHub events do to a change. The GitHub integration
//! (`crate::github`) turns deliveries into these calls; every decision is made here, through
//! the same rules and audit trail as every other surface.
//!
//! Every handler is idempotent: a delivery processed twice (a crash between processing and
//! marking it done) changes nothing the second time.

use chrono::{DateTime, Utc};

use super::changes::default_environment;
use super::effects::{NoticeTo, pr_place};
use super::{Actor, Outcome, Workflow, WorkflowError};
use crate::chat::render::render;
use crate::domain::change::PullRequest;
use crate::domain::effect::{Notice, NoticeEvent};
use crate::domain::lifecycle::{self, Happening};
use crate::domain::limits::MAX_TITLE;
use crate::domain::policy::{Verdict, Vote};
use crate::domain::{Change, ChangeId, ChangeType, Risk, Source, State};
use crate::store::{NewChange, Tx};

/// What changebot needs to know about a pull request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PullRequestFacts {
    /// `owner/name`.
    pub repository: String,
    /// The author's login (the requester of the PR's change).
    #[serde(default)]
    pub author: Option<String>,
    pub number: i64,
    pub title: String,
    pub head_sha: String,
    pub draft: bool,
    pub merged: bool,
    pub labels: Vec<String>,
    /// The commit a merged PR became on its base branch.
    #[serde(default)]
    pub merge_sha: Option<String>,
}

/// A review of a pull request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Review {
    pub repository: String,
    pub number: i64,
    pub verdict: ReviewVerdict,
    /// The commit reviewed.
    pub commit: Option<String>,
    pub comment: String,
}

/// A review's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReviewVerdict {
    Approved,
    ChangesRequested,
    Dismissed,
}

/// Type and risk from `change:…` and `risk:…` labels (the last of each kind wins).
pub(super) fn classify(labels: &[String]) -> (Option<ChangeType>, Option<Risk>) {
    let mut kind = None;
    let mut risk = None;
    for label in labels {
        let label = label.trim().to_ascii_lowercase();
        if let Some(t) = label.strip_prefix("change:") {
            kind = t.parse().ok().or(kind);
        } else if let Some(r) = label.strip_prefix("risk:") {
            risk = r.parse().ok().or(risk);
        }
    }
    (kind, risk)
}

/// A PR title as a change title: one line, within the title limit.
pub(super) fn title_of(pr: &PullRequestFacts) -> String {
    let clean: String = pr
        .title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    let clean = if clean.is_empty() {
        format!("{} pull request #{}", pr.repository, pr.number)
    } else {
        clean.to_string()
    };
    if clean.chars().count() <= MAX_TITLE {
        clean
    } else {
        let mut cut: String = clean.chars().take(MAX_TITLE - 1).collect();
        cut.push('…');
        cut
    }
}

impl Workflow {
    /// The requester of a PR's change: its author (as a person when mapped), whoever sent the
    /// event that opened the change.
    fn requester_of(&self, pr: &PullRequestFacts, sender: &Actor) -> String {
        match &pr.author {
            Some(login) => self.github_requester(login),
            None => sender.name(),
        }
    }

    /// A GitHub login as a requester: the person whose `[[person]] github` it is, else
    /// `github:LOGIN`.
    pub(super) fn github_requester(&self, login: &str) -> String {
        Actor::resolve(
            &self.config.org,
            super::Identity::Github(login.to_string()),
            super::Surface::Github,
        )
        .name()
    }

    /// A PR was opened, reopened or marked ready for review: it opens a change for the
    /// service that owns the repository (drafts wait). Returns the change, if there is one.
    pub async fn pull_request_opened(
        &self,
        actor: &Actor,
        pr: &PullRequestFacts,
        now: DateTime<Utc>,
    ) -> Result<Option<ChangeId>, WorkflowError> {
        let Some(service) = self.config.org.service_for_repo(&pr.repository) else {
            return Ok(None);
        };
        if pr.draft {
            return Ok(None);
        }
        // A redelivered or repeated event finds its change without taking a write turn.
        if let Some(existing) = self.store.change_for_pr(&pr.repository, pr.number).await? {
            return Ok(Some(existing.id));
        }
        let mut tx = self.store.begin().await?;
        if let Some(existing) = tx.change_for_pr(&pr.repository, pr.number).await? {
            tx.commit().await?;
            return Ok(Some(existing.id));
        }
        let (kind, risk) = classify(&pr.labels);
        let new = NewChange {
            title: title_of(pr),
            description: String::new(),
            service: service.name.clone(),
            environment: default_environment(&service.environments),
            change_type: kind.unwrap_or(ChangeType::Normal),
            risk: risk.unwrap_or(Risk::Medium),
            state: State::New,
            requester: self.requester_of(pr, actor),
            source: Source::Github,
            pull_request: Some(PullRequest {
                repository: pr.repository.clone(),
                number: pr.number,
                head_sha: pr.head_sha.clone(),
                merged: pr.merged,
            }),
            duration: service.change_duration,
            approval_round: 0,
            created_at: now,
            first_commit_at: None,
        };
        let change = tx.insert_change(&new).await?;
        let detail = format!(
            "{} {} change to {}/{} from pull request {}: {}",
            change.risk,
            change.change_type,
            change.service,
            change.environment,
            pr_place(&pr.repository, pr.number),
            change.title
        );
        self.audit(&mut tx, Some(change.id), actor, "opened", detail, now)
            .await?;
        self.show_card(&mut tx, &change, now).await?;
        self.alert_cab_if_emergency(&mut tx, &change, now).await?;
        self.advance_in(&mut tx, change.id, actor, now).await?;
        tx.commit().await?;
        Ok(Some(change.id))
    }

    /// New commits on the PR: the head moves and, unless the policy says otherwise, a new
    /// approval round starts (earlier approvals no longer count).
    pub async fn pull_request_pushed(
        &self,
        actor: &Actor,
        pr: &PullRequestFacts,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let mut tx = self.store.begin().await?;
        let Some(mut change) = tx.change_for_pr(&pr.repository, pr.number).await? else {
            drop(tx);
            self.pull_request_opened(actor, pr, now).await?;
            return Ok(());
        };
        let Some(current) = change.pull_request.as_mut() else {
            return Ok(());
        };
        if current.head_sha == pr.head_sha || !pre_release(change.state) {
            return Ok(());
        }
        let short: String = pr.head_sha.chars().take(7).collect();
        current.head_sha = pr.head_sha.clone();
        let reset = crate::domain::policy::select(&self.config.org.policies, &change)
            .is_none_or(|p| p.reset_on_push);
        let mut detail = format!("new head {short}");
        if reset {
            change.approval_round += 1;
            detail.push_str(&format!(
                "; approval round {} starts, earlier approvals no longer count",
                change.approval_round
            ));
        }
        self.save_and_advance(tx, change, actor, "pushed", detail, now)
            .await
    }

    /// Labels changed: `change:…` and `risk:…` set the type and risk while the change is not
    /// yet released.
    pub async fn pull_request_labeled(
        &self,
        actor: &Actor,
        pr: &PullRequestFacts,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let mut tx = self.store.begin().await?;
        let Some(mut change) = tx.change_for_pr(&pr.repository, pr.number).await? else {
            return Ok(());
        };
        // The labels say it all: without a `change:` or `risk:` label, the defaults apply.
        let (kind, risk) = classify(&pr.labels);
        let kind = kind.unwrap_or(ChangeType::Normal);
        let risk = risk.unwrap_or(Risk::Medium);
        if (kind, risk) == (change.change_type, change.risk) || !pre_release(change.state) {
            return Ok(());
        }
        let became_emergency =
            kind == ChangeType::Emergency && change.change_type != ChangeType::Emergency;
        change.change_type = kind;
        change.risk = risk;
        if became_emergency {
            self.alert_cab_if_emergency(&mut tx, &change, now).await?;
        }
        let detail = format!("labels: now a {risk} {kind} change");
        self.save_and_advance(tx, change, actor, "reclassified", detail, now)
            .await
    }

    /// Whether the latest change of the PR, in any state, records it as merged (a closed
    /// change backfill imported, or one released since the merge).
    async fn merge_recorded(
        &self,
        tx: &mut Tx,
        pr: &PullRequestFacts,
    ) -> Result<bool, WorkflowError> {
        let Some(id) = tx.any_change_for_pr(&pr.repository, pr.number).await? else {
            return Ok(false);
        };
        let change = tx.change(id).await?;
        Ok(change
            .and_then(|c| c.pull_request)
            .is_some_and(|p| p.merged))
    }

    /// Saves what a PR event changed about `change`, audits it as `action`, moves the change
    /// as far as its rules allow, and commits.
    async fn save_and_advance(
        &self,
        mut tx: Tx,
        mut change: Change,
        actor: &Actor,
        action: &str,
        detail: String,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        change.updated_at = now;
        tx.update_change(&change).await?;
        self.audit(&mut tx, Some(change.id), actor, action, detail, now)
            .await?;
        self.advance_in(&mut tx, change.id, actor, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The PR was closed: merged makes its change ready (then it is booked like any approved
    /// change); a merge without an authorized change is flagged as unauthorized; closed
    /// unmerged cancels the change. A merge a closed change already records (imported by
    /// backfill, or released and closed before this delivery came, late or again) changes
    /// nothing.
    pub async fn pull_request_closed(
        &self,
        actor: &Actor,
        pr: &PullRequestFacts,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let mut tx = self.store.begin().await?;
        let change = match tx.change_for_pr(&pr.repository, pr.number).await? {
            Some(change) => Some(change),
            // A merge changebot has no open change for (a PR from before changebot, or whose
            // change was canceled): record it, so the merge is flagged below; unless a change
            // of the PR already records the merge.
            None if pr.merged && self.merge_recorded(&mut tx, pr).await? => None,
            None if pr.merged && self.config.org.service_for_repo(&pr.repository).is_some() => {
                drop(tx);
                let opened = PullRequestFacts {
                    merged: false,
                    draft: false,
                    ..pr.clone()
                };
                self.pull_request_opened(actor, &opened, now).await?;
                tx = self.store.begin().await?;
                tx.change_for_pr(&pr.repository, pr.number).await?
            }
            None => None,
        };
        let Some(mut change) = change else {
            return Ok(());
        };
        let place = pr_place(&pr.repository, pr.number);
        if !pr.merged {
            if !pre_release(change.state) {
                return Ok(());
            }
            let from = change.state;
            change.move_to(State::Canceled, now)?;
            change.close_code = Some(crate::domain::CloseCode::Canceled);
            change.slot = None;
            tx.update_change(&change).await?;
            let happened = vec![Happening::Moved {
                from,
                to: State::Canceled,
                why: format!("pull request {place} closed without merging"),
            }];
            self.audit_happenings(&mut tx, &change, actor, &happened, now)
                .await?;
            tx.commit().await?;
            return Ok(());
        }
        let Some(current) = change.pull_request.as_mut() else {
            return Ok(());
        };
        if current.merged {
            return Ok(());
        }
        current.merged = true;
        current.head_sha = pr.head_sha.clone();
        change.updated_at = now;
        tx.update_change(&change).await?;
        if let Some(sha) = &pr.merge_sha {
            tx.set_merge_sha(change.id, sha).await?;
        }
        self.audit(
            &mut tx,
            Some(change.id),
            actor,
            "merged",
            place.clone(),
            now,
        )
        .await?;
        let loaded = self.load(&mut tx, change.id, now).await?;
        let authorized = self
            .context(&loaded, now)
            .policy_status(&loaded.change)
            .is_some_and(|p| p.satisfied());
        if !authorized && pre_release(change.state) {
            let why = format!(
                "pull request {place} was merged before {} was authorized",
                change.id
            );
            self.audit(
                &mut tx,
                Some(change.id),
                actor,
                "unauthorized",
                why.clone(),
                now,
            )
            .await?;
            let cab = NoticeTo {
                surface: "chat",
                channel: "cab",
                notice: Notice {
                    event: NoticeEvent::Info,
                    change: Some(change.id),
                    text: format!("unauthorized change: {} — {why}", change.headline()),
                    attachment: None,
                },
                topic: None,
                parked_item: None,
            };
            self.queue_notice(&mut tx, cab, now).await?;
        }
        self.advance_in(&mut tx, change.id, actor, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A review: approved is an approval, changes requested a rejection, dismissed takes the
    /// reviewer's vote back. Only reviews of the current head count.
    pub async fn pull_request_reviewed(
        &self,
        actor: &Actor,
        review: &Review,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let (verdict, comment) = (review.verdict, review.comment.as_str());
        let commit = review.commit.as_deref();
        let Some(change) = self
            .store
            .change_for_pr(&review.repository, review.number)
            .await?
        else {
            return Ok(());
        };
        let head = change.pull_request.as_ref().map(|p| p.head_sha.as_str());
        if commit.is_some() && commit != head {
            let mut tx = self.store.begin().await?;
            let why = format!(
                "a review of commit {} does not count: the pull request's head is now {}",
                commit.unwrap_or_default(),
                head.unwrap_or_default()
            );
            self.audit(&mut tx, Some(change.id), actor, "review_ignored", why, now)
                .await?;
            tx.commit().await?;
            return Ok(());
        }
        let outcome = match verdict {
            ReviewVerdict::Approved => self.vote(actor, change.id, true, comment.into(), now),
            ReviewVerdict::ChangesRequested => {
                self.vote(actor, change.id, false, comment.into(), now)
            }
            ReviewVerdict::Dismissed => return self.withdraw_vote(actor, change.id, now).await,
        };
        match outcome.await {
            // Refusals (an unmapped reviewer, someone outside the groups) are audited and
            // stay refusals; they are not errors of the delivery.
            Ok(_) | Err(WorkflowError::Refused(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn withdraw_vote(
        &self,
        actor: &Actor,
        id: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let Some(person) = actor.person() else {
            return Ok(()); // an unmapped reviewer's vote never counted
        };
        let mut tx = self.store.begin().await?;
        let Some(change) = tx.change(id).await? else {
            return Ok(());
        };
        let vote = Vote {
            person: person.to_string(),
            verdict: Verdict::Withdraw,
            comment: String::new(),
            round: change.approval_round,
            at: now,
        };
        tx.insert_vote(id, &vote).await?;
        self.audit(
            &mut tx,
            Some(id),
            actor,
            "withdrawn",
            "review dismissed",
            now,
        )
        .await?;
        self.advance_in(&mut tx, id, actor, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A comment on a PR or issue: each line starting with `/change` or `/release` runs as a
    /// chat command by the commenter. On a PR the change id may be left out. Replies go back
    /// as a comment. Returns the replies.
    ///
    /// `delivery` (the GitHub delivery id) makes it exactly once: each command's effects are
    /// committed together with a mark, and a delivery processed again after a crash skips the
    /// commands (and the reply) that already took effect.
    pub async fn pull_request_commented(
        &self,
        actor: &Actor,
        repository: &str,
        number: i64,
        body: &str,
        delivery: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, WorkflowError> {
        // Commands count only in repositories a service owns.
        if self.config.org.service_for_repo(repository).is_none() {
            return Ok(Vec::new());
        }
        let own = self.store.change_for_pr(repository, number).await?;
        let mut replies = Vec::new();
        for (n, line) in body.lines().map(str::trim).enumerate() {
            let word = line.split_whitespace().next().unwrap_or_default();
            if word != "/change" && word != "/release" {
                continue;
            }
            let key = format!("{delivery}:{n}");
            if self.store.delivery_applied(&key).await? {
                replies.push(format!("{line}: already done"));
                continue;
            }
            let line = &line[1..];
            let command = match crate::chat::parse(line) {
                Ok(c) => Ok(c),
                Err(first) => match &own {
                    Some(c) => crate::chat::parse(&with_id(line, c.id)).map_err(|_| first),
                    None => Err(first),
                },
            };
            let reply = match command {
                Err(e) => e.to_string(),
                Ok(command) => {
                    match crate::store::applying(key, self.execute(actor, command, now)).await {
                        Ok(outcome) => render_reply(&outcome, self),
                        Err(e) if e.is_user_error() => e.to_string(),
                        Err(e) if e.is_already_applied() => format!("{line}: already done"),
                        Err(e) => return Err(e),
                    }
                }
            };
            replies.push(reply);
        }
        let reply_key = format!("{delivery}:reply");
        if !replies.is_empty()
            && self.github_replies()
            && !self.store.delivery_applied(&reply_key).await?
        {
            let place = pr_place(repository, number);
            let mut tx = self.store.begin().await?;
            let text = replies
                .iter()
                .map(|r| format!("```\n{r}\n```"))
                .collect::<Vec<_>>()
                .join("\n");
            let to = NoticeTo {
                surface: "github",
                channel: &place,
                notice: Notice {
                    event: NoticeEvent::Info,
                    change: own.as_ref().map(|c| c.id),
                    text: format!("@{}\n{text}", actor.identity_name()),
                    attachment: None,
                },
                topic: None,
                parked_item: None,
            };
            self.queue_notice(&mut tx, to, now).await?;
            match crate::store::applying(reply_key, tx.commit()).await {
                Ok(()) | Err(crate::store::StoreError::AlreadyApplied(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(replies)
    }

    /// Moves a change as far as its rules allow now (after a push, merge, label or vote).
    pub(super) async fn advance_in(
        &self,
        tx: &mut Tx,
        id: ChangeId,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Change, WorkflowError> {
        let loaded = self.load(tx, id, now).await?;
        let mut change = loaded.change.clone();
        let happened = lifecycle::advance(&mut change, &self.context(&loaded, now));
        if !happened.is_empty() {
            change.updated_at = now;
            tx.update_change(&change).await?;
            self.audit_happenings(tx, &change, actor, &happened, now)
                .await?;
        }
        Ok(change)
    }
}

/// Before its release: the PR can still change what the change is.
pub(super) fn pre_release(state: State) -> bool {
    matches!(
        state,
        State::New | State::Assess | State::Authorize | State::Scheduled
    )
}

/// `change approve` + the change id: `change approve CHG-7 …`.
fn with_id(line: &str, id: ChangeId) -> String {
    let mut words = line.split_whitespace();
    let (Some(a), Some(b)) = (words.next(), words.next()) else {
        return format!("{line} {id}");
    };
    let rest: Vec<&str> = words.collect();
    format!("{a} {b} {id} {}", rest.join(" "))
        .trim_end()
        .to_string()
}

fn render_reply(outcome: &Outcome, w: &Workflow) -> String {
    render(outcome, &w.config().org)
}
