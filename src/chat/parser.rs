//! Words → `Command`. Flags may appear anywhere after the command words; `TEXT…` flags take
//! every word up to the next flag; a TIME may be one word (RFC 3339) or two (`YYYY-MM-DD HH:MM`).

use std::collections::BTreeMap;

use super::grammar::{Command, ParseError, TimeSpec};
use super::help::Topic;
use crate::domain::ChangeId;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Time,
    Text,
    Switch,
}

struct Args {
    topic: Topic,
    positional: Vec<String>,
    flags: BTreeMap<&'static str, String>,
}

impl Args {
    fn split(
        topic: Topic,
        words: &[String],
        spec: &[(&'static str, Kind)],
    ) -> Result<Args, ParseError> {
        let mut args = Args {
            topic,
            positional: Vec::new(),
            flags: BTreeMap::new(),
        };
        let mut i = 0;
        while i < words.len() {
            let word = &words[i];
            let Some(name) = word.strip_prefix("--") else {
                args.positional.push(word.clone());
                i += 1;
                continue;
            };
            let Some(&(flag, kind)) = spec.iter().find(|(f, _)| *f == name) else {
                let known: Vec<String> = spec.iter().map(|(f, _)| format!("--{f}")).collect();
                let hint = if known.is_empty() {
                    "it takes no flags".to_string()
                } else {
                    format!("known: {}", known.join(", "))
                };
                return Err(args.error(format!("unknown flag `{word}` ({hint})")));
            };
            if args.flags.contains_key(flag) {
                return Err(args.error(format!("`--{flag}` given twice")));
            }
            i += 1;
            let value = match kind {
                Kind::Switch => String::new(),
                Kind::Word => {
                    let v = words.get(i).filter(|w| !w.starts_with("--"));
                    let v = v.ok_or_else(|| args.error(format!("`--{flag}` needs a value")))?;
                    i += 1;
                    v.clone()
                }
                Kind::Time => {
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
                Kind::Text => {
                    let start = i;
                    while i < words.len() && !words[i].starts_with("--") {
                        i += 1;
                    }
                    if start == i {
                        return Err(args.error(format!("`--{flag}` needs text")));
                    }
                    words[start..i].join(" ")
                }
            };
            args.flags.insert(flag, value);
        }
        Ok(args)
    }

    fn error(&self, message: String) -> ParseError {
        ParseError {
            message,
            usage: Some(self.topic.usage()),
        }
    }

    fn take_id(&mut self) -> Result<ChangeId, ParseError> {
        if self.positional.is_empty() {
            return Err(self.error("which change? give its id, e.g. CHG-12".into()));
        }
        let word = self.positional.remove(0);
        word.parse()
            .map_err(|e: crate::domain::DomainError| self.error(e.to_string()))
    }

    fn take_word(&mut self, what: &str) -> Result<String, ParseError> {
        if self.positional.is_empty() {
            return Err(self.error(format!("missing {what}")));
        }
        Ok(self.positional.remove(0))
    }

    fn rest(&mut self) -> String {
        std::mem::take(&mut self.positional).join(" ")
    }

    fn no_rest(&self) -> Result<(), ParseError> {
        match self.positional.first() {
            Some(extra) => Err(self.error(format!("unexpected `{extra}`"))),
            None => Ok(()),
        }
    }

    fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ParseError>
    where
        T::Err: std::fmt::Display,
    {
        self.flag(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| self.error(format!("--{name}: {e}")))
            })
            .transpose()
    }

    fn time(&self, name: &str) -> Result<Option<TimeSpec>, ParseError> {
        self.flag(name)
            .map(|v| TimeSpec::parse(v).map_err(|e| self.error(format!("--{name}: {e}"))))
            .transpose()
    }
}

fn looks_like_clock(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 5 && b[2] == b':' && [0, 1, 3, 4].iter().all(|i| b[*i].is_ascii_digit())
}

pub(super) fn parse_words(words: &[String]) -> Result<Command, ParseError> {
    // Control characters never belong in a command; newlines and tabs only inside text that
    // may span lines (checked per field below). Nothing is echoed back raw.
    if let Some((n, c)) = words.iter().enumerate().find_map(|(n, w)| {
        w.chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
            .map(|c| (n, c))
    }) {
        return Err(ParseError {
            message: format!(
                "word {} contains a control character ({}); use plain text",
                n + 1,
                c.escape_unicode()
            ),
            usage: None,
        });
    }
    let lower: Vec<String> = words
        .iter()
        .take(2)
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let topic = Topic::ALL.iter().copied().find(|t| {
        let own = t.words();
        lower.len() >= own.len() && own.iter().zip(&lower).all(|(a, b)| a == b)
    });
    let Some(topic) = topic else {
        let message = match lower.first() {
            None => "say something: try `help`".to_string(),
            Some(first) if Topic::matching(&lower[..1]).is_empty() => {
                format!("unknown command `{first}`; try `help`")
            }
            Some(first) => format!(
                "unknown command `{}`; try `help {first}`",
                words.iter().take(2).cloned().collect::<Vec<_>>().join(" ")
            ),
        };
        return Err(ParseError {
            message,
            usage: None,
        });
    };
    let rest = &words[topic.words().len()..];
    use Kind::*;
    let cmd = match topic {
        Topic::Help => Command::Help {
            topic: (!rest.is_empty()).then(|| rest.join(" ")),
        },
        Topic::ChangeOpen => {
            let spec = [
                ("env", Word),
                ("type", Word),
                ("risk", Word),
                ("duration", Word),
            ];
            let mut a = Args::split(topic, rest, &spec)?;
            let service = a.take_word("SERVICE")?;
            let title = a.rest();
            if title.trim().is_empty() {
                return Err(a.error("missing TITLE: say what the change does".into()));
            }
            Command::Open {
                service,
                title,
                env: a.flag("env").map(str::to_string),
                change_type: a.parsed("type")?,
                risk: a.parsed("risk")?,
                duration: a.parsed("duration")?,
            }
        }
        Topic::ChangeShow
        | Topic::ChangeHistory
        | Topic::ChangeExplain
        | Topic::ReleaseStatus
        | Topic::ReleaseRetry => {
            let mut a = Args::split(topic, rest, &[])?;
            let id = a.take_id()?;
            a.no_rest()?;
            match topic {
                Topic::ChangeShow => Command::Show { id },
                Topic::ChangeHistory => Command::History { id },
                Topic::ChangeExplain => Command::Explain { id },
                Topic::ReleaseRetry => Command::ReleaseRetry { id },
                _ => Command::ReleaseStatus { id },
            }
        }
        Topic::ChangeList => {
            let a = Args::split(
                topic,
                rest,
                &[("state", Word), ("service", Word), ("mine", Switch)],
            )?;
            a.no_rest()?;
            Command::List {
                state: a.parsed("state")?,
                service: a.flag("service").map(str::to_string),
                mine: a.flag("mine").is_some(),
            }
        }
        Topic::ChangeApprove | Topic::ChangeReject | Topic::ChangeCancel => {
            let mut a = Args::split(topic, rest, &[])?;
            let id = a.take_id()?;
            let text = a.rest();
            match topic {
                Topic::ChangeApprove => Command::Approve { id, comment: text },
                Topic::ChangeReject if text.is_empty() => {
                    return Err(a.error("say why: a rejection needs a REASON".into()));
                }
                Topic::ChangeReject => Command::Reject { id, reason: text },
                _ => Command::Cancel { id, reason: text },
            }
        }
        Topic::ChangeSchedule => {
            let mut a = Args::split(topic, rest, &[("at", Time)])?;
            let id = a.take_id()?;
            a.no_rest()?;
            Command::Schedule {
                id,
                at: a.time("at")?,
            }
        }
        Topic::ChangeClose => {
            let mut a = Args::split(topic, rest, &[("review", Text)])?;
            let id = a.take_id()?;
            a.no_rest()?;
            let review = a.flag("review").map(str::to_string);
            let review = review.ok_or_else(|| {
                a.error("closing needs a post-implementation review: --review TEXT…".into())
            })?;
            Command::Close { id, review }
        }
        Topic::ReleaseNow => {
            let mut a = Args::split(topic, rest, &[("reason", Text)])?;
            let id = a.take_id()?;
            a.no_rest()?;
            let reason = a.flag("reason").map(str::to_string);
            let reason =
                reason.ok_or_else(|| a.error("break-glass needs --reason TEXT…".into()))?;
            Command::ReleaseNow { id, reason }
        }
        Topic::Calendar => {
            let a = Args::split(topic, rest, &[("days", Word), ("service", Word)])?;
            a.no_rest()?;
            let days: Option<u32> = a.parsed("days")?;
            if days.is_some_and(|d| d == 0 || d > 366) {
                return Err(a.error("--days must be between 1 and 366".into()));
            }
            Command::Calendar {
                days,
                service: a.flag("service").map(str::to_string),
            }
        }
        Topic::FreezeStart => {
            let spec = [("until", Time), ("service", Word), ("reason", Text)];
            let mut a = Args::split(topic, rest, &spec)?;
            let name = a.take_word("NAME")?;
            a.no_rest()?;
            let until = a
                .time("until")?
                .ok_or_else(|| a.error("missing --until TIME".into()))?;
            let reason = a.flag("reason").map(str::to_string);
            let reason = reason.ok_or_else(|| a.error("missing --reason TEXT…".into()))?;
            Command::FreezeStart {
                name,
                until,
                service: a.flag("service").map(str::to_string),
                reason,
            }
        }
        Topic::FreezeEnd => {
            let mut a = Args::split(topic, rest, &[])?;
            let name = a.take_word("NAME")?;
            a.no_rest()?;
            Command::FreezeEnd { name }
        }
        Topic::FreezeList => {
            let a = Args::split(topic, rest, &[])?;
            a.no_rest()?;
            Command::FreezeList
        }
    };
    within_limits(&cmd).map_err(|message| ParseError {
        message,
        usage: Some(topic.usage()),
    })?;
    Ok(cmd)
}

/// Applies the domain's limits on text, durations and times to a parsed command, so every
/// surface refuses the same hostile input before anything is stored.
fn within_limits(cmd: &Command) -> Result<(), String> {
    use crate::domain::limits::{self, MAX_NAME, MAX_TEXT, MAX_TITLE};
    let time = |t: &crate::chat::TimeSpec| match t {
        crate::chat::TimeSpec::Absolute(t) => limits::time(*t),
        crate::chat::TimeSpec::Local(t) => limits::time(t.and_utc()),
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
        Command::List {
            service: Some(s), ..
        }
        | Command::Calendar {
            service: Some(s), ..
        } => limits::single_line("service", s, MAX_NAME),
        _ => Ok(()),
    }
}
