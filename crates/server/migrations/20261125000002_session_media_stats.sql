-- The studio's media figures for a session (issue 7's summary). NULL until the
-- studio reports them, so a summary can tell "none reported" from zero. One
-- ADD COLUMN per statement: SQLite does not take a list.
ALTER TABLE stream_sessions ADD COLUMN frames_sent BIGINT;
ALTER TABLE stream_sessions ADD COLUMN frames_dropped BIGINT;
ALTER TABLE stream_sessions ADD COLUMN average_bitrate_bps BIGINT;
ALTER TABLE stream_sessions ADD COLUMN reconnects BIGINT;
