//! Replies on GitHub through octocrab: a change's card is one sticky PR comment (found again by
//! a marker, so a post whose answer was lost is not repeated) plus the `changebot/change`
//! commit status on the PR's head; notices are plain comments.

use async_trait::async_trait;
use octocrab::Octocrab;
use octocrab::models::issues::Comment;
use octocrab::models::{CommentId, StatusState};

use super::client::{GithubClient, classify};
use crate::domain::effect::{Card, GateAnswer, GateState, Notice};
use crate::notify::{ChatSink, Posted, SinkError};

pub use crate::domain::effect::STATUS_CONTEXT;
/// GitHub caps a status description at 140 characters.
const STATUS_DESCRIPTION_MAX: usize = 140;

pub struct GithubSink {
    client: GithubClient,
}

impl GithubSink {
    /// Replies through `client` (a token, or a GitHub App's installations).
    pub fn new(client: GithubClient) -> GithubSink {
        GithubSink { client }
    }

    /// A sink for `api_url` authenticated with a personal access token.
    pub fn with_token(api_url: &str, token: String) -> Result<GithubSink, String> {
        GithubClient::with_token(api_url, token)
            .map(GithubSink::new)
            .map_err(|e| e.to_string())
    }

    /// A client authorised for the place's repository.
    async fn crab(&self, owner: &str, repo: &str) -> Result<Octocrab, SinkError> {
        self.client.for_repo(&format!("{owner}/{repo}")).await
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
                    out.push_str(&format!("- {}\n", s.tally()));
                }
            }
        }
        None => out.push_str("No policy applies.\n"),
    }
    for c in &card.checks {
        out.push_str(&format!("- check {}\n", c.describe()));
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

/// Whether `comment` is this change's sticky comment: it starts with the change's marker (a
/// comment that merely quotes the marker further down is not), and, when changebot's own
/// login is known, changebot wrote it (nobody else's comment is ever taken over).
pub fn is_sticky(comment: &Comment, marker: &str, own_login: Option<&str>) -> bool {
    let starts = comment
        .body
        .as_deref()
        .is_some_and(|b| b.trim_start().starts_with(marker));
    starts && own_login.is_none_or(|login| comment.user.login.eq_ignore_ascii_case(login))
}

/// `url` as a route under `api_url` (`/repos/…` for `https://ghe.example/api/v3/repos/…` when
/// the API is `https://ghe.example/api/v3`), or `None` when it is not on that API.
pub fn route_under(url: &str, api_url: &str) -> Option<String> {
    if !crate::workflow::same_origin(url, api_url) {
        return None;
    }
    let url = reqwest::Url::parse(url).ok()?;
    let api = reqwest::Url::parse(api_url).ok()?;
    let base = api.path().trim_end_matches('/');
    let path = url.path().strip_prefix(base)?;
    // Only a deployment protection rule's callback: /repos/OWNER/NAME/actions/runs/ID/…
    let parts: Vec<&str> = path.split('/').collect();
    let shaped = matches!(
        parts.as_slice(),
        ["", "repos", owner, name, "actions", "runs", id, "deployment_protection_rule"]
            if !owner.is_empty() && !name.is_empty() && !id.is_empty()
                && id.chars().all(|c| c.is_ascii_digit())
    );
    if !shaped {
        return None;
    }
    Some(match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    })
}

impl GithubSink {
    async fn set_status(
        &self,
        crab: &Octocrab,
        owner: &str,
        repo: &str,
        card: &Card,
    ) -> Result<(), SinkError> {
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
        crab.repos(owner, repo)
            .create_status(sha, state)
            .context(STATUS_CONTEXT.to_string())
            .description(description)
            .target(card.record_url.clone())
            .send()
            .await
            .map_err(|e| classify(e, false))?;
        Ok(())
    }

    /// The sticky comment changebot already wrote for this change, if any (a post whose answer
    /// was lost), looked for on every page of the PR's comments. Pages are requested by
    /// number rather than by following the `Link` URL: octocrab sends an installation's token
    /// only to relative URLs or api.github.com, so a GitHub Enterprise host's absolute `next`
    /// URL would go out without it.
    async fn find_sticky(
        &self,
        crab: &Octocrab,
        owner: &str,
        repo: &str,
        number: u64,
        card: &Card,
    ) -> Result<Option<u64>, SinkError> {
        let marker = marker(card);
        let own = self.client.bot_login().await;
        let mut page_number: u32 = 1;
        loop {
            let page = crab
                .issues(owner, repo)
                .list_comments(number)
                .per_page(100)
                .page(page_number)
                .send()
                .await
                .map_err(|e| classify(e, false))?;
            if let Some(c) = page
                .items
                .iter()
                .find(|c| is_sticky(c, &marker, own.as_deref()))
            {
                return Ok(Some(c.id.0));
            }
            if page.next.is_none() || page.items.is_empty() {
                return Ok(None);
            }
            page_number = page_number.saturating_add(1);
        }
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
            .crab(&owner, &repo)
            .await?
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
        let crab = self.crab(&owner, &repo).await?;
        let issues = crab.issues(&owner, &repo);
        let id = match self.find_sticky(&crab, &owner, &repo, number, card).await? {
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
        self.set_status(&crab, &owner, &repo, card).await?;
        Ok(Posted {
            message_id: id.to_string(),
        })
    }

    async fn answer_gate(&self, answer: &GateAnswer) -> Result<(), SinkError> {
        // Credentials only ever go to the configured API; the route is made relative to it, so
        // the client authenticates it (installation tokens are attached to its own routes).
        let Some(route) = route_under(&answer.callback_url, self.client.api_url()) else {
            return Err(SinkError::Permanent(format!(
                "the callback {} is not on {}",
                answer.callback_url,
                self.client.api_url()
            )));
        };
        let body = serde_json::json!({
            "environment_name": answer.environment,
            "state": if answer.approved { "approved" } else { "rejected" },
            "comment": answer.comment,
        });
        let crab = self.client.for_repo(&answer.repository).await?;
        let response = crab
            ._post(route.as_str(), Some(&body))
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
        let crab = self.crab(&owner, &repo).await?;
        crab.issues(&owner, &repo)
            .update_comment(CommentId(id), comment_body(card))
            .await
            .map_err(|e| classify(e, true))?;
        self.set_status(&crab, &owner, &repo, card).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(author: &str, body: &str) -> Comment {
        let user = format!("https://api.github.com/users/{author}");
        serde_json::from_value(serde_json::json!({
            "id": 1, "node_id": "IC_1",
            "url": "https://api.github.com/repos/acme/payments/issues/comments/1",
            "html_url": "https://github.com/acme/payments/pull/42#issuecomment-1",
            "body": body, "created_at": "2026-11-23T09:00:00Z",
            "user": {
                "login": author, "id": 7, "node_id": "U_7",
                "avatar_url": "https://avatars.example/7", "gravatar_id": "", "url": user,
                "html_url": format!("https://github.com/{author}"),
                "followers_url": user, "following_url": user, "gists_url": user,
                "starred_url": user, "subscriptions_url": user, "organizations_url": user,
                "repos_url": user, "events_url": user, "received_events_url": user,
                "type": "User", "site_admin": false
            }
        }))
        .expect("a comment")
    }

    const MARKER: &str = "<!-- changebot:CHG-1 -->";

    #[test]
    fn a_callback_is_a_route_under_the_api_or_refused() {
        let cb = "https://api.github.com/repos/a/b/actions/runs/7/deployment_protection_rule";
        assert_eq!(
            route_under(cb, "https://api.github.com").as_deref(),
            Some("/repos/a/b/actions/runs/7/deployment_protection_rule")
        );
        assert_eq!(
            route_under(
                "https://ghe.example/api/v3/repos/a/b/actions/runs/7/deployment_protection_rule",
                "https://ghe.example/api/v3/"
            )
            .as_deref(),
            Some("/repos/a/b/actions/runs/7/deployment_protection_rule")
        );
        assert_eq!(
            route_under(
                "https://api.github.com/repos/a/b/issues/7",
                "https://api.github.com"
            ),
            None,
            "only protection rule callbacks"
        );
        assert_eq!(route_under(cb, "https://ghe.example/api/v3"), None);
        assert_eq!(
            route_under("http://api.github.com/repos/a", "https://api.github.com"),
            None
        );
        assert_eq!(
            route_under("https://ghe.example/other/x", "https://ghe.example/api/v3"),
            None
        );
    }

    #[test]
    fn only_changebots_own_comment_starting_with_the_marker_is_the_sticky_one() {
        let own = Some("changebot[bot]");
        let body = format!("{MARKER}\n**CHG-1**");
        assert!(is_sticky(&comment("changebot[bot]", &body), MARKER, own));
        // Someone else's comment, even one that starts with the marker, is never taken over.
        assert!(!is_sticky(&comment("mallory", &body), MARKER, own));
        // A quote of the marker is not the sticky comment, whoever wrote it.
        let quoted = format!("> {MARKER}\nwhy is this pending?");
        assert!(!is_sticky(&comment("changebot[bot]", &quoted), MARKER, own));
        assert!(!is_sticky(&comment("mallory", &quoted), MARKER, None));
        // Another change's marker is not this one's.
        let other = "<!-- changebot:CHG-12 -->\n**CHG-12**";
        assert!(!is_sticky(&comment("changebot[bot]", other), MARKER, own));
        // Without a known login, the marker must open the comment.
        assert!(is_sticky(&comment("changebot-bot", &body), MARKER, None));
    }
}
