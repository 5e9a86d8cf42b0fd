//! tower-sessions' store over the `sessions` table, where a row exists only for a person who
//! completed a sign-in. The row keeps the signed-in record, its expiry, and the LMS token sealed
//! beside it, so one query serves a signed-in request.
//!
//! The token and the stored expiry travel through tower-sessions' [`Record`] under reserved keys
//! ([`TOKEN_KEY`], [`EXPIRES_KEY`]): [`load`](SessionStore::load) fills them in,
//! [`create`](SessionStore::create) takes the token from them (a session is created only with
//! its token, at sign-in), and [`save`](SessionStore::save) writes neither: the token changes only
//! through the compare-and-swap refresh in [`Store`], never by a session save that may be stale.

use std::collections::HashMap;

use async_trait::async_trait;
use openedx_client::{Token, unix_now};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store,
};

use super::{Store, StoreError, StoredToken};
use crate::keys::hex;

/// Reserved record key: the session's token ([`LoadedToken`] on load, [`Token`] on create).
pub const TOKEN_KEY: &str = "_token";
/// Reserved record key: the unix time the stored session expires, as loaded.
pub const EXPIRES_KEY: &str = "_expires_at";

/// A session's token as [`load`](SessionStore::load) hands it to the app.
#[derive(Serialize, Deserialize)]
pub struct LoadedToken {
    pub token: Token,
    pub version: i64,
    pub refreshing_until: Option<i64>,
}

impl From<LoadedToken> for StoredToken {
    fn from(t: LoadedToken) -> Self {
        Self {
            token: t.token,
            version: t.version,
            refreshing_until: t.refreshing_until,
        }
    }
}

/// The row key of a session id: its SHA-256, so the database holds no cookie value that would
/// sign anyone in.
pub fn session_key(id: &Id) -> String {
    hex(&Sha256::digest(id.to_string().as_bytes()))
}

#[derive(Clone, Debug)]
pub struct SessionBackend {
    store: Store,
}

impl SessionBackend {
    pub(super) fn new(store: Store) -> Self {
        Self { store }
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

/// The record's own keys as JSON, without the reserved ones.
fn record_data(record: &Record) -> session_store::Result<String> {
    let own: HashMap<&String, &serde_json::Value> = record
        .data
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .collect();
    serde_json::to_string(&own).map_err(|e| session_store::Error::Encode(e.to_string()))
}

#[async_trait]
impl SessionStore for SessionBackend {
    /// One `INSERT ... ON CONFLICT DO NOTHING`, retried under a new id on a collision.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let token: Token = record
            .data
            .get(TOKEN_KEY)
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| session_store::Error::Decode(e.to_string()))?
            .ok_or_else(|| backend("a session is created only at sign-in, with its token"))?;
        let data = record_data(record)?;
        let expiry = record.expiry_date.unix_timestamp();
        loop {
            let key = session_key(&record.id);
            let created = self
                .store
                .create_session(&key, &data, expiry, &token, unix_now())
                .await
                .map_err(backend)?;
            if created {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let key = session_key(&record.id);
        let data = record_data(record)?;
        self.store
            .save_session(&key, &data, record.expiry_date.unix_timestamp())
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let key = session_key(id);
        let row = match self.store.load_session(&key, unix_now()).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                // Expired, signed out, or never issued: tower-sessions clears the cookie.
                tracing::info!("a session cookie matched no live session; clearing it");
                return Ok(None);
            }
            Err(StoreError::Sealed) => {
                tracing::warn!(
                    "a session's token does not open with SECRET_KEYS (its key was removed from \
                     the list?); treating the session as ended"
                );
                return Ok(None);
            }
            Err(e) => return Err(backend(e)),
        };
        let mut data: HashMap<String, serde_json::Value> = serde_json::from_str(&row.data)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let token = LoadedToken {
            token: row.token.token,
            version: row.token.version,
            refreshing_until: row.token.refreshing_until,
        };
        data.insert(
            TOKEN_KEY.into(),
            serde_json::to_value(token).map_err(|e| session_store::Error::Encode(e.to_string()))?,
        );
        data.insert(EXPIRES_KEY.into(), row.expiry_date.into());
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date: OffsetDateTime::from_unix_timestamp(row.expiry_date)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store
            .delete_session(&session_key(id))
            .await
            .map_err(backend)
    }
}
