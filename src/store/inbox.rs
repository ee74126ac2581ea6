//! The GitHub webhook inbox: deliveries stored (once per delivery id) before they are
//! acknowledged, then claimed and processed like other durable work.
//!
//! A delivery's payload is kept as received in `github_payloads`, apart from its small
//! claimable row, so claims and completions never rewrite it.
//!
//! Inserting takes none of the workflow's write serialisation: on PostgreSQL no advisory
//! lock (an insert conflicts with nothing); on SQLite the inbox is a store of its own on a
//! separate file, so its writes queue only behind other inbox writes.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::claims::{ClaimRequest, Table};
use super::rows::{int, opt_text, text};
use super::{Backend, Store, StoreError, to_millis};

/// A delivery as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event: String,
    /// The JSON payload.
    pub body: String,
    /// What changebot read from it, as JSON: processing reads this, not the payload.
    pub summary: String,
}

/// A claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDelivery {
    pub id: i64,
    pub delivery_id: String,
    pub event: String,
    /// What the receiver read from the payload (JSON).
    pub summary: String,
    /// When the receiver stored it (before acknowledging).
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// Claims so far, this one included.
    pub attempts: i64,
    pub claim_token: Option<String>,
}

const COLUMNS: &str = "id, delivery_id, event, summary, received_at, attempts, claim_token";

fn from_row(row: &AnyRow) -> Result<StoredDelivery, StoreError> {
    Ok(StoredDelivery {
        id: int(row, "id")?,
        delivery_id: text(row, "delivery_id")?,
        event: text(row, "event")?,
        summary: text(row, "summary")?,
        received_at: super::rows::time(row, "received_at")?,
        attempts: int(row, "attempts")?,
        claim_token: opt_text(row, "claim_token")?,
    })
}

impl Store {
    /// Stores a group of deliveries in one transaction; for each, whether it was new (`false`:
    /// that delivery id was stored before, a redelivery).
    pub async fn insert_deliveries(
        &self,
        batch: &[NewDelivery],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        let mut fresh = Vec::with_capacity(batch.len());
        for d in batch {
            let done = sqlx::query(
                "INSERT INTO github_deliveries (delivery_id, event, summary, received_at, \
                 due_at, state) VALUES ($1, $2, $3, $4, $4, 'pending') \
                 ON CONFLICT (delivery_id) DO NOTHING",
            )
            .bind(d.delivery_id.clone())
            .bind(d.event.clone())
            .bind(d.summary.clone())
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await?;
            let new = done.rows_affected() == 1;
            if new {
                sqlx::query(
                    "INSERT INTO github_payloads (delivery_id, body) VALUES ($1, $2) \
                     ON CONFLICT (delivery_id) DO NOTHING",
                )
                .bind(d.delivery_id.clone())
                .bind(d.body.clone())
                .execute(&mut *tx)
                .await?;
            }
            fresh.push(new);
        }
        tx.commit().await?;
        Ok(fresh)
    }

    /// Claims up to `req.limit` deliveries due for processing, oldest first.
    pub async fn claim_deliveries(
        &self,
        req: ClaimRequest<'_>,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        let mut items = self.claim(Table::Inbox, COLUMNS, from_row, req).await?;
        items.sort_by_key(|d| d.id);
        Ok(items)
    }

    /// Ends a delivery: `done`, or `failed` with why (it will not be tried again), if this
    /// claim still holds it.
    pub async fn finish_delivery(
        &self,
        d: &StoredDelivery,
        failed: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE github_deliveries SET state = $3, last_error = $4, done_at = $5, \
             claimed_until = NULL, claimed_by = NULL, claim_token = NULL \
             WHERE id = $1 AND claim_token = $2",
        )
        .bind(d.id)
        .bind(d.claim_token.clone().unwrap_or_default())
        .bind(if failed.is_some() { "failed" } else { "done" })
        .bind(failed.map(str::to_string))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks many deliveries of one claim done, in one statement.
    pub async fn finish_deliveries(
        &self,
        ids: &[i64],
        claim_token: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        for chunk in ids.chunks(500) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "UPDATE github_deliveries SET state = 'done', done_at = $1, claimed_until = NULL, \
                 claimed_by = NULL, claim_token = NULL WHERE claim_token = $2 AND id IN ({})",
                list.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(to_millis(now))
                .bind(claim_token.to_string());
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Puts a delivery back for another try at `due_at`.
    pub async fn retry_delivery(
        &self,
        d: &StoredDelivery,
        due_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE github_deliveries SET due_at = $3, last_error = $4, claimed_until = NULL, \
             claimed_by = NULL, claim_token = NULL WHERE id = $1 AND claim_token = $2",
        )
        .bind(d.id)
        .bind(d.claim_token.clone().unwrap_or_default())
        .bind(to_millis(due_at))
        .bind(error.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deliveries not yet processed.
    pub async fn deliveries_pending(&self) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM github_deliveries WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        int(&row, "n")
    }
}
