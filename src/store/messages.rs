//! Where each change is shown: one external message per (surface, place), so any later move of
//! the change edits those messages in place instead of posting new ones.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::rows::{int, text, time};
use super::{Store, StoreError, Tx, to_millis};
use crate::domain::ChangeId;

/// One message that shows a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub change: ChangeId,
    /// The sink that owns the message: `chat` (log/console), `discord`, `github`.
    pub surface: String,
    /// A channel name, or a pull request (`owner/repo#42`).
    pub place: String,
    /// The message's id on that surface.
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "change_id, surface, place, message_id, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<MessageRef, StoreError> {
    Ok(MessageRef {
        change: ChangeId(int(row, "change_id")?),
        surface: text(row, "surface")?,
        place: text(row, "place")?,
        message_id: text(row, "message_id")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

impl Store {
    /// Every message that shows `change`, oldest first.
    pub async fn message_refs(&self, change: ChangeId) -> Result<Vec<MessageRef>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM message_refs WHERE change_id = $1 ORDER BY created_at, surface, place"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(change.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// The message that shows `change` on `surface` in `place`, if one was posted.
    pub async fn message_ref(
        &self,
        change: ChangeId,
        surface: &str,
        place: &str,
    ) -> Result<Option<MessageRef>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM message_refs WHERE change_id = $1 AND surface = $2 AND place = $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(change.0)
            .bind(surface.to_string())
            .bind(place.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }
}

impl Tx {
    /// Records that `message_id` shows `change` on `surface` in `place` (replacing a message
    /// that was deleted there).
    pub async fn record_message_ref(
        &mut self,
        change: ChangeId,
        surface: &str,
        place: &str,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO message_refs (change_id, surface, place, message_id, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (change_id, surface, place) DO UPDATE \
             SET message_id = excluded.message_id, updated_at = excluded.updated_at",
        )
        .bind(change.0)
        .bind(surface.to_string())
        .bind(place.to_string())
        .bind(message_id.to_string())
        .bind(to_millis(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Notes that the messages of `change` were brought up to date.
    pub async fn touch_message_refs(
        &mut self,
        change: ChangeId,
        surface: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE message_refs SET updated_at = $3 WHERE change_id = $1 AND surface = $2",
        )
        .bind(change.0)
        .bind(surface.to_string())
        .bind(to_millis(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Forgets a message that no longer exists on its surface (deleted by someone), so the
    /// next card is posted anew.
    pub async fn forget_message_ref(
        &mut self,
        change: ChangeId,
        surface: &str,
        place: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM message_refs WHERE change_id = $1 AND surface = $2 AND place = $3",
        )
        .bind(change.0)
        .bind(surface.to_string())
        .bind(place.to_string())
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
