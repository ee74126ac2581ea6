//! The GitHub webhook events changebot uses, parsed into its own types: only the fields it
//! reads, so new or missing optional fields never break parsing.

use serde::{Deserialize, Serialize};

use super::evidence;
use crate::workflow::{CheckFacts, DeploymentFacts, ProtectionFacts};
use crate::workflow::{PullRequestFacts, Review, ReviewVerdict};

/// What a delivery asks of changebot (stored with the delivery as its summary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// GitHub checking the hook.
    Ping,
    /// A pull request opened, reopened or ready for review.
    Opened {
        sender: Sender,
        pr: PullRequestFacts,
    },
    /// New commits on a pull request.
    Pushed {
        sender: Sender,
        pr: PullRequestFacts,
    },
    /// A pull request's labels changed.
    Labeled {
        sender: Sender,
        pr: PullRequestFacts,
    },
    /// A pull request closed, merged or not.
    Closed {
        sender: Sender,
        pr: PullRequestFacts,
    },
    /// A review submitted or dismissed.
    Reviewed { reviewer: Sender, review: Review },
    /// A comment on an issue or pull request (commands).
    Commented {
        author: Sender,
        repository: String,
        number: i64,
        body: String,
    },
    /// CI reported on a commit (a check run, a check suite, a commit status).
    Checked { check: CheckFacts },
    /// A deployment protection rule asks whether a run may deploy.
    ProtectionRequested { request: ProtectionFacts },
    /// A deployment's status changed.
    DeploymentStatus { deployment: DeploymentFacts },
    /// An event or action changebot does not use.
    Ignored,
}

/// A GitHub login.
pub type Sender = String;

/// Whether changebot reads deliveries of this event at all (others are answered and dropped).
pub fn is_used(event: &str) -> bool {
    matches!(
        event,
        "ping"
            | "pull_request"
            | "pull_request_review"
            | "issue_comment"
            | "check_run"
            | "check_suite"
            | "status"
            | "deployment_protection_rule"
            | "deployment_status"
    )
}

#[derive(Deserialize)]
struct User {
    login: String,
    /// `User`, `Bot` or `Organization`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct Label {
    name: String,
}

#[derive(Deserialize)]
struct Head {
    sha: String,
}

#[derive(Deserialize)]
struct RawPullRequest {
    number: i64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
    head: Head,
    #[serde(default)]
    labels: Vec<Label>,
    /// The PR's author: the change's requester, whoever sent the event.
    #[serde(default)]
    user: Option<User>,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    pull_request: RawPullRequest,
    repository: Repository,
    sender: User,
}

#[derive(Deserialize)]
struct RawReview {
    state: String,
    user: User,
    #[serde(default)]
    commit_id: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Deserialize)]
struct ReviewPullRequest {
    number: i64,
}

#[derive(Deserialize)]
struct ReviewEvent {
    action: String,
    review: RawReview,
    pull_request: ReviewPullRequest,
    repository: Repository,
}

#[derive(Deserialize)]
struct RawIssue {
    number: i64,
}

#[derive(Deserialize)]
struct RawComment {
    #[serde(default)]
    body: Option<String>,
    user: User,
}

#[derive(Deserialize)]
struct CommentEvent {
    action: String,
    issue: RawIssue,
    comment: RawComment,
    repository: Repository,
}

fn facts(pr: RawPullRequest, repository: Repository) -> PullRequestFacts {
    PullRequestFacts {
        author: pr.user.map(|u| u.login),
        repository: repository.full_name,
        number: pr.number,
        title: pr.title.unwrap_or_default(),
        head_sha: pr.head.sha,
        draft: pr.draft.unwrap_or(false),
        merged: pr.merged.unwrap_or(false),
        labels: pr.labels.into_iter().map(|l| l.name).collect(),
        merge_sha: pr.merge_commit_sha.filter(|_| pr.merged.unwrap_or(false)),
    }
}

/// Reads a delivery of `event`. An error is a malformed body of an event changebot uses.
pub fn parse(event: &str, body: &[u8]) -> Result<Event, String> {
    let bad = |e: serde_json::Error| format!("not a {event} event changebot can read: {e}");
    match event {
        "ping" => Ok(Event::Ping),
        "pull_request" => {
            let ev: PullRequestEvent = serde_json::from_slice(body).map_err(bad)?;
            let sender = ev.sender.login;
            let pr = facts(ev.pull_request, ev.repository);
            Ok(match ev.action.as_str() {
                "opened" | "reopened" | "ready_for_review" => Event::Opened { sender, pr },
                "synchronize" => Event::Pushed { sender, pr },
                "labeled" | "unlabeled" => Event::Labeled { sender, pr },
                "closed" => Event::Closed { sender, pr },
                _ => Event::Ignored,
            })
        }
        "pull_request_review" => {
            let ev: ReviewEvent = serde_json::from_slice(body).map_err(bad)?;
            let verdict = match (
                ev.action.as_str(),
                ev.review.state.to_ascii_lowercase().as_str(),
            ) {
                ("dismissed", _) => ReviewVerdict::Dismissed,
                ("submitted", "approved") => ReviewVerdict::Approved,
                ("submitted", "changes_requested") => ReviewVerdict::ChangesRequested,
                _ => return Ok(Event::Ignored),
            };
            Ok(Event::Reviewed {
                reviewer: ev.review.user.login,
                review: Review {
                    repository: ev.repository.full_name,
                    number: ev.pull_request.number,
                    verdict,
                    commit: ev.review.commit_id,
                    comment: ev.review.body.unwrap_or_default(),
                },
            })
        }
        "issue_comment" => {
            let ev: CommentEvent = serde_json::from_slice(body).map_err(bad)?;
            // Comments by bots (changebot's own replies included) are never commands.
            let bot = ev.comment.user.kind.as_deref() == Some("Bot")
                || ev.comment.user.login.ends_with("[bot]");
            if ev.action != "created" || bot {
                return Ok(Event::Ignored);
            }
            Ok(Event::Commented {
                author: ev.comment.user.login,
                repository: ev.repository.full_name,
                number: ev.issue.number,
                body: ev.comment.body.unwrap_or_default(),
            })
        }
        "check_run" => Ok(Event::Checked {
            check: evidence::check_run(body).map_err(bad)?,
        }),
        "check_suite" => Ok(evidence::check_suite(body)
            .map_err(bad)?
            .map_or(Event::Ignored, |check| Event::Checked { check })),
        "status" => Ok(Event::Checked {
            check: evidence::status(body).map_err(bad)?,
        }),
        "deployment_protection_rule" => Ok(evidence::protection(body)
            .map_err(bad)?
            .map_or(Event::Ignored, |request| Event::ProtectionRequested {
                request,
            })),
        "deployment_status" => Ok(evidence::deployment_status(body)
            .map_err(bad)?
            .map_or(Event::Ignored, |deployment| Event::DeploymentStatus {
                deployment,
            })),
        _ => Ok(Event::Ignored),
    }
}
