//! The stand-in's state, in memory, shared by its handlers: the registered applications and
//! learners, browser sessions, pending codes, issued tokens, the faults set and what was recorded;
//! with the helpers the handlers share (the clock, cookies, random codes and tokens).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::http::{HeaderMap, header};
use url::Url;

use crate::{
    Fault, IssuedSecrets, JournalEntry, LmsUser, RecordedApiRequest, RecordedTokenRequest,
    RegisteredClient, Settings,
};

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The LMS's session cookie in devstack; a name unlike the app's, since cookies ignore ports.
pub const SESSION_COOKIE: &str = "lms_sessionid";

pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) username: String,
    pub(crate) redirect_uri: String,
    pub(crate) redirect_uri_sent: bool,
    pub(crate) scopes: Vec<String>,
    pub(crate) challenge: Option<(String, String)>,
    pub(crate) expires_at: tokio::time::Instant,
}

pub(crate) struct IssuedToken {
    pub(crate) username: String,
    pub(crate) expires_at: i64,
}

/// A DOT refresh token: which grant it continues, and the access token it was issued with
/// (revoking the refresh token deletes that one too).
pub(crate) struct RefreshGrant {
    pub(crate) client_id: String,
    pub(crate) username: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: i64,
    pub(crate) access_token: String,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) clients: HashMap<String, RegisteredClient>,
    pub(crate) users: HashMap<String, LmsUser>,
    /// Browser sessions: cookie value to username.
    pub(crate) sessions: HashMap<String, String>,
    pub(crate) grants: HashMap<String, Grant>,
    pub(crate) opaque_tokens: HashMap<String, IssuedToken>,
    pub(crate) refresh_tokens: HashMap<String, RefreshGrant>,
    pub(crate) issued: IssuedSecrets,
    pub(crate) faults: HashMap<&'static str, Fault>,
    /// The lifetime of JWTs issued from now on (tests shorten it to get stale tokens on demand).
    pub(crate) jwt_lifetime: Option<Duration>,
    /// (username, client_id, sorted scopes) once approved: consent is skipped from then on.
    pub(crate) approvals: HashSet<(String, String, Vec<String>)>,
    pub(crate) calls: HashMap<&'static str, usize>,
    pub(crate) token_requests: Vec<RecordedTokenRequest>,
    pub(crate) api_requests: Vec<RecordedApiRequest>,
    pub(crate) journal: Vec<JournalEntry>,
}

/// State shared by the stand-in's handlers.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) base: Url,
    pub(crate) settings: Arc<Settings>,
    pub(crate) inner: Arc<Mutex<Inner>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers an application, creating its owner as a service account if needed (the
    /// operator runs `manage_user` before `create_dot_application`). The builder, the binary's
    /// flags and the admin API all register through here.
    pub(crate) fn register_client(&self, client: RegisteredClient) {
        let mut inner = self.lock();
        inner
            .users
            .entry(client.owner.clone())
            .or_insert_with(|| LmsUser::service(&client.owner));
        inner.clients.insert(client.client_id.clone(), client);
    }

    pub(crate) fn add_user(&self, user: LmsUser) {
        self.lock().users.insert(user.username.clone(), user);
    }

    pub(crate) fn set_fault(&self, endpoint: &'static str, fault: Option<Fault>) {
        let mut inner = self.lock();
        match fault {
            Some(f) => inner.faults.insert(endpoint, f),
            None => inner.faults.remove(endpoint),
        };
    }

    pub(crate) fn revoke_refresh_tokens(&self) -> usize {
        let mut inner = self.lock();
        let count = inner.refresh_tokens.len();
        inner.refresh_tokens.clear();
        count
    }

    pub(crate) fn expire_tokens(&self) -> usize {
        let past = unix_now() - 1;
        let mut inner = self.lock();
        let mut count = 0;
        for token in inner.opaque_tokens.values_mut() {
            token.expires_at = past;
            count += 1;
        }
        for token in inner.refresh_tokens.values_mut() {
            token.expires_at = past;
            count += 1;
        }
        count
    }

    pub(crate) fn set_jwt_lifetime(&self, lifetime: Duration) {
        self.lock().jwt_lifetime = Some(lifetime);
    }

    /// An id no learner has yet.
    pub(crate) fn next_user_id(&self) -> i64 {
        self.lock().users.values().map(|u| u.id).max().unwrap_or(0) + 1
    }

    pub(crate) fn count(&self, endpoint: &'static str) {
        *self.lock().calls.entry(endpoint).or_default() += 1;
    }

    /// `JWT_AUTH['JWT_ISSUER']`: the LMS root plus `/oauth2`.
    pub(crate) fn issuer(&self) -> String {
        format!("{}/oauth2", self.base.as_str().trim_end_matches('/'))
    }

    pub(crate) fn logged_in_user(&self, headers: &HeaderMap) -> Option<LmsUser> {
        let sid = cookie(headers, SESSION_COOKIE)?;
        let inner = self.lock();
        let username = inner.sessions.get(&sid)?;
        inner.users.get(username).cloned()
    }
}

/// The value of one cookie in the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A client secret for an application registered without one: random, so that no two runs share
/// it.
pub(crate) fn random_secret() -> String {
    format!("dev-{}", random_token(32))
}

/// A random URL-safe string like DOT's generated codes and tokens.
pub(crate) fn random_token(len: usize) -> String {
    use rand::{Rng, distributions::Alphanumeric};
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}
