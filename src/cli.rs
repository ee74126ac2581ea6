//! The `changebot` command line as clap reads it: the subcommands and their options, and the
//! options `changebot chat` also takes among its words. `main.rs` runs them; the docs test
//! parses every command line shown in README.md and docs/ with them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::github::backfill;

#[derive(Debug, Parser)]
#[command(
    name = "changebot",
    version,
    about = "Change records, approvals, maintenance windows and releases from chat and GitHub"
)]
pub struct Cli {
    /// Config file (else $CHANGEBOT_CONFIG, else config/changebot.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Answer in JSON: `chat`'s outcome, and every reply of `serve --console` (anywhere on
    /// the line).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the bot: HTTP server, scheduler, chat.
    Serve {
        /// Also read chat commands from stdin.
        #[arg(long)]
        console: bool,
        /// Who the console acts as (default: [console] person).
        #[arg(long = "as", value_name = "PERSON")]
        person: Option<String>,
        /// Listen on this address instead of [server] bind (e.g. 127.0.0.1:0 for any free
        /// port).
        #[arg(long, value_name = "ADDR", value_parser = host_port)]
        bind: Option<String>,
    },
    /// Run one chat command and print the reply.
    Chat {
        /// Who acts: a person's name, or github:LOGIN / discord:ID.
        #[arg(long = "as", value_name = "PERSON")]
        person: Option<String>,
        /// The command, e.g. `change show CHG-12`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// Validate the config file.
    CheckConfig,
    /// Apply database migrations.
    Migrate,
    /// Import a repository's merged pull requests and their deployments from GitHub as closed
    /// changes, so the KPIs have history (a second run adds nothing).
    Backfill {
        /// The repository, as a service's `repos` lists it.
        #[arg(long, value_name = "OWNER/NAME")]
        repo: String,
        /// How far back: pull requests merged in the last N days.
        #[arg(long, value_name = "N", default_value_t = backfill::DEFAULT_DAYS,
              value_parser = days)]
        days: u32,
    },
}

/// `--bind`: `host:port`, said as a sentence when it is not.
fn host_port(text: &str) -> Result<String, String> {
    if crate::config::is_host_port(text) {
        Ok(text.to_string())
    } else {
        Err(
            "write the address as host:port, e.g. 127.0.0.1:8080, or 127.0.0.1:0 for any free port"
                .to_string(),
        )
    }
}

/// `--days`: a whole number of days in range, said as a sentence when it is not.
fn days(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=backfill::MAX_DAYS).contains(&n) => Ok(n),
        _ => Err(format!(
            "write a whole number of days from 1 to {}, e.g. --days 90",
            backfill::MAX_DAYS
        )),
    }
}

impl Cli {
    /// Reads a command line (`args[0]` is the program name) as `main` does: clap first, then
    /// `changebot chat`'s `--as`, `--json` and `--config` wherever they stand among its words.
    pub fn read<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut cli = Cli::try_parse_from(args)?;
        if let Cmd::Chat { person, words } = &mut cli.command {
            let options = ChatOptions::take_from(words);
            cli.json |= options.json;
            if options.person.is_some() {
                *person = options.person;
            }
            if options.config.is_some() {
                cli.config = options.config;
            }
        }
        Ok(cli)
    }
}

/// Options of `changebot chat` found among its words.
#[derive(Debug, Default)]
pub struct ChatOptions {
    pub json: bool,
    pub person: Option<String>,
    pub config: Option<PathBuf>,
}

impl ChatOptions {
    /// Removes `--json`, `--as NAME` and `--config PATH` (also as `--opt=value`) from `words`.
    pub fn take_from(words: &mut Vec<String>) -> ChatOptions {
        let mut options = ChatOptions::default();
        let mut kept = Vec::with_capacity(words.len());
        let mut rest = std::mem::take(words).into_iter();
        while let Some(word) = rest.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
                None => (word.clone(), None),
            };
            match flag.as_str() {
                "--json" if inline.is_none() => options.json = true,
                "--as" => match inline.or_else(|| rest.next()) {
                    Some(v) => options.person = Some(v),
                    None => kept.push(word),
                },
                "--config" => match inline.or_else(|| rest.next()) {
                    Some(v) => options.config = Some(PathBuf::from(v)),
                    None => kept.push(word),
                },
                _ => kept.push(word),
            }
        }
        *words = kept;
        options
    }
}
