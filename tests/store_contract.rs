//! The store's contract, run against SQLite always and against PostgreSQL when
//! `CHANGEBOT_TEST_POSTGRES_URL` names a server (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`; every test gets a fresh database there).
//!
//! Each scenario below is an `async fn(url)`; `contract!` turns it into one test per backend
//! (`sqlite::NAME` and `postgres::NAME`).

use std::io::Write;
use std::sync::Once;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::{AnyConnection, Connection};

use changebot::domain::calendar::{Booked, Interval};
use changebot::domain::change::PullRequest;
use changebot::domain::policy::{Verdict, Vote};
use changebot::domain::{ChangeId, ChangeType, CloseCode, Risk, Source, State};
use changebot::store::testing::{POSTGRES_URL_ENV, drop_postgres, fresh_postgres};
use changebot::store::{
    Backend, ChangeFilter, NewAuditEntry, NewChange, NewFreeze, Store, StoreError,
};

// ---------------------------------------------------------------------------------------------
// Fixtures

struct Db {
    url: String,
    admin: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("temp dir");
        // A directory that does not exist yet: connect must create it.
        let url = format!(
            "sqlite://{}",
            dir.path().join("data/changebot.db").display()
        );
        Db {
            url,
            admin: None,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Option<Db> {
        let Ok(admin) = std::env::var(POSTGRES_URL_ENV) else {
            static SAY_ONCE: Once = Once::new();
            SAY_ONCE.call_once(|| {
                // Straight to stderr, past the test harness's output capture.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping PostgreSQL: {POSTGRES_URL_ENV} is unset"
                );
            });
            return None;
        };
        let url = fresh_postgres(&admin).await.unwrap_or_else(|e| {
            panic!("cannot create a test database via {POSTGRES_URL_ENV}: {e}")
        });
        Some(Db {
            url,
            admin: Some(admin),
            _dir: None,
        })
    }

    async fn finish(self) {
        if let Some(admin) = &self.admin {
            drop_postgres(admin, &self.url)
                .await
                .expect("drop test database");
        }
    }
}

impl Db {
    /// Runs `scenario` against this database, then drops the database even if it panicked.
    async fn run<F, Fut>(self, scenario: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let outcome = tokio::spawn(scenario(self.url.clone())).await;
        self.finish().await;
        if let Err(failure) = outcome {
            std::panic::resume_unwind(failure.into_panic());
        }
    }
}

macro_rules! contract {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::Db::sqlite()
                        .run(|url| async move { super::$name(&url).await })
                        .await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = super::Db::postgres().await else { return };
                    db.run(|url| async move { super::$name(&url).await }).await;
                }
            )+
        }
    };
}

contract!(
    a_change_round_trips_with_every_field,
    a_pull_requests_change_is_its_latest_open_one,
    listing_filters_by_service_and_state_newest_first_in_pages,
    votes_round_trip_in_the_order_they_were_cast,
    the_audit_trail_reads_back_oldest_first,
    the_audit_trail_and_votes_refuse_update_and_delete,
    a_restarted_store_reads_what_the_previous_one_wrote,
    freezes_start_refuse_a_taken_name_and_end,
    bookings_exclude_the_change_itself_and_ended_slots,
    the_calendar_lists_bookings_overlapping_a_range,
    migrating_twice_is_harmless,
    an_uncommitted_transaction_leaves_nothing_behind,
    updating_a_missing_change_is_an_error,
    concurrent_read_modify_write_transactions_lose_no_update,
    a_write_transaction_waits_for_the_one_before_it_and_reads_do_not,
);

async fn store(url: &str) -> Store {
    let store = Store::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 21, 0, 0).unwrap()
}

fn minutes(n: i64) -> Duration {
    Duration::minutes(n)
}

fn new_change(service: &str, environment: &str, requester: &str, state: State) -> NewChange {
    NewChange {
        title: format!("deploy {service}"),
        description: String::new(),
        service: service.into(),
        environment: environment.into(),
        change_type: ChangeType::Normal,
        risk: Risk::Medium,
        state,
        requester: requester.into(),
        source: Source::Chat,
        pull_request: None,
        duration: minutes(30),
        approval_round: 1,
        created_at: t0(),
        first_commit_at: None,
    }
}

/// Inserts a change and, when `slot` is given, books it there (in its given state).
async fn add(store: &Store, c: NewChange, slot: Option<(i64, i64)>) -> ChangeId {
    let mut tx = store.begin().await.unwrap();
    let mut change = tx.insert_change(&c).await.unwrap();
    if let Some((from, to)) = slot {
        change.slot = Some(Interval {
            start: t0() + minutes(from),
            end: t0() + minutes(to),
        });
        tx.update_change(&change).await.unwrap();
    }
    tx.commit().await.unwrap();
    change.id
}

async fn raw_connection(url: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(url).await.expect("raw connection")
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn a_change_round_trips_with_every_field(url: &str) {
    let store = store(url).await;
    let created = t0() + Duration::nanoseconds(123_456_789);
    let new = NewChange {
        title: "Raise the payment timeout to 30s".into(),
        description: "It's \"quoted\", multi-line\nand ünïcode ✓; DROP TABLE changes; --".into(),
        service: "payments-api".into(),
        environment: "production".into(),
        change_type: ChangeType::Emergency,
        risk: Risk::High,
        state: State::Authorize,
        requester: "github:alice-gh".into(),
        source: Source::Github,
        pull_request: Some(PullRequest {
            repository: "acme/payments".into(),
            number: 42,
            head_sha: "0123456789abcdef0123456789abcdef01234567".into(),
            merged: false,
        }),
        duration: Duration::seconds(5400),
        approval_round: 3,
        created_at: created,
        first_commit_at: Some(created - Duration::days(2)),
    };

    let mut tx = store.begin().await.unwrap();
    let inserted = tx.insert_change(&new).await.unwrap();
    assert!(inserted.id.0 > 0);
    assert_eq!(
        inserted.created_at,
        t0() + Duration::milliseconds(123),
        "stored in ms"
    );
    assert_eq!(inserted.updated_at, inserted.created_at);
    assert_eq!(inserted.slot, None);
    assert_eq!(inserted.close_code, None);
    // What insert returns is exactly what reads back, inside and outside the transaction.
    assert_eq!(
        tx.change(inserted.id).await.unwrap(),
        Some(inserted.clone())
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store.change(inserted.id).await.unwrap(),
        Some(inserted.clone())
    );

    // Every mutable field changes.
    let mut changed = inserted.clone();
    changed.title = "Raise the payment timeout to 45s".into();
    changed.description = "revised".into();
    changed.service = "payments-worker".into();
    changed.environment = "staging".into();
    changed.change_type = ChangeType::Normal;
    changed.risk = Risk::Low;
    changed.state = State::Closed;
    changed.close_code = Some(CloseCode::Unsuccessful);
    changed.requester = "alice".into();
    changed.source = Source::Api;
    changed.pull_request = Some(PullRequest {
        repository: "acme/payments".into(),
        number: 42,
        head_sha: "fedcba9876543210fedcba9876543210fedcba98".into(),
        merged: true,
    });
    changed.duration = Duration::seconds(60);
    changed.slot = Some(Interval {
        start: t0() + minutes(60),
        end: t0() + minutes(61),
    });
    changed.approval_round = 4;
    changed.updated_at = t0() + minutes(5);
    changed.first_commit_at = Some(t0() - minutes(90));
    let mut tx = store.begin().await.unwrap();
    tx.update_change(&changed).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.change(inserted.id).await.unwrap(),
        Some(changed.clone())
    );

    // And back to no PR, no slot, no close code.
    let mut cleared = changed.clone();
    cleared.pull_request = None;
    cleared.slot = None;
    cleared.close_code = None;
    cleared.state = State::Assess;
    cleared.first_commit_at = None;
    let mut tx = store.begin().await.unwrap();
    tx.update_change(&cleared).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.change(inserted.id).await.unwrap(), Some(cleared));

    assert_eq!(
        store.change(ChangeId(inserted.id.0 + 1000)).await.unwrap(),
        None
    );
}

async fn a_pull_requests_change_is_its_latest_open_one(url: &str) {
    let store = store(url).await;
    let pr = |sha: &str| PullRequest {
        repository: "acme/payments".into(),
        number: 7,
        head_sha: sha.into(),
        merged: false,
    };
    let mut first = new_change("payments-api", "production", "bob", State::Canceled);
    first.pull_request = Some(pr("aaa"));
    let first = add(&store, first, None).await;
    let mut second = new_change("payments-api", "production", "bob", State::Authorize);
    second.pull_request = Some(pr("bbb"));
    let second = add(&store, second, None).await;
    let mut other = new_change("payments-api", "production", "bob", State::Authorize);
    other.pull_request = Some(PullRequest {
        number: 8,
        ..pr("ccc")
    });
    add(&store, other, None).await;

    let mut tx = store.begin().await.unwrap();
    let found = tx.change_for_pr("acme/payments", 7).await.unwrap().unwrap();
    assert_eq!(found.id, second);
    assert_ne!(found.id, first, "a canceled change is not the PR's change");
    assert_eq!(found.pull_request.as_ref().unwrap().head_sha, "bbb");
    assert!(
        tx.change_for_pr("acme/payments", 9)
            .await
            .unwrap()
            .is_none()
    );
    assert!(tx.change_for_pr("acme/other", 7).await.unwrap().is_none());

    let mut closed = found;
    closed.state = State::Closed;
    closed.close_code = Some(CloseCode::Successful);
    tx.update_change(&closed).await.unwrap();
    assert!(
        tx.change_for_pr("acme/payments", 7)
            .await
            .unwrap()
            .is_none()
    );
    // Whether changebot knows the PR at all: its latest change in any state.
    assert_eq!(
        tx.any_change_for_pr("acme/payments", 7).await.unwrap(),
        Some(second)
    );
    assert_eq!(
        tx.any_change_for_pr("acme/payments", 9).await.unwrap(),
        None
    );
    // The first commit's time is written once.
    let first_commit = t0() - minutes(600);
    assert!(tx.set_first_commit(second, first_commit).await.unwrap());
    assert!(!tx.set_first_commit(second, t0()).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        store.any_change_for_pr("acme/payments", 7).await.unwrap(),
        Some(second)
    );
    let read = store.change(second).await.unwrap().unwrap();
    assert_eq!(read.first_commit_at, Some(first_commit));
}

async fn listing_filters_by_service_and_state_newest_first_in_pages(url: &str) {
    let store = store(url).await;
    let mut scheduled_api = Vec::new();
    for i in 0..7 {
        let requester = if i % 2 == 0 { "alice" } else { "bob" };
        scheduled_api.push(
            add(
                &store,
                new_change("api", "production", requester, State::Scheduled),
                None,
            )
            .await,
        );
        add(
            &store,
            new_change("api", "production", "carol", State::Authorize),
            None,
        )
        .await;
        add(
            &store,
            new_change("web", "production", requester, State::Scheduled),
            None,
        )
        .await;
    }
    assert_eq!(store.count_changes().await.unwrap(), 21);
    scheduled_api.reverse(); // newest first

    let ids = |changes: Vec<changebot::domain::Change>| -> Vec<ChangeId> {
        changes.into_iter().map(|c| c.id).collect()
    };
    let mut filter = ChangeFilter {
        service: Some("api".into()),
        state: Some(State::Scheduled),
        limit: 3,
        ..ChangeFilter::default()
    };
    let page1 = ids(store.list_changes(&filter).await.unwrap());
    assert_eq!(page1, scheduled_api[0..3]);
    filter.before = page1.last().copied();
    let page2 = ids(store.list_changes(&filter).await.unwrap());
    assert_eq!(page2, scheduled_api[3..6]);
    filter.before = page2.last().copied();
    let page3 = ids(store.list_changes(&filter).await.unwrap());
    assert_eq!(page3, scheduled_api[6..7]);
    filter.before = page3.last().copied();
    assert!(store.list_changes(&filter).await.unwrap().is_empty());

    let all = store.list_changes(&ChangeFilter::default()).await.unwrap();
    assert_eq!(all.len(), 21, "limit 0 means 50");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    let by_state = ChangeFilter {
        state: Some(State::Authorize),
        ..ChangeFilter::default()
    };
    let authorize = store.list_changes(&by_state).await.unwrap();
    assert_eq!(authorize.len(), 7);
    assert!(
        authorize
            .iter()
            .all(|c| c.state == State::Authorize && c.service == "api")
    );

    let mine = ChangeFilter {
        requester: Some("alice".into()),
        service: Some("web".into()),
        ..ChangeFilter::default()
    };
    let mine = store.list_changes(&mine).await.unwrap();
    assert_eq!(mine.len(), 4);
    assert!(
        mine.iter()
            .all(|c| c.requester == "alice" && c.service == "web")
    );

    let nobody = ChangeFilter {
        service: Some("nope".into()),
        ..ChangeFilter::default()
    };
    assert!(store.list_changes(&nobody).await.unwrap().is_empty());
}

async fn votes_round_trip_in_the_order_they_were_cast(url: &str) {
    let store = store(url).await;
    let id = add(
        &store,
        new_change("api", "production", "alice", State::Authorize),
        None,
    )
    .await;
    let other = add(
        &store,
        new_change("api", "production", "alice", State::Authorize),
        None,
    )
    .await;
    let votes = vec![
        Vote {
            person: "bob".into(),
            verdict: Verdict::Reject,
            comment: "needs a rollback plan".into(),
            round: 1,
            at: t0() + minutes(1),
        },
        Vote {
            person: "carol".into(),
            verdict: Verdict::Approve,
            comment: String::new(),
            round: 1,
            at: t0() + minutes(2),
        },
        Vote {
            person: "bob".into(),
            verdict: Verdict::Approve,
            comment: "plan added".into(),
            round: 2,
            at: t0() + minutes(3),
        },
    ];
    let mut tx = store.begin().await.unwrap();
    for v in &votes {
        tx.insert_vote(id, v).await.unwrap();
    }
    assert_eq!(tx.votes(id).await.unwrap(), votes);
    tx.commit().await.unwrap();
    assert_eq!(store.votes(id).await.unwrap(), votes);
    assert!(store.votes(other).await.unwrap().is_empty());

    // A vote must belong to an existing change.
    let mut tx = store.begin().await.unwrap();
    let err = tx.insert_vote(ChangeId(999_999), &votes[0]).await;
    assert!(matches!(err, Err(StoreError::Db(_))), "{err:?}");
}

async fn the_audit_trail_reads_back_oldest_first(url: &str) {
    let store = store(url).await;
    let id = add(
        &store,
        new_change("api", "production", "alice", State::New),
        None,
    )
    .await;
    let other = add(
        &store,
        new_change("api", "production", "alice", State::New),
        None,
    )
    .await;
    let entry = |change: Option<ChangeId>, n: i64, action: &str| NewAuditEntry {
        change,
        at: t0() + minutes(n),
        actor: "alice".into(),
        surface: "chat".into(),
        action: action.into(),
        detail: format!("step {n}"),
    };
    let mut tx = store.begin().await.unwrap();
    tx.append_audit(&entry(Some(id), 0, "open")).await.unwrap();
    tx.append_audit(&entry(Some(other), 1, "open"))
        .await
        .unwrap();
    tx.append_audit(&entry(None, 2, "freeze start"))
        .await
        .unwrap();
    tx.append_audit(&entry(Some(id), 3, "state new → assess"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.append_audit(&entry(Some(id), 4, "approve"))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let trail = store.audit(id).await.unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["open", "state new → assess", "approve"]);
    assert!(
        trail
            .windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at <= w[1].at)
    );
    assert!(trail.iter().all(|e| e.change == Some(id)));
    assert_eq!(trail[1].at, t0() + minutes(3));
    assert_eq!(trail[1].actor, "alice");
    assert_eq!(trail[1].surface, "chat");
    assert_eq!(trail[1].detail, "step 3");
    assert_eq!(store.audit(other).await.unwrap().len(), 1);
}

async fn the_audit_trail_and_votes_refuse_update_and_delete(url: &str) {
    let store = store(url).await;
    let id = add(
        &store,
        new_change("api", "production", "alice", State::Authorize),
        None,
    )
    .await;
    let mut tx = store.begin().await.unwrap();
    tx.append_audit(&NewAuditEntry {
        change: Some(id),
        at: t0(),
        actor: "alice".into(),
        surface: "chat".into(),
        action: "open".into(),
        detail: String::new(),
    })
    .await
    .unwrap();
    tx.insert_vote(
        id,
        &Vote {
            person: "bob".into(),
            verdict: Verdict::Approve,
            comment: String::new(),
            round: 1,
            at: t0(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut conn = raw_connection(url).await;
    let mut statements = vec![
        "UPDATE audit SET detail = 'rewritten'",
        "DELETE FROM audit",
        "DELETE FROM audit WHERE change_id IS NOT NULL",
        "UPDATE votes SET verdict = 'reject'",
        "DELETE FROM votes",
    ];
    if store.backend() == Backend::Postgres {
        statements.extend(["TRUNCATE audit", "TRUNCATE votes"]);
    }
    for sql in statements {
        let err = sqlx::query(sql)
            .execute(&mut conn)
            .await
            .expect_err(&format!("`{sql}` must fail"));
        assert!(
            err.to_string().contains("audit trail is append-only"),
            "{sql}: {err}"
        );
    }
    assert_eq!(store.audit(id).await.unwrap().len(), 1);
    assert_eq!(store.audit(id).await.unwrap()[0].detail, "");
    assert_eq!(store.votes(id).await.unwrap()[0].verdict, Verdict::Approve);
}

async fn a_restarted_store_reads_what_the_previous_one_wrote(url: &str) {
    let first = store(url).await;
    let mut c = new_change("api", "production", "alice", State::Scheduled);
    c.pull_request = Some(PullRequest {
        repository: "acme/api".into(),
        number: 3,
        head_sha: "abc".into(),
        merged: true,
    });
    let id = add(&first, c, Some((60, 90))).await;
    let before = first.change(id).await.unwrap().unwrap();
    first.close().await;
    drop(first);

    let second = store(url).await;
    assert_eq!(second.change(id).await.unwrap(), Some(before));
    assert_eq!(second.count_changes().await.unwrap(), 1);
    // Ids keep counting up after the restart.
    let next = add(
        &second,
        new_change("api", "production", "bob", State::New),
        None,
    )
    .await;
    assert!(next.0 > id.0);
}

async fn freezes_start_refuse_a_taken_name_and_end(url: &str) {
    let store = store(url).await;
    let freeze = |name: &str, from: i64, to: i64, services: &[&str]| NewFreeze {
        name: name.into(),
        start: t0() + minutes(from),
        end: t0() + minutes(to),
        services: services.iter().map(|s| s.to_string()).collect(),
        reason: format!("{name} freeze"),
        started_by: "alice".into(),
    };

    let mut tx = store.begin().await.unwrap();
    let lock = tx
        .insert_freeze(&freeze(
            "payments-lock",
            0,
            120,
            &["payments-api", "payments-worker"],
        ))
        .await
        .unwrap()
        .expect("a new name is free");
    assert_eq!(lock.services, ["payments-api", "payments-worker"]);
    assert_eq!(lock.end, t0() + minutes(120));
    let incident = tx
        .insert_freeze(&freeze("incident", 10, 60, &[]))
        .await
        .unwrap()
        .unwrap();
    assert!(
        tx.insert_freeze(&freeze("payments-lock", 5, 30, &[]))
            .await
            .unwrap()
            .is_none(),
        "the name is taken while the freeze is in force"
    );
    assert_eq!(
        tx.freezes(t0() + minutes(1)).await.unwrap(),
        [lock.clone(), incident.clone()]
    );
    tx.commit().await.unwrap();

    // A future freeze counts as not ended; a freeze past its end does not.
    assert_eq!(store.freezes(t0() - minutes(30)).await.unwrap().len(), 2);
    assert_eq!(
        store.freezes(t0() + minutes(90)).await.unwrap(),
        std::slice::from_ref(&lock)
    );
    assert!(store.freezes(t0() + minutes(120)).await.unwrap().is_empty());

    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.end_freeze("payments-lock", "bob", t0() + minutes(15))
            .await
            .unwrap()
    );
    assert!(
        !tx.end_freeze("payments-lock", "bob", t0() + minutes(16))
            .await
            .unwrap()
    );
    assert!(!tx.end_freeze("no-such-freeze", "bob", t0()).await.unwrap());
    // "incident" ran out at +60: it cannot be ended any more, and its name is free again.
    assert!(
        !tx.end_freeze("incident", "bob", t0() + minutes(60))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(store.freezes(t0() + minutes(20)).await.unwrap(), [incident]);

    let mut tx = store.begin().await.unwrap();
    let again = tx
        .insert_freeze(&freeze("payments-lock", 20, 40, &["payments-api"]))
        .await
        .unwrap()
        .expect("an ended freeze frees its name");
    let incident2 = tx
        .insert_freeze(&freeze("incident", 70, 80, &[]))
        .await
        .unwrap()
        .expect("an expired freeze frees its name");
    tx.commit().await.unwrap();
    assert_ne!(again.id, lock.id);
    assert_eq!(
        store.freezes(t0() + minutes(65)).await.unwrap(),
        [incident2]
    );
}

async fn bookings_exclude_the_change_itself_and_ended_slots(url: &str) {
    let store = store(url).await;
    let booked = |state| new_change("api", "production", "alice", state);
    let me = add(&store, booked(State::Scheduled), Some((60, 90))).await;
    let later = add(&store, booked(State::Scheduled), Some((120, 150))).await;
    let running = add(&store, booked(State::Implement), Some((30, 70))).await;
    let _ended = add(&store, booked(State::Scheduled), Some((0, 45))).await;
    let _closed = add(&store, booked(State::Closed), Some((100, 130))).await;
    let _unbooked = add(&store, booked(State::Authorize), Some((100, 130))).await;
    let _staging = add(
        &store,
        new_change("api", "staging", "alice", State::Scheduled),
        Some((100, 130)),
    )
    .await;
    let _web = add(
        &store,
        new_change("web", "production", "alice", State::Scheduled),
        Some((100, 130)),
    )
    .await;

    let slot = |from, to| Interval {
        start: t0() + minutes(from),
        end: t0() + minutes(to),
    };
    let mut tx = store.begin().await.unwrap();
    let others = tx
        .booked_on("api", "production", t0() + minutes(50), Some(me))
        .await
        .unwrap();
    assert_eq!(
        others,
        [
            Booked {
                change: running.0,
                slot: slot(30, 70)
            },
            Booked {
                change: later.0,
                slot: slot(120, 150)
            },
        ]
    );
    let all = tx
        .booked_on("api", "production", t0() + minutes(50), None)
        .await
        .unwrap();
    let ids: Vec<i64> = all.iter().map(|b| b.change).collect();
    assert_eq!(ids, [running.0, me.0, later.0]);
    assert!(
        tx.booked_on("api", "production", t0() + minutes(150), None)
            .await
            .unwrap()
            .is_empty(),
        "a slot ending exactly at `after` is over"
    );
    tx.commit().await.unwrap();
}

async fn the_calendar_lists_bookings_overlapping_a_range(url: &str) {
    let store = store(url).await;
    let a = add(
        &store,
        new_change("api", "production", "a", State::Scheduled),
        Some((60, 90)),
    )
    .await;
    let b = add(
        &store,
        new_change("web", "staging", "a", State::Implement),
        Some((0, 30)),
    )
    .await;
    let _c = add(
        &store,
        new_change("api", "production", "a", State::Review),
        Some((10, 20)),
    )
    .await;
    let d = add(
        &store,
        new_change("api", "staging", "a", State::Scheduled),
        Some((200, 230)),
    )
    .await;

    let ids = |changes: Vec<changebot::domain::Change>| -> Vec<ChangeId> {
        changes.into_iter().map(|c| c.id).collect()
    };
    let range = |from, to| (t0() + minutes(from), t0() + minutes(to));
    let (from, to) = range(0, 240);
    assert_eq!(
        ids(store.booked_between(from, to, None).await.unwrap()),
        [b, a, d]
    );
    assert_eq!(
        ids(store.booked_between(from, to, Some("api")).await.unwrap()),
        [a, d]
    );
    // Half-open: touching at either end is no overlap.
    let (from, to) = range(30, 60);
    assert!(
        store
            .booked_between(from, to, None)
            .await
            .unwrap()
            .is_empty()
    );
    let (from, to) = range(29, 61);
    assert_eq!(
        ids(store.booked_between(from, to, None).await.unwrap()),
        [b, a]
    );
    let booked = store.booked_between(from, to, Some("api")).await.unwrap();
    assert_eq!(
        booked[0].slot,
        Some(Interval {
            start: t0() + minutes(60),
            end: t0() + minutes(90)
        })
    );
}

async fn migrating_twice_is_harmless(url: &str) {
    let store = store(url).await;
    let id = add(
        &store,
        new_change("api", "production", "alice", State::New),
        None,
    )
    .await;
    store.migrate().await.expect("second migrate");
    let again = Store::connect(url).await.unwrap();
    again.migrate().await.expect("migrate from another store");
    assert!(again.change(id).await.unwrap().is_some());
    again.ping().await.unwrap();
}

async fn an_uncommitted_transaction_leaves_nothing_behind(url: &str) {
    let store = store(url).await;
    let mut tx = store.begin().await.unwrap();
    let dropped = tx
        .insert_change(&new_change("api", "production", "alice", State::New))
        .await
        .unwrap();
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let rolled_back = tx
        .insert_change(&new_change("api", "production", "alice", State::New))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.change(dropped.id).await.unwrap(), None);
    assert_eq!(store.change(rolled_back.id).await.unwrap(), None);
    assert_eq!(store.count_changes().await.unwrap(), 0);
}

async fn updating_a_missing_change_is_an_error(url: &str) {
    let store = store(url).await;
    let mut tx = store.begin().await.unwrap();
    let mut change = tx
        .insert_change(&new_change("api", "production", "alice", State::New))
        .await
        .unwrap();
    change.id = ChangeId(change.id.0 + 100);
    let err = tx.update_change(&change).await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "{err:?}");
}

/// Read-modify-write transactions running at once: none fails (no SQLite lock-upgrade
/// deadlock) and none loses another's update (PostgreSQL row locks).
async fn concurrent_read_modify_write_transactions_lose_no_update(url: &str) {
    const TASKS: i64 = 6;
    const ROUNDS: i64 = 10;
    let store = store(url).await;
    let id = add(
        &store,
        new_change("api", "production", "alice", State::Authorize),
        None,
    )
    .await;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let mut tx = store.begin().await?;
                let mut change = tx.change(id).await?.expect("change exists");
                tokio::task::yield_now().await;
                change.approval_round += 1;
                tx.update_change(&change).await?;
                tx.commit().await?;
            }
            Ok::<(), StoreError>(())
        }));
    }
    for handle in handles {
        handle.await.unwrap().expect("no transaction fails");
    }
    let change = store.change(id).await.unwrap().unwrap();
    assert_eq!(change.approval_round, 1 + TASKS * ROUNDS);
}

/// Write transactions run one at a time on both backends, so a conflict check cannot race
/// another booking; reads outside a transaction see the last commit and never wait.
async fn a_write_transaction_waits_for_the_one_before_it_and_reads_do_not(url: &str) {
    let store = store(url).await;
    let id = add(
        &store,
        new_change("api", "production", "alice", State::Authorize),
        None,
    )
    .await;

    // The first writer books the change but has not committed yet.
    let mut first = store.begin().await.unwrap();
    let mut change = first.change(id).await.unwrap().unwrap();
    change.state = State::Scheduled;
    change.slot = Some(Interval {
        start: t0() + minutes(60),
        end: t0() + minutes(90),
    });
    first.update_change(&change).await.unwrap();

    // A second writer checks for conflicts on the same service (without touching that row).
    let second = tokio::spawn({
        let store = store.clone();
        async move {
            let mut tx = store.begin().await?;
            let booked = tx.booked_on("api", "production", t0(), None).await?;
            tx.commit().await?;
            Ok::<Vec<Booked>, StoreError>(booked)
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second writer waits");
    let read = tokio::time::timeout(std::time::Duration::from_secs(2), store.change(id))
        .await
        .expect("reads do not wait for writers")
        .unwrap()
        .unwrap();
    assert_eq!(
        read.state,
        State::Authorize,
        "uncommitted writes are invisible"
    );

    first.commit().await.unwrap();
    let booked = second.await.unwrap().unwrap();
    let ids: Vec<i64> = booked.iter().map(|b| b.change).collect();
    assert_eq!(
        ids,
        [id.0],
        "the second writer sees the first one's booking"
    );
}
