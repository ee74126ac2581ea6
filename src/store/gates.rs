//! GitHub evidence and gates: CI reports per commit, deployment protection rule requests, and
//! the deliveries whose commands were applied.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::rows::{int, opt_int, opt_text, text, time, word};
use super::{Store, StoreError, Tx, to_millis};
use crate::domain::change::word_enum;
use crate::domain::policy::{CheckOutcome, CheckReport};
use crate::domain::{Change, ChangeId};

word_enum!(
    /// Where a deployment protection rule request stands.
    GateRequestState, "protection request state" {
    Waiting => "waiting",
    Answered => "answered",
});

/// A deployment protection rule request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRequest {
    pub id: i64,
    pub callback_url: String,
    pub environment: String,
    pub repository: String,
    pub sha: String,
    pub pr_number: Option<i64>,
    pub installation_id: Option<i64>,
    pub change: Option<ChangeId>,
    pub state: GateRequestState,
    /// `approved` or `rejected`, once answered.
    pub answer: Option<String>,
    pub comment: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
}

/// A new (or repeated) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGateRequest<'a> {
    pub callback_url: &'a str,
    pub environment: &'a str,
    pub repository: &'a str,
    pub sha: &'a str,
    pub pr_number: Option<i64>,
    pub installation_id: Option<i64>,
    pub change: Option<ChangeId>,
    /// When GitHub asked (the delivery's arrival): a request asked again after its answer is
    /// a re-run and waits for a new answer; the same request replayed is not.
    pub at: DateTime<Utc>,
    /// Only store it when it is unknown (reconciliation): never reopen a stored request.
    pub only_if_new: bool,
}

const GATE_COLUMNS: &str = "id, callback_url, environment, repository, sha, pr_number, \
     installation_id, change_id, state, answer, comment, requested_at, answered_at";

fn gate_from_row(row: &AnyRow) -> Result<GateRequest, StoreError> {
    Ok(GateRequest {
        id: int(row, "id")?,
        callback_url: text(row, "callback_url")?,
        environment: text(row, "environment")?,
        repository: text(row, "repository")?,
        sha: text(row, "sha")?,
        pr_number: opt_int(row, "pr_number")?,
        installation_id: opt_int(row, "installation_id")?,
        change: opt_int(row, "change_id")?.map(ChangeId),
        state: word(row, "state")?,
        answer: opt_text(row, "answer")?,
        comment: opt_text(row, "comment")?,
        requested_at: time(row, "requested_at")?,
        answered_at: super::rows::opt_time(row, "answered_at")?,
    })
}

fn outcome_word(o: CheckOutcome) -> &'static str {
    o.as_str()
}

fn outcome_of(word: &str) -> Result<CheckOutcome, StoreError> {
    match word {
        "pending" => Ok(CheckOutcome::Pending),
        "passed" => Ok(CheckOutcome::Passed),
        "failed" => Ok(CheckOutcome::Failed),
        other => Err(StoreError::Corrupt(format!(
            "check_reports.outcome `{other}` is not pending, passed or failed"
        ))),
    }
}

async fn check_reports(
    conn: &mut AnyConnection,
    repository: &str,
    sha: &str,
) -> Result<Vec<CheckReport>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, outcome, detail FROM check_reports WHERE repository = $1 AND sha = $2 \
         ORDER BY name",
    )
    .bind(repository)
    .bind(sha)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CheckReport {
                name: text(row, "name")?,
                outcome: outcome_of(&text(row, "outcome")?)?,
                detail: text(row, "detail")?,
            })
        })
        .collect()
}

async fn gate_rule_seen(
    conn: &mut AnyConnection,
    repository: &str,
    environment: &str,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT 1 AS one FROM protection_requests WHERE repository = $1 AND environment = $2 \
         LIMIT 1",
    )
    .bind(repository)
    .bind(environment)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

impl Store {
    /// What CI reported on `sha` in `repository`, by check name.
    pub async fn check_reports(
        &self,
        repository: &str,
        sha: &str,
    ) -> Result<Vec<CheckReport>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        check_reports(&mut conn, repository, sha).await
    }

    /// Up to `limit` PR changes not yet released with an id above `after`, oldest first.
    pub async fn open_pull_request_changes(
        &self,
        after: ChangeId,
        limit: i64,
    ) -> Result<Vec<Change>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        super::changes::open_prs(&mut conn, after.0, limit).await
    }

    /// Whether a protection rule request for this run's callback and environment is stored.
    pub async fn gate_request_known(
        &self,
        callback_url: &str,
        environment: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM protection_requests WHERE callback_url = $1 AND environment = $2",
        )
        .bind(callback_url)
        .bind(environment)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Whether a protection rule ever asked about `environment` of `repository`.
    pub async fn gate_rule_seen(
        &self,
        repository: &str,
        environment: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        gate_rule_seen(&mut conn, repository, environment).await
    }

    /// The changes with protection rule requests waiting for an answer.
    pub async fn waiting_gate_changes(&self) -> Result<Vec<ChangeId>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT change_id FROM protection_requests \
             WHERE state = 'waiting' AND change_id IS NOT NULL ORDER BY change_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| int(r, "change_id").map(ChangeId))
            .collect()
    }

    /// Whether the commands of GitHub delivery `delivery_id` were applied.
    pub async fn delivery_applied(&self, delivery_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM applied_deliveries WHERE delivery_id = $1")
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}

impl Tx {
    /// What CI reported on `sha`, inside this transaction.
    pub async fn check_reports(
        &mut self,
        repository: &str,
        sha: &str,
    ) -> Result<Vec<CheckReport>, StoreError> {
        check_reports(self.conn(), repository, sha).await
    }

    /// Records a CI report unless a later one for the same check is already stored. Returns
    /// whether the stored outcome changed.
    pub async fn record_check(
        &mut self,
        repository: &str,
        sha: &str,
        report: &CheckReport,
        reported_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let before = sqlx::query(
            "SELECT outcome, detail, reported_at FROM check_reports \
             WHERE repository = $1 AND sha = $2 AND name = $3",
        )
        .bind(repository)
        .bind(sha)
        .bind(report.name.as_str())
        .fetch_optional(self.conn())
        .await?;
        if let Some(row) = &before {
            let stored_at = time(row, "reported_at")?;
            if stored_at > reported_at {
                return Ok(false); // an older report arriving late
            }
            // GitHub's times are to the second: within one, a result is never replaced by
            // "still running".
            if stored_at == reported_at
                && report.outcome == CheckOutcome::Pending
                && text(row, "outcome")? != outcome_word(CheckOutcome::Pending)
            {
                return Ok(false);
            }
            if text(row, "outcome")? == outcome_word(report.outcome)
                && text(row, "detail")? == report.detail
            {
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO check_reports (repository, sha, name, outcome, detail, reported_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (repository, sha, name) DO UPDATE SET outcome = excluded.outcome, \
             detail = excluded.detail, reported_at = excluded.reported_at",
        )
        .bind(repository)
        .bind(sha)
        .bind(report.name.as_str())
        .bind(outcome_word(report.outcome))
        .bind(report.detail.as_str())
        .bind(to_millis(reported_at))
        .execute(self.conn())
        .await?;
        Ok(before
            .as_ref()
            .map(|row| text(row, "outcome"))
            .transpose()?
            .is_none_or(|o| o != outcome_word(report.outcome)))
    }

    /// Records the commit a merged pull request became (deployments name it).
    pub async fn set_merge_sha(&mut self, id: ChangeId, sha: &str) -> Result<(), StoreError> {
        super::changes::set_merge_sha(self.conn(), id, sha).await
    }

    /// Marks a change's cards for an update at commit (something they show changed without
    /// the change record itself changing, such as a check on its head commit).
    pub fn touch_card(&mut self, id: ChangeId, at: DateTime<Utc>) {
        self.changed(id, at);
    }

    /// The non-terminal changes whose pull request's head (or merge commit) is `sha`, newest
    /// first.
    pub async fn changes_at_head(
        &mut self,
        repository: &str,
        sha: &str,
    ) -> Result<Vec<Change>, StoreError> {
        super::changes::by_head(self.conn(), repository, sha).await
    }

    /// Stores a protection rule request. Returns it and whether it is fresh: newly stored, or
    /// asked again after its answer (a re-run: it waits for a new answer). A replay of a
    /// request already stored (the same delivery processed again, or reconciliation finding a
    /// stored one) is not fresh and changes nothing.
    pub async fn upsert_gate_request(
        &mut self,
        r: &NewGateRequest<'_>,
    ) -> Result<(GateRequest, bool), StoreError> {
        let lock = match self.lock() {
            super::changes::Lock::ForUpdate => " FOR UPDATE",
            super::changes::Lock::None => "",
        };
        let select = format!(
            "SELECT {GATE_COLUMNS} FROM protection_requests \
             WHERE callback_url = $1 AND environment = $2{lock}"
        );
        let existing = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
            .bind(r.callback_url)
            .bind(r.environment)
            .fetch_optional(self.conn())
            .await?
            .as_ref()
            .map(gate_from_row)
            .transpose()?;
        let fresh = match &existing {
            None => {
                let done = sqlx::query(
                    "INSERT INTO protection_requests (callback_url, environment, repository, sha, \
                     pr_number, installation_id, change_id, state, requested_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'waiting', $8) \
                     ON CONFLICT (callback_url, environment) DO NOTHING",
                )
                .bind(r.callback_url)
                .bind(r.environment)
                .bind(r.repository)
                .bind(r.sha)
                .bind(r.pr_number)
                .bind(r.installation_id)
                .bind(r.change.map(|c| c.0))
                .bind(to_millis(r.at))
                .execute(self.conn())
                .await?;
                done.rows_affected() == 1
            }
            Some(old)
                if !r.only_if_new
                    && old.state == GateRequestState::Answered
                    && old.answered_at.is_some_and(|a| a < r.at) =>
            {
                sqlx::query(
                    "UPDATE protection_requests SET sha = $2, pr_number = $3, \
                     installation_id = $4, change_id = $5, state = 'waiting', answer = NULL, \
                     comment = NULL, requested_at = $6, answered_at = NULL WHERE id = $1",
                )
                .bind(old.id)
                .bind(r.sha)
                .bind(r.pr_number)
                .bind(r.installation_id)
                .bind(r.change.map(|c| c.0))
                .bind(to_millis(r.at))
                .execute(self.conn())
                .await?;
                true
            }
            Some(_) => false,
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(select))
            .bind(r.callback_url)
            .bind(r.environment)
            .fetch_one(self.conn())
            .await?;
        Ok((gate_from_row(&row)?, fresh))
    }

    /// Waiting protection rule requests of `change`.
    pub async fn waiting_gate_requests(
        &mut self,
        change: ChangeId,
    ) -> Result<Vec<GateRequest>, StoreError> {
        let sql = format!(
            "SELECT {GATE_COLUMNS} FROM protection_requests \
             WHERE change_id = $1 AND state = 'waiting' ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(change.0)
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(gate_from_row).collect()
    }

    /// Protection rule requests for `sha` in `repository` and `environment` (any state).
    pub async fn gate_requests_for(
        &mut self,
        repository: &str,
        sha: &str,
        environment: &str,
    ) -> Result<Vec<GateRequest>, StoreError> {
        let sql = format!(
            "SELECT {GATE_COLUMNS} FROM protection_requests \
             WHERE repository = $1 AND sha = $2 AND environment = $3 ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repository)
            .bind(sha)
            .bind(environment)
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(gate_from_row).collect()
    }

    /// Whether a protection rule ever asked about `environment` of `repository` (the rule is
    /// installed there).
    pub async fn gate_rule_seen(
        &mut self,
        repository: &str,
        environment: &str,
    ) -> Result<bool, StoreError> {
        gate_rule_seen(self.conn(), repository, environment).await
    }

    /// Marks a waiting request answered. `false` when it was answered already (nothing to
    /// send again).
    pub async fn answer_gate_request(
        &mut self,
        id: i64,
        answer: &str,
        comment: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE protection_requests SET state = 'answered', answer = $2, comment = $3, \
             answered_at = $4 WHERE id = $1 AND state = 'waiting'",
        )
        .bind(id)
        .bind(answer)
        .bind(comment)
        .bind(to_millis(at))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that GitHub delivery `delivery_id`'s commands are applied. `false` when they
    /// already were.
    pub async fn mark_delivery_applied(
        &mut self,
        delivery_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO applied_deliveries (delivery_id, applied_at) VALUES ($1, $2) \
             ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery_id)
        .bind(to_millis(at))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
