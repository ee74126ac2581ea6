//! Benchmark: GitHub webhook ingest (verify, deduplicate, store durably, acknowledge).
//!
//! Run: `cargo bench --bench github_ingest`. Signed ~28 KB `pull_request` deliveries (the
//! octokit `opened` example when `../shared/fixtures` is there, else a payload of the same size
//! made here), each with its own delivery id, are posted by 64 concurrent clients to:
//! - a bare axum handler that answers 200 (the ceiling of this machine and client);
//! - a naive handler that verifies the signature and commits one SQLite transaction per
//!   delivery (WAL, synchronous=FULL);
//! - changebot's real receiver (`serve`'s router and server, SQLite, inbox processor running).
//!
//! Then changebot alone gets a steady 1,000 deliveries/s for 10 s (p99 acknowledgement
//! latency), and the inbox must drain. Targets: at least 2x the naive handler's throughput,
//! p99 under 25 ms, inbox drained. `BENCH_DELIVERIES` overrides the count per server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use changebot::app::App;
use changebot::clock::SystemClock;
use changebot::config::Config;

const SECRET: &str = "bench-github-secret";
const SECRET_ENV: &str = "CHANGEBOT_BENCH_GITHUB_SECRET";
const CLIENTS: usize = 64;

fn payload() -> Vec<u8> {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/github/pull_request/opened.payload.json");
    if let Ok(bytes) = std::fs::read(&fixture) {
        println!("payload: {} ({} bytes)", fixture.display(), bytes.len());
        return bytes;
    }
    let filler = "x".repeat(27_000);
    let body = serde_json::json!({
        "action": "opened", "number": 2,
        "pull_request": { "number": 2, "title": "Bench", "draft": false, "merged": false,
            "head": { "sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821" }, "labels": [],
            "body": filler },
        "repository": { "full_name": "Codertocat/Hello-World" },
        "sender": { "login": "Codertocat" }
    });
    let bytes = body.to_string().into_bytes();
    println!(
        "payload: made here ({} bytes; ../shared/fixtures is absent)",
        bytes.len()
    );
    bytes
}

fn sign(body: &[u8]) -> String {
    changebot::deploy::signature::sign(SECRET.as_bytes(), body)
}

async fn serve(router: Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(base)
}

async fn bare() -> anyhow::Result<String> {
    serve(Router::new().route("/webhooks/github", post(|| async { StatusCode::OK }))).await
}

async fn naive(dir: &std::path::Path) -> anyhow::Result<String> {
    let options = SqliteConnectOptions::new()
        .filename(dir.join("naive.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::query(
        "CREATE TABLE deliveries (delivery_id TEXT PRIMARY KEY, event TEXT NOT NULL, body TEXT NOT NULL)",
    )
    .execute(&pool)
    .await?;
    async fn handle(
        State(pool): State<sqlx::SqlitePool>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let sig = header("x-hub-signature-256");
        if !changebot::deploy::signature::verify(SECRET.as_bytes(), &body, sig.as_deref()) {
            return StatusCode::UNAUTHORIZED;
        }
        let (Some(event), Some(id)) = (header("x-github-event"), header("x-github-delivery"))
        else {
            return StatusCode::BAD_REQUEST;
        };
        let text = String::from_utf8_lossy(&body).to_string();
        let stored = async {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO deliveries VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(event)
                .bind(text)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        match stored.await {
            Ok(()) => StatusCode::ACCEPTED,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    serve(
        Router::new()
            .route("/webhooks/github", post(handle))
            .layer(axum::extract::DefaultBodyLimit::max(26 * 1024 * 1024))
            .with_state(pool),
    )
    .await
}

async fn changebot(dir: &std::path::Path) -> anyhow::Result<(String, Arc<App>)> {
    let url = format!("sqlite://{}", dir.join("changebot.db").display());
    let text = format!(
        r#"
[server]
bind = "127.0.0.1:0"
[database]
url = "{url}"
[github]
webhook_secret_env = "{SECRET_ENV}"
[[person]]
name = "alice"
github = "Codertocat"
groups = ["hello-owners"]
[[service]]
name = "hello"
repos = ["Codertocat/Hello-World"]
owners = "hello-owners"
environments = ["production"]
windows = ["always"]
[[policy]]
name = "normal"
when = {{ type = "normal" }}
require = [{{ group = "owners", count = 1 }}]
[[window]]
name = "always"
cron = "0 0 * * *"
duration = "1d"
"#
    );
    let env = |name: &str| (name == SECRET_ENV).then(|| SECRET.to_string());
    let config = Config::parse(&text, std::path::Path::new("bench.toml"), &env)
        .map_err(|e| anyhow::anyhow!("bench config: {e}"))?;
    let app = Arc::new(App::build(config, Arc::new(SystemClock)).await?);
    let router = changebot::http::router(app.http_state());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(changebot::http_server::run(
        listener,
        router,
        changebot::http_server::Limits::default(),
        std::future::pending(),
    ));
    let background = app.clone();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    if std::env::var_os("BENCH_NO_PROCESSOR").is_none() {
        tokio::spawn(async move {
            background.run_background(stop_rx).await;
            drop(_stop);
        });
    }
    Ok((base, app))
}

async fn post_one(
    client: &reqwest::Client,
    base: &str,
    body: &Bytes,
    signature: &str,
    id: &str,
) -> Result<Duration, String> {
    let began = Instant::now();
    let res = client
        .post(format!("{base}/webhooks/github"))
        .header("x-hub-signature-256", signature)
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", id)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("answered {}", res.status()));
    }
    Ok(began.elapsed())
}

/// Posts `n` deliveries from `CLIENTS` concurrent clients; returns deliveries per second.
async fn throughput(label: &str, base: &str, body: &Bytes, n: usize) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let signature = Arc::new(sign(body));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let began = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, base, body) = (client.clone(), base.to_string(), body.clone());
        let (signature, next) = (signature.clone(), next.clone());
        let label = label.to_string();
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                post_one(&client, &base, &body, &signature, &format!("{label}-{i}"))
                    .await
                    .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let rate = n as f64 / began.elapsed().as_secs_f64();
    println!(
        "[{label}] {n} deliveries in {:.2} s: {rate:.0}/s",
        began.elapsed().as_secs_f64()
    );
    Ok(rate)
}

/// A steady `rate` deliveries/s for `seconds`; returns the p99 acknowledgement latency.
async fn steady(base: &str, body: &Bytes, rate: u64, seconds: u64) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let signature = Arc::new(sign(body));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..rate * seconds {
        tick.tick().await;
        let (client, base, body, signature) = (
            client.clone(),
            base.to_string(),
            body.clone(),
            signature.clone(),
        );
        sends.spawn(async move {
            post_one(&client, &base, &body, &signature, &format!("steady-{i}")).await
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = sends.join_next().await {
        latencies.push(done?.map_err(anyhow::Error::msg)?);
    }
    latencies.sort_unstable();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "[changebot steady {rate}/s for {seconds} s] ack latency p50={:.1} ms p99={:.1} ms max={:.1} ms",
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );
    Ok(p(0.99))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // SAFETY: set before any other thread reads the environment.
    unsafe { std::env::set_var(SECRET_ENV, SECRET) };
    let n: usize = std::env::var("BENCH_DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let body = Bytes::from(payload());
    let dir = tempfile::tempdir()?;

    let bare_rate = throughput("bare axum 200", &bare().await?, &body, n).await?;
    let naive_rate = throughput(
        "naive: one SQLite transaction per delivery",
        &naive(dir.path()).await?,
        &body,
        n,
    )
    .await?;
    let (base, app) = changebot(dir.path()).await?;
    let ours = throughput("changebot", &base, &body, n).await?;
    let p99 = steady(&base, &body, 1_000, 10).await?;

    let drain_began = Instant::now();
    let store = app.workflow.store().clone();
    let inbox_url = format!(
        "sqlite://{}",
        dir.path().join("changebot-inbox.db").display()
    );
    let inbox = changebot::store::Store::connect(&inbox_url).await?;
    let mut pending = inbox.deliveries_pending().await?;
    while pending > 0 && drain_began.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        pending = inbox.deliveries_pending().await?;
    }
    drop(store);
    println!(
        "[changebot] inbox pending after the runs: {pending} (drained in {:.1} s after the last acknowledgement)",
        drain_began.elapsed().as_secs_f64()
    );
    let ratio = ours / naive_rate;
    println!(
        "summary: bare {bare_rate:.0}/s, naive {naive_rate:.0}/s, changebot {ours:.0}/s ({ratio:.2}x naive); p99 {:.1} ms at 1000/s",
        p99.as_secs_f64() * 1e3
    );
    let ok = ratio >= 2.0 && p99 < Duration::from_millis(25) && pending == 0;
    println!(
        "target: >= 2x naive, p99 < 25 ms at 1000/s, inbox drained: {}",
        if ok { "PASS" } else { "FAIL" }
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
