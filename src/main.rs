//! The `changebot` command line: parse arguments, load config, call into the library.

use std::process::ExitCode;
use std::sync::Arc;

use changebot::app::{self, App, ServeOptions};
use changebot::chat::{self, render::render};
use changebot::cli::{Cli, Cmd};
use changebot::clock::SystemClock;
use changebot::config::Config;
use changebot::github::backfill::{self, BackfillError};
use changebot::store::Usage;
use changebot::workflow::{Actor, ErrorKind, Surface};

/// Like `eprintln!`, but a closed stderr (`changebot … 2>&1 | head -1`) is not a panic.
macro_rules! print_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// Exit codes (docs/chat.md, "Exit codes").
const OK: u8 = 0;
const REFUSED: u8 = 1;
const BROKEN: u8 = 2;

/// Logs go to stderr: plain text (colours only on a terminal), or one JSON object per line
/// when `CHANGEBOT_LOG_FORMAT=json`. `CHANGEBOT_LOG` sets the level (`info` by default).
fn init_logging() {
    use std::io::IsTerminal;
    let level = std::env::var("CHANGEBOT_LOG").ok();
    let (filter, bad_level) = match level.as_deref().map(tracing_subscriber::EnvFilter::try_new) {
        None => (tracing_subscriber::EnvFilter::new("info"), None),
        Some(Ok(filter)) => (filter, None),
        Some(Err(_)) => (tracing_subscriber::EnvFilter::new("info"), level),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("CHANGEBOT_LOG_FORMAT").unwrap_or_default();
    let json = format.trim().eq_ignore_ascii_case("json");
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
    // A typo in either variable is said once, not silently ignored.
    if let Some(level) = bad_level {
        tracing::warn!(
            "CHANGEBOT_LOG=`{}` is not a log level or filter; logging at info. Use e.g. info, \
             warn, debug or changebot=debug",
            level.escape_debug()
        );
    }
    let plain = ["", "text", "plain"];
    if !json && !plain.contains(&format.trim().to_ascii_lowercase().as_str()) {
        tracing::warn!(
            "CHANGEBOT_LOG_FORMAT=`{}` is not a log format; writing plain text. Use json, or \
             leave it unset",
            format.escape_debug()
        );
    }
}

/// Overrides `[database] url` when set.
const DATABASE_URL_ENV: &str = "CHANGEBOT_DATABASE_URL";
/// Pins "now" for `changebot chat` (RFC 3339).
const NOW_ENV: &str = "CHANGEBOT_NOW";

fn main() -> ExitCode {
    // `changebot chat` takes its own options anywhere on the line: after the command words
    // they would otherwise be words (`Cli::read`).
    let cli = match Cli::read(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let json = cli.json;
    init_logging();
    let path = Config::resolve_path(cli.config.as_deref());
    if let Cmd::CheckConfig = cli.command {
        return check_config(&path);
    }
    let config = match Config::load(&path) {
        Ok(mut c) => {
            // The database can come from the environment (containers, rehearsals, tests).
            if let Ok(url) = std::env::var(DATABASE_URL_ENV)
                && !url.trim().is_empty()
            {
                c.database.url = url;
            }
            c
        }
        Err(errors) => {
            print_err!("{errors}");
            return ExitCode::from(BROKEN);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            print_err!("cannot start the async runtime: {e}");
            return ExitCode::from(BROKEN);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Cmd::Serve {
                console,
                person,
                bind,
            } => {
                let options = ServeOptions {
                    console,
                    person,
                    bind,
                    json,
                };
                match app::serve(config, options).await {
                    Ok(()) => OK,
                    Err(e) => {
                        print_err!("error: {e:#}");
                        BROKEN
                    }
                }
            }
            Cmd::Chat {
                person: Some(person),
                words,
            } => run_chat(config, &person, json, &words).await,
            Cmd::Chat { .. } => {
                let why = "changebot chat needs --as PERSON (a person's name, or github:LOGIN / discord:ID)";
                fail_chat(json, ErrorKind::Usage, why.to_string(), REFUSED)
            }
            Cmd::Migrate => {
                match App::build_for(config, Arc::new(SystemClock), Usage::OneShot).await {
                    Ok(_) => {
                        println!("migrations applied");
                        OK
                    }
                    Err(e) => {
                        print_err!("error: {e:#}");
                        BROKEN
                    }
                }
            }
            Cmd::Backfill { repo, days } => run_backfill(config, &repo, days).await,
            Cmd::CheckConfig => OK,
        }
    });
    ExitCode::from(code)
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            for w in &config.warnings {
                println!("warning: {w}");
            }
            println!("{}: ok", path.display());
            ExitCode::from(OK)
        }
        Err(errors) => {
            print_err!("{errors}");
            ExitCode::from(BROKEN)
        }
    }
}

/// A command line clap could not read (including arguments that are not UTF-8, and no
/// command at all): exit 1 with the reason, as JSON when `--json` was asked for; `--help`
/// and `--version` print and exit 0.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind as Clap;
    if matches!(e.kind(), Clap::DisplayHelp | Clap::DisplayVersion) {
        let _ = e.print();
        return ExitCode::from(OK);
    }
    let message = match e.kind() {
        Clap::InvalidUtf8 => {
            "an argument is not valid UTF-8; changebot reads UTF-8 text only".to_string()
        }
        _ => e.to_string().trim_end().to_string(),
    };
    let json = std::env::args_os().any(|a| a == "--json");
    ExitCode::from(fail_chat(json, ErrorKind::Usage, message, REFUSED))
}

/// Reports a failed `changebot chat` (as JSON under `--json`) and returns its exit code.
fn fail_chat(json: bool, kind: ErrorKind, message: String, code: u8) -> u8 {
    if json {
        print_out(&chat::envelope::failed(kind, &message).to_string());
    } else {
        print_err!("{message}");
    }
    code
}

/// Prints a reply; a reader that went away (`changebot chat … | head -1`) is not an error.
fn print_out(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

async fn run_chat(config: Config, person: &str, json: bool, words: &[String]) -> u8 {
    let fail = |kind: ErrorKind, message: String, code: u8| fail_chat(json, kind, message, code);
    let actor = match Actor::acting_as(&config.org, person, Surface::Cli) {
        Ok(actor) => actor,
        Err(why) => return fail(ErrorKind::UnknownPerson, why, REFUSED),
    };
    let command = match chat::grammar::parse_words(words) {
        Ok(c) => c,
        Err(e) => return fail(ErrorKind::Usage, e.to_string(), REFUSED),
    };
    // `CHANGEBOT_NOW` pins "now" for this one command: rehearsals, and the README's tested
    // walkthrough. It never applies to `serve`.
    let now = match std::env::var(NOW_ENV) {
        Ok(text) => match chrono::DateTime::parse_from_rfc3339(text.trim()) {
            Ok(t) => t.to_utc(),
            Err(_) => {
                let why = format!("{NOW_ENV} must be an RFC 3339 time like 2026-11-23T09:00:00Z");
                return fail(ErrorKind::Usage, why, REFUSED);
            }
        },
        Err(_) => chrono::Utc::now(),
    };
    let clock = changebot::clock::ManualClock::new(now);
    // One connection: a burst of one-shots must not exhaust the database's connection slots.
    let app = match App::build_for(config, Arc::new(clock), Usage::OneShot).await {
        Ok(app) => app,
        Err(e) => return fail(ErrorKind::Internal, format!("{e:#}"), BROKEN),
    };
    match app.workflow.execute(&actor, command, now).await {
        Ok(outcome) => {
            let text = render(&outcome, &app.config.org);
            if json {
                print_out(&chat::envelope::ok(&outcome, &text).to_string());
            } else {
                print_out(&text);
            }
            OK
        }
        Err(e) if e.is_user_error() => fail(e.kind(), e.to_string(), REFUSED),
        Err(e) => {
            tracing::error!(error = %e, "chat command failed");
            fail(e.kind(), "internal error; see the log".to_string(), BROKEN)
        }
    }
}

/// `changebot backfill`: checked against config before the database is opened; progress on
/// stderr, the summary on stdout.
async fn run_backfill(config: Config, repo: &str, days: u32) -> u8 {
    let (repo, client) = match backfill::prepare(&config, repo) {
        Ok(prepared) => prepared,
        Err(e) => return backfill_failed(&e),
    };
    let app = match App::build_for(config, Arc::new(SystemClock), Usage::OneShot).await {
        Ok(app) => app,
        Err(e) => {
            print_err!("error: {e:#}");
            return BROKEN;
        }
    };
    let mut progress = backfill::for_stderr();
    let now = chrono::Utc::now();
    match backfill::run(&app.workflow, &client, &repo, days, now, progress.as_mut()).await {
        Ok(summary) => {
            print_out(&summary.to_string());
            OK
        }
        Err(e) => backfill_failed(&e),
    }
}

/// Reports why a backfill did not run or stopped, and returns its exit code.
fn backfill_failed(e: &BackfillError) -> u8 {
    print_err!("backfill: {e}");
    match e {
        BackfillError::Request(_) => REFUSED,
        BackfillError::Config(_) | BackfillError::Github(_) | BackfillError::Store(_) => BROKEN,
    }
}
