//! Leases on singleton work (the Discord gateway): taken when free or lapsed, renewed by their
//! holder, released on a clean stop.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, to_millis};

impl Store {
    /// Takes or renews the lease `name` for `holder` until `until`. `true` when `holder` holds
    /// it now: it was free, lapsed (its `until` is before `now`) or already `holder`'s.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // One statement on the pool, like claim renewals: never queued behind the workflow's
        // writer lock, so a busy database cannot make a live holder look dead.
        let _turn = self.write_turn().await;
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE leases.holder = excluded.holder OR leases.until < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(to_millis(until))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up (a clean stop), so another process need not wait for it to lapse.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Who holds the lease `name`, if anyone does at `now`.
    pub async fn lease_holder(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT holder FROM leases WHERE name = $1 AND until >= $2")
            .bind(name)
            .bind(to_millis(now))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| super::rows::text(r, "holder"))
            .transpose()
    }
}
