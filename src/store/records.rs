//! SQL for votes, the audit trail and chat-started freezes, shared by `Store` and `Tx`.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::rows::{int, opt_int, opt_time, text, time};
use super::types::{AuditEntry, NewAuditEntry, NewFreeze, StoredFreeze};
use super::{StoreError, to_millis, truncate_millis};
use crate::domain::ChangeId;
use crate::domain::policy::{Verdict, Vote};

const VOTES: &str = "SELECT person, verdict, comment, round, at FROM votes \
     WHERE change_id = $1 ORDER BY id";
const INSERT_VOTE: &str = "INSERT INTO votes (change_id, person, verdict, comment, round, at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

const AUDIT: &str = "SELECT id, change_id, at, actor, surface, action, detail FROM audit \
     WHERE change_id = $1 ORDER BY id";
/// The latest entries about no change (freezes, refusals of identities), newest last.
const AUDIT_UNATTACHED: &str = "SELECT id, change_id, at, actor, surface, action, detail \
     FROM (SELECT * FROM audit WHERE change_id IS NULL ORDER BY id DESC LIMIT $1) AS latest \
     ORDER BY id";
const APPEND_AUDIT: &str = "INSERT INTO audit (change_id, at, actor, surface, action, detail) \
     VALUES ($1, $2, $3, $4, $5, $6)";

// A freeze is in force at $1 unless it ended (naturally or by `freeze end`) by then.
const FREEZES: &str = "SELECT id, name, start_at, end_at, ended_at, services, reason, started_by \
     FROM freezes WHERE end_at > $1 AND (ended_at IS NULL OR ended_at > $1) \
     ORDER BY start_at, id";
// Freezes that ran out by themselves are marked ended at their end, freeing the name.
const EXPIRE_FREEZES: &str = "UPDATE freezes SET ended_at = end_at \
     WHERE name = $1 AND ended_at IS NULL AND end_at <= $2";
// The conflict target names the partial unique index `freezes_open_name`.
const INSERT_FREEZE: &str = "INSERT INTO freezes \
     (name, start_at, end_at, services, reason, started_by) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (name) WHERE ended_at IS NULL DO NOTHING RETURNING id";
const END_FREEZE: &str = "UPDATE freezes SET ended_at = $3, ended_by = $2 \
     WHERE name = $1 AND ended_at IS NULL AND end_at > $3";

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Approve => "approve",
        Verdict::Reject => "reject",
        Verdict::Withdraw => "withdraw",
    }
}

fn parse_verdict(word: &str) -> Result<Verdict, StoreError> {
    match word {
        "approve" => Ok(Verdict::Approve),
        "reject" => Ok(Verdict::Reject),
        "withdraw" => Ok(Verdict::Withdraw),
        other => Err(StoreError::Corrupt(format!(
            "verdict: `{other}` is not approve or reject"
        ))),
    }
}

pub(super) async fn votes(conn: &mut AnyConnection, id: ChangeId) -> Result<Vec<Vote>, StoreError> {
    let rows = sqlx::query(VOTES).bind(id.0).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok(Vote {
                person: text(row, "person")?,
                verdict: parse_verdict(&text(row, "verdict")?)?,
                comment: text(row, "comment")?,
                round: int(row, "round")?,
                at: time(row, "at")?,
            })
        })
        .collect()
}

pub(super) async fn insert_vote(
    conn: &mut AnyConnection,
    id: ChangeId,
    v: &Vote,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_VOTE)
        .bind(id.0)
        .bind(v.person.as_str())
        .bind(verdict_word(v.verdict))
        .bind(v.comment.as_str())
        .bind(v.round)
        .bind(to_millis(v.at))
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn audit(
    conn: &mut AnyConnection,
    id: ChangeId,
) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = sqlx::query(AUDIT).bind(id.0).fetch_all(conn).await?;
    audit_rows(&rows)
}

pub(super) async fn audit_unattached(
    conn: &mut AnyConnection,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = sqlx::query(AUDIT_UNATTACHED)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    audit_rows(&rows)
}

pub(super) fn audit_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<AuditEntry>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(AuditEntry {
                id: int(row, "id")?,
                change: opt_int(row, "change_id")?.map(ChangeId),
                at: time(row, "at")?,
                actor: text(row, "actor")?,
                surface: text(row, "surface")?,
                action: text(row, "action")?,
                detail: text(row, "detail")?,
            })
        })
        .collect()
}

pub(super) async fn append_audit(
    conn: &mut AnyConnection,
    e: &NewAuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(APPEND_AUDIT)
        .bind(e.change.map(|id| id.0))
        .bind(to_millis(e.at))
        .bind(e.actor.as_str())
        .bind(e.surface.as_str())
        .bind(e.action.as_str())
        .bind(e.detail.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn freezes(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
) -> Result<Vec<StoredFreeze>, StoreError> {
    let rows = sqlx::query(FREEZES)
        .bind(to_millis(now))
        .fetch_all(conn)
        .await?;
    rows.iter().map(freeze_from_row).collect()
}

/// `None` when a freeze of that name is still in force.
pub(super) async fn insert_freeze(
    conn: &mut AnyConnection,
    f: &NewFreeze,
) -> Result<Option<StoredFreeze>, StoreError> {
    let services = serde_json::to_string(&f.services)
        .map_err(|e| StoreError::Corrupt(format!("freeze services: {e}")))?;
    sqlx::query(EXPIRE_FREEZES)
        .bind(f.name.as_str())
        .bind(to_millis(f.start))
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query(INSERT_FREEZE)
        .bind(f.name.as_str())
        .bind(to_millis(f.start))
        .bind(to_millis(f.end))
        .bind(services)
        .bind(f.reason.as_str())
        .bind(f.started_by.as_str())
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(StoredFreeze {
        id: int(&row, "id")?,
        name: f.name.clone(),
        start: truncate_millis(f.start),
        end: truncate_millis(f.end),
        services: f.services.clone(),
        reason: f.reason.clone(),
        started_by: f.started_by.clone(),
    }))
}

/// `false` when no freeze of that name is in force at `at`.
pub(super) async fn end_freeze(
    conn: &mut AnyConnection,
    name: &str,
    by: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(END_FREEZE)
        .bind(name)
        .bind(by)
        .bind(to_millis(at))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

fn freeze_from_row(row: &AnyRow) -> Result<StoredFreeze, StoreError> {
    let name = text(row, "name")?;
    let services: Vec<String> = serde_json::from_str(&text(row, "services")?)
        .map_err(|e| StoreError::Corrupt(format!("freeze {name}: services: {e}")))?;
    let end = time(row, "end_at")?;
    // A freeze ended early stops at that moment.
    let end = opt_time(row, "ended_at")?.map_or(end, |ended| ended.min(end));
    Ok(StoredFreeze {
        id: int(row, "id")?,
        start: time(row, "start_at")?,
        end,
        services,
        reason: text(row, "reason")?,
        started_by: text(row, "started_by")?,
        name,
    })
}
