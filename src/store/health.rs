//! Whether the database answers, as one watcher per process finds out ([`Store::watch`]), so that
//! during an outage requests fail at once ([`Store::available`]) and readiness probes answer from
//! what is known ([`Store::readiness`]) instead of each waiting out `DATABASE_TIMEOUT_MS`.
//!
//! The watcher probes on a connection of its own, outside the pool: a pool busy with requests is
//! not an outage, and must not turn every page into a 503. One failed probe makes the app not
//! ready; two in a row make an outage; one answer ends both.

use std::{
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{ConnectOptions, Connection, MySqlConnection, PgConnection, SqliteConnection};

use super::{Db, Store, StoreError, within};

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
    /// When the last probe ended, in milliseconds since [`epoch`]: a watcher that stopped (a
    /// panic) must not leave its last finding standing.
    last_probe_ms: AtomicU64,
}

/// The origin of [`Health::last_probe_ms`].
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_since_epoch() -> u64 {
    epoch().elapsed().as_millis() as u64
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
        // A finding the watcher no longer renews is no reason to refuse anyone.
        match self.health.down.load(Ordering::Relaxed) && !self.watcher_stalled() {
            true => Err(StoreError::Unavailable),
            false => Ok(()),
        }
    }

    /// Whether a watcher runs but has not finished a probe for far longer than a probe takes.
    fn watcher_stalled(&self) -> bool {
        let last = self.health.last_probe_ms.load(Ordering::Relaxed);
        let limit = 2 * (self.timeout + Duration::from_millis(500)) + Duration::from_secs(1);
        self.health.watched.load(Ordering::Relaxed)
            && millis_since_epoch().saturating_sub(last) > limit.as_millis() as u64
    }

    /// Ready: the database answers and every migration this build knows is applied. From the
    /// watcher's last probe (at most half a second old) when one runs, so a readiness probe at any
    /// rate costs the database nothing; otherwise asked now, within the timeout.
    pub async fn readiness(&self) -> Result<(), String> {
        if !self.health.watched.load(Ordering::Relaxed) {
            return self.check().await;
        }
        if self.watcher_stalled() {
            return Err("the database watcher has stopped probing".into());
        }
        if self.health.failing.load(Ordering::Relaxed) {
            let last = self.health.last_error.lock().map(|e| e.clone());
            return Err(last.ok().flatten().unwrap_or_else(|| "unreachable".into()));
        }
        Ok(())
    }

    /// Watches the database for as long as it runs: a probe every 500 ms while it answers, every
    /// 200 ms after a failure, each bounded by 400 ms (or the timeout, if shorter). Logs the start and the end of an
    /// outage, once each.
    pub async fn watch(self) {
        self.health
            .last_probe_ms
            .store(millis_since_epoch(), Ordering::Relaxed);
        self.health.watched.store(true, Ordering::Relaxed);
        let mut probe = None;
        let (mut failures, mut down_since) = (0, None::<std::time::Instant>);
        // A probe's answer is a row of a tiny table: a database that takes longer than this for
        // it is as good as gone, and a silent one is noticed within a second (a probe every
        // 500 ms, each given at most 400 ms).
        let probe_timeout = self.timeout.min(Duration::from_millis(400));
        loop {
            // Both at once, each within the timeout: the watcher's own connection, and one of
            // the pool's. A new connection can fail where the pool's still work (a server at its
            // connection limit), so either answering is an answer.
            let (own, pooled) = tokio::join!(
                tokio::time::timeout(probe_timeout, self.probe(&mut probe)),
                self.pool_answers(probe_timeout)
            );
            if !matches!(own, Ok(Ok(()))) {
                // A connection that failed once is not trusted again.
                probe = None;
            }
            let answered = match own {
                Ok(Ok(())) => Ok(()),
                _ if pooled => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {} ms", probe_timeout.as_millis())),
            };
            self.health
                .last_probe_ms
                .store(millis_since_epoch(), Ordering::Relaxed);
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

    /// Whether a connection of the pool answers a ping within `timeout`.
    async fn pool_answers(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let pinged: Result<(), StoreError> = match &self.db {
            Db::Sqlite(pool) => within!(deadline, pool, conn => conn.ping().await),
            Db::Postgres(pool) => within!(deadline, pool, conn => conn.ping().await),
            Db::MySql(pool) => within!(deadline, pool, conn => conn.ping().await),
        };
        pinged.is_ok()
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::store::{Db, tests::temp_store};

    #[tokio::test]
    async fn a_pool_busy_to_the_last_connection_is_no_outage() {
        let store = temp_store().await;
        let watcher = tokio::spawn(store.clone().watch());
        let Db::Sqlite(pool) = &store.db else {
            unreachable!("a temporary store is SQLite")
        };
        let mut held = Vec::new();
        for _ in 0..pool.options().get_max_connections() {
            held.push(pool.acquire().await.expect("a connection"));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(store.available().is_ok());
        assert_eq!(store.readiness().await, Ok(()));
        drop(held);
        watcher.abort();
    }

    #[tokio::test]
    async fn a_watcher_that_stopped_leaves_no_finding_standing() {
        let store = temp_store().await;
        let watcher = tokio::spawn(store.clone().watch());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.readiness().await, Ok(()));
        watcher.abort();
        tokio::time::sleep(store.timeout * 2 + Duration::from_secs(2)).await;
        assert!(store.readiness().await.is_err(), "stale: not ready");
        assert!(store.available().is_ok(), "stale: nobody refused for it");
    }
}
