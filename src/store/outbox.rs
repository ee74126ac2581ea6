//! The outbox: side effects written in the same transaction as the state change that caused
//! them (deployment calls, chat notices), delivered afterwards with retries.
//!
//! An item is `pending` until it is `done`, `superseded` (a newer notice on the same topic
//! replaced it before it went out) or `parked` (it kept failing; only a person retries it).
//! Claims are owned and fenced (see `claims.rs`); `attempts` counts claims, this one included.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use super::claims::{ClaimRequest, Table};
use super::rows::{int, opt_int, opt_text, text, time, word};
use super::{Store, StoreError, Tx, to_millis};
use crate::domain::change::word_enum;
use crate::domain::{ChangeId, DeploymentId};

word_enum!(
    /// What an outbox item delivers, a typed effect: `Deploy` calls a deployment target
    /// (`body`: the request); `Notice` posts a notice in `channel` (`body`: a
    /// `domain::effect::Notice` as JSON); `Card` shows the change's card in `channel` (posted
    /// there once, edited in place after); `CardUpdate` brings that card up to date (posting
    /// it if it never made it there); `GateAnswer` answers a deployment protection rule
    /// (`body`: a `domain::effect::GateAnswer` as JSON).
    OutboxKind, "outbox kind" {
    Deploy => "deploy",
    Notice => "notice",
    Card => "card",
    CardUpdate => "card_update",
    GateAnswer => "gate_answer",
});

impl OutboxKind {
    /// Whether the item goes to people through a chat sink (ordered per channel), rather than
    /// to a deployment target.
    pub fn is_chat(self) -> bool {
        !matches!(self, OutboxKind::Deploy)
    }
}

/// A side effect to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbox<'a> {
    pub kind: OutboxKind,
    pub deployment: Option<DeploymentId>,
    /// The change it is about, if any.
    pub change: Option<ChangeId>,
    pub channel: Option<&'a str>,
    /// The sink: `chat` (default) or `github`.
    pub surface: &'a str,
    pub body: &'a str,
    /// Notices on one topic supersede each other: queuing one drops the older pending ones
    /// that nobody is delivering yet.
    pub topic: Option<&'a str>,
    /// For the notice announcing a parked item: that item.
    pub parked_item: Option<i64>,
}

/// A claimed (or parked) outbox item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    pub kind: OutboxKind,
    pub deployment: Option<DeploymentId>,
    pub change: Option<ChangeId>,
    pub channel: Option<String>,
    pub surface: String,
    pub body: String,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Claims so far, this one included.
    pub attempts: i64,
    /// The token of the claim that returned this item (fences its completion).
    pub claim_token: Option<String>,
    /// The holder whose lapsed claim this claim took over (it stopped mid-delivery).
    pub taken_from: Option<String>,
    pub parked_item: Option<i64>,
    pub last_error: Option<String>,
}

const OUTBOX_COLUMNS: &str = "id, kind, deployment_id, change_id, channel, surface, body, due_at, \
     created_at, attempts, claim_token, taken_from, parked_item, last_error";

fn outbox_from_row(row: &AnyRow) -> Result<OutboxItem, StoreError> {
    Ok(OutboxItem {
        id: int(row, "id")?,
        kind: word(row, "kind")?,
        deployment: opt_int(row, "deployment_id")?.map(DeploymentId),
        change: opt_int(row, "change_id")?.map(ChangeId),
        channel: opt_text(row, "channel")?,
        surface: text(row, "surface")?,
        body: text(row, "body")?,
        due_at: time(row, "due_at")?,
        created_at: time(row, "created_at")?,
        attempts: int(row, "attempts")?,
        claim_token: opt_text(row, "claim_token")?,
        taken_from: opt_text(row, "taken_from")?,
        parked_item: opt_int(row, "parked_item")?,
        last_error: opt_text(row, "last_error")?,
    })
}

/// Queues an update of every card of each of `changes` (one per place it is shown), due at
/// `due`, in two statements whatever their number. A card still waiting to go out gets none (it
/// will show the change as it is then), nor do changes from before cards. A pending update
/// nobody is delivering yet is replaced. Each update goes to its card's sink and channel, so
/// it is delivered in order behind the card.
pub(super) async fn queue_card_updates(
    conn: &mut sqlx::AnyConnection,
    changes: &[ChangeId],
    at: DateTime<Utc>,
    due: DateTime<Utc>,
) -> Result<(), StoreError> {
    for chunk in changes.chunks(500) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let list = list.join(", ");
        let supersede = format!(
            "UPDATE outbox SET state = 'superseded', done_at = $1 WHERE kind = 'card_update' \
             AND change_id IN ({list}) AND state = 'pending' AND claimed_by IS NULL \
             AND due_at <= $2"
        );
        let queue = format!(
            "INSERT INTO outbox (kind, change_id, channel, surface, body, topic, due_at, state, \
             created_at) SELECT 'card_update', change_id, channel, surface, '', \
             'card:CHG-' || change_id, $2, 'pending', $1 FROM outbox \
             WHERE kind = 'card' AND change_id IN ({list}) \
             AND NOT (state = 'pending' AND claimed_by IS NULL)"
        );
        for sql in [supersede, queue] {
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(to_millis(at))
                .bind(to_millis(due));
            for id in chunk {
                query = query.bind(id.0);
            }
            query.execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Columns cleared whenever a claim ends.
const RELEASE_CLAIM: &str = "claimed_until = NULL, claimed_by = NULL, claim_token = NULL";

impl Store {
    /// Claims up to `req.limit` due outbox items, oldest first.
    pub async fn claim_outbox(&self, req: ClaimRequest<'_>) -> Result<Vec<OutboxItem>, StoreError> {
        let mut items = self
            .claim(Table::Outbox, OUTBOX_COLUMNS, outbox_from_row, req)
            .await?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// Parked items, oldest first: those of one change, or all of them.
    pub async fn parked(&self, change: Option<ChangeId>) -> Result<Vec<OutboxItem>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = 'parked' \
             AND ($1 = 0 OR change_id = $1) ORDER BY id LIMIT 500"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(change.map_or(0, |c| c.0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(outbox_from_row).collect()
    }
}

impl Tx {
    /// Queues a side effect, delivered after commit. A notice with a topic supersedes the
    /// pending, unclaimed notices on the same topic.
    pub async fn insert_outbox(
        &mut self,
        item: &NewOutbox<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if let Some(topic) = item.topic {
            sqlx::query(
                "UPDATE outbox SET state = 'superseded', done_at = $2 \
                 WHERE topic = $1 AND state = 'pending' AND claimed_by IS NULL",
            )
            .bind(topic.to_string())
            .bind(to_millis(now))
            .execute(self.conn())
            .await?;
        }
        sqlx::query(
            "INSERT INTO outbox (kind, deployment_id, change_id, channel, surface, body, topic, \
             parked_item, due_at, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $9)",
        )
        .bind(item.kind.as_str())
        .bind(item.deployment.map(|d| d.0))
        .bind(item.change.map(|c| c.0))
        .bind(item.channel.map(str::to_string))
        .bind(item.surface.to_string())
        .bind(item.body.to_string())
        .bind(item.topic.map(str::to_string))
        .bind(item.parked_item)
        .bind(to_millis(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Marks an outbox item delivered.
    pub async fn finish_outbox(&mut self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.finish_outbox_many(&[id], now).await
    }

    /// Marks many outbox items delivered.
    pub async fn finish_outbox_many(
        &mut self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let set = format!("UPDATE outbox SET state = 'done', done_at = $1, {RELEASE_CLAIM}");
        self.update_many(&set, ids, now).await
    }

    /// Parks an item that keeps failing: it is not tried again until a person retries it.
    pub async fn park_outbox(
        &mut self,
        id: i64,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE outbox SET state = 'parked', last_error = $2, done_at = $3, {RELEASE_CLAIM} \
             WHERE id = $1"
        )))
        .bind(id)
        .bind(why.to_string())
        .bind(to_millis(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Puts an outbox item back for another try at `due_at`.
    pub async fn retry_outbox(
        &mut self,
        id: i64,
        due_at: DateTime<Utc>,
        note: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE outbox SET due_at = $2, last_error = $3, {RELEASE_CLAIM} WHERE id = $1"
        )))
        .bind(id)
        .bind(to_millis(due_at))
        .bind(note.to_string())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Puts a change's parked items back in the queue, due now, with their attempts reset;
    /// returns them.
    pub async fn unpark_outbox(
        &mut self,
        change: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let sql = format!(
            "UPDATE outbox SET state = 'pending', due_at = $2, attempts = 0, done_at = NULL, \
             {RELEASE_CLAIM} WHERE change_id = $1 AND state = 'parked' RETURNING {OUTBOX_COLUMNS}"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(change.0)
            .bind(to_millis(now))
            .fetch_all(self.conn())
            .await?;
        let mut items = rows
            .iter()
            .map(outbox_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// Runs `set … WHERE id IN (ids)` with `$1` bound to `now`, in chunks of 500 ids.
    pub(super) async fn update_many(
        &mut self,
        set: &str,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for chunk in ids.chunks(500) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!("{set} WHERE id IN ({})", list.join(", "));
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(to_millis(now));
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(self.conn()).await?;
        }
        Ok(())
    }
}
