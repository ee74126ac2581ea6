//! What `changebot serve` says when it starts, through the real binary: one line per surface,
//! where to go next, a warning when `public_url` and `bind` disagree, and a console that runs
//! beside another `serve` instead of failing on the taken port.

mod support;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

/// A config for the fixture organisation with a fresh database, edited by `edit`.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(edit: impl FnOnce(String) -> String) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("serve.db").display());
        let text = edit(support::ORG.replace("sqlite://unused.db", &url));
        std::fs::write(dir.path().join("changebot.toml"), text).expect("write config");
        Setup { dir }
    }

    /// Runs `changebot serve ARGS` with `stdin` as the console's input; returns when it ends
    /// (the console ends with its input; plain `serve` only on a start-up error).
    fn serve(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
        let mut command = Command::new(support::binary());
        command
            .arg("--config")
            .arg(self.dir.path().join("changebot.toml"))
            .arg("serve")
            .args(args)
            .env_remove("CHANGEBOT_CONFIG")
            .env_remove("CHANGEBOT_TEST_API_TOKEN")
            .env_remove("CHANGEBOT_LOG_FORMAT")
            .env("CHANGEBOT_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("serve starts");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("serve ends")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The start-up lines of `log` that begin with `surface:`.
fn surface_lines<'a>(log: &'a str, surface: &str) -> Vec<&'a str> {
    let tag = format!(" {surface}: ");
    log.lines().filter(|l| l.contains(&tag)).collect()
}

#[test]
fn serve_says_once_per_surface_what_is_on_and_off_and_where_to_go_next() {
    let setup = Setup::new(|t| t);
    let token = [("CHANGEBOT_TEST_API_TOKEN", "t0ken-value")];
    let out = setup.serve(&["--console", "--as", "alice"], &token, "");
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    for surface in [
        "http",
        "api",
        "web",
        "github",
        "discord",
        "deployments",
        "scheduler",
        "console",
    ] {
        assert_eq!(surface_lines(&log, surface).len(), 1, "{surface}: {log}");
    }
    for expected in [
        "http: on, listening on 127.0.0.1:",
        "/api/* with the API token from CHANGEBOT_TEST_API_TOKEN",
        "api: on, http://127.0.0.1:",
        "web: on, http://127.0.0.1:",
        "github: off, no [github] section",
        "discord: off, no [discord] section",
        "console: on, as alice",
        "next: type `help` in the console",
        "next: open http://127.0.0.1:",
    ] {
        assert!(log.contains(expected), "`{expected}` in {log}");
    }
    assert!(!log.contains("t0ken-value"), "no secret in the log: {log}");

    // Without the token the API line says why it is off, once (not also as a config warning),
    // and the next steps say how to turn it on.
    let out = setup.serve(&["--console"], &[], "");
    let log = stderr(&out);
    assert_eq!(
        log.matches("CHANGEBOT_TEST_API_TOKEN is not set").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("WARN") && log.contains("api: off, CHANGEBOT_TEST_API_TOKEN is not set"),
        "{log}"
    );
    assert!(log.contains("web: off"), "{log}");
    assert!(
        log.contains("next: set CHANGEBOT_TEST_API_TOKEN and restart"),
        "{log}"
    );
}

#[test]
fn a_public_url_that_other_machines_cannot_reach_is_a_warning() {
    let setup = Setup::new(|t| t.replace("bind = \"127.0.0.1:0\"", "bind = \"0.0.0.0:0\""));
    let out = setup.serve(&["--console"], &[], "");
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let warning = log
        .lines()
        .find(|l| l.contains("public_url http://127.0.0.1:8080 points at this machine only"))
        .unwrap_or_else(|| panic!("no public_url warning in {log}"));
    assert!(warning.contains("WARN"), "{warning}");
}

#[test]
fn a_console_runs_beside_another_server_and_a_second_server_says_how() {
    // Something (another `serve`) already listens on the configured address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let setup = Setup::new(|t| t.replace("bind = \"127.0.0.1:0\"", &format!("bind = \"{addr}\"")));

    let out = setup.serve(
        &["--console", "--as", "alice"],
        &[],
        "change open payments-api Rotate keys\nchange list\n",
    );
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!("http: off, {addr} is already in use")) && log.contains("--bind"),
        "{log}"
    );
    let replies = String::from_utf8_lossy(&out.stdout);
    assert!(replies.contains("CHG-1"), "the console works: {replies}");

    // A plain second `serve` cannot do anything useful without its port: it says how.
    let out = setup.serve(&[], &[], "");
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    for expected in [
        format!("{addr} is already in use").as_str(),
        "--bind ADDR",
        "serve --console",
    ] {
        assert!(log.contains(expected), "`{expected}` in {log}");
    }

    // --bind gives the console a server of its own.
    let out = setup.serve(&["--console", "--bind", "127.0.0.1:0"], &[], "");
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("http: on, listening on 127.0.0.1:"), "{log}");
    drop(taken);
}
