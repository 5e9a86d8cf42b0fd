//! The typed session: what the app keeps server-side for one browser, under named keys.
//!
//! The cookie holds only the session id; the pending sign-in (state, PKCE verifier, `next`) and,
//! after sign-in, the account and a reference to the token live in the session store (SQLite by
//! default), so any process sharing the database can serve any request. The token itself sits in
//! the `tokens` table beside it (see [`crate::tokens`]), where a refresh can be claimed atomically.

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::Duration;
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore, cookie::SameSite};

use crate::{
    config::Config,
    error::AppError,
    lms::{Account, unix_now},
    secret::Secret,
};

const PENDING_KEY: &str = "pending_sign_ins";
/// Versioned: sessions written by an older release, with another shape, are simply not read.
const SIGNED_IN_KEY: &str = "signed_in.v2";
/// A sign-in not completed within this time must start again (the LMS code itself lives 60 s).
pub const PENDING_TTL_SECS: i64 = 600;
/// Sign-ins started in several tabs each keep their own state; older ones beyond this are dropped.
const MAX_PENDING: usize = 5;

/// The session cookie's name. `__Host-` makes browsers refuse it unless it is `Secure`, host-only
/// and `Path=/`, so it is used whenever the app is served over https.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-profiles_session"
    } else {
        "profiles_session"
    }
}

/// The session layer with every cookie flag set on purpose. `SameSite=Lax`, not tower-sessions'
/// default `Strict`: the LMS's redirect back to `/authorize/` is a cross-site navigation, and a
/// `Strict` cookie would not come with it.
pub fn layer<S: SessionStore + Clone>(store: S, config: &Config) -> SessionManagerLayer<S> {
    let secure = config.secure_cookies();
    let idle = Duration::try_from(config.session_idle).unwrap_or(Duration::hours(8));
    SessionManagerLayer::new(store)
        .with_name(cookie_name(secure))
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle))
        // Without it a session is saved (and its expiry pushed back) only when modified, so an
        // active reader would be signed out SESSION_IDLE_MINUTES after signing in.
        .with_always_save(true)
}

/// A sign-in that went to the LMS and has not come back yet.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: Secret,
    pub pkce_verifier: Secret,
    /// Where to go after signing in: a same-origin path, checked before it was stored.
    pub next: Option<String>,
    pub started_at: i64,
}

/// A signed-in person: the account read from the LMS, the id of their token's row, and the
/// token their forms must carry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignedIn {
    pub token_id: String,
    pub account: Account,
    pub signed_in_at: i64,
    /// The synchronizer token of every POST form (sign-out, reload): a page elsewhere cannot read
    /// it, so it cannot make the browser post a valid form.
    pub csrf: Secret,
}

impl SignedIn {
    pub fn new(token_id: String, account: Account, now: i64) -> Self {
        use base64::Engine;
        let csrf =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        Self {
            token_id,
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

/// Who the session belongs to.
pub enum Presence {
    /// Nobody signed in (or never did, in this browser).
    Anonymous,
    SignedIn(SignedIn),
    /// Signed in longer ago than `SESSION_MAX_MINUTES` allows: must sign in again.
    Expired(SignedIn),
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

/// Why a callback's `state` could not be matched to a sign-in this browser started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupted {
    /// The browser sent no session cookie: blocked cookies, another browser, or a host mismatch
    /// (`localhost` versus `127.0.0.1`).
    NoCookie,
    /// A cookie, but no sign-in waiting in its session (expired session, or already completed).
    NoPendingSignIn,
    /// Sign-ins are waiting, but none with this `state`: forged, or from another browser.
    StateMismatch,
    /// The matching sign-in is older than [`PENDING_TTL_SECS`].
    Expired,
}

impl Interrupted {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCookie => "no session cookie",
            Self::NoPendingSignIn => "no pending sign-in in the session",
            Self::StateMismatch => "state does not match",
            Self::Expired => "pending sign-in expired",
        }
    }
}

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
    /// Remembers a sign-in that is about to leave for the LMS.
    pub async fn begin_sign_in(&self, pending: PendingSignIn) -> Result<(), AppError> {
        let mut list: Vec<PendingSignIn> = self.0.get(PENDING_KEY).await?.unwrap_or_default();
        list.retain(|p| !pending_expired(p.started_at, unix_now()));
        list.push(pending);
        if list.len() > MAX_PENDING {
            list.drain(..list.len() - MAX_PENDING);
        }
        self.0.insert(PENDING_KEY, list).await?;
        Ok(())
    }

    /// Removes the pending sign-in whose `state` matches, and saves the session at once, so the
    /// state is spent before the (slow) code exchange starts: a replayed callback finds nothing.
    pub async fn take_pending(
        &self,
        state: &str,
        cookie_sent: bool,
    ) -> Result<Result<PendingSignIn, Interrupted>, AppError> {
        let mut list: Vec<PendingSignIn> = match self.0.get(PENDING_KEY).await? {
            Some(list) => list,
            None if cookie_sent => return Ok(Err(Interrupted::NoPendingSignIn)),
            None => return Ok(Err(Interrupted::NoCookie)),
        };
        let Some(index) = list
            .iter()
            .position(|p| bool::from(p.state.expose().as_bytes().ct_eq(state.as_bytes())))
        else {
            return Ok(Err(Interrupted::StateMismatch));
        };
        let pending = list.remove(index);
        if list.is_empty() {
            self.0.remove_value(PENDING_KEY).await?;
        } else {
            self.0.insert(PENDING_KEY, list).await?;
        }
        self.0.save().await?;
        if pending_expired(pending.started_at, unix_now()) {
            return Ok(Err(Interrupted::Expired));
        }
        Ok(Ok(pending))
    }

    /// Signs the person in under a new session id (against session fixation). Returns the
    /// sign-in it replaces, if this browser was signed in already, so its token can be revoked.
    pub async fn complete_sign_in(
        &self,
        signed_in: SignedIn,
    ) -> Result<Option<SignedIn>, AppError> {
        self.0.cycle_id().await?;
        // An older shape under the key is as good as none.
        let previous = self.0.get::<SignedIn>(SIGNED_IN_KEY).await.ok().flatten();
        self.0.insert(SIGNED_IN_KEY, signed_in).await?;
        Ok(previous)
    }

    /// Who is signed in, judged against the absolute lifetime `max_age`.
    pub async fn presence(&self, max_age: std::time::Duration) -> Result<Presence, AppError> {
        let Some(signed_in) = self.0.get::<SignedIn>(SIGNED_IN_KEY).await? else {
            return Ok(Presence::Anonymous);
        };
        if past_max_age(signed_in.signed_in_at, unix_now(), max_age) {
            return Ok(Presence::Expired(signed_in));
        }
        Ok(Presence::SignedIn(signed_in))
    }

    /// Replaces the account after a reload from the LMS.
    pub async fn update(&self, signed_in: SignedIn) -> Result<(), AppError> {
        self.0.insert(SIGNED_IN_KEY, signed_in).await?;
        Ok(())
    }

    /// Deletes the whole session, server-side and cookie; the next request gets a new id.
    pub async fn sign_out(&self) -> Result<(), AppError> {
        self.0.flush().await?;
        Ok(())
    }
}

/// A `state` is good for ten minutes: long enough to log in at the LMS, short enough that an old
/// link is useless.
fn pending_expired(started_at: i64, now: i64) -> bool {
    now - started_at >= PENDING_TTL_SECS
}

/// OWASP's absolute timeout: a sign-in older than `max_age` is over, however active.
fn past_max_age(signed_in_at: i64, now: i64, max_age: std::time::Duration) -> bool {
    now - signed_in_at >= max_age.as_secs() as i64
}

/// Whether the request carried the session cookie at all (for telling the person, and the log,
/// why a callback could not be matched).
pub fn cookie_sent(headers: &axum::http::HeaderMap, name: &str) -> bool {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|pair| pair.trim().split_once('=').is_some_and(|(k, _)| k == name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn cookie_sent_matches_the_exact_name_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "cookie",
            HeaderValue::from_static("a=1; profiles_session_x=2"),
        );
        assert!(!cookie_sent(&headers, "profiles_session"));
        headers.append("cookie", HeaderValue::from_static("profiles_session=abc"));
        assert!(cookie_sent(&headers, "profiles_session"));
    }

    #[test]
    fn a_pending_sign_in_expires_after_ten_minutes() {
        assert!(!pending_expired(1_000, 1_000 + 599));
        assert!(pending_expired(1_000, 1_000 + 600));
    }

    #[test]
    fn a_sign_in_expires_at_its_absolute_lifetime_however_active() {
        let day = std::time::Duration::from_secs(86_400);
        assert!(!past_max_age(1_000, 1_000 + 86_399, day));
        assert!(past_max_age(1_000, 1_000 + 86_400, day));
    }

    #[test]
    fn https_deployments_get_the_host_prefixed_cookie() {
        assert_eq!(cookie_name(true), "__Host-profiles_session");
        assert_eq!(cookie_name(false), "profiles_session");
    }
}
