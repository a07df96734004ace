-- One migration set for SQLite and PostgreSQL: TEXT ids, BIGINT Unix-epoch
-- milliseconds, BIGINT 0/1 flags (both engines store and return them as
-- 64-bit integers, so sqlx's Any driver decodes them the same way).

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    is_approved BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Login sessions: only the SHA-256 of the bearer token is stored.
CREATE TABLE auth_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);
CREATE INDEX auth_sessions_expiry ON auth_sessions (expires_at);

CREATE TABLE streams (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT,
    thumbnail TEXT,
    is_live BIGINT NOT NULL DEFAULT 0,
    is_chat_enabled BIGINT NOT NULL DEFAULT 1,
    is_chat_delayed BIGINT NOT NULL DEFAULT 0,
    is_chat_followers_only BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX streams_live ON streams (is_live);

-- One row per broadcast (go-live .. end-stream / room_finished).
CREATE TABLE stream_sessions (
    id TEXT PRIMARY KEY,
    stream_id TEXT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    room_name TEXT NOT NULL,
    room_sid TEXT,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT,
    peak_viewers BIGINT NOT NULL DEFAULT 0,
    current_viewers BIGINT NOT NULL DEFAULT 0,
    chat_messages BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX stream_sessions_stream ON stream_sessions (stream_id, started_at);
CREATE INDEX stream_sessions_room ON stream_sessions (room_name, ended_at);
-- At most one open session per stream, whichever instance handles go-live.
CREATE UNIQUE INDEX stream_sessions_open ON stream_sessions (stream_id) WHERE ended_at IS NULL;

-- Viewer presence per session, keyed by LiveKit participant sid, so that a
-- webhook delivered twice or out of order cannot miscount.
CREATE TABLE session_viewers (
    session_id TEXT NOT NULL REFERENCES stream_sessions(id) ON DELETE CASCADE,
    participant_sid TEXT NOT NULL,
    identity TEXT NOT NULL,
    joined_at BIGINT,
    left_at BIGINT,
    PRIMARY KEY (session_id, participant_sid)
);

CREATE TABLE follows (
    follower_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    followee_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id);
