-- changebot schema, version 7 (sqlite): leases on singleton work.
-- Keep column-for-column identical to the other backend's 0007_leases.sql.

-- A lease names work exactly one process may do at a time (the Discord gateway connection):
-- its holder renews it; when the holder stops renewing (it died), another takes it over once
-- `until` has passed.
CREATE TABLE leases (
    name   TEXT    NOT NULL PRIMARY KEY,
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL
);

-- CI reports, protection rule requests and deployment statuses find changes by commit.
CREATE INDEX changes_by_head ON changes (repository, head_sha) WHERE repository IS NOT NULL;
CREATE INDEX changes_by_merge ON changes (repository, merge_sha) WHERE merge_sha IS NOT NULL;
