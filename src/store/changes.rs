//! SQL for the `changes` table, shared by [`Store`](super::Store) reads and [`Tx`](super::Tx).

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use super::rows::{flag, int, opt_int, opt_text, opt_time, opt_word, text, time, word};
use super::types::{ChangeFilter, NewChange};
use super::{StoreError, to_millis, truncate_millis};
use crate::domain::calendar::{Booked, Interval};
use crate::domain::change::PullRequest;
use crate::domain::{Change, ChangeId};

/// Page size when [`ChangeFilter::limit`] is not positive.
pub(super) const DEFAULT_LIMIT: i64 = 50;

/// Every column of `changes`, in the order [`from_row`] reads them.
macro_rules! columns {
    () => {
        "id, title, description, service, environment, change_type, risk, state, close_code, \
         requester, source, repository, pr_number, head_sha, pr_merged, duration_secs, \
         slot_start, slot_end, approval_round, created_at, updated_at, first_commit_at"
    };
}

/// Every column of `changes`, for queries written elsewhere in the store.
pub(super) const COLUMNS: &str = columns!();

/// Whether a read inside a transaction locks the row (PostgreSQL only: SQLite's write
/// transactions already hold the database's write lock from `BEGIN IMMEDIATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    None,
    ForUpdate,
}

const BY_ID: &str = concat!("SELECT ", columns!(), " FROM changes WHERE id = $1");
const BY_ID_FOR_UPDATE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM changes WHERE id = $1 FOR UPDATE"
);

// The latest non-terminal change of a pull request (`State::is_terminal`: closed, canceled).
const BY_PR: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM changes WHERE repository = $1 AND pr_number = $2 \
     AND state NOT IN ('closed', 'canceled') ORDER BY id DESC LIMIT 1"
);
const BY_PR_FOR_UPDATE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM changes WHERE repository = $1 AND pr_number = $2 \
     AND state NOT IN ('closed', 'canceled') ORDER BY id DESC LIMIT 1 FOR UPDATE"
);

// The non-terminal changes whose pull request's head is a commit (newest first).
const BY_HEAD: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM changes WHERE repository = $1 AND (head_sha = $2 OR merge_sha = $2) \
     AND state NOT IN ('closed', 'canceled') ORDER BY id DESC LIMIT 20"
);

// Any change of a pull request, whatever its state (backfill asks whether a PR is known).
const ANY_BY_PR: &str = "SELECT id FROM changes WHERE repository = $1 AND pr_number = $2 \
     ORDER BY id DESC LIMIT 1";

// PR changes not yet released, oldest first (reconciliation walks them).
const OPEN_PRS: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM changes WHERE repository IS NOT NULL \
     AND state IN ('new', 'assess', 'authorize', 'scheduled') AND id > $1 ORDER BY id LIMIT $2"
);

const INSERT: &str = "INSERT INTO changes (title, description, service, environment, \
     change_type, risk, state, requester, source, repository, pr_number, head_sha, pr_merged, \
     duration_secs, approval_round, created_at, updated_at, first_commit_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17) \
     RETURNING id";

const UPDATE: &str = "UPDATE changes SET title = $2, description = $3, service = $4, \
     environment = $5, change_type = $6, risk = $7, state = $8, close_code = $9, \
     requester = $10, source = $11, repository = $12, pr_number = $13, head_sha = $14, \
     pr_merged = $15, duration_secs = $16, slot_start = $17, slot_end = $18, \
     approval_round = $19, updated_at = $20, first_commit_at = $21 WHERE id = $1";

// Bookings: the literal state list matches the partial index's predicate.
const BOOKED_BETWEEN: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM changes WHERE state IN ('scheduled', 'implement') \
     AND slot_start < $1 AND slot_end > $2 ORDER BY slot_start, id"
);
const BOOKED_BETWEEN_ON: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM changes WHERE state IN ('scheduled', 'implement') \
     AND slot_start < $1 AND slot_end > $2 AND service = $3 ORDER BY slot_start, id"
);
const BOOKED_ON: &str = "SELECT id, slot_start, slot_end FROM changes \
     WHERE state IN ('scheduled', 'implement') AND service = $1 AND environment = $2 \
     AND slot_end > $3 AND id <> $4 ORDER BY slot_start, id";

const COUNT: &str = "SELECT COUNT(*) AS n FROM changes";

pub(super) async fn by_id(
    conn: &mut AnyConnection,
    id: ChangeId,
    lock: Lock,
) -> Result<Option<Change>, StoreError> {
    let sql = match lock {
        Lock::None => BY_ID,
        Lock::ForUpdate => BY_ID_FOR_UPDATE,
    };
    let row = sqlx::query(sql).bind(id.0).fetch_optional(conn).await?;
    row.as_ref().map(from_row).transpose()
}

pub(super) async fn by_pr(
    conn: &mut AnyConnection,
    repository: &str,
    number: i64,
    lock: Lock,
) -> Result<Option<Change>, StoreError> {
    let sql = match lock {
        Lock::None => BY_PR,
        Lock::ForUpdate => BY_PR_FOR_UPDATE,
    };
    let row = sqlx::query(sql)
        .bind(repository)
        .bind(number)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Up to `limit` PR changes not yet released with an id above `after`, oldest first.
pub(super) async fn open_prs(
    conn: &mut AnyConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<Change>, StoreError> {
    let rows = sqlx::query(OPEN_PRS)
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The latest change of a pull request in any state (closed and canceled included).
pub(super) async fn any_by_pr(
    conn: &mut AnyConnection,
    repository: &str,
    number: i64,
) -> Result<Option<ChangeId>, StoreError> {
    let row = sqlx::query(ANY_BY_PR)
        .bind(repository)
        .bind(number)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(|r| int(r, "id").map(ChangeId)).transpose()
}

/// Records when a pull request's first commit was authored, unless that is known already.
/// Returns whether it was written.
pub(super) async fn set_first_commit(
    conn: &mut AnyConnection,
    id: ChangeId,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE changes SET first_commit_at = $2 WHERE id = $1 AND first_commit_at IS NULL",
    )
    .bind(id.0)
    .bind(to_millis(at))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Records the commit a merged pull request became.
pub(super) async fn set_merge_sha(
    conn: &mut AnyConnection,
    id: ChangeId,
    sha: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE changes SET merge_sha = $2 WHERE id = $1")
        .bind(id.0)
        .bind(sha)
        .execute(conn)
        .await?;
    Ok(())
}

/// The non-terminal changes whose pull request's head (or merge commit) is `sha`, newest
/// first.
pub(super) async fn by_head(
    conn: &mut AnyConnection,
    repository: &str,
    sha: &str,
) -> Result<Vec<Change>, StoreError> {
    let rows = sqlx::query(BY_HEAD)
        .bind(repository)
        .bind(sha)
        .fetch_all(conn)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Inserts `c` and returns it as it now reads back from the database.
pub(super) async fn insert(conn: &mut AnyConnection, c: &NewChange) -> Result<Change, StoreError> {
    let pr = c.pull_request.as_ref();
    let row = sqlx::query(INSERT)
        .bind(c.title.as_str())
        .bind(c.description.as_str())
        .bind(c.service.as_str())
        .bind(c.environment.as_str())
        .bind(c.change_type.as_str())
        .bind(c.risk.as_str())
        .bind(c.state.as_str())
        .bind(c.requester.as_str())
        .bind(c.source.as_str())
        .bind(pr.map(|p| p.repository.as_str()))
        .bind(pr.map(|p| p.number))
        .bind(pr.map(|p| p.head_sha.as_str()))
        .bind(pr.is_some_and(|p| p.merged))
        .bind(c.duration.num_seconds())
        .bind(c.approval_round)
        .bind(to_millis(c.created_at))
        .bind(c.first_commit_at.map(to_millis))
        .fetch_one(conn)
        .await?;
    let created_at = truncate_millis(c.created_at);
    Ok(Change {
        id: ChangeId(int(&row, "id")?),
        title: c.title.clone(),
        description: c.description.clone(),
        service: c.service.clone(),
        environment: c.environment.clone(),
        change_type: c.change_type,
        risk: c.risk,
        state: c.state,
        close_code: None,
        requester: c.requester.clone(),
        source: c.source,
        pull_request: c.pull_request.clone(),
        duration: chrono::Duration::seconds(c.duration.num_seconds()),
        slot: None,
        approval_round: c.approval_round,
        created_at,
        updated_at: created_at,
        first_commit_at: c.first_commit_at.map(truncate_millis),
    })
}

/// Writes every field of `c` but its id and creation time.
pub(super) async fn update(conn: &mut AnyConnection, c: &Change) -> Result<(), StoreError> {
    let pr = c.pull_request.as_ref();
    let done = sqlx::query(UPDATE)
        .bind(c.id.0)
        .bind(c.title.as_str())
        .bind(c.description.as_str())
        .bind(c.service.as_str())
        .bind(c.environment.as_str())
        .bind(c.change_type.as_str())
        .bind(c.risk.as_str())
        .bind(c.state.as_str())
        .bind(c.close_code.map(|code| code.as_str()))
        .bind(c.requester.as_str())
        .bind(c.source.as_str())
        .bind(pr.map(|p| p.repository.as_str()))
        .bind(pr.map(|p| p.number))
        .bind(pr.map(|p| p.head_sha.as_str()))
        .bind(pr.is_some_and(|p| p.merged))
        .bind(c.duration.num_seconds())
        .bind(c.slot.map(|s| to_millis(s.start)))
        .bind(c.slot.map(|s| to_millis(s.end)))
        .bind(c.approval_round)
        .bind(to_millis(c.updated_at))
        .bind(c.first_commit_at.map(to_millis))
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(c.id.to_string()));
    }
    Ok(())
}

/// Newest first, keyset-paged on id. Each filter is an equality that an index leads with.
pub(super) async fn list<'f>(
    conn: &mut AnyConnection,
    filter: &'f ChangeFilter,
) -> Result<Vec<Change>, StoreError> {
    enum Arg<'a> {
        Text(&'a str),
        Int(i64),
    }
    let mut args: Vec<Arg<'f>> = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    let mut condition = |column: &str, op: &str, arg: Arg<'f>| {
        args.push(arg);
        conditions.push(format!("{column} {op} ${}", args.len()));
    };
    if let Some(service) = &filter.service {
        condition("service", "=", Arg::Text(service));
    }
    if let Some(state) = filter.state {
        condition("state", "=", Arg::Text(state.as_str()));
    }
    if let Some(requester) = &filter.requester {
        condition("requester", "=", Arg::Text(requester));
    }
    if let Some(before) = filter.before {
        condition("id", "<", Arg::Int(before.0));
    }
    let limit = if filter.limit > 0 {
        filter.limit
    } else {
        DEFAULT_LIMIT
    };
    let sql = list_sql(&conditions, args.len() + 1);

    // Only fixed column names and numbered placeholders were formatted into `sql`.
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s),
            Arg::Int(i) => query.bind(i),
        };
    }
    let rows = query.bind(limit).fetch_all(conn).await?;
    rows.iter().map(from_row).collect()
}

pub(super) fn list_sql(conditions: &[String], limit_placeholder: usize) -> String {
    let mut sql = String::from(concat!("SELECT ", columns!(), " FROM changes"));
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${limit_placeholder}"));
    sql
}

pub(super) async fn booked_between(
    conn: &mut AnyConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    service: Option<&str>,
) -> Result<Vec<Change>, StoreError> {
    let (to, from) = (to_millis(to), to_millis(from));
    let rows = match service {
        None => {
            sqlx::query(BOOKED_BETWEEN)
                .bind(to)
                .bind(from)
                .fetch_all(conn)
                .await?
        }
        Some(service) => {
            sqlx::query(BOOKED_BETWEEN_ON)
                .bind(to)
                .bind(from)
                .bind(service)
                .fetch_all(conn)
                .await?
        }
    };
    rows.iter().map(from_row).collect()
}

pub(super) async fn booked_on(
    conn: &mut AnyConnection,
    service: &str,
    environment: &str,
    after: DateTime<Utc>,
    exclude: Option<ChangeId>,
) -> Result<Vec<Booked>, StoreError> {
    let rows = sqlx::query(BOOKED_ON)
        .bind(service)
        .bind(environment)
        .bind(to_millis(after))
        // Ids start at 1, so 0 excludes nothing.
        .bind(exclude.map_or(0, |id| id.0))
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            let change = int(row, "id")?;
            let slot = slot(row)?.ok_or_else(|| {
                StoreError::Corrupt(format!("CHG-{change} is booked without a slot"))
            })?;
            Ok(Booked { change, slot })
        })
        .collect()
}

pub(super) async fn count(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let row = sqlx::query(COUNT).fetch_one(conn).await?;
    int(&row, "n")
}

fn slot(row: &AnyRow) -> Result<Option<Interval>, StoreError> {
    match (opt_time(row, "slot_start")?, opt_time(row, "slot_end")?) {
        (Some(start), Some(end)) => Ok(Some(Interval { start, end })),
        (None, None) => Ok(None),
        _ => Err(StoreError::Corrupt(
            "slot_start and slot_end must both be set or both be NULL".into(),
        )),
    }
}

pub(super) fn from_row(row: &AnyRow) -> Result<Change, StoreError> {
    let id = ChangeId(int(row, "id")?);
    let corrupt = |what: &str| StoreError::Corrupt(format!("{id}: {what}"));
    let pull_request = match (
        opt_text(row, "repository")?,
        opt_int(row, "pr_number")?,
        opt_text(row, "head_sha")?,
    ) {
        (Some(repository), Some(number), Some(head_sha)) => Some(PullRequest {
            repository,
            number,
            head_sha,
            merged: flag(row, "pr_merged")?,
        }),
        (None, None, None) => None,
        _ => {
            return Err(corrupt(
                "repository, pr_number and head_sha must be set together",
            ));
        }
    };
    Ok(Change {
        id,
        title: text(row, "title")?,
        description: text(row, "description")?,
        service: text(row, "service")?,
        environment: text(row, "environment")?,
        change_type: word(row, "change_type")?,
        risk: word(row, "risk")?,
        state: word(row, "state")?,
        close_code: opt_word(row, "close_code")?,
        requester: text(row, "requester")?,
        source: word(row, "source")?,
        pull_request,
        duration: chrono::Duration::seconds(int(row, "duration_secs")?),
        slot: slot(row).map_err(|e| corrupt(&e.to_string()))?,
        approval_round: int(row, "approval_round")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        first_commit_at: opt_time(row, "first_commit_at")?,
    })
}

#[cfg(test)]
mod tests {
    use sqlx::{AssertSqlSafe, Row};

    use super::*;
    use crate::store::Store;

    /// The plans behind `change list` and the booking queries use an index and never sort.
    #[tokio::test]
    async fn listing_and_booking_queries_use_indexes_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/c.db", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        let conditions = |cols: &[&str]| -> Vec<String> {
            cols.iter()
                .enumerate()
                .map(|(i, c)| format!("{c} ${}", i + 1))
                .collect()
        };
        // (query, index it must use, whether it may sort: booking queries sort the few rows
        // that hold a booking, list queries must not sort at all).
        let cases = [
            (
                list_sql(&conditions(&["service =", "state =", "id <"]), 4),
                "changes_by_service_state",
                false,
            ),
            (
                list_sql(&conditions(&["service =", "state ="]), 3),
                "changes_by_service_state",
                false,
            ),
            (
                list_sql(&conditions(&["service ="]), 2),
                "changes_by_service",
                false,
            ),
            (
                list_sql(&conditions(&["state ="]), 2),
                "changes_by_state",
                false,
            ),
            (
                list_sql(&conditions(&["requester ="]), 2),
                "changes_by_requester",
                false,
            ),
            (BY_PR.to_string(), "changes_by_pr", false),
            (ANY_BY_PR.to_string(), "changes_by_pr", false),
            (BOOKED_ON.to_string(), "changes_booked", true),
            (BOOKED_BETWEEN.to_string(), "changes_by_state", true),
        ];
        for (sql, index, may_sort) in cases {
            let rows = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            let plan: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect();
            let plan = plan.join(" | ");
            assert!(plan.contains(&format!("INDEX {index} ")), "{sql}\n{plan}");
            assert!(may_sort || !plan.contains("TEMP B-TREE"), "{sql}\n{plan}");
        }
    }
}
