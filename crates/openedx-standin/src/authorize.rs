//! `/login` and `/oauth2/authorize`: the browser-facing half of the stand-in (`openedx_client::wire`:
//! PKCE, scopes, errors).

use std::collections::HashMap;

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::{
    DEFAULT_SCOPES, KNOWN_SCOPES, RegisteredClient, SESSION_COOKIE,
    page::{page, render},
    state::{Grant, Shared, cookie, random_token},
};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    next: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_id: &'a str,
    username: &'a str,
    scopes: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    target: &'a str,
    logout_uris: Vec<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login_form(uri: Uri) -> Response {
    let params = query_params(&uri);
    let next = params.get("next").map_or("/", String::as_str);
    render(&LoginPage { next, error: None })
}

/// Logs a learner in (by username or email, as the LMS allows) and returns to `next`.
pub async fn login(State(s): State<Shared>, Form(form): Form<LoginForm>) -> Response {
    let user = {
        let inner = s.lock();
        inner
            .users
            .values()
            .find(|u| {
                (u.username == form.username || u.email == form.username)
                    && u.password == form.password
            })
            .cloned()
    };
    let Some(user) = user else {
        let login = LoginPage {
            next: &form.next,
            error: Some("Username or password is incorrect."),
        };
        return (StatusCode::BAD_REQUEST, render(&login)).into_response();
    };
    let sid = random_token(32);
    s.lock().sessions.insert(sid.clone(), user.username);
    let next = if form.next.starts_with('/') && !form.next.starts_with("//") {
        &form.next
    } else {
        "/"
    };
    (
        StatusCode::FOUND,
        [
            (
                header::SET_COOKIE,
                format!("{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"),
            ),
            (header::LOCATION, next.to_owned()),
        ],
    )
        .into_response()
}

/// `GET /`: the LMS's home page, reduced to whether this browser is logged in.
pub async fn home(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let message = match s.logged_in_user(&headers) {
        Some(user) => format!("You are signed in as {}.", user.username),
        None => "You are not signed in.".to_owned(),
    };
    page(StatusCode::OK, "Welcome", &message)
}

/// `GET|POST /logout` (no trailing slash): ends the LMS session and renders a 200 page that loads
/// every `IDA_LOGOUT_URI_LIST` URL, with `no_redirect=1`, in a hidden iframe, then sends the
/// browser on with JavaScript once they have all loaded (`logout.html`, `logout.js`). The target
/// is `redirect_url` (or `next`) only when `client_id` names an app whose registered redirect URIs
/// contain it as a substring, as `is_safe_login_or_logout_redirect` checks; otherwise `/`.
pub async fn logout(State(s): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let params = query_params(&uri);
    if let Some(sid) = cookie(&headers, SESSION_COOKIE) {
        s.lock().sessions.remove(&sid);
    }
    let wanted = params.get("redirect_url").or_else(|| params.get("next"));
    let target = match (params.get("client_id"), wanted) {
        (Some(client_id), Some(url)) => {
            let Some(client) = s.lock().clients.get(client_id).cloned() else {
                // Application.DoesNotExist is not caught by the LMS.
                return page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server Error (500)",
                    "Application matching query does not exist.",
                );
            };
            if client.redirect_uris.join(" ").contains(url.as_str()) {
                url.clone()
            } else {
                "/".to_owned()
            }
        }
        (None, Some(url)) if url.starts_with('/') && !url.starts_with("//") => url.clone(),
        _ => "/".to_owned(),
    };
    let expired = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    let page = LogoutPage {
        target: &target,
        logout_uris: front_channel_uris(&s.settings.ida_logout_uri_list, &headers),
    };
    ([(header::SET_COOKIE, expired)], render(&page)).into_response()
}

/// `LogoutView.get_context_data`: each listed URL with `no_redirect=1` set, except those that
/// start with the referrer (stripped of slashes), so that an app whose own logout sent the
/// browser here is not asked again.
fn front_channel_uris(list: &[String], headers: &HeaderMap) -> Vec<String> {
    let referrer = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .trim_matches('/');
    list.iter()
        .filter(|uri| referrer.is_empty() || !uri.starts_with(referrer))
        .map(|uri| with_no_redirect(uri))
        .collect()
}

/// `_build_logout_url`: the URL with `no_redirect=1` in its query, replacing any value it had.
fn with_no_redirect(uri: &str) -> String {
    let Ok(mut url) = url::Url::parse(uri) else {
        return uri.to_owned();
    };
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "no_redirect")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("no_redirect", "1");
    url.to_string()
}

/// A request the authorize endpoint accepted; what a code will be bound to.
struct Accepted {
    client: RegisteredClient,
    redirect_uri: String,
    redirect_uri_sent: bool,
    scopes: Vec<String>,
    state: Option<String>,
    challenge: Option<(String, String)>,
}

/// `GET /oauth2/authorize[/]`: validates, sends a stranger to the login page, and either issues a
/// code at once (consent skipped or given before) or shows the consent page.
pub async fn authorize(State(s): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let accepted = match validate(&s, &query_params(&uri)) {
        Ok(accepted) => accepted,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(user) = s.logged_in_user(&headers) else {
        let here = uri
            .path_and_query()
            .map_or("/oauth2/authorize/", |p| p.as_str());
        let login = format!(
            "/login?next={}",
            percent_encoding::utf8_percent_encode(here, QUERY_VALUE)
        );
        return found(&login);
    };
    let params = query_params(&uri);
    let force = params.get("approval_prompt").is_some_and(|p| p == "force");
    let approval = approval_key(&user.username, &accepted);
    let approved = s.lock().approvals.contains(&approval);
    if accepted.client.skip_authorization || (approved && !force) {
        return issue_code(&s, &user.username, accepted);
    }
    let scopes = accepted
        .scopes
        .iter()
        .map(|scope| describe(scope))
        .collect();
    render(&ConsentPage {
        client_id: &accepted.client.client_id,
        username: &user.username,
        scopes,
    })
}

#[derive(Deserialize)]
pub struct ConsentForm {
    allow: Option<String>,
}

/// `POST /oauth2/authorize[/]`: the consent form, posted back to the same URL, whose query string
/// still carries the request (which is how PKCE survives the LMS's consent page, §4).
pub async fn consent(
    State(s): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<ConsentForm>,
) -> Response {
    let accepted = match validate(&s, &query_params(&uri)) {
        Ok(accepted) => accepted,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(user) = s.logged_in_user(&headers) else {
        return page(
            StatusCode::FORBIDDEN,
            "Not signed in",
            "Sign in to the LMS first.",
        );
    };
    if form.allow.is_none() {
        let mut params = vec![("error", "access_denied")];
        if let Some(state) = &accepted.state {
            params.push(("state", state));
        }
        return found(&with_params(&accepted.redirect_uri, &params));
    }
    let approval = approval_key(&user.username, &accepted);
    s.lock().approvals.insert(approval);
    issue_code(&s, &user.username, accepted)
}

/// The checks DOT and oauthlib make, in their order. Client and redirect URI problems are fatal
/// (a 400 page, no redirect); the rest go back to the redirect URI as `error=`.
fn validate(s: &Shared, params: &HashMap<String, String>) -> Result<Accepted, Refusal> {
    let fatal = Refusal::Fatal;
    let client = params
        .get("client_id")
        .and_then(|id| s.lock().clients.get(id).cloned())
        .ok_or_else(|| fatal("Invalid client_id parameter value."))?;
    let (redirect_uri, redirect_uri_sent) = match params.get("redirect_uri") {
        Some(uri) if client.redirect_uris.contains(uri) => (uri.clone(), true),
        Some(_) => return Err(fatal("Mismatching redirect URI.")),
        None if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
        None => return Err(fatal("Missing redirect URI.")),
    };
    let state = params.get("state").cloned();
    let error = |code: &str| {
        let mut pairs = vec![("error", code)];
        if let Some(state) = &state {
            pairs.push(("state", state));
        }
        Refusal::Redirect(with_params(&redirect_uri, &pairs))
    };
    if params.get("response_type").map(String::as_str) != Some("code") {
        return Err(error("unsupported_response_type"));
    }
    let scopes: Vec<String> = match params.get("scope") {
        Some(scope) => scope.split_whitespace().map(str::to_owned).collect(),
        None => DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
    };
    let allowed = |scope: &str| {
        KNOWN_SCOPES.contains(&scope)
            && (DEFAULT_SCOPES.contains(&scope) || client.scopes.iter().any(|s| s == scope))
    };
    if scopes.is_empty() || !scopes.iter().all(|s| allowed(s)) {
        return Err(error("invalid_scope"));
    }
    let challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, _) => None,
        // oauthlib: a challenge without a method is `plain`.
        (Some(c), None) => Some((c.clone(), "plain".to_owned())),
        (Some(c), Some(m)) if m == "S256" || m == "plain" => Some((c.clone(), m.clone())),
        (Some(_), Some(_)) => return Err(error("invalid_request")),
    };
    Ok(Accepted {
        client,
        redirect_uri,
        redirect_uri_sent,
        scopes,
        state,
        challenge,
    })
}

/// Why an authorization request was refused, in the two ways the LMS refuses.
enum Refusal {
    /// The client or redirect URI can't be trusted: a 400 page, never a redirect.
    Fatal(&'static str),
    /// Anything else goes back to the redirect URI with `error=`.
    Redirect(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Fatal(description) => page(
                StatusCode::BAD_REQUEST,
                "Error: invalid_request",
                description,
            ),
            Refusal::Redirect(location) => found(&location),
        }
    }
}

fn issue_code(s: &Shared, username: &str, accepted: Accepted) -> Response {
    found(&code_redirect(s, username, accepted))
}

/// Issues a code for `username` and returns the redirect URI that carries it (and `state`).
fn code_redirect(s: &Shared, username: &str, accepted: Accepted) -> String {
    let code = random_token(30);
    let grant = Grant {
        client_id: accepted.client.client_id.clone(),
        username: username.to_owned(),
        redirect_uri: accepted.redirect_uri.clone(),
        redirect_uri_sent: accepted.redirect_uri_sent,
        scopes: accepted.scopes,
        challenge: accepted.challenge,
        expires_at: tokio::time::Instant::now() + s.settings.code_lifetime,
    };
    {
        let mut inner = s.lock();
        inner.grants.insert(code.clone(), grant);
        inner.issued.codes.push(code.clone());
    }
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = &accepted.state {
        params.push(("state", state));
    }
    with_params(&accepted.redirect_uri, &params)
}

/// What a browser logged in as `username` ends on after `authorize_url`, consenting if asked:
/// the redirect URI with a code and the state, or with `error=` for a refusal the LMS redirects.
/// A refusal it does not redirect (an unknown client or redirect URI) is the LMS's message.
pub(crate) fn authorize_as(
    s: &Shared,
    authorize_url: &str,
    username: &str,
) -> Result<String, String> {
    let query = authorize_url.split_once('?').map_or("", |(_, q)| q);
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        params
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    let accepted = match validate(s, &params) {
        Ok(accepted) => accepted,
        Err(Refusal::Redirect(location)) => return Ok(location),
        Err(Refusal::Fatal(description)) => return Err(description.to_owned()),
    };
    if !s.lock().users.contains_key(username) {
        return Err(format!("no user {username:?} on this stand-in"));
    }
    let approval = approval_key(username, &accepted);
    s.lock().approvals.insert(approval);
    Ok(code_redirect(s, username, accepted))
}

fn approval_key(username: &str, accepted: &Accepted) -> (String, String, Vec<String>) {
    let mut scopes = accepted.scopes.clone();
    scopes.sort();
    (
        username.to_owned(),
        accepted.client.client_id.clone(),
        scopes,
    )
}

/// The LMS's own wording of each scope (`OAUTH2_PROVIDER['SCOPES']`).
fn describe(scope: &str) -> &'static str {
    match scope {
        "read" => "Read access",
        "write" => "Write access",
        "email" => "Know your email address",
        "profile" => "Know your name and username",
        "user_id" => "Know your user identifier",
        "certificates:read" => "Retrieve your course certificates",
        "grades:read" => "Retrieve your grades for your enrolled courses",
        "tpa:read" => "Retrieve your third-party authentication username mapping",
        _ => "Unknown permission",
    }
}

/// Characters to escape in a query value.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Appends parameters to a redirect URI, with `&` when it already has a query (as DOT does).
fn with_params(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{separator}{query}")
}

/// A 302, as Django's `HttpResponseRedirect` answers.
fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

/// Query parameters; for a repeated name the first value wins.
fn query_params(uri: &Uri) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}
