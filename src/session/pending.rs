//! A sign-in on its way to the LMS travels in a cookie of its own, sealed (XChaCha20-Poly1305,
//! [`crate::keys`]) and named after its `state`, so a visitor who has not signed in costs no
//! database write at all, several tabs can each have a sign-in in flight, and the callback can
//! find the one it belongs to ([`PendingCookies`]).

use axum::http::{HeaderMap, HeaderValue, header};
use openedx_client::{Secret, unix_now};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_sessions::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use crate::{
    config::Config,
    error::Interrupted,
    keys::{KeyRing, Purpose, hex},
};

/// A sign-in not completed within this time must start again (the LMS code itself lives 60 s).
pub const PENDING_TTL_SECS: i64 = 600;
/// Sign-ins a browser may have in flight at once (tabs); starting another drops the oldest.
const MAX_PENDING: usize = 5;
/// Pending-sign-in cookies looked at per request; a request with more is not a browser's.
const MAX_PENDING_READ: usize = 16;

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
    /// of this browser's earlier ones beyond `MAX_PENDING` (and of any that do not open).
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

/// A `state` is good for ten minutes: long enough to log in at the LMS, short enough that an old
/// link is useless.
fn pending_expired(started_at: i64, now: i64) -> bool {
    now - started_at >= PENDING_TTL_SECS
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
