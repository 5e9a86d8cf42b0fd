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
    store::{Kept, Schedule, StoreError, StoredToken},
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

/// Ends a session for good: deletes its row, keeping its token for revocation in the same
/// transaction, then revokes it at the LMS (`settle`). A revocation the LMS does not confirm is
/// retried later ([`retry_revocations`]); the session is over here all the same.
pub async fn end_session(state: &AppState, key: &str) -> Result<(), StoreError> {
    let now = unix_now();
    let schedule = first_try(state, now);
    if let Some(kept) = state.store.end_session(key, schedule, now).await? {
        settle_even_if_cancelled(state, kept).await;
    }
    Ok(())
}

/// When a kept revocation's first retry may come, leaving the replica that kept it time for its
/// own try; and when it is given up: a refresh token is dead at the LMS 90 days after it was
/// issued (`REFRESH_TOKEN_EXPIRE_SECONDS`, `openedx_client::wire`), and revoking it is moot then.
fn first_try(state: &AppState, now: i64) -> Schedule {
    let own_try = state.config.lms.timeout.as_secs() as i64 * 2 + 5;
    Schedule {
        next_attempt_at: now + own_try,
        give_up_at: now + REFRESH_TOKEN_LIFETIME_SECS,
    }
}

/// `REFRESH_TOKEN_EXPIRE_SECONDS` in edx-platform's `lms/envs/common.py`.
const REFRESH_TOKEN_LIFETIME_SECS: i64 = 90 * 86_400;

/// The wait before try `attempts + 1`: from 5 s, doubled each time, up to
/// `REVOCATION_RETRY_MAX_SECS`, less up to a fifth at random so that replicas' retries spread.
fn backoff(attempts: i64, max: Duration) -> i64 {
    let max = max.as_secs().max(1);
    let wait = 5u64
        .saturating_mul(1u64 << (attempts - 1).clamp(0, 30))
        .min(max);
    (wait - rand::Rng::gen_range(&mut rand::thread_rng(), 0..=wait / 5)) as i64
}

/// [`settle`] on a task of its own, so that a request cancelled meanwhile (the browser went
/// away, the request timed out) leaves the revocation done or kept, never half-way.
async fn settle_even_if_cancelled(state: &AppState, kept: Kept) {
    let state = state.clone();
    let settled = tokio::spawn(async move { settle(&state, kept).await }).await;
    if let Ok(Ok(Settled::NotHere(key_id))) = settled {
        report_not_here(&[key_id].into(), 1);
    }
}

/// How trying a kept revocation ended.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    Revoked,
    Postponed,
    /// Sealed under a key this replica lacks (its id): left for one that has it.
    NotHere(String),
    /// Past saving (altered in the database, or dead at the LMS anyway): dropped, and said so.
    Dropped,
}

/// Tries a kept revocation once: confirmed, the row goes; refused or unanswered, it is
/// postponed with back-off; a token that does not open here is left for a replica that can open
/// it, or dropped when nothing can or it has expired anyway, with a log line that says so.
async fn settle(state: &AppState, kept: Kept) -> Result<Settled, StoreError> {
    let store = &state.store;
    let now = unix_now();
    let token = match store.open_kept(&kept) {
        Ok(token) => token,
        Err(StoreError::KeyMissing(key_id)) if now < kept.give_up_at => {
            let retry = now + backoff(i64::MAX, state.config.revocation_retry_max);
            store
                .postpone_revocation(&kept, kept.attempts, retry)
                .await?;
            state.metrics.revocation("not_here");
            return Ok(Settled::NotHere(key_id));
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "dropped a token to revoke that does not open here and never will (altered, or \
                 past its lifetime)"
            );
            store.forget_revocation(&kept.id).await?;
            state.metrics.revocation("dropped");
            return Ok(Settled::Dropped);
        }
    };
    match state.lms.revoke(&token).await {
        Ok(()) => {
            store.forget_revocation(&kept.id).await?;
            if kept.attempts > 0 {
                tracing::info!(
                    attempts = kept.attempts + 1,
                    "the LMS confirmed a kept revocation"
                );
            }
            state.metrics.revocation("revoked");
            Ok(Settled::Revoked)
        }
        Err(e) if now >= kept.give_up_at => {
            tracing::info!(error = %e, "gave up a revocation: the token has expired at the LMS");
            store.forget_revocation(&kept.id).await?;
            state.metrics.revocation("dropped");
            Ok(Settled::Dropped)
        }
        Err(e) => {
            let attempts = kept.attempts + 1;
            let next = now + backoff(attempts, state.config.revocation_retry_max);
            tracing::warn!(
                error = %e,
                attempts,
                retry_in_secs = next - now,
                "the LMS did not confirm a revocation; kept to try again"
            );
            store.postpone_revocation(&kept, attempts, next).await?;
            state.metrics.revocation("postponed");
            Ok(Settled::Postponed)
        }
    }
}

/// Says once that revocations are waiting for a key this replica lacks: per round, not per row.
fn report_not_here(key_ids: &std::collections::BTreeSet<String>, rows: usize) {
    // Once a minute at most: a backlog under a lost key comes due a batch at a time.
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = unix_now();
    let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    if rows == 0 || now - last < 60 {
        return;
    }
    LAST.store(now, std::sync::atomic::Ordering::Relaxed);
    tracing::error!(
        rows,
        key_ids = ?key_ids,
        "tokens to revoke are sealed under keys SECRET_KEYS does not list here; left for a \
         replica that has them (add the keys to SECRET_KEYS; reported once a minute)"
    );
}

/// Revokes `token`, which no session holds (a sign-in that failed after the code exchange, a
/// refreshed token that could not be stored), on a task of its own. If the LMS does not confirm,
/// the token is kept for [`retry_revocations`]; if the database cannot keep it either, this
/// process keeps trying both, with back-off, until one works or the token has expired.
pub async fn revoke_or_keep(state: &AppState, token: Token) {
    let task = tokio::spawn(revoke_until_done(state.clone(), token));
    // The first round is awaited (a sign-in's page follows it); later rounds are not.
    let first_round = state.config.lms.timeout + state.config.database_timeout * 2;
    let _ = tokio::time::timeout(first_round, task).await;
}

/// [`revoke_or_keep`]'s rounds: revoke, else keep, else wait and try both again. While a token is
/// held here only, [`AppState::held_revocations`] counts it, so a stop can say what it loses.
async fn revoke_until_done(state: AppState, token: Token) {
    let give_up_at = unix_now() + REFRESH_TOKEN_LIFETIME_SECS;
    let mut attempts = 0;
    // Counted from the start: a stop during the first round loses the token too.
    let _held = HeldHere::new(&state);
    loop {
        let Err(e) = state.lms.revoke(&token).await else {
            state.metrics.revocation("revoked");
            return;
        };
        let now = unix_now();
        attempts += 1;
        let wait = backoff(attempts, state.config.revocation_retry_max);
        let schedule = Schedule {
            next_attempt_at: now + wait,
            give_up_at,
        };
        let kept = state.store.keep_revocation(&token, schedule, now).await;
        let stored = match kept {
            Ok(_) => {
                tracing::warn!(error = %e, "the LMS did not confirm a revocation; kept to try again");
                state.metrics.revocation("postponed");
                return;
            }
            Err(stored) => stored,
        };
        if now >= give_up_at {
            tracing::warn!("gave up a revocation held in memory: the token has expired at the LMS");
            return;
        }
        tracing::error!(
            error = %e,
            database = %stored,
            retry_in_secs = wait,
            "neither the LMS nor the database answered: this process holds a token to revoke and \
             keeps trying both"
        );
        tokio::time::sleep(Duration::from_secs(wait as u64)).await;
    }
}

/// Counts a token held in this process only, for as long as it is.
struct HeldHere(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl HeldHere {
    fn new(state: &AppState) -> Self {
        let count = state.held_revocations.clone();
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for HeldHere {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What one round of [`retry_revocations`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Retried {
    pub revoked: usize,
    pub postponed: usize,
    pub not_here: usize,
    pub dropped: usize,
}

/// Kept revocations whose time has come: claimed a batch at a time (so one replica tries each),
/// tried a few at once, each bounded by `LMS_TIMEOUT_SECS`. Costs one indexed read when nothing
/// is due.
pub async fn retry_revocations(state: &AppState) -> Result<Retried, StoreError> {
    let mut retried = Retried::default();
    let now = unix_now();
    if !state.store.revocations_due(now).await? {
        return Ok(retried);
    }
    let until = now + claim_secs(state);
    let batch = state
        .store
        .claim_due_revocations(now, until, REAP_BATCH)
        .await?;
    let mut failed = None;
    let mut missing_keys = std::collections::BTreeSet::new();
    for chunk in batch.chunks(REVOKE_CONCURRENCY) {
        let mut tries = tokio::task::JoinSet::new();
        for kept in chunk {
            let (state, kept) = (state.clone(), kept.clone());
            tries.spawn(async move { settle(&state, kept).await });
        }
        // Every task is awaited, even after one failed: each holds a claim it should settle.
        while let Some(joined) = tries.join_next().await {
            match joined {
                Ok(Ok(Settled::Revoked)) => retried.revoked += 1,
                Ok(Ok(Settled::Postponed)) => retried.postponed += 1,
                Ok(Ok(Settled::NotHere(key_id))) => {
                    retried.not_here += 1;
                    missing_keys.insert(key_id);
                }
                Ok(Ok(Settled::Dropped)) => retried.dropped += 1,
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(e) => tracing::warn!(error = %e, "a kept revocation's try failed"),
            }
        }
    }
    report_not_here(&missing_keys, retried.not_here);
    match failed {
        Some(e) => Err(e),
        None => Ok(retried),
    }
}

/// How long a replica's claim on a batch lasts: every round of [`REVOKE_CONCURRENCY`] tries at
/// most two LMS calls long (an opaque access token is revoked after its refresh token), plus a
/// minute for the database.
fn claim_secs(state: &AppState) -> i64 {
    let rounds = (REAP_BATCH as u64).div_ceil(REVOKE_CONCURRENCY as u64);
    (state.config.lms.timeout.as_secs() * 2 * rounds) as i64 + 60
}

/// What one round of [`reap_expired`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    pub sessions: usize,
    pub revoked: usize,
    pub failed: usize,
}

/// Ends sessions past their expiry: claims a batch (so one replica handles each), ends each one
/// (unless it was used again meanwhile), keeping the token it held at that instant, and revokes
/// that token at the LMS, a few at a time, each bounded by `LMS_TIMEOUT_SECS`. A revocation the
/// LMS does not confirm stays kept for [`retry_revocations`].
pub async fn reap_expired(state: &AppState) -> Result<Reaped, StoreError> {
    let mut reaped = Reaped::default();
    loop {
        let now = unix_now();
        // The claim outlasts the batch's revocations; a replica that dies mid-way leaves the
        // rest to the next round of whichever replica comes first.
        let until = now + claim_secs(state);
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
                    // From now, not the batch's start: later chunks run later.
                    let schedule = first_try(&state, unix_now());
                    let store = &state.store;
                    match store.end_reaped_session(&key, until, schedule, now).await? {
                        Some(kept) => settle(&state, kept).await.map(Some),
                        None => Ok(None),
                    }
                });
            }
            // Every task of the chunk is awaited, even after one failed: dropping the set would
            // abort a sibling that has ended its session but not yet tried its revocation.
            let mut failed = None;
            while let Some(joined) = revocations.join_next().await {
                reaped.sessions += 1;
                match joined {
                    Ok(Ok(Some(Settled::Revoked))) => reaped.revoked += 1,
                    Ok(Ok(Some(Settled::NotHere(key_id)))) => {
                        reaped.failed += 1;
                        report_not_here(&[key_id].into(), 1);
                    }
                    Ok(Ok(Some(_))) => reaped.failed += 1,
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
            kept_to_retry = reaped.failed,
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
                    revoke_or_keep(&state, token).await;
                    return Err(e.into());
                }
            };
            if stored {
                tracing::info!("refreshed the access token");
                state.metrics.token_refresh("ok");
                return Ok(token);
            }
            // Not stored, so nobody could revoke the new token later: it is revoked now, whatever
            // the session became meanwhile.
            let current = store.token(&key, unix_now()).await;
            revoke_or_keep(&state, token).await;
            match current? {
                // Signed out while the LMS answered.
                None => Err(TokenError::Ended),
                // The claim lapsed and another request stored a newer token: that one serves.
                Some(row) => {
                    tracing::warn!(
                        "a refreshed token was not stored: another request refreshed first"
                    );
                    Ok(row.token)
                }
            }
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
    fn retries_wait_from_5_s_doubling_up_to_the_maximum_less_a_fifth_at_random() {
        let max = Duration::from_secs(300);
        for (attempts, (low, high)) in [(1, (4, 5)), (2, (8, 10)), (3, (16, 20)), (9, (240, 300))] {
            let wait = backoff(attempts, max);
            assert!((low..=high).contains(&wait), "{attempts}: {wait}");
        }
        assert!(backoff(1_000, max) <= 300);
        assert_eq!(backoff(1, Duration::from_secs(1)), 1);
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
