-- changebot schema, version 4 (sqlite): typed side effects and where each change is shown.
-- Keep column-for-column identical to the other backend's 0004_message_refs.sql.

-- Where each change is shown: one message per (surface, place), edited in place as the change
-- moves. surface is the sink that owns the message (chat: the log/console sink; discord;
-- github); place is a channel name or a pull request (owner/repo#42).
CREATE TABLE message_refs (
    change_id   INTEGER NOT NULL REFERENCES changes (id),
    surface     TEXT    NOT NULL,
    place       TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (change_id, surface, place)
);

-- The sink an outbox item goes through: chat (the log/console sink, later Discord) or github.
-- Cards and notices for a PR go to the github sink, with the PR (owner/repo#42) as channel.
ALTER TABLE outbox ADD COLUMN surface TEXT NOT NULL DEFAULT 'chat';

-- Outbox kinds are typed effects now: deploy | notice | card (show a change's card in a
-- place) | card_update (bring that place's card up to date). A notice's body is JSON
-- ({"event": …, "change": …, "text": …}); the plain-text chat rows of older versions become
-- notices.
UPDATE outbox SET kind = 'notice', body = json_object('event', 'info', 'text', body)
    WHERE kind = 'chat';

-- A change's card items, to find the place its cards are shown when queuing an update, and its
-- pending card updates, to replace them.
CREATE INDEX outbox_cards ON outbox (change_id) WHERE kind = 'card';
CREATE INDEX outbox_pending_card_updates ON outbox (change_id, surface, channel)
    WHERE kind = 'card_update' AND state = 'pending';
