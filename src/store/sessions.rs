//! The session store on whichever database is configured: tower-sessions-sqlx-store has one type
//! per database, and the session layer takes one type, so this enum forwards to the right one.

use async_trait::async_trait;
use sqlx::{PgPool, SqlitePool};
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store::{self, ExpiredDeletion},
};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::Db;

/// Sessions live in the `sessions` table of the app's own database, created by its migrations.
const TABLE: &str = "sessions";

#[derive(Clone, Debug)]
pub enum SessionBackend {
    Sqlite(SqliteStore, SqlitePool),
    Postgres(PostgresStore, PgPool),
}

impl SessionBackend {
    pub(super) fn new(db: &Db) -> Self {
        #[expect(clippy::expect_used, reason = "constant, valid schema and table names")]
        match db {
            Db::Sqlite(pool) => Self::Sqlite(
                SqliteStore::new(pool.clone())
                    .with_table_name(TABLE)
                    .expect("valid table name"),
                pool.clone(),
            ),
            Db::Postgres(pool) => Self::Postgres(
                PostgresStore::new(pool.clone())
                    .with_schema_name("public")
                    .expect("valid schema name")
                    .with_table_name(TABLE)
                    .expect("valid table name"),
                pool.clone(),
            ),
        }
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    /// One `INSERT ... ON CONFLICT DO NOTHING`, retried under a new id on a collision: the same
    /// guarantee as the stores' own `create` (a transaction of four statements), in one statement,
    /// which matters because every sign-in starts by creating a session (BENCHMARKS.md). The row
    /// is written exactly as the stores' `save` writes it, so their `load` reads it.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        const INSERT: &str = "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3)
                              ON CONFLICT (id) DO NOTHING";
        loop {
            let data = rmp_serde::to_vec(&*record)
                .map_err(|e| session_store::Error::Encode(e.to_string()))?;
            let id = record.id.to_string();
            let inserted = match self {
                Self::Sqlite(_, pool) => sqlx::query(INSERT)
                    .bind(id)
                    .bind(data)
                    .bind(record.expiry_date)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()),
                Self::Postgres(_, pool) => sqlx::query(INSERT)
                    .bind(id)
                    .bind(data)
                    .bind(record.expiry_date)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()),
            }
            .map_err(|e| session_store::Error::Backend(e.to_string()))?;
            if inserted == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s, _) => s.save(record).await,
            Self::Postgres(s, _) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(s, _) => s.load(id).await,
            Self::Postgres(s, _) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s, _) => s.delete(id).await,
            Self::Postgres(s, _) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for SessionBackend {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s, _) => s.delete_expired().await,
            Self::Postgres(s, _) => s.delete_expired().await,
        }
    }
}
