//! Refreshing a session's token exactly once however many requests find it stale, in this process
//! or any replica sharing the database: a request claims the refresh of the version it read
//! (`refreshing_until`), and the refreshed token is stored only over that version.

use openedx_client::Token;

use super::{Store, StoreError, StoredToken, on_pool};
use crate::keys::Purpose;

impl Store {
    /// A live session's token as stored now (for a request waiting out another's refresh).
    pub async fn token(&self, key: &str, now: i64) -> Result<Option<StoredToken>, StoreError> {
        let sql = "SELECT token, token_version FROM sessions WHERE id = ? AND expiry_date > ?";
        let row: Option<(String, i64)> = on_pool!(self, sql, pool => {
            sqlx::query_as(sql).bind(key).bind(now).fetch_optional(pool).await
        })?;
        row.map(|(sealed, version)| {
            Ok(StoredToken {
                token: self.open(Purpose::Token, key, &sealed)?,
                version,
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
        let sql = "UPDATE sessions SET refreshing_until = ?
                   WHERE id = ? AND token_version = ? AND expiry_date > ?
                     AND (refreshing_until IS NULL OR refreshing_until < ?)";
        let affected = on_pool!(self, sql, pool => {
            sqlx::query(sql)
                .bind(until)
                .bind(key)
                .bind(version)
                .bind(now)
                .bind(now)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
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
        let sealed = self.seal(Purpose::Token, key, token)?;
        let sql = "UPDATE sessions
                   SET token = ?, token_version = token_version + 1, refreshing_until = NULL
                   WHERE id = ? AND token_version = ?";
        let affected = on_pool!(self, sql, pool => {
            sqlx::query(sql)
                .bind(&sealed)
                .bind(key)
                .bind(version)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(affected == 1)
    }

    /// Gives up a claim without a new token (the LMS could not be reached), so another request
    /// may try at once.
    pub async fn release_refresh(&self, key: &str, version: i64) -> Result<(), StoreError> {
        let sql = "UPDATE sessions SET refreshing_until = NULL WHERE id = ? AND token_version = ?";
        on_pool!(self, sql, pool => {
            sqlx::query(sql).bind(key).bind(version).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Ends a session only if its token is still at `version`: a refresh the LMS refused must not
    /// end a session whose token another request renewed meanwhile.
    pub async fn delete_session_at_version(
        &self,
        key: &str,
        version: i64,
    ) -> Result<(), StoreError> {
        let sql = "DELETE FROM sessions WHERE id = ? AND token_version = ?";
        on_pool!(self, sql, pool => {
            sqlx::query(sql).bind(key).bind(version).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }
}
