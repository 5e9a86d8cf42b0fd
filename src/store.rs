//! The database: connection pool, migrations, the session store, the `profiles` and `tokens`
//! tables.
//!
//! SQLite is the embedded default: the file and its folder are created on start. PostgreSQL
//! (`DATABASE_URL=postgres://...`) is for several replicas sharing one database. Each has its
//! migrations (`migrations/sqlite/`, `migrations/postgres/`), applied before the app takes a
//! request; on PostgreSQL sqlx holds an advisory lock meanwhile, so replicas starting together
//! migrate once. Every query below is written once, in SQL both databases accept, and runs on
//! whichever pool is configured.

mod sessions;

use std::{str::FromStr, time::Duration};

use sqlx::{
    PgPool, SqlitePool,
    migrate::Migrator,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use self::sessions::SessionBackend;
use crate::lms::Token;

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

/// A token row: the token, and the version a refresh must start from.
#[derive(Debug)]
pub struct StoredToken {
    pub token: Token,
    pub version: i64,
    pub refreshing_until: Option<i64>,
}

/// A database failure, or a token row that no longer parses.
#[derive(Debug)]
pub enum StoreError {
    Database(sqlx::Error),
    Corrupt(serde_json::Error),
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

/// 128 random bits, URL-safe: ids nobody can guess.
fn random_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

#[derive(Clone, Debug)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub async fn connect(database_url: &str) -> Result<Self, String> {
        let db = if is_postgres(database_url) {
            Db::Postgres(connect_postgres(database_url).await?)
        } else {
            Db::Sqlite(connect_sqlite(database_url).await?)
        };
        let store = Self { db };
        let migrated = on_pool!(store, pool => store.migrator().run(pool).await);
        migrated.map_err(|e| format!("DATABASE_URL: migrations failed: {e}"))?;
        Ok(store)
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

    pub fn session_store(&self) -> SessionBackend {
        SessionBackend::new(&self.db)
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

    /// Keeps a freshly issued token under a new random id, which the session then holds.
    pub async fn insert_token(&self, token: &Token, now: i64) -> Result<String, StoreError> {
        let id = random_id();
        let json = serde_json::to_string(token)?;
        let sql = "INSERT INTO tokens (id, token, version, created_at, updated_at)
                   VALUES ($1, $2, 0, $3, $3)";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(&id).bind(&json).bind(now).execute(pool).await.map(|_| ())
        })?;
        Ok(id)
    }

    pub async fn token(&self, id: &str) -> Result<Option<StoredToken>, StoreError> {
        let sql = "SELECT token, version, refreshing_until FROM tokens WHERE id = $1";
        let row: Option<(String, i64, Option<i64>)> =
            on_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?;
        row.map(|(json, version, refreshing_until)| {
            Ok(StoredToken {
                token: serde_json::from_str(&json)?,
                version,
                refreshing_until,
            })
        })
        .transpose()
    }

    /// Claims the right to refresh `version` of the token until `until`. Exactly one caller wins,
    /// in this process or any other sharing the database (the UPDATE takes the row's write lock,
    /// and the others then see the claim); the claim lapses at `until` in case its holder dies.
    pub async fn claim_refresh(
        &self,
        id: &str,
        version: i64,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE tokens SET refreshing_until = $1
                   WHERE id = $2 AND version = $3
                     AND (refreshing_until IS NULL OR refreshing_until < $4)";
        let affected = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(until)
                .bind(id)
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
        id: &str,
        version: i64,
        token: &Token,
        now: i64,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(token)?;
        let sql = "UPDATE tokens SET token = $1, version = version + 1, refreshing_until = NULL,
                                     updated_at = $2
                   WHERE id = $3 AND version = $4";
        let affected = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&json)
                .bind(now)
                .bind(id)
                .bind(version)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Gives up a claim without a new token (the LMS could not be reached), so another request
    /// may try at once.
    pub async fn release_refresh(&self, id: &str, version: i64) -> Result<(), StoreError> {
        let sql = "UPDATE tokens SET refreshing_until = NULL WHERE id = $1 AND version = $2";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(id).bind(version).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Removes a token and returns it as it was at that instant, in one statement, so a refresh
    /// that lands meanwhile cannot leave a live token behind (for revocation at sign-out).
    pub async fn take_token(&self, id: &str) -> Result<Option<Token>, StoreError> {
        let sql = "DELETE FROM tokens WHERE id = $1 RETURNING token";
        let row: Option<(String,)> =
            on_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(|(json,)| serde_json::from_str(&json)).transpose()?)
    }

    /// Removes a token only if it is still at `version`: a refresh the LMS refused must not delete
    /// a newer token another request stored meanwhile.
    pub async fn delete_token_version(&self, id: &str, version: i64) -> Result<(), StoreError> {
        let sql = "DELETE FROM tokens WHERE id = $1 AND version = $2";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(id).bind(version).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Deletes tokens older than any session may live: their sessions expired without a sign-out.
    pub async fn delete_tokens_created_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM tokens WHERE created_at < $1";
        let affected = on_pool!(self, pool => {
            sqlx::query(sql).bind(cutoff).execute(pool).await?.rows_affected()
        });
        Ok(affected)
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

fn is_postgres(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

async fn connect_sqlite(database_url: &str) -> Result<SqlitePool, String> {
    let options = SqliteConnectOptions::from_str(database_url)
        .map_err(|e| format!("DATABASE_URL: {e}; use e.g. sqlite://data/profiles.db"))?
        .create_if_missing(true)
        // WAL lets readers run beside the one writer; NORMAL is durable under WAL except for
        // the last transactions on power loss, which for sessions is the usual trade.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    if let Some(dir) = options
        .get_filename()
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("DATABASE_URL: cannot create folder {}: {e}", dir.display()))?;
    }
    SqlitePoolOptions::new()
        .max_connections(8)
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

    async fn temp_store() -> Store {
        let path = std::env::temp_dir()
            .join(format!("profiles-store-{}", rand::random::<u64>()))
            .join("db.sqlite");
        Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("store")
    }

    #[tokio::test]
    async fn creating_a_session_whose_id_is_taken_picks_another() {
        use tower_sessions::{
            SessionStore,
            session::{Id, Record},
        };
        let sessions = temp_store().await.session_store();
        let record = |id: Id| Record {
            id,
            data: Default::default(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
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
        let path = std::env::temp_dir().join(format!("profiles-mig-{}.db", rand::random::<u64>()));
        let url = format!("sqlite://{}", path.display());
        Store::connect(&url)
            .await
            .expect("first start")
            .close()
            .await;
        Store::connect(&url).await.expect("second start");
    }
}
