//! Opening the connection pool.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool};
use sqlx::{Connection, Executor, Row};

use super::migrate_lock::{self, FileLock};
use super::reach;
use super::{Backend, StoreError, Usage};

const SQLITE_MAX_CONNECTIONS: u32 = 8;
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl Usage {
    /// The most connections one process opens.
    pub fn max_connections(self, backend: Backend) -> u32 {
        match (self, backend) {
            (Usage::OneShot, _) => 1,
            (Usage::Server, Backend::Sqlite) => SQLITE_MAX_CONNECTIONS,
            (Usage::Server, Backend::Postgres) => POSTGRES_MAX_CONNECTIONS,
        }
    }
}

/// The pool, and for SQLite the path of its migration lock file.
pub(super) async fn pool(
    url: &str,
    backend: Backend,
    usage: Usage,
) -> Result<(AnyPool, Option<PathBuf>), StoreError> {
    sqlx::any::install_default_drivers();
    let max = usage.max_connections(backend);
    match backend {
        Backend::Sqlite => {
            let (pool, lock) = sqlite_pool(url, max).await?;
            Ok((pool, Some(lock)))
        }
        Backend::Postgres => Ok((reach::postgres_pool(url, max, ACQUIRE_TIMEOUT).await?, None)),
    }
}

async fn sqlite_pool(url: &str, max: u32) -> Result<(AnyPool, PathBuf), StoreError> {
    let (url, file) = prepare_sqlite(url)?;
    let cannot = |e: sqlx::Error| StoreError::Connect {
        target: format!("SQLite database {}", file.display()),
        cause: reach::describe(&e),
    };
    let lock = migrate_lock::path_for(&file);
    {
        // Under the migration lock: switching to WAL needs the file to itself, and the busy
        // timeout does not wait for that, so processes starting together take turns.
        let _turn = FileLock::acquire(&lock).await?;
        use_wal(&url).await.map_err(|e| match e {
            StoreError::Db(e) => cannot(e),
            other => other,
        })?;
    }
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // sqlx sets both by default; stated here so they hold whatever its defaults
                // become. `synchronous` stays FULL: the audit trail outweighs write speed.
                conn.execute("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;")
                    .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(cannot)?;
    Ok((pool, lock))
}

/// Switches the file to WAL once, on a single connection: the journal mode is persistent.
async fn use_wal(url: &str) -> Result<(), StoreError> {
    let mut conn = AnyConnection::connect(url).await?;
    let mode = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await?;
    if !mode.try_get::<String, _>(0)?.eq_ignore_ascii_case("wal") {
        let mode = sqlx::query("PRAGMA journal_mode = WAL")
            .fetch_one(&mut conn)
            .await?;
        let mode: String = mode.try_get(0)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Config(format!(
                "SQLite database {} cannot use WAL (journal mode is {mode})",
                redact(url)
            )));
        }
    }
    conn.close().await?;
    Ok(())
}

/// Checks a `sqlite:` URL, creates the database's directory, and asks for the file to be created
/// (`mode=rwc`) unless the URL already sets a mode. Returns the URL to connect to and the file.
fn prepare_sqlite(url: &str) -> Result<(String, PathBuf), StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Config(format!("`{url}` is not a sqlite: URL")))?;
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    let in_memory = path.is_empty()
        || path == ":memory:"
        || params.is_some_and(|p| p.split('&').any(|kv| kv == "mode=memory"));
    if in_memory {
        return Err(StoreError::Config(format!(
            "`{url}`: in-memory SQLite is not supported (every pooled connection would see its \
             own empty database); use a file, e.g. sqlite://data/changebot.db"
        )));
    }
    let path = percent_decode(path)?;
    if let Some(dir) = Path::new(&path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Config(format!(
                "cannot create the directory {} for the database: {e}",
                dir.display()
            ))
        })?;
    }
    let has_mode = params.is_some_and(|p| p.split('&').any(|kv| kv.starts_with("mode=")));
    let url = match (params, has_mode) {
        (_, true) => url.to_string(),
        (Some(_), false) => format!("{url}&mode=rwc"),
        (None, false) => format!("{url}?mode=rwc"),
    };
    Ok((url, PathBuf::from(path)))
}

/// Decodes `%XX` escapes, as sqlx does for SQLite paths.
fn percent_decode(s: &str) -> Result<String, StoreError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| StoreError::Config(format!("database path `{s}` is not valid UTF-8")))
}

/// `url` with any password replaced by `***`, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://bot:s3cret@db.internal:5432/changebot?sslmode=require"),
            "postgres://bot:***@db.internal:5432/changebot?sslmode=require"
        );
        assert_eq!(redact("postgres://bot@db/x"), "postgres://bot@db/x");
        assert_eq!(redact("sqlite://data/c.db"), "sqlite://data/c.db");
    }

    #[tokio::test]
    async fn sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/new/dir/c.db", dir.path().display());
        let store = crate::store::Store::connect(&url).await.unwrap();
        assert!(dir.path().join("new/dir/c.db").is_file());
        let mut conn = store.pool.acquire().await.unwrap();
        for (pragma, expected) in [
            ("PRAGMA journal_mode", "wal"),
            ("PRAGMA busy_timeout", "5000"),
            ("PRAGMA foreign_keys", "1"),
        ] {
            let row = sqlx::query(pragma).fetch_one(&mut *conn).await.unwrap();
            let value = row
                .try_get::<String, _>(0)
                .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
                .unwrap();
            assert_eq!(value, expected, "{pragma}");
        }
    }

    #[test]
    fn sqlite_urls_get_create_mode_and_in_memory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/deeper/c.db");
        let url = format!("sqlite://{}", file.display());
        assert_eq!(
            prepare_sqlite(&url).unwrap(),
            (format!("{url}?mode=rwc"), file.clone())
        );
        assert!(file.parent().unwrap().is_dir());
        let with_mode = format!("{url}?mode=rw");
        assert_eq!(prepare_sqlite(&with_mode).unwrap().0, with_mode);
        assert!(prepare_sqlite("sqlite::memory:").is_err());
        assert!(prepare_sqlite("sqlite://?mode=memory").is_err());
        assert_eq!(percent_decode("a%20b%zz").unwrap(), "a b%zz");
    }
}
