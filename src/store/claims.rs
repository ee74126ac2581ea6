//! Owned claims on jobs and outbox items.
//!
//! A claim is one `UPDATE … RETURNING` that stamps the rows with a lease (`claimed_until`), the
//! holder's instance id (`claimed_by`) and a token unique to this claim (`claim_token`). The
//! holder renews the lease of the work it still has in hand every few seconds
//! ([`Store::renew_claims`]), so the lease itself can be short: work whose holder stopped
//! renewing (it crashed or stalled) is claimed again once the lease runs out. Completion writes
//! are fenced ([`Tx::held`]): they go through only while the row still carries the writer's
//! token, so a stalled holder that wakes up after its work was taken over can never record
//! over the new holder.
//!
//! On PostgreSQL the candidate rows are picked `FOR UPDATE SKIP LOCKED`, so replicas never
//! claim the same row; on SQLite the statement runs alone under the database's write lock.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use super::rows::{int, opt_text};
use super::{Backend, Store, StoreError, Tx, to_millis};

/// The tables that hold claimable work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Jobs,
    Outbox,
    /// GitHub deliveries waiting to be processed.
    Inbox,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Jobs => "jobs",
            Table::Outbox => "outbox",
            Table::Inbox => "github_deliveries",
        }
    }
}

/// Who claims, until when, and how many rows at most.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub limit: i64,
    /// The claiming process's instance id.
    pub holder: &'a str,
    /// Only rows of these kinds (empty: any).
    pub kinds: &'a [&'a str],
}

/// A fresh token for one claim.
fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `UPDATE table SET <claim> WHERE id IN (due, unclaimed or lapsed rows) RETURNING …`.
/// A process never takes over its own lapsed claims until one more lease has passed: a
/// renewal that was merely slow (waiting for the SQLite writer) must not make it send its own
/// call in flight a second time; another process, which cannot know, takes over at once.
/// `taken_from` keeps the previous holder when the claim takes over a lapsed one (in an
/// UPDATE, right-hand sides read the row as it was). A claimed outbox item also becomes due
/// again only when its lease ends, so later claims skip it without looking (jobs keep their
/// `due_at`: a release start compares it with its slot).
fn claim_sql(table: Table, columns: &str, backend: Backend, kinds: usize) -> String {
    let skip_locked = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let outbox = match table {
        Table::Outbox => ", taken_from = claimed_by, due_at = $1",
        Table::Jobs | Table::Inbox => "",
    };
    let kind = if kinds == 0 {
        String::new()
    } else {
        let list: Vec<String> = (0..kinds).map(|i| format!("${}", i + 7)).collect();
        format!(" AND kind IN ({})", list.join(", "))
    };
    let t = table.name();
    format!(
        "UPDATE {t} SET claimed_until = $1, claimed_by = $4, claim_token = $5, \
         attempts = attempts + 1{outbox} WHERE id IN (SELECT id FROM {t} \
         WHERE state = 'pending'{kind} AND due_at <= $2 \
         AND (claimed_until IS NULL \
              OR (claimed_until <= $2 AND (claimed_by IS NULL OR claimed_by <> $4)) \
              OR claimed_until <= $6) \
         ORDER BY due_at, id LIMIT $3{skip_locked}) RETURNING {columns}"
    )
}

impl Store {
    /// Claims up to `req.limit` due rows of `table`; each row is mapped by `map`, which also
    /// receives the claim's token.
    pub(super) async fn claim<T>(
        &self,
        table: Table,
        columns: &str,
        map: fn(&AnyRow) -> Result<T, StoreError>,
        req: ClaimRequest<'_>,
    ) -> Result<Vec<T>, StoreError> {
        let sql = claim_sql(table, columns, self.backend, req.kinds.len());
        let token = new_token();
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(to_millis(req.lease_until))
            .bind(to_millis(req.now))
            .bind(req.limit)
            .bind(req.holder.to_string())
            .bind(token)
            .bind(to_millis(req.now - (req.lease_until - req.now)));
        for kind in req.kinds {
            query = query.bind(kind.to_string());
        }
        let _turn = self.write_turn().await;
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(map).collect()
    }

    /// Extends to `until` the lease of every pending row of `table` still carrying one of
    /// `tokens`; returns how many rows were renewed. Rows taken over by another holder carry
    /// its token and are left alone.
    pub async fn renew_claims(
        &self,
        table: Table,
        tokens: &[String],
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut renewed = 0;
        for chunk in tokens.chunks(200) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let due = match table {
                Table::Outbox => ", due_at = $1",
                Table::Jobs | Table::Inbox => "",
            };
            let sql = format!(
                "UPDATE {} SET claimed_until = $1{due} WHERE state = 'pending' \
                 AND claim_token IN ({})",
                table.name(),
                list.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(to_millis(until));
            for token in chunk {
                query = query.bind(token.clone());
            }
            let _turn = self.write_turn().await;
            renewed += query.execute(&self.pool).await?.rows_affected();
        }
        Ok(renewed)
    }
}

impl Tx {
    /// Which of `claims` (row id, claim token) this transaction's writer still holds. On
    /// PostgreSQL the rows are locked until commit, so nobody can take them over between this
    /// check and the writes that follow it; on SQLite the transaction holds the write lock.
    pub async fn held(
        &mut self,
        table: Table,
        claims: &[(i64, &str)],
    ) -> Result<HashSet<i64>, StoreError> {
        let lock = match self.lock() {
            super::changes::Lock::ForUpdate => " FOR UPDATE",
            super::changes::Lock::None => "",
        };
        let mut held = HashSet::new();
        for chunk in claims.chunks(500) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
            let sql = format!(
                "SELECT id, claim_token FROM {} WHERE id IN ({}){lock}",
                table.name(),
                list.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (id, _) in chunk {
                query = query.bind(*id);
            }
            let rows = query.fetch_all(self.conn()).await?;
            for row in &rows {
                let id = int(row, "id")?;
                let token = opt_text(row, "claim_token")?;
                if chunk
                    .iter()
                    .any(|(i, t)| *i == id && token.as_deref() == Some(*t))
                {
                    held.insert(id);
                }
            }
        }
        Ok(held)
    }
}
