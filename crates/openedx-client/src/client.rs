//! [`LmsClient`]: the authorization-code sign-in (authorize URL with PKCE, code exchange,
//! refresh, revocation), the user APIs, and the LMS's heartbeat. The other documented recipes are
//! in `grants.rs`.
//!
//! Token requests go through the `oauth2` crate, with this crate's own HTTP function
//! (`transport.rs`) so that one `reqwest::Client` serves every LMS call.

mod grants;

pub use self::grants::{TokenHint, check_api_path};

use std::{future::Future, sync::Arc, time::Duration};

use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
    basic::{BasicClient, BasicTokenType},
};
use reqwest::{StatusCode, header};
use url::Url;

use crate::{
    Account, BuildError, Endpoint, LmsError, Me, Secret, Token, TokenKind,
    config::{ClientAuth, ClientConfig, TokenTypeRequest, join},
    transport::{
        BodyError, Transport, excerpt, oauth_request_error, parse, read_body,
        retry_if_closed_unanswered, transport_error,
    },
    unix_now,
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

type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// How long a pooled connection to the LMS may sit idle before it is dropped: below the shortest
/// keep-alive of the servers that commonly front an LMS (gunicorn's 2 s; nginx 75 s, Apache 5 s),
/// so the client does not send a request on a connection the server is closing. A request sent on
/// one anyway is covered by [`LmsClient::get`]'s single retry.
const POOL_IDLE: Duration = Duration::from_secs(1);

/// How long a heartbeat result answers readiness checks before the LMS is asked again.
const HEARTBEAT_TTL: Duration = Duration::from_secs(5);

/// A heartbeat's result (the LMS's HTTP status, or why there was none) and when it was taken.
type Heartbeat = (std::time::Instant, Result<u16, String>);

/// What an app needs to send the browser to the LMS, and to check the callback later: keep
/// `state` and `pkce_verifier` where only this browser's callback finds them.
pub struct AuthorizeRequest {
    /// Where to send the browser: `{LMS_URL}/oauth2/authorize/?...`.
    pub url: Url,
    /// The `state` sent; the callback must bring the same one back.
    pub state: Secret,
    /// The PKCE verifier whose S256 challenge was sent; [`LmsClient::exchange_code`] needs it.
    pub pkce_verifier: Secret,
}

/// The client of one LMS, as one registered application. Cheap to share behind an `Arc`; every
/// call goes through one `reqwest::Client` (connect and total timeouts, no redirects followed,
/// bodies capped at 1 MiB).
#[derive(Clone)]
pub struct LmsClient {
    http: Transport,
    oauth: OAuthClient,
    /// The LMS root as browsers reach it, for its logout page.
    browser_root: Url,
    revocation_url: Url,
    client_id: String,
    client_secret: Secret,
    client_auth: ClientAuth,
    api_root: Url,
    scopes: Vec<String>,
    token_type: TokenTypeRequest,
    /// Post `asymmetric_jwt=1`: RS512 JWTs a service can verify with the LMS's public JWK set.
    asymmetric_jwt: bool,
    on_call: Option<CallObserver>,
    /// The last heartbeat and when it was taken. The lock is held across a probe, so concurrent
    /// readiness checks share one call to the LMS.
    heartbeat: Arc<tokio::sync::Mutex<Option<Heartbeat>>>,
}

/// Told of every LMS call when it ends: which endpoint, and how long it took.
type CallObserver = Arc<dyn Fn(&Endpoint, Duration) + Send + Sync>;

impl LmsClient {
    /// A client for `config`'s LMS and application. Fails only when no HTTP client can be built
    /// (no TLS backend).
    pub fn new(config: ClientConfig) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout / 2)
            .timeout(config.timeout)
            // Following redirects from a token endpoint opens SSRF; the LMS never redirects API calls.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(config.user_agent.as_str())
            .build()
            .map_err(|e| BuildError(e.to_string()))?;
        let http = Transport(http);
        let mut oauth = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(config.client_secret.expose().to_owned()))
            .set_auth_uri(AuthUrl::from_url(join(&config.url, "oauth2/authorize/")))
            .set_token_uri(TokenUrl::from_url(join(
                &config.internal_url,
                "oauth2/access_token",
            )))
            .set_auth_type(match config.client_auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Post => AuthType::RequestBody,
            });
        if let Some(uri) = &config.redirect_uri {
            oauth = oauth.set_redirect_uri(RedirectUrl::from_url(uri.clone()));
        }
        Ok(Self {
            http,
            oauth,
            revocation_url: join(&config.internal_url, "oauth2/revoke_token"),
            browser_root: config.url,
            client_id: config.client_id,
            client_secret: config.client_secret,
            client_auth: config.client_auth,
            api_root: config.internal_url,
            scopes: config.scopes,
            token_type: config.token_type,
            asymmetric_jwt: false,
            on_call: None,
            heartbeat: Arc::default(),
        })
    }

    /// The same client, telling `observe` of every LMS call it makes once it ends (the endpoint
    /// and how long it took), e.g. to record its latency.
    pub fn on_call(
        mut self,
        observe: impl Fn(&Endpoint, Duration) + Send + Sync + 'static,
    ) -> Self {
        self.on_call = Some(Arc::new(observe));
        self
    }

    /// `{LMS_URL}/logout` (no trailing slash), asked to send the browser on to `redirect_url`,
    /// which the LMS does only when that address is part of one of this application's registered
    /// redirect URIs ([`wire`](crate::wire#logout)).
    ///
    /// ```
    /// use openedx_client::{ClientConfig, LmsClient};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = ClientConfig::new("https://lms.example.org", "my-app", "my-secret")?;
    /// let client = LmsClient::new(config)?;
    /// let url = client.logout_url(&"https://app.example.org/signed-out/".parse()?);
    /// assert_eq!(
    ///     url.as_str(),
    ///     "https://lms.example.org/logout?client_id=my-app\
    ///      &redirect_url=https%3A%2F%2Fapp.example.org%2Fsigned-out%2F"
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn logout_url(&self, redirect_url: &Url) -> Url {
        let mut url = join(&self.browser_root, "logout");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_url", redirect_url.as_str());
        url
    }

    /// A fresh authorization request: new random `state` and S256 PKCE verifier every time. The
    /// whole sign-in:
    ///
    /// ```
    /// use std::collections::HashMap;
    ///
    /// use openedx_client::{ClientConfig, LmsClient};
    /// use openedx_standin::{LmsUser, RegisteredClient, StandIn};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let lms = StandIn::builder()
    ///     .user(LmsUser::demo_learner())
    ///     .client(RegisteredClient::authorization_code(
    ///         "my-app",
    ///         "my-secret",
    ///         vec!["http://127.0.0.1:3000/callback".into()],
    ///     ))
    ///     .start()
    ///     .await?;
    /// let mut config = ClientConfig::new(lms.url().as_str(), "my-app", "my-secret")?;
    /// config.redirect_uri = Some("http://127.0.0.1:3000/callback".parse()?);
    /// let client = LmsClient::new(config)?;
    ///
    /// // GET /: send the browser to `request.url`, and keep `state` and `pkce_verifier` where
    /// // only this browser's callback finds them (a sealed cookie, say).
    /// let request = client.authorize();
    /// // The browser signs in at the LMS and consents; the stand-in plays it here.
    /// let callback = lms.authorize_as(request.url.as_str(), "learner")?;
    ///
    /// // GET /callback?code=..&state=..: the state must be the one kept (compare in constant
    /// // time), then the code is exchanged, once, with the verifier.
    /// let query: HashMap<_, _> = callback.query_pairs().into_owned().collect();
    /// assert_eq!(query["state"], request.state.expose());
    /// let token = client.exchange_code(&query["code"], &request.pkce_verifier).await?;
    /// let account = client.profile(&token).await?;
    /// assert_eq!(account.username, "learner");
    ///
    /// // Signing out: what can be revoked is (the refresh token; a JWT just expires).
    /// client.revoke(&token).await?;
    /// assert!(client.refresh(&token).await.is_err(), "its refresh token is dead");
    /// # Ok(())
    /// # }
    /// ```
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
                    Some(encode(self.client_secret.expose())),
                );
            }
            (None, ClientAuth::Post) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose()));
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
                .timeout(Duration::from_secs(2))
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
        if let Some(observe) = &self.on_call {
            observe(endpoint, started.elapsed());
        }
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
