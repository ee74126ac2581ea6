//! Releases across real `changebot serve` processes: a SIGKILL in the middle of a deployment
//! call, and two replicas sharing one PostgreSQL. These run on the real clock (a few seconds).

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use changebot::app::App;
use changebot::clock::SystemClock;
use changebot::domain::ChangeId;
use changebot::domain::release::DeploymentStatus;
use changebot::store::Store;

use support::target::{FakeTarget, Reply};

/// The fixture organisation deploying to `target`, polling every second, claims lasting 3 s.
fn write_config(dir: &Path, database_url: &str, target: &str) -> PathBuf {
    let mut text = support::config_text(database_url, Some(target));
    text.push_str("\n[scheduler]\ntick = \"1s\"\nlease = \"3s\"\n");
    let path = dir.join("changebot.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn serve(config: &Path) -> Child {
    Command::new(support::binary())
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env(support::DEPLOY_SECRET_ENV, support::DEPLOY_SECRET)
        .env("CHANGEBOT_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("changebot serve starts")
}

/// Opens `n` emergency changes and approves them: each is booked for now, due at once.
async fn emergency_changes(database_url: &str, target: &str, n: usize) {
    support::export_deploy_secret();
    let app = App::build(
        support::config_for(database_url, Some(target)),
        Arc::new(SystemClock),
    )
    .await
    .expect("app");
    let now = chrono::Utc::now();
    for i in 1..=n {
        let open = changebot::chat::parse(&format!(
            "change open payments-api Hotfix {i} --type emergency"
        ))
        .expect("parse");
        let alice = changebot::workflow::Actor::acting_as(
            &app.config.org,
            "alice",
            changebot::workflow::Surface::Cli,
        )
        .expect("person");
        app.workflow.execute(&alice, open, now).await.expect("open");
        let approve = changebot::chat::parse(&format!("change approve CHG-{i}")).expect("parse");
        let erin = changebot::workflow::Actor::acting_as(
            &app.config.org,
            "erin",
            changebot::workflow::Surface::Cli,
        )
        .expect("person");
        app.workflow
            .execute(&erin, approve, now)
            .await
            .expect("approve");
    }
    app.workflow.store().close().await;
}

async fn wait_until_finished(store: &Store, changes: usize, limit: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut finished = 0;
        for i in 1..=changes {
            let deps = store
                .deployments(ChangeId(i as i64))
                .await
                .expect("deployments");
            finished += deps
                .iter()
                .filter(|d| d.status == DeploymentStatus::Succeeded)
                .count();
        }
        if finished >= changes || tokio::time::Instant::now() > deadline {
            return finished;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_process_mid_call_does_not_deploy_twice_and_the_release_finishes() {
    let target = FakeTarget::start().await;
    target.script(&[Reply::Hang]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("changebot.db").display());
    let config = write_config(dir.path(), &url, &target.url);
    emergency_changes(&url, &target.url, 1).await;

    let mut first = serve(&config);
    let got = target.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "the first process called the target");
    first.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    let _ = first.wait();

    let mut second = serve(&config);
    let store = Store::connect(&url).await.expect("store");
    let finished = wait_until_finished(&store, 1, Duration::from_secs(30)).await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(finished, 1, "the deployment finished after the restart");

    let received = target.received();
    let keys: HashSet<String> = received
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["DEP-1".to_string()]),
        "one Idempotency-Key, whatever was repeated"
    );
    assert_eq!(
        received.len(),
        2,
        "the call cut off by the crash, then its one repeat"
    );
    let deployments = store.deployments(ChangeId(1)).await.expect("deployments");
    assert_eq!(deployments.len(), 1, "never a second deployment");
    let change = store
        .change(ChangeId(1))
        .await
        .expect("read")
        .expect("change");
    assert_eq!(
        change.state,
        changebot::domain::State::Review,
        "emergency change waits for its review"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_postgres_send_each_of_200_releases_exactly_once() {
    let Some(admin) = support::postgres_url() else {
        eprintln!("skipping PostgreSQL: CHANGEBOT_TEST_POSTGRES_URL is unset");
        return;
    };
    let url = changebot::store::testing::fresh_postgres(&admin)
        .await
        .expect("fresh database");
    let target = FakeTarget::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &url, &target.url);
    emergency_changes(&url, &target.url, 200).await;

    let mut replicas = [serve(&config), serve(&config)];
    let store = Store::connect(&url).await.expect("store");
    let finished = wait_until_finished(&store, 200, Duration::from_secs(60)).await;
    // Give a duplicate, if there were one, time to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for r in &mut replicas {
        let _ = r.kill();
        let _ = r.wait();
    }
    assert_eq!(finished, 200);
    let received = target.received();
    let keys: HashSet<String> = received
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 200, "every release sent");
    assert_eq!(received.len(), 200, "none sent twice");
    store.close().await;
    let _ = changebot::store::testing::drop_postgres(&admin, &url).await;
}

/// The fixture organisation deploying to `target`, with the default scheduler settings.
fn write_default_config(dir: &Path, database_url: &str, target: &str) -> PathBuf {
    let path = dir.join("changebot.toml");
    std::fs::write(&path, support::config_text(database_url, Some(target))).expect("write");
    path
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{sig}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_cut_off_by_a_crash_is_re_sent_within_10_s_and_audited_as_an_attempt() {
    let target = FakeTarget::start().await;
    target.script(&[Reply::Hang]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("changebot.db").display());
    let config = write_default_config(dir.path(), &url, &target.url);
    emergency_changes(&url, &target.url, 1).await;

    let mut first = serve(&config);
    assert_eq!(target.wait_for(1, Duration::from_secs(30)).await.len(), 1);
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let restarted = std::time::Instant::now();
    let mut second = serve(&config);
    let got = target.wait_for(2, Duration::from_secs(30)).await;
    let resent_after = restarted.elapsed();
    let store = Store::connect(&url).await.expect("store");
    let finished = wait_until_finished(&store, 1, Duration::from_secs(30)).await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(got.len(), 2, "re-sent after the crash");
    assert!(
        resent_after <= Duration::from_secs(10),
        "taken over and re-sent {resent_after:?} after the restart (default lease)"
    );
    assert_eq!(
        got[0].header("idempotency-key"),
        got[1].header("idempotency-key")
    );
    assert_eq!(finished, 1);
    let deployment = &store.deployments(ChangeId(1)).await.expect("deps")[0];
    assert_eq!(
        deployment.attempts, 2,
        "every request that reached the target counts"
    );
    let attempts: Vec<String> = store
        .audit(ChangeId(1))
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "deployment_attempt")
        .map(|e| e.detail)
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0].contains("attempt 1: outcome unknown"),
        "{attempts:?}"
    );
    assert!(attempts[1].contains("attempt 2: HTTP 200"), "{attempts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_a_stalled_replicas_late_completion_is_refused() {
    let Some(admin) = support::postgres_url() else {
        eprintln!("skipping PostgreSQL: CHANGEBOT_TEST_POSTGRES_URL is unset");
        return;
    };
    let url = changebot::store::testing::fresh_postgres(&admin)
        .await
        .expect("fresh database");
    let target = FakeTarget::start().await;
    // The first call is answered late, and with a failure; the repeat succeeds at once.
    target.script(&[Reply::After(
        Duration::from_secs(8),
        200,
        r#"{"status":"failed","message":"too late to matter"}"#,
    )]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_default_config(dir.path(), &url, &target.url);
    emergency_changes(&url, &target.url, 1).await;

    let mut stalled = serve(&config);
    assert_eq!(target.wait_for(1, Duration::from_secs(30)).await.len(), 1);
    signal(&stalled, "STOP");
    let sent = std::time::Instant::now();
    let mut live = serve(&config);
    let got = target.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2, "the live replica took the call over");
    let store = Store::connect(&url).await.expect("store");
    assert_eq!(
        wait_until_finished(&store, 1, Duration::from_secs(30)).await,
        1
    );
    // The stalled replica wakes up after its late answer arrived, and tries to record it.
    tokio::time::sleep(Duration::from_secs(9).saturating_sub(sent.elapsed())).await;
    signal(&stalled, "CONT");
    tokio::time::sleep(Duration::from_secs(4)).await;
    for child in [&mut stalled, &mut live] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let deployments = store.deployments(ChangeId(1)).await.expect("deps");
    assert_eq!(deployments.len(), 1);
    assert_eq!(
        deployments[0].status,
        DeploymentStatus::Succeeded,
        "the new holder's outcome stands: {deployments:?}"
    );
    let audit = store.audit(ChangeId(1)).await.expect("audit");
    assert!(
        !audit.iter().any(|e| e.detail.contains("too late to matter")
            || (e.action == "deployment_attempt" && e.detail.contains("failed"))),
        "the stalled replica recorded nothing: {audit:#?}"
    );
    assert_eq!(target.received().len(), 2, "no third call");
    store.close().await;
    let _ = changebot::store::testing::drop_postgres(&admin, &url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_corrupt_sqlite_file_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("changebot.db");
    let url = format!("sqlite://{}", db.display());
    let config = write_default_config(dir.path(), &url, "http://127.0.0.1:9/deploy");
    emergency_changes(&url, "http://127.0.0.1:9/deploy", 3).await;
    let migrate = Command::new(support::binary())
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .env(support::DEPLOY_SECRET_ENV, support::DEPLOY_SECRET)
        .output()
        .expect("migrate runs");
    assert!(migrate.status.success());
    // Scribble over the `jobs` table only: the schema and the migrations table stay readable,
    // so the damage shows only when the scheduler reads its jobs.
    let (root, page) = {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
        let root: i64 =
            sqlx::query_scalar("SELECT rootpage FROM sqlite_master WHERE name = 'jobs'")
                .fetch_one(&mut conn)
                .await
                .expect("rootpage");
        let page: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&mut conn)
            .await
            .expect("page size");
        conn.close().await.expect("close");
        (root as usize, page as usize)
    };
    let mut bytes = std::fs::read(&db).expect("read db");
    for (i, b) in bytes
        .iter_mut()
        .enumerate()
        .skip((root - 1) * page)
        .take(page)
    {
        *b = (i % 251) as u8;
    }
    std::fs::write(&db, &bytes).expect("write db");
    let mut child = Command::new(support::binary())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env(support::DEPLOY_SECRET_ENV, support::DEPLOY_SECRET)
        .env("CHANGEBOT_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = status.unwrap_or_else(|| panic!("serve started on a corrupt file: {stderr}"));
    assert!(!status.success(), "serve must not start: {stderr}");
    assert!(
        stderr.contains("malformed") || stderr.contains("integrity"),
        "says why: {stderr}"
    );
}
