-- changebot schema, version 5 (postgres): the GitHub webhook inbox.
-- Keep column-for-column identical to the other backend's 0005_github_inbox.sql.

-- Every GitHub delivery is stored here before it is acknowledged, once per X-GitHub-Delivery,
-- then processed through the workflow. On SQLite the inbox lives in a database file of its
-- own next to the main one (so acknowledging never waits for the workflow's writes); there the
-- main file holds this table unused.
CREATE TABLE github_deliveries (
    id            BIGSERIAL PRIMARY KEY,
    delivery_id   TEXT    NOT NULL UNIQUE,
    event         TEXT    NOT NULL,
    summary       TEXT    NOT NULL,   -- what changebot read from it (JSON), what is processed
    received_at   BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    state         TEXT    NOT NULL,   -- pending | done | failed
    attempts      BIGINT NOT NULL DEFAULT 0,
    claimed_until BIGINT,
    claimed_by    TEXT,
    claim_token   TEXT,
    last_error    TEXT,
    done_at       BIGINT
);
CREATE INDEX github_deliveries_due ON github_deliveries (due_at) WHERE state = 'pending';

-- The payloads as received, apart: claiming and finishing a delivery then rewrites only its
-- small row, never the (often tens of kilobytes) payload.
CREATE TABLE github_payloads (
    delivery_id TEXT NOT NULL PRIMARY KEY,
    body        TEXT NOT NULL
);
