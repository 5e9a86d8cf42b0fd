//! A signed-in session's LMS token over its life: kept in the `tokens` table, renewed shortly
//! before it expires by exactly one request however many find it stale (in this process or any
//! replica sharing the database), and given up when the LMS will not renew it.
//!
//! Why one refresh only: the LMS rotates refresh tokens, so a second refresh with the same
//! (now spent) refresh token fails with `invalid_grant` and would sign the person out.

use std::time::Duration;

use crate::{
    AppState,
    lms::{Endpoint, LmsError, Token, unix_now},
    store::{StoreError, StoredToken},
};

/// How often a request waiting for another's refresh looks again.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub enum TokenError {
    /// The LMS will not renew the token (revoked, or the refresh token is past its 90 days), or
    /// the token is gone: the person has to sign in again.
    Ended,
    Lms(LmsError),
    Store(StoreError),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The session's token, refreshed first if it is stale.
pub async fn fresh(state: &AppState, id: &str) -> Result<Token, TokenError> {
    let store = &state.store;
    // A claim outlives the refresh call it covers; waiters give up a little after it lapses.
    let claim = state.config.lms_timeout + Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + claim + Duration::from_secs(1);
    let mut first_seen = None;
    loop {
        let now = unix_now();
        let row = store.token(id).await?.ok_or(TokenError::Ended)?;
        let seen = *first_seen.get_or_insert(row.version);
        let refreshed_meanwhile = row.version != seen && !row.token.is_stale(now, Duration::ZERO);
        if refreshed_meanwhile || !row.token.is_stale(now, state.config.token_leeway) {
            return Ok(row.token);
        }
        let until = now + claim.as_secs() as i64;
        if store.claim_refresh(id, row.version, now, until).await? {
            // On its own task: if this request is cancelled (the browser navigates away), the
            // rotated refresh token must still be stored, or the session could never refresh again.
            let task = tokio::spawn(refresh(state.clone(), id.to_owned(), row));
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
    }
}

/// Refreshes under a claim this request holds, and stores the result over the version it read.
async fn refresh(state: AppState, id: String, row: StoredToken) -> Result<Token, TokenError> {
    let store = &state.store;
    match state.lms.refresh(&row.token).await {
        Ok(token) => {
            if store
                .finish_refresh(&id, row.version, &token, unix_now())
                .await?
            {
                tracing::info!("refreshed the access token");
                state.metrics.token_refresh("ok");
                return Ok(token);
            }
            if store.token(&id).await?.is_none() {
                // Signed out while the LMS answered: the new token must not outlive the session.
                if let Err(e) = state.lms.revoke(&token).await {
                    tracing::warn!(error = %e, "could not revoke a token refreshed during sign-out");
                }
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
            store.delete_token_version(&id, row.version).await?;
            Err(TokenError::Ended)
        }
        Err(e) => {
            state.metrics.token_refresh("error");
            store.release_refresh(&id, row.version).await?;
            Err(TokenError::Lms(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{lms::TokenKind, secret::Secret};

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
