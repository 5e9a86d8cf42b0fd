//! The `revocations` table: tokens whose revocation the LMS has not confirmed yet. A session's
//! token moves here in the same transaction that ends the session ([`Store::end_session`]), so
//! no crash, cancelled request or LMS outage between the two can lose it; the row goes once the
//! LMS confirms. Until then any replica may claim it and try again ([`Store::claim_due_revocations`]).
//!
//! The LMS answers 200 to the revocation of a token it has already revoked (RFC 7009 §2.2), so a
//! replica that dies after the LMS confirmed but before the row went leaves a retry that changes
//! nothing: exactly once in effect.

use openedx_client::Token;
use sqlx::{AssertSqlSafe, Connection};

use super::{Db, Store, StoreError, numbered, on_pool, within};
use crate::keys::{Purpose, hex};

/// A kept revocation as the database holds it: the token still sealed.
#[derive(Clone, Debug)]
pub struct Kept {
    pub id: String,
    /// The associated data the token is sealed with (the ended session's row key, or `id`).
    sealed_for: String,
    token: String,
    /// Failed tries so far.
    pub attempts: i64,
    /// Unix seconds after which the token is dead at the LMS anyway.
    pub give_up_at: i64,
    /// The claim under which this replica tries it (`None`: kept by this replica just now,
    /// before any claim); a change is written only while the claim is still this one.
    pub claimed_until: Option<i64>,
}

/// When a kept revocation is tried next and when it is given up.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Unix seconds before which no replica tries it (the one that kept it tries first).
    pub next_attempt_at: i64,
    pub give_up_at: i64,
}

const INSERT: &str = "INSERT INTO revocations
        (id, sealed_for, token, give_up_at, next_attempt_at, created_at)
    VALUES (?, ?, ?, ?, ?, ?)";

/// A random row id: 128 bits, hex.
fn new_id() -> String {
    hex(&rand::random::<[u8; 16]>())
}

impl Store {
    /// Opens a kept token; [`StoreError::KeyMissing`] when it is sealed under a key this
    /// replica lacks (another may have it).
    pub fn open_kept(&self, kept: &Kept) -> Result<Token, StoreError> {
        self.open(Purpose::Token, &kept.sealed_for, &kept.token)
    }

    /// Keeps `token` (one no session holds: a sign-in that failed after the exchange, a refresh
    /// that could not be stored) for revocation; returns its row id.
    pub async fn keep_revocation(
        &self,
        token: &Token,
        schedule: Schedule,
        now: i64,
    ) -> Result<String, StoreError> {
        let id = new_id();
        let sealed = self.seal(Purpose::Token, &id, token)?;
        let sql = INSERT;
        on_pool!(self, sql, pool => {
            sqlx::query(sql)
                .bind(&id)
                .bind(&id)
                .bind(&sealed)
                .bind(schedule.give_up_at)
                .bind(schedule.next_attempt_at)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(id)
    }

    /// Deletes the session `key` if `and` (more conditions, on `extra`) holds, and keeps the
    /// token it held at that instant for revocation, in one transaction: a refresh that lands
    /// meanwhile waits, then finds no row; a crash leaves either the session or the revocation.
    /// `None` when there was no such session.
    pub(super) async fn end_session_keeping_token(
        &self,
        key: &str,
        and: &str,
        extra: &[i64],
        schedule: Schedule,
        now: i64,
    ) -> Result<Option<Kept>, StoreError> {
        // `and` is one of the sessions module's constant conditions, never a value.
        let delete = format!("DELETE FROM sessions WHERE id = ?{and} RETURNING token");
        let id = new_id();
        let deadline = tokio::time::Instant::now() + self.timeout;
        macro_rules! keep {
            ($tx:expr, $token:expr, $insert:expr) => {
                if let Some(token) = &$token {
                    sqlx::query($insert)
                        .bind(&id)
                        .bind(key)
                        .bind(token)
                        .bind(schedule.give_up_at)
                        .bind(schedule.next_attempt_at)
                        .bind(now)
                        .execute(&mut *$tx)
                        .await?;
                }
            };
        }
        let token: Option<String> = match &self.db {
            Db::Sqlite(pool) => within!(deadline, pool, conn => {
                let mut tx = conn.begin().await?;
                let query = sqlx::query_scalar(AssertSqlSafe(delete)).bind(key);
                let token = extra.iter().fold(query, |q, v| q.bind(*v));
                let token = token.fetch_optional(&mut *tx).await?;
                keep!(tx, token, INSERT);
                tx.commit().await?;
                Ok::<_, sqlx::Error>(token)
            })?,
            Db::Postgres(pool) => within!(deadline, pool, conn => {
                let mut tx = conn.begin().await?;
                let query = sqlx::query_scalar(AssertSqlSafe(numbered(&delete))).bind(key);
                let token = extra.iter().fold(query, |q, v| q.bind(*v));
                let token = token.fetch_optional(&mut *tx).await?;
                keep!(tx, token, AssertSqlSafe(numbered(INSERT)));
                tx.commit().await?;
                Ok::<_, sqlx::Error>(token)
            })?,
            // MySQL has no `DELETE ... RETURNING`: the row is locked and read, then deleted.
            Db::MySql(pool) => within!(deadline, pool, conn => {
                let mut tx = conn.begin().await?;
                let select = format!("SELECT token FROM sessions WHERE id = ?{and} FOR UPDATE");
                let query = sqlx::query_scalar(AssertSqlSafe(select)).bind(key);
                let token = extra.iter().fold(query, |q, v| q.bind(*v));
                let token: Option<String> = token.fetch_optional(&mut *tx).await?;
                if token.is_some() {
                    sqlx::query("DELETE FROM sessions WHERE id = ?")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                keep!(tx, token, INSERT);
                tx.commit().await?;
                Ok::<_, sqlx::Error>(token)
            })?,
        };
        Ok(token.map(|token| Kept {
            id,
            sealed_for: key.to_owned(),
            token,
            attempts: 0,
            give_up_at: schedule.give_up_at,
            claimed_until: None,
        }))
    }

    /// The LMS confirmed (or the token is past saving): the row goes.
    pub async fn forget_revocation(&self, id: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM revocations WHERE id = ?";
        on_pool!(self, sql, pool => {
            sqlx::query(sql).bind(id).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Another failed try: counted, and left for `next_attempt_at`, unclaimed; unless another
    /// replica has claimed it since (this replica's claim lapsed), whose try then counts.
    pub async fn postpone_revocation(
        &self,
        kept: &Kept,
        attempts: i64,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        let sql = match kept.claimed_until {
            Some(_) => {
                "UPDATE revocations SET attempts = ?, next_attempt_at = ?, claimed_until = NULL
                 WHERE id = ? AND claimed_until = ?"
            }
            None => {
                "UPDATE revocations SET attempts = ?, next_attempt_at = ?, claimed_until = NULL
                 WHERE id = ? AND claimed_until IS NULL"
            }
        };
        on_pool!(self, sql, pool => {
            let query = sqlx::query(sql).bind(attempts).bind(next_attempt_at).bind(&kept.id);
            match kept.claimed_until {
                Some(until) => query.bind(until),
                None => query,
            }
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Whether any kept revocation is due: one indexed read, so replicas can ask every second
    /// without writing anything while there is nothing to do.
    pub async fn revocations_due(&self, now: i64) -> Result<bool, StoreError> {
        let sql = "SELECT id FROM revocations
                   WHERE next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)
                   LIMIT 1";
        let due: Option<String> = on_pool!(self, sql, pool => {
            sqlx::query_scalar(sql).bind(now).bind(now).fetch_optional(pool).await
        })?;
        Ok(due.is_some())
    }

    /// How many revocations are kept, due or not (for `/metrics` and the tests).
    pub async fn revocations_kept(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM revocations";
        let kept = on_pool!(self, sql, pool => {
            sqlx::query_scalar(sql).fetch_one(pool).await
        })?;
        Ok(kept)
    }

    /// Claims up to `limit` due revocations until `until`, so one replica tries each while the
    /// others skip them.
    pub async fn claim_due_revocations(
        &self,
        now: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<Kept>, StoreError> {
        // The conditions stand in the outer `WHERE` too: PostgreSQL re-checks only those after
        // waiting for a row another replica just claimed.
        let sql = "UPDATE revocations SET claimed_until = ?
                   WHERE id IN (SELECT id FROM revocations
                                WHERE next_attempt_at <= ?
                                  AND (claimed_until IS NULL OR claimed_until < ?)
                                LIMIT ?)
                     AND next_attempt_at <= ?
                     AND (claimed_until IS NULL OR claimed_until < ?)
                   RETURNING id, sealed_for, token, attempts, give_up_at";
        type Row = (String, String, String, i64, i64);
        let deadline = tokio::time::Instant::now() + self.timeout;
        let rows: Vec<Row> = match &self.db {
            Db::Sqlite(pool) => within!(deadline, pool, conn => {
                let query = sqlx::query_as(sql).bind(until).bind(now).bind(now);
                query
                    .bind(limit)
                    .bind(now)
                    .bind(now)
                    .fetch_all(conn)
                    .await
            })?,
            Db::Postgres(pool) => within!(deadline, pool, conn => {
                let query = sqlx::query_as(AssertSqlSafe(numbered(sql)));
                let query = query.bind(until).bind(now).bind(now);
                query
                    .bind(limit)
                    .bind(now)
                    .bind(now)
                    .fetch_all(conn)
                    .await
            })?,
            // As in the reaper: MySQL locks and reads the batch (skipping rows another replica is
            // claiming), then claims it, in one transaction.
            Db::MySql(pool) => within!(deadline, pool, conn => {
                let mut tx = conn.begin().await?;
                let select = "SELECT id, sealed_for, token, attempts, give_up_at FROM revocations
                              WHERE next_attempt_at <= ?
                                AND (claimed_until IS NULL OR claimed_until < ?)
                              LIMIT ? FOR UPDATE SKIP LOCKED";
                let rows: Vec<Row> = sqlx::query_as(select)
                    .bind(now)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                if !rows.is_empty() {
                    // Placeholders only: the ids are bound.
                    let marks = vec!["?"; rows.len()].join(", ");
                    let update =
                        format!("UPDATE revocations SET claimed_until = ? WHERE id IN ({marks})");
                    let query = sqlx::query(AssertSqlSafe(update)).bind(until);
                    let query = rows.iter().fold(query, |q, r| q.bind(&r.0));
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(rows)
            })?,
        };
        Ok(rows
            .into_iter()
            .map(|(id, sealed_for, token, attempts, give_up_at)| Kept {
                id,
                sealed_for,
                token,
                attempts,
                give_up_at,
                claimed_until: Some(until),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{sessions::tests::token, tests::temp_store};

    const SOON: Schedule = Schedule {
        next_attempt_at: 10,
        give_up_at: 1_000,
    };

    #[tokio::test]
    async fn a_kept_token_is_sealed_and_claimed_by_one_replica_at_a_time() {
        let store = temp_store().await;
        let id = store
            .keep_revocation(&token("access", "refresh-me"), SOON, 1)
            .await
            .expect("kept");
        let raw: String = on_pool!(store, pool => {
            sqlx::query_scalar("SELECT token FROM revocations").fetch_one(pool).await.expect("row")
        });
        assert!(!raw.contains("refresh-me"));
        assert!(
            !store.revocations_due(9).await.expect("reads"),
            "not due yet"
        );
        assert!(store.revocations_due(10).await.expect("reads"));
        let claimed = store
            .claim_due_revocations(10, 20, 10)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, id);
        let opened = store.open_kept(&claimed[0]).expect("opens");
        assert_eq!(
            opened.refresh_token.expect("refresh").expose(),
            "refresh-me"
        );
        let again = store
            .claim_due_revocations(11, 21, 10)
            .await
            .expect("claim");
        assert!(again.is_empty(), "claimed by the first until 20");
        // A replica whose claim lapsed (until 19) cannot undo a newer one's work.
        let mut stale = claimed[0].clone();
        stale.claimed_until = Some(19);
        store
            .postpone_revocation(&stale, 5, 100)
            .await
            .expect("ignored");
        let claimed = store
            .claim_due_revocations(21, 30, 10)
            .await
            .expect("claim");
        assert_eq!(
            claimed[0].attempts, 0,
            "the lapsed claim's postponement was not written"
        );
        store
            .postpone_revocation(&claimed[0], 1, 30)
            .await
            .expect("postponed");
        let early = store
            .claim_due_revocations(29, 40, 10)
            .await
            .expect("claim");
        assert!(early.is_empty(), "not due before 30");
        let due = store
            .claim_due_revocations(30, 40, 10)
            .await
            .expect("claim");
        assert_eq!(due[0].attempts, 1);
        store.forget_revocation(&id).await.expect("forgotten");
        assert_eq!(store.revocations_kept().await.expect("count"), 0);
    }
}
