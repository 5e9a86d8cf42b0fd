//! **openedx-standin**: a development stand-in for the Open edX LMS. A small axum server that
//! speaks the LMS's wire format (as `shared/openedx.md` describes it) so that an app's tests can
//! sign in, get tokens and call the user APIs without an LMS, and a developer can sign in to their
//! app locally with the `openedx-standin` binary.
//!
//! It is a dev/test tool: everything lives in memory, the consent form has no CSRF token, its
//! login form stands in for the authn MFE, and it signs RS512 JWTs with a development key that is
//! public by nature. Never point a production app at it.
//!
//! ```
//! use openedx_standin::{LmsUser, RegisteredClient, StandIn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let lms = StandIn::builder()
//!     .user(LmsUser::demo_learner())
//!     .client(RegisteredClient::authorization_code(
//!         "my-app",
//!         "my-app-secret",
//!         vec!["http://127.0.0.1:3000/callback".into()],
//!     ))
//!     .start()
//!     .await?;
//! // Point the app under test at `lms.url()`, run it, then assert on what reached the LMS:
//! assert_eq!(lms.calls("token"), 0);
//! assert!(lms.journal().is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! What it reproduces (section numbers of `openedx.md`):
//! - `/oauth2/authorize` and `/oauth2/access_token` with and without the trailing slash; user
//!   APIs without it only (§1, §6);
//! - fatal authorize errors as a 400 page, the rest as `error=` redirects; the login redirect;
//!   a consent page that is skipped for `--skip-authorization` apps and once approved (§9, §5);
//! - single-use codes that expire after 60 s, PKCE checked when a challenge was sent (§2, §4);
//! - `token_type=jwt` in the body (or `X-Token-Type`) giving an HS256 JWT with the LMS's claims and
//!   `"token_type": "JWT"`, `expires_in` 3600; otherwise an opaque `Bearer` token, 36000 (§2, §3);
//! - `asymmetric_jwt` giving an RS512 JWT, verifiable with [`StandIn::public_jwks`];
//! - the client-credentials and password grants, one grant per application as DOT registers it;
//! - `Authorization: JWT` for JWTs, `Bearer` for opaque tokens, and a JWT sent as `Bearer`
//!   rejected with `token_nonexistent` (§6);
//! - `grant_type=refresh_token` with rotation (the old refresh token dies with its use) and 90-day
//!   refresh tokens; `/oauth2/revoke_token[/]` answering 200 whatever the token; `/logout` that
//!   honours `redirect_url` only when it is part of the app's registered redirect URIs, and loads
//!   every URL of its `IDA_LOGOUT_URI_LIST` ([`Settings::ida_logout_uri_list`]) in a hidden
//!   iframe with `no_redirect=1` before moving on (§2, §8).
//!
//! For failure tests it also plays faults on demand ([`StandIn::set_fault`]): a slow answer, a
//! 5xx, HTML where JSON belongs. Every request is counted by endpoint ([`StandIn::calls`]) and
//! written to a journal ([`StandIn::journal`]); token and API requests are kept whole
//! ([`StandIn::token_requests`], [`StandIn::api_requests`]).
//!
//! # Layout
//! - this file: [`StandIn`] and its [`Builder`], the registered [`RegisteredClient`]s and
//!   [`LmsUser`]s, [`Settings`], the recorded requests, faults, and the router;
//! - `authorize.rs`: the browser-facing half: `/login`, `/oauth2/authorize` and its consent page,
//!   `/logout`;
//! - `token.rs`: `/oauth2/access_token` (every grant, JWT claims and signing) and
//!   `/oauth2/revoke_token`;
//! - `api.rs`: `/api/user/v1/me`, `/api/user/v1/accounts/{username}`,
//!   `/api/enrollment/v1/enrollment`, with the LMS's two authentication schemes;
//! - `main.rs`: the `openedx-standin` binary, which runs one on a port of your choice;
//! - `templates/`: its pages; `src/dev_signing_key.pem`: its RS512 development key.

mod api;
mod authorize;
mod token;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Router,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::{net::TcpListener, task::JoinHandle};
use url::Url;

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Renders a template as an HTML response; a template that fails is a plain-text 500.
pub(crate) fn render(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Scopes the LMS knows (`OAUTH2_PROVIDER['SCOPES']`).
pub const KNOWN_SCOPES: [&str; 8] = [
    "read",
    "write",
    "email",
    "profile",
    "certificates:read",
    "grades:read",
    "tpa:read",
    "user_id",
];
/// Scopes every application may ask for (`DEFAULT_SCOPES`), and the ones used when none are asked.
pub const DEFAULT_SCOPES: [&str; 4] = ["read", "write", "email", "profile"];
/// The LMS's session cookie in devstack; a name unlike the app's, since cookies ignore ports.
pub const SESSION_COOKIE: &str = "lms_sessionid";

/// A DOT application as `create_dot_application` registers it.
#[derive(Clone, Debug)]
pub struct RegisteredClient {
    pub client_id: String,
    /// Empty for a public client (`--public`), which authenticates with its `client_id` alone.
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    /// `--skip-authorization`: no consent page.
    pub skip_authorization: bool,
    /// `--scopes`: the `ApplicationAccess` scopes beyond the defaults, e.g. `user_id`.
    pub scopes: Vec<String>,
    /// `--grant-type`: the one grant the application may use.
    pub grant_type: GrantType,
    /// The LMS user that owns the application; client-credentials tokens are theirs.
    pub owner: String,
}

impl RegisteredClient {
    /// A confidential authorization-code application, as this app is registered.
    pub fn authorization_code(
        client_id: &str,
        client_secret: &str,
        redirect_uris: Vec<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uris,
            skip_authorization: false,
            scopes: vec!["user_id".into()],
            grant_type: GrantType::AuthorizationCode,
            owner: "app-service".into(),
        }
    }

    /// A confidential application for service-to-service calls (`--grant-type
    /// client-credentials`): its tokens act as `owner`, a service account created with it.
    pub fn client_credentials(client_id: &str, client_secret: &str, owner: &str) -> Self {
        Self {
            grant_type: GrantType::ClientCredentials,
            owner: owner.into(),
            ..Self::authorization_code(client_id, client_secret, vec![])
        }
    }

    /// A public application for the password grant, as the LMS's mobile apps are registered
    /// (`--public --grant-type password`): no secret.
    pub fn public_password(client_id: &str) -> Self {
        Self {
            grant_type: GrantType::Password,
            ..Self::authorization_code(client_id, "", vec![])
        }
    }

    /// The same application with `--skip-authorization`: no consent page.
    pub fn skipping_consent(self) -> Self {
        Self {
            skip_authorization: true,
            ..self
        }
    }

    pub fn is_public(&self) -> bool {
        self.client_secret.is_empty()
    }
}

/// DOT's `authorization_grant_type`, as `create_dot_application --grant-type` sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    Password,
}

impl GrantType {
    /// The value the JWT's `grant_type` claim carries (hyphenated, as DOT stores it).
    pub fn claim(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization-code",
            Self::ClientCredentials => "client-credentials",
            Self::Password => "password",
        }
    }
}

/// A learner account on the stand-in.
#[derive(Clone, Debug)]
pub struct LmsUser {
    pub id: i64,
    pub username: String,
    pub password: String,
    pub email: String,
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub country: Option<String>,
    pub bio: Option<String>,
    pub languages: Vec<String>,
    pub date_joined: String,
    pub is_staff: bool,
    /// Course ids the learner is enrolled in (audit mode).
    pub enrollments: Vec<String>,
}

impl LmsUser {
    /// A demo learner, `learner` / `learner-password`, enrolled in the demo course.
    pub fn demo_learner() -> Self {
        Self {
            id: 7,
            username: "learner".into(),
            password: "learner-password".into(),
            email: "learner@example.com".into(),
            name: "Ada Lovelace".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            country: Some("GB".into()),
            bio: Some("Writes the first programs for an engine that does not exist yet.".into()),
            languages: vec!["en".into(), "fr".into()],
            date_joined: "2024-01-15T10:00:00Z".into(),
            is_staff: false,
            enrollments: vec![DEMO_COURSE.into()],
        }
    }

    /// A service account, as `manage_user <name> <email> --unusable-password` creates to own an
    /// application.
    pub fn service(username: &str) -> Self {
        Self {
            id: 2,
            username: username.into(),
            password: String::new(),
            email: format!("{username}@openedx"),
            name: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            country: None,
            bio: None,
            languages: vec![],
            date_joined: "2024-01-01T00:00:00Z".into(),
            is_staff: false,
            enrollments: vec![],
        }
    }
}

/// The demo course every Open edX installation can import.
pub const DEMO_COURSE: &str = "course-v1:OpenedX+DemoX+DemoCourse";

/// How the stand-in behaves; the defaults are the LMS's.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `JWT_AUTH['JWT_SECRET_KEY']` (HS256). Devstack's value.
    pub jwt_secret: String,
    /// `JWT_AUTH['JWT_AUDIENCE']`. Devstack's value.
    pub jwt_audience: String,
    /// DOT `AUTHORIZATION_CODE_EXPIRE_SECONDS`.
    pub code_lifetime: Duration,
    /// `JWT_ACCESS_TOKEN_EXPIRE_SECONDS`.
    pub jwt_lifetime: Duration,
    /// DOT `ACCESS_TOKEN_EXPIRE_SECONDS`.
    pub opaque_lifetime: Duration,
    /// `REFRESH_TOKEN_EXPIRE_SECONDS` (90 days).
    pub refresh_lifetime: Duration,
    /// `IDA_LOGOUT_URI_LIST`: the front-channel logout URLs `/logout` loads in hidden iframes
    /// (Tutor lists Studio's `/logout/`). The LMS's default is empty.
    pub ida_logout_uri_list: Vec<String>,
    /// The host name browsers use for the stand-in (with the port it is bound to), e.g. one a
    /// browser maps to loopback, so that the app and the LMS can be same-site or cross-site on
    /// purpose. Default: the bound IP address.
    pub host: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            jwt_secret: "lms-secret".into(),
            jwt_audience: "lms-key".into(),
            code_lifetime: Duration::from_secs(60),
            jwt_lifetime: Duration::from_secs(3600),
            opaque_lifetime: Duration::from_secs(36000),
            refresh_lifetime: Duration::from_secs(90 * 24 * 3600),
            ida_logout_uri_list: Vec::new(),
            host: None,
        }
    }
}

/// A token request as it arrived, for tests to inspect.
#[derive(Clone, Debug)]
pub struct RecordedTokenRequest {
    /// The form fields in order.
    pub form: Vec<(String, String)>,
    /// `(client_id, client_secret)` from an HTTP Basic header, URL-decoded as DOT does.
    pub basic_auth: Option<(String, String)>,
    pub x_token_type: Option<String>,
}

impl RecordedTokenRequest {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An API request as it arrived: the path and the `Authorization` header.
#[derive(Clone, Debug)]
pub struct RecordedApiRequest {
    pub path: String,
    pub authorization: Option<String>,
}

/// One request as the stand-in answered it, in the order they arrived: the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    pub method: String,
    /// The path alone: a query string may carry codes and states.
    pub path: String,
    /// The name it counts under in [`StandIn::calls`], if it is an LMS endpoint.
    pub endpoint: Option<&'static str>,
    pub status: u16,
}

struct Grant {
    client_id: String,
    username: String,
    redirect_uri: String,
    redirect_uri_sent: bool,
    scopes: Vec<String>,
    challenge: Option<(String, String)>,
    expires_at: tokio::time::Instant,
}

struct IssuedToken {
    username: String,
    expires_at: i64,
}

/// A DOT refresh token: which grant it continues, and the access token it was issued with
/// (revoking the refresh token deletes that one too).
struct RefreshGrant {
    client_id: String,
    username: String,
    scopes: Vec<String>,
    expires_at: i64,
    access_token: String,
}

/// A failure the stand-in plays at one endpoint until cleared, for the app's failure tests.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer normally, but only after this long (set it beyond the app's timeout for a hang).
    Delay(Duration),
    /// Answer this instead: a proxy's 502, an HTML error page, JSON missing its fields...
    Respond {
        status: u16,
        content_type: &'static str,
        body: String,
    },
}

/// Every token the stand-in handed out, so tests can look for them where they must not be.
#[derive(Clone, Debug, Default)]
pub struct IssuedSecrets {
    pub access_tokens: Vec<String>,
    pub refresh_tokens: Vec<String>,
    pub codes: Vec<String>,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<String, RegisteredClient>,
    users: HashMap<String, LmsUser>,
    /// Browser sessions: cookie value to username.
    sessions: HashMap<String, String>,
    grants: HashMap<String, Grant>,
    opaque_tokens: HashMap<String, IssuedToken>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    issued: IssuedSecrets,
    faults: HashMap<&'static str, Fault>,
    /// The lifetime of JWTs issued from now on (tests shorten it to get stale tokens on demand).
    jwt_lifetime: Option<Duration>,
    /// (username, client_id, sorted scopes) once approved: consent is skipped from then on.
    approvals: HashSet<(String, String, Vec<String>)>,
    calls: HashMap<&'static str, usize>,
    token_requests: Vec<RecordedTokenRequest>,
    api_requests: Vec<RecordedApiRequest>,
    journal: Vec<JournalEntry>,
}

/// State shared by the stand-in's handlers.
#[derive(Clone)]
struct Shared {
    base: Url,
    settings: Arc<Settings>,
    inner: Arc<Mutex<Inner>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count(&self, endpoint: &'static str) {
        *self.lock().calls.entry(endpoint).or_default() += 1;
    }

    /// `JWT_AUTH['JWT_ISSUER']`: the LMS root plus `/oauth2`.
    fn issuer(&self) -> String {
        format!("{}/oauth2", self.base.as_str().trim_end_matches('/'))
    }

    fn logged_in_user(&self, headers: &HeaderMap) -> Option<LmsUser> {
        let sid = cookie(headers, SESSION_COOKIE)?;
        let inner = self.lock();
        let username = inner.sessions.get(&sid)?;
        inner.users.get(username).cloned()
    }
}

/// Sets up a stand-in: its users, its registered applications, its lifetimes; then
/// [`start`](Builder::start) it. From [`StandIn::builder`].
#[derive(Debug)]
pub struct Builder {
    addr: SocketAddr,
    settings: Settings,
    users: Vec<LmsUser>,
    clients: Vec<RegisteredClient>,
}

impl Builder {
    /// Where to listen; default `127.0.0.1:0`, a free port (see [`StandIn::url`]).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Everything at once (the defaults are the LMS's).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// A learner who may log in.
    pub fn user(mut self, user: LmsUser) -> Self {
        self.users.push(user);
        self
    }

    /// A registered application ([`RegisteredClient::skipping_consent`] for one without a consent
    /// page).
    pub fn client(mut self, client: RegisteredClient) -> Self {
        self.clients.push(client);
        self
    }

    /// `JWT_ACCESS_TOKEN_EXPIRE_SECONDS`: how long JWTs live (default an hour).
    pub fn jwt_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.jwt_lifetime = lifetime;
        self
    }

    /// DOT's `AUTHORIZATION_CODE_EXPIRE_SECONDS` (default 60 s).
    pub fn code_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.code_lifetime = lifetime;
        self
    }

    /// `REFRESH_TOKEN_EXPIRE_SECONDS` (default 90 days).
    pub fn refresh_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.refresh_lifetime = lifetime;
        self
    }

    /// A URL of `IDA_LOGOUT_URI_LIST`, loaded in a hidden iframe by `/logout`.
    pub fn logout_uri(mut self, uri: impl Into<String>) -> Self {
        self.settings.ida_logout_uri_list.push(uri.into());
        self
    }

    /// Binds and serves in the background until the [`StandIn`] is dropped.
    pub async fn start(self) -> std::io::Result<StandIn> {
        let standin = StandIn::spawn(self.addr, self.settings).await?;
        for user in self.users {
            standin.add_user(user);
        }
        for client in self.clients {
            standin.register_client(client);
        }
        Ok(standin)
    }
}

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
        let mut inner = self.shared.lock();
        inner
            .users
            .entry(client.owner.clone())
            .or_insert_with(|| LmsUser::service(&client.owner));
        inner.clients.insert(client.client_id.clone(), client);
    }

    pub fn add_user(&self, user: LmsUser) {
        self.shared.lock().users.insert(user.username.clone(), user);
    }

    /// How many requests reached an endpoint: `login`, `authorize`, `token`, `revoke`, `logout`,
    /// `me`, `accounts`.
    pub fn calls(&self, endpoint: &str) -> usize {
        self.shared.lock().calls.get(endpoint).copied().unwrap_or(0)
    }

    pub fn token_requests(&self) -> Vec<RecordedTokenRequest> {
        self.shared.lock().token_requests.clone()
    }

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
        let mut inner = self.shared.lock();
        match fault {
            Some(f) => inner.faults.insert(endpoint, f),
            None => inner.faults.remove(endpoint),
        };
    }

    /// The lifetime of JWTs issued from now on; `expires_in` follows it.
    pub fn set_jwt_lifetime(&self, lifetime: Duration) {
        self.shared.lock().jwt_lifetime = Some(lifetime);
    }

    /// Revokes every refresh token, as an administrator or a 90-day expiry would.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().refresh_tokens.clear();
    }

    /// The public JWK set that verifies the stand-in's RS512 JWTs (`asymmetric_jwt`), as an
    /// operator would copy it from `JWT_PUBLIC_SIGNING_JWK_SET`: no URL serves it.
    pub fn public_jwks(&self) -> serde_json::Value {
        token::public_jwks()
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

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(authorize::home))
        .route("/login", get(authorize::login_form).post(authorize::login))
        .route(
            "/oauth2/authorize",
            get(authorize::authorize).post(authorize::consent),
        )
        .route(
            "/oauth2/authorize/",
            get(authorize::authorize).post(authorize::consent),
        )
        .route(
            "/oauth2/access_token",
            axum::routing::post(token::access_token),
        )
        .route(
            "/oauth2/access_token/",
            axum::routing::post(token::access_token),
        )
        .route(
            "/oauth2/revoke_token",
            axum::routing::post(token::revoke_token),
        )
        .route(
            "/oauth2/revoke_token/",
            axum::routing::post(token::revoke_token),
        )
        .route("/logout", get(authorize::logout).post(authorize::logout))
        // The LMS's own health check (edx-django-utils' heartbeat view).
        .route(
            "/heartbeat",
            get(|| async {
                axum::Json(serde_json::json!({
                    "sql": { "status": true, "message": "OK" },
                    "modulestore": { "status": true, "message": "OK" },
                }))
            }),
        )
        .route("/api/enrollment/v1/enrollment", get(api::enrollments))
        .route("/api/user/v1/me", get(api::me))
        .route("/api/user/v1/accounts/{username}", get(api::account))
        .fallback(|| async {
            page(
                StatusCode::NOT_FOUND,
                "Page not found",
                "No such page on this LMS.",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            count_and_play_faults,
        ))
        .with_state(shared)
}

/// The endpoint name a path counts under.
fn endpoint_of(path: &str) -> Option<&'static str> {
    let path = path.trim_end_matches('/');
    Some(match path {
        "/login" => "login",
        "/logout" => "logout",
        "/oauth2/authorize" => "authorize",
        "/oauth2/access_token" => "token",
        "/oauth2/revoke_token" => "revoke",
        "/api/user/v1/me" => "me",
        "/api/enrollment/v1/enrollment" => "enrollment",
        "/heartbeat" => "heartbeat",
        _ if path.starts_with("/api/user/v1/accounts/") => "accounts",
        _ => return None,
    })
}

/// Counts every request by endpoint, plays the fault set for it, if any, and writes the journal.
async fn count_and_play_faults(
    axum::extract::State(s): axum::extract::State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let endpoint = endpoint_of(&path);
    let fault = endpoint.and_then(|endpoint| {
        s.count(endpoint);
        s.lock().faults.get(endpoint).cloned()
    });
    let response = match fault {
        None => next.run(request).await,
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Some(Fault::Respond {
            status,
            content_type,
            body,
        }) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response(),
    };
    s.lock().journal.push(JournalEntry {
        method,
        path,
        endpoint,
        status: response.status().as_u16(),
    });
    response
}

/// The value of one cookie in the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A random URL-safe string like DOT's generated codes and tokens.
fn random_token(len: usize) -> String {
    use rand::{Rng, distributions::Alphanumeric};
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[derive(askama::Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

/// A stand-in page with a title and one paragraph.
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    (status, render(&MessagePage { title, message })).into_response()
}
