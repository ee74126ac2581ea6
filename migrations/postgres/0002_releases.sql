-- changebot schema, version 2 (PostgreSQL): releases. Durable jobs, deployments and the outbox.
-- Same conventions as 0001 (BIGINT millis, TEXT words); keep column-for-column identical to
-- migrations/sqlite/0002_releases.sql.

-- Timed work: release starts, T-60 reminders, deployment timeouts, announcements.
-- A job is claimed by setting claimed_until (a lease); a claim that outlives its lease (the
-- process died) is claimed again. Finished jobs stay as a record.
CREATE TABLE jobs (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT    NOT NULL,   -- release_start | reminder | deployment_timeout | announcement
    change_id     BIGINT  REFERENCES changes (id),
    deployment_id BIGINT,
    name          TEXT,               -- announcement name
    due_at        BIGINT  NOT NULL,
    state         TEXT    NOT NULL,   -- pending | done | canceled
    claimed_until BIGINT,
    attempts      BIGINT  NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    BIGINT  NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX jobs_due ON jobs (due_at) WHERE state = 'pending';
CREATE INDEX jobs_pending_by_change ON jobs (change_id) WHERE state = 'pending';
-- One announcement job per occurrence, whichever replica books it.
CREATE UNIQUE INDEX jobs_announcement_once ON jobs (name, due_at) WHERE kind = 'announcement';

-- One row per deployment (DEP-N) of a change.
CREATE TABLE deployments (
    id           BIGSERIAL PRIMARY KEY,
    change_id    BIGINT  NOT NULL REFERENCES changes (id),
    status       TEXT    NOT NULL,    -- pending | in_progress | succeeded | failed
    dry_run      BIGINT  NOT NULL,    -- 1: the target has no url; nothing is called
    attempts     BIGINT  NOT NULL DEFAULT 0,
    requested_by TEXT    NOT NULL,
    reason       TEXT    NOT NULL,    -- "slot" or the break-glass reason
    started_at   BIGINT  NOT NULL,
    deadline_at  BIGINT  NOT NULL,    -- started_at + the target's timeout
    finished_at  BIGINT,
    log_url      TEXT,
    message      TEXT
);
CREATE INDEX deployments_by_change ON deployments (change_id, id);
-- At most one unfinished deployment per change.
CREATE UNIQUE INDEX deployments_one_running ON deployments (change_id)
    WHERE status IN ('pending', 'in_progress');

-- Side effects written in the same transaction as the state change that caused them, delivered
-- later with retries: deployment calls and chat messages.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT    NOT NULL,   -- deploy | chat
    deployment_id BIGINT  REFERENCES deployments (id),
    channel       TEXT,
    body          TEXT    NOT NULL,   -- deploy: unused; chat: the message
    due_at        BIGINT  NOT NULL,
    state         TEXT    NOT NULL,   -- pending | done | dead
    attempts      BIGINT  NOT NULL DEFAULT 0,
    claimed_until BIGINT,
    last_error    TEXT,
    created_at    BIGINT  NOT NULL,
    done_at       BIGINT
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE state = 'pending';
