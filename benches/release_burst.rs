//! Benchmark: 10,000 releases due in the same minute against a local deployment target.
//! Target: every one sent within 5 s of its slot, none twice.
//!
//! Run: `cargo bench --bench release_burst` (`BENCH_RELEASES` overrides the count). The real
//! scheduler and outbox dispatcher run on the system clock against a fresh SQLite database;
//! the bookings are written straight through the store to keep the set-up short.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant, SystemTime};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use chrono::{DateTime, Duration, Utc};

use changebot::app::App;
use changebot::clock::SystemClock;
use changebot::config::Config;
use changebot::domain::calendar::Interval;
use changebot::domain::{ChangeType, Risk, Source, State};
use changebot::store::NewChange;
use changebot::store::releases::{JobKind, NewJob, NewOutbox, OutboxKind};

const SECRET_ENV: &str = "CHANGEBOT_BENCH_DEPLOY_SECRET";

/// Services × environments: every release has its own target, as 10,000 releases due in one
/// minute would in real life (bookings on one service and environment never overlap).
const SERVICES: usize = 1_000;
const ENVIRONMENTS: usize = 10;

/// The organisation: every target deploys to `fast`, except svc-0/e0 which deploys to `slow`.
fn config(database_url: &str, fast: &str, slow: &str) -> anyhow::Result<Config> {
    use std::fmt::Write as _;
    let mut text = format!(
        r#"
[server]
bind = "127.0.0.1:0"
[database]
url = "{database_url}"
[[person]]
name = "alice"
groups = ["owners-team"]
[[policy]]
name = "standard"
when = {{ type = "standard" }}
require = []
[[window]]
name = "always"
cron = "0 0 * * *"
duration = "1d"
"#
    );
    let envs: Vec<String> = (0..ENVIRONMENTS).map(|e| format!("\"e{e}\"")).collect();
    for s in 0..SERVICES {
        let _ = write!(
            text,
            "[[service]]\nname = \"svc-{s}\"\nowners = \"owners-team\"\nenvironments = [{}]\nwindows = [\"always\"]\n",
            envs.join(", ")
        );
        for e in 0..ENVIRONMENTS {
            let url = if s == 0 && e == 0 { slow } else { fast };
            let _ = write!(
                text,
                "[service.deploy.e{e}]\nurl = \"{url}\"\nsecret_env = \"{SECRET_ENV}\"\ntimeout = \"15m\"\n"
            );
        }
    }
    Config::parse(&text, std::path::Path::new("bench.toml"), &|n| {
        (n == SECRET_ENV).then(|| "bench".into())
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
}

type Seen = Arc<Mutex<HashMap<String, Vec<SystemTime>>>>;

/// A deployment target that records when each call arrived and answers after `delay`.
async fn start_target(seen: Seen, delay: StdDuration) -> anyhow::Result<String> {
    let app = Router::new().route(
        "/deploy",
        post(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                if let Ok(mut s) = seen.lock() {
                    s.entry(key).or_default().push(SystemTime::now());
                }
                tokio::time::sleep(delay).await;
                (
                    [("content-type", "application/json")],
                    r#"{"status":"succeeded"}"#,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/deploy", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // SAFETY: set before any other thread reads the environment.
    unsafe { std::env::set_var(SECRET_ENV, "bench") };
    if let Ok(filter) = std::env::var("CHANGEBOT_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let n: usize = std::env::var("BENCH_RELEASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
        .min(SERVICES * ENVIRONMENTS);
    let all_fast = burst(n, None).await?;
    let one_slow = burst(n, Some(StdDuration::from_secs(25))).await?;
    if !(all_fast && one_slow) {
        std::process::exit(1);
    }
    Ok(())
}

/// Books `n` releases due at the same instant and lets the real background loops send them;
/// with `slow`, svc-0/e0's target takes that long to answer. Returns whether every call was
/// sent within 5 s of the slot, none twice.
async fn burst(n: usize, slow: Option<StdDuration>) -> anyhow::Result<bool> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("burst.db").display());
    let seen: Seen = Arc::default();
    let fast_url = start_target(seen.clone(), StdDuration::ZERO).await?;
    let slow_url = start_target(seen.clone(), slow.unwrap_or_default()).await?;
    let app = App::build(config(&url, &fast_url, &slow_url)?, Arc::new(SystemClock)).await?;

    // Book n changes, each on its own service and environment, all starting at the same
    // instant a little ahead.
    let setup = Instant::now();
    let now = Utc::now();
    let slot_start: DateTime<Utc> =
        DateTime::from_timestamp(now.timestamp() + 20, 0).unwrap_or(now);
    let store = app.workflow.store();
    let mut done = 0;
    while done < n {
        let mut tx = store.begin().await?;
        for _ in 0..1_000.min(n - done) {
            let mut change = tx
                .insert_change(&NewChange {
                    title: format!("burst {done}"),
                    description: String::new(),
                    service: format!("svc-{}", done / ENVIRONMENTS),
                    environment: format!("e{}", done % ENVIRONMENTS),
                    change_type: ChangeType::Standard,
                    risk: Risk::Low,
                    state: State::Scheduled,
                    requester: "alice".into(),
                    source: Source::Api,
                    pull_request: None,
                    duration: Duration::minutes(30),
                    approval_round: 0,
                    created_at: now,
                    first_commit_at: None,
                })
                .await?;
            change.slot = Some(Interval::new(
                slot_start,
                slot_start + Duration::minutes(30),
            ));
            tx.update_change(&change).await?;
            let job = NewJob {
                kind: JobKind::ReleaseStart,
                change: Some(change.id),
                deployment: None,
                name: None,
                due_at: slot_start,
            };
            tx.insert_job(&job, now).await?;
            // Its card, as opening the change would have queued it: every move during the
            // burst then queues an update of it too.
            let card = NewOutbox {
                kind: OutboxKind::Card,
                surface: "chat",
                deployment: None,
                change: Some(change.id),
                channel: Some("releases"),
                body: "",
                topic: None,
                parked_item: None,
            };
            if std::env::var_os("BENCH_NO_CARDS").is_none() {
                tx.insert_outbox(&card, now).await?;
            }
            done += 1;
        }
        tx.commit().await?;
    }
    let label = if slow.is_some() {
        "one slow target (25 s) among them"
    } else {
        "all targets fast"
    };
    println!(
        "[{label}] booked {n} releases for {slot_start} in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    if Utc::now() >= slot_start {
        anyhow::bail!("set-up overran the slot; lower BENCH_RELEASES");
    }

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(async move { app.run_background(stop_rx).await });
    let deadline = Instant::now() + StdDuration::from_secs(120);
    loop {
        let count = seen.lock().map(|s| s.len()).unwrap_or(0);
        if count >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    // Let any duplicate arrive before counting.
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    let _ = stop.send(true);
    background.abort();

    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let slot =
        SystemTime::UNIX_EPOCH + StdDuration::from_secs(u64::try_from(slot_start.timestamp())?);
    let mut lags: Vec<StdDuration> = seen
        .values()
        .filter_map(|times| times.first())
        .map(|t| t.duration_since(slot).unwrap_or_default())
        .collect();
    lags.sort_unstable();
    let twice = seen.values().filter(|t| t.len() > 1).count();
    let pick = |p: f64| {
        lags.get(((lags.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "[{label}] releases sent: {} of {n}; sent twice: {twice}; lag after slot p50={:.2} s p99={:.2} s max={:.2} s",
        lags.len(),
        pick(0.5).as_secs_f64(),
        pick(0.99).as_secs_f64(),
        pick(1.0).as_secs_f64()
    );
    let ok = lags.len() == n && twice == 0 && pick(1.0) <= StdDuration::from_secs(5);
    println!(
        "[{label}] target: all sent within 5 s of the slot, none twice: {}",
        if ok { "PASS" } else { "FAIL" }
    );
    Ok(ok)
}
