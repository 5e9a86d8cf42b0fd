-- The whole schema, for MySQL 8.4 and MariaDB 10.11 (migrations/sqlite/ has the same comments on
-- each column). Where it differs from the others: a key must be a VARCHAR of stated length (MySQL
-- does not index TEXT whole), the tables are InnoDB (row locks for the refresh and reaper claims)
-- and utf8mb4 with a binary collation for the keys (hex, compared byte for byte).

CREATE TABLE sessions (
    id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    record TEXT NOT NULL,
    expiry_date BIGINT NOT NULL,
    token TEXT NOT NULL,
    token_version BIGINT NOT NULL DEFAULT 0,
    refreshing_until BIGINT NULL,
    reaping_until BIGINT NULL,
    created_at BIGINT NOT NULL,
    INDEX sessions_expiry_date (expiry_date)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- A username is the LMS's (at most 150 characters there), compared as the LMS does, exactly.
CREATE TABLE profiles (
    username VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    user_id BIGINT NULL,
    email TEXT NULL,
    name TEXT NULL,
    first_signed_in_at BIGINT NOT NULL,
    last_signed_in_at BIGINT NOT NULL,
    sign_in_count BIGINT NOT NULL DEFAULT 1
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
