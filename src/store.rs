//! The database: connection pool, migrations, the session store and the `profiles` table.
//!
//! SQLite is the embedded default: the file and its folder are created on start and the
//! migrations in `migrations/sqlite/` are applied before the app takes a request.

use std::{str::FromStr, time::Duration};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tower_sessions_sqlx_store::SqliteStore;

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

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub async fn connect(database_url: &str) -> Result<Self, String> {
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
            std::fs::create_dir_all(dir).map_err(|e| {
                format!("DATABASE_URL: cannot create folder {}: {e}", dir.display())
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| format!("DATABASE_URL: cannot open the database: {e}"))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| format!("DATABASE_URL: migrations failed: {e}"))?;
        Ok(Self { pool })
    }

    pub fn session_store(&self) -> SqliteStore {
        #[expect(clippy::expect_used, reason = "a constant, valid table name")]
        SqliteStore::new(self.pool.clone())
            .with_table_name("sessions")
            .expect("valid table name")
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
        sqlx::query(
            "INSERT INTO profiles
                (username, user_id, email, name, first_signed_in_at, last_signed_in_at, sign_in_count)
             VALUES ($1, $2, $3, $4, $5, $5, 1)
             ON CONFLICT (username) DO UPDATE SET
                user_id = COALESCE(excluded.user_id, profiles.user_id),
                email = COALESCE(excluded.email, profiles.email),
                name = COALESCE(excluded.name, profiles.name),
                last_signed_in_at = excluded.last_signed_in_at,
                sign_in_count = profiles.sign_in_count + 1",
        )
        .bind(username)
        .bind(user_id)
        .bind(email)
        .bind(name)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn profile(&self, username: &str) -> Result<Option<ProfileRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT username, user_id, email, name, first_signed_in_at, last_signed_in_at,
                        sign_in_count
                 FROM profiles WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
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
