//! A write transaction.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::Any;
use sqlx::AnyConnection;

use super::changes::{self, Lock};
use super::outbox;
use super::records;
use super::types::{NewAuditEntry, NewChange, NewFreeze, StoredFreeze};
use super::{Backend, StoreError};
use crate::domain::calendar::Booked;
use crate::domain::policy::Vote;
use crate::domain::{Change, ChangeId};

/// The work `applying` runs on behalf of: its key, and whether a commit recorded it yet.
struct Applying {
    key: String,
    marked: std::cell::Cell<bool>,
}

tokio::task_local! {
    /// While set, the first transaction that commits also records the key as applied (see
    /// [`applying`]).
    static APPLYING: Applying;
}

/// Runs `work` so that each transaction it commits also records `key` in
/// `applied_deliveries`, atomically with what the transaction wrote: a caller that finds the
/// key applied ([`Store::delivery_applied`](super::Store::delivery_applied)) knows the work
/// took effect and must not run it again (a delivery processed again after a crash).
pub async fn applying<F: std::future::Future>(key: String, work: F) -> F::Output {
    let state = Applying {
        key,
        marked: std::cell::Cell::new(false),
    };
    APPLYING.scope(state, work).await
}

/// How long the card updates of a transaction that moved many changes wait.
const CARD_SETTLE: chrono::Duration = chrono::Duration::seconds(3);

/// A write transaction from [`Store::begin`](super::Store::begin). Nothing is visible to others
/// until [`Tx::commit`]; dropping it rolls back.
pub struct Tx {
    tx: sqlx::Transaction<'static, Any>,
    backend: Backend,
    /// Held until commit or drop: this process's turn to write (SQLite).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Changes (or their votes) written in this transaction: their cards are brought up to
    /// date after it, whoever wrote them (any surface, the scheduler).
    cards: BTreeSet<ChangeId>,
    /// The latest time this transaction wrote (audit entries, changes, votes): when those
    /// card updates fall due.
    latest: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Tx {
    pub(super) fn new(
        tx: sqlx::Transaction<'static, Any>,
        backend: Backend,
        turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Tx {
        Tx {
            tx,
            backend,
            _turn: turn,
            cards: BTreeSet::new(),
            latest: None,
        }
    }

    pub(super) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Row locks apply on PostgreSQL; on SQLite the transaction already holds the write lock.
    pub(super) fn lock(&self) -> Lock {
        match self.backend {
            Backend::Sqlite => Lock::None,
            Backend::Postgres => Lock::ForUpdate,
        }
    }

    /// Inserts a change (no slot, no close code) and returns it with its new id.
    pub async fn insert_change(&mut self, c: &NewChange) -> Result<Change, StoreError> {
        changes::insert(self.conn(), c).await
    }

    /// Reads a change for update (locks the row on PostgreSQL until commit).
    pub async fn change(&mut self, id: ChangeId) -> Result<Option<Change>, StoreError> {
        let lock = self.lock();
        changes::by_id(self.conn(), id, lock).await
    }

    /// The latest change of a pull request that is not closed or canceled (locked like
    /// [`Tx::change`]).
    pub async fn change_for_pr(
        &mut self,
        repository: &str,
        number: i64,
    ) -> Result<Option<Change>, StoreError> {
        let lock = self.lock();
        changes::by_pr(self.conn(), repository, number, lock).await
    }

    /// As [`Store::any_change_for_pr`](super::Store::any_change_for_pr), inside this
    /// transaction (write transactions take turns, so nobody adds one before this commits).
    pub async fn any_change_for_pr(
        &mut self,
        repository: &str,
        number: i64,
    ) -> Result<Option<ChangeId>, StoreError> {
        changes::any_by_pr(self.conn(), repository, number).await
    }

    /// Records when the change's PR's first commit was authored, unless that is known already
    /// (then nothing changes). Returns whether it was written. The change's cards are not
    /// updated: they do not show it.
    pub async fn set_first_commit(
        &mut self,
        id: ChangeId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        changes::set_first_commit(self.conn(), id, at).await
    }

    /// Writes all mutable fields of `c` (everything but id and `created_at`).
    /// [`StoreError::NotFound`] when there is no change with that id.
    pub async fn update_change(&mut self, c: &Change) -> Result<(), StoreError> {
        changes::update(self.conn(), c).await?;
        self.changed(c.id, c.updated_at);
        Ok(())
    }

    pub(super) fn changed(&mut self, id: ChangeId, at: DateTime<Utc>) {
        self.cards.insert(id);
        self.wrote_at(at);
    }

    fn wrote_at(&mut self, at: DateTime<Utc>) {
        self.latest = Some(self.latest.map_or(at, |l| l.max(at)));
    }

    pub async fn votes(&mut self, id: ChangeId) -> Result<Vec<Vote>, StoreError> {
        records::votes(self.conn(), id).await
    }

    pub async fn insert_vote(&mut self, id: ChangeId, v: &Vote) -> Result<(), StoreError> {
        records::insert_vote(self.conn(), id, v).await?;
        self.changed(id, v.at);
        Ok(())
    }

    /// Other changes' bookings on the same service and environment whose slot ends after
    /// `after` (state `scheduled` or `implement`), excluding `exclude`, ordered by slot start.
    /// Write transactions are serialised (see [`Store::begin`](super::Store::begin)), so nobody
    /// else books in between this check and this transaction's commit.
    pub async fn booked_on(
        &mut self,
        service: &str,
        environment: &str,
        after: DateTime<Utc>,
        exclude: Option<ChangeId>,
    ) -> Result<Vec<Booked>, StoreError> {
        changes::booked_on(self.conn(), service, environment, after, exclude).await
    }

    pub async fn append_audit(&mut self, e: &NewAuditEntry) -> Result<(), StoreError> {
        records::append_audit(self.conn(), e).await?;
        self.wrote_at(e.at);
        Ok(())
    }

    /// As [`Store::freezes`](super::Store::freezes), inside this transaction.
    pub async fn freezes(&mut self, now: DateTime<Utc>) -> Result<Vec<StoredFreeze>, StoreError> {
        records::freezes(self.conn(), now).await
    }

    /// Starts a freeze. `Ok(None)` when a freeze with that name is still in force (a same-named
    /// freeze that ended by itself at or before `f.start` does not count).
    pub async fn insert_freeze(
        &mut self,
        f: &NewFreeze,
    ) -> Result<Option<StoredFreeze>, StoreError> {
        records::insert_freeze(self.conn(), f).await
    }

    /// Ends the freeze called `name` at `at`. `false` when none of that name is in force.
    pub async fn end_freeze(
        &mut self,
        name: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        records::end_freeze(self.conn(), name, by, at).await
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        let cards: Vec<ChangeId> = std::mem::take(&mut self.cards).into_iter().collect();
        if let (Some(at), false) = (self.latest, cards.is_empty()) {
            // A transaction that moved many changes at once (a burst of release starts, a
            // freeze moving bookings, a group of outcomes) lets their cards settle briefly: an
            // update superseded meanwhile (the release finishing) is never sent.
            let due = if cards.len() > 1 {
                at + CARD_SETTLE
            } else {
                at
            };
            outbox::queue_card_updates(self.conn(), &cards, at, due).await?;
        }
        // The first commit of `applying` work records its key; if the key is there already,
        // the work took effect before (a replay, another replica) and this is rolled back.
        let unmarked = APPLYING
            .try_with(|a| (!a.marked.get()).then(|| a.key.clone()))
            .ok()
            .flatten();
        if let Some(key) = unmarked {
            let at = self.latest.unwrap_or_default();
            if !self.mark_delivery_applied(&key, at).await? {
                self.tx.rollback().await?;
                return Err(StoreError::AlreadyApplied(key));
            }
            let _ = APPLYING.try_with(|a| a.marked.set(true));
        }
        self.tx.commit().await?;
        Ok(())
    }

    /// Discards the transaction (dropping it does the same, without waiting).
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}
