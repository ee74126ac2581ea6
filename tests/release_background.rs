//! The background loops as `serve` runs them, on the real clock: one slow deployment target
//! holds up nobody else, and `/readyz` tells the truth about the loops.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use changebot::app::App;
use changebot::clock::SystemClock;
use changebot::domain::ChangeId;
use changebot::domain::release::DeploymentStatus;
use changebot::notify::MemorySink;
use changebot::workflow::{Actor, Surface};

use support::target::{FakeTarget, Reply};

/// The fixture organisation with payments-api/production deploying to `production` and
/// payments-api/staging to `staging`.
fn two_targets(database_url: &str, production: &str, staging: &str) -> changebot::config::Config {
    let text = support::config_text(database_url, Some(production)).replacen(
        "timeout = \"15m\"\n",
        &format!(
            "timeout = \"15m\"\n[service.deploy.staging]\nurl = \"{staging}\"\nsecret_env = \"{}\"\ntimeout = \"15m\"\n",
            support::DEPLOY_SECRET_ENV
        ),
        1,
    );
    let env = |name: &str| {
        (name == support::DEPLOY_SECRET_ENV).then(|| support::DEPLOY_SECRET.to_string())
    };
    changebot::config::Config::parse(&text, std::path::Path::new("test.toml"), &env)
        .expect("valid config")
}

/// Opens an emergency change and has erin approve it: its release is due at once.
async fn emergency(app: &App, env: &str, n: i64) {
    let now = chrono::Utc::now();
    let open = changebot::chat::parse(&format!(
        "change open payments-api Hotfix {n} --type emergency --env {env}"
    ))
    .expect("parse");
    let alice = Actor::acting_as(&app.config.org, "alice", Surface::Cli).expect("person");
    app.workflow.execute(&alice, open, now).await.expect("open");
    let approve = changebot::chat::parse(&format!("change approve CHG-{n}")).expect("parse");
    let erin = Actor::acting_as(&app.config.org, "erin", Surface::Cli).expect("person");
    app.workflow
        .execute(&erin, approve, now)
        .await
        .expect("approve");
}

async fn deployment_status(app: &App, change: i64) -> Option<DeploymentStatus> {
    let deps = app
        .workflow
        .store()
        .deployments(ChangeId(change))
        .await
        .expect("deployments");
    deps.first().map(|d| d.status)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_slow_target_holds_up_no_other_change() {
    support::export_deploy_secret();
    let slow = FakeTarget::start().await;
    slow.script(&[Reply::After(
        Duration::from_secs(25),
        200,
        r#"{"status":"succeeded"}"#,
    )]);
    let fast = FakeTarget::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("changebot.db").display());
    let sink = Arc::new(MemorySink::default());
    let app = Arc::new(
        App::build_with(
            two_targets(&url, &slow.url, &fast.url),
            Arc::new(SystemClock),
            sink.clone(),
        )
        .await
        .expect("app"),
    );
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let background = {
        let app = app.clone();
        tokio::spawn(async move { app.run_background(stop_rx).await })
    };

    // CHG-1's target takes 25 s to answer.
    emergency(&app, "production", 1).await;
    assert_eq!(slow.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    // CHG-2 starts a moment later on another target: its call goes out at once, and its
    // outcome and notices are recorded while CHG-1's call is still out.
    emergency(&app, "staging", 2).await;
    let started = Instant::now();
    let got = fast.wait_for(1, Duration::from_secs(10)).await;
    let sent_after = started.elapsed();
    assert_eq!(got.len(), 1, "CHG-2's call was sent");
    assert!(
        sent_after < Duration::from_secs(3),
        "CHG-2's call waited {sent_after:?} behind a slow target"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while deployment_status(&app, 2).await != Some(DeploymentStatus::Succeeded)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        deployment_status(&app, 2).await,
        Some(DeploymentStatus::Succeeded),
        "CHG-2's outcome is recorded as it arrives"
    );
    assert_eq!(
        deployment_status(&app, 1).await,
        Some(DeploymentStatus::Pending),
        "CHG-1's call is still out"
    );
    while !sink
        .messages()
        .iter()
        .any(|(_, m)| m.starts_with("CHG-2") && m.contains("succeeded"))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sink.messages()
            .iter()
            .any(|(_, m)| m.starts_with("CHG-2") && m.contains("succeeded")),
        "CHG-2's result was announced: {:?}",
        sink.messages()
    );
    let _ = stop.send(true);
    background.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_fails_with_the_reason_when_background_rounds_fail() {
    support::export_deploy_secret();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("changebot.db").display());
    let app = Arc::new(
        App::build(support::config(&url), Arc::new(SystemClock))
            .await
            .expect("app"),
    );
    let router = changebot::http::router(app.http_state());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let background = {
        let app = app.clone();
        tokio::spawn(async move { app.run_background(stop_rx).await })
    };
    let readyz = || async {
        let res = reqwest::get(format!("{base}/readyz")).await.expect("get");
        (res.status().as_u16(), res.text().await.expect("body"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = readyz().await;
    while last.0 != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = readyz().await;
    }
    assert_eq!(last.0, 200, "ready while healthy: {}", last.1);

    // The database breaks under the running process: every scheduler round now fails.
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
        sqlx::raw_sql("DROP TABLE jobs")
            .execute(&mut conn)
            .await
            .expect("drop");
        conn.close().await.expect("close");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while last.0 == 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = readyz().await;
    }
    assert_eq!(last.0, 503, "{}", last.1);
    assert!(
        last.1.contains("the scheduler is failing") && last.1.contains("no such table"),
        "says why: {}",
        last.1
    );
    let _ = stop.send(true);
    background.abort();
}
