-- Sessions, in the schema tower-sessions-sqlx-store's PostgresStore reads and writes (its own
-- `migrate()` is not used, so that every table comes from this folder).
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY NOT NULL,
    data BYTEA NOT NULL,
    expiry_date TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_expiry_date ON sessions (expiry_date);

-- The app's own record of the people who signed in, upserted at each sign-in.
CREATE TABLE IF NOT EXISTS profiles (
    username TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT,
    email TEXT,
    name TEXT,
    first_signed_in_at BIGINT NOT NULL,
    last_signed_in_at BIGINT NOT NULL,
    sign_in_count BIGINT NOT NULL DEFAULT 1
);
