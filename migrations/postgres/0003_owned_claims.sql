-- changebot schema, version 3 (postgres): owned claims, parking and coalesced notices.
-- Keep column-for-column identical to the other backend's 0003_owned_claims.sql.

-- A claim is owned: claimed_by is the holder's instance id (it renews the lease of everything
-- it holds while it works), claim_token is unique per claim and fences completion writes: a
-- write succeeds only while the row still carries the writer's token.
ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
ALTER TABLE jobs ADD COLUMN claim_token TEXT;
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claim_token TEXT;
-- The holder whose claim had lapsed when this claim took the item over (NULL: a fresh claim).
ALTER TABLE outbox ADD COLUMN taken_from TEXT;
-- The change a notice or deployment call is about (NULL: digests and other general notices).
ALTER TABLE outbox ADD COLUMN change_id BIGINT;
-- Notices on the same topic supersede each other: only the newest pending one is posted.
ALTER TABLE outbox ADD COLUMN topic TEXT;
-- For the notice that announces a parked item: that item (so its own parking is not announced).
ALTER TABLE outbox ADD COLUMN parked_item BIGINT;

-- Items that gave up before this version are parked (state 'parked': retried only by a person).
UPDATE outbox SET state = 'parked' WHERE state = 'dead';

CREATE INDEX jobs_held_by ON jobs (claimed_by) WHERE state = 'pending';
CREATE INDEX outbox_held_by ON outbox (claimed_by) WHERE state = 'pending';
CREATE INDEX outbox_by_change ON outbox (change_id, id);
CREATE INDEX outbox_pending_topic ON outbox (topic) WHERE state = 'pending';
CREATE INDEX outbox_parked ON outbox (id) WHERE state = 'parked';
