-- changebot schema, version 1 (SQLite).
--
-- Conventions shared with migrations/postgres (one set of queries serves both through sqlx's Any
-- driver, so the two schemas must stay column-for-column identical):
--   * timestamps are INTEGER unix milliseconds (UTC);
--   * enums are TEXT words (the domain types' `as_str()`), without CHECK lists so that a later
--     migration can add a word without rebuilding the table;
--   * only INTEGER and TEXT column types: the Any driver cannot map SQLite's BOOLEAN/DATETIME.
-- Later schema changes go in new files (0002_…); never edit an applied migration.

CREATE TABLE changes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    title          TEXT    NOT NULL,
    description    TEXT    NOT NULL,
    service        TEXT    NOT NULL,
    environment    TEXT    NOT NULL,
    change_type    TEXT    NOT NULL,
    risk           TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    close_code     TEXT,
    requester      TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    repository     TEXT,
    pr_number      INTEGER,
    head_sha       TEXT,
    pr_merged      INTEGER NOT NULL DEFAULT 0,
    duration_secs  INTEGER NOT NULL,
    slot_start     INTEGER,
    slot_end       INTEGER,
    approval_round INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CHECK ((slot_start IS NULL) = (slot_end IS NULL)),
    CHECK ((repository IS NULL) = (pr_number IS NULL) AND (pr_number IS NULL) = (head_sha IS NULL))
);

-- `change list` filters (newest first, keyset paging on id).
CREATE INDEX changes_by_service_state ON changes (service, state, id DESC);
CREATE INDEX changes_by_service ON changes (service, id DESC);
CREATE INDEX changes_by_state ON changes (state, id DESC);
CREATE INDEX changes_by_requester ON changes (requester, id DESC);
-- A pull request's change.
CREATE INDEX changes_by_pr ON changes (repository, pr_number, id DESC) WHERE repository IS NOT NULL;
-- Booked slots on one service/environment (conflicts). Queries must repeat the literal
-- `state IN ('scheduled', 'implement')` for the partial index to apply. The calendar (all
-- bookings in a time range) reads the same few rows through changes_by_state.
CREATE INDEX changes_booked ON changes (service, environment, slot_end)
    WHERE state IN ('scheduled', 'implement');

CREATE TABLE votes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id INTEGER NOT NULL REFERENCES changes (id),
    person    TEXT    NOT NULL,
    verdict   TEXT    NOT NULL,
    comment   TEXT    NOT NULL,
    round     INTEGER NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX votes_by_change ON votes (change_id, id);

CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id INTEGER REFERENCES changes (id),
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    surface   TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    detail    TEXT    NOT NULL
);
CREATE INDEX audit_by_change ON audit (change_id, id);

-- The audit trail and the votes are append-only (DESIGN §4).
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only (UPDATE on audit)');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only (DELETE on audit)');
END;
CREATE TRIGGER votes_no_update BEFORE UPDATE ON votes
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only (UPDATE on votes)');
END;
CREATE TRIGGER votes_no_delete BEFORE DELETE ON votes
BEGIN
    SELECT RAISE(ABORT, 'audit trail is append-only (DELETE on votes)');
END;

-- Freezes started from chat (config freezes live in the config file).
CREATE TABLE freezes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    start_at   INTEGER NOT NULL,
    end_at     INTEGER NOT NULL,
    services   TEXT    NOT NULL, -- JSON array of service names; [] means every service
    reason     TEXT    NOT NULL,
    started_by TEXT    NOT NULL,
    ended_at   INTEGER,
    ended_by   TEXT,
    CHECK (end_at > start_at)
);
-- A name is unique among freezes not yet ended.
CREATE UNIQUE INDEX freezes_open_name ON freezes (name) WHERE ended_at IS NULL;
CREATE INDEX freezes_open_by_end ON freezes (end_at) WHERE ended_at IS NULL;
