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
//! - this file: the crate's documentation and its public names, re-exported from the modules below;
//! - `standin.rs`: [`StandIn`], the running stand-in and the handle tests steer it with;
//! - `builder.rs`: its [`Builder`] and the LMS's [`Settings`];
//! - `registry.rs`: the registered [`RegisteredClient`]s and their [`GrantType`], the [`LmsUser`]s
//!   and their [`AccountPrivacy`], the scopes;
//! - `state.rs`: the in-memory state the handlers share (sessions, codes, tokens), with the
//!   helpers they share;
//! - `journal.rs`: what is recorded: the [`ENDPOINTS`] requests count under, the [`JournalEntry`]s,
//!   the whole token and API requests, the [`IssuedSecrets`];
//! - `faults.rs`: the [`Fault`]s, and the layer that counts requests, plays faults and journals;
//! - `router.rs`: every route, the layer in front of the LMS's, the admin API nested behind it;
//! - `page.rs`: rendering the HTML pages;
//! - `authorize.rs`: the browser-facing half: `/login`, `/oauth2/authorize` and its consent page,
//!   `/logout`;
//! - `token.rs`: `/oauth2/access_token` (every grant) and `/oauth2/revoke_token`;
//! - `jwt.rs`: the JWTs it issues: their claims, HS256 and RS512 signing, the development key;
//! - `admin.rs`: the admin API under `/_standin/`;
//! - `api.rs`: `/api/user/v1/me`, `/api/user/v1/accounts/{username}`,
//!   `/api/enrollment/v1/enrollment`, with the LMS's two authentication schemes;
//! - `main.rs`: the `openedx-standin` binary, which runs one on a port of your choice, and
//!   `cli.rs`, its flags (both are the binary's, not the library's);
//! - `templates/`: its pages; `src/dev_signing_key.pem`: its RS512 development key.

#![warn(missing_docs)]

mod admin;
mod api;
mod authorize;
mod builder;
mod faults;
mod journal;
mod jwt;
mod page;
mod registry;
mod router;
mod standin;
mod state;
mod token;

pub use builder::{Builder, Settings};
pub use faults::Fault;
pub use journal::{
    ENDPOINTS, IssuedSecrets, JournalEntry, RecordedApiRequest, RecordedTokenRequest,
};
pub use registry::{
    AccountPrivacy, DEFAULT_SCOPES, DEMO_COURSE, GrantType, KNOWN_SCOPES, LmsUser, RegisteredClient,
};
pub use standin::StandIn;
pub use state::SESSION_COOKIE;

/// The Rust examples of the crate's README, run with the doc tests (the README is packaged with
/// the crate, so they run from the published crate too).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
