-- Chat rules and moderation (issue 13). Same SQL for SQLite and PostgreSQL.

-- Name keys (src/names.rs): NFKC, case-folded, invisible characters removed,
-- confusable skeleton. Filled for new users at insert and for existing rows at
-- start-up (name_key_version < the server's KEY_VERSION), so a guest name is
-- checked with two indexed lookups instead of a scan of all users. (Index names
-- avoid `users_username_key`: PostgreSQL already gave that name to the UNIQUE constraint.)
ALTER TABLE users ADD COLUMN username_key TEXT;
ALTER TABLE users ADD COLUMN display_name_key TEXT;
ALTER TABLE users ADD COLUMN name_key_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX users_by_username_key ON users (username_key);
CREATE INDEX users_by_display_name_key ON users (display_name_key);
CREATE INDEX users_by_name_key_version ON users (name_key_version);

-- Bans and timeouts per creator (host) and participant identity; one row each:
-- a ban replaces a timeout. `until` is the end of a timeout (NULL for a ban).
-- `lease_until` lets one of several backend instances claim an expired
-- timeout while it restores the participant's permission in the room.
CREATE TABLE moderation (
    host_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    identity TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    reason TEXT,
    until BIGINT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (host_id, identity)
);
CREATE INDEX moderation_expiry ON moderation (kind, until);

-- Guest tokens minted: a guest's identity is random per token, so this is
-- what ties a banned guest identity to the address that asked for it. Kept
-- for the token lifetime, then pruned.
CREATE TABLE guest_tokens (
    identity TEXT PRIMARY KEY,
    host_id TEXT NOT NULL,
    name TEXT NOT NULL,
    ip TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX guest_tokens_created ON guest_tokens (created_at);

-- A guest ban: no guest tokens for this host to this client address until `until` (24 h).
CREATE TABLE guest_ip_bans (
    host_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ip TEXT NOT NULL,
    identity TEXT NOT NULL,
    until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (host_id, ip)
);
CREATE INDEX guest_ip_bans_identity ON guest_ip_bans (host_id, identity);
