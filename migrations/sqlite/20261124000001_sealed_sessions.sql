-- A session row now exists only for a person who completed a sign-in, and holds their LMS token
-- sealed (AES-256-GCM under SECRET_KEYS, src/keys.rs) beside the account, so that a signed-in
-- request reads everything in one query. Pending sign-ins no longer touch the database: they
-- travel in a sealed cookie.
--
-- The tables of earlier releases are kept under new names until the app has ended their
-- sessions (src/store.rs `end_legacy_sessions`, at start): their tokens were stored in clear, so
-- they are revoked at the LMS rather than sealed, and their people sign in again.
ALTER TABLE sessions RENAME TO legacy_sessions;
ALTER TABLE tokens RENAME TO legacy_tokens;
DROP INDEX IF EXISTS sessions_expiry_date;
DROP INDEX IF EXISTS tokens_created_at;

CREATE TABLE sessions (
    -- SHA-256 (hex) of the session id in the cookie: the database never holds a live cookie value.
    id TEXT PRIMARY KEY NOT NULL,
    -- The signed-in record as JSON: account, CSRF token, sign-in time, the token's binding id.
    data TEXT NOT NULL,
    -- Unix seconds after which the session is over (idle limit, pushed back as it is used).
    expiry_date BIGINT NOT NULL,
    -- The LMS token (access and refresh), sealed; see src/keys.rs.
    token TEXT NOT NULL,
    -- Bumped by every refresh; a refresh is stored only over the version it started from.
    token_version BIGINT NOT NULL DEFAULT 0,
    -- While a request refreshes the token, the unix time its claim runs out; NULL otherwise.
    refreshing_until BIGINT,
    -- While a replica revokes the token of this expired session, the unix time its claim runs out.
    reaping_until BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry_date ON sessions (expiry_date);
