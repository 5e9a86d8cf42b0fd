-- Each signed-in session's LMS token, outside the session blob so that a refresh can be claimed
-- and its rotated refresh token stored with single-row compare-and-swap updates, whichever
-- process or replica serves the request. The session keeps only this row's random id.
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY NOT NULL,
    -- The token response as the app keeps it (lms::Token as JSON).
    token TEXT NOT NULL,
    -- Bumped by every refresh; a refresh is stored only over the version it started from.
    version BIGINT NOT NULL DEFAULT 0,
    -- While a request refreshes the token, the unix time its claim runs out; NULL otherwise.
    refreshing_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_created_at ON tokens (created_at);
