-- Issue 21: revocations the LMS has not confirmed are kept until it does, and the app's record of
-- who signed in holds no email or name in clear.

-- A token whose revocation the LMS has not confirmed yet: written in the same transaction that
-- ends its session, deleted once the LMS confirms, retried with back-off by whichever replica
-- claims it first (src/store/revocations.rs).
CREATE TABLE revocations (
    id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    -- The associated data the token is sealed with (src/keys.rs): the ended session's row key,
    -- so a session's sealed token moves here as it is, without being opened.
    sealed_for VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- The LMS token, sealed as in sessions.token.
    token TEXT NOT NULL,
    -- Unix seconds after which the token is dead at the LMS anyway (its refresh token's 90 days).
    give_up_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- While a replica tries it, the unix time its claim runs out.
    claimed_until BIGINT NULL,
    created_at BIGINT NOT NULL,
    INDEX revocations_next_attempt_at (next_attempt_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Email and name were in clear: now sealed together, bound to the username. Earlier values are
-- dropped (pre-release; CHANGELOG.md): the next sign-in writes them again, sealed.
ALTER TABLE profiles DROP COLUMN email;
ALTER TABLE profiles DROP COLUMN name;
ALTER TABLE profiles ADD COLUMN details TEXT NULL;
