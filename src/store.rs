//! The database: connection pool, migrations, and the tables by concern, each in a module of its
//! own: the signed-in sessions ([`sessions`]), their tokens' refresh claims ([`refresh`]), ending
//! the expired ones ([`reaper`]), the revocations the LMS has not confirmed yet
//! ([`revocations`]) and the app's record of who signed in ([`profiles`]).
//!
//! While the database does not answer, [`Store::watch`] knows it, and requests fail at once
//! ([`Store::available`]) with a 503 instead of each waiting out `DATABASE_TIMEOUT_MS`.
//!
//! SQLite is the embedded default: the file (mode `0600`) and its folder (`0700`) are created on
//! start, with a generated key beside them when `SECRET_KEYS` is unset. PostgreSQL
//! (`DATABASE_URL=postgres://...`) and MySQL or MariaDB (`mysql://...`, as Tutor runs) are for
//! several replicas sharing one database. Each has its migrations (`migrations/<backend>/`),
//! applied before the app takes a request; sqlx holds a lock meanwhile (PostgreSQL's advisory
//! lock, MySQL's `GET_LOCK`), so replicas starting together migrate once.
//!
//! A query is written once where the three accept the same SQL, with `?` placeholders in the
//! order of their binds (`on_pool!` numbers them `$1, $2...` for PostgreSQL). Where MySQL
//! differs (it has no `RETURNING` and no `ON CONFLICT`, and cannot update a table it selects
//! from), the statement is written per backend, with a comment saying why.

mod health;
mod key_file;
pub mod profiles;
pub mod reaper;
pub mod refresh;
pub mod revocations;
pub mod sessions;

use std::{str::FromStr, sync::Arc, time::Duration};

use serde::{Serialize, de::DeserializeOwned};
use sqlx::{
    MySqlPool, PgPool, SqlitePool,
    migrate::{MigrateError, Migrator},
    mysql::MySqlPoolOptions,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use self::{
    revocations::{Kept, Schedule},
    sessions::{SessionRecord, SignedInRow, StoredToken, session_key},
};
use crate::keys::{KeyRing, Purpose, Unopenable};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("migrations/mysql");

/// Runs one query body on whichever pool the store has (the body is compiled for each).
///
/// With `$sql` named, the form every query of the app uses: the statement in that variable is
/// rewritten for PostgreSQL, whose placeholders are numbered (`$1`) where SQLite and MySQL take
/// `?`, and the body runs on a connection of its own ([`within!`]), bounded by
/// `DATABASE_TIMEOUT_MS`, connection and answer together. It must yield a
/// `Result<_, sqlx::Error>`; the macro yields a `Result<_, StoreError>`.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
            $crate::store::Db::MySql($pool) => $body,
        }
    };
    ($store:expr, $sql:ident, $pool:ident => $body:expr) => {{
        let deadline = tokio::time::Instant::now() + $store.timeout;
        match &$store.db {
            $crate::store::Db::Sqlite(pool) => $crate::store::within!(deadline, pool, $pool => $body),
            $crate::store::Db::Postgres(pool) => {
                let $sql = sqlx::AssertSqlSafe($crate::store::numbered($sql));
                $crate::store::within!(deadline, pool, $pool => $body)
            }
            $crate::store::Db::MySql(pool) => $crate::store::within!(deadline, pool, $pool => $body),
        }
    }};
}

/// Runs `$body` on a connection from `$pool` (as `$conn`, a `&mut` connection) by `$deadline`:
/// the wait for the connection and the body together. Past it, [`StoreError::Unavailable`], and
/// the connection is closed rather than returned: sqlx tests a returned connection with a ping
/// that has no timeout, which on a silent database would hold the pool's place for as long as
/// the kernel keeps the socket (minutes), however short the query's own wait.
macro_rules! within {
    ($deadline:expr, $pool:expr, $conn:ident => $body:expr) => {{
        match tokio::time::timeout_at($deadline, $pool.acquire()).await {
            Err(_) => Err($crate::store::StoreError::Unavailable),
            Ok(Err(e)) => Err($crate::store::StoreError::from(e)),
            Ok(Ok(mut connection)) => {
                let answer = tokio::time::timeout_at($deadline, async {
                    let $conn = &mut *connection;
                    $body
                })
                .await;
                match answer {
                    Ok(answer) => answer.map_err($crate::store::StoreError::from),
                    Err(_) => {
                        connection.close_on_drop();
                        Err($crate::store::StoreError::Unavailable)
                    }
                }
            }
        }
    }};
}
pub(crate) use on_pool;
pub(crate) use within;

/// `?` placeholders as PostgreSQL's `$1, $2...`, in order. The statements here hold no `?` in a
/// string literal or comment.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// A database failure, or a stored value that no longer opens or parses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Only the kind and position: serde_json's message may quote the value, a token.
    #[error(
        "a stored session does not parse ({:?} error at line {} column {})",
        .0.classify(), .0.line(), .0.column()
    )]
    Corrupt(#[from] serde_json::Error),
    /// The database is known to be unreachable ([`Store::watch`]), or did not answer within
    /// `DATABASE_TIMEOUT_MS`.
    #[error("the database is unreachable, or did not answer within DATABASE_TIMEOUT_MS")]
    Unavailable,
    /// Sealed under a key this replica's `SECRET_KEYS` does not list (its id): an operator
    /// error, answered 503 and never with a sign-out, since a replica that has the key can open it.
    #[error(
        "a stored value is sealed under key {0}, which SECRET_KEYS does not list on this replica; \
         add that key to SECRET_KEYS on every replica (a rotation adds a new key last everywhere \
         before putting it first: docs/kubernetes.md)"
    )]
    KeyMissing(String),
    /// Altered in the database, or moved to another row: it does not open with any listed key.
    #[error("a stored value does not open: altered in the database, or moved to another row")]
    Sealed,
}

impl StoreError {
    /// Whether the database could not be reached (or is known to be down), as opposed to a query
    /// that failed or a value that does not open: the request may well work in a few seconds.
    pub fn is_unavailable(&self) -> bool {
        use sqlx::Error as E;
        match self {
            Self::Unavailable => true,
            // `Protocol`: what a connection cut mid-handshake reads as (PostgreSQL's driver
            // takes the end of the stream for a reply to its TLS request).
            Self::Database(e) => matches!(
                e,
                E::PoolTimedOut
                    | E::PoolClosed
                    | E::Io(_)
                    | E::Tls(_)
                    | E::Protocol(_)
                    | E::WorkerCrashed
            ),
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    keys: KeyRing,
    /// `DATABASE_TIMEOUT_MS`: the pool's acquire timeout, and a probe's.
    timeout: Duration,
    /// What [`Store::watch`] last found: requests fail at once while the database is known to
    /// be down, instead of each waiting out the timeout.
    health: Arc<health::Health>,
}

/// The timeout [`Store::connect`] uses; the app passes `DATABASE_TIMEOUT_MS`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(800);

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations. What is stored is
    /// sealed with `keys` (`SECRET_KEYS`); without them, SQLite uses the key file beside the
    /// database, made at first start, while PostgreSQL needs them (the configuration already
    /// refused that).
    pub async fn connect(database_url: &str, keys: Option<KeyRing>) -> Result<Self, String> {
        Self::connect_with(database_url, keys, DEFAULT_TIMEOUT).await
    }

    /// [`connect`](Self::connect), waiting at most `timeout` for a connection (`DATABASE_TIMEOUT_MS`).
    pub async fn connect_with(
        database_url: &str,
        keys: Option<KeyRing>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let shared = "SECRET_KEYS: is not set; replicas sharing a database must share it";
        let (db, keys) = if is_postgres(database_url) {
            let keys = keys.ok_or(shared)?;
            (
                Db::Postgres(connect_postgres(database_url, timeout).await?),
                keys,
            )
        } else if is_mysql(database_url) {
            let keys = keys.ok_or(shared)?;
            (Db::MySql(connect_mysql(database_url, timeout).await?), keys)
        } else {
            let options = sqlite_options(database_url)?;
            key_file::private_database_file(options.get_filename())?;
            let keys = match keys {
                Some(keys) => {
                    key_file::warn_if_ignored(options.get_filename(), &keys);
                    keys
                }
                None => key_file::load_or_create(options.get_filename())?,
            };
            (Db::Sqlite(connect_sqlite(options, timeout).await?), keys)
        };
        let store = Self {
            db,
            keys,
            timeout,
            health: Arc::default(),
        };
        store
            .migrate()
            .await
            .map_err(|e| format!("DATABASE_URL: migrations failed: {e}"))?;
        Ok(store)
    }

    /// The keys stored values are sealed with (`SECRET_KEYS`, or the generated key file); the
    /// pending sign-in cookie uses the same ring, under its own derived key.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Through sqlx's `run_direct` on a connection: its `run(pool)` has `Acquire` bounds that
    /// keep a spawned start-up future from proving itself `Send` (sqlx's own comment says so).
    async fn migrate(&self) -> Result<(), MigrateError> {
        match &self.db {
            Db::MySql(pool) => migrate_mysql(pool).await,
            Db::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                SQLITE_MIGRATIONS.run_direct(None, &mut *conn, false).await
            }
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                POSTGRES_MIGRATIONS
                    .run_direct(None, &mut *conn, false)
                    .await
            }
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.db {
            Db::Sqlite(_) => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
            Db::MySql(_) => &MYSQL_MIGRATIONS,
        }
    }

    /// `sqlite`, `postgres` or `mysql`, for health reports.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
            Db::MySql(_) => "mysql",
        }
    }

    /// Whether the database answers and every migration this build knows is applied, within the
    /// timeout (a readiness probe must answer within its own, often 1 s).
    pub async fn check(&self) -> Result<(), String> {
        self.available().map_err(|e| e.to_string())?;
        tokio::time::timeout(self.timeout, self.check_migrations())
            .await
            .map_err(|_| format!("no answer within {} ms", self.timeout.as_millis()))?
    }

    async fn check_migrations(&self) -> Result<(), String> {
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

    /// `value` as JSON, sealed for `purpose` and bound to the row `key` (associated data), so a
    /// value copied into another row, or altered, does not open.
    fn seal(
        &self,
        purpose: Purpose,
        key: &str,
        value: &impl Serialize,
    ) -> Result<String, StoreError> {
        let json = serde_json::to_vec(value)?;
        Ok(self.keys.seal(purpose, &json, key.as_bytes()))
    }

    fn open<T: DeserializeOwned>(
        &self,
        purpose: Purpose,
        key: &str,
        sealed: &str,
    ) -> Result<T, StoreError> {
        let json = self
            .keys
            .open_or_why(purpose, sealed, key.as_bytes())
            .map_err(|why| match why {
                Unopenable::UnknownKey(id) => StoreError::KeyMissing(id),
                Unopenable::Refused => StoreError::Sealed,
            })?;
        Ok(serde_json::from_slice(&json)?)
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

fn is_postgres(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

fn is_mysql(database_url: &str) -> bool {
    database_url.starts_with("mysql://") || database_url.starts_with("mariadb://")
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

async fn connect_sqlite(
    options: SqliteConnectOptions,
    timeout: Duration,
) -> Result<SqlitePool, String> {
    // Each SQLite connection is a thread that every query hands off to and back from; beyond a
    // couple per core the hand-offs cost more than the parallel reads gain (BENCHMARKS.md: 2, 4
    // and 8 on two cores).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    SqlitePoolOptions::new()
        .max_connections((2 * cores).clamp(4, 16))
        .acquire_timeout(timeout)
        .connect_with(options)
        .await
        .map_err(|e| format!("DATABASE_URL: cannot open the database: {e}"))
}

async fn connect_postgres(database_url: &str, timeout: Duration) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(timeout)
        .connect(database_url)
        .await
        // sqlx's message names host and database, never the password.
        .map_err(|e| format!("DATABASE_URL: cannot connect to PostgreSQL: {e}"))
}

/// sqlx serializes MySQL migrations with `GET_LOCK(name, -1)`, a timeout MariaDB refuses (it
/// answers NULL and takes no lock), so replicas starting together would race to apply the same
/// migration. A lock of our own, with a timeout both accept, held on the connection that
/// migrates, makes them take turns.
async fn migrate_mysql(pool: &MySqlPool) -> Result<(), MigrateError> {
    let mut conn = pool.acquire().await?;
    // Named after the database: lock names are server-wide, and two apps' databases on one
    // server need not take turns.
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(CONCAT('profiles_migrations.', DATABASE()), 120)")
            .fetch_one(&mut *conn)
            .await?;
    if locked != Some(1) {
        return Err(MigrateError::Execute(sqlx::Error::Protocol(
            "another replica held the migration lock for 120 s; is one stuck?".into(),
        )));
    }
    let migrated = MYSQL_MIGRATIONS.run_direct(None, &mut *conn, false).await;
    sqlx::query("SELECT RELEASE_LOCK(CONCAT('profiles_migrations.', DATABASE()))")
        .execute(&mut *conn)
        .await?;
    migrated
}

/// TLS is rustls in sqlx's default `ssl-mode=preferred`: used whenever the server offers it (MySQL
/// 8.4 does by default), plain otherwise. `preferred` and `required` encrypt but do not check the
/// server's certificate; `ssl-mode=verify_identity&ssl-ca=...` in the URL does.
async fn connect_mysql(database_url: &str, timeout: Duration) -> Result<MySqlPool, String> {
    // sqlx knows the `mysql://` scheme only; MariaDB speaks the same protocol.
    let url = match database_url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => database_url.to_owned(),
    };
    MySqlPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(timeout)
        .connect(&url)
        .await
        .map_err(|e| mysql_connect_error(&e.to_string()))
}

/// One line naming the fix. Without TLS, MySQL's `caching_sha2_password` (8.4's default plugin)
/// sends the password RSA-encrypted on a first login, and this build leaves RSA out (the `rsa`
/// crate has an unfixed timing advisory, RUSTSEC-2023-0071), so sqlx refuses rather than hang.
fn mysql_connect_error(message: &str) -> String {
    if message.contains("RSA") {
        return "DATABASE_URL: the MySQL account uses caching_sha2_password and the connection has \
                no TLS; turn TLS on at the server (MySQL 8.4 has it by default) and add \
                ssl-mode=verify_identity&ssl-ca=<the server's CA file> (or ssl-mode=required) to \
                DATABASE_URL, or create the account IDENTIFIED WITH mysql_native_password"
            .into();
    }
    // sqlx's message names host and database, never the password.
    format!("DATABASE_URL: cannot connect to MySQL: {message}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn temp_db() -> std::path::PathBuf {
        std::env::temp_dir()
            .join(format!("profiles-store-{}", rand::random::<u64>()))
            .join("db.sqlite")
    }

    pub async fn temp_store() -> Store {
        Store::connect(&format!("sqlite://{}", temp_db().display()), None)
            .await
            .expect("store")
    }

    #[test]
    fn placeholders_are_numbered_for_postgres_in_order() {
        assert_eq!(
            numbered("UPDATE t SET a = ? WHERE b = ? AND c > ?"),
            "UPDATE t SET a = $1 WHERE b = $2 AND c > $3"
        );
    }

    #[test]
    fn a_mysql_account_needing_rsa_without_tls_names_the_fix_in_one_line() {
        let message = mysql_connect_error(
            "error with configuration: RSA auth backend disabled; enable feature `mysql-rsa`",
        );
        assert!(message.starts_with("DATABASE_URL: "), "{message}");
        assert!(message.contains("ssl-mode=required"), "{message}");
        assert!(!message.contains('\n'));
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

    #[cfg(unix)]
    #[tokio::test]
    async fn database_files_and_the_key_file_are_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let db = temp_db();
        let store = Store::connect(&format!("sqlite://{}", db.display()), None)
            .await
            .expect("store");
        store
            .record_sign_in("ada", None, &profiles::ProfileDetails::default(), 1)
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
