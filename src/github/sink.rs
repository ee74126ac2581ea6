//! Replies on GitHub through octocrab: a change's card is one sticky PR comment (found again by
//! a marker, so a post whose answer was lost is not repeated) plus the `changebot/change`
//! commit status on the PR's head; notices are plain comments.

use std::time::Duration;

use async_trait::async_trait;
use octocrab::Octocrab;
use octocrab::models::{CommentId, StatusState};

use crate::domain::effect::{Card, GateAnswer, GateState, Notice};
use crate::notify::{ChatSink, Posted, SinkError};

/// The commit status context branch protection can require.
pub const STATUS_CONTEXT: &str = "changebot/change";
/// GitHub caps a status description at 140 characters.
const STATUS_DESCRIPTION_MAX: usize = 140;

pub struct GithubSink {
    client: Octocrab,
    api_url: String,
}

impl GithubSink {
    /// A client for `api_url` authenticated with a personal or installation token.
    pub fn with_token(api_url: &str, token: String) -> Result<GithubSink, String> {
        // Retries are the outbox's (honouring GitHub's retry-after, and never re-posting a
        // comment blindly); a hung call must not hold its lane.
        let client = Octocrab::builder()
            .base_uri(api_url)
            .map_err(|e| format!("github: api_url {api_url} is not usable: {e}"))?
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .set_write_timeout(Some(Duration::from_secs(30)))
            .personal_token(token)
            .build()
            .map_err(|e| format!("github: cannot build the API client: {e}"))?;
        Ok(GithubSink {
            client,
            api_url: api_url.to_string(),
        })
    }
}

/// `owner/repo#42` → (owner, repo, 42).
fn parse_place(place: &str) -> Result<(String, String, u64), SinkError> {
    let bad = || SinkError::Permanent(format!("`{place}` is not a pull request (owner/repo#N)"));
    let (repo, number) = place.rsplit_once('#').ok_or_else(bad)?;
    let (owner, name) = repo.split_once('/').ok_or_else(bad)?;
    let number = number.parse().map_err(|_| bad())?;
    Ok((owner.to_string(), name.to_string(), number))
}

fn marker(card: &Card) -> String {
    format!("<!-- changebot:{} -->", card.change)
}

/// The sticky comment's text.
pub fn comment_body(card: &Card) -> String {
    let mut out = format!("{}\n**{}**\n\n", marker(card), card.headline);
    out.push_str(&format!(
        "{} change, {} risk, requested by {}\n\n",
        card.change_type, card.risk, card.requester
    ));
    match &card.policy {
        Some(policy) => {
            out.push_str(&format!("Policy **{policy}**:"));
            if card.seats.is_empty() {
                out.push_str(" no approval needed\n");
            } else {
                out.push('\n');
                for s in &card.seats {
                    let who = if s.approved_by.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", s.approved_by.join(", "))
                    };
                    out.push_str(&format!(
                        "- {}: {}/{}{who}\n",
                        s.group,
                        s.approved_by.len().min(s.needed as usize),
                        s.needed
                    ));
                }
            }
        }
        None => out.push_str("No policy applies.\n"),
    }
    for r in &card.rejections {
        out.push_str(&format!("- rejected by {}: {}\n", r.person, r.reason));
    }
    out.push_str(&format!("\nStatus: {}\n", card.gate.reason));
    if let Some(slot) = &card.slot {
        out.push_str(&format!("Booked: {slot}\n"));
    }
    out.push_str(&format!("\n[Change record]({})\n", card.record_url));
    out
}

/// Sorts an octocrab error into retry (with GitHub's retry-after or rate-limit reset),
/// permanent, or gone.
fn classify(e: octocrab::Error, gone_if_missing: bool) -> SinkError {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let retry_after = source
                .headers
                .as_ref()
                .and_then(|h| h.get("retry-after"))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let reset = source.rate_limit_reset.map(|reset| {
                let now = chrono::Utc::now().timestamp().max(0) as u64;
                Duration::from_secs(reset.saturating_sub(now).max(1))
            });
            let reason = format!("GitHub answered {status}: {}", source.message);
            match status {
                404 if gone_if_missing => SinkError::Gone,
                403 | 429 if retry_after.is_some() || reset.is_some() => SinkError::Retry {
                    reason,
                    after: retry_after.or(reset),
                },
                408 | 429 | 500..=599 => SinkError::Retry {
                    reason,
                    after: retry_after,
                },
                _ => SinkError::Permanent(reason),
            }
        }
        other => SinkError::retry(format!("calling GitHub failed: {other}")),
    }
}

impl GithubSink {
    async fn set_status(&self, owner: &str, repo: &str, card: &Card) -> Result<(), SinkError> {
        let Some(sha) = card.head_sha.clone() else {
            return Ok(());
        };
        let state = match card.gate.state {
            GateState::Pending => StatusState::Pending,
            GateState::Success => StatusState::Success,
            GateState::Failure => StatusState::Failure,
        };
        let description: String = card
            .gate
            .reason
            .chars()
            .take(STATUS_DESCRIPTION_MAX)
            .collect();
        self.client
            .repos(owner, repo)
            .create_status(sha, state)
            .context(STATUS_CONTEXT.to_string())
            .description(description)
            .target(card.record_url.clone())
            .send()
            .await
            .map_err(|e| classify(e, false))?;
        Ok(())
    }

    /// The comment that already carries this change's marker, if any (a post whose answer
    /// was lost).
    async fn find_sticky(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        card: &Card,
    ) -> Result<Option<u64>, SinkError> {
        let page = self
            .client
            .issues(owner, repo)
            .list_comments(number)
            .per_page(100)
            .send()
            .await
            .map_err(|e| classify(e, false))?;
        let marker = marker(card);
        Ok(page
            .items
            .iter()
            .find(|c| c.body.as_deref().is_some_and(|b| b.contains(&marker)))
            .map(|c| c.id.0))
    }
}

#[async_trait]
impl ChatSink for GithubSink {
    fn surface(&self) -> &'static str {
        "github"
    }

    async fn notice(&self, place: &str, notice: &Notice, _key: &str) -> Result<Posted, SinkError> {
        let (owner, repo, number) = parse_place(place)?;
        let comment = self
            .client
            .issues(&owner, &repo)
            .create_comment(number, &notice.text)
            .await
            .map_err(|e| classify(e, false))?;
        Ok(Posted {
            message_id: comment.id.0.to_string(),
        })
    }

    async fn post_card(&self, place: &str, card: &Card, _key: &str) -> Result<Posted, SinkError> {
        let (owner, repo, number) = parse_place(place)?;
        let body = comment_body(card);
        let issues = self.client.issues(&owner, &repo);
        let id = match self.find_sticky(&owner, &repo, number, card).await? {
            Some(id) => {
                issues
                    .update_comment(CommentId(id), &body)
                    .await
                    .map_err(|e| classify(e, false))?;
                id
            }
            None => {
                issues
                    .create_comment(number, &body)
                    .await
                    .map_err(|e| classify(e, false))?
                    .id
                    .0
            }
        };
        self.set_status(&owner, &repo, card).await?;
        Ok(Posted {
            message_id: id.to_string(),
        })
    }

    async fn answer_gate(&self, answer: &GateAnswer) -> Result<(), SinkError> {
        // Credentials only ever go to the configured API.
        if !crate::workflow::same_origin(&answer.callback_url, &self.api_url) {
            return Err(SinkError::Permanent(format!(
                "the callback {} is not on {}",
                answer.callback_url, self.api_url
            )));
        }
        let body = serde_json::json!({
            "environment_name": answer.environment,
            "state": if answer.approved { "approved" } else { "rejected" },
            "comment": answer.comment,
        });
        let response = self
            .client
            ._post(answer.callback_url.as_str(), Some(&body))
            .await
            .map_err(|e| classify(e, false))?;
        octocrab::map_github_error(response)
            .await
            .map_err(|e| classify(e, false))?;
        Ok(())
    }

    async fn edit_card(&self, place: &str, message_id: &str, card: &Card) -> Result<(), SinkError> {
        let (owner, repo, _) = parse_place(place)?;
        let id: u64 = message_id.parse().map_err(|_| SinkError::Gone)?;
        self.client
            .issues(&owner, &repo)
            .update_comment(CommentId(id), comment_body(card))
            .await
            .map_err(|e| classify(e, true))?;
        self.set_status(&owner, &repo, card).await
    }
}
