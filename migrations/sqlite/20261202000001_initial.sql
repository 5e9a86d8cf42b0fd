-- The whole schema. This project is pre-release: earlier development schemas were squashed into
-- this one (CHANGELOG.md), so a database made before it must be deleted, not migrated.

-- One row per person who completed a sign-in; a visitor who has not signed in has none (their
-- sign-in in flight travels in a sealed cookie). What a request needs is read in one query.
CREATE TABLE sessions (
    -- SHA-256 (hex) of the session id in the cookie: the database never holds a live cookie value.
    id TEXT PRIMARY KEY NOT NULL,
    -- The account, the CSRF token and the sign-in time, as JSON, sealed (src/keys.rs) and bound
    -- to this row's id.
    record TEXT NOT NULL,
    -- Unix seconds after which the session is over (idle limit, pushed back as it is used).
    expiry_date BIGINT NOT NULL,
    -- The LMS token (access and refresh), sealed apart from the record: the two change apart.
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

-- The app's own record of the people who signed in, upserted at each sign-in.
CREATE TABLE profiles (
    username TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT,
    email TEXT,
    name TEXT,
    first_signed_in_at BIGINT NOT NULL,
    last_signed_in_at BIGINT NOT NULL,
    sign_in_count BIGINT NOT NULL DEFAULT 1
);
