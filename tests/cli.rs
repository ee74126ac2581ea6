//! The `changebot` binary as scripts use it: exit codes, JSON output, and bad input that
//! changes nothing (docs/chat.md, "Exit codes").

mod support;

use std::path::Path;
use std::process::{Command, Output};

use changebot::domain::ChangeId;
use changebot::store::Store;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("cli.db").display());
        let text = support::ORG.replace("sqlite://unused.db", &url);
        std::fs::write(dir.path().join("changebot.toml"), text).expect("write config");
        Cli { dir }
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("changebot.toml")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(support::binary())
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env_remove("CHANGEBOT_CONFIG")
            .output()
            .expect("changebot runs")
    }

    fn chat(&self, person: &str, words: &str) -> Output {
        let mut args = vec!["chat", "--as", person];
        args.extend(words.split(' '));
        self.run(&args)
    }

    async fn store(&self) -> Store {
        let url = format!("sqlite://{}", self.dir.path().join("cli.db").display());
        Store::connect(&url).await.expect("store")
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn bad_input_gets_a_clear_message_exit_1_and_changes_nothing() {
    let cli = Cli::new();
    let opened = cli.chat("alice", "change open payments-api Rotate keys --risk high");
    assert_eq!(opened.status.code(), Some(0), "{}", text(&opened));
    assert!(
        text(&opened).starts_with("CHG-1 · authorize"),
        "{}",
        text(&opened)
    );

    let store = cli.store().await;
    let audit_before = store.audit(ChangeId(1)).await.expect("audit").len();
    let cases: &[(&str, &str, &str)] = &[
        ("alice", "deploy now please", "unknown command `deploy`"),
        (
            "alice",
            "change open payments-api X --colour red",
            "unknown flag `--colour`",
        ),
        ("alice", "change show CHG-42", "there is no change CHG-42"),
        (
            "alice",
            "change approve CHG-42",
            "there is no change CHG-42",
        ),
        (
            "mallory",
            "change approve CHG-1",
            "--as mallory: no [[person]] with that name",
        ),
        (
            "alice",
            "change schedule CHG-1 --at next-tuesday",
            "is not a time",
        ),
        (
            "alice",
            "freeze start x --until 2026-13-45 10:00 --reason r",
            "is not a time",
        ),
        ("alice", "change show CHG-x", "is not a change id"),
    ];
    for (person, words, expected) in cases {
        let out = cli.chat(person, words);
        assert_eq!(
            out.status.code(),
            Some(1),
            "`{words}` as {person}: {}",
            text(&out)
        );
        assert!(
            text(&out).contains(expected),
            "`{words}`: expected `{expected}` in {}",
            text(&out)
        );
    }
    assert_eq!(
        store.count_changes().await.expect("count"),
        1,
        "no change was created"
    );
    assert_eq!(
        store.audit(ChangeId(1)).await.expect("audit").len(),
        audit_before,
        "nothing audited"
    );
    let shown = cli.chat("bob", "change show CHG-1");
    assert!(
        text(&shown).starts_with("CHG-1 · authorize"),
        "{}",
        text(&shown)
    );
}

#[tokio::test]
async fn a_refusal_exits_1_and_json_says_why_in_stable_fields() {
    let cli = Cli::new();
    let out = cli.run(&[
        "chat",
        "--as",
        "alice",
        "--json",
        "change",
        "open",
        "payments-api",
        "Rotate",
        "keys",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["ok"], true);
    assert_eq!(json["outcome"]["kind"], "change");
    assert_eq!(json["outcome"]["change"]["id"], "CHG-1");
    assert_eq!(json["outcome"]["change"]["state"], "authorize");
    assert_eq!(json["outcome"]["change"]["service"], "payments-api");
    assert_eq!(json["outcome"]["blockers"][0]["kind"], "needs_approvals");
    assert_eq!(json["outcome"]["blockers"][0]["group"], "payments-owners");

    let out = cli.run(&[
        "chat", "--as", "alice", "--json", "change", "approve", "CHG-1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["ok"], false);
    assert_eq!(json["error"]["kind"], "refused");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no self-approval")
    );
}

#[test]
fn invalid_config_exits_2_with_file_and_line() {
    let cli = Cli::new();
    let broken = std::fs::read_to_string(cli.config())
        .expect("config")
        .replace("0 22 * * Mon-Thu", "0 25 * * Mon-Thu");
    std::fs::write(cli.config(), broken).expect("write");
    let out = cli.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("changebot.toml:"), "{}", text(&out));
    assert!(text(&out).contains("0 25 * * Mon-Thu"), "{}", text(&out));
    let out = cli.chat("alice", "help");
    assert_eq!(
        out.status.code(),
        Some(2),
        "config errors stop every command: {}",
        text(&out)
    );
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/changebot.toml");
    let out = Command::new(support::binary())
        .args(["check-config", "--config"])
        .arg(&example)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn console_answers_one_reply_per_line_from_a_pipe() {
    use std::io::Write;
    use std::process::Stdio;
    let cli = Cli::new();
    let mut child = Command::new(support::binary())
        .arg("--config")
        .arg(cli.config())
        .args(["serve", "--console", "--as", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "help change open").expect("write");
        writeln!(
            stdin,
            "change open payments-api Console change --type standard"
        )
        .expect("write");
        writeln!(stdin, "change show CHG-7").expect("write");
    }
    let out = child
        .wait_with_output()
        .expect("serve exits when stdin ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("change open SERVICE TITLE…"), "{stdout}");
    assert!(
        stdout.contains("CHG-1 · scheduled · payments-api/production · Console change"),
        "{stdout}"
    );
    assert!(stdout.contains("there is no change CHG-7"), "{stdout}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn one_line_of_invalid_utf8_on_the_console_gets_an_answer_and_the_console_goes_on() {
    use std::io::Write;
    use std::process::Stdio;
    let cli = Cli::new();
    let mut child = Command::new(support::binary())
        .arg("--config")
        .arg(cli.config())
        .args(["serve", "--console", "--as", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"change show CHG-7\n").expect("write");
        stdin.write_all(b"change show \xff\xfe\n").expect("write");
        stdin.write_all(b"change show CHG-8\n").expect("write");
    }
    let out = child
        .wait_with_output()
        .expect("serve exits when stdin ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("there is no change CHG-7"), "{stdout}");
    assert!(stdout.contains("not valid UTF-8"), "{stdout}");
    assert!(
        stdout.contains("there is no change CHG-8"),
        "the console went on: {stdout}"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_reader_that_goes_away_is_not_a_crash() {
    use std::process::Stdio;
    let cli = Cli::new();
    let mut child = Command::new(support::binary())
        .arg("--config")
        .arg(cli.config())
        .args(["chat", "--as", "alice", "help"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat runs");
    // Like `| head -c 0`: the reader closes before anything is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("chat exits");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_argument_that_is_not_utf8_is_a_usage_error_in_json_under_json() {
    use std::os::unix::ffi::OsStrExt as _;
    let cli = Cli::new();
    let out = Command::new(support::binary())
        .arg("--config")
        .arg(cli.config())
        .args([
            "chat",
            "--as",
            "alice",
            "--json",
            "change",
            "open",
            "payments-api",
        ])
        .arg(std::ffi::OsStr::from_bytes(b"Fix \xff\xfe"))
        .env_remove("CHANGEBOT_CONFIG")
        .output()
        .expect("changebot runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(json["ok"], false);
    assert_eq!(json["error"]["kind"], "usage");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("UTF-8")),
        "{json}"
    );
}

#[tokio::test]
async fn options_after_the_command_words_are_options_not_words() {
    let cli = Cli::new();
    // --config, --as and --json after the words: the command runs against that config.
    let out = Command::new(support::binary())
        .args(["chat", "change", "open", "payments-api", "Enable", "vault"])
        .args(["--as", "alice", "--json", "--config"])
        .arg(cli.config())
        .env_remove("CHANGEBOT_CONFIG")
        .current_dir(cli.dir.path())
        .output()
        .expect("changebot runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(json["outcome"]["change"]["title"], "Enable vault", "{json}");
    let change = cli
        .store()
        .await
        .change(ChangeId(1))
        .await
        .expect("read")
        .expect("stored in the database the config names");
    assert_eq!(change.title, "Enable vault");
}

#[test]
fn control_characters_in_any_word_are_refused_and_never_echoed_raw() {
    let cli = Cli::new();
    for args in [
        vec!["change", "open", "pay\r\nFORGED: x", "title"],
        vec![
            "change",
            "open",
            "payments-api",
            "title",
            "--env",
            "prod\nFORGED",
        ],
        vec!["change", "show", "CHG-1\nFORGED"],
    ] {
        let mut all = vec!["chat", "--as", "alice"];
        all.extend(args.iter().copied());
        let out = cli.run(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let said = text(&out);
        assert!(
            !said.lines().any(|l| l.starts_with("FORGED")),
            "{args:?}: a forged line: {said}"
        );
    }
}

#[test]
fn as_takes_any_configured_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    let text_config = support::ORG
        .replace("sqlite://unused.db", &url)
        .replace("name = \"frank\"", "name = \"zoë\"");
    let config = dir.path().join("changebot.toml");
    std::fs::write(&config, text_config).expect("write config");
    let out = Command::new(support::binary())
        .arg("--config")
        .arg(&config)
        .args(["chat", "--as", "zoë", "change", "list"])
        .env_remove("CHANGEBOT_CONFIG")
        .output()
        .expect("changebot runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Runs `serve --console` until stdin ends, with `env`; returns its stderr (the log).
fn serve_log(env: &[(&str, &str)]) -> String {
    use std::process::Stdio;
    let cli = Cli::new();
    let mut command = Command::new(support::binary());
    command
        .arg("--config")
        .arg(cli.config())
        .args(["serve", "--console", "--as", "alice"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("serve runs");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn logs_are_plain_text_off_a_terminal_and_json_on_request() {
    let plain = serve_log(&[("CHANGEBOT_LOG", "info")]);
    assert!(plain.contains("INFO"), "{plain}");
    assert!(
        !plain.contains('\u{1b}'),
        "no colour codes in a file: {plain:?}"
    );
    let json = serve_log(&[("CHANGEBOT_LOG", "info"), ("CHANGEBOT_LOG_FORMAT", "json")]);
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "{json}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}

#[test]
fn json_and_as_are_accepted_anywhere_on_the_line() {
    let cli = Cli::new();
    for args in [
        &["--json", "chat", "--as", "alice", "change", "list"][..],
        &["chat", "--json", "--as", "alice", "change", "list"][..],
        &["chat", "change", "--json", "list", "--as", "alice"][..],
    ] {
        let out = cli.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out)));
        assert_eq!(json["outcome"]["kind"], "list", "{args:?}: {json}");
    }
}

#[test]
fn bad_usage_exits_1_as_the_readme_says() {
    let cli = Cli::new();
    for args in [
        &[][..],
        &["deploy"][..],
        &["chat"][..],
        &["backfill"][..],
        &["backfill", "--repo", "acme/payments", "--days", "0"][..],
        &["serve", "--colour"][..],
        &["serve", "--bind", "nonsense"][..],
        &["backfill", "--repo", "acme/payments", "--days", "abc"][..],
    ] {
        let out = cli.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(!text(&out).trim().is_empty(), "{args:?} says why");
        assert!(
            !text(&out).contains("invalid digit"),
            "{args:?}: raw parser words: {}",
            text(&out)
        );
    }
    // Nothing at all is bad usage too: help goes to stderr and the exit code is 1.
    let bare = Command::new(support::binary())
        .env_remove("CHANGEBOT_CONFIG")
        .output()
        .expect("runs");
    assert_eq!(bare.status.code(), Some(1), "{}", text(&bare));
    assert!(
        String::from_utf8_lossy(&bare.stderr).contains("Usage"),
        "{}",
        text(&bare)
    );
    for args in [&["--help"][..], &["chat", "--help"][..], &["--version"][..]] {
        let out = cli.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
}

#[test]
fn a_title_over_the_limit_is_refused_with_the_limit_in_the_message() {
    let cli = Cli::new();
    let title = "word ".repeat(41);
    let out = cli.run(&[
        "chat",
        "--as",
        "alice",
        "--json",
        "change",
        "open",
        "payments-api",
        title.trim(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["error"]["kind"], "usage", "{json}");
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the title is 204 characters long; the limit is 200"),
        "{message}"
    );
    // Refused before the database is even opened.
    assert!(!cli.dir.path().join("cli.db").exists(), "nothing stored");
}

#[test]
fn a_missing_config_file_says_how_to_point_at_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(support::binary())
        .current_dir(dir.path())
        .args(["check-config"])
        .env_remove("CHANGEBOT_CONFIG")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("there is no config file here")
            && said.contains("--config PATH")
            && said.contains("CHANGEBOT_CONFIG"),
        "{said}"
    );
    assert!(!said.contains("os error"), "{said}");
}

#[test]
fn a_misspelt_log_setting_is_said_not_ignored() {
    let log = serve_log(&[
        ("CHANGEBOT_LOG_FORMAT", "jsn"),
        ("CHANGEBOT_LOG", "info,[["),
    ]);
    assert!(
        log.contains("CHANGEBOT_LOG_FORMAT=`jsn` is not a log format"),
        "{log}"
    );
    assert!(
        log.contains("CHANGEBOT_LOG=`info,[[` is not a log level"),
        "{log}"
    );
    // Still logging, at info, as plain text.
    assert!(log.contains("INFO") && log.contains("http: on"), "{log}");
}
