//! What the stand-in records for tests to read: the endpoint names requests count under
//! ([`ENDPOINTS`]), the journal of every request ([`JournalEntry`]), token and API requests kept
//! whole, and every secret it issued.

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
    /// The name it counts under in [`StandIn::calls`](crate::StandIn::calls), if it is an LMS
    /// endpoint.
    pub endpoint: Option<&'static str>,
    /// The status it was answered with.
    pub status: u16,
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

/// The names requests are counted under ([`StandIn::calls`](crate::StandIn::calls)) and faults
/// are set at ([`StandIn::set_fault`](crate::StandIn::set_fault)), one for each LMS endpoint the
/// stand-in serves.
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
pub(crate) fn endpoint_of(path: &str) -> Option<&'static str> {
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
