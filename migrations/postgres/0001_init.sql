-- changebot schema, version 1 (PostgreSQL).
--
-- Conventions shared with migrations/sqlite (one set of queries serves both through sqlx's Any
-- driver, so the two schemas must stay column-for-column identical):
--   * timestamps are BIGINT unix milliseconds (UTC);
--   * enums are TEXT words (the domain types' `as_str()`), without CHECK lists so that a later
--     migration can add a word cheaply;
--   * only BIGINT, TEXT and BOOLEAN column types (what the Any driver maps).
-- Later schema changes go in new files (0002_…); never edit an applied migration.

CREATE TABLE changes (
    id             BIGSERIAL PRIMARY KEY,
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
    pr_number      BIGINT,
    head_sha       TEXT,
    pr_merged      BOOLEAN NOT NULL DEFAULT FALSE,
    duration_secs  BIGINT  NOT NULL,
    slot_start     BIGINT,
    slot_end       BIGINT,
    approval_round BIGINT  NOT NULL DEFAULT 0,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
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
-- Booked slots on one service/environment (conflicts). Queries repeat the literal
-- `state IN ('scheduled', 'implement')` so the partial index applies. The calendar (all
-- bookings in a time range) reads the same few rows through changes_by_state.
CREATE INDEX changes_booked ON changes (service, environment, slot_end)
    WHERE state IN ('scheduled', 'implement');

CREATE TABLE votes (
    id        BIGSERIAL PRIMARY KEY,
    change_id BIGINT NOT NULL REFERENCES changes (id),
    person    TEXT   NOT NULL,
    verdict   TEXT   NOT NULL,
    comment   TEXT   NOT NULL,
    round     BIGINT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX votes_by_change ON votes (change_id, id);

CREATE TABLE audit (
    id        BIGSERIAL PRIMARY KEY,
    change_id BIGINT REFERENCES changes (id),
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    surface   TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    detail    TEXT   NOT NULL
);
CREATE INDEX audit_by_change ON audit (change_id, id);

-- The audit trail and the votes are append-only (DESIGN §4).
CREATE FUNCTION changebot_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit trail is append-only (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION changebot_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION changebot_append_only();
CREATE TRIGGER votes_append_only BEFORE UPDATE OR DELETE ON votes
    FOR EACH ROW EXECUTE FUNCTION changebot_append_only();
CREATE TRIGGER votes_no_truncate BEFORE TRUNCATE ON votes
    FOR EACH STATEMENT EXECUTE FUNCTION changebot_append_only();

-- Freezes started from chat (config freezes live in the config file).
CREATE TABLE freezes (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT   NOT NULL,
    start_at   BIGINT NOT NULL,
    end_at     BIGINT NOT NULL,
    services   TEXT   NOT NULL, -- JSON array of service names; [] means every service
    reason     TEXT   NOT NULL,
    started_by TEXT   NOT NULL,
    ended_at   BIGINT,
    ended_by   TEXT,
    CHECK (end_at > start_at)
);
-- A name is unique among freezes not yet ended.
CREATE UNIQUE INDEX freezes_open_name ON freezes (name) WHERE ended_at IS NULL;
CREATE INDEX freezes_open_by_end ON freezes (end_at) WHERE ended_at IS NULL;
