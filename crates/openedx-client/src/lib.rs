//! **openedx-client**: talking to the Open edX LMS correctly. Its OAuth 2 provider
//! (django-oauth-toolkit behind the LMS's own `oauth_dispatch`) and its REST APIs have habits that
//! generic OAuth clients get wrong; this crate knows them, each traced to the LMS source in
//! [`wire`]:
//!
//! - the browser goes to `{LMS_URL}/oauth2/authorize/` (slash optional on the LMS), with S256 PKCE,
//!   which the LMS accepts though it does not require it ([`wire`](wire#the-authorize-request-and-pkce));
//! - the code is exchanged at `{LMS_INTERNAL_URL}/oauth2/access_token` with `token_type=jwt`
//!   **in the POST body** (the LMS ignores it in the query string), with HTTP Basic or form-body
//!   client authentication ([`wire`](wire#the-token-endpoint));
//! - a JWT is sent back as `Authorization: JWT <jwt>`, an opaque token as `Bearer`
//!   ([`wire`](wire#the-user-apis));
//! - `/api/user/v1/me` and `/api/user/v1/accounts/{username}` take **no** trailing slash
//!   ([`wire`](wire#the-routes));
//! - a refresh sends `grant_type=refresh_token` and `token_type=jwt` again, and gets a new refresh
//!   token each time: the old one is spent ([`wire`](wire#the-token-endpoint));
//! - signing out revokes the refresh token at `/oauth2/revoke_token` (a JWT itself cannot be
//!   revoked) and may send the browser to `{LMS_URL}/logout` ([`wire`](wire#revocation),
//!   [`wire`](wire#logout));
//! - the documented recipes: client credentials, the password grant through a public client (as
//!   the mobile apps), calling any API, and a [`ClientCredentialsAuthorizer`] that renews itself.
//!
//! Every call fails with one [`LmsError`] that says what happened: could not connect, no answer in
//! time, the connection cut short, an HTTP status the protocol does not use there, a body that is
//! not the LMS's JSON, or an OAuth error with its code.
//!
//! Features: `verify` (default) verifies JWT signatures ([`Jwt::verify`], through `jsonwebtoken`
//! on the RustCrypto crates); `cli` builds the `openedx` command, the same recipes from a shell.
//!
//! # Recipes
//!
//! Each recipe below runs, as written, against [`openedx-standin`](https://docs.rs/openedx-standin),
//! a stand-in for the LMS that starts on a free port in your tests (a dev-dependency:
//! `openedx-standin = "0.1"`). Point [`ClientConfig::new`] at a real LMS instead and the same
//! code talks to it.
//!
//! ## Sign a person in: authorization code with PKCE
//!
//! ```
//! use std::collections::HashMap;
//!
//! use openedx_client::{ClientConfig, LmsClient};
//! use openedx_standin::{LmsUser, RegisteredClient, StandIn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The LMS: the demo learner and one web application (create_dot_application
//! // --grant-type authorization-code --redirect-uris ... --scopes user_id).
//! let callback_url = "http://127.0.0.1:3000/callback";
//! let lms = StandIn::builder()
//!     .user(LmsUser::demo_learner())
//!     .client(RegisteredClient::authorization_code("my-app", "my-secret", vec![callback_url.into()]))
//!     .start()
//!     .await?;
//!
//! let mut config = ClientConfig::new(lms.url().as_str(), "my-app", "my-secret")?;
//! config.redirect_uri = Some(callback_url.parse()?);
//! let client = LmsClient::new(config)?;
//!
//! // Sign-in: send the browser to `request.url`; keep `state` and `pkce_verifier` for the callback.
//! let request = client.authorize();
//! // The person logs in at the LMS and consents; the stand-in plays the browser here.
//! let callback = lms.authorize_as(request.url.as_str(), "learner")?;
//!
//! // The callback: check the state, then exchange the code (once, within 60 s) with the verifier.
//! let query: HashMap<_, _> = callback.query_pairs().into_owned().collect();
//! assert_eq!(query["state"], request.state.expose());
//! let token = client.exchange_code(&query["code"], &request.pkce_verifier).await?;
//! let account = client.profile(&token).await?;
//! assert_eq!(account.name.as_deref(), Some("Ada Lovelace"));
//! # Ok(())
//! # }
//! ```
//!
//! ## Refresh, then revoke
//!
//! ```
//! use openedx_client::{ClientConfig, LmsClient, LmsError, Secret};
//! use openedx_standin::{LmsUser, RegisteredClient, StandIn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lms = StandIn::builder()
//!     .user(LmsUser::demo_learner())
//!     .client(RegisteredClient::authorization_code("my-app", "my-secret", vec![]))
//!     .client(RegisteredClient::public_password("mobile"))
//!     .start()
//!     .await?;
//! let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "my-app", "my-secret")?)?;
//! let token = client.password("mobile", "learner", &Secret::new("learner-password")).await?;
//! let refresh = token.refresh_token.clone().ok_or("no refresh token")?;
//!
//! // A refresh returns a new refresh token and spends the old one.
//! let renewed = client.refresh_token(&refresh, Some("mobile")).await?;
//! let spent = client.refresh_token(&refresh, Some("mobile")).await;
//! assert!(matches!(spent, Err(LmsError::OAuth { error, .. }) if error == "invalid_grant"));
//!
//! // Signing out: revoke the refresh token (the JWT cannot be revoked; it expires).
//! let newest = renewed.refresh_token.ok_or("no refresh token")?;
//! client
//!     .revoke_token(&newest, openedx_client::TokenHint::RefreshToken, Some("mobile"))
//!     .await?;
//! assert!(client.refresh_token(&newest, Some("mobile")).await.is_err());
//! # Ok(())
//! # }
//! ```
//!
//! [`LmsClient::refresh`] and [`LmsClient::revoke`] do the same for a token of this client.
//!
//! ## A service: client credentials
//!
//! ```
//! use std::time::Duration;
//!
//! use openedx_client::{ClientConfig, ClientCredentialsAuthorizer, LmsClient, TokenKind};
//! use openedx_standin::{RegisteredClient, StandIn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // create_dot_application --grant-type client-credentials ... reports reports-service
//! let lms = StandIn::builder()
//!     .client(RegisteredClient::client_credentials("reports", "reports-secret", "reports-service"))
//!     .start()
//!     .await?;
//! let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "reports", "reports-secret")?)?;
//!
//! let token = client.client_credentials().await?; // no refresh token: ask again to renew
//! assert_eq!(token.kind, TokenKind::Jwt);
//!
//! // Or let an authorizer keep one token fresh for every caller.
//! let authorizer = ClientCredentialsAuthorizer::new(client, Duration::from_secs(60));
//! let me = authorizer.get("/api/user/v1/me").await?;
//! assert_eq!(me["username"], "reports-service");
//! # Ok(())
//! # }
//! ```
//!
//! ## The password grant, through a public client
//!
//! ```
//! use openedx_client::{ClientConfig, LmsClient, Secret};
//! use openedx_standin::{LmsUser, RegisteredClient, StandIn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // create_dot_application --public --grant-type password mobile ...
//! let lms = StandIn::builder()
//!     .user(LmsUser::demo_learner())
//!     .client(RegisteredClient::public_password("mobile"))
//!     .start()
//!     .await?;
//! // A public client has no secret: the client's own id and secret are not used here.
//! let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "mobile", "")?)?;
//! let password = Secret::new("learner-password"); // from a prompt, never an argument
//! let token = client.password("mobile", "learner", &password).await?;
//! assert!(token.scopes.iter().any(|s| s == "user_id"), "the LMS adds user_id");
//! # Ok(())
//! # }
//! ```
//!
//! ## The user APIs, and any other API
//!
//! ```
//! use openedx_client::{ClientConfig, LmsClient, Secret};
//! use openedx_standin::{LmsUser, RegisteredClient, StandIn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lms = StandIn::builder()
//!     .user(LmsUser::demo_learner())
//!     .client(RegisteredClient::public_password("mobile"))
//!     .start()
//!     .await?;
//! let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "mobile", "")?)?;
//! let token = client.password("mobile", "learner", &Secret::new("learner-password")).await?;
//!
//! let me = client.me(&token).await?; // GET /api/user/v1/me: the username only
//! let account = client.account(&token, &me.username).await?; // the profile
//! assert_eq!(account.email.as_deref(), Some("learner@example.com"));
//! let enrollments = client.api_get("/api/enrollment/v1/enrollment", &token).await?;
//! assert_eq!(enrollments[0]["user"], "learner");
//! # Ok(())
//! # }
//! ```
//!
//! ## Verify a JWT
//!
//! ```
//! use openedx_client::{ClientConfig, Expected, Jwt, JwtKey, LmsClient, Secret, unix_now};
//! use openedx_standin::{RegisteredClient, Settings, StandIn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lms = StandIn::builder()
//!     .client(RegisteredClient::client_credentials("reports", "reports-secret", "reports-service"))
//!     .start()
//!     .await?;
//! let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "reports", "reports-secret")?)?;
//! let expected = Expected {
//!     issuer: Some(format!("{}oauth2", lms.url())), // JWT_AUTH['JWT_ISSUER']
//!     audience: Some("lms-key".into()),             // JWT_AUTH['JWT_AUDIENCE']
//!     leeway_secs: 1,
//! };
//!
//! // HS256, the default: verified with the LMS's JWT_SECRET_KEY.
//! let token = client.client_credentials().await?;
//! let jwt = Jwt::decode(token.access_token.expose())?;
//! let secret = JwtKey::Hs256(Secret::new(Settings::default().jwt_secret));
//! jwt.verify(&secret, &expected, unix_now())?;
//!
//! // RS512 (asymmetric_jwt): verified with the public JWK set the operator shares.
//! let token = client.asymmetric().client_credentials().await?;
//! let jwks = JwtKey::from_jwk_set(&lms.public_jwks().to_string())?;
//! Jwt::decode(token.access_token.expose())?.verify(&jwks, &expected, unix_now())?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`config`]: [`ClientConfig`], built in code or read from the `LMS_*` variables.
//! - `client.rs`: [`LmsClient`]: the authorize URL, the code exchange, refresh, revocation, the
//!   logout URL, the user APIs, the heartbeat; `client/grants.rs`: the other recipes (client
//!   credentials, password, refresh and revoke by hand, any API).
//! - [`token`]: the [`Token`] the LMS hands out and its `Authorization` scheme.
//! - [`jwt`]: a JWT's claims, read without verification, and [`Jwt::verify`].
//! - [`account`]: the user APIs' answers, [`Me`] and [`Account`].
//! - [`authorizer`]: [`ClientCredentialsAuthorizer`], a token that renews itself.
//! - `error.rs`: [`LmsError`] and [`Endpoint`]; `transport.rs`: the HTTP underneath and how each
//!   failure is classified.
//! - [`secret`]: [`Secret`], a string whose `Debug` is `[redacted]`.
//! - [`wire`]: the Open edX facts this crate relies on, with links to the LMS source.
//! - `bin/openedx/`: the `openedx` command (feature `cli`).

#![warn(missing_docs)]

pub mod account;
pub mod authorizer;
mod client;
pub mod config;
mod error;
pub mod jwt;
pub mod secret;
pub mod token;
mod transport;

pub use self::{
    account::{Account, Me},
    authorizer::ClientCredentialsAuthorizer,
    client::{AuthorizeRequest, LmsClient, TokenHint, check_api_path},
    config::{ClientAuth, ClientConfig, ConfigError, TokenTypeRequest},
    error::{BuildError, Endpoint, LmsError},
    jwt::{Expected, Jwt, JwtError, UnverifiedClaims},
    secret::Secret,
    token::{Token, TokenKind},
};

#[cfg(feature = "verify")]
pub use self::jwt::JwtKey;

/// Unix seconds now, the clock of every expiry here.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[doc = include_str!("../OPENEDX.md")]
pub mod wire {}

/// The Rust examples of the crate's README, run with the doc tests (the README is packaged with
/// the crate, so they run from the published crate too).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
