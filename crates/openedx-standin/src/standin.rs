//! [`StandIn`]: a running stand-in, the handle tests steer it with and read it through.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{net::TcpListener, task::JoinHandle};
use url::Url;

use crate::{
    Builder, Fault, IssuedSecrets, JournalEntry, LmsUser, RecordedApiRequest, RecordedTokenRequest,
    RegisteredClient, Settings, authorize, jwt,
    router::router,
    state::{Inner, Shared},
};

/// A running stand-in; dropping it stops it.
pub struct StandIn {
    shared: Shared,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl StandIn {
    /// A stand-in on a free loopback port with the LMS's default settings, no users and no
    /// applications yet.
    pub fn builder() -> Builder {
        Builder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            settings: Settings::default(),
            users: Vec::new(),
            clients: Vec::new(),
        }
    }

    /// Binds `addr` (port 0 for a random one) and serves in the background.
    pub async fn spawn(addr: SocketAddr, settings: Settings) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let authority = match &settings.host {
            Some(host) => format!("{host}:{}", local.port()),
            None => local.to_string(),
        };
        let base = Url::parse(&format!("http://{authority}/"))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let shared = Shared {
            base,
            settings: Arc::new(settings),
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        let router = router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the LMS stand-in stopped");
            }
        });
        Ok(Self {
            shared,
            addr: local,
            task,
        })
    }

    /// The stand-in's root URL as browsers use it, e.g. `http://127.0.0.1:8090/`.
    pub fn url(&self) -> &Url {
        &self.shared.base
    }

    /// The address it is bound to, for servers that cannot resolve [`Settings::host`].
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Registers an application, creating its owner as a service account if needed (the
    /// operator runs `manage_user` before `create_dot_application`).
    pub fn register_client(&self, client: RegisteredClient) {
        self.shared.register_client(client);
    }

    /// Adds a learner who may log in, replacing one of the same username.
    pub fn add_user(&self, user: LmsUser) {
        self.shared.add_user(user);
    }

    /// How many requests reached an endpoint: `login`, `authorize`, `token`, `revoke`, `logout`,
    /// `me`, `accounts`.
    pub fn calls(&self, endpoint: &str) -> usize {
        self.shared.lock().calls.get(endpoint).copied().unwrap_or(0)
    }

    /// Every token and revocation request so far, whole (secrets included: for tests).
    pub fn token_requests(&self) -> Vec<RecordedTokenRequest> {
        self.shared.lock().token_requests.clone()
    }

    /// Every user or enrollment API request so far, with its `Authorization` header.
    pub fn api_requests(&self) -> Vec<RecordedApiRequest> {
        self.shared.lock().api_requests.clone()
    }

    /// Plays the browser of `username` (a user of this stand-in) at `authorize_url`, the
    /// `/oauth2/authorize` URL an app sends browsers to: logged in, consent given. Returns the
    /// address the LMS sends the browser back to: the redirect URI with `code` and `state`, or
    /// with `error=` for the refusals the LMS redirects (a scope the application may not have...).
    /// A request the LMS refuses with a page instead (unknown client, unregistered redirect URI)
    /// is `Err` with its message. For tests of an app's callback without a browser; no HTTP
    /// request is made, so [`calls`](Self::calls) and the journal do not count it.
    pub fn authorize_as(&self, authorize_url: &str, username: &str) -> Result<Url, String> {
        let location = authorize::authorize_as(&self.shared, authorize_url, username)?;
        Url::parse(&location).map_err(|e| format!("{location:?}: {e}"))
    }

    /// Every request so far, in order, with the status it was answered.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.lock().journal.clone()
    }

    /// Every code, access token and refresh token issued so far.
    pub fn issued(&self) -> IssuedSecrets {
        self.shared.lock().issued.clone()
    }

    /// Plays `fault` at `endpoint` (a name as in [`StandIn::calls`]) until cleared with `None`.
    pub fn set_fault(&self, endpoint: &'static str, fault: Option<Fault>) {
        self.shared.set_fault(endpoint, fault);
    }

    /// The lifetime of JWTs issued from now on; `expires_in` follows it.
    pub fn set_jwt_lifetime(&self, lifetime: Duration) {
        self.shared.set_jwt_lifetime(lifetime);
    }

    /// Revokes every refresh token, as an administrator or a 90-day expiry would; returns how
    /// many there were.
    pub fn revoke_refresh_tokens(&self) -> usize {
        self.shared.revoke_refresh_tokens()
    }

    /// Makes every opaque access token and every refresh token expire now, as time passing would:
    /// the API answers `token_expired`, a refresh `invalid_grant`. JWTs carry their own `exp` and
    /// cannot be recalled; shorten their lifetime with [`set_jwt_lifetime`](Self::set_jwt_lifetime)
    /// before they are issued. Returns how many tokens expired.
    pub fn expire_tokens(&self) -> usize {
        self.shared.expire_tokens()
    }

    /// The public JWK set that verifies the stand-in's RS512 JWTs (`asymmetric_jwt`), as an
    /// operator would copy it from `JWT_PUBLIC_SIGNING_JWK_SET`: no URL serves it.
    pub fn public_jwks(&self) -> serde_json::Value {
        jwt::public_jwks()
    }

    /// How many refresh tokens are still alive.
    pub fn live_refresh_tokens(&self) -> usize {
        self.shared.lock().refresh_tokens.len()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}
