//! The database: connection pool, migrations, the signed-in sessions with their sealed tokens,
//! and the `profiles` table.
//!
//! SQLite is the embedded default: the file (mode `0600`) and its folder (`0700`) are created on
//! start, with a generated key beside them when `SECRET_KEYS` is unset. PostgreSQL
//! (`DATABASE_URL=postgres://...`) is for several replicas sharing one database. Each has its
//! migrations (`migrations/sqlite/`, `migrations/postgres/`), applied before the app takes a
//! request; on PostgreSQL sqlx holds an advisory lock meanwhile, so replicas starting together
//! migrate once. Every query below is written once, in SQL both databases accept, and runs on
//! whichever pool is configured.

mod key_file;
pub mod sessions;

use std::{str::FromStr, time::Duration};

use openedx_client::Token;
use sqlx::{
    PgPool, SqlitePool,
    migrate::Migrator,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use self::sessions::{SessionBackend, session_key};
use crate::keys::{KeyRing, Purpose};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Runs one query body on whichever pool the store has (the body is compiled for each).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// The app's own record of one person who signed in.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ProfileRecord {
    pub username: String,
    pub user_id: Option<i64>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub first_signed_in_at: i64,
    pub last_signed_in_at: i64,
    pub sign_in_count: i64,
}

/// A session's token, and the version a refresh must start from.
#[derive(Clone, Debug)]
pub struct StoredToken {
    pub token: Token,
    pub version: i64,
    pub refreshing_until: Option<i64>,
}

/// A signed-in session's row, as [`Store::load_session`] reads it.
#[derive(Debug)]
pub struct SessionRow {
    /// The signed-in record, as JSON.
    pub data: String,
    pub expiry_date: i64,
    pub token: StoredToken,
}

/// A database failure, or a stored token that no longer opens or parses.
#[derive(Debug)]
pub enum StoreError {
    Database(sqlx::Error),
    Corrupt(serde_json::Error),
    /// Sealed under a key that `SECRET_KEYS` no longer lists, or altered in the database.
    Sealed,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Database(e) => write!(f, "database: {e}"),
            // Only the kind and position: serde_json's message may quote the value, a token.
            Self::Corrupt(e) => write!(
                f,
                "a stored token does not parse ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
            Self::Sealed => f.write_str(
                "a stored token does not open with SECRET_KEYS (sealed under a key no longer \
                 listed, or altered in the database)",
            ),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(e)
    }
}

#[derive(Clone, Debug)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    keys: KeyRing,
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations. Tokens are sealed
    /// with `keys` (`SECRET_KEYS`); without them, SQLite uses the key file beside the database,
    /// made at first start, while PostgreSQL needs them (the configuration already refused that).
    pub async fn connect(database_url: &str, keys: Option<KeyRing>) -> Result<Self, String> {
        let (db, keys) = if is_postgres(database_url) {
            let keys = keys.ok_or("SECRET_KEYS: is not set; PostgreSQL replicas must share it")?;
            (Db::Postgres(connect_postgres(database_url).await?), keys)
        } else {
            let options = sqlite_options(database_url)?;
            key_file::private_database_file(options.get_filename())?;
            let keys = match keys {
                Some(keys) => keys,
                None => key_file::load_or_create(options.get_filename())?,
            };
            (Db::Sqlite(connect_sqlite(options).await?), keys)
        };
        let store = Self { db, keys };
        let migrated = on_pool!(store, pool => store.migrator().run(pool).await);
        migrated.map_err(|e| format!("DATABASE_URL: migrations failed: {e}"))?;
        Ok(store)
    }

    /// The keys tokens are sealed with (`SECRET_KEYS`, or the generated key file); the pending
    /// sign-in cookie uses the same ring, under its own derived key.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    fn migrator(&self) -> &'static Migrator {
        match self.db {
            Db::Sqlite(_) => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// `sqlite` or `postgres`, for health reports.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Whether the database answers and every migration this build knows is applied.
    pub async fn check(&self) -> Result<(), String> {
        let applied: Result<i64, sqlx::Error> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await
        });
        let applied = applied.map_err(|e| format!("database: {e}"))?;
        let known = self.migrator().iter().count() as i64;
        if applied < known {
            return Err(format!("{applied} of {known} migrations applied"));
        }
        Ok(())
    }

    /// The tower-sessions store over the `sessions` table.
    pub fn session_store(&self) -> SessionBackend {
        SessionBackend::new(self.clone())
    }

    /// Records a sign-in: creates the row the first time, updates it on every later sign-in.
    pub async fn record_sign_in(
        &self,
        username: &str,
        user_id: Option<i64>,
        email: Option<&str>,
        name: Option<&str>,
        at: i64,
    ) -> Result<(), sqlx::Error> {
        let sql = "INSERT INTO profiles
                (username, user_id, email, name, first_signed_in_at, last_signed_in_at, sign_in_count)
             VALUES ($1, $2, $3, $4, $5, $5, 1)
             ON CONFLICT (username) DO UPDATE SET
                user_id = COALESCE(excluded.user_id, profiles.user_id),
                email = COALESCE(excluded.email, profiles.email),
                name = COALESCE(excluded.name, profiles.name),
                last_signed_in_at = excluded.last_signed_in_at,
                sign_in_count = profiles.sign_in_count + 1";
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(username)
                .bind(user_id)
                .bind(email)
                .bind(name)
                .bind(at)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn profile(&self, username: &str) -> Result<Option<ProfileRecord>, sqlx::Error> {
        let sql = "SELECT username, user_id, email, name, first_signed_in_at, last_signed_in_at,
                          sign_in_count
                   FROM profiles WHERE username = $1";
        on_pool!(self, pool => sqlx::query_as(sql).bind(username).fetch_optional(pool).await)
    }

    /// One signed-in session as a request reads it: everything, in one query.
    pub async fn load_session(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let sql = "SELECT data, expiry_date, token, token_version, refreshing_until
                   FROM sessions WHERE id = $1 AND expiry_date > $2";
        let row: Option<(String, i64, String, i64, Option<i64>)> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(key).bind(now).fetch_optional(pool).await
        })?;
        let Some((data, expiry_date, sealed, version, refreshing_until)) = row else {
            return Ok(None);
        };
        Ok(Some(SessionRow {
            data,
            expiry_date,
            token: StoredToken {
                token: self.open_token(key, &sealed)?,
                version,
                refreshing_until,
            },
        }))
    }

    /// Creates a signed-in session with its token, unless `key` is taken (then `false`).
    pub async fn create_session(
        &self,
        key: &str,
        data: &str,
        expiry_date: i64,
        token: &Token,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sealed = self.seal_token(key, token)?;
        let sql = "INSERT INTO sessions (id, data, expiry_date, token, created_at)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING";
        let inserted = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(key)
                .bind(data)
                .bind(expiry_date)
                .bind(&sealed)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(inserted == 1)
    }

    /// Writes a session's record and expiry; never its token (which changes only through the
    /// compare-and-swap refresh below), and never a session that has ended meanwhile.
    pub async fn save_session(
        &self,
        key: &str,
        data: &str,
        expiry_date: i64,
    ) -> Result<(), StoreError> {
        // A reaper's claim on a session that is used again is void: its delete checks the claim.
        let sql = "UPDATE sessions SET data = $1, expiry_date = $2, reaping_until = NULL
                   WHERE id = $3";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(data).bind(expiry_date).bind(key).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    pub async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE id = $1").bind(key).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// A live session's token as stored now (for a request waiting out another's refresh).
    pub async fn token(&self, key: &str, now: i64) -> Result<Option<StoredToken>, StoreError> {
        let sql = "SELECT token, token_version, refreshing_until FROM sessions
                   WHERE id = $1 AND expiry_date > $2";
        let row: Option<(String, i64, Option<i64>)> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(key).bind(now).fetch_optional(pool).await
        })?;
        row.map(|(sealed, version, refreshing_until)| {
            Ok(StoredToken {
                token: self.open_token(key, &sealed)?,
                version,
                refreshing_until,
            })
        })
        .transpose()
    }

    /// Claims the right to refresh `version` of a session's token until `until`. Exactly one
    /// caller wins, in this process or any other sharing the database (the UPDATE takes the row's
    /// write lock, and the others then see the claim); the claim lapses at `until` in case its
    /// holder dies.
    pub async fn claim_refresh(
        &self,
        key: &str,
        version: i64,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        // Never on an expired session: the reaper may already hold it for revocation, and a
        // refreshed token stored behind its back would outlive the session un-revoked.
        let sql = "UPDATE sessions SET refreshing_until = $1
                   WHERE id = $2 AND token_version = $3 AND expiry_date > $4
                     AND (refreshing_until IS NULL OR refreshing_until < $4)";
        let affected = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(until)
                .bind(key)
                .bind(version)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Stores the refreshed token over `version` and releases the claim, in one statement, so the
    /// rotated refresh token replaces the spent one atomically.
    pub async fn finish_refresh(
        &self,
        key: &str,
        version: i64,
        token: &Token,
    ) -> Result<bool, StoreError> {
        let sealed = self.seal_token(key, token)?;
        let sql = "UPDATE sessions
                   SET token = $1, token_version = token_version + 1, refreshing_until = NULL
                   WHERE id = $2 AND token_version = $3";
        let affected = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&sealed)
                .bind(key)
                .bind(version)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Gives up a claim without a new token (the LMS could not be reached), so another request
    /// may try at once.
    pub async fn release_refresh(&self, key: &str, version: i64) -> Result<(), StoreError> {
        let sql =
            "UPDATE sessions SET refreshing_until = NULL WHERE id = $1 AND token_version = $2";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(key).bind(version).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Ends a session and returns its token as it was at that instant, in one statement, so a
    /// refresh that lands meanwhile cannot leave a live token behind (for revocation).
    pub async fn take_session_token(&self, key: &str) -> Result<Option<Token>, StoreError> {
        let sql = "DELETE FROM sessions WHERE id = $1 RETURNING token";
        let row: Option<(String,)> =
            on_pool!(self, pool => sqlx::query_as(sql).bind(key).fetch_optional(pool).await)?;
        Ok(row.and_then(|(sealed,)| self.open_or_report(key, &sealed)))
    }

    /// A token that does not open (its key left `SECRET_KEYS`) cannot be revoked: say so, once
    /// per session, rather than fail whatever was ending it.
    fn open_or_report(&self, key: &str, sealed: &str) -> Option<Token> {
        match self.open_token(key, sealed) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::warn!(error = %e, "ended a session whose token could not be revoked");
                None
            }
        }
    }

    /// Ends a session only if its token is still at `version`: a refresh the LMS refused must not
    /// end a session whose token another request renewed meanwhile.
    pub async fn delete_session_at_version(
        &self,
        key: &str,
        version: i64,
    ) -> Result<(), StoreError> {
        let sql = "DELETE FROM sessions WHERE id = $1 AND token_version = $2";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(key).bind(version).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Claims up to `limit` expired sessions until `until`, so that one replica ends them while
    /// the others skip them; returns their keys. The conditions stand in the outer `WHERE` too:
    /// PostgreSQL re-checks only those after waiting for a row another replica just claimed.
    pub async fn claim_expired_sessions(
        &self,
        now: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let sql = "UPDATE sessions SET reaping_until = $1
                   WHERE id IN (SELECT id FROM sessions
                                WHERE expiry_date <= $2
                                  AND (reaping_until IS NULL OR reaping_until < $2)
                                LIMIT $3)
                     AND expiry_date <= $2
                     AND (reaping_until IS NULL OR reaping_until < $2)
                   RETURNING id";
        let rows: Vec<(String,)> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(until).bind(now).bind(limit).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(|(key,)| key).collect())
    }

    /// Deletes an expired session this replica claimed, unless it was used again meanwhile, and
    /// returns the token it held at that instant: the one to revoke, even if a refresh replaced
    /// the token the claim saw. `None` when there is nothing to revoke.
    pub async fn delete_reaped_session(
        &self,
        key: &str,
        claimed_until: i64,
        now: i64,
    ) -> Result<Option<Token>, StoreError> {
        let sql = "DELETE FROM sessions
                   WHERE id = $1 AND reaping_until = $2 AND expiry_date <= $3
                   RETURNING token";
        let row: Option<(String,)> = on_pool!(self, pool => {
            sqlx::query_as(sql)
                .bind(key)
                .bind(claimed_until)
                .bind(now)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.and_then(|(sealed,)| self.open_or_report(key, &sealed)))
    }

    /// The tokens an earlier release stored in clear, by row id: revoke each, then
    /// [`forget_legacy_token`](Self::forget_legacy_token) it. A row that does not parse is
    /// deleted at once (nothing could revoke it) and counted in the second number.
    pub async fn legacy_tokens(&self) -> Result<(Vec<(String, Token)>, usize), StoreError> {
        let sql = "SELECT id, token FROM legacy_tokens";
        let rows: Vec<(String, String)> =
            on_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?;
        let mut tokens = Vec::new();
        let mut unreadable = 0;
        for (id, json) in rows {
            match serde_json::from_str(&json) {
                Ok(token) => tokens.push((id, token)),
                Err(_) => {
                    unreadable += 1;
                    self.forget_legacy_token(&id).await?;
                }
            }
        }
        Ok((tokens, unreadable))
    }

    /// Deletes one clear-text token of an earlier release (after its revocation), overwriting
    /// its bytes on SQLite (`secure_delete`), where a deleted row otherwise stays readable in the
    /// file's free pages.
    pub async fn forget_legacy_token(&self, id: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM legacy_tokens WHERE id = $1";
        match &self.db {
            Db::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                sqlx::query("PRAGMA secure_delete = ON")
                    .execute(&mut *conn)
                    .await?;
                let deleted = sqlx::query(sql).bind(id).execute(&mut *conn).await;
                sqlx::query("PRAGMA secure_delete = OFF")
                    .execute(&mut *conn)
                    .await?;
                deleted?;
            }
            Db::Postgres(pool) => {
                sqlx::query(sql).bind(id).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Once every clear-text token is revoked and gone: drops the earlier release's tables (its
    /// sessions only pointed at those tokens). Returns how many sessions they held.
    pub async fn drop_legacy_tables(&self) -> Result<i64, StoreError> {
        let sessions: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM legacy_sessions").fetch_one(pool).await
        })?;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DROP TABLE IF EXISTS legacy_tokens").execute(&mut *tx).await?;
            sqlx::query("DROP TABLE IF EXISTS legacy_sessions").execute(&mut *tx).await?;
            tx.commit().await?;
        });
        if let Db::Sqlite(pool) = &self.db {
            // The write-ahead log still holds the pages as they were before the overwrite; move
            // the overwritten ones into the database and empty the log.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await?;
        }
        Ok(sessions)
    }

    /// Whether the tables of an earlier release are still there (the first start after it).
    pub async fn has_legacy_tables(&self) -> Result<bool, StoreError> {
        let sql = match self.db {
            Db::Sqlite(_) => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'legacy_tokens'"
            }
            Db::Postgres(_) => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'legacy_tokens'"
            }
        };
        let count: i64 = on_pool!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await)?;
        Ok(count > 0)
    }

    /// How many signed-in sessions are stored (for tests and benchmarks).
    pub async fn count_sessions(&self) -> Result<i64, StoreError> {
        let count = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM sessions").fetch_one(pool).await
        })?;
        Ok(count)
    }

    fn seal_token(&self, key: &str, token: &Token) -> Result<String, StoreError> {
        let json = serde_json::to_vec(token)?;
        Ok(self.keys.seal(Purpose::Token, &json, key.as_bytes()))
    }

    fn open_token(&self, key: &str, sealed: &str) -> Result<Token, StoreError> {
        let json = self
            .keys
            .open(Purpose::Token, sealed, key.as_bytes())
            .ok_or(StoreError::Sealed)?;
        Ok(serde_json::from_slice(&json)?)
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

fn is_postgres(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

fn sqlite_options(database_url: &str) -> Result<SqliteConnectOptions, String> {
    Ok(SqliteConnectOptions::from_str(database_url)
        .map_err(|e| format!("DATABASE_URL: {e}; use e.g. sqlite://data/profiles.db"))?
        .create_if_missing(true)
        // WAL lets readers run beside the one writer; NORMAL is durable under WAL except for
        // the last transactions on power loss, which for sessions is the usual trade.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5)))
}

async fn connect_sqlite(options: SqliteConnectOptions) -> Result<SqlitePool, String> {
    // Each SQLite connection is a thread that every query hands off to and back from; beyond a
    // couple per core the hand-offs cost more than the parallel reads gain (BENCHMARKS.md: 2, 4
    // and 8 on two cores).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    SqlitePoolOptions::new()
        .max_connections((2 * cores).clamp(4, 16))
        .connect_with(options)
        .await
        .map_err(|e| format!("DATABASE_URL: cannot open the database: {e}"))
}

async fn connect_postgres(database_url: &str) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect(database_url)
        .await
        // sqlx's message names host and database, never the password.
        .map_err(|e| format!("DATABASE_URL: cannot connect to PostgreSQL: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openedx_client::{Secret, TokenKind};

    fn temp_db() -> std::path::PathBuf {
        std::env::temp_dir()
            .join(format!("profiles-store-{}", rand::random::<u64>()))
            .join("db.sqlite")
    }

    async fn temp_store() -> Store {
        Store::connect(&format!("sqlite://{}", temp_db().display()), None)
            .await
            .expect("store")
    }

    fn token(access: &str, refresh: &str) -> Token {
        Token {
            access_token: Secret::new(access),
            kind: TokenKind::Jwt,
            expires_at: Some(4_000_000_000),
            scopes: vec!["user_id".into()],
            refresh_token: Some(Secret::new(refresh)),
        }
    }

    #[tokio::test]
    async fn creating_a_session_whose_id_is_taken_picks_another() {
        use tower_sessions::{
            SessionStore,
            session::{Id, Record},
        };
        let sessions = temp_store().await.session_store();
        let record = |id: Id| {
            let mut data = std::collections::HashMap::new();
            let token = serde_json::to_value(token("a", "r")).expect("json");
            data.insert(sessions::TOKEN_KEY.to_owned(), token);
            Record {
                id,
                data,
                expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            }
        };
        let mut first = record(Id::default());
        sessions.create(&mut first).await.expect("created");
        let mut second = record(first.id);
        sessions.create(&mut second).await.expect("created");
        assert_ne!(second.id, first.id);
        assert!(sessions.load(&first.id).await.expect("loads").is_some());
        assert!(sessions.load(&second.id).await.expect("loads").is_some());
    }

    #[tokio::test]
    async fn a_session_without_its_token_is_never_created() {
        use tower_sessions::{
            SessionStore,
            session::{Id, Record},
        };
        let store = temp_store().await;
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        assert!(store.session_store().create(&mut record).await.is_err());
        assert_eq!(store.count_sessions().await.expect("count"), 0);
    }

    #[tokio::test]
    async fn a_token_moved_to_another_session_row_does_not_open() {
        let store = temp_store().await;
        let far = unix_far();
        assert!(
            store
                .create_session("a", "{}", far, &token("access-a", "refresh-a"), 1)
                .await
                .expect("a")
        );
        assert!(
            store
                .create_session("b", "{}", far, &token("access-b", "refresh-b"), 1)
                .await
                .expect("b")
        );
        on_pool!(store, pool => {
            sqlx::query("UPDATE sessions SET token = (SELECT token FROM sessions WHERE id = 'a') WHERE id = 'b'")
                .execute(pool)
                .await
                .expect("swap")
                .rows_affected()
        });
        assert!(matches!(store.token("b", 0).await, Err(StoreError::Sealed)));
        assert_eq!(
            store
                .token("a", 0)
                .await
                .expect("a")
                .expect("row")
                .token
                .access_token
                .expose(),
            "access-a"
        );
    }

    fn unix_far() -> i64 {
        openedx_client::unix_now() + 3600
    }

    #[tokio::test]
    async fn a_second_sign_in_keeps_the_first_time_and_counts() {
        let store = temp_store().await;
        store
            .record_sign_in("ada", Some(7), Some("a@x"), Some("Ada"), 100)
            .await
            .expect("first");
        store
            .record_sign_in("ada", None, Some("b@x"), None, 200)
            .await
            .expect("second");
        let record = store.profile("ada").await.expect("query").expect("row");
        assert_eq!(
            record,
            ProfileRecord {
                username: "ada".into(),
                user_id: Some(7),
                email: Some("b@x".into()),
                name: Some("Ada".into()),
                first_signed_in_at: 100,
                last_signed_in_at: 200,
                sign_in_count: 2,
            }
        );
    }

    #[tokio::test]
    async fn migrations_apply_twice_without_error() {
        let url = format!("sqlite://{}", temp_db().display());
        Store::connect(&url, None)
            .await
            .expect("first start")
            .close()
            .await;
        Store::connect(&url, None).await.expect("second start");
    }

    #[tokio::test]
    async fn the_generated_key_is_kept_and_reused_at_the_next_start() {
        let db = temp_db();
        let url = format!("sqlite://{}", db.display());
        let first = Store::connect(&url, None).await.expect("first start");
        assert!(
            first
                .create_session("k", "{}", unix_far(), &token("a", "r"), 1)
                .await
                .expect("row")
        );
        first.close().await;
        let second = Store::connect(&url, None).await.expect("second start");
        assert_eq!(
            second
                .token("k", 0)
                .await
                .expect("opens")
                .expect("row")
                .token
                .access_token
                .expose(),
            "a"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn database_files_and_the_key_file_are_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let db = temp_db();
        let store = Store::connect(&format!("sqlite://{}", db.display()), None)
            .await
            .expect("store");
        store
            .create_session("k", "{}", unix_far(), &token("a", "r"), 1)
            .await
            .expect("write");
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p).expect("exists").permissions().mode() & 0o777
        };
        for file in [
            db.clone(),
            key_file::key_path(&db),
            std::path::PathBuf::from(format!("{}-wal", db.display())),
            std::path::PathBuf::from(format!("{}-shm", db.display())),
        ] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert_eq!(mode(db.parent().expect("folder")), 0o700);
    }
}
