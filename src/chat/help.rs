//! One entry per command: its words, usage line and summary. `Command::topic` matches the command
//! enum exhaustively, so a new command cannot compile without its help text.

use super::grammar::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Help,
    ChangeOpen,
    ChangeShow,
    ChangeHistory,
    ChangeExplain,
    ChangeList,
    ChangeApprove,
    ChangeReject,
    ChangeCancel,
    ChangeSchedule,
    ChangeClose,
    ReleaseNow,
    ReleaseStatus,
    ReleaseRetry,
    Calendar,
    FreezeStart,
    FreezeEnd,
    FreezeList,
}

impl Topic {
    pub const ALL: &'static [Topic] = &[
        Topic::Help,
        Topic::ChangeOpen,
        Topic::ChangeShow,
        Topic::ChangeHistory,
        Topic::ChangeExplain,
        Topic::ChangeList,
        Topic::ChangeApprove,
        Topic::ChangeReject,
        Topic::ChangeCancel,
        Topic::ChangeSchedule,
        Topic::ChangeClose,
        Topic::ReleaseNow,
        Topic::ReleaseStatus,
        Topic::ReleaseRetry,
        Topic::Calendar,
        Topic::FreezeStart,
        Topic::FreezeEnd,
        Topic::FreezeList,
    ];

    /// The words that name the command.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Topic::Help => &["help"],
            Topic::ChangeOpen => &["change", "open"],
            Topic::ChangeShow => &["change", "show"],
            Topic::ChangeHistory => &["change", "history"],
            Topic::ChangeExplain => &["change", "explain"],
            Topic::ChangeList => &["change", "list"],
            Topic::ChangeApprove => &["change", "approve"],
            Topic::ChangeReject => &["change", "reject"],
            Topic::ChangeCancel => &["change", "cancel"],
            Topic::ChangeSchedule => &["change", "schedule"],
            Topic::ChangeClose => &["change", "close"],
            Topic::ReleaseNow => &["release", "now"],
            Topic::ReleaseStatus => &["release", "status"],
            Topic::ReleaseRetry => &["release", "retry"],
            Topic::Calendar => &["calendar"],
            Topic::FreezeStart => &["freeze", "start"],
            Topic::FreezeEnd => &["freeze", "end"],
            Topic::FreezeList => &["freeze", "list"],
        }
    }

    pub fn usage(self) -> &'static str {
        match self {
            Topic::Help => "help [COMMAND]",
            Topic::ChangeOpen => {
                "change open SERVICE TITLE… [--env ENV] [--type standard|normal|emergency] [--risk low|medium|high] [--duration D]"
            }
            Topic::ChangeShow => "change show CHG-N",
            Topic::ChangeHistory => "change history CHG-N",
            Topic::ChangeExplain => "change explain CHG-N",
            Topic::ChangeList => "change list [--state STATE] [--service SERVICE] [--mine]",
            Topic::ChangeApprove => "change approve CHG-N [COMMENT…]",
            Topic::ChangeReject => "change reject CHG-N REASON…",
            Topic::ChangeCancel => "change cancel CHG-N [REASON…]",
            Topic::ChangeSchedule => "change schedule CHG-N [--at TIME]",
            Topic::ChangeClose => "change close CHG-N --review TEXT…",
            Topic::ReleaseNow => "release now CHG-N --reason TEXT…",
            Topic::ReleaseStatus => "release status CHG-N",
            Topic::ReleaseRetry => "release retry CHG-N",
            Topic::Calendar => "calendar [--days N] [--service SERVICE]",
            Topic::FreezeStart => {
                "freeze start NAME --until TIME [--service SERVICE] --reason TEXT…"
            }
            Topic::FreezeEnd => "freeze end NAME",
            Topic::FreezeList => "freeze list",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Topic::Help => "list the commands, or explain one",
            Topic::ChangeOpen => {
                "open a change record (default: production, normal, medium risk, the service's duration)"
            }
            Topic::ChangeShow => "show a change: state, approvals, booked slot",
            Topic::ChangeHistory => "the audit trail of a change, oldest first",
            Topic::ChangeExplain => "what blocks a change and who or what would unblock it",
            Topic::ChangeList => "list changes, newest first",
            Topic::ChangeApprove => "approve a change (withdraws your earlier rejection)",
            Topic::ChangeReject => "reject a change; it is blocked until you approve it",
            Topic::ChangeCancel => "cancel a change that has not started",
            Topic::ChangeSchedule => "book an authorized change at TIME, or at the next legal slot",
            Topic::ChangeClose => "close a change in review with a post-implementation review",
            Topic::ReleaseNow => "break-glass: release an approved emergency change now",
            Topic::ReleaseStatus => "the deployment of a change and its attempts",
            Topic::ReleaseRetry => {
                "send a change's parked deliveries (notices, deployment calls) again"
            }
            Topic::Calendar => "windows, freezes and booked changes ahead (default 7 days)",
            Topic::FreezeStart => "freeze deployments until TIME (one service, or all)",
            Topic::FreezeEnd => "end a freeze started from chat",
            Topic::FreezeList => "freezes in force or ahead",
        }
    }

    /// The topic `help WORDS…` asks about: exact words, or every command starting with them.
    pub fn matching(words: &[String]) -> Vec<Topic> {
        let words: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
        Topic::ALL
            .iter()
            .copied()
            .filter(|t| {
                let own = t.words();
                words.len() <= own.len() && words.iter().zip(own).all(|(a, b)| a == b)
            })
            .collect()
    }
}

impl Command {
    pub fn topic(&self) -> Topic {
        match self {
            Command::Help { .. } => Topic::Help,
            Command::Open { .. } => Topic::ChangeOpen,
            Command::Show { .. } => Topic::ChangeShow,
            Command::History { .. } => Topic::ChangeHistory,
            Command::Explain { .. } => Topic::ChangeExplain,
            Command::List { .. } => Topic::ChangeList,
            Command::Approve { .. } => Topic::ChangeApprove,
            Command::Reject { .. } => Topic::ChangeReject,
            Command::Cancel { .. } => Topic::ChangeCancel,
            Command::Schedule { .. } => Topic::ChangeSchedule,
            Command::Close { .. } => Topic::ChangeClose,
            Command::ReleaseNow { .. } => Topic::ReleaseNow,
            Command::ReleaseStatus { .. } => Topic::ReleaseStatus,
            Command::ReleaseRetry { .. } => Topic::ReleaseRetry,
            Command::Calendar { .. } => Topic::Calendar,
            Command::FreezeStart { .. } => Topic::FreezeStart,
            Command::FreezeEnd { .. } => Topic::FreezeEnd,
            Command::FreezeList => Topic::FreezeList,
        }
    }
}

/// The text of `help [COMMAND]`.
pub fn help_text(topic: Option<&str>) -> Result<String, String> {
    let topics = match topic {
        None => Topic::ALL.to_vec(),
        Some(words) => {
            let words: Vec<String> = words.split_whitespace().map(str::to_string).collect();
            let found = Topic::matching(&words);
            if found.is_empty() {
                return Err(format!("no command `{}`; try `help`", words.join(" ")));
            }
            found
        }
    };
    let mut out = String::new();
    if topic.is_none() {
        out.push_str("Commands (TIME: RFC 3339 or `YYYY-MM-DD HH:MM` in the service's zone):\n");
    }
    for t in topics {
        out.push_str(&format!("  {}\n      {}\n", t.usage(), t.summary()));
    }
    Ok(out.trim_end().to_string())
}
