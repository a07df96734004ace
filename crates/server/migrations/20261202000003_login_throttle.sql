-- Login throttling shared by every backend instance (issue 16): one row per
-- key, `ip:<address>` (attempts in the current one-minute window) or
-- `acct:<username>|<address>` (failed logins in a row; `blocked_until` is the
-- end of the current back-off delay). See `auth::LoginThrottle`.
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    count BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX login_throttle_window ON login_throttle (window_start);
