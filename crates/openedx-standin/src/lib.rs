//! **openedx-standin**: a development stand-in for the Open edX LMS. A small axum server that
//! speaks the LMS's wire format (the facts `openedx_client::wire` traces to the LMS source) so
//! that an app's tests can
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
//! What it reproduces (each fact is traced to the LMS source in the `openedx-client` crate's
//! `openedx_client::wire` page):
//! - `/oauth2/authorize` and `/oauth2/access_token` with and without the trailing slash; user
//!   APIs without it only;
//! - fatal authorize errors as a 400 page, the rest as `error=` redirects; the login redirect;
//!   a consent page that is skipped for `--skip-authorization` apps and once approved;
//! - single-use codes that expire after 60 s, PKCE checked when a challenge was sent;
//! - `token_type=jwt` in the body (or `X-Token-Type`) giving an HS256 JWT with the LMS's claims and
//!   `"token_type": "JWT"`, `expires_in` 3600; otherwise an opaque `Bearer` token, 36000;
//! - `asymmetric_jwt` giving an RS512 JWT, verifiable with [`StandIn::public_jwks`];
//! - the client-credentials and password grants, one grant per application as DOT registers it
//!   (client-credentials tokens get `user_id` when the application may have it and no scope was
//!   asked; password-grant applications may be public or confidential);
//! - `Authorization: JWT` for JWTs, `Bearer` for opaque tokens, and a JWT sent as `Bearer`
//!   rejected with `token_nonexistent`; another learner's account shows what their privacy
//!   setting shares (`all_users` by default), and the default profile images exist;
//! - `grant_type=refresh_token` with rotation (the old refresh token dies with its use) and 90-day
//!   refresh tokens; `/oauth2/revoke_token[/]` answering 200 whatever the token; `/logout` that
//!   honours `redirect_url` only when it is part of the app's registered redirect URIs, and loads
//!   every URL of its `IDA_LOGOUT_URI_LIST` ([`Settings::ida_logout_uri_list`]) in a hidden
//!   iframe with `no_redirect=1` before moving on.
//!
//! For failure tests it also plays faults on demand ([`StandIn::set_fault`]): a slow answer, a
//! 5xx, HTML where JSON belongs. Every request is counted by endpoint ([`StandIn::calls`]) and
//! written to a journal ([`StandIn::journal`]); token and API requests are kept whole
//! ([`StandIn::token_requests`], [`StandIn::api_requests`]).
//!
//! # Steering it over HTTP: the admin API (not part of the LMS)
//!
//! Everything above can also be done from any language over HTTP, under `/_standin/`, a prefix
//! the LMS does not have: add applications and learners, inject a fault or a delay on an endpoint,
//! expire or revoke tokens, read the journal and the call counters. The handlers call the very
//! methods of [`StandIn`] the builder uses. The routes, with JSON bodies:
//!
//! | request | does |
//! | --- | --- |
//! | `GET /_standin` | says what this is and lists the routes |
//! | `POST /_standin/clients` `{"client_id", "client_secret"?, "grant_type"?, "redirect_uris"?, "skip_authorization"?, "scopes"?, "owner"?, "public"?}` | registers an application ([`StandIn::register_client`]); answers it, with the secret it got (random when not given) |
//! | `POST /_standin/users` `{"username", "password"?, "email"?, "name"?, "is_staff"?, "account_privacy"?, "id"?}` | adds a learner ([`StandIn::add_user`]) |
//! | `PUT /_standin/faults/{endpoint}` `{"delay_ms"}` or `{"status", "content_type"?, "body"?}` | plays a fault there ([`StandIn::set_fault`]) |
//! | `DELETE /_standin/faults/{endpoint}` | clears it |
//! | `PUT /_standin/jwt-lifetime` `{"seconds"}` | the lifetime of JWTs issued from now on ([`StandIn::set_jwt_lifetime`]) |
//! | `POST /_standin/tokens/expire` | every opaque access token and refresh token expires now ([`StandIn::expire_tokens`]) |
//! | `POST /_standin/tokens/revoke` | every refresh token is revoked ([`StandIn::revoke_refresh_tokens`]) |
//! | `GET /_standin/journal` | the journal ([`StandIn::journal`]) |
//! | `GET /_standin/calls` | the call counters by endpoint ([`StandIn::calls`]) |
//! | `GET /_standin/jwks` | the public JWK set of the RS512 JWTs ([`StandIn::public_jwks`]); the LMS serves none, an operator copies it |
//!
//! Endpoint names are those of [`ENDPOINTS`]. Admin requests are neither counted nor journaled.
//!
//! # Layout
//! - this file: [`StandIn`] and its [`Builder`], the registered [`RegisteredClient`]s and
//!   [`LmsUser`]s, [`Settings`], the recorded requests, faults, and the router;
//! - `authorize.rs`: the browser-facing half: `/login`, `/oauth2/authorize` and its consent page,
//!   `/logout`;
//! - `token.rs`: `/oauth2/access_token` (every grant, JWT claims and signing) and
//!   `/oauth2/revoke_token`;
//! - `admin.rs`: the admin API under `/_standin/`;
//! - `api.rs`: `/api/user/v1/me`, `/api/user/v1/accounts/{username}`,
//!   `/api/enrollment/v1/enrollment`, with the LMS's two authentication schemes;
//! - `main.rs`: the `openedx-standin` binary, which runs one on a port of your choice;
//! - `templates/`: its pages; `src/dev_signing_key.pem`: its RS512 development key.

#![warn(missing_docs)]

mod admin;
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
    /// `--client-id`: what the application calls itself at the token endpoint.
    pub client_id: String,
    /// Empty for a public client (`--public`), which authenticates with its `client_id` alone.
    pub client_secret: String,
    /// `--redirect-uris`: where codes may be sent; an authorize request must name one exactly.
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

    /// A public client has no secret and authenticates with its `client_id` alone.
    pub fn is_public(&self) -> bool {
        self.client_secret.is_empty()
    }
}

/// DOT's `authorization_grant_type`, as `create_dot_application --grant-type` sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantType {
    /// `authorization-code`: browsers sign in and consent; the app exchanges the code.
    AuthorizationCode,
    /// `client-credentials`: the application asks for tokens of its own, acting as its owner.
    ClientCredentials,
    /// `password`: the application sends a learner's username and password (the mobile apps).
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

    /// The grant named as `create_dot_application --grant-type` names it (`authorization-code`,
    /// `client-credentials`, `password`), if it is one the stand-in plays.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "authorization-code" => Some(Self::AuthorizationCode),
            "client-credentials" => Some(Self::ClientCredentials),
            "password" => Some(Self::Password),
            _ => None,
        }
    }
}

/// A learner account on the stand-in.
#[derive(Clone, Debug)]
pub struct LmsUser {
    /// The numeric user id (`user_id` claim, `id` account field).
    pub id: i64,
    /// The username (`preferred_username` claim, `/api/user/v1/me`).
    pub username: String,
    /// The password the login page and the password grant accept; empty for service accounts,
    /// who cannot log in.
    pub password: String,
    /// The email address (login accepts it in place of the username).
    pub email: String,
    /// The full name (`name` claim and account field).
    pub name: String,
    /// The first name (`given_name` claim).
    pub first_name: String,
    /// The last name (`family_name` claim).
    pub last_name: String,
    /// An ISO 3166 country code, if the learner gave one.
    pub country: Option<String>,
    /// The learner's "about me", if any.
    pub bio: Option<String>,
    /// Language codes of `language_proficiencies`.
    pub languages: Vec<String>,
    /// When the account was created, RFC 3339.
    pub date_joined: String,
    /// Staff see every field of every account (`administrator` claim).
    pub is_staff: bool,
    /// Course ids the learner is enrolled in (audit mode).
    pub enrollments: Vec<String>,
    /// The learner's `account_privacy` preference; `None` is the LMS's default visibility,
    /// `all_users`.
    pub account_privacy: Option<AccountPrivacy>,
}

/// Who sees what of an account (the `account_privacy` preference, `ACCOUNT_VISIBILITY_CONFIGURATION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountPrivacy {
    /// `private`: others see only `account_privacy`, `profile_image` and `username`.
    Private,
    /// `all_users`: others also see the bulk-shareable fields (bio, country, languages...).
    AllUsers,
}

impl AccountPrivacy {
    /// The value of the `account_privacy` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::AllUsers => "all_users",
        }
    }
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
            account_privacy: None,
        }
    }

    /// A learner called `username`, with the password `{username}-password`, an address at
    /// `example.com`, the username as their name, no profile details and no enrollments.
    pub fn named(username: &str) -> Self {
        Self {
            id: 8,
            username: username.into(),
            password: format!("{username}-password"),
            email: format!("{username}@example.com"),
            name: username.into(),
            ..Self::service(username)
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
            account_privacy: None,
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
    /// The `X-Token-Type` header, which the LMS reads when the body has no `token_type`.
    pub x_token_type: Option<String>,
}

impl RecordedTokenRequest {
    /// The first value of a form field.
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
    /// The path, e.g. `/api/user/v1/me`.
    pub path: String,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
}

/// One request as the stand-in answered it, in the order they arrived: the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    /// The HTTP method.
    pub method: String,
    /// The path alone: a query string may carry codes and states.
    pub path: String,
    /// The name it counts under in [`StandIn::calls`], if it is an LMS endpoint.
    pub endpoint: Option<&'static str>,
    /// The status it was answered with.
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
        /// The HTTP status.
        status: u16,
        /// The `Content-Type`.
        content_type: &'static str,
        /// The body, as is.
        body: String,
    },
}

/// Every token the stand-in handed out, so tests can look for them where they must not be.
#[derive(Clone, Debug, Default)]
pub struct IssuedSecrets {
    /// Every access token (JWT or opaque) handed out.
    pub access_tokens: Vec<String>,
    /// Every refresh token handed out.
    pub refresh_tokens: Vec<String>,
    /// Every authorization code handed out.
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

    /// Registers an application, creating its owner as a service account if needed (the
    /// operator runs `manage_user` before `create_dot_application`). The builder, the binary's
    /// flags and the admin API all register through here.
    fn register_client(&self, client: RegisteredClient) {
        let mut inner = self.lock();
        inner
            .users
            .entry(client.owner.clone())
            .or_insert_with(|| LmsUser::service(&client.owner));
        inner.clients.insert(client.client_id.clone(), client);
    }

    fn add_user(&self, user: LmsUser) {
        self.lock().users.insert(user.username.clone(), user);
    }

    fn set_fault(&self, endpoint: &'static str, fault: Option<Fault>) {
        let mut inner = self.lock();
        match fault {
            Some(f) => inner.faults.insert(endpoint, f),
            None => inner.faults.remove(endpoint),
        };
    }

    fn revoke_refresh_tokens(&self) -> usize {
        let mut inner = self.lock();
        let count = inner.refresh_tokens.len();
        inner.refresh_tokens.clear();
        count
    }

    fn expire_tokens(&self) -> usize {
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

    fn set_jwt_lifetime(&self, lifetime: Duration) {
        self.lock().jwt_lifetime = Some(lifetime);
    }

    /// An id no learner has yet.
    fn next_user_id(&self) -> i64 {
        self.lock().users.values().map(|u| u.id).max().unwrap_or(0) + 1
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
        .route(
            "/static/images/profiles/{file}",
            get(api::default_profile_image),
        )
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
        // After the layer: admin requests are not the LMS's, so neither counted nor journaled.
        .nest("/_standin", admin::router())
        .with_state(shared)
}

/// The names requests are counted under ([`StandIn::calls`]) and faults are set at
/// ([`StandIn::set_fault`]), one for each LMS endpoint the stand-in serves.
pub const ENDPOINTS: [&str; 9] = [
    "login",
    "logout",
    "authorize",
    "token",
    "revoke",
    "me",
    "accounts",
    "enrollment",
    "heartbeat",
];

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

/// A client secret for an application registered without one: random, so that no two runs share
/// it.
pub(crate) fn random_secret() -> String {
    format!("dev-{}", random_token(32))
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

/// The Rust examples of the crate's README, run with the doc tests (the README is packaged with
/// the crate, so they run from the published crate too).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
