//! [`LmsError`], the one error of every call to the LMS, by what happened; and [`Endpoint`], the
//! call it happened at.

use std::fmt;

/// The LMS endpoints the client calls, for error messages, logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /oauth2/access_token`.
    Token,
    /// `POST /oauth2/revoke_token`.
    Revoke,
    /// `GET /api/user/v1/me`.
    Me,
    /// `GET /api/user/v1/accounts/{username}`.
    Account,
    /// `GET /heartbeat`.
    Heartbeat,
    /// Any other API, called through [`LmsClient::api_get`](crate::LmsClient::api_get), with the
    /// path it was asked for.
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

    /// The path on the LMS, with `{username}` for the account.
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
    Unreachable {
        /// Where.
        endpoint: Endpoint,
        /// The transport's words for it.
        detail: String,
    },
    /// No complete answer within `LMS_TIMEOUT_SECS`.
    Timeout {
        /// Where.
        endpoint: Endpoint,
    },
    /// Connected, but the connection closed before the answer was complete: before any answer,
    /// or in the middle of its body. The address is right; the LMS or a proxy dropped the call.
    Interrupted {
        /// Where.
        endpoint: Endpoint,
        /// The transport's words for it.
        detail: String,
    },
    /// An HTTP status the protocol does not allow here (e.g. a 5xx or a 404).
    Status {
        /// Where.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
        /// The start of the body, for the log.
        excerpt: String,
    },
    /// A body that is not the JSON the LMS sends (HTML, missing fields, unknown token type...).
    Garbage {
        /// Where.
        endpoint: Endpoint,
        /// What was wrong with it.
        detail: String,
    },
    /// An OAuth 2 error from the token endpoint (RFC 6749 §5.2), e.g. `invalid_grant`.
    OAuth {
        /// The `error` code, e.g. `invalid_client`.
        error: String,
        /// The `error_description`, when the LMS sends one.
        description: Option<String>,
    },
    /// An API path that is not one on the LMS (a URL, `//host`, a relative path); nothing was sent.
    NotAnLmsPath {
        /// The path as asked for.
        path: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The API refused the token (401/403).
    Rejected {
        /// Where.
        endpoint: Endpoint,
        /// 401 or 403.
        status: u16,
        /// The start of the body (DRF's `detail`), for the log.
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
/// [`LmsClient::new`](crate::LmsClient::new) could not build its HTTP client (no TLS backend).
#[derive(Debug)]
pub struct BuildError(pub(crate) String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not build the HTTP client: {}", self.0)
    }
}

impl std::error::Error for BuildError {}
