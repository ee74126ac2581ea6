//! The `changebot` command line: parse arguments, load config, call into the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use changebot::app::{self, App, ServeOptions};
use changebot::chat::{self, render::render};
use changebot::clock::SystemClock;
use changebot::config::Config;
use changebot::store::Usage;
use changebot::workflow::{Actor, Surface};

#[derive(Parser)]
#[command(
    name = "changebot",
    version,
    about = "Change records, approvals, maintenance windows and releases from chat and GitHub"
)]
struct Cli {
    /// Config file (else $CHANGEBOT_CONFIG, else config/changebot.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bot: HTTP server, scheduler, chat.
    Serve {
        /// Also read chat commands from stdin.
        #[arg(long)]
        console: bool,
        /// Who the console acts as (default: [console] person).
        #[arg(long = "as", value_name = "PERSON")]
        person: Option<String>,
    },
    /// Run one chat command and print the reply.
    Chat {
        #[arg(long = "as", value_name = "PERSON")]
        person: String,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
        /// The command, e.g. `change show CHG-12`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// Validate the config file.
    CheckConfig,
    /// Apply database migrations.
    Migrate,
}

/// Exit codes (DESIGN §2).
const OK: u8 = 0;
const REFUSED: u8 = 1;
const BROKEN: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHANGEBOT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let path = Config::resolve_path(cli.config.as_deref());
    if let Cmd::CheckConfig = cli.command {
        return check_config(&path);
    }
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(BROKEN);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(BROKEN);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Cmd::Serve { console, person } => {
                match app::serve(config, ServeOptions { console, person }).await {
                    Ok(()) => OK,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        BROKEN
                    }
                }
            }
            Cmd::Chat {
                person,
                json,
                words,
            } => run_chat(config, &person, json, &words).await,
            Cmd::Migrate => {
                match App::build_for(config, Arc::new(SystemClock), Usage::OneShot).await {
                    Ok(_) => {
                        println!("migrations applied");
                        OK
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        BROKEN
                    }
                }
            }
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
            eprintln!("{errors}");
            ExitCode::from(BROKEN)
        }
    }
}

/// Prints a reply; a reader that went away (`changebot chat … | head -1`) is not an error.
fn print_out(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

async fn run_chat(config: Config, person: &str, json: bool, words: &[String]) -> u8 {
    let fail = |kind: &str, message: String, code: u8| {
        if json {
            print_out(
                &serde_json::json!({ "ok": false, "error": { "kind": kind, "message": message } })
                    .to_string(),
            );
        } else {
            eprintln!("{message}");
        }
        code
    };
    if config.org.person(person).is_none() {
        return fail(
            "unknown_person",
            format!("--as {person}: no [[person]] with that name in config"),
            REFUSED,
        );
    }
    let command = match chat::grammar::parse_words(words) {
        Ok(c) => c,
        Err(e) => return fail("usage", e.to_string(), REFUSED),
    };
    // One connection: a burst of one-shots must not exhaust the database's connection slots.
    let app = match App::build_for(config, Arc::new(SystemClock), Usage::OneShot).await {
        Ok(app) => app,
        Err(e) => return fail("internal", format!("{e:#}"), BROKEN),
    };
    let actor = Actor::new(person, Surface::Cli);
    match app
        .workflow
        .execute(&actor, command, chrono::Utc::now())
        .await
    {
        Ok(outcome) => {
            let text = render(&outcome, &app.config.org);
            if json {
                print_out(
                    &serde_json::json!({ "ok": true, "outcome": outcome, "text": text })
                        .to_string(),
                );
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
