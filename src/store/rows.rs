//! Decoding columns of an `AnyRow` into domain values, with errors that name the column.

use std::fmt::Display;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::ValueRef;
use sqlx::any::{AnyRow, AnyTypeInfoKind};

use super::StoreError;

pub(super) fn text(row: &AnyRow, col: &str) -> Result<String, StoreError> {
    Ok(row.try_get::<String, _>(col)?)
}

pub(super) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>, StoreError> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(super) fn int(row: &AnyRow, col: &str) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(col)?)
}

pub(super) fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

/// A boolean column: BOOLEAN on PostgreSQL, INTEGER 0/1 on SQLite.
pub(super) fn flag(row: &AnyRow, col: &str) -> Result<bool, StoreError> {
    let raw = row.try_get_raw(col)?;
    if raw.is_null() {
        return Err(StoreError::Corrupt(format!("{col} is NULL")));
    }
    if matches!(raw.type_info().kind(), AnyTypeInfoKind::Bool) {
        Ok(row.try_get::<bool, _>(col)?)
    } else {
        Ok(row.try_get::<i64, _>(col)? != 0)
    }
}

pub(super) fn time(row: &AnyRow, col: &str) -> Result<DateTime<Utc>, StoreError> {
    from_millis(col, int(row, col)?)
}

pub(super) fn opt_time(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    opt_int(row, col)?
        .map(|ms| from_millis(col, ms))
        .transpose()
}

fn from_millis(col: &str, ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("{col} = {ms} is not a timestamp")))
}

/// A TEXT column holding one of a domain enum's words.
pub(super) fn word<T>(row: &AnyRow, col: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: Display,
{
    parse_word(col, &text(row, col)?)
}

pub(super) fn opt_word<T>(row: &AnyRow, col: &str) -> Result<Option<T>, StoreError>
where
    T: FromStr,
    T::Err: Display,
{
    opt_text(row, col)?.map(|w| parse_word(col, &w)).transpose()
}

fn parse_word<T>(col: &str, word: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: Display,
{
    word.parse()
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}
