//! A signed-in session's LMS token over its life: sealed in the session's row, renewed shortly
//! before it expires by exactly one request however many find it stale (in this process or any
//! replica sharing the database), given up when the LMS will not renew it, and revoked at the
//! LMS whenever its session ends: signed out, replaced, or expired ([`reap_expired`]).
//!
//! Why one refresh only: the LMS rotates refresh tokens, so a second refresh with the same
//! (now spent) refresh token fails with `invalid_grant` and would sign the person out.

use std::time::Duration;

use openedx_client::{Endpoint, LmsError, Token, unix_now};

use crate::{
    state::AppState,
    store::{StoreError, StoredToken},
};

/// Expired sessions a replica claims at once; the rest wait for the next round.
const REAP_BATCH: i64 = 100;
/// Revocations in flight at once, so a backlog does not hit the LMS all together.
const REVOKE_CONCURRENCY: usize = 4;

/// How often a request waiting for another's refresh looks again.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The LMS will not renew the token (revoked, or the refresh token is past its 90 days), or
    /// the token is gone: the person has to sign in again.
    #[error("the LMS will not renew the token")]
    Ended,
    #[error(transparent)]
    Lms(LmsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The session's token (`loaded` with the session), refreshed first if it is stale.
pub async fn fresh(state: &AppState, key: &str, loaded: StoredToken) -> Result<Token, TokenError> {
    let store = &state.store;
    // A claim outlives the refresh call it covers; waiters give up a little after it lapses.
    let claim = state.config.lms.timeout + Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + claim + Duration::from_secs(1);
    let first_seen = loaded.version;
    let mut row = loaded;
    loop {
        let now = unix_now();
        let refreshed_meanwhile =
            row.version != first_seen && !row.token.is_stale(now, Duration::ZERO);
        if refreshed_meanwhile || !row.token.is_stale(now, state.config.token_leeway) {
            return Ok(row.token);
        }
        let until = now + claim.as_secs() as i64;
        if store.claim_refresh(key, row.version, now, until).await? {
            // On its own task: if this request is cancelled (the browser navigates away), the
            // rotated refresh token must still be stored, or the session could never refresh again.
            let task = tokio::spawn(refresh(state.clone(), key.to_owned(), row));
            return task.await.unwrap_or_else(|e| {
                Err(TokenError::Lms(LmsError::Garbage {
                    endpoint: Endpoint::Token,
                    detail: format!("the refresh task failed: {e}"),
                }))
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TokenError::Lms(LmsError::Timeout {
                endpoint: Endpoint::Token,
            }));
        }
        tokio::time::sleep(POLL).await;
        row = store
            .token(key, unix_now())
            .await?
            .ok_or(TokenError::Ended)?;
    }
}

/// Ends a session for good: deletes its row and revokes its token at the LMS. A revocation that
/// fails is logged, and the session is over here all the same: keeping it would not make the LMS
/// listen.
pub async fn end_session(state: &AppState, key: &str) -> Result<(), StoreError> {
    if let Some(token) = state.store.take_session_token(key).await? {
        revoke_even_if_cancelled(state, token).await;
    }
    Ok(())
}

/// Revokes `token` on a task of its own, so that a request cancelled meanwhile (the browser went
/// away, the request timed out) cannot leave a token deleted here but alive at the LMS.
pub async fn revoke_even_if_cancelled(state: &AppState, token: Token) -> bool {
    let task = {
        let state = state.clone();
        tokio::spawn(async move { revoke(&state, &token).await })
    };
    task.await.unwrap_or(false)
}

/// Revokes what the LMS can revoke of `token`, logging a failure.
async fn revoke(state: &AppState, token: &Token) -> bool {
    match state.lms.revoke(token).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "could not revoke a token at the LMS; it was deleted here");
            false
        }
    }
}

/// What one round of [`reap_expired`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    pub sessions: usize,
    pub revoked: usize,
    pub failed: usize,
}

/// Ends sessions past their expiry: claims a batch (so one replica handles each), deletes each
/// one (unless it was used again meanwhile) taking the token it held at that instant, and revokes
/// that token at the LMS, a few at a time, each bounded by `LMS_TIMEOUT_SECS`. A token the LMS
/// could not revoke is gone here anyway (best effort, logged): it dies at the LMS within its own
/// lifetime.
pub async fn reap_expired(state: &AppState) -> Result<Reaped, StoreError> {
    let mut reaped = Reaped::default();
    loop {
        let now = unix_now();
        // The claim outlasts the batch's revocations; a replica that dies mid-way leaves the
        // rest to the next round of whichever replica comes first.
        let rounds = (REAP_BATCH as u64).div_ceil(REVOKE_CONCURRENCY as u64);
        let until = now + (state.config.lms.timeout.as_secs() * rounds) as i64 + 60;
        let batch = state
            .store
            .claim_expired_sessions(now, until, REAP_BATCH)
            .await?;
        let full = batch.len() as i64 == REAP_BATCH;
        for chunk in batch.chunks(REVOKE_CONCURRENCY) {
            let mut revocations = tokio::task::JoinSet::new();
            for key in chunk {
                let (state, key) = (state.clone(), key.clone());
                revocations.spawn(async move {
                    let token = state.store.delete_reaped_session(&key, until, now).await?;
                    Ok::<_, StoreError>(match token {
                        Some(token) => Some(revoke(&state, &token).await),
                        None => None,
                    })
                });
            }
            // Every task of the chunk is awaited, even after one failed: dropping the set would
            // abort a sibling that has deleted its row but not yet revoked its token.
            let mut failed = None;
            while let Some(joined) = revocations.join_next().await {
                reaped.sessions += 1;
                match joined {
                    Ok(Ok(Some(true))) => reaped.revoked += 1,
                    Ok(Ok(Some(false))) => reaped.failed += 1,
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => failed = failed.or(Some(e)),
                    Err(e) => tracing::warn!(error = %e, "an expired session's revocation failed"),
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        if !full {
            break;
        }
    }
    if reaped.sessions > 0 {
        tracing::info!(
            sessions = reaped.sessions,
            revoked = reaped.revoked,
            failed = reaped.failed,
            "ended expired sessions and revoked their tokens at the LMS"
        );
    }
    Ok(reaped)
}

/// Refreshes under a claim this request holds, and stores the result over the version it read.
async fn refresh(state: AppState, key: String, row: StoredToken) -> Result<Token, TokenError> {
    let store = &state.store;
    match state.lms.refresh(&row.token).await {
        Ok(token) => {
            let stored = match store.finish_refresh(&key, row.version, &token).await {
                Ok(stored) => stored,
                Err(e) => {
                    // The LMS rotated the refresh token; unstored, the new one must not stay alive.
                    revoke(&state, &token).await;
                    return Err(e.into());
                }
            };
            if stored {
                tracing::info!("refreshed the access token");
                state.metrics.token_refresh("ok");
                return Ok(token);
            }
            if store.token(&key, unix_now()).await?.is_none() {
                // Signed out while the LMS answered: the new token must not outlive the session.
                revoke(&state, &token).await;
                return Err(TokenError::Ended);
            }
            // The claim lapsed and another request stored a newer token; this one still works
            // for the request at hand.
            tracing::warn!("a refreshed token was not stored: another request refreshed first");
            Ok(token)
        }
        Err(LmsError::OAuth { error, .. }) if error == "invalid_grant" => {
            tracing::info!("the LMS refused to renew the token (invalid_grant); signing out");
            state.metrics.token_refresh("refused");
            store.delete_session_at_version(&key, row.version).await?;
            Err(TokenError::Ended)
        }
        Err(e) => {
            state.metrics.token_refresh("error");
            store.release_refresh(&key, row.version).await?;
            Err(TokenError::Lms(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openedx_client::{Secret, TokenKind};

    fn expiring_at(at: Option<i64>) -> Token {
        Token {
            access_token: Secret::new("a"),
            kind: TokenKind::Jwt,
            expires_at: at,
            scopes: vec![],
            refresh_token: None,
        }
    }

    #[test]
    fn a_token_is_stale_within_the_leeway_of_its_expiry() {
        let leeway = Duration::from_secs(60);
        assert!(expiring_at(Some(1_000)).is_stale(1_000, Duration::ZERO));
        assert!(expiring_at(Some(1_059)).is_stale(1_000, leeway));
        assert!(!expiring_at(Some(1_061)).is_stale(1_000, leeway));
        assert!(
            !expiring_at(None).is_stale(1_000, leeway),
            "no stated expiry: use it until the LMS refuses it"
        );
    }
}
