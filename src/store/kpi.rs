//! Reads for the KPIs (`domain::kpi`): the changes a period touches, with their audit trails
//! and deployments, a few queries in all.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::changes::{COLUMNS, from_row};
use super::records::audit_rows;
use super::releases::{DEPLOYMENT_COLUMNS, deployment_from_row};
use super::{AuditEntry, Store, StoreError, to_millis};
use crate::domain::release::Deployment;
use crate::domain::{Change, ChangeId};

/// Ids per `IN (…)` list.
const CHUNK: usize = 500;

impl Store {
    /// Changes created before `to` that were updated since `from` or have an audit entry in
    /// `[from, to)`, plus every change still in `review`; of one service if given. Oldest
    /// first.
    pub async fn changes_touched(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        service: Option<&str>,
    ) -> Result<Vec<Change>, StoreError> {
        let only = if service.is_some() {
            " AND service = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM changes WHERE ((created_at < $2 AND (updated_at >= $1 \
             OR id IN (SELECT change_id FROM audit WHERE at >= $1 AND at < $2))) \
             OR state = 'review'){only} ORDER BY id"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(to_millis(from))
            .bind(to_millis(to));
        if let Some(s) = service {
            query = query.bind(s.to_string());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// The audit entries of these changes, by id (oldest first within a change).
    pub async fn audit_of(&self, ids: &[ChangeId]) -> Result<Vec<AuditEntry>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT id, change_id, at, actor, surface, action, detail FROM audit \
                 WHERE change_id IN ({}) ORDER BY id",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.0);
            }
            out.extend(audit_rows(&query.fetch_all(&self.pool).await?)?);
        }
        Ok(out)
    }

    /// The deployments of these changes, oldest first.
    pub async fn deployments_of(&self, ids: &[ChangeId]) -> Result<Vec<Deployment>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE change_id IN ({}) ORDER BY id",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.0);
            }
            for row in &query.fetch_all(&self.pool).await? {
                out.push(deployment_from_row(row)?);
            }
        }
        Ok(out)
    }
}

/// `$1, $2, …, $n`.
fn placeholders(n: usize) -> String {
    let list: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    list.join(", ")
}
