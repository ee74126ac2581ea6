//! Benchmark: 1,000,000 change records in SQLite; `change list --service S --state scheduled`
//! and the slot/conflict search for one service must answer with p99 under 10 ms.
//!
//! Run: `cargo bench --bench store_scale`. The database is built once under
//! `target/bench-data/` and reused (delete it to rebuild). `BENCH_ROWS` overrides the size.

use std::path::PathBuf;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};

use changebot::config::Config;
use changebot::domain::calendar::Interval;
use changebot::domain::lifecycle::Context;
use changebot::domain::{Change, ChangeId, ChangeType, Risk, Source, State};
use changebot::store::{ChangeFilter, NewChange, Store};

const SERVICES: usize = 50;

fn percentile(samples: &mut [StdDuration], p: f64) -> StdDuration {
    samples.sort_unstable();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx]
}

fn report(name: &str, samples: &mut [StdDuration]) -> StdDuration {
    let p50 = percentile(samples, 0.50);
    let p99 = percentile(samples, 0.99);
    let max = percentile(samples, 1.0);
    println!(
        "{name:<44} n={:<5} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        samples.len(),
        ms(p50),
        ms(p99),
        ms(max)
    );
    p99
}

fn ms(d: StdDuration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn service_name(i: usize) -> String {
    if i == 0 {
        "payments-api".to_string()
    } else {
        format!("service-{i:02}")
    }
}

async fn populate(store: &Store, rows: usize, now: DateTime<Utc>) -> anyhow::Result<()> {
    let have = store.count_changes().await? as usize;
    if have >= rows {
        println!("reusing {have} change records");
        return Ok(());
    }
    println!("inserting {} change records (once)…", rows - have);
    let started = Instant::now();
    let mut booked_at = vec![now + Duration::hours(1); SERVICES];
    let mut i = have;
    while i < rows {
        let mut tx = store.begin().await?;
        for _ in 0..10_000.min(rows - i) {
            let svc = i % SERVICES;
            // Independent of the service: every service gets the same mix.
            let state = match (i / SERVICES) % 100 {
                0..=2 => State::Scheduled,
                3..=4 => State::Authorize,
                5..=9 => State::Canceled,
                _ => State::Closed,
            };
            let mut change = tx
                .insert_change(&NewChange {
                    title: format!("change number {i}"),
                    description: String::new(),
                    service: service_name(svc),
                    environment: "production".into(),
                    change_type: ChangeType::Normal,
                    risk: Risk::Medium,
                    state,
                    requester: format!("person-{}", i % 200),
                    source: Source::Chat,
                    pull_request: None,
                    duration: Duration::minutes(30),
                    approval_round: 0,
                    created_at: now - Duration::minutes((rows - i) as i64),
                    first_commit_at: None,
                })
                .await?;
            if state == State::Scheduled {
                let start = booked_at[svc];
                booked_at[svc] = start + Duration::hours(2);
                change.slot = Some(Interval::new(start, start + Duration::minutes(30)));
                tx.update_change(&change).await?;
            }
            i += 1;
        }
        tx.commit().await?;
    }
    println!("inserted in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir)?;
    let url = format!(
        "sqlite://{}",
        dir.join(format!("changes-{rows}.db")).display()
    );
    let config =
        Config::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/changebot.toml"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let now = DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")?.with_timezone(&Utc);
    populate(&store, rows, now).await?;
    println!("database: {} change records", store.count_changes().await?);

    // 1. change list --service S --state scheduled
    let filter = ChangeFilter {
        state: Some(State::Scheduled),
        service: Some("payments-api".into()),
        limit: 50,
        ..ChangeFilter::default()
    };
    let mut samples = Vec::new();
    for _ in 0..1_000 {
        let t = Instant::now();
        let found = store.list_changes(&filter).await?;
        samples.push(t.elapsed());
        assert_eq!(found.len(), 50);
    }
    let list_p99 = report("change list --service S --state scheduled", &mut samples);

    // 2. slot/conflict search for one service: load the bookings on the service/environment,
    //    the freezes, and find the earliest legal slot, inside the write transaction the
    //    workflow uses.
    let probe = Change {
        id: ChangeId(i64::MAX),
        title: "probe".into(),
        description: String::new(),
        service: "payments-api".into(),
        environment: "production".into(),
        change_type: ChangeType::Normal,
        risk: Risk::Medium,
        state: State::Authorize,
        close_code: None,
        requester: "alice".into(),
        source: Source::Chat,
        pull_request: None,
        duration: Duration::minutes(30),
        slot: None,
        approval_round: 0,
        created_at: now,
        updated_at: now,
        first_commit_at: None,
    };
    let mut samples = Vec::new();
    let mut booked_seen = 0;
    for _ in 0..1_000 {
        let t = Instant::now();
        let mut tx = store.begin().await?;
        let booked = tx
            .booked_on("payments-api", "production", now, None)
            .await?;
        let stored = tx.freezes(now).await?;
        tx.rollback().await?;
        let mut freezes = config.org.freezes.clone();
        freezes.extend(stored.iter().map(|f| changebot::domain::calendar::Freeze {
            name: f.name.clone(),
            span: changebot::domain::calendar::FreezeSpan::OneOff(Interval::new(f.start, f.end)),
            services: f.services.clone(),
            reason: f.reason.clone(),
        }));
        let cx = Context {
            org: &config.org,
            votes: &[],
            checks: &[],
            booked: &booked,
            freezes: &freezes,
            now,
        };
        let slot = cx.next_slot(&probe, now);
        samples.push(t.elapsed());
        booked_seen = booked.len();
        assert!(slot.is_some(), "a slot exists");
    }
    let slot_p99 = report(
        &format!("slot/conflict search ({booked_seen} bookings)"),
        &mut samples,
    );

    let target = StdDuration::from_millis(10);
    println!(
        "target p99 < 10 ms: list {}, slot search {}",
        verdict(list_p99 < target),
        verdict(slot_p99 < target)
    );
    if list_p99 >= target || slot_p99 >= target {
        std::process::exit(1);
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}
