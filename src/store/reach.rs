//! Reaching PostgreSQL: a process's first connection, retried politely, and errors that say what
//! failed and where.
//!
//! sqlx's pool retries a refused connection and a server that is full (`too many clients`,
//! SQLSTATE 53300) or starting up (57P03) on its own, silently, until its acquire timeout, and
//! then reports only "pool timed out". So the first connection is made here, in bounded
//! attempts through the pool. When an attempt fails without a reason, one direct connection
//! (a probe) finds the reason out, and the reason decides what happens next:
//!
//! - the server is full, starting up, or drops connections: retry, with jittered backoff, for
//!   up to [`BUSY_BUDGET`] from the first attempt;
//! - the connection is refused or the host is unreachable (nothing listening there, or it is
//!   restarting): retry for up to [`REFUSED_BUDGET`] only;
//! - anything else (a bad password, an unknown database, a host name that does not resolve,
//!   TLS): give up at once.
//!
//! Every session sets `client_min_messages = warning`, so PostgreSQL's NOTICEs (such as
//! "relation _sqlx_migrations already exists, skipping" on every migration run) stay out of the
//! log, and `idle_in_transaction_session_timeout`, so a frozen replica cannot hold the writer
//! lock for the others.

use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AnyPool, Connection, Executor};

use super::StoreError;
use super::connect::redact;

/// How long to keep trying a server that is full or starting up.
pub(super) const BUSY_BUDGET: Duration = Duration::from_secs(30);
/// How long to keep trying a server that refuses connections.
pub(super) const REFUSED_BUDGET: Duration = Duration::from_secs(5);
/// The first attempt through the pool (sqlx may retry inside it).
const FIRST_ATTEMPT: Duration = Duration::from_secs(2);
/// Later attempts, cut short by the budget that applies.
const LATER_ATTEMPT: Duration = Duration::from_secs(5);
/// How long a probe may take to connect.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The backoff ceiling starts here and doubles per attempt up to [`BACKOFF_CAP`]; each pause is
/// between half the ceiling and the ceiling, at random, so a burst of processes spreads out.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// Run on every new PostgreSQL session. A session that sits in an open transaction for 15 s
/// (its process stalled or froze while holding the writer lock) is ended by the server, so the
/// other replicas can go on: changebot never waits on anything while a transaction is open.
const SESSION_SETUP: &str =
    "SET client_min_messages = warning; SET idle_in_transaction_session_timeout = '15s'";

/// A pool of up to `max_connections` on the PostgreSQL server of `url`, with its first
/// connection made (see the module docs).
pub(super) async fn postgres_pool(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<AnyPool, StoreError> {
    let bad_url =
        |e: sqlx::Error| StoreError::Config(format!("database URL `{}`: {e}", redact(url)));
    let direct = PgConnectOptions::from_str(url).map_err(bad_url)?;
    let options = AnyConnectOptions::from_str(url).map_err(bad_url)?;
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SESSION_SETUP).await?;
                Ok(())
            })
        })
        .connect_lazy_with(options);
    match first_connection(&pool, &direct).await {
        Ok(()) => Ok(pool),
        Err(cause) => {
            pool.close().await;
            Err(StoreError::Connect {
                target: target(&direct),
                cause,
            })
        }
    }
}

/// What a connection error means for retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Full, starting up, or dropping connections: worth waiting for.
    Busy,
    /// Nothing answers there: worth a short wait (a restart), not a long one.
    Refused,
    /// Waiting will not help.
    Fatal,
}

impl Kind {
    fn budget(self) -> Duration {
        match self {
            Kind::Busy => BUSY_BUDGET,
            Kind::Refused => REFUSED_BUDGET,
            Kind::Fatal => Duration::ZERO,
        }
    }
}

fn kind(e: &sqlx::Error) -> Kind {
    use std::io::ErrorKind as Io;
    match e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // too_many_connections, cannot_connect_now
            Some("53300" | "57P03") => Kind::Busy,
            _ => Kind::Fatal,
        },
        sqlx::Error::Io(io) => match io.kind() {
            Io::ConnectionRefused | Io::HostUnreachable | Io::NetworkUnreachable => Kind::Refused,
            Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::UnexpectedEof
            | Io::BrokenPipe
            | Io::TimedOut => Kind::Busy,
            _ => Kind::Fatal,
        },
        sqlx::Error::PoolTimedOut => Kind::Busy,
        _ => Kind::Fatal,
    }
}

/// A connection error in words, without sqlx's generic prefixes.
pub(super) fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_string()
        }
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_string(),
        },
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        other => other.to_string(),
    }
}

/// `PostgreSQL at HOST:PORT (database NAME)`: what a connection error is about.
fn target(options: &PgConnectOptions) -> String {
    let place = match options.get_socket() {
        Some(dir) => format!("socket {}/.s.PGSQL.{}", dir.display(), options.get_port()),
        None if options.get_host().contains(':') => {
            format!("[{}]:{}", options.get_host(), options.get_port())
        }
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let database = options
        .get_database()
        .unwrap_or_else(|| options.get_username());
    format!("PostgreSQL at {place} (database {database})")
}

/// Makes the pool's first connection; `Err` is the last cause, with how long it was tried.
async fn first_connection(pool: &AnyPool, direct: &PgConnectOptions) -> Result<(), String> {
    let started = Instant::now();
    let mut attempts: u32 = 0;
    // Until the first failure is understood, allow the longest budget.
    let mut budget = BUSY_BUDGET;
    loop {
        let left = budget.saturating_sub(started.elapsed());
        let limit = if attempts == 0 {
            FIRST_ATTEMPT
        } else {
            LATER_ATTEMPT
        };
        let limit = limit.min(left).max(Duration::from_millis(250));
        attempts += 1;
        let failure = match tokio::time::timeout(limit, pool.acquire()).await {
            Ok(Ok(_idle)) => return Ok(()),
            // sqlx gave up at once: not an error it retries.
            Ok(Err(e)) if !matches!(e, sqlx::Error::PoolTimedOut) => Some((kind(&e), describe(&e))),
            // sqlx kept retrying something; find out what.
            _ => probe(direct).await.err(),
        };
        let last = match failure {
            Some((k, cause)) => {
                budget = k.budget();
                cause
            }
            // The server takes connections now: try the pool again.
            None => {
                budget = BUSY_BUDGET;
                "the server accepted a test connection, but the pool's attempts kept failing"
                    .to_string()
            }
        };
        let pause = pause(attempts);
        if started.elapsed() + pause >= budget {
            if budget.is_zero() {
                return Err(last);
            }
            return Err(format!(
                "{last} (gave up after {:.1} s)",
                started.elapsed().as_secs_f64()
            ));
        }
        tracing::debug!(attempts, cause = %last, "PostgreSQL not reachable yet; retrying");
        tokio::time::sleep(pause).await;
    }
}

/// One direct connection, closed again: `Err` says why it failed.
async fn probe(direct: &PgConnectOptions) -> Result<(), (Kind, String)> {
    let attempt = async {
        let mut conn = PgConnection::connect_with(direct).await?;
        conn.execute(SESSION_SETUP).await?;
        conn.close().await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err((kind(&e), describe(&e))),
        Err(_) => Err((
            Kind::Busy,
            format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
        )),
    }
}

/// The pause before attempt `attempts + 1`: between half the ceiling and the ceiling.
fn pause(attempts: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << attempts.min(8))
        .min(BACKOFF_CAP);
    rand::thread_rng().gen_range(ceiling / 2..=ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_host_port_and_database_but_no_password() {
        let options =
            PgConnectOptions::from_str("postgres://bot:s3cret@db.internal:5433/changebot").unwrap();
        let t = target(&options);
        assert_eq!(t, "PostgreSQL at db.internal:5433 (database changebot)");
        assert!(!t.contains("s3cret"));
    }

    #[test]
    fn pauses_grow_and_stay_bounded() {
        for attempts in 1..20 {
            let p = pause(attempts);
            assert!(p >= BACKOFF_BASE && p <= BACKOFF_CAP, "{attempts}: {p:?}");
        }
    }

    #[test]
    fn full_servers_are_waited_for_refusals_briefly_and_the_rest_not_at_all() {
        let refused = sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(kind(&refused), Kind::Refused);
        assert_eq!(describe(&refused), "connection refused");
        let reset = sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into());
        assert_eq!(kind(&reset), Kind::Busy);
        assert_eq!(kind(&sqlx::Error::PoolTimedOut), Kind::Busy);
        assert_eq!(kind(&sqlx::Error::Protocol("x".into())), Kind::Fatal);
    }
}
