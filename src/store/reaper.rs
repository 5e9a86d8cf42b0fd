//! Ending expired sessions once across replicas: a replica claims a batch (`reaping_until`), then
//! deletes each claimed row, taking the token it held at that instant for revocation.

use openedx_client::Token;

use super::{Store, StoreError, on_pool};

impl Store {
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
}
