//! Many short-lived `changebot chat` processes at once share the database politely: each holds
//! one connection, migrations on a new database run once under a lock, a full PostgreSQL server
//! is waited for, and an unreachable one is reported with where and why.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How many one-shots run at once: twice PostgreSQL's default `max_connections`.
const BURST: usize = 200;

/// The bursts run one at a time, so the machine is not asked for 400 processes at once.
static ONE_BURST_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn write_config(dir: &Path, database_url: &str) -> PathBuf {
    let path = dir.join("changebot.toml");
    let text = support::ORG.replace("sqlite://unused.db", database_url);
    std::fs::write(&path, text).expect("write config");
    path
}

fn one_shot(config: &Path) -> Child {
    Command::new(support::binary())
        .arg("--config")
        .arg(config)
        .args(["chat", "--as", "alice", "change", "list"])
        .env_remove("CHANGEBOT_CONFIG")
        .env_remove("CHANGEBOT_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("changebot starts")
}

/// Starts `BURST` one-shots together and waits for all of them.
fn burst(config: &Path) -> Vec<Output> {
    let children: Vec<Child> = (0..BURST).map(|_| one_shot(config)).collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("changebot runs"))
        .collect()
}

/// Panics with a summary unless every one-shot exited 0.
fn all_succeeded(outputs: &[Output], database: &str) {
    let failures: Vec<String> = outputs
        .iter()
        .filter(|o| !o.status.success())
        .map(|o| {
            format!(
                "exit {:?}: {}",
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).trim()
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {BURST} one-shots on {database} failed; first: {}",
        failures.len(),
        failures[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_shots_on_a_new_sqlite_file_all_succeed() {
    let _turn = ONE_BURST_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("new.db").display());
    let config = write_config(dir.path(), &url);
    let outputs = tokio::task::spawn_blocking(move || burst(&config))
        .await
        .expect("burst");
    all_succeeded(&outputs, "a new SQLite file");
    let store = changebot::store::Store::connect(&url).await.expect("store");
    assert_eq!(store.count_changes().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_shots_on_a_new_postgres_database_all_succeed_quietly() {
    let Some(admin) = support::postgres_url() else {
        eprintln!("skipping PostgreSQL: CHANGEBOT_TEST_POSTGRES_URL is unset");
        return;
    };
    let _turn = ONE_BURST_AT_A_TIME.lock().await;
    let url = changebot::store::testing::fresh_postgres(&admin)
        .await
        .expect("fresh postgres database");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &url);
    let outputs = tokio::task::spawn_blocking(move || burst(&config))
        .await
        .expect("burst");
    all_succeeded(&outputs, "a new PostgreSQL database");
    for o in &outputs {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !stderr.lines().any(|l| l.contains("_sqlx_migrations")),
            "a one-shot logged a migration notice:\n{stderr}"
        );
    }
    let _ = changebot::store::testing::drop_postgres(&admin, &url).await;
}

#[tokio::test]
async fn an_unreachable_postgres_is_named_with_its_cause_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens on port 1; the password must not show up anywhere.
    let config = write_config(
        dir.path(),
        "postgres://changebot:hunter2@127.0.0.1:1/changebot_db",
    );
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        one_shot(&config)
            .wait_with_output()
            .expect("changebot runs")
    })
    .await
    .expect("one-shot");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "cannot connect to PostgreSQL at 127.0.0.1:1 (database changebot_db): connection refused"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("pool timed out"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(
        took < Duration::from_secs(20),
        "gave up only after {took:?}: {stderr}"
    );
}
