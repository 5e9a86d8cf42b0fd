//! The Open edX LMS client: the only module that knows the LMS's wire format.
//!
//! What it relies on, each traced in `../shared/openedx.md`:
//! - the browser goes to `{LMS_URL}/oauth2/authorize/` (slash optional on the LMS), with S256 PKCE,
//!   which DOT 1.7.1 accepts though it does not require it (§4);
//! - the code is exchanged at `{LMS_INTERNAL_URL}/oauth2/access_token` with `token_type=jwt` **in the
//!   POST body** (the LMS ignores it in the query string) (§2);
//! - a JWT is sent back as `Authorization: JWT <jwt>`, an opaque token as `Bearer` (§6);
//! - `/api/user/v1/me` and `/api/user/v1/accounts/{username}` take **no** trailing slash (§6);
//! - a refresh sends `grant_type=refresh_token` and `token_type=jwt` again, and gets a new refresh
//!   token each time: the old one is spent (§2);
//! - sign-out revokes the refresh token at `/oauth2/revoke_token` (a JWT itself cannot be
//!   revoked; revoking its refresh token is all there is) (§8).
//!
//! Token requests go through the `oauth2` crate, with this module's own HTTP function so that one
//! `reqwest::Client` (timeouts, no redirects followed, a size cap on bodies) serves every LMS call.

pub mod account;
pub mod authorizer;
mod grants;
pub mod jwt;
pub mod token;

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken, EndpointNotSet,
    EndpointSet, ErrorResponseType, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, StandardErrorResponse, TokenResponse, TokenUrl,
    basic::{BasicClient, BasicTokenType},
};
use reqwest::{StatusCode, header};
use serde::de::DeserializeOwned;
use url::Url;

pub use self::{
    account::{Account, Me},
    authorizer::ClientCredentialsAuthorizer,
    grants::{TokenHint, check_api_path},
    jwt::{Expected, Jwt, JwtError, JwtKey, UnverifiedClaims},
    token::{Token, TokenKind},
};
use crate::{
    config::{ClientAuth, Config, TokenTypeRequest, join},
    metrics::Metrics,
    secret::Secret,
};

/// Sends a token request built by the `oauth2` crate (each grant has its own request type, with
/// no common trait): adds this client's extra fields (`token_type=jwt`, `asymmetric_jwt`), times
/// the call, and turns the answer into a [`Token`] or an [`LmsError`].
macro_rules! send_token_request {
    ($client:expr, $request:expr) => {{
        let mut request = $request;
        for (name, value) in $client.token_params() {
            request = request.add_extra_param(name, value);
        }
        let response = $client
            .timed(&Endpoint::Token, request.request_async(&$client.http))
            .await
            .map_err(|e| oauth_request_error(Endpoint::Token, e))?;
        $client.token_from(response)
    }};
}
use send_token_request;

/// Bodies larger than this are not LMS answers the app understands.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How much of an unexpected body goes into a log line.
const EXCERPT_CHARS: usize = 200;

type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// How long a pooled connection to the LMS may sit idle before it is dropped: below the shortest
/// keep-alive of the servers that commonly front an LMS (gunicorn's 2 s; nginx 75 s, Apache 5 s),
/// so the app does not send a request on a connection the server is closing. A request sent on
/// one anyway is covered by [`LmsClient::get`]'s single retry.
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a heartbeat result answers readiness checks before the LMS is asked again.
const HEARTBEAT_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// A heartbeat's result (the LMS's HTTP status, or why there was none) and when it was taken.
type Heartbeat = (std::time::Instant, Result<u16, String>);

/// The LMS endpoints the app calls, for error messages and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Revoke,
    Me,
    Account,
    Heartbeat,
    /// Any other API, called through [`LmsClient::api_get`], with the path it was asked for.
    Api(String),
}

impl Endpoint {
    /// The name metrics use.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Revoke => "revoke",
            Self::Me => "me",
            Self::Account => "accounts",
            Self::Heartbeat => "heartbeat",
            Self::Api(_) => "api",
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Self::Token => "/oauth2/access_token",
            Self::Revoke => "/oauth2/revoke_token",
            Self::Me => "/api/user/v1/me",
            Self::Account => "/api/user/v1/accounts/{username}",
            Self::Heartbeat => "/heartbeat",
            Self::Api(path) => path,
        }
    }
}

/// Everything that can go wrong talking to the LMS, by what happened. None of the variants holds a
/// token or secret.
#[derive(Debug)]
pub enum LmsError {
    /// Could not connect: refused, a name that does not resolve, a failed TLS handshake.
    Unreachable { endpoint: Endpoint, detail: String },
    /// No complete answer within `LMS_TIMEOUT_SECS`.
    Timeout { endpoint: Endpoint },
    /// Connected, but the connection closed before the answer was complete: before any answer,
    /// or in the middle of its body. The address is right; the LMS or a proxy dropped the call.
    Interrupted { endpoint: Endpoint, detail: String },
    /// An HTTP status the protocol does not allow here (e.g. a 5xx or a 404).
    Status {
        endpoint: Endpoint,
        status: u16,
        excerpt: String,
    },
    /// A body that is not the JSON the LMS sends (HTML, missing fields, unknown token type...).
    Garbage { endpoint: Endpoint, detail: String },
    /// An OAuth 2 error from the token endpoint (RFC 6749 §5.2), e.g. `invalid_grant`.
    OAuth {
        error: String,
        description: Option<String>,
    },
    /// An API path that is not one on the LMS (a URL, `//host`, a relative path); nothing was sent.
    NotAnLmsPath { path: String, problem: &'static str },
    /// The API refused the token (401/403).
    Rejected {
        endpoint: Endpoint,
        status: u16,
        excerpt: String,
    },
}

impl fmt::Display for LmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { endpoint, detail } => {
                write!(
                    f,
                    "could not connect to the LMS at {}: {detail}",
                    endpoint.path()
                )
            }
            Self::Timeout { endpoint } => {
                write!(f, "the LMS did not answer {} in time", endpoint.path())
            }
            Self::Interrupted { endpoint, detail } => {
                write!(
                    f,
                    "the connection to the LMS closed before its answer at {} was complete: \
                     {detail}",
                    endpoint.path()
                )
            }
            Self::Status {
                endpoint,
                status,
                excerpt,
            } => {
                write!(
                    f,
                    "the LMS answered HTTP {status} at {}: {excerpt:?}",
                    endpoint.path()
                )
            }
            Self::Garbage { endpoint, detail } => {
                write!(
                    f,
                    "the LMS answered {} with an unusable body: {detail}",
                    endpoint.path()
                )
            }
            Self::NotAnLmsPath { path, problem } => {
                write!(f, "{path:?} is not a path on the LMS: {problem}")
            }
            Self::OAuth { error, description } => {
                write!(f, "the LMS token endpoint returned error={error}")?;
                match description {
                    Some(d) => write!(f, " ({d})"),
                    None => Ok(()),
                }
            }
            Self::Rejected {
                endpoint,
                status,
                excerpt,
            } => {
                write!(
                    f,
                    "the LMS refused the token at {} with HTTP {status}: {excerpt:?}",
                    endpoint.path()
                )
            }
        }
    }
}

impl std::error::Error for LmsError {}

/// What `GET /` needs to send the browser to the LMS and to check the callback later.
pub struct AuthorizeRequest {
    pub url: Url,
    pub state: Secret,
    pub pkce_verifier: Secret,
}

#[derive(Clone)]
pub struct LmsClient {
    http: Transport,
    oauth: OAuthClient,
    revocation_url: Url,
    client_id: String,
    client_secret: oauth2::ClientSecret,
    client_auth: ClientAuth,
    api_root: Url,
    scopes: Vec<String>,
    token_type: TokenTypeRequest,
    /// Post `asymmetric_jwt=1`: RS512 JWTs a service can verify with the LMS's public JWK set.
    asymmetric_jwt: bool,
    metrics: Arc<Metrics>,
    /// The last heartbeat and when it was taken. The lock is held across a probe, so concurrent
    /// readiness checks share one call to the LMS.
    heartbeat: Arc<tokio::sync::Mutex<Option<Heartbeat>>>,
}

impl LmsClient {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.lms_timeout / 2)
            .timeout(config.lms_timeout)
            // Following redirects from a token endpoint opens SSRF; the LMS never redirects API calls.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(concat!("profiles/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("could not build the HTTP client: {e}"))?;
        let http = Transport(http);
        let endpoint = |root: &Url, path: &str| join(root, path).to_string();
        let oauth = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(config.client_secret.clone())
            .set_auth_uri(AuthUrl::from_url(join(
                &config.lms_url,
                "oauth2/authorize/",
            )))
            .set_token_uri(
                TokenUrl::new(endpoint(&config.lms_internal_url, "oauth2/access_token"))
                    .map_err(|e| e.to_string())?,
            )
            .set_redirect_uri(RedirectUrl::from_url(config.redirect_uri()))
            .set_auth_type(match config.client_auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Post => AuthType::RequestBody,
            });
        Ok(Self {
            http,
            oauth,
            revocation_url: join(&config.lms_internal_url, "oauth2/revoke_token"),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            client_auth: config.client_auth,
            api_root: config.lms_internal_url.clone(),
            scopes: config.scopes.clone(),
            token_type: config.token_type,
            asymmetric_jwt: false,
            metrics,
            heartbeat: Arc::default(),
        })
    }

    /// A fresh authorization request: new random `state` and S256 PKCE verifier every time.
    pub fn authorize(&self) -> AuthorizeRequest {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .oauth
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        AuthorizeRequest {
            url,
            state: Secret::new(state.secret().clone()),
            pkce_verifier: Secret::new(verifier.secret().clone()),
        }
    }

    /// Exchanges an authorization code (valid 60 s, single use) for a token.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &Secret,
    ) -> Result<Token, LmsError> {
        let request = self
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_owned()));
        send_token_request!(self, request)
    }

    /// Trades the refresh token for a new token (and a new refresh token: the LMS rotates them,
    /// so the one sent is dead once this returns). `invalid_grant` means it was revoked or is
    /// past its 90 days: the person must sign in again.
    pub async fn refresh(&self, token: &Token) -> Result<Token, LmsError> {
        let Some(refresh_token) = &token.refresh_token else {
            return Err(LmsError::OAuth {
                error: "invalid_grant".into(),
                description: Some("no refresh token was issued".into()),
            });
        };
        self.refresh_token(refresh_token, None).await
    }

    /// The extra token-request fields this client sends: `token_type=jwt` **in the body** (the
    /// LMS ignores the query string), and `asymmetric_jwt` when asked for.
    fn token_params(&self) -> Vec<(&'static str, &'static str)> {
        let mut params = Vec::new();
        if self.token_type == TokenTypeRequest::Jwt {
            params.push(("token_type", "jwt"));
        }
        if self.asymmetric_jwt {
            params.push(("asymmetric_jwt", "1"));
        }
        params
    }

    /// Revokes what can be revoked of a token: the refresh token first (DOT deletes its access
    /// token with it), then an opaque access token in case that failed. Both are tried; the first
    /// error is returned. A JWT cannot be revoked; it simply expires.
    pub async fn revoke(&self, token: &Token) -> Result<(), LmsError> {
        let refresh = match &token.refresh_token {
            Some(refresh) => self.revoke_one(refresh.expose(), "refresh_token").await,
            None => Ok(()),
        };
        let access = match token.kind {
            TokenKind::Bearer => {
                self.revoke_one(token.access_token.expose(), "access_token")
                    .await
            }
            TokenKind::Jwt => Ok(()),
        };
        refresh.and(access)
    }

    /// `POST /oauth2/revoke_token` (RFC 7009) by hand: the `oauth2` crate refuses revocation
    /// URLs that are not https, and `http://lms:8000` inside Tutor's network is exactly that. The
    /// LMS answers 200 whether or not the token existed.
    async fn revoke_one(&self, token: &str, hint: &'static str) -> Result<(), LmsError> {
        self.revoke_as(token, hint, None).await
    }

    /// Revocation as this confidential client, or as the public client `public_client_id`
    /// (which sends its `client_id` alone): the LMS only revokes a client's own tokens.
    async fn revoke_as(
        &self,
        token: &str,
        hint: &'static str,
        public_client_id: Option<&str>,
    ) -> Result<(), LmsError> {
        let endpoint = Endpoint::Revoke;
        let mut form = vec![("token", token), ("token_type_hint", hint)];
        let mut request = self.http.post(self.revocation_url.clone());
        match (public_client_id, self.client_auth) {
            (Some(id), _) => form.push(("client_id", id)),
            // RFC 6749 §2.3.1: form-encode both parts before Basic-encoding them, as DOT decodes.
            (None, ClientAuth::Basic) => {
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                request = request.basic_auth(
                    encode(&self.client_id),
                    Some(encode(self.client_secret.secret())),
                );
            }
            (None, ClientAuth::Post) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.secret()));
            }
        }
        // A POST: never retried, even on a connection closed before any answer.
        let response = self
            .timed(&endpoint, request.form(&form).send())
            .await
            .map_err(|e| transport_error(&endpoint, &e))?;
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(());
        }
        let body = read_body(response).await.unwrap_or_default();
        match serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
        {
            Some(error) => Err(LmsError::OAuth {
                error,
                description: None,
            }),
            None => Err(LmsError::Status {
                endpoint,
                status: status.as_u16(),
                excerpt: excerpt(&body),
            }),
        }
    }

    fn token_from(&self, response: oauth2::basic::BasicTokenResponse) -> Result<Token, LmsError> {
        let garbage = |detail: String| LmsError::Garbage {
            endpoint: Endpoint::Token,
            detail,
        };
        let kind = match response.token_type() {
            BasicTokenType::Bearer => TokenKind::Bearer,
            BasicTokenType::Extension(t) => TokenKind::from_token_type(t)
                .ok_or_else(|| garbage(format!("unknown token_type {t:?}")))?,
            BasicTokenType::Mac => return Err(garbage("unsupported token_type \"mac\"".into())),
        };
        let access_token = Secret::new(response.access_token().secret().clone());
        if access_token.expose().is_empty() {
            return Err(garbage("empty access_token".into()));
        }
        let now = unix_now();
        let from_expires_in = response.expires_in().map(|d| now + d.as_secs() as i64);
        let mut token = Token {
            access_token,
            kind,
            expires_at: from_expires_in,
            // RFC 6749 §5.1: an omitted scope means the requested scopes were granted.
            scopes: match response.scopes() {
                Some(scopes) => scopes.iter().map(|s| s.to_string()).collect(),
                None => self.scopes.clone(),
            },
            refresh_token: response
                .refresh_token()
                .map(|r| Secret::new(r.secret().clone())),
        };
        if let Some(exp) = token.claims().and_then(|c| c.expires_at()) {
            token.expires_at = Some(token.expires_at.map_or(exp, |e| e.min(exp)));
        }
        Ok(token)
    }

    /// Whose token this is, then their account: the two calls every sign-in and reload makes.
    pub async fn profile(&self, token: &Token) -> Result<Account, LmsError> {
        let me = self.me(token).await?;
        self.account(token, &me.username).await
    }

    /// `GET /api/user/v1/me` (no trailing slash): whose token this is.
    pub async fn me(&self, token: &Token) -> Result<Me, LmsError> {
        let url = join(&self.api_root, "api/user/v1/me");
        let body = self.get(Endpoint::Me, url, token).await?;
        parse(Endpoint::Me, &body)
    }

    /// `GET /api/user/v1/accounts/{username}` (no trailing slash): the person's own account.
    pub async fn account(&self, token: &Token, username: &str) -> Result<Account, LmsError> {
        let mut url = join(&self.api_root, "api/user/v1/accounts");
        // push() percent-encodes the username as one path segment.
        url.path_segments_mut()
            .map_err(|()| LmsError::Garbage {
                endpoint: Endpoint::Account,
                detail: "bad URL".into(),
            })?
            .push(username);
        let body = self.get(Endpoint::Account, url, token).await?;
        let account: Account = parse(Endpoint::Account, &body)?;
        if account.username != username {
            return Err(LmsError::Garbage {
                endpoint: Endpoint::Account,
                detail: "the account returned is not the one asked for".into(),
            });
        }
        Ok(account)
    }

    /// Whether the LMS answers (`GET /heartbeat`, the LMS's own health check): the HTTP status if
    /// it does. A result is reused for a few seconds, so probes at any rate make at most one call
    /// per `HEARTBEAT_TTL` (5 s); a change between healthy and not is logged once, when it happens.
    pub async fn heartbeat(&self) -> Result<u16, String> {
        let mut last = self.heartbeat.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < HEARTBEAT_TTL
        {
            return result.clone();
        }
        let result = self.probe().await;
        let healthy = |r: &Result<u16, String>| matches!(r, Ok(200..=299));
        let was_healthy = last.as_ref().map(|(_, r)| healthy(r));
        match (&result, was_healthy, healthy(&result)) {
            (_, Some(true) | None, false) => tracing::warn!(
                answer = ?result,
                "the LMS heartbeat fails: nobody can sign in until it answers"
            ),
            (_, Some(false), true) => tracing::info!("the LMS heartbeat answers again"),
            _ => {}
        }
        *last = Some((std::time::Instant::now(), result.clone()));
        result
    }

    async fn probe(&self) -> Result<u16, String> {
        let endpoint = Endpoint::Heartbeat;
        let url = join(&self.api_root, "heartbeat");
        let send = || {
            self.http
                .get(url.clone())
                .timeout(std::time::Duration::from_secs(2))
                .send()
        };
        let response = retry_if_closed_unanswered(&endpoint, send)
            .await
            .map_err(|e| transport_error(&endpoint, &e).to_string())?;
        Ok(response.status().as_u16())
    }

    /// Awaits one LMS call and records how long it took.
    async fn timed<F: Future>(&self, endpoint: &Endpoint, call: F) -> F::Output {
        let started = std::time::Instant::now();
        let output = call.await;
        self.metrics.lms_call(endpoint.label(), started.elapsed());
        output
    }

    /// GETs an API with the token; the body of a 200, or the error the status means. A GET may be
    /// sent twice: see [`retry_if_closed_unanswered`].
    async fn get(&self, endpoint: Endpoint, url: Url, token: &Token) -> Result<Vec<u8>, LmsError> {
        let send = || {
            self.http
                .get(url.clone())
                .header(header::AUTHORIZATION, token.authorization())
                .header(header::ACCEPT, "application/json")
                .send()
        };
        let response = self
            .timed(&endpoint, retry_if_closed_unanswered(&endpoint, send))
            .await
            .map_err(|e| transport_error(&endpoint, &e))?;
        let status = response.status();
        let body = read_body(response).await.map_err(|e| match e {
            BodyError::Transport(e) => transport_error(&endpoint, &e),
            BodyError::TooLarge => LmsError::Garbage {
                endpoint: endpoint.clone(),
                detail: "body over 1 MiB".into(),
            },
        })?;
        match status {
            StatusCode::OK => Ok(body),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(LmsError::Rejected {
                endpoint,
                status: status.as_u16(),
                excerpt: excerpt(&body),
            }),
            _ => Err(LmsError::Status {
                endpoint,
                status: status.as_u16(),
                excerpt: excerpt(&body),
            }),
        }
    }
}

/// Sends an idempotent request, and sends it once more if the connection closed before any answer
/// came: a pooled connection the server (or a proxy with a shorter keep-alive) was closing as the
/// request went out. Nothing was answered, and a GET changes nothing, so a second try is safe.
/// Token and revocation POSTs never come through here: a code or refresh token is single-use, and
/// the first request may have spent it.
async fn retry_if_closed_unanswered<F, Fut>(
    endpoint: &Endpoint,
    send: F,
) -> Result<reqwest::Response, reqwest::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<reqwest::Response, reqwest::Error>>,
{
    match send().await {
        Err(e) if closed_before_any_answer(&e) => {
            tracing::debug!(
                endpoint = endpoint.label(),
                error = %chain(&e),
                "the LMS connection closed before any answer; sending the request again"
            );
            send().await
        }
        other => other,
    }
}

/// The one HTTP client for every LMS call, handed to the `oauth2` crate for token requests.
#[derive(Clone)]
struct Transport(reqwest::Client);

impl std::ops::Deref for Transport {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.0
    }
}

impl<'c> AsyncHttpClient<'c> for Transport {
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Statuses the token endpoint may legitimately use (200, and 400/401 with an OAuth error body)
/// go back to the `oauth2` crate; anything else is an error here, with its status kept for the log.
async fn send(
    http: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, TransportError> {
    let request = reqwest::Request::try_from(request).map_err(TransportError::Build)?;
    let response = http
        .execute(request)
        .await
        .map_err(TransportError::Reqwest)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_body(response).await.map_err(|e| match e {
        BodyError::Transport(e) => TransportError::Reqwest(e),
        BodyError::TooLarge => TransportError::TooLarge,
    })?;
    if !matches!(status.as_u16(), 200 | 400 | 401) {
        return Err(TransportError::Status {
            status: status.as_u16(),
            excerpt: excerpt(&body),
        });
    }
    let mut out = HttpResponse::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// Parses an API body (kept out of the async code: a generic `DeserializeOwned` there trips
/// rustc's "`Send` is not general enough" in axum handlers).
fn parse<T: DeserializeOwned>(endpoint: Endpoint, body: &[u8]) -> Result<T, LmsError> {
    serde_json::from_slice(body).map_err(|e| LmsError::Garbage {
        endpoint,
        detail: format!("{e} in {:?}", excerpt(body)),
    })
}

/// Errors of the HTTP function given to the `oauth2` crate.
#[derive(Debug)]
enum TransportError {
    Build(reqwest::Error),
    Reqwest(reqwest::Error),
    TooLarge,
    Status { status: u16, excerpt: String },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(e) | Self::Reqwest(e) => write!(f, "{e}"),
            Self::TooLarge => f.write_str("body over 1 MiB"),
            Self::Status { status, .. } => write!(f, "HTTP {status}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// An error of a request the `oauth2` crate made (token or revocation) as an [`LmsError`].
fn oauth_request_error<T: ErrorResponseType + AsRef<str> + fmt::Display + 'static>(
    endpoint: Endpoint,
    error: RequestTokenError<TransportError, StandardErrorResponse<T>>,
) -> LmsError {
    match error {
        RequestTokenError::ServerResponse(e) => LmsError::OAuth {
            error: e.error().as_ref().to_owned(),
            description: e.error_description().cloned(),
        },
        RequestTokenError::Request(TransportError::Reqwest(e)) => transport_error(&endpoint, &e),
        RequestTokenError::Request(TransportError::Status { status, excerpt }) => {
            LmsError::Status {
                endpoint,
                status,
                excerpt,
            }
        }
        RequestTokenError::Request(e) => LmsError::Garbage {
            endpoint,
            detail: e.to_string(),
        },
        // JSON that is not a token response may hold a token all the same, so only the parser's
        // message is kept; a body that is not JSON at all (an HTML error page) is excerpted.
        RequestTokenError::Parse(e, body) => LmsError::Garbage {
            endpoint,
            detail: match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(_) => e.to_string(),
                Err(_) => format!("{e} in {:?}", excerpt(&body)),
            },
        },
        RequestTokenError::Other(detail) => LmsError::Garbage { endpoint, detail },
    }
}

/// Classifies a failed call by what happened, so the log and the page send the operator to the
/// right place: a wrong address is not a dropped connection, and neither is a garbled answer.
fn transport_error(endpoint: &Endpoint, error: &reqwest::Error) -> LmsError {
    let endpoint = endpoint.clone();
    // The URL in reqwest's message holds no secret (tokens travel in headers and bodies).
    let detail = chain(error);
    if error.is_timeout() {
        LmsError::Timeout { endpoint }
    } else if error.is_connect() {
        LmsError::Unreachable { endpoint, detail }
    } else if error.is_body() || closed_before_any_answer(error) {
        LmsError::Interrupted { endpoint, detail }
    } else if hyper_errors(error).any(|e| e.is_parse() || e.is_parse_status()) {
        LmsError::Garbage {
            endpoint,
            detail: format!("not an HTTP answer: {detail}"),
        }
    } else {
        // Whatever is left went wrong on the connection before a usable answer.
        LmsError::Interrupted { endpoint, detail }
    }
}

/// Whether a request failed because its connection closed (or was reset) before the answer's
/// first byte: the server dropped it, and did not refuse it.
fn closed_before_any_answer(error: &reqwest::Error) -> bool {
    if error.is_timeout() || error.is_connect() || error.is_body() {
        return false;
    }
    let hyper_says_closed =
        hyper_errors(error).any(|e| e.is_incomplete_message() || e.is_canceled() || e.is_closed());
    let io_says_closed = sources(error)
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| {
            use std::io::ErrorKind as K;
            matches!(
                e.kind(),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
            )
        });
    hyper_says_closed || io_says_closed
}

/// The error and every error under it.
fn sources<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

fn hyper_errors(error: &reqwest::Error) -> impl Iterator<Item = &hyper::Error> {
    sources(error).filter_map(|e| e.downcast_ref::<hyper::Error>())
}

/// An error and its sources on one line: reqwest's own message alone rarely says what happened.
fn chain(error: &reqwest::Error) -> String {
    sources(error)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

enum BodyError {
    Transport(reqwest::Error),
    TooLarge,
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of a body, for logs: at most [`EXCERPT_CHARS`] characters, invalid UTF-8 replaced.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
}

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
