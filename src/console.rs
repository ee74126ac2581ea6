//! The console chat adapter (Hubot-shell style): one command per stdin line, one reply each.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::broadcast;

use crate::chat::{self, envelope, render::render};
use crate::clock::Clock;
use crate::workflow::{Actor, ErrorKind, Workflow};

/// Runs one line for `actor` and returns the reply (errors as replies too): text, or the JSON
/// of `changebot chat --json` when `json` is on or the line says `--json` (anywhere).
pub async fn reply(
    workflow: &Workflow,
    clock: &dyn Clock,
    actor: &Actor,
    line: &str,
    json: bool,
) -> String {
    let line = line.trim().trim_start_matches('/');
    let mut words = match chat::grammar::tokenize(line) {
        Ok(words) => words,
        Err(e) => return failed(json, ErrorKind::Usage, &e.to_string()),
    };
    let before = words.len();
    words.retain(|w| w != "--json");
    let json = json || words.len() < before;
    let command = match chat::parse_words(&words) {
        Ok(c) => c,
        Err(e) => return failed(json, ErrorKind::Usage, &e.to_string()),
    };
    match workflow.execute(actor, command, clock.now()).await {
        Ok(outcome) => {
            let text = render(&outcome, &workflow.config().org);
            if json {
                envelope::ok(&outcome, &text).to_string()
            } else {
                text
            }
        }
        Err(e) if e.is_user_error() => failed(json, e.kind(), &e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "console command failed");
            failed(json, e.kind(), "internal error; see the log")
        }
    }
}

/// A refusal as a reply.
fn failed(json: bool, kind: ErrorKind, message: &str) -> String {
    if json {
        envelope::failed(kind, message).to_string()
    } else {
        message.to_string()
    }
}

/// How the console talks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Print a banner and a `> ` prompt (on a terminal).
    pub prompt: bool,
    /// Answer every line in JSON (`serve --console --json`).
    pub json: bool,
}

/// Reads commands from `input` until it ends, writing each reply to `output`. Chat notices
/// (release announcements) received on `notices` are printed as they arrive.
pub async fn run<R, W>(
    workflow: Workflow,
    clock: Arc<dyn Clock>,
    actor: Actor,
    input: R,
    mut output: W,
    style: Style,
    mut notices: Option<broadcast::Receiver<String>>,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Style { prompt, json } = style;
    let mut input = BufReader::new(input);
    let mut raw = Vec::new();
    if prompt {
        output
            .write_all(
                format!(
                    "changebot console as {}; `help` lists commands, `exit` ends\n> ",
                    actor.audit_name()
                )
                .as_bytes(),
            )
            .await?;
        output.flush().await?;
    }
    loop {
        // `read_until` keeps what it read so far when a notice interrupts it: the line is
        // cleared only once it has been handled.
        let read = tokio::select! {
            read = input.read_until(b'\n', &mut raw) => read?,
            Some(notice) = next_notice(&mut notices) => {
                let notice = if json {
                    envelope::notice(&notice).to_string()
                } else {
                    notice
                };
                output.write_all(format!("{notice}\n").as_bytes()).await?;
                output.flush().await?;
                continue;
            }
        };
        if read == 0 && raw.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut raw);
        // One bad line gets an answer; the console (and everything else in `serve`) goes on.
        let mut text = match std::str::from_utf8(&line) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) if ends_console(line) => return Ok(()),
            Ok(line) => reply(&workflow, clock.as_ref(), &actor, line.trim_end(), json).await,
            Err(_) => failed(
                json,
                ErrorKind::Usage,
                "that line is not valid UTF-8 text; nothing was done",
            ),
        };
        text.push('\n');
        if prompt {
            text.push_str("> ");
        }
        output.write_all(text.as_bytes()).await?;
        output.flush().await?;
    }
}

/// `exit` or `quit` (as `/quit` too, in any case): the console ends, as when its input does.
fn ends_console(line: &str) -> bool {
    let word = line.trim().trim_start_matches('/');
    word.eq_ignore_ascii_case("exit") || word.eq_ignore_ascii_case("quit")
}

/// The next notice, or never when there is no notice channel (or it closed).
async fn next_notice(notices: &mut Option<broadcast::Receiver<String>>) -> Option<String> {
    let Some(rx) = notices.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(n) => return Some(n),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}
