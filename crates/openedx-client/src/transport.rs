//! The HTTP underneath: one `reqwest::Client` for every LMS call, handed to the `oauth2` crate for
//! token requests; a cap on body sizes; the single retry of a GET whose pooled connection closed
//! before any answer; and the classification of every failure into an [`LmsError`].

use std::{fmt, future::Future, pin::Pin};

use oauth2::{
    AsyncHttpClient, ErrorResponseType, HttpRequest, HttpResponse, RequestTokenError,
    StandardErrorResponse,
};
use serde::de::DeserializeOwned;

use crate::{Endpoint, LmsError};

/// Bodies larger than this are not LMS answers the client understands.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How much of an unexpected body goes into a log line.
const EXCERPT_CHARS: usize = 200;

/// Sends an idempotent request, and sends it once more if the connection closed before any answer
/// came: a pooled connection the server (or a proxy with a shorter keep-alive) was closing as the
/// request went out. Nothing was answered, and a GET changes nothing, so a second try is safe.
/// Token and revocation POSTs never come through here: a code or refresh token is single-use, and
/// the first request may have spent it.
pub(crate) async fn retry_if_closed_unanswered<F, Fut>(
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
pub(crate) struct Transport(pub(crate) reqwest::Client);

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
pub(crate) fn parse<T: DeserializeOwned>(endpoint: Endpoint, body: &[u8]) -> Result<T, LmsError> {
    serde_json::from_slice(body).map_err(|e| LmsError::Garbage {
        endpoint,
        detail: format!("{e} in {:?}", excerpt(body)),
    })
}

/// Errors of the HTTP function given to the `oauth2` crate.
#[derive(Debug)]
pub(crate) enum TransportError {
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
pub(crate) fn oauth_request_error<T: ErrorResponseType + AsRef<str> + fmt::Display + 'static>(
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
pub(crate) fn transport_error(endpoint: &Endpoint, error: &reqwest::Error) -> LmsError {
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
pub(crate) fn closed_before_any_answer(error: &reqwest::Error) -> bool {
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
pub(crate) fn chain(error: &reqwest::Error) -> String {
    sources(error)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

pub(crate) enum BodyError {
    Transport(reqwest::Error),
    TooLarge,
}

pub(crate) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
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
pub(crate) fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
}
