//! Helpers for tests that need a real database (used by integration tests of every binary).
//!
//! PostgreSQL tests take an admin URL from `CHANGEBOT_TEST_POSTGRES_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/postgres`) and run against a database of their own.

use sqlx::AnyConnection;
use sqlx::{AssertSqlSafe, Connection};

use super::StoreError;

/// The environment variable naming the PostgreSQL server used by tests.
pub const POSTGRES_URL_ENV: &str = "CHANGEBOT_TEST_POSTGRES_URL";

/// Creates a new, empty database `cb_<uuid>` on the server of `admin_url` and returns its URL
/// (same credentials and parameters, other database name).
pub async fn fresh_postgres(admin_url: &str) -> Result<String, StoreError> {
    sqlx::any::install_default_drivers();
    let name = format!("cb_{}", uuid::Uuid::new_v4().simple());
    let url = with_database(admin_url, &name)?;
    let mut admin = AnyConnection::connect(admin_url).await?;
    // `name` is generated above from hex digits only.
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(url)
}

/// Drops a database made by [`fresh_postgres`], disconnecting whoever still uses it.
pub async fn drop_postgres(admin_url: &str, database_url: &str) -> Result<(), StoreError> {
    sqlx::any::install_default_drivers();
    let name = database_name(database_url)?;
    let generated = name.len() == 35
        && name.starts_with("cb_")
        && name[3..].bytes().all(|b| b.is_ascii_hexdigit());
    if !generated {
        return Err(StoreError::Config(format!(
            "refusing to drop `{name}`: not a database made by fresh_postgres"
        )));
    }
    let mut admin = AnyConnection::connect(admin_url).await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await?;
    Ok(())
}

/// Splits `scheme://authority/database?params` around the database name.
fn split(url: &str) -> Result<(&str, &str, &str), StoreError> {
    let bad = || {
        StoreError::Config(format!(
            "`{}` is not a postgres://host/database URL",
            super::connect::redact(url)
        ))
    };
    let authority_start = url.find("://").ok_or_else(bad)? + 3;
    let path_start = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    let query_start = url[path_start..]
        .find('?')
        .map_or(url.len(), |i| path_start + i);
    let name = url[path_start..query_start].trim_start_matches('/');
    Ok((&url[..path_start], name, &url[query_start..]))
}

fn with_database(url: &str, database: &str) -> Result<String, StoreError> {
    let (base, _, params) = split(url)?;
    Ok(format!("{base}/{database}{params}"))
}

fn database_name(url: &str) -> Result<&str, StoreError> {
    split(url).map(|(_, name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_swapped_in_urls() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/test?sslmode=disable", "cb_1").unwrap(),
            "postgres://u:p@h:5432/cb_1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h", "cb_2").unwrap(),
            "postgres://h/cb_2"
        );
        assert_eq!(database_name("postgres://h/x?a=b").unwrap(), "x");
    }
}
