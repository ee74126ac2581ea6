//! One topic per command; its words, summary and arguments are defined once in `spec.rs`, and
//! the usage line is derived from them. `Command::topic` matches the command enum exhaustively,
//! so a new command cannot compile without a topic, and a topic without a definition fails the
//! spec tests.

use super::grammar::Command;
use super::spec::{self, ArgKind, CommandDef};

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
    Metrics,
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
        Topic::Metrics,
    ];

    /// The command's definition: words, summary and arguments (`spec.rs`).
    pub fn def(self) -> &'static CommandDef {
        spec::def(self)
    }

    /// The words that name the command.
    pub fn words(self) -> &'static [&'static str] {
        self.def().words
    }

    /// The usage line, derived from the definition.
    pub fn usage(self) -> &'static str {
        spec::usage_line(self)
    }

    pub fn summary(self) -> &'static str {
        self.def().summary
    }

    /// The topics `help WORDS…` asks about: every command whose words start with them
    /// (`help change`), or, when none does, whose words after the first do (`help approve`
    /// finds `change approve`).
    pub fn matching(words: &[String]) -> Vec<Topic> {
        let words: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
        let starts = |own: &[&str]| {
            !own.is_empty()
                && words.len() <= own.len()
                && words.iter().zip(own).all(|(a, b)| a == b)
        };
        let by_first: Vec<Topic> = Topic::ALL
            .iter()
            .copied()
            .filter(|t| starts(t.words()))
            .collect();
        if !by_first.is_empty() || words.is_empty() {
            return by_first;
        }
        Topic::ALL
            .iter()
            .copied()
            .filter(|t| starts(t.words().get(1..).unwrap_or_default()))
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
            Command::Metrics { .. } => Topic::Metrics,
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
    let one = topics.len() == 1;
    for t in topics {
        out.push_str(&format!("  {}\n      {}\n", t.usage(), t.summary()));
        for a in t.def().args.iter().filter(|_| one) {
            let choices = match a.kind {
                ArgKind::Choice(words) => format!("; one of: {}", words.join(", ")),
                _ => String::new(),
            };
            let what = spec::synopsis(a);
            out.push_str(&format!("      {what}: {}{choices}\n", a.help));
        }
    }
    Ok(out.trim_end().to_string())
}

/// The command reference of `docs/chat.md`, generated from the same definitions as `help`:
/// per command its summary, usage line and a table of its arguments (`tests/docs.rs` checks
/// that the doc holds exactly this text).
pub fn markdown_reference() -> String {
    let mut out = String::new();
    let mut group = "";
    for def in spec::commands() {
        // Commands of more than one word are grouped under their first word.
        let level = match def.words {
            [_] => "###",
            [first, ..] if *first != group => {
                group = first;
                out.push_str(&format!("\n### `{first} …`\n"));
                "####"
            }
            _ => "####",
        };
        out.push_str(&format!(
            "\n{level} `{}`\n\n{}.\n\n```text\n{}\n```\n",
            def.words.join(" "),
            capitalized(def.summary),
            spec::usage(def)
        ));
        if def.args.is_empty() {
            out.push_str("\nNo arguments.\n");
            continue;
        }
        out.push_str("\n| argument | value | required | meaning |\n|---|---|---|---|\n");
        for a in def.args {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                spec::synopsis(a),
                value_kind(a),
                if a.required { "yes" } else { "no" },
                a.help.replace('|', "\\|")
            ));
        }
    }
    out.trim_start().to_string()
}

/// What an argument's value is, in words, for the reference.
fn value_kind(a: &spec::ArgDef) -> String {
    use spec::Place::{Flag, Positional};
    match (a.kind, a.place) {
        (ArgKind::ChangeId, _) => "a change id: `CHG-12` or `12`".into(),
        (ArgKind::Service, _) => "a configured service".into(),
        (ArgKind::Environment, _) => "an environment of the service".into(),
        (ArgKind::Word, _) if a.name == "duration" => "a duration: `90m`, `2h`, `1d`".into(),
        (ArgKind::Word, _) => "one word".into(),
        (ArgKind::Text, Positional) => "text: the rest of the line".into(),
        (ArgKind::Text, Flag) => "text: every word up to the next flag".into(),
        (ArgKind::Time, _) => "a time (see [Times](#times))".into(),
        (ArgKind::Switch, _) => "none (a switch)".into(),
        (ArgKind::Integer { min, max }, _) => format!("a whole number from {min} to {max}"),
        (ArgKind::Choice(words), _) => {
            let words: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
            format!("one of {}", words.join(", "))
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}
