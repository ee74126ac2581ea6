//! The change record (ITIL change enablement): types, risk, states and the allowed transitions.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::Interval;
use super::{ChangeId, DomainError};

macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The words that parse, in the order of `ALL`.
            pub const WORDS: &'static [&'static str] = &[$($word),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.to_ascii_lowercase().as_str() {
                    $($word => Ok($name::$variant),)+
                    _ => Err($crate::domain::DomainError::Invalid(format!(
                        concat!("`{}` is not a ", $what, " (one of: {})"),
                        s,
                        [$($word),+].join(", ")
                    ))),
                }
            }
        }
    };
}
pub(crate) use word_enum;

word_enum!(
    /// How a change is authorized.
    ChangeType, "change type" {
    Standard => "standard",
    Normal => "normal",
    Emergency => "emergency",
});

word_enum!(
    /// The requester's risk assessment.
    Risk, "risk" {
    Low => "low",
    Medium => "medium",
    High => "high",
});

word_enum!(
    /// Where a change is in its life.
    State, "state" {
    New => "new",
    Assess => "assess",
    Authorize => "authorize",
    Scheduled => "scheduled",
    Implement => "implement",
    Review => "review",
    Closed => "closed",
    Canceled => "canceled",
});

word_enum!(
    /// How a closed change ended.
    CloseCode, "close code" {
    Successful => "successful",
    Unsuccessful => "unsuccessful",
    Canceled => "canceled",
});

word_enum!(
    /// Which surface created a change.
    Source, "source" {
    Chat => "chat",
    Github => "github",
    Api => "api",
});

impl State {
    /// Whether the change has ended (no further transitions).
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Closed | State::Canceled)
    }

    /// The transition graph of a change. Cancel is allowed from every non-terminal state
    /// before the deployment runs; `scheduled → authorize` happens when approvals are lost.
    pub fn can_move_to(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (New, Assess)
                | (Assess, Authorize)
                | (Authorize, Scheduled)
                | (Scheduled, Authorize)
                | (Scheduled, Implement)
                | (Implement, Review)
                | (Review, Closed)
                | (New | Assess | Authorize | Scheduled, Canceled)
        )
    }
}

/// A pull request a change was opened for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub repository: String,
    pub number: i64,
    pub head_sha: String,
    /// A PR change is ready for release once merged.
    pub merged: bool,
}

impl PullRequest {
    /// The pull request's page on GitHub.
    pub fn url(&self) -> String {
        format!(
            "https://github.com/{}/pull/{}",
            self.repository, self.number
        )
    }
}

/// One change record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub id: ChangeId,
    pub title: String,
    pub description: String,
    pub service: String,
    pub environment: String,
    pub change_type: ChangeType,
    pub risk: Risk,
    pub state: State,
    pub close_code: Option<CloseCode>,
    pub requester: String,
    pub source: Source,
    pub pull_request: Option<PullRequest>,
    /// Planned duration of the implementation; a booking occupies this long.
    #[serde(with = "seconds")]
    pub duration: Duration,
    /// The booked slot while `scheduled` (and kept as a record afterwards).
    pub slot: Option<Interval>,
    /// Approvals from earlier rounds no longer count (a push to the PR starts a new round).
    pub approval_round: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the PR's first commit was authored, when known.
    #[serde(default)]
    pub first_commit_at: Option<DateTime<Utc>>,
}

impl Change {
    /// How every reply and notice names a change: `CHG-12 · authorize · payments-api/production
    /// · title`.
    pub fn headline(&self) -> String {
        format!(
            "{} · {} · {}/{} · {}",
            self.id, self.state, self.service, self.environment, self.title
        )
    }

    /// Chat and API changes are ready at once; a PR change once its PR is merged.
    pub fn is_ready(&self) -> bool {
        self.pull_request.as_ref().is_none_or(|pr| pr.merged)
    }

    /// Moves to `to` if the transition graph allows it.
    pub fn move_to(&mut self, to: State, now: DateTime<Utc>) -> Result<(), DomainError> {
        if self.state == to {
            return Err(DomainError::Refused(format!(
                "{} is already {to}; nothing changed",
                self.id
            )));
        }
        if !self.state.can_move_to(to) {
            return Err(DomainError::Refused(format!(
                "{} is {}; it cannot move to {}",
                self.id, self.state, to
            )));
        }
        self.state = to;
        self.updated_at = now;
        Ok(())
    }
}

mod seconds {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        i64::deserialize(d).map(Duration::seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_only_moves_forward_along_the_graph() {
        use State::*;
        assert!(New.can_move_to(Assess));
        assert!(Authorize.can_move_to(Scheduled));
        assert!(Scheduled.can_move_to(Authorize), "lost approvals unbook");
        assert!(!New.can_move_to(Scheduled), "no skipping assessment");
        assert!(
            !Implement.can_move_to(Canceled),
            "a running deployment is not canceled"
        );
        assert!(!Closed.can_move_to(Review));
        assert!(State::ALL.iter().all(|s| !Canceled.can_move_to(*s)));
    }

    #[test]
    fn words_parse_case_insensitively_and_list_the_choices_on_error() {
        assert_eq!("HIGH".parse::<Risk>().unwrap(), Risk::High);
        let err = "urgent".parse::<ChangeType>().unwrap_err().to_string();
        assert!(err.contains("standard, normal, emergency"), "{err}");
    }
}
