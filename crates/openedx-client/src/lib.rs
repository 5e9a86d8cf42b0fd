//! **openedx-client**: talking to the Open edX LMS correctly. Its OAuth 2 provider
//! (django-oauth-toolkit behind the LMS's own `oauth_dispatch`) and its REST APIs have habits that
//! generic OAuth clients get wrong; this crate knows them, each traced to `openedx.md`:
//!
//! - the browser goes to `{LMS_URL}/oauth2/authorize/` (slash optional on the LMS), with S256 PKCE,
//!   which DOT accepts though it does not require it (§4);
//! - the code is exchanged at `{LMS_INTERNAL_URL}/oauth2/access_token` with `token_type=jwt`
//!   **in the POST body** (the LMS ignores it in the query string), with HTTP Basic or form-body
//!   client authentication (§2);
//! - a JWT is sent back as `Authorization: JWT <jwt>`, an opaque token as `Bearer` (§6);
//! - `/api/user/v1/me` and `/api/user/v1/accounts/{username}` take **no** trailing slash (§6);
//! - a refresh sends `grant_type=refresh_token` and `token_type=jwt` again, and gets a new refresh
//!   token each time: the old one is spent (§2);
//! - signing out revokes the refresh token at `/oauth2/revoke_token` (a JWT itself cannot be
//!   revoked) and may send the browser to `{LMS_URL}/logout` (§8);
//! - the documented recipes: client credentials, the password grant through a public client (as
//!   the mobile apps), calling any API, and a [`ClientCredentialsAuthorizer`] that renews itself.
//!
//! Every call fails with one [`LmsError`] that says what happened: could not connect, no answer in
//! time, the connection cut short, an HTTP status the protocol does not use there, a body that is
//! not the LMS's JSON, or an OAuth error with its code.
//!
//! ```
//! use openedx_client::{ClientConfig, LmsClient, TokenKind};
//! use openedx_standin::{RegisteredClient, StandIn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An LMS stand-in with one service application (`--grant-type client-credentials`).
//! let lms = StandIn::builder()
//!     .client(RegisteredClient::client_credentials("reports", "reports-secret", "reports-service"))
//!     .start()
//!     .await?;
//!
//! let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "reports", "reports-secret")?)?;
//! let token = client.client_credentials().await?;
//! assert_eq!(token.kind, TokenKind::Jwt);
//! let me = client.api_get("/api/user/v1/me", &token).await?;
//! assert_eq!(me["username"], "reports-service");
//! # Ok(())
//! # }
//! ```
//!
//! Features: `verify` (default) verifies JWT signatures ([`Jwt::verify`], through `jsonwebtoken`
//! on the RustCrypto crates); `cli` builds the `openedx` command, the same recipes from a shell.
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
//! - `bin/openedx/`: the `openedx` command (feature `cli`).

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

/// The Rust examples of the repository's README, compiled with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;
