//! This process as a holder of claims: its instance id, the claims it has in hand, and the
//! heartbeat that renews their leases.
//!
//! Every claim round (scheduler or dispatcher) registers its claim token here for as long as
//! any of its work is in hand; [`Holder::renew`] extends the lease of exactly those rows every
//! `[scheduler] renew`. A process that dies or stalls stops renewing, so its work is taken over
//! one lease later. See `store::claims` for the SQL side and the fencing of completion writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::store::claims::{ClaimRequest, Table};
use crate::store::{Store, StoreError};

/// This process's identity and the claims it holds (cheap to clone).
#[derive(Clone, Debug)]
pub struct Holder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    instance: String,
    /// Claim tokens in hand, per table, with how many rounds share each.
    held: Mutex<HashMap<(Table, String), usize>>,
}

impl Default for Holder {
    fn default() -> Self {
        Self::new()
    }
}

impl Holder {
    /// A new instance id: the process id plus a random suffix, unique across restarts.
    pub fn new() -> Holder {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let instance = format!("pid{}-{}", std::process::id(), &suffix[..8]);
        Holder {
            inner: Arc::new(Inner {
                instance,
                held: Mutex::default(),
            }),
        }
    }

    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// A claim request on behalf of this instance.
    pub fn request(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> ClaimRequest<'_> {
        ClaimRequest {
            now,
            lease_until: now + lease,
            limit,
            holder: self.instance(),
            kinds: &[],
        }
    }

    /// Keeps `token`'s lease renewed until the returned guard (and all its clones) drop.
    pub fn hold(&self, table: Table, token: &str) -> Arc<Held> {
        let key = (table, token.to_string());
        if let Ok(mut held) = self.inner.held.lock() {
            *held.entry(key.clone()).or_default() += 1;
        }
        Arc::new(Held {
            holder: self.clone(),
            key,
        })
    }

    fn tokens(&self, table: Table) -> Vec<String> {
        self.inner
            .held
            .lock()
            .map(|held| {
                held.keys()
                    .filter(|(t, _)| *t == table)
                    .map(|(_, token)| token.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many claims (rounds) are in hand right now.
    pub fn claims_in_hand(&self) -> usize {
        self.inner.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// Extends the lease of everything in hand to `until`; returns how many rows were renewed.
    pub async fn renew(&self, store: &Store, until: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut renewed = 0;
        for table in [Table::Jobs, Table::Outbox] {
            let tokens = self.tokens(table);
            if !tokens.is_empty() {
                renewed += store.renew_claims(table, &tokens, until).await?;
            }
        }
        Ok(renewed)
    }
}

/// A claim in hand; its lease is renewed until the last clone drops.
#[derive(Debug)]
pub struct Held {
    holder: Holder,
    key: (Table, String),
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut held) = self.holder.inner.held.lock()
            && let Some(n) = held.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_renewed_until_its_last_guard_drops() {
        let holder = Holder::new();
        let a = holder.hold(Table::Outbox, "t1");
        let b = a.clone();
        let c = holder.hold(Table::Jobs, "t2");
        assert_eq!(holder.tokens(Table::Outbox), vec!["t1".to_string()]);
        drop(a);
        assert_eq!(holder.tokens(Table::Outbox), vec!["t1".to_string()]);
        drop(b);
        assert!(holder.tokens(Table::Outbox).is_empty());
        assert_eq!(holder.tokens(Table::Jobs), vec!["t2".to_string()]);
        drop(c);
        assert_eq!(holder.claims_in_hand(), 0);
    }

    #[test]
    fn instances_differ() {
        assert_ne!(Holder::new().instance(), Holder::new().instance());
    }
}
