//! Words → `Command`, as `spec` defines each command. Flags may appear anywhere after the
//! command words; `TEXT…` flags take every word up to the next flag; a TIME may be one word
//! (RFC 3339) or two (`YYYY-MM-DD HH:MM`). Positional words fill the positional arguments in
//! definition order; a TEXT positional takes the rest.

use std::collections::BTreeMap;

use super::grammar::{Command, ParseError, TimeSpec};
use super::help::Topic;
use super::spec::{self, ArgDef, ArgKind, CommandDef, Place};
use crate::domain::{ChangeId, limits};

/// A command's arguments by name, checked against its definition: every required one is
/// there, and change ids, times and integers are well formed.
struct Args {
    def: &'static CommandDef,
    values: BTreeMap<&'static str, String>,
}

impl Args {
    fn bind(def: &'static CommandDef, words: &[String]) -> Result<Args, ParseError> {
        let mut args = Args {
            def,
            values: BTreeMap::new(),
        };
        let mut positional = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let word = &words[i];
            let Some(name) = word.strip_prefix("--") else {
                positional.push(word.clone());
                i += 1;
                continue;
            };
            let Some(a) = def.args_in(Place::Flag).find(|a| a.name == name) else {
                let known: Vec<String> = def
                    .args_in(Place::Flag)
                    .map(|a| format!("--{}", a.name))
                    .collect();
                let hint = if known.is_empty() {
                    "it takes no flags".to_string()
                } else {
                    format!("known: {}", known.join(", "))
                };
                return Err(args.error(format!("unknown flag `{word}` ({hint})")));
            };
            let flag = a.name;
            if args.values.contains_key(flag) {
                return Err(args.error(format!("`--{flag}` given twice")));
            }
            i += 1;
            let value = match a.kind {
                ArgKind::Switch => String::new(),
                ArgKind::Time => {
                    let first = words
                        .get(i)
                        .ok_or_else(|| args.error(format!("`--{flag}` needs a time")))?;
                    i += 1;
                    match words.get(i) {
                        Some(next) if looks_like_clock(next) && !first.contains('T') => {
                            i += 1;
                            format!("{first} {next}")
                        }
                        _ => first.clone(),
                    }
                }
                ArgKind::Text => {
                    let start = i;
                    while i < words.len() && !words[i].starts_with("--") {
                        i += 1;
                    }
                    if start == i {
                        return Err(args.error(format!("`--{flag}` needs text")));
                    }
                    words[start..i].join(" ")
                }
                _ => {
                    let v = words.get(i).filter(|w| !w.starts_with("--"));
                    let v = v.ok_or_else(|| args.error(format!("`--{flag}` needs a value")))?;
                    i += 1;
                    v.clone()
                }
            };
            args.values.insert(flag, value);
        }
        let mut rest = positional.into_iter();
        for a in def.args_in(Place::Positional) {
            let value = match a.kind {
                ArgKind::Text => Some(rest.by_ref().collect::<Vec<_>>().join(" ")),
                _ => rest.next(),
            };
            match value {
                Some(v) if !(a.kind == ArgKind::Text && v.trim().is_empty()) => {
                    args.check(a, &v)?;
                    args.values.insert(a.name, v);
                }
                _ if a.required => return Err(args.missing(a)),
                _ => {}
            }
        }
        if let Some(extra) = rest.next() {
            return Err(args.error(format!("unexpected `{extra}`")));
        }
        for a in def.args_in(Place::Flag) {
            match args.values.get(a.name) {
                Some(v) if !(a.required && a.kind == ArgKind::Text && v.trim().is_empty()) => {
                    args.check(a, v)?;
                }
                _ if a.required => return Err(args.missing(a)),
                _ => {}
            }
        }
        Ok(args)
    }

    fn error(&self, message: String) -> ParseError {
        ParseError {
            message,
            usage: Some(spec::usage_line(self.def.topic)),
        }
    }

    /// A required argument is missing: say so, in the command's own words where it has them.
    fn missing(&self, a: &ArgDef) -> ParseError {
        let message = match (self.def.topic, a.name) {
            _ if a.kind == ArgKind::ChangeId => "which change? give its id, e.g. CHG-12",
            (Topic::ChangeOpen, "title") => "missing TITLE: say what the change does",
            (Topic::ChangeReject, "reason") => "say why: a rejection needs a REASON",
            (Topic::ChangeClose, "review") => {
                "closing needs a post-implementation review: --review TEXT…"
            }
            (Topic::ReleaseNow, "reason") => "break-glass needs --reason TEXT…",
            _ => return self.error(format!("missing {}", spec::synopsis(a))),
        };
        self.error(message.to_string())
    }

    /// Checks the kinds whose form the grammar knows: ids, times and integers.
    fn check(&self, a: &ArgDef, value: &str) -> Result<(), ParseError> {
        let label = match a.place {
            Place::Flag => format!("--{}", a.name),
            Place::Positional => spec::placeholder(a),
        };
        match a.kind {
            ArgKind::ChangeId => value
                .parse::<ChangeId>()
                .map(drop)
                .map_err(|e| self.error(e.to_string())),
            ArgKind::Time => TimeSpec::parse(value)
                .map(drop)
                .map_err(|e| self.error(format!("{label}: {e}"))),
            ArgKind::Integer { min, max } => match value.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(()),
                _ => Err(self.error(format!(
                    "{label} must be a whole number from {min} to {max}"
                ))),
            },
            _ => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(
            self.def.arg(name).is_some(),
            "`{name}` is not an argument of {:?}",
            self.def.topic
        );
        self.values.get(name).map(String::as_str)
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    fn required(&self, name: &str) -> Result<String, ParseError> {
        let missing = || match self.def.arg(name) {
            Some(a) => self.missing(a),
            None => self.error(format!("missing {name}")),
        };
        self.text(name).ok_or_else(missing)
    }

    fn switch(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn id(&self) -> Result<ChangeId, ParseError> {
        let id = self.required("id")?;
        id.parse()
            .map_err(|e: crate::domain::DomainError| self.error(e.to_string()))
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ParseError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| self.error(format!("--{name}: {e}")))
            })
            .transpose()
    }

    fn time(&self, name: &str) -> Result<Option<TimeSpec>, ParseError> {
        self.get(name)
            .map(|v| TimeSpec::parse(v).map_err(|e| self.error(format!("--{name}: {e}"))))
            .transpose()
    }

    fn required_time(&self, name: &str) -> Result<TimeSpec, ParseError> {
        let text = self.required(name)?;
        TimeSpec::parse(&text).map_err(|e| self.error(format!("--{name}: {e}")))
    }
}

fn looks_like_clock(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 5 && b[2] == b':' && [0, 1, 3, 4].iter().all(|i| b[*i].is_ascii_digit())
}

pub(super) fn parse_words(words: &[String]) -> Result<Command, ParseError> {
    // Control characters never belong in a command; newlines and tabs only inside text that
    // may span lines (checked per field below). Nothing is echoed back raw.
    if let Some((n, at, c)) = words
        .iter()
        .enumerate()
        .find_map(|(n, w)| limits::unwanted_char(w, &['\n', '\t']).map(|(at, c)| (n, at, c)))
    {
        // Say where: the words before it, which are plain text.
        let before: String = words[..n].join(" ").chars().take(60).collect();
        let what = if before.is_empty() {
            "first word".to_string()
        } else {
            format!("word after `{before}`")
        };
        return Err(ParseError {
            message: format!("{}; use plain text", limits::describe_char(&what, at, c)),
            usage: None,
        });
    }
    let lower: Vec<String> = words
        .iter()
        .take(2)
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let def = spec::commands().iter().find(|d| {
        let own = d.words;
        lower.len() >= own.len() && own.iter().zip(&lower).all(|(a, b)| a == b)
    });
    let Some(def) = def else {
        let message = match lower.first() {
            None => "say something: try `help`".to_string(),
            Some(first) => {
                let near = Topic::matching(&lower[..1]);
                let named: Vec<String> = near
                    .iter()
                    .map(|t| format!("`{}`", t.words().join(" ")))
                    .collect();
                match near.first() {
                    None if first.starts_with('-') => format!(
                        "`{first}` is a flag, and a command starts with its words: \
                         flags come after them, e.g. `change list --state scheduled`; try `help`"
                    ),
                    None => format!("unknown command `{first}`; try `help`"),
                    // `approve`: the command's last word alone.
                    Some(t) if t.words().first() != Some(&first.as_str()) => format!(
                        "unknown command `{first}`; did you mean {}?",
                        named.join(" or ")
                    ),
                    Some(_) => format!(
                        "unknown command `{}`; try `help {first}`",
                        words.iter().take(2).cloned().collect::<Vec<_>>().join(" ")
                    ),
                }
            }
        };
        return Err(ParseError {
            message,
            usage: None,
        });
    };
    let a = Args::bind(def, &words[def.words.len()..])?;
    let cmd = match def.topic {
        Topic::Help => Command::Help {
            topic: a.text("topic"),
        },
        Topic::ChangeOpen => Command::Open {
            service: a.required("service")?,
            title: a.required("title")?,
            env: a.text("env"),
            change_type: a.parsed("type")?,
            risk: a.parsed("risk")?,
            duration: a.parsed("duration")?,
        },
        Topic::ChangeShow => Command::Show { id: a.id()? },
        Topic::ChangeHistory => Command::History { id: a.id()? },
        Topic::ChangeExplain => Command::Explain { id: a.id()? },
        Topic::ReleaseStatus => Command::ReleaseStatus { id: a.id()? },
        Topic::ReleaseRetry => Command::ReleaseRetry { id: a.id()? },
        Topic::ChangeList => Command::List {
            state: a.parsed("state")?,
            service: a.text("service"),
            mine: a.switch("mine"),
        },
        Topic::ChangeApprove => Command::Approve {
            id: a.id()?,
            comment: a.text("comment").unwrap_or_default(),
        },
        Topic::ChangeReject => Command::Reject {
            id: a.id()?,
            reason: a.required("reason")?,
        },
        Topic::ChangeCancel => Command::Cancel {
            id: a.id()?,
            reason: a.text("reason").unwrap_or_default(),
        },
        Topic::ChangeSchedule => Command::Schedule {
            id: a.id()?,
            at: a.time("at")?,
        },
        Topic::ChangeClose => Command::Close {
            id: a.id()?,
            review: a.required("review")?,
        },
        Topic::ReleaseNow => Command::ReleaseNow {
            id: a.id()?,
            reason: a.required("reason")?,
        },
        Topic::Calendar => Command::Calendar {
            days: a.parsed("days")?,
            service: a.text("service"),
        },
        Topic::FreezeStart => Command::FreezeStart {
            name: a.required("name")?,
            until: a.required_time("until")?,
            service: a.text("service"),
            reason: a.required("reason")?,
        },
        Topic::FreezeEnd => Command::FreezeEnd {
            name: a.required("name")?,
        },
        Topic::FreezeList => Command::FreezeList,
        Topic::Metrics => Command::Metrics {
            days: a.parsed("days")?,
            service: a.text("service"),
            environment: a.text("env"),
        },
    };
    within_limits(&cmd).map_err(|message| a.error(message))?;
    Ok(cmd)
}

/// Applies the domain's limits on text, durations and times to a parsed command, so every
/// surface refuses the same hostile input before anything is stored.
fn within_limits(cmd: &Command) -> Result<(), String> {
    use crate::domain::limits::{self, MAX_NAME, MAX_TEXT, MAX_TITLE};
    let time = |t: &crate::chat::TimeSpec| match t {
        crate::chat::TimeSpec::Absolute(t) => limits::time(*t),
        crate::chat::TimeSpec::Local(t) => limits::time(t.and_utc()),
        crate::chat::TimeSpec::FromNow(d) => limits::duration(d.as_duration()),
    };
    match cmd {
        Command::Open {
            service,
            env,
            title,
            duration,
            ..
        } => {
            limits::single_line("service", service, MAX_NAME)?;
            if let Some(env) = env {
                limits::single_line("environment", env, MAX_NAME)?;
            }
            limits::single_line("title", title, MAX_TITLE)?;
            duration.map_or(Ok(()), |d| limits::duration(d.as_duration()))
        }
        Command::Approve { comment: text, .. } => limits::multi_line("comment", text, MAX_TEXT),
        Command::Reject { reason: text, .. }
        | Command::Cancel { reason: text, .. }
        | Command::ReleaseNow { reason: text, .. } => limits::multi_line("reason", text, MAX_TEXT),
        Command::Close { review, .. } => limits::multi_line("review", review, MAX_TEXT),
        Command::Schedule { at: Some(at), .. } => time(at),
        Command::FreezeStart {
            name,
            until,
            reason,
            service,
        } => {
            limits::single_line("freeze name", name, MAX_NAME)?;
            if let Some(s) = service {
                limits::single_line("service", s, MAX_NAME)?;
            }
            limits::multi_line("reason", reason, MAX_TEXT)?;
            time(until)
        }
        Command::FreezeEnd { name } => limits::single_line("freeze name", name, MAX_NAME),
        Command::Metrics {
            service,
            environment,
            ..
        } => {
            if let Some(s) = service {
                limits::single_line("service", s, MAX_NAME)?;
            }
            environment
                .as_ref()
                .map_or(Ok(()), |e| limits::single_line("environment", e, MAX_NAME))
        }
        Command::List {
            service: Some(s), ..
        }
        | Command::Calendar {
            service: Some(s), ..
        } => limits::single_line("service", s, MAX_NAME),
        _ => Ok(()),
    }
}
