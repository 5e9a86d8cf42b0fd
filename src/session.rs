//! What the app keeps for one browser.
//!
//! - **A sign-in on its way to the LMS**: a sealed cookie of its own ([`pending`]); nothing is
//!   written anywhere for a visitor who has not signed in.
//! - **A signed-in person**: a row in the `sessions` table ([`crate::store::sessions`]) holding
//!   their [`SessionRecord`] and LMS token, both sealed, read in one query. The browser holds only
//!   the session id, in a cookie that tower-sessions issues, renews and removes ([`layer`]).
//!
//! tower-sessions is the cookie layer and nothing more: its record stays empty, and its store
//! ([`CookieOnly`]) keeps nothing. The row is written by the sign-in itself ([`AppSession::begin`]),
//! so a failure there is the sign-in's to handle (its fresh token revoked, our page shown), and
//! read by [`AppSession::presence`] as one typed value: no keys hidden in a generic map, no JSON
//! round trip of the token.

pub mod pending;

use async_trait::async_trait;
use axum::{extract::FromRequestParts, http::request::Parts};
use openedx_client::{Token, unix_now};
use tower_sessions::{
    Expiry, Session, SessionManagerLayer, SessionStore,
    cookie::{SameSite, time::Duration as CookieDuration},
    session::{Id, Record},
    session_store,
};

pub use self::pending::{PendingCookies, PendingSignIn};
use crate::{
    config::Config,
    error::AppError,
    store::{SessionRecord, SignedInRow, Store, StoreError, session_key},
};

/// The session cookie's name. `__Host-` makes browsers refuse it unless it is `Secure`, host-only
/// and `Path=/`, so it is used whenever the app is served over https.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-profiles_session"
    } else {
        "profiles_session"
    }
}

/// The session cookie layer with every flag set on purpose. `SameSite=Lax`, not tower-sessions'
/// default `Strict`: the LMS's redirect back to `/authorize/` is a cross-site navigation, and a
/// `Strict` cookie would not come with it. The cookie is (re)sent only when [`AppSession`] marks
/// it so: at sign-in, and when the idle expiry moves.
pub fn layer(config: &Config) -> SessionManagerLayer<CookieOnly> {
    let secure = config.secure_cookies();
    SessionManagerLayer::new(CookieOnly)
        .with_name(cookie_name(secure))
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle(config)))
}

fn idle(config: &Config) -> CookieDuration {
    CookieDuration::try_from(config.session_idle).unwrap_or(CookieDuration::hours(8))
}

/// tower-sessions' store, keeping nothing: the app reads and writes its `sessions` rows itself,
/// typed, and tower-sessions only parses, issues and removes the cookie. It asks its store for a
/// record only when saving a session the app marked (at sign-in, or to renew the cookie), and an
/// empty record is all it needs then; deleting is the app's own business, with the token's
/// revocation ([`crate::tokens`]).
#[derive(Clone, Copy, Debug)]
pub struct CookieOnly;

#[async_trait]
impl SessionStore for CookieOnly {
    async fn create(&self, _record: &mut Record) -> session_store::Result<()> {
        Ok(())
    }

    async fn save(&self, _record: &Record) -> session_store::Result<()> {
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(Some(Record {
            id: *id,
            data: Default::default(),
            expiry_date: time::OffsetDateTime::now_utc(),
        }))
    }

    async fn delete(&self, _id: &Id) -> session_store::Result<()> {
        Ok(())
    }
}

/// A signed-in session as one query read it, with its row's key (for the token's
/// compare-and-swap refresh and for ending the session).
#[derive(Debug)]
pub struct Current {
    pub key: String,
    pub row: SignedInRow,
}

/// Who the session belongs to.
#[derive(Debug)]
pub enum Presence {
    /// Nobody signed in (or never did, in this browser).
    Anonymous,
    SignedIn(Box<Current>),
    /// Signed in longer ago than `SESSION_MAX_MINUTES` allows: must sign in again.
    Expired(Box<Current>),
}

/// Why a signed-in session was ended by the app rather than by the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The absolute session lifetime ran out.
    Expired,
    /// The LMS would not renew the token (revoked, or past its 90 days).
    Renewal,
}

impl Ended {
    pub fn as_query(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Renewal => "renewal",
        }
    }

    pub fn from_query(value: &str) -> Option<Self> {
        match value {
            "expired" => Some(Self::Expired),
            "renewal" => Some(Self::Renewal),
            _ => None,
        }
    }
}

/// This browser's session cookie (through tower-sessions), and what the app does with it.
#[derive(Clone)]
pub struct AppSession(Session);

impl<S: Send + Sync> FromRequestParts<S> for AppSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, msg)| AppError::Internal(format!("session layer missing: {msg}")))?;
        Ok(Self(session))
    }
}

impl AppSession {
    /// The row key of the session this browser sent a cookie for, if any (it may have ended).
    pub fn key(&self) -> Option<String> {
        self.0.id().map(|id| session_key(&id))
    }

    /// Who is signed in, judged against the idle and absolute lifetimes, from one read of the
    /// session's row (none at all without a session cookie). A cookie that matches no live
    /// session is removed. When the idle expiry would move by at least a tenth of the idle time,
    /// it is pushed back, row and cookie.
    pub async fn presence(&self, store: &Store, config: &Config) -> Result<Presence, AppError> {
        let Some(key) = self.key() else {
            return Ok(Presence::Anonymous);
        };
        // A database known to be down: a 503 at once, the cookie kept for when it is back.
        store.available()?;
        let now = unix_now();
        let row = match store.load_session(&key, now).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                // Expired, signed out, or never issued.
                tracing::info!("a session cookie matched no live session; clearing it");
                self.forget().await?;
                return Ok(Presence::Anonymous);
            }
            Err(e @ (StoreError::Sealed | StoreError::Corrupt(_))) => {
                tracing::warn!(error = %e, "a session cannot be read; treating it as ended");
                self.forget().await?;
                return Ok(Presence::Anonymous);
            }
            Err(e) => return Err(e.into()),
        };
        if past_max_age(row.record.signed_in_at, now, config.session_max) {
            return Ok(Presence::Expired(Box::new(Current { key, row })));
        }
        if should_extend(row.expires_at, now, config.session_idle) {
            let expires_at = now + config.session_idle.as_secs() as i64;
            if !store.extend_session(&key, expires_at, now).await? {
                // Ended (signed out elsewhere, reaped) since it was read: no cookie for it.
                self.forget().await?;
                return Ok(Presence::Anonymous);
            }
            // Marks the session modified: the layer sends the cookie again, with its new Max-Age.
            self.0.set_expiry(Some(Expiry::OnInactivity(idle(config))));
        }
        Ok(Presence::SignedIn(Box::new(Current { key, row })))
    }

    /// Signs the person in under a new session id (against session fixation): writes the row,
    /// with `token` sealed beside `record`, and has the layer send the cookie. A sign-in this
    /// browser had before must have been ended first (its token taken for revocation, by
    /// [`key`](Self::key)).
    pub async fn begin(
        &self,
        store: &Store,
        config: &Config,
        record: &SessionRecord,
        token: &Token,
    ) -> Result<(), AppError> {
        // Always a new id, even over one this request forgot: an id the browser brought (perhaps
        // planted) is never the signed-in one.
        self.0.cycle_id().await?;
        self.0.set_expiry(Some(Expiry::OnInactivity(idle(config))));
        loop {
            // Gives the session its id (tower-sessions' `create`, which stores nothing).
            self.0.save().await?;
            let Some(key) = self.key() else {
                return Err(AppError::Internal("the new session has no id".into()));
            };
            let now = unix_now();
            let expires_at = now + config.session_idle.as_secs() as i64;
            if store
                .create_session(&key, record, token, expires_at, now)
                .await?
            {
                return Ok(());
            }
            // 128 random bits met a live session's: never in practice, but never shared either.
            self.0.cycle_id().await?;
        }
    }

    /// Forgets the session in this browser: the layer sends the cookie again, expired now, so
    /// the browser drops it. Not tower-sessions' `flush`, whose removal cookie lacks `Secure`, which
    /// browsers require to drop a `__Host-` cookie. The row is the caller's to have ended (with
    /// its token's revocation); a sign-in later in this request still gets a new id ([`begin`]).
    ///
    /// [`begin`]: Self::begin
    pub async fn forget(&self) -> Result<(), AppError> {
        let now = time::OffsetDateTime::now_utc();
        self.0.set_expiry(Some(Expiry::AtDateTime(now)));
        Ok(())
    }
}

/// OWASP's absolute timeout: a sign-in older than `max_age` is over, however active.
fn past_max_age(signed_in_at: i64, now: i64, max_age: std::time::Duration) -> bool {
    now - signed_in_at >= max_age.as_secs() as i64
}

/// Whether pushing the idle expiry back to `now + idle` moves it by a meaningful step: a tenth
/// of the idle time (at least a second, the stored resolution). Between steps the session is not
/// written, and expires at most that step earlier than a write on every request would make it.
fn should_extend(expires_at: i64, now: i64, idle: std::time::Duration) -> bool {
    let idle = idle.as_secs() as i64;
    let step = (idle / 10).max(1);
    now + idle - expires_at >= step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_expires_at_its_absolute_lifetime_however_active() {
        let day = std::time::Duration::from_secs(86_400);
        assert!(!past_max_age(1_000, 1_000 + 86_399, day));
        assert!(past_max_age(1_000, 1_000 + 86_400, day));
    }

    #[test]
    fn the_idle_expiry_moves_only_by_a_tenth_of_the_idle_time() {
        let idle = std::time::Duration::from_secs(8 * 3600);
        let expires_at = 100_000 + 8 * 3600;
        assert!(!should_extend(expires_at, 100_000 + 2879, idle));
        assert!(should_extend(expires_at, 100_000 + 2880, idle));
        let short = std::time::Duration::from_secs(3);
        assert!(!should_extend(1_003, 1_000, short));
        assert!(should_extend(1_003, 1_001, short), "at least a second");
    }

    #[test]
    fn https_deployments_get_the_host_prefixed_cookie() {
        assert_eq!(cookie_name(true), "__Host-profiles_session");
        assert_eq!(cookie_name(false), "profiles_session");
    }
}
