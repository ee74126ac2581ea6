//! What changebot shows people, as structured content: notices (something happened) and change
//! cards (where a change stands, kept current in place). Each sink renders them its own way:
//! the console and log as text, Discord as embeds with buttons, GitHub as a sticky comment.

use serde::{Deserialize, Serialize};

use super::change::{Change, ChangeType, CloseCode, Risk, State};
use super::ids::ChangeId;
use super::policy::{CheckStatus, PolicyStatus, Rejection};

/// What a notice is about; sinks may style notices by it (colour, icon, mentions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeEvent {
    /// A change was booked, rebooked or unbooked.
    Booking,
    /// A booked release is coming up.
    Reminder,
    /// A deployment started.
    Started,
    /// A deployment ended (succeeded, failed, dry run).
    Finished,
    /// A delivery kept failing and waits for a person (`release retry`).
    Parked,
    /// A scheduled digest of upcoming releases.
    Digest,
    /// The scheduled weekly review of the KPIs.
    Review,
    /// Anything else.
    Info,
}

/// A message for a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub event: NoticeEvent,
    /// The change it is about, if any (sinks link it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeId>,
    /// The notice as plain text (its first line is the summary).
    pub text: String,
    /// A file posted with it (the weekly review's chart); surfaces that cannot post files
    /// name it instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
}

/// A file that goes with a notice, kept in the outbox with it (base64 in the stored JSON).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("bytes", &self.data.len())
            .finish()
    }
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

impl Notice {
    /// A notice as stored in the outbox; text written by older versions is read as `Info`.
    pub fn from_stored(body: &str) -> Notice {
        serde_json::from_str(body).unwrap_or_else(|_| Notice {
            event: NoticeEvent::Info,
            change: None,
            text: body.to_string(),
            attachment: None,
        })
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.text.clone())
    }
}

/// changebot's answer to a deployment protection rule: whether a workflow run may deploy to
/// an environment, sent once through the request's callback URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateAnswer {
    /// `owner/name`.
    pub repository: String,
    pub callback_url: String,
    pub environment: String,
    pub approved: bool,
    /// Why, with the change's link (GitHub keeps at most 1,024 characters).
    pub comment: String,
}

impl GateAnswer {
    /// GitHub's limit on a protection rule answer's comment.
    pub const COMMENT_MAX: usize = 1024;
}

/// The commit status context that carries a change's gate on GitHub (branch protection can
/// require it).
pub const STATUS_CONTEXT: &str = "changebot/change";

/// Whether a change may go ahead, as a commit status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    Pending,
    Success,
    Failure,
}

/// The gate of a change: its state and why, in a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gate {
    pub state: GateState,
    pub reason: String,
}

impl Gate {
    fn of(change: &Change, policy: Option<&PolicyStatus>) -> Gate {
        let gate = |state, reason: String| Gate { state, reason };
        match change.state {
            State::Canceled => return gate(GateState::Failure, "the change was canceled".into()),
            State::Closed => {
                let ok = change.close_code == Some(CloseCode::Successful);
                let state = if ok {
                    GateState::Success
                } else {
                    GateState::Failure
                };
                return gate(
                    state,
                    format!(
                        "closed {}",
                        change.close_code.map(|c| c.to_string()).unwrap_or_default()
                    ),
                );
            }
            _ => {}
        }
        let Some(p) = policy else {
            return gate(
                GateState::Pending,
                "no [[policy]] applies to this change".into(),
            );
        };
        if let Some(r) = p.rejections.first() {
            return gate(GateState::Failure, format!("rejected by {}", r.person));
        }
        let missing: Vec<String> = p
            .groups
            .iter()
            .filter(|g| g.missing() > 0)
            .map(|g| format!("{} from {}", g.missing(), g.group))
            .collect();
        let checks: Vec<String> = p.unmet_checks().map(|c| c.describe()).collect();
        let mut waiting = Vec::new();
        if !missing.is_empty() {
            waiting.push(format!("approval: {}", missing.join(", ")));
        }
        if !checks.is_empty() {
            waiting.push(format!("checks: {}", checks.join(", ")));
        }
        if waiting.is_empty() {
            gate(
                GateState::Success,
                format!("authorized under policy {}", p.policy),
            )
        } else {
            gate(
                GateState::Pending,
                format!("waiting for {}", waiting.join("; ")),
            )
        }
    }
}

/// One approval requirement on a card: `cab 1/2 (bob)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardSeat {
    pub group: String,
    pub needed: u32,
    pub approved_by: Vec<String>,
}

impl CardSeat {
    /// `cab: 1/2 (bob)`: how far the requirement is, and who filled it.
    pub fn tally(&self) -> String {
        let who = if self.approved_by.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.approved_by.join(", "))
        };
        format!(
            "{}: {}/{}{who}",
            self.group,
            self.approved_by.len().min(self.needed as usize),
            self.needed
        )
    }
}

/// A change as its card shows it, rendered from the record when the card is delivered, so a
/// card never shows a stale state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    pub change: ChangeId,
    pub headline: String,
    pub title: String,
    pub service: String,
    pub environment: String,
    pub change_type: ChangeType,
    pub risk: Risk,
    pub state: State,
    pub close_code: Option<CloseCode>,
    pub requester: String,
    /// The policy that decides, if any.
    pub policy: Option<String>,
    pub seats: Vec<CardSeat>,
    /// The checks the policy requires, as they stand on the head commit.
    pub checks: Vec<CheckStatus>,
    pub rejections: Vec<Rejection>,
    /// The booked slot, in the service's time zone.
    pub slot: Option<String>,
    /// The pull request, for PR changes.
    pub pull_request: Option<String>,
    /// The change's API record.
    pub record_url: String,
    /// Whether the change still waits for a verdict (Approve/Reject buttons are shown).
    pub votes_open: bool,
    /// The PR's head commit, for PR changes (its commit status carries the gate).
    pub head_sha: Option<String>,
    pub gate: Gate,
}

impl Card {
    /// Builds the card of `change` as its policy stands; `slot` is already formatted in the
    /// service's time zone.
    pub fn of(
        change: &Change,
        policy: Option<&PolicyStatus>,
        slot: Option<String>,
        public_url: &str,
    ) -> Card {
        let pull_request = change
            .pull_request
            .as_ref()
            .map(super::change::PullRequest::url);
        Card {
            change: change.id,
            headline: change.headline(),
            title: change.title.clone(),
            service: change.service.clone(),
            environment: change.environment.clone(),
            change_type: change.change_type,
            risk: change.risk,
            state: change.state,
            close_code: change.close_code,
            requester: change.requester.clone(),
            policy: policy.map(|p| p.policy.clone()),
            seats: policy.map_or_else(Vec::new, |p| {
                p.groups
                    .iter()
                    .map(|g| CardSeat {
                        group: g.group.clone(),
                        needed: g.needed,
                        approved_by: g.approved_by.clone(),
                    })
                    .collect()
            }),
            checks: policy.map_or_else(Vec::new, |p| p.checks.clone()),
            rejections: policy.map_or_else(Vec::new, |p| p.rejections.clone()),
            slot,
            pull_request,
            record_url: format!(
                "{}/api/changes/{}",
                public_url.trim_end_matches('/'),
                change.id
            ),
            // Judged (authorized, rejected) or past: no more Approve/Reject buttons.
            votes_open: matches!(change.state, State::Assess | State::Authorize)
                && policy.is_none_or(|p| !p.satisfied() && p.rejections.is_empty()),
            head_sha: change.pull_request.as_ref().map(|pr| pr.head_sha.clone()),
            gate: Gate::of(change, policy),
        }
    }

    /// The card as plain text (console, log, fallbacks).
    pub fn text(&self) -> String {
        let mut out = self.headline.clone();
        out.push_str(&format!(
            "\n  {} change, {} risk, requested by {}",
            self.change_type, self.risk, self.requester
        ));
        if let Some(policy) = &self.policy {
            let seats: Vec<String> = self
                .seats
                .iter()
                .map(|s| {
                    format!(
                        "{} {}/{}",
                        s.group,
                        s.approved_by.len().min(s.needed as usize),
                        s.needed
                    )
                })
                .collect();
            out.push_str(&format!("\n  policy {policy}: {}", seats.join(", ")));
            if !self.checks.is_empty() {
                let checks: Vec<String> = self.checks.iter().map(|c| c.describe()).collect();
                out.push_str(&format!("; checks {}", checks.join(", ")));
            }
        }
        for r in &self.rejections {
            out.push_str(&format!("\n  rejected by {}: {}", r.person, r.reason));
        }
        if let Some(slot) = &self.slot {
            out.push_str(&format!("\n  booked {slot}"));
        }
        if let Some(code) = self.close_code {
            out.push_str(&format!("\n  closed {code}"));
        }
        if let Some(pr) = &self.pull_request {
            out.push_str(&format!("\n  {pr}"));
        }
        out
    }
}
