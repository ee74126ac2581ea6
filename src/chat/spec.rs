//! The chat grammar as data: one `CommandDef` per command, with its words, summary and
//! arguments. The parser takes each command's flags and positional arguments from it, help
//! derives usage lines from it, and Discord slash commands are registered from it, so the
//! three cannot drift apart. Names and texts respect Discord's limits (checked by the tests).

use std::sync::OnceLock;

use super::help::Topic;
use crate::domain::{ChangeType, Risk, State};

/// What an argument holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// `CHG-12` (or `12`).
    ChangeId,
    /// A configured service name.
    Service,
    /// An environment name of the service.
    Environment,
    /// One word (a freeze name, a duration, ...).
    Word,
    /// Free text, may be several words.
    Text,
    /// RFC 3339 or `YYYY-MM-DD HH:MM` in the service's zone.
    Time,
    /// A flag without a value (`--mine`).
    Switch,
    Integer {
        min: i64,
        max: i64,
    },
    /// One of these words.
    Choice(&'static [&'static str]),
}

/// Where an argument goes on a command line: in order after the command words, or as `--name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Positional,
    Flag,
}

/// One argument of a command. `name` is also its Discord option name.
#[derive(Debug, Clone, Copy)]
pub struct ArgDef {
    pub name: &'static str,
    pub kind: ArgKind,
    pub place: Place,
    pub required: bool,
    pub help: &'static str,
}

/// One command: the words that name it, what it does, and its arguments (required ones first;
/// positional ones in the order they are typed).
#[derive(Debug, Clone, Copy)]
pub struct CommandDef {
    pub topic: Topic,
    pub words: &'static [&'static str],
    pub summary: &'static str,
    pub args: &'static [ArgDef],
}

impl CommandDef {
    /// The argument called `name`, if the command has one.
    pub fn arg(&self, name: &str) -> Option<&'static ArgDef> {
        self.args.iter().find(|a| a.name == name)
    }

    /// The arguments in `place`, in definition order.
    pub fn args_in(&self, place: Place) -> impl Iterator<Item = &'static ArgDef> {
        self.args.iter().filter(move |a| a.place == place)
    }
}

const fn arg(
    name: &'static str,
    kind: ArgKind,
    place: Place,
    required: bool,
    help: &'static str,
) -> ArgDef {
    ArgDef {
        name,
        kind,
        place,
        required,
        help,
    }
}
const fn needed(name: &'static str, kind: ArgKind, help: &'static str) -> ArgDef {
    arg(name, kind, Place::Positional, true, help)
}
const fn optional(name: &'static str, kind: ArgKind, help: &'static str) -> ArgDef {
    arg(name, kind, Place::Positional, false, help)
}
const fn flag(name: &'static str, kind: ArgKind, help: &'static str) -> ArgDef {
    arg(name, kind, Place::Flag, false, help)
}
const fn needed_flag(name: &'static str, kind: ArgKind, help: &'static str) -> ArgDef {
    arg(name, kind, Place::Flag, true, help)
}

use ArgKind::{ChangeId, Choice, Environment, Integer, Service, Switch, Text, Time, Word};

const ID: ArgDef = needed("id", ChangeId, "the change, e.g. CHG-12");
const ONLY_ID: &[ArgDef] = &[ID];

static COMMANDS: &[CommandDef] = &[
    CommandDef {
        topic: Topic::Help,
        words: &["help"],
        summary: "list the commands, or explain one",
        args: &[optional(
            "topic",
            Text,
            "a command or its first word, e.g. `change open` or `freeze`",
        )],
    },
    CommandDef {
        topic: Topic::ChangeOpen,
        words: &["change", "open"],
        summary: "open a change record (default: production, normal, medium risk, the service's duration)",
        args: &[
            needed(
                "service",
                Service,
                "the configured service the change is for",
            ),
            needed("title", Text, "what the change does, in a few words"),
            flag(
                "env",
                Environment,
                "the environment to deploy to (default: production)",
            ),
            flag(
                "type",
                Choice(ChangeType::WORDS),
                "how it is authorized (default: normal)",
            ),
            flag(
                "risk",
                Choice(Risk::WORDS),
                "your risk assessment (default: medium)",
            ),
            flag(
                "duration",
                Word,
                "how long the release takes, e.g. 90m or 2h (default: the service's)",
            ),
        ],
    },
    CommandDef {
        topic: Topic::ChangeShow,
        words: &["change", "show"],
        summary: "show a change: state, approvals, booked slot",
        args: ONLY_ID,
    },
    CommandDef {
        topic: Topic::ChangeHistory,
        words: &["change", "history"],
        summary: "the audit trail of a change, oldest first",
        args: ONLY_ID,
    },
    CommandDef {
        topic: Topic::ChangeExplain,
        words: &["change", "explain"],
        summary: "what blocks a change and who or what would unblock it",
        args: ONLY_ID,
    },
    CommandDef {
        topic: Topic::ChangeList,
        words: &["change", "list"],
        summary: "list changes, newest first",
        args: &[
            flag("state", Choice(State::WORDS), "only changes in this state"),
            flag("service", Service, "only changes to this service"),
            flag("mine", Switch, "only changes you requested"),
        ],
    },
    CommandDef {
        topic: Topic::ChangeApprove,
        words: &["change", "approve"],
        summary: "approve a change (withdraws your earlier rejection)",
        args: &[ID, optional("comment", Text, "a comment for the record")],
    },
    CommandDef {
        topic: Topic::ChangeReject,
        words: &["change", "reject"],
        summary: "reject a change; it is blocked until you approve it",
        args: &[ID, needed("reason", Text, "why you reject it")],
    },
    CommandDef {
        topic: Topic::ChangeCancel,
        words: &["change", "cancel"],
        summary: "cancel a change that has not started",
        args: &[ID, optional("reason", Text, "why it is canceled")],
    },
    CommandDef {
        topic: Topic::ChangeSchedule,
        words: &["change", "schedule"],
        summary: "book an authorized change at TIME, or at the next legal slot",
        args: &[
            ID,
            flag(
                "at",
                Time,
                "when to release: RFC 3339 or `YYYY-MM-DD HH:MM` (default: the next legal slot)",
            ),
        ],
    },
    CommandDef {
        topic: Topic::ChangeClose,
        words: &["change", "close"],
        summary: "close a change in review with a post-implementation review",
        args: &[
            ID,
            needed_flag(
                "review",
                Text,
                "the post-implementation review: how it went",
            ),
        ],
    },
    CommandDef {
        topic: Topic::ReleaseNow,
        words: &["release", "now"],
        summary: "break-glass: release an approved emergency change now",
        args: &[
            ID,
            needed_flag("reason", Text, "why this cannot wait for a slot"),
        ],
    },
    CommandDef {
        topic: Topic::ReleaseStatus,
        words: &["release", "status"],
        summary: "the deployment of a change and its attempts",
        args: ONLY_ID,
    },
    CommandDef {
        topic: Topic::ReleaseRetry,
        words: &["release", "retry"],
        summary: "send a change's parked deliveries (notices, deployment calls) again",
        args: ONLY_ID,
    },
    CommandDef {
        topic: Topic::Calendar,
        words: &["calendar"],
        summary: "windows, freezes and booked changes ahead (default 7 days)",
        args: &[
            flag(
                "days",
                Integer { min: 1, max: 366 },
                "how many days ahead (default: 7)",
            ),
            flag("service", Service, "only this service"),
        ],
    },
    CommandDef {
        topic: Topic::FreezeStart,
        words: &["freeze", "start"],
        summary: "freeze deployments until TIME (one service, or all)",
        args: &[
            needed("name", Word, "a name for the freeze, to end it by"),
            needed_flag(
                "until",
                Time,
                "when it ends: RFC 3339 or `YYYY-MM-DD HH:MM`",
            ),
            needed_flag("reason", Text, "why deployments are frozen"),
            flag(
                "service",
                Service,
                "freeze only this service (default: all services)",
            ),
        ],
    },
    CommandDef {
        topic: Topic::FreezeEnd,
        words: &["freeze", "end"],
        summary: "end a freeze started from chat",
        args: &[needed("name", Word, "the freeze's name")],
    },
    CommandDef {
        topic: Topic::FreezeList,
        words: &["freeze", "list"],
        summary: "freezes in force or ahead",
        args: &[],
    },
    CommandDef {
        topic: Topic::Metrics,
        words: &["metrics"],
        summary: "delivery and change KPIs over the last days (default 30)",
        args: &[
            flag(
                "days",
                Integer { min: 1, max: 366 },
                "how many days back (default: 30)",
            ),
            flag("service", Service, "only this service"),
            flag("env", Environment, "only this environment"),
        ],
    },
];

/// Every command, in help order.
pub fn commands() -> &'static [CommandDef] {
    COMMANDS
}

fn index(topic: Topic) -> usize {
    COMMANDS
        .iter()
        .position(|d| d.topic == topic)
        .unwrap_or_else(|| panic!("no CommandDef for {topic:?} (spec tests check every topic)"))
}

pub fn def(topic: Topic) -> &'static CommandDef {
    &COMMANDS[index(topic)]
}

/// How an argument's value is shown: `CHG-N`, `SERVICE`, `TITLE…`, `TEXT…` (a flag's text).
pub fn placeholder(arg: &ArgDef) -> String {
    match (arg.kind, arg.place) {
        (ChangeId, _) => "CHG-N".into(),
        (Service, _) => "SERVICE".into(),
        (Environment, _) => "ENV".into(),
        (Time, _) => "TIME".into(),
        (Integer { .. }, _) => "N".into(),
        (Switch, _) => String::new(),
        (Text, Place::Flag) => "TEXT…".into(),
        (Text, Place::Positional) => format!("{}…", arg.name.to_ascii_uppercase()),
        (Word | Choice(_), _) => arg.name.to_ascii_uppercase(),
    }
}

/// An argument as typed: `SERVICE`, `--env ENV`, `--mine`.
pub fn synopsis(arg: &ArgDef) -> String {
    match (arg.place, arg.kind) {
        (Place::Positional, _) => placeholder(arg),
        (Place::Flag, Switch) => format!("--{}", arg.name),
        (Place::Flag, _) => format!("--{} {}", arg.name, placeholder(arg)),
    }
}

/// The usage line derived from the definition (e.g. `change open SERVICE TITLE… [--env ENV] [--type TYPE] ...`).
pub fn usage(def: &CommandDef) -> String {
    let positional = def.args_in(Place::Positional);
    let parts = def.words.iter().map(|w| w.to_string());
    let args = positional.chain(def.args_in(Place::Flag)).map(|a| {
        let s = synopsis(a);
        if a.required { s } else { format!("[{s}]") }
    });
    parts.chain(args).collect::<Vec<_>>().join(" ")
}

/// `usage(def(topic))`, computed once, for error messages and help.
pub fn usage_line(topic: Topic) -> &'static str {
    static LINES: OnceLock<Vec<String>> = OnceLock::new();
    let lines = LINES.get_or_init(|| COMMANDS.iter().map(usage).collect());
    &lines[index(topic)]
}

/// The words of a command line built from named values, as a slash command delivers them
/// (positional values in definition order, then `--flag value` / `--switch`): feed to
/// `chat::parse_words`. Values are NOT re-tokenized (a value may contain spaces or quotes).
/// Unknown names are an error naming the command's options.
///
/// An empty value counts as not given; a switch takes `true` or `false`. A value that starts
/// with `--` would read as a flag and is refused, as is a positional value after a missing one
/// (it would take the missing one's place).
pub fn words_from_options(
    def: &CommandDef,
    values: &[(&str, String)],
) -> Result<Vec<String>, String> {
    let command = def.words.join(" ");
    for (i, (name, _)) in values.iter().enumerate() {
        if def.arg(name).is_none() {
            let names: Vec<&str> = def.args.iter().map(|a| a.name).collect();
            return Err(if names.is_empty() {
                format!("`{command}` takes no options (got `{name}`)")
            } else {
                format!(
                    "`{command}` has no option `{name}` (options: {})",
                    names.join(", ")
                )
            });
        }
        if values[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("`{command}`: option `{name}` given twice"));
        }
    }
    let value = |a: &ArgDef| {
        let found = values.iter().find(|(n, _)| *n == a.name);
        found.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    };
    let not_a_flag = |a: &ArgDef, v: &str| match v.starts_with("--") {
        true => Err(format!("`{command}`: `{}` may not start with `--`", a.name)),
        false => Ok(()),
    };
    let mut words: Vec<String> = def.words.iter().map(|w| w.to_string()).collect();
    let mut skipped: Option<&str> = None;
    for a in def.args_in(Place::Positional) {
        match (value(a), skipped) {
            (None, _) => skipped = skipped.or(Some(a.name)),
            (Some(_), Some(missing)) => {
                return Err(format!("`{command}`: `{}` needs `{missing}` first", a.name));
            }
            (Some(v), None) => {
                not_a_flag(a, v)?;
                words.push(v.to_string());
            }
        }
    }
    for a in def.args_in(Place::Flag) {
        let Some(v) = value(a) else { continue };
        if a.kind == Switch {
            match v.to_ascii_lowercase().as_str() {
                "true" => words.push(format!("--{}", a.name)),
                "false" => {}
                _ => return Err(format!("`{command}`: `{}` is true or false", a.name)),
            }
            continue;
        }
        not_a_flag(a, v)?;
        words.push(format!("--{}", a.name));
        words.push(v.to_string());
    }
    Ok(words)
}

#[cfg(test)]
mod tests;
