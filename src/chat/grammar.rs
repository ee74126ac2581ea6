//! The chat command grammar (docs/chat.md), shared by every surface: console, `changebot chat`,
//! Discord and GitHub comments. Parsing is pure; times stay as typed until the workflow knows
//! the service's time zone.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::domain::duration::Span;
use crate::domain::{ChangeId, ChangeType, Risk, State};

/// A time as the user wrote it: RFC 3339, local wall-clock time in the service's zone, or
/// a duration from now (`+2h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSpec {
    Absolute(DateTime<Utc>),
    Local(NaiveDateTime),
    /// `+DURATION`: that long after the command runs.
    FromNow(Span),
}

impl TimeSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(TimeSpec::Absolute(t.with_timezone(&Utc)));
        }
        for format in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(TimeSpec::Local(t));
            }
        }
        if let Some(span) = text.strip_prefix('+').and_then(|d| d.parse::<Span>().ok()) {
            return Ok(TimeSpec::FromNow(span));
        }
        Err(format!(
            "`{text}` is not a time (use `+2h` or `+3d` from now, `YYYY-MM-DD HH:MM` in the service's time zone, or RFC 3339 like 2026-12-01T22:00:00+01:00)"
        ))
    }
}

/// Every command a person can give. `help` matches this exhaustively (see `help.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    Help {
        topic: Option<String>,
    },
    Open {
        service: String,
        title: String,
        env: Option<String>,
        change_type: Option<ChangeType>,
        risk: Option<Risk>,
        duration: Option<Span>,
    },
    Show {
        id: ChangeId,
    },
    History {
        id: ChangeId,
    },
    Explain {
        id: ChangeId,
    },
    List {
        state: Option<State>,
        service: Option<String>,
        mine: bool,
    },
    Approve {
        id: ChangeId,
        comment: String,
    },
    Reject {
        id: ChangeId,
        reason: String,
    },
    Cancel {
        id: ChangeId,
        reason: String,
    },
    Schedule {
        id: ChangeId,
        at: Option<TimeSpec>,
    },
    Close {
        id: ChangeId,
        review: String,
    },
    ReleaseNow {
        id: ChangeId,
        reason: String,
    },
    ReleaseStatus {
        id: ChangeId,
    },
    /// Puts a change's parked deliveries back in the queue.
    ReleaseRetry {
        id: ChangeId,
    },
    Calendar {
        days: Option<u32>,
        service: Option<String>,
    },
    FreezeStart {
        name: String,
        until: TimeSpec,
        service: Option<String>,
        reason: String,
    },
    FreezeEnd {
        name: String,
    },
    FreezeList,
    /// Delivery and change KPIs over the last `days` days (default 30).
    Metrics {
        days: Option<u32>,
        service: Option<String>,
        environment: Option<String>,
    },
}

/// A command that did not parse: what was wrong and how the command is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", message.replace('\n', "\\n"), usage.as_ref().map(|u| format!("\nusage: {u}")).unwrap_or_default())]
pub struct ParseError {
    pub message: String,
    pub usage: Option<&'static str>,
}

impl Command {
    /// Whether the command only reads (no transaction, nothing audited).
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Command::Help { .. }
                | Command::Show { .. }
                | Command::History { .. }
                | Command::Explain { .. }
                | Command::List { .. }
                | Command::ReleaseStatus { .. }
                | Command::Calendar { .. }
                | Command::FreezeList
                | Command::Metrics { .. }
        )
    }

    /// The change the command is about, if any.
    pub fn change_id(&self) -> Option<ChangeId> {
        match self {
            Command::Show { id }
            | Command::History { id }
            | Command::Explain { id }
            | Command::Approve { id, .. }
            | Command::Reject { id, .. }
            | Command::Cancel { id, .. }
            | Command::Schedule { id, .. }
            | Command::Close { id, .. }
            | Command::ReleaseNow { id, .. }
            | Command::ReleaseStatus { id }
            | Command::ReleaseRetry { id } => Some(*id),
            _ => None,
        }
    }
}

/// Splits a line into words; double or single quotes group words (`"two words"`).
pub fn tokenize(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') if !in_word || current.is_empty() => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(ParseError {
            message: "unclosed quote".into(),
            usage: None,
        });
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// Parses one command line (without a leading `/` or bot mention).
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let words = tokenize(line)?;
    parse_words(&words)
}

impl fmt::Display for TimeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeSpec::Absolute(t) => write!(f, "{}", t.to_rfc3339()),
            TimeSpec::Local(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M")),
            TimeSpec::FromNow(d) => write!(f, "+{d}"),
        }
    }
}

/// Parses already split words.
pub fn parse_words(words: &[String]) -> Result<Command, ParseError> {
    super::parser::parse_words(words)
}
