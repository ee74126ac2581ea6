-- changebot schema, version 6 (sqlite): GitHub evidence and gates.
-- Keep column-for-column identical to the other backend's 0006_github_gates.sql.

-- What CI reported on a commit: one row per check run name, check suite app or commit status
-- context; the latest report (by GitHub's own timestamp) stands. A policy's `checks` are
-- looked up here for the change's head commit, so a new push starts with none.
CREATE TABLE check_reports (
    repository  TEXT    NOT NULL,
    sha         TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,   -- pending | passed | failed
    detail      TEXT    NOT NULL,   -- GitHub's word: success, failure, timed_out, in_progress, …
    reported_at INTEGER NOT NULL,   -- when GitHub says it happened
    PRIMARY KEY (repository, sha, name)
);

-- Deployment protection rule requests: GitHub asks whether a workflow run may deploy to an
-- environment; changebot answers once through the callback URL, now or when the window opens.
-- One row per (callback URL, environment): a re-run of the same run asks again on the same row.
CREATE TABLE protection_requests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    callback_url    TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    repository      TEXT    NOT NULL,
    sha             TEXT    NOT NULL,
    pr_number       INTEGER,
    installation_id INTEGER,
    change_id       INTEGER REFERENCES changes (id),
    state           TEXT    NOT NULL,   -- waiting | answered
    answer          TEXT,               -- approved | rejected
    comment         TEXT,
    requested_at    INTEGER NOT NULL,
    answered_at     INTEGER,
    UNIQUE (callback_url, environment)
);
CREATE INDEX protection_requests_waiting ON protection_requests (change_id) WHERE state = 'waiting';
CREATE INDEX protection_requests_by_sha ON protection_requests (repository, sha);

-- GitHub deliveries whose commands were applied (issue comments), so a delivery processed
-- again after a crash never runs its commands twice.
CREATE TABLE applied_deliveries (
    delivery_id TEXT    NOT NULL PRIMARY KEY,
    applied_at  INTEGER NOT NULL
);

-- The commit a merged pull request became on its base branch: deployments from the base
-- branch (and their protection rule requests) name it, not the PR's head.
ALTER TABLE changes ADD COLUMN merge_sha TEXT;
