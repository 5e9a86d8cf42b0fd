//! Ending expired sessions once across replicas: a replica claims a batch (`reaping_until`), then
//! deletes each claimed row, taking the token it held at that instant for revocation.

use sqlx::{AssertSqlSafe, Connection};

use super::{
    Db, Store, StoreError, numbered,
    revocations::{Kept, Schedule},
    within,
};

impl Store {
    /// Claims up to `limit` expired sessions until `until`, so that one replica ends them while
    /// the others skip them; returns their keys.
    pub async fn claim_expired_sessions(
        &self,
        now: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        // The conditions stand in the outer `WHERE` too: PostgreSQL re-checks only those after
        // waiting for a row another replica just claimed.
        let sql = "UPDATE sessions SET reaping_until = ?
                   WHERE id IN (SELECT id FROM sessions
                                WHERE expiry_date <= ?
                                  AND (reaping_until IS NULL OR reaping_until < ?)
                                LIMIT ?)
                     AND expiry_date <= ?
                     AND (reaping_until IS NULL OR reaping_until < ?)
                   RETURNING id";
        let deadline = tokio::time::Instant::now() + self.timeout;
        let keys = match &self.db {
            Db::Sqlite(pool) => within!(deadline, pool, conn => {
                let query = sqlx::query_scalar(sql).bind(until).bind(now).bind(now);
                let query = query.bind(limit).bind(now).bind(now);
                query.fetch_all(conn).await
            })?,
            Db::Postgres(pool) => within!(deadline, pool, conn => {
                let query = sqlx::query_scalar(AssertSqlSafe(numbered(sql)));
                let query = query.bind(until).bind(now).bind(now);
                let query = query.bind(limit).bind(now).bind(now);
                query.fetch_all(conn).await
            })?,
            // MySQL can neither update a table it selects from in a subquery, nor return what it
            // updated: the batch is locked and read (`SKIP LOCKED`: rows another replica is
            // claiming are left to it), then claimed, in one transaction.
            Db::MySql(pool) => within!(deadline, pool, conn => {
                let mut tx = conn.begin().await?;
                let select = "SELECT id FROM sessions
                              WHERE expiry_date <= ? AND (reaping_until IS NULL OR reaping_until < ?)
                              LIMIT ? FOR UPDATE SKIP LOCKED";
                let keys: Vec<String> = sqlx::query_scalar(select)
                    .bind(now)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                if !keys.is_empty() {
                    // Placeholders only: the keys are bound.
                    let marks = vec!["?"; keys.len()].join(", ");
                    let update =
                        format!("UPDATE sessions SET reaping_until = ? WHERE id IN ({marks})");
                    let query = sqlx::query(AssertSqlSafe(update)).bind(until);
                    let query = keys.iter().fold(query, |q, k| q.bind(k));
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(keys)
            })?,
        };
        Ok(keys)
    }

    /// Ends an expired session this replica claimed, unless it was used again meanwhile, keeping
    /// the token it held at that instant for revocation: the one to revoke, even if a refresh
    /// replaced the token the claim saw. `None` when the session was used again or is gone.
    pub async fn end_reaped_session(
        &self,
        key: &str,
        claimed_until: i64,
        schedule: Schedule,
        now: i64,
    ) -> Result<Option<Kept>, StoreError> {
        let and = " AND reaping_until = ? AND expiry_date <= ?";
        self.end_session_keeping_token(key, and, &[claimed_until, now], schedule, now)
            .await
    }
}
