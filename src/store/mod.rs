//! Persistence: change records, votes, the append-only audit trail and chat-started freezes, in
//! SQLite (default) or PostgreSQL.
//!
//! One set of SQL serves both backends through sqlx's `Any` driver: `$N` placeholders (SQLite
//! accepts them too), `RETURNING id`, timestamps as BIGINT unix milliseconds, enums as TEXT words.
//! The only backend-specific SQL is row locking (`FOR UPDATE`, advisory locks) on PostgreSQL.
//!
//! Reads on [`Store`] run outside a transaction; writes go through a [`Tx`] from [`Store::begin`].
//! On SQLite a `Tx` starts with `BEGIN IMMEDIATE`, so write transactions queue (up to the 5 s busy
//! timeout) instead of failing when a read lock cannot be upgraded; reads never block in WAL mode.
//! On PostgreSQL a `Tx` takes one transaction-scoped advisory lock right after `BEGIN`, so write
//! transactions run one at a time across all replicas, as on SQLite (a check-then-book can never
//! double-book, and row locks taken in different orders cannot deadlock); waiting for it gives up
//! after 10 s (`lock_timeout`). [`Tx::change`] and [`Tx::change_for_pr`] also lock their row
//! (`SELECT … FOR UPDATE`) against writers that bypass [`Tx`].
//!
//! Keep transactions short: no network calls while a `Tx` is open. Never open a second `Tx`
//! while the same task holds one: it waits for the first (5 s on SQLite, 10 s on PostgreSQL) and
//! then fails.
//!
//! Timestamps are stored at millisecond precision: anything finer is dropped.

mod changes;
pub mod claims;
mod connect;
pub mod gates;
pub mod inbox;
mod kpi;
mod leases;
pub mod messages;
mod migrate_lock;
pub mod outbox;
mod reach;
mod records;
pub mod releases;
mod rows;
pub mod testing;
mod tx;
mod types;

use chrono::{DateTime, Utc};
use sqlx::AnyPool;

use crate::domain::policy::Vote;
use crate::domain::{Change, ChangeId};

pub use tx::{Tx, applying};
pub use types::{AuditEntry, ChangeFilter, NewAuditEntry, NewChange, NewFreeze, StoredFreeze};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row that does not map back to the domain (unknown enum word, bad timestamp, …).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A bad database URL or setup problem.
    #[error("{0}")]
    Config(String),
    /// The database could not be reached, or refused a session, for as long as it was worth
    /// retrying. `target` says what and where (never a password), e.g. `PostgreSQL at
    /// db.internal:5432 (database changebot)`; `cause` is the last reason it gave.
    #[error("cannot connect to {target}: {cause}")]
    Connect { target: String, cause: String },
    /// An update addressed a record that does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The work this transaction belongs to (`applying(key)`) already took effect elsewhere (a
    /// replayed delivery, another replica): the transaction was rolled back.
    #[error("{0} was already applied")]
    AlreadyApplied(String),
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::Config(format!(
                "unsupported database URL `{}`: expected sqlite://PATH or postgres://…",
                connect::redact(url)
            ))),
        }
    }
}

/// How a process uses the database; it decides the size of the connection pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Usage {
    /// A long-running process (`changebot serve`, tests, benchmarks): the scheduler, the
    /// dispatcher and HTTP handlers share up to 8 (SQLite) or 10 (PostgreSQL) connections.
    #[default]
    Server,
    /// One command, then exit (`changebot chat`, `changebot migrate`): a single connection, so
    /// that a burst of them stays within the database server's connection limit.
    OneShot,
}

/// A handle on the database (a connection pool; cheap to clone).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite: the file locked while the schema is set up (`<database file>-migrate.lock`).
    migrate_lock: Option<std::sync::Arc<std::path::Path>>,
    /// SQLite has one writer at a time. Writers in this process queue here, first come first
    /// served, instead of polling SQLite's busy handler (which favours whoever asks last).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The PostgreSQL advisory lock key that serialises write transactions ("changebt").
const POSTGRES_WRITER_LOCK: i64 = 0x6368_616e_6765_6274;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects to `sqlite://PATH` (creating the parent directory and the file; WAL journal,
    /// 5 s busy timeout, foreign keys on) or `postgres://…`, with a pool sized for a server.
    /// Does not migrate.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Self::connect_for(url, Usage::Server).await
    }

    /// Like [`Store::connect`], with a pool sized for `usage`.
    ///
    /// PostgreSQL is given time: a server that is full (`too many clients`) or starting up is
    /// retried with jittered backoff for up to 30 s, one that refuses connections for up to
    /// 5 s. Errors name the server and database and give the cause ([`StoreError::Connect`]).
    pub async fn connect_for(url: &str, usage: Usage) -> Result<Store, StoreError> {
        let backend = Backend::from_url(url)?;
        let (pool, migrate_lock) = connect::pool(url, backend, usage).await?;
        Ok(Store {
            pool,
            backend,
            migrate_lock: migrate_lock.map(std::sync::Arc::from),
            writer: std::sync::Arc::default(),
        })
    }

    /// Applies pending migrations; harmless when there are none, and safe when many processes
    /// start at once: on PostgreSQL sqlx holds a session advisory lock (keyed by the database
    /// name) for the whole run, and on SQLite this process holds an exclusive lock on
    /// `<database file>-migrate.lock` (sqlx's SQLite migrator takes no lock of its own).
    /// After a failed run on PostgreSQL the store is closed (see below).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                let _lock = match &self.migrate_lock {
                    Some(path) => Some(migrate_lock::FileLock::acquire(path).await?),
                    None => None,
                };
                SQLITE_MIGRATIONS.run(&self.pool).await?;
            }
            Backend::Postgres => {
                if let Err(e) = POSTGRES_MIGRATIONS.run(&self.pool).await {
                    // sqlx leaves its session lock held when a migration fails, on a connection
                    // that goes back to the pool. Closing the pool releases it, so other
                    // processes are not blocked; a store that could not migrate is unusable.
                    self.pool.close().await;
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A cheap integrity check (`PRAGMA quick_check` on SQLite; PostgreSQL checks its own
    /// pages): `Err` with SQLite's findings when the file is damaged.
    pub async fn check_integrity(&self) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        let findings: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(5)")
            .fetch_all(&self.pool)
            .await?;
        if findings.len() == 1 && findings[0] == "ok" {
            return Ok(());
        }
        Err(StoreError::Corrupt(format!(
            "the SQLite file failed its integrity check: {}",
            findings.join("; ")
        )))
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite, `BEGIN` plus the writers' advisory
    /// lock on PostgreSQL (see the module docs). Dropping the [`Tx`] without [`Tx::commit`] rolls
    /// it back.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let turn = self.write_turn().await;
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SET LOCAL lock_timeout = '10s'")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(POSTGRES_WRITER_LOCK)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        Ok(Tx::new(tx, self.backend, turn))
    }

    /// This process's turn to write (SQLite only; PostgreSQL uses an advisory lock).
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.clone().lock_owned().await),
            Backend::Postgres => None,
        }
    }

    /// Closes every connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The latest change of a pull request that is not closed or canceled.
    pub async fn change_for_pr(
        &self,
        repository: &str,
        number: i64,
    ) -> Result<Option<Change>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        changes::by_pr(&mut conn, repository, number, changes::Lock::None).await
    }

    /// The latest change of a pull request in any state, closed and canceled included
    /// (whether changebot knows the PR at all).
    pub async fn any_change_for_pr(
        &self,
        repository: &str,
        number: i64,
    ) -> Result<Option<ChangeId>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        changes::any_by_pr(&mut conn, repository, number).await
    }

    pub async fn change(&self, id: ChangeId) -> Result<Option<Change>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        changes::by_id(&mut conn, id, changes::Lock::None).await
    }

    /// Newest first; see [`ChangeFilter`].
    pub async fn list_changes(&self, filter: &ChangeFilter) -> Result<Vec<Change>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        changes::list(&mut conn, filter).await
    }

    /// A change's votes in the order they were cast (all rounds).
    pub async fn votes(&self, id: ChangeId) -> Result<Vec<Vote>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        records::votes(&mut conn, id).await
    }

    /// A change's audit trail, oldest first (in the order it was appended).
    pub async fn audit(&self, id: ChangeId) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        records::audit(&mut conn, id).await
    }

    /// Which of `ids` have been flagged as unauthorized changes (an `unauthorized` audit
    /// entry).
    pub async fn flagged_unauthorized(
        &self,
        ids: &[ChangeId],
    ) -> Result<Vec<ChangeId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 1)).collect();
        let sql = format!(
            "SELECT DISTINCT change_id FROM audit WHERE action = 'unauthorized' \
             AND change_id IN ({})",
            list.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.0);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| rows::int(r, "change_id").map(ChangeId))
            .collect()
    }

    /// The latest `limit` audit entries about no change (freezes, refused identities).
    pub async fn audit_unattached(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        records::audit_unattached(&mut conn, limit).await
    }

    /// Changes holding a booking (state `scheduled` or `implement`) whose slot overlaps
    /// `[from, to)`, optionally on one service, ordered by slot start.
    pub async fn booked_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        service: Option<&str>,
    ) -> Result<Vec<Change>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        changes::booked_between(&mut conn, from, to, service).await
    }

    /// Chat-started freezes that are not ended and end after `now` (including future ones),
    /// ordered by start.
    pub async fn freezes(&self, now: DateTime<Utc>) -> Result<Vec<StoredFreeze>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        records::freezes(&mut conn, now).await
    }

    pub async fn count_changes(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        changes::count(&mut conn).await
    }
}

/// Milliseconds since the epoch, as stored.
pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `t` as it reads back from the database (sub-millisecond precision dropped).
pub(crate) fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
