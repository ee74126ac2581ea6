-- changebot schema, version 3 (sqlite): owned claims, parking and coalesced notices.
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
ALTER TABLE outbox ADD COLUMN change_id INTEGER;
-- Notices on the same topic supersede each other: only the newest pending one is posted.
ALTER TABLE outbox ADD COLUMN topic TEXT;
-- For the notice that announces a parked item: that item (so its own parking is not announced).
ALTER TABLE outbox ADD COLUMN parked_item INTEGER;

-- Items that gave up before this version are parked (state 'parked': retried only by a person).
UPDATE outbox SET state = 'parked' WHERE state = 'dead';

-- Indexes are partial, so queuing an item (the hot path of a burst of releases) maintains
-- only the one it is claimed through.
-- Lease renewal and fencing find rows by their claim token.
CREATE INDEX jobs_by_claim ON jobs (claim_token) WHERE state = 'pending' AND claim_token IS NOT NULL;
CREATE INDEX outbox_by_claim ON outbox (claim_token) WHERE state = 'pending' AND claim_token IS NOT NULL;
-- Claims of one kind (chat notices apart from deployment calls). A claimed outbox item's due_at
-- moves to the end of its lease, so claims never wade through work already in hand. This
-- replaces outbox_due.
CREATE INDEX outbox_due_by_kind ON outbox (kind, due_at) WHERE state = 'pending';
DROP INDEX outbox_due;
-- Superseding: pending notices on a topic.
CREATE INDEX outbox_pending_topic ON outbox (topic) WHERE state = 'pending' AND topic IS NOT NULL;
-- Parked items, per change.
CREATE INDEX outbox_parked ON outbox (change_id, id) WHERE state = 'parked';
