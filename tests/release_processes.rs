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
        let alice = changebot::workflow::Actor::new("alice", changebot::workflow::Surface::Cli);
        app.workflow.execute(&alice, open, now).await.expect("open");
        let approve = changebot::chat::parse(&format!("change approve CHG-{i}")).expect("parse");
        let erin = changebot::workflow::Actor::new("erin", changebot::workflow::Surface::Cli);
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
