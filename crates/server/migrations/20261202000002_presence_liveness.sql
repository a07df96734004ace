-- Liveness from LiveKit presence and exact viewer statistics (issue 16).
-- Same SQL for SQLite and PostgreSQL.

-- The creator's participant as LiveKit last reported it for the open session:
-- its sid, and since when it has been gone (participant_left, all tracks
-- unpublished, or absent at a reconcile). The sweep closes the session with
-- end reason `publisher_lost` once `publisher_lost_at` is older than the grace
-- period; `publisher_lease_until` lets one of several instances claim it.
ALTER TABLE stream_sessions ADD COLUMN publisher_sid TEXT;
ALTER TABLE stream_sessions ADD COLUMN publisher_lost_at BIGINT;
ALTER TABLE stream_sessions ADD COLUMN publisher_lease_until BIGINT;
CREATE INDEX stream_sessions_publisher_lost ON stream_sessions (publisher_lost_at);

-- Viewers present in each LiveKit room, per participant sid, whether or not
-- a session is open (a viewer who joined before go-live counts from go-live
-- on). A session's current count is the number of distinct identities with an
-- open row; the reconcile closes rows LiveKit no longer lists (a participant
-- that vanished with a crashed LiveKit). `updated_at` is the backend's clock
-- when the row was last written, so the reconcile never closes a row written
-- after it asked LiveKit.
CREATE TABLE room_presence (
    room_name TEXT NOT NULL,
    participant_sid TEXT NOT NULL,
    identity TEXT NOT NULL,
    joined_at BIGINT,
    left_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (room_name, participant_sid)
);
CREATE INDEX room_presence_open ON room_presence (room_name, left_at);

-- LiveKit webhook event ids already handled: a redelivered or replayed event
-- changes nothing. Pruned once older than the accepted event age.
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL
);
CREATE INDEX webhook_events_received ON webhook_events (received_at);
