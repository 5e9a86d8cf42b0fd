//! Setting a stand-in up: the LMS's [`Settings`] and the [`Builder`] that gathers them with the
//! first users and applications before [`start`](Builder::start).

use std::{net::SocketAddr, time::Duration};

use crate::{LmsUser, RegisteredClient, StandIn};

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

/// Sets up a stand-in: its users, its registered applications, its lifetimes; then
/// [`start`](Builder::start) it. From [`StandIn::builder`].
#[derive(Debug)]
pub struct Builder {
    pub(crate) addr: SocketAddr,
    pub(crate) settings: Settings,
    pub(crate) users: Vec<LmsUser>,
    pub(crate) clients: Vec<RegisteredClient>,
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
