-- changebot schema, version 8 (sqlite): when a pull request's first commit was authored.
-- Keep column-for-column identical to the other backend's 0008_first_commit.sql.

-- Change lead time is measured from the first commit when it is known: backfill reads it from
-- the PR's commits, and GitHub reconciliation fills it in for live PR changes. NULL: unknown
-- (a chat change, or a PR not read back yet).
ALTER TABLE changes ADD COLUMN first_commit_at INTEGER;
