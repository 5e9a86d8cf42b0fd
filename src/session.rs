//! What the app keeps for one browser, in two places:
//!
//! - **A sign-in on its way to the LMS** travels in a cookie of its own, sealed (AES-256-GCM,
//!   [`crate::keys`]) and named after its `state`, so a visitor who has not signed in costs no
//!   database write at all, several tabs can each have a sign-in in flight, and the callback can
//!   find the one it belongs to ([`PendingCookies`]).
//! - **A signed-in person** has a row in the `sessions` table (tower-sessions over
//!   [`crate::store::SessionBackend`]): the account, the CSRF token, and the LMS token sealed
//!   beside them, read in one query. The cookie holds only the session id. A request writes the
//!   row only when something changed, and pushes the idle expiry back only when it would move by
//!   a tenth of the idle time, so a reader costs one read.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, header, request::Parts},
};
use openedx_client::{Account, Secret, Token, unix_now};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_sessions::{
    Expiry, Session, SessionManagerLayer, SessionStore,
    cookie::{Cookie, SameSite, time::Duration as CookieDuration},
};

use crate::{
    config::Config,
    error::{AppError, Interrupted},
    keys::{KeyRing, Purpose, hex},
    store::{
        StoredToken, session_key,
        sessions::{EXPIRES_KEY, LoadedToken, TOKEN_KEY},
    },
};

/// Versioned: sessions written by an older release, with another shape, are simply not read.
const SIGNED_IN_KEY: &str = "signed_in.v3";
/// A sign-in not completed within this time must start again (the LMS code itself lives 60 s).
pub const PENDING_TTL_SECS: i64 = 600;
/// Sign-ins a browser may have in flight at once (tabs); starting another drops the oldest.
const MAX_PENDING: usize = 5;
/// Pending-sign-in cookies looked at per request; a request with more is not a browser's.
const MAX_PENDING_READ: usize = 16;

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
/// `Strict` cookie would not come with it. No `always_save`: [`AppSession::presence`] marks the
/// session modified when its expiry should move, and only then is it written.
pub fn layer<S: SessionStore + Clone>(store: S, config: &Config) -> SessionManagerLayer<S> {
    let secure = config.secure_cookies();
    SessionManagerLayer::new(store)
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

/// A sign-in that went to the LMS and has not come back yet.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: Secret,
    pub pkce_verifier: Secret,
    /// Where to go after signing in: a same-origin path, checked before it was stored.
    pub next: Option<String>,
    pub started_at: i64,
}

/// The sealed cookies of sign-ins in flight: one per sign-in, named
/// `[__Host-]profiles_signin_<16 hex digits of SHA-256(state)>`, `HttpOnly`, `SameSite=Lax`
/// (the LMS's redirect back is a cross-site navigation), `Max-Age` of [`PENDING_TTL_SECS`], and
/// sealed with the cookie's name as associated data, so a value moved to another name does not
/// open.
#[derive(Clone, Debug)]
pub struct PendingCookies {
    keys: KeyRing,
    secure: bool,
}

impl PendingCookies {
    pub fn new(keys: KeyRing, config: &Config) -> Self {
        Self {
            keys,
            secure: config.secure_cookies(),
        }
    }

    fn prefix(&self) -> &'static str {
        if self.secure {
            "__Host-profiles_signin_"
        } else {
            "profiles_signin_"
        }
    }

    fn name(&self, state: &str) -> String {
        let digest = Sha256::digest(state.as_bytes());
        format!("{}{}", self.prefix(), hex(&digest[..8]))
    }

    fn cookie(&self, name: String, value: String, max_age: CookieDuration) -> HeaderValue {
        let cookie = Cookie::build((name, value))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(max_age)
            .build();
        // Names are hex and values base64url: always a valid header value.
        HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
    }

    fn removal(&self, name: String) -> HeaderValue {
        self.cookie(name, String::new(), CookieDuration::ZERO)
    }

    /// The `Set-Cookie` values that start `pending`: its own cookie, and removals of the oldest
    /// of this browser's earlier ones beyond [`MAX_PENDING`] (and of any that do not open).
    pub fn begin(&self, headers: &HeaderMap, pending: &PendingSignIn) -> Vec<HeaderValue> {
        let mut earlier: Vec<(i64, String)> = Vec::new();
        let mut set_cookies = Vec::new();
        // Only so many are looked at (and, if stale, removed): a request with more was not made by
        // this app's pages, and must not make the answer grow with it.
        for (name, value) in self.sent(headers).into_iter().take(MAX_PENDING_READ) {
            let started_at = self.open(&name, &value).map(|p| p.started_at);
            match started_at {
                Some(at) if !pending_expired(at, pending.started_at) => earlier.push((at, name)),
                _ => set_cookies.push(self.removal(name)),
            }
        }
        earlier.sort();
        let excess = (earlier.len() + 1).saturating_sub(MAX_PENDING);
        for (_, name) in earlier.into_iter().take(excess) {
            set_cookies.push(self.removal(name));
        }
        let name = self.name(pending.state.expose());
        #[expect(
            clippy::expect_used,
            reason = "a struct of strings and numbers always serializes"
        )]
        let json = serde_json::to_vec(pending).expect("serializable");
        let sealed = self
            .keys
            .seal(Purpose::SignInCookie, &json, name.as_bytes());
        set_cookies.push(self.cookie(name, sealed, CookieDuration::seconds(PENDING_TTL_SECS)));
        set_cookies
    }

    /// The sign-in this `state` belongs to, and the `Set-Cookie` that removes its cookie (sent
    /// whatever the outcome, so a replay in this browser finds nothing and never reaches the LMS).
    pub fn take(
        &self,
        headers: &HeaderMap,
        state: &str,
    ) -> (Result<PendingSignIn, Interrupted>, Option<HeaderValue>) {
        let name = self.name(state);
        let Some(value) = cookies(headers)
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
        else {
            let why = if headers.contains_key(header::COOKIE) {
                Interrupted::NoPendingSignIn
            } else {
                Interrupted::NoCookie
            };
            return (Err(why), None);
        };
        let removal = Some(self.removal(name.clone()));
        let outcome = match self.open(&name, &value) {
            Some(p) if bool::from(p.state.expose().as_bytes().ct_eq(state.as_bytes())) => {
                if pending_expired(p.started_at, unix_now()) {
                    Err(Interrupted::Expired)
                } else {
                    Ok(p)
                }
            }
            _ => Err(Interrupted::StateMismatch),
        };
        (outcome, removal)
    }

    fn open(&self, name: &str, value: &str) -> Option<PendingSignIn> {
        let json = self
            .keys
            .open(Purpose::SignInCookie, value, name.as_bytes())?;
        serde_json::from_slice(&json).ok()
    }

    /// This app's pending-sign-in cookies in the request, by name and value.
    fn sent(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        cookies(headers)
            .filter(|c| c.name().starts_with(self.prefix()))
            .map(|c| (c.name().to_owned(), c.value().to_owned()))
            .collect()
    }
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'static>> + '_ {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
}

/// A signed-in person's record in the session: the account read from the LMS and the token
/// their forms must carry. The LMS token sits beside it in the same row, sealed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignedIn {
    pub account: Account,
    pub signed_in_at: i64,
    /// The synchronizer token of every POST form (sign-out, reload): a page elsewhere cannot read
    /// it, so it cannot make the browser post a valid form.
    pub csrf: Secret,
}

impl SignedIn {
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

/// A signed-in session as one query read it: the person, their token, and the row's key (for
/// the token's compare-and-swap refresh and for ending the session).
#[derive(Debug)]
pub struct Current {
    pub signed_in: SignedIn,
    pub token: StoredToken,
    pub key: String,
}

/// Who the session belongs to.
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

pub struct AppSession(Session);

// Here rather than in `crate::error`, which knows nothing of sessions.
impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self::Session(Box::new(e))
    }
}

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
    /// Who is signed in, judged against the idle and absolute lifetimes, from one read of the
    /// session's row (none at all without a session cookie). When the idle expiry would move by
    /// at least a tenth of the idle time, the session is marked for saving, which pushes it back.
    pub async fn presence(&self, config: &Config) -> Result<Presence, AppError> {
        if self.0.id().is_none() {
            // No session cookie: nobody to look up, and no record worth making.
            return Ok(Presence::Anonymous);
        }
        let Some(signed_in) = self.0.get::<SignedIn>(SIGNED_IN_KEY).await? else {
            return Ok(Presence::Anonymous);
        };
        let (Some(token), Some(expires_at), Some(id)) = (
            self.0.get::<LoadedToken>(TOKEN_KEY).await?,
            self.0.get::<i64>(EXPIRES_KEY).await?,
            self.0.id(),
        ) else {
            return Ok(Presence::Anonymous);
        };
        let now = unix_now();
        let current = Box::new(Current {
            signed_in,
            token: token.into(),
            key: session_key(&id),
        });
        if past_max_age(current.signed_in.signed_in_at, now, config.session_max) {
            return Ok(Presence::Expired(current));
        }
        if should_extend(expires_at, now, config.session_idle) {
            self.0.set_expiry(Some(Expiry::OnInactivity(idle(config))));
        }
        Ok(Presence::SignedIn(current))
    }

    /// The row key of the session this browser sent a cookie for, if any (it may have ended).
    pub fn key(&self) -> Option<String> {
        self.0.id().map(|id| session_key(&id))
    }

    /// Signs the person in under a new session id (against session fixation), with `token`
    /// sealed beside the record. The row is written once, by the session layer, after the
    /// handler. A sign-in this browser had before must have been ended first (its token taken
    /// for revocation, by [`key`](Self::key)).
    pub async fn complete_sign_in(
        &self,
        signed_in: SignedIn,
        token: &Token,
    ) -> Result<(), AppError> {
        if self.0.id().is_some() {
            // A new id, not only an empty record: `flush` would keep the old id for the new row.
            self.0.cycle_id().await?;
            self.0.clear().await;
        }
        self.0.insert(SIGNED_IN_KEY, signed_in).await?;
        self.0.insert(TOKEN_KEY, token).await?;
        Ok(())
    }

    /// Replaces the account after a reload from the LMS.
    pub async fn update(&self, signed_in: SignedIn) -> Result<(), AppError> {
        self.0.insert(SIGNED_IN_KEY, signed_in).await?;
        Ok(())
    }

    /// Forgets the session in this browser: its row is deleted (if whoever ended it has not
    /// already taken it with its token), the cookie removed, and the next request gets a new id.
    pub async fn forget(&self) -> Result<(), AppError> {
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

    fn config() -> Config {
        let vars = [
            ("LMS_URL", "http://lms.example"),
            ("LMS_CLIENT_ID", "profiles"),
            ("LMS_CLIENT_SECRET", "s"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Config::from_vars(&vars).expect("config")
    }

    fn pending_cookies() -> PendingCookies {
        let keys = KeyRing::parse(&KeyRing::generate_key()).expect("key");
        PendingCookies::new(keys, &config())
    }

    fn pending(state: &str, started_at: i64) -> PendingSignIn {
        PendingSignIn {
            state: Secret::new(state),
            pkce_verifier: Secret::new("verifier"),
            next: None,
            started_at,
        }
    }

    /// The request headers a browser sends back after the given `Set-Cookie` values.
    fn browser_sends(set_cookies: &[HeaderValue]) -> HeaderMap {
        let pairs: Vec<String> = set_cookies
            .iter()
            .map(|v| Cookie::parse(v.to_str().expect("ascii").to_owned()).expect("cookie"))
            .filter(|c| c.max_age() != Some(CookieDuration::ZERO))
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&pairs.join("; ")).expect("header"),
        );
        headers
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

    #[test]
    fn a_pending_cookie_opens_only_under_its_own_state() {
        let cookies = pending_cookies();
        let now = unix_now();
        let sent = browser_sends(&cookies.begin(&HeaderMap::new(), &pending("s-1", now)));
        let (taken, removal) = cookies.take(&sent, "s-1");
        assert_eq!(taken.expect("opens").pkce_verifier.expose(), "verifier");
        assert!(
            removal
                .expect("removed")
                .to_str()
                .expect("ascii")
                .contains("Max-Age=0")
        );
        let (other, removal) = cookies.take(&sent, "s-2");
        assert_eq!(
            other.expect_err("another state"),
            Interrupted::NoPendingSignIn
        );
        assert!(removal.is_none());
    }

    #[test]
    fn a_pending_cookie_moved_to_another_name_does_not_open() {
        let cookies = pending_cookies();
        let set = cookies.begin(&HeaderMap::new(), &pending("s-1", unix_now()));
        let value = Cookie::parse(set[0].to_str().expect("ascii").to_owned())
            .expect("cookie")
            .value()
            .to_owned();
        let mut headers = HeaderMap::new();
        let forged = format!("{}={value}", cookies.name("s-2"));
        headers.insert(header::COOKIE, HeaderValue::from_str(&forged).expect("h"));
        assert_eq!(
            cookies.take(&headers, "s-2").0.expect_err("forged"),
            Interrupted::StateMismatch
        );
    }

    #[test]
    fn starting_a_sixth_sign_in_drops_the_oldest_pending_one() {
        let cookies = pending_cookies();
        let now = unix_now();
        let mut all = Vec::new();
        for i in 0..5 {
            all.extend(cookies.begin(&browser_sends(&all), &pending(&format!("s-{i}"), now + i)));
            all.retain(|c| !c.to_str().expect("ascii").contains("Max-Age=0"));
        }
        assert_eq!(all.len(), 5);
        let set = cookies.begin(&browser_sends(&all), &pending("s-5", now + 5));
        let removed: Vec<_> = set
            .iter()
            .filter(|c| c.to_str().expect("ascii").contains("Max-Age=0"))
            .collect();
        assert_eq!(removed.len(), 1);
        assert!(
            removed[0]
                .to_str()
                .expect("ascii")
                .starts_with(&cookies.name("s-0"))
        );
    }

    #[test]
    fn an_https_public_url_makes_pending_cookies_secure_and_host_prefixed() {
        let mut config = config();
        config.public_url = "https://app.example/".parse().expect("url");
        let keys = KeyRing::parse(&KeyRing::generate_key()).expect("key");
        let cookies = PendingCookies::new(keys, &config);
        let set = cookies.begin(&HeaderMap::new(), &pending("s", unix_now()));
        let text = set[0].to_str().expect("ascii");
        assert!(text.starts_with("__Host-profiles_signin_"), "{text}");
        for attribute in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=600",
        ] {
            assert!(text.contains(attribute), "{attribute} in {text}");
        }
    }
}
