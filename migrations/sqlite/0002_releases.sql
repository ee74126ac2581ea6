-- changebot schema, version 2 (SQLite): releases. Durable jobs, deployments and the outbox.
-- Same conventions as 0001 (INTEGER millis, TEXT words); keep column-for-column identical to
-- migrations/postgres/0002_releases.sql.

-- Timed work: release starts, T-60 reminders, deployment timeouts, announcements.
-- A job is claimed by setting claimed_until (a lease); a claim that outlives its lease (the
-- process died) is claimed again. Finished jobs stay as a record.
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,   -- release_start | reminder | deployment_timeout | announcement
    change_id     INTEGER REFERENCES changes (id),
    deployment_id INTEGER,
    name          TEXT,               -- announcement name
    due_at        INTEGER NOT NULL,
    state         TEXT    NOT NULL,   -- pending | done | canceled
    claimed_until INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX jobs_due ON jobs (due_at) WHERE state = 'pending';
CREATE INDEX jobs_pending_by_change ON jobs (change_id) WHERE state = 'pending';
-- One announcement job per occurrence, whichever replica books it.
CREATE UNIQUE INDEX jobs_announcement_once ON jobs (name, due_at) WHERE kind = 'announcement';

-- One row per deployment (DEP-N) of a change.
CREATE TABLE deployments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id    INTEGER NOT NULL REFERENCES changes (id),
    status       TEXT    NOT NULL,    -- pending | in_progress | succeeded | failed
    dry_run      INTEGER NOT NULL,    -- 1: the target has no url; nothing is called
    attempts     INTEGER NOT NULL DEFAULT 0,
    requested_by TEXT    NOT NULL,
    reason       TEXT    NOT NULL,    -- "slot" or the break-glass reason
    started_at   INTEGER NOT NULL,
    deadline_at  INTEGER NOT NULL,    -- started_at + the target's timeout
    finished_at  INTEGER,
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
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,   -- deploy | chat
    deployment_id INTEGER REFERENCES deployments (id),
    channel       TEXT,
    body          TEXT    NOT NULL,   -- deploy: unused; chat: the message
    due_at        INTEGER NOT NULL,
    state         TEXT    NOT NULL,   -- pending | done | dead
    attempts      INTEGER NOT NULL DEFAULT 0,
    claimed_until INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    done_at       INTEGER
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE state = 'pending';
