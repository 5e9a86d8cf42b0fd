//! The `sessions` table: one row per person who completed a sign-in, keyed by the SHA-256 of the
//! cookie's session id. The row holds the [`SessionRecord`] and the LMS token, each sealed
//! (bound to the row's key), and the token's version for the compare-and-swap refresh
//! ([`super::refresh`]). A signed-in request reads all of it in one query ([`Store::load_session`]).
//!
//! The record and the token are sealed apart because they change apart: a reload of the account
//! rewrites the record and never the token, so it cannot put back a token a refresh replaced.

use openedx_client::{Account, Secret, Token};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    Store, StoreError, on_pool,
    revocations::{Kept, Schedule},
};
use crate::keys::{Purpose, hex};

/// What the app keeps about a signed-in person, besides their token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub account: Account,
    pub signed_in_at: i64,
    /// The synchronizer token of every POST form (sign-out, reload): a page elsewhere cannot read
    /// it, so it cannot make the browser post a valid form.
    pub csrf: Secret,
}

impl SessionRecord {
    pub fn new(account: Account, now: i64) -> Self {
        use base64::Engine;
        let csrf =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        Self {
            account,
            signed_in_at: now,
            csrf: Secret::new(csrf),
        }
    }

    /// Whether a submitted form token is this session's (constant-time).
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        self.csrf
            .expose()
            .as_bytes()
            .ct_eq(submitted.as_bytes())
            .into()
    }
}

/// A session's token, and the version a refresh must start from.
#[derive(Clone, Debug)]
pub struct StoredToken {
    pub token: Token,
    pub version: i64,
}

/// A signed-in session as one query reads it.
#[derive(Debug)]
pub struct SignedInRow {
    pub record: SessionRecord,
    pub token: StoredToken,
    /// Unix seconds after which the session is over (idle limit).
    pub expires_at: i64,
}

/// The row key of a session id: its SHA-256, so the database holds no cookie value that would
/// sign anyone in.
pub fn session_key(id: &impl std::fmt::Display) -> String {
    hex(&Sha256::digest(id.to_string().as_bytes()))
}

impl Store {
    /// A live session, everything a request needs, in one query; `None` when there is none (never
    /// issued, signed out, or past `expires_at`).
    pub async fn load_session(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<SignedInRow>, StoreError> {
        let sql = "SELECT record, expiry_date, token, token_version
                   FROM sessions WHERE id = ? AND expiry_date > ?";
        let row: Option<(String, i64, String, i64)> = on_pool!(self, sql, pool => {
            sqlx::query_as(sql).bind(key).bind(now).fetch_optional(pool).await
        })?;
        let Some((record, expires_at, token, version)) = row else {
            return Ok(None);
        };
        Ok(Some(SignedInRow {
            record: self.open(Purpose::SessionRecord, key, &record)?,
            token: StoredToken {
                token: self.open(Purpose::Token, key, &token)?,
                version,
            },
            expires_at,
        }))
    }

    /// Creates a signed-in session with its token, unless `key` is taken (then `false`).
    pub async fn create_session(
        &self,
        key: &str,
        record: &SessionRecord,
        token: &Token,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let record = self.seal(Purpose::SessionRecord, key, record)?;
        let token = self.seal(Purpose::Token, key, token)?;
        // A plain INSERT whose key violation says "taken": the three databases agree on that,
        // where they differ on how to skip a conflict (and MySQL's `INSERT IGNORE` would also
        // hide a value it truncated).
        let sql = "INSERT INTO sessions (id, record, expiry_date, token, created_at)
                   VALUES (?, ?, ?, ?, ?)";
        let inserted = on_pool!(self, sql, pool => {
            sqlx::query(sql)
                .bind(key)
                .bind(&record)
                .bind(expires_at)
                .bind(&token)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match inserted {
            Ok(()) => Ok(true),
            Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces a session's record (after the account was read again); never its token, which
    /// changes only through the compare-and-swap refresh, and never a session that has ended.
    pub async fn save_record(&self, key: &str, record: &SessionRecord) -> Result<(), StoreError> {
        let record = self.seal(Purpose::SessionRecord, key, record)?;
        let sql = "UPDATE sessions SET record = ? WHERE id = ?";
        on_pool!(self, sql, pool => {
            sqlx::query(sql)
                .bind(&record)
                .bind(key)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Pushes a live session's idle expiry back to `expires_at`; `false` when it has ended. A
    /// reaper's claim on a session that is used again is void: its delete checks the claim.
    pub async fn extend_session(
        &self,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE sessions SET expiry_date = ?, reaping_until = NULL
                   WHERE id = ? AND expiry_date > ?";
        let extended = on_pool!(self, sql, pool => {
            sqlx::query(sql)
                .bind(expires_at)
                .bind(key)
                .bind(now)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(extended == 1)
    }

    /// Ends a session, keeping the token it held at that instant for revocation (so a refresh
    /// that lands meanwhile cannot leave a live token behind); `None` when there was none.
    pub async fn end_session(
        &self,
        key: &str,
        schedule: Schedule,
        now: i64,
    ) -> Result<Option<Kept>, StoreError> {
        self.end_session_keeping_token(key, "", &[], schedule, now)
            .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use openedx_client::TokenKind;

    use super::*;
    use crate::store::tests::{temp_db, temp_store};

    pub fn token(access: &str, refresh: &str) -> Token {
        Token {
            access_token: Secret::new(access),
            kind: TokenKind::Jwt,
            expires_at: Some(4_000_000_000),
            scopes: vec!["user_id".into()],
            refresh_token: Some(Secret::new(refresh)),
        }
    }

    pub fn record() -> SessionRecord {
        let account: Account =
            serde_json::from_str(r#"{"username": "ada", "email": "ada@example.org"}"#)
                .expect("account");
        SessionRecord::new(account, 1)
    }

    /// Creates session `key` holding a token of `access`; whether it was created.
    async fn create(store: &Store, key: &str, access: &str) -> bool {
        let expires_at = openedx_client::unix_now() + 3600;
        let (record, token) = (record(), token(access, "refresh"));
        let created = store.create_session(key, &record, &token, expires_at, 1);
        created.await.expect("the database answers")
    }

    async fn access_token_of(store: &Store, key: &str) -> String {
        let row = store
            .load_session(key, 0)
            .await
            .expect("opens")
            .expect("row");
        row.token.token.access_token.expose().to_owned()
    }

    #[tokio::test]
    async fn creating_a_session_whose_key_is_taken_creates_nothing() {
        let store = temp_store().await;
        assert!(create(&store, "k", "a").await);
        assert!(!create(&store, "k", "b").await);
        assert_eq!(access_token_of(&store, "k").await, "a");
    }

    #[tokio::test]
    async fn a_token_moved_to_another_session_row_does_not_open() {
        let store = temp_store().await;
        assert!(create(&store, "a", "access-a").await);
        assert!(create(&store, "b", "access-b").await);
        let moved = "UPDATE sessions SET token = (SELECT token FROM sessions WHERE id = 'a') \
                     WHERE id = 'b'";
        assert_tampered_row_does_not_open(&store, moved, "b").await;
        assert_eq!(access_token_of(&store, "a").await, "access-a");
    }

    #[tokio::test]
    async fn the_record_is_sealed_and_a_changed_one_does_not_open() {
        let store = temp_store().await;
        assert!(create(&store, "k", "a").await);
        let stored: String = on_pool!(store, pool => {
            sqlx::query_scalar("SELECT record FROM sessions").fetch_one(pool).await.expect("record")
        });
        assert!(!stored.contains("ada"), "{stored}");
        // Past the key id (the first six characters): a value whose key id is changed reads as
        // sealed under a key not listed (see `keys`), which is answered apart.
        let changed = "UPDATE sessions SET record = \
                       substr(record, 1, 10) || 'AAAA' || substr(record, 15)";
        assert_tampered_row_does_not_open(&store, changed, "k").await;
    }

    /// Changes the table behind the app's back with `sql`; then session `key` must not open.
    async fn assert_tampered_row_does_not_open(store: &Store, sql: &'static str, key: &str) {
        on_pool!(store, pool => {
            sqlx::query(sql).execute(pool).await.expect("tampered").rows_affected()
        });
        let loaded = store.load_session(key, 0).await;
        assert!(matches!(loaded, Err(StoreError::Sealed)), "{loaded:?}");
    }

    #[tokio::test]
    async fn the_generated_key_is_kept_and_reused_at_the_next_start() {
        let url = format!("sqlite://{}", temp_db().display());
        let first = Store::connect(&url, None).await.expect("first start");
        assert!(create(&first, "k", "a").await);
        first.close().await;
        let second = Store::connect(&url, None).await.expect("second start");
        assert_eq!(access_token_of(&second, "k").await, "a");
    }
}
