//! Whether the database answers, as one watcher per process finds out ([`Store::watch`]), so that
//! during an outage requests fail at once ([`Store::available`]) and readiness probes answer from
//! what is known ([`Store::readiness`]) instead of each waiting out `DATABASE_TIMEOUT_MS`.
//!
//! The watcher probes on a connection of its own, outside the pool: a pool busy with requests is
//! not an outage, and must not turn every page into a 503. One failed probe makes the app not
//! ready; two in a row make an outage; one answer ends both.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use sqlx::{ConnectOptions, MySqlConnection, PgConnection, SqliteConnection};

use super::{Db, Store, StoreError};

/// Probes failing in a row before the database counts as down.
const FAILURES_FOR_AN_OUTAGE: u32 = 2;

/// What the watcher last found.
#[derive(Default, Debug)]
pub(super) struct Health {
    /// Set while the database is known to be down.
    down: AtomicBool,
    /// Set while the last probe failed: not ready yet, though not known to be down either.
    failing: AtomicBool,
    /// Set once a watcher runs; without one, readiness asks the database itself.
    watched: AtomicBool,
    /// The last probe's failure, for the internal readiness details.
    last_error: Mutex<Option<String>>,
}

/// The watcher's own connection.
enum Probe {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

impl Store {
    /// Fails at once while the database is known to be unreachable; requests call it before
    /// their first query, so an outage costs them nothing but a 503.
    pub fn available(&self) -> Result<(), StoreError> {
        match self.health.down.load(Ordering::Relaxed) {
            true => Err(StoreError::Unavailable),
            false => Ok(()),
        }
    }

    /// Ready: the database answers and every migration this build knows is applied. From the
    /// watcher's last probe (at most half a second old) when one runs, so a readiness probe at any
    /// rate costs the database nothing; otherwise asked now, within the timeout.
    pub async fn readiness(&self) -> Result<(), String> {
        if !self.health.watched.load(Ordering::Relaxed) {
            return self.check().await;
        }
        if self.health.failing.load(Ordering::Relaxed) {
            let last = self.health.last_error.lock().map(|e| e.clone());
            return Err(last.ok().flatten().unwrap_or_else(|| "unreachable".into()));
        }
        Ok(())
    }

    /// Watches the database for as long as it runs: a probe every 500 ms while it answers, every
    /// 200 ms after a failure, each bounded by the timeout. Logs the start and the end of an
    /// outage, once each.
    pub async fn watch(self) {
        self.health.watched.store(true, Ordering::Relaxed);
        let mut probe = None;
        let (mut failures, mut down_since) = (0, None::<std::time::Instant>);
        loop {
            let answered = tokio::time::timeout(self.timeout, self.probe(&mut probe)).await;
            let answered = answered.unwrap_or_else(|_| {
                Err(format!("no answer within {} ms", self.timeout.as_millis()))
            });
            match &answered {
                Ok(()) => {
                    failures = 0;
                    if let Some(since) = down_since.take() {
                        self.health.down.store(false, Ordering::Relaxed);
                        let secs = since.elapsed().as_secs_f32();
                        tracing::info!(down_for_secs = secs, "the database answers again");
                    }
                }
                Err(error) => {
                    // A connection that failed once is not trusted again.
                    probe = None;
                    failures += 1;
                    if failures >= FAILURES_FOR_AN_OUTAGE && down_since.is_none() {
                        down_since = Some(std::time::Instant::now());
                        self.health.down.store(true, Ordering::Relaxed);
                        tracing::error!(
                            error,
                            "the database does not answer: pages answer 503 until it does \
                             (checked every 200 ms)"
                        );
                    }
                }
            }
            self.health
                .failing
                .store(answered.is_err(), Ordering::Relaxed);
            if let Ok(mut last) = self.health.last_error.lock() {
                *last = answered.err();
            }
            let pause = if failures > 0 { 200 } else { 500 };
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
    }

    /// One probe: connects if it has no connection, then counts the applied migrations.
    async fn probe(&self, probe: &mut Option<Probe>) -> Result<(), String> {
        let failed = |e: sqlx::Error| format!("database: {e}");
        let connection = match probe {
            Some(connection) => connection,
            None => probe.insert(match &self.db {
                Db::Sqlite(pool) => {
                    Probe::Sqlite(pool.connect_options().connect().await.map_err(failed)?)
                }
                Db::Postgres(pool) => {
                    Probe::Postgres(pool.connect_options().connect().await.map_err(failed)?)
                }
                Db::MySql(pool) => {
                    Probe::MySql(pool.connect_options().connect().await.map_err(failed)?)
                }
            }),
        };
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let applied: i64 = match connection {
            Probe::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await,
            Probe::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await,
            Probe::MySql(c) => sqlx::query_scalar(sql).fetch_one(c).await,
        }
        .map_err(failed)?;
        let known = self.migrator().iter().count() as i64;
        if applied < known {
            return Err(format!("{applied} of {known} migrations applied"));
        }
        Ok(())
    }
}
