//! Jobs and deployments: the durable side of releases (the outbox is in `outbox.rs`, claims
//! in `claims.rs`).

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use super::claims::{ClaimRequest, Table};
use super::rows::{int, opt_int, opt_text, opt_time, text, time, word};
use super::{Store, StoreError, Tx, to_millis};
use crate::domain::change::word_enum;
use crate::domain::release::{Deployment, DeploymentStatus};
use crate::domain::{ChangeId, DeploymentId};

word_enum!(
    /// What a job does when it falls due.
    JobKind, "job kind" {
    ReleaseStart => "release_start",
    Reminder => "reminder",
    DeploymentTimeout => "deployment_timeout",
    Announcement => "announcement",
});

pub use super::outbox::{NewOutbox, OutboxItem, OutboxKind};

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub change: Option<ChangeId>,
    pub deployment: Option<DeploymentId>,
    pub name: Option<String>,
    pub due_at: DateTime<Utc>,
    /// Claims so far, this one included.
    pub attempts: i64,
    /// The token of the claim that returned this job (fences its completion).
    pub claim_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub kind: JobKind,
    pub change: Option<ChangeId>,
    pub deployment: Option<DeploymentId>,
    pub name: Option<String>,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    pub change: ChangeId,
    pub dry_run: bool,
    pub requested_by: String,
    pub reason: String,
    pub started_at: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseCounts {
    pub jobs_due: i64,
    pub jobs_late: i64,
    pub outbox_backlog: i64,
    /// Outbox items that kept failing and wait for a person (`release retry`).
    pub outbox_parked: i64,
    pub deployments: Vec<(DeploymentStatus, i64)>,
}

const JOB_COLUMNS: &str = "id, kind, change_id, deployment_id, name, due_at, attempts, claim_token";
pub(super) const DEPLOYMENT_COLUMNS: &str = "id, change_id, status, dry_run, attempts, requested_by, reason, \
     started_at, deadline_at, finished_at, log_url, message";

fn job_from_row(row: &AnyRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: int(row, "id")?,
        kind: word(row, "kind")?,
        change: opt_int(row, "change_id")?.map(ChangeId),
        deployment: opt_int(row, "deployment_id")?.map(DeploymentId),
        name: opt_text(row, "name")?,
        due_at: time(row, "due_at")?,
        attempts: int(row, "attempts")?,
        claim_token: opt_text(row, "claim_token")?,
    })
}

pub(super) fn deployment_from_row(row: &AnyRow) -> Result<Deployment, StoreError> {
    Ok(Deployment {
        id: DeploymentId(int(row, "id")?),
        change: ChangeId(int(row, "change_id")?),
        status: word(row, "status")?,
        dry_run: int(row, "dry_run")? != 0,
        attempts: int(row, "attempts")?,
        requested_by: text(row, "requested_by")?,
        reason: text(row, "reason")?,
        started_at: time(row, "started_at")?,
        deadline_at: time(row, "deadline_at")?,
        finished_at: opt_time(row, "finished_at")?,
        log_url: opt_text(row, "log_url")?,
        message: opt_text(row, "message")?,
    })
}

impl Store {
    /// Claims up to `req.limit` due jobs, in due order.
    pub async fn claim_jobs(&self, req: ClaimRequest<'_>) -> Result<Vec<Job>, StoreError> {
        let mut jobs = self
            .claim(Table::Jobs, JOB_COLUMNS, job_from_row, req)
            .await?;
        jobs.sort_by_key(|j| (j.due_at, j.id));
        Ok(jobs)
    }

    /// When the next pending job falls due, if any.
    pub async fn next_job_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let due: Option<i64> =
            sqlx::query_scalar("SELECT MIN(due_at) FROM jobs WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(due.and_then(DateTime::from_timestamp_millis))
    }

    /// Every deployment of a change, oldest first.
    pub async fn deployments(&self, change: ChangeId) -> Result<Vec<Deployment>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        deployments_of(&mut conn, change).await
    }

    /// Several deployments at once (one query), for the dispatcher.
    pub async fn deployments_by_id(
        &self,
        ids: &[DeploymentId],
    ) -> Result<Vec<Deployment>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
            let sql = format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id IN ({})",
                list.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.0);
            }
            let rows = query.fetch_all(&self.pool).await?;
            for row in &rows {
                out.push(deployment_from_row(row)?);
            }
        }
        Ok(out)
    }

    /// One deployment.
    pub async fn deployment(&self, id: DeploymentId) -> Result<Option<Deployment>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        deployment_by_id(&mut conn, id, "").await
    }

    /// Counts for `/metrics`: due and late jobs, outbox backlog, deployments by status.
    pub async fn counts(
        &self,
        now: DateTime<Utc>,
        late_after: chrono::Duration,
    ) -> Result<ReleaseCounts, StoreError> {
        let n = to_millis(now);
        let due: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state = 'pending' AND due_at <= $1",
        )
        .bind(n)
        .fetch_one(&self.pool)
        .await?;
        let late: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state = 'pending' AND due_at <= $1",
        )
        .bind(to_millis(now - late_after))
        .fetch_one(&self.pool)
        .await?;
        let backlog: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        let parked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'parked'")
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM deployments GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let deployments = rows
            .iter()
            .map(|r| Ok((word(r, "status")?, int(r, "n")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(ReleaseCounts {
            jobs_due: due,
            jobs_late: late,
            outbox_backlog: backlog,
            outbox_parked: parked,
            deployments,
        })
    }
}

async fn deployments_of(
    conn: &mut AnyConnection,
    change: ChangeId,
) -> Result<Vec<Deployment>, StoreError> {
    let sql =
        format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE change_id = $1 ORDER BY id");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(change.0)
        .fetch_all(conn)
        .await?;
    rows.iter().map(deployment_from_row).collect()
}

async fn deployment_by_id(
    conn: &mut AnyConnection,
    id: DeploymentId,
    lock: &str,
) -> Result<Option<Deployment>, StoreError> {
    let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = $1{lock}");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(deployment_from_row).transpose()
}

impl Tx {
    fn for_update(&self) -> &'static str {
        match self.lock() {
            super::changes::Lock::ForUpdate => " FOR UPDATE",
            super::changes::Lock::None => "",
        }
    }

    /// Adds a job; `false` when an identical announcement occurrence already exists.
    pub async fn insert_job(
        &mut self,
        job: &NewJob,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO jobs (kind, change_id, deployment_id, name, due_at, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT DO NOTHING",
        )
        .bind(job.kind.as_str())
        .bind(job.change.map(|c| c.0))
        .bind(job.deployment.map(|d| d.0))
        .bind(job.name.clone())
        .bind(to_millis(job.due_at))
        .bind(to_millis(now))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Cancels a change's pending release starts and reminders.
    pub async fn cancel_change_jobs(
        &mut self,
        change: ChangeId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'canceled', finished_at = $2 \
             WHERE change_id = $1 AND state = 'pending' AND kind IN ('release_start', 'reminder')",
        )
        .bind(change.0)
        .bind(to_millis(now))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected())
    }

    /// Marks a claimed job finished (`done` or `canceled`), with an optional note.
    pub async fn finish_job(
        &mut self,
        id: i64,
        state: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET state = $2, last_error = $3, finished_at = $4, claimed_until = NULL, \
             claimed_by = NULL, claim_token = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(note.map(str::to_string))
        .bind(to_millis(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Gives up a claimed job after a failure: it may be claimed again (by anyone) at `at`.
    pub async fn retry_job(
        &mut self,
        id: i64,
        at: DateTime<Utc>,
        note: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET claimed_until = $2, last_error = $3, claimed_by = NULL, \
             claim_token = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(to_millis(at))
        .bind(note.to_string())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Whether a pending announcement job exists for `name`.
    pub async fn announcement_pending(&mut self, name: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'announcement' AND name = $1 AND state = 'pending'")
            .bind(name.to_string())
            .fetch_one(self.conn())
            .await?;
        Ok(n > 0)
    }

    pub async fn insert_deployment(&mut self, d: &NewDeployment) -> Result<Deployment, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO deployments (change_id, status, dry_run, attempts, requested_by, reason, started_at, deadline_at) \
             VALUES ($1, 'pending', $2, 0, $3, $4, $5, $6) RETURNING id",
        )
        .bind(d.change.0)
        .bind(i64::from(d.dry_run))
        .bind(d.requested_by.clone())
        .bind(d.reason.clone())
        .bind(to_millis(d.started_at))
        .bind(to_millis(d.deadline_at))
        .fetch_one(self.conn())
        .await?;
        Ok(Deployment {
            id: DeploymentId(id),
            change: d.change,
            status: DeploymentStatus::Pending,
            dry_run: d.dry_run,
            attempts: 0,
            requested_by: d.requested_by.clone(),
            reason: d.reason.clone(),
            started_at: super::truncate_millis(d.started_at),
            deadline_at: super::truncate_millis(d.deadline_at),
            finished_at: None,
            log_url: None,
            message: None,
        })
    }

    /// Reads a deployment (locked on PostgreSQL until commit).
    pub async fn deployment(&mut self, id: DeploymentId) -> Result<Option<Deployment>, StoreError> {
        let lock = self.for_update();
        deployment_by_id(self.conn(), id, lock).await
    }

    pub async fn deployments(&mut self, change: ChangeId) -> Result<Vec<Deployment>, StoreError> {
        deployments_of(self.conn(), change).await
    }

    pub async fn update_deployment(&mut self, d: &Deployment) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deployments SET status = $2, attempts = $3, finished_at = $4, log_url = $5, message = $6 WHERE id = $1",
        )
        .bind(d.id.0)
        .bind(d.status.as_str())
        .bind(d.attempts)
        .bind(d.finished_at.map(to_millis))
        .bind(d.log_url.clone())
        .bind(d.message.clone())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Marks many claimed jobs done in one statement.
    pub async fn finish_jobs_many(
        &mut self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let set = "UPDATE jobs SET state = 'done', finished_at = $1, claimed_until = NULL, \
                   claimed_by = NULL, claim_token = NULL";
        self.update_many(set, ids, now).await
    }
}

impl Tx {
    /// Scheduled changes that do not have exactly one pending `release_start` job, due at their
    /// slot's start: `(change, pending start jobs, of which at the slot)`.
    pub async fn scheduled_without_one_start(
        &mut self,
    ) -> Result<Vec<(ChangeId, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, pending, at_slot FROM (SELECT c.id, \
               (SELECT COUNT(*) FROM jobs j WHERE j.change_id = c.id AND j.state = 'pending' \
                  AND j.kind = 'release_start') AS pending, \
               (SELECT COUNT(*) FROM jobs j WHERE j.change_id = c.id AND j.state = 'pending' \
                  AND j.kind = 'release_start' AND j.due_at = c.slot_start) AS at_slot \
             FROM changes c WHERE c.state = 'scheduled') counted \
             WHERE pending <> 1 OR at_slot <> 1 ORDER BY id",
        )
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    ChangeId(int(r, "id")?),
                    int(r, "pending")?,
                    int(r, "at_slot")?,
                ))
            })
            .collect()
    }
}
