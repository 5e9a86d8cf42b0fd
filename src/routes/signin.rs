//! Sign-in: `GET /` sends the browser to the LMS, `GET /authorize/` is where it comes back.

use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, Uri, header},
    response::{IntoResponse, Redirect, Response},
};
use openedx_client::unix_now;
use serde::Deserialize;

use crate::{
    error::AppError,
    session::{AppSession, PendingSignIn, Presence},
    signed_in::Visitor,
    state::AppState,
    store::{SessionRecord, profiles::ProfileDetails},
    tokens,
};

/// Where a person lands after signing in when the sign-in named no `next`.
const DEFAULT_NEXT: &str = "/profile/";
/// The longest `next` kept (bytes); a longer one is ignored and the sign-in ends on the profile.
const MAX_NEXT: usize = 512;
/// Real callbacks are a few hundred bytes; anything far larger is not from the LMS.
const MAX_CALLBACK_QUERY: usize = 4096;
/// How long a callback waits for a place among the code exchanges in flight before it is told the
/// app is busy: a classroom signing in at once passes, a flood does not pile up.
const EXCHANGE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /[?next=/path]` (and `HEAD`): a fresh `state` and PKCE verifier, sealed into a cookie of
/// their own, and a 303 to the LMS authorize endpoint. Nothing is written anywhere: a visitor who
/// never signs in costs no storage, and sign-in starts even while the database is down. A person
/// already signed in goes to their profile (or `next`) instead.
pub async fn start(
    State(state): State<AppState>,
    visitor: Result<Visitor, AppError>,
    headers: HeaderMap,
    query: Result<Query<StartQuery>, QueryRejection>,
) -> Response {
    let next = query.ok().and_then(|Query(q)| q.next);
    let next = match next {
        Some(n) if is_safe_next(&n) => Some(n),
        Some(_) => {
            tracing::info!("ignored a next parameter that is not a same-origin path");
            None
        }
        None => None,
    };
    // Only a browser that sent a session cookie costs a read here.
    match visitor {
        Ok(Visitor {
            presence: Presence::SignedIn(_),
            ..
        }) => {
            return Redirect::to(next.as_deref().unwrap_or(DEFAULT_NEXT)).into_response();
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the session; starting a sign-in"),
    }
    let request = state.lms.authorize();
    let pending = PendingSignIn {
        state: request.state,
        pkce_verifier: request.pkce_verifier,
        next,
        started_at: unix_now(),
    };
    let mut response = Redirect::to(request.url.as_str()).into_response();
    for cookie in state.pending.begin(&headers, &pending) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    state.metrics.sign_in_started();
    response
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /authorize/?code=..&state=..` (or `?error=..&state=..`): matches `state` to this
/// browser's pending-sign-in cookie (removing it, whatever the outcome), exchanges the code,
/// reads the account, and signs the person in under a new session id. Ends in a 303 so the code
/// never stays in the address bar and a reload cannot replay it.
pub async fn callback(
    State(state): State<AppState>,
    session: AppSession,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let mut spent_cookie = None;
    let outcome = complete(&state, &session, &headers, &uri, query, &mut spent_cookie).await;
    match &outcome {
        Ok(_) => state.metrics.sign_in_completed(),
        Err(e) => state.metrics.sign_in_failed(e.entry().reason),
    }
    let mut response = outcome.into_response();
    if let Some(cookie) = spent_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `HEAD /authorize/`: a link checker or prefetcher must not spend the person's code (axum would
/// otherwise run the GET handler for it), so the callback answers HEAD with a 405 and does nothing.
pub async fn callback_head() -> AppError {
    AppError::MethodNotAllowed
}

async fn complete(
    state: &AppState,
    session: &AppSession,
    headers: &HeaderMap,
    uri: &Uri,
    query: Result<Query<CallbackQuery>, QueryRejection>,
    spent_cookie: &mut Option<HeaderValue>,
) -> Result<Response, AppError> {
    // Before the pending cookie is spent or a code exchanged: with the database down no session
    // could be stored, and the same callback works again once it is back (the code lives 60 s).
    state.store.available()?;
    if uri.query().map_or(0, str::len) > MAX_CALLBACK_QUERY {
        return Err(AppError::BadCallback("its query string is far too long"));
    }
    let Query(query) = query.map_err(|_| AppError::BadCallback("its query string is malformed"))?;
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let returned_state =
        non_empty(query.state).ok_or(AppError::BadCallback("it carries no state"))?;

    let (pending, removal) = state.pending.take(headers, &returned_state);
    *spent_cookie = removal;
    let pending = pending.map_err(AppError::SignInInterrupted)?;

    let code = match (non_empty(query.code), non_empty(query.error)) {
        (Some(code), None) => code,
        (None, Some(error)) if error == "access_denied" => return Err(AppError::Declined),
        (None, Some(code)) => {
            // The LMS's codes and descriptions are short; anything longer is not from it.
            let clip = |s: String, n: usize| s.chars().take(n).collect::<String>();
            return Err(AppError::AuthorizeError {
                code: clip(code, 64),
                description: query.error_description.map(|d| clip(d, 200)),
            });
        }
        (Some(_), Some(_)) => {
            return Err(AppError::BadCallback("it carries both a code and an error"));
        }
        (None, None) => {
            return Err(AppError::BadCallback(
                "it carries neither a code nor an error",
            ));
        }
    };

    if !looks_like_a_code(&code) {
        // Only a code the LMS could have issued costs it a client-authenticated request.
        return Err(AppError::BadCallback("its code is not one the LMS issues"));
    }
    // On a task of its own: once the LMS has issued a token, a request cancelled meanwhile (the
    // browser went away) must still store it in a session or revoke it.
    // A place among the exchanges in flight, before any task exists: a flood of callbacks waits
    // here a little, then is turned away, and never queues up towards the LMS.
    let permit = tokio::time::timeout(EXCHANGE_WAIT, state.exchanges.clone().acquire_owned())
        .await
        .map_err(|_| AppError::Busy)?
        .map_err(|_| AppError::Internal("the exchange limit was closed".into()))?;
    let exchange = {
        let (state, session) = (state.clone(), session.clone());
        let verifier = pending.pkce_verifier;
        tokio::spawn(async move {
            exchange_and_sign_in(&state, &session, &code, &verifier, permit).await
        })
    };
    exchange
        .await
        .map_err(|e| AppError::Internal(format!("the sign-in task failed: {e}")))??;
    // Checked again although the cookie is sealed: no key mistake may turn it into an open
    // redirect.
    let next = pending.next.as_deref().filter(|n| is_safe_next(n));
    Ok(Redirect::to(next.unwrap_or(DEFAULT_NEXT)).into_response())
}

/// Exchanges the code, holding `permit` (one of [`crate::state::MAX_EXCHANGES`]) for the LMS
/// call, then signs the person in with the token, or revokes it: nobody could reach it.
async fn exchange_and_sign_in(
    state: &AppState,
    session: &AppSession,
    code: &str,
    verifier: &openedx_client::Secret,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), AppError> {
    let token = state.lms.exchange_code(code, verifier).await?;
    drop(permit);
    if let Err(e) = sign_in_with(state, session, &token).await {
        tokens::revoke_or_keep(state, token).await;
        return Err(e);
    }
    Ok(())
}

/// Whether `code` has the shape of an authorization code django-oauth-toolkit issues: oauthlib's
/// `generate_token()`, 30 ASCII letters and digits (`openedx_client::wire`). A little leeway in
/// length and alphabet, so that a provider configured otherwise is not locked out; nothing that
/// could not be a token at all, such as `garbage1`, reaches the LMS.
fn looks_like_a_code(code: &str) -> bool {
    (20..=128).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// With a fresh token: reads the account, records the sign-in and makes the session.
async fn sign_in_with(
    state: &AppState,
    session: &AppSession,
    token: &openedx_client::Token,
) -> Result<(), AppError> {
    let account = state.lms.profile(token).await?;
    let user_id = account
        .id
        .or_else(|| token.claims().and_then(|c| c.user_id()));
    let now = unix_now();
    state
        .store
        .record_sign_in(
            &account.username,
            user_id,
            &ProfileDetails {
                email: account.email.clone(),
                name: account.name.clone(),
            },
            now,
        )
        .await?;
    // Signed in again over a live sign-in (a flow started in another tab): its token would be
    // unreachable, so end it.
    if let Some(previous) = session.key() {
        tokens::end_session(state, &previous).await?;
    }
    let username = account.username.clone();
    let record = SessionRecord::new(account, now);
    session
        .begin(&state.store, &state.config, &record, token)
        .await?;
    tracing::info!(username = %username, token_type = token.kind.scheme(), "signed in");
    Ok(())
}

/// `next` must be a path on this site: `/x`, never `//evil`, `/\evil`, `https://evil` or an
/// encoded form of those. Browsers treat `\` as `/` and strip tabs and newlines, so those are
/// refused too, before and after one round of percent-decoding. So are `//` anywhere and dot
/// segments (`/.//evil` is `//evil` once a URL parser removes the dot), and bidirectional
/// formatting characters, which make a path read as something else than it is.
pub fn is_safe_next(next: &str) -> bool {
    fn same_origin_path(s: &str) -> bool {
        s.starts_with('/')
            && !s.contains("//")
            && !s.contains('\\')
            && !s
                .split(['/', '?', '#'])
                .any(|segment| segment == "." || segment == "..")
            && !s.chars().any(|c| c.is_control() || is_bidi_format(c))
    }
    let decoded: String = url::form_urlencoded::parse(format!("x={next}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .next()
        .unwrap_or_default();
    // It rides in the pending sign-in cookie: five of those in flight must stay well inside the
    // 8 KiB request-header limit common proxies enforce, even with every byte JSON-escaped.
    next.len() <= MAX_NEXT
        && !next.contains(['"', ' '])
        && same_origin_path(next)
        && same_origin_path(&decoded)
}

/// The Unicode bidirectional formatting characters (UAX #9): marks, embeddings, overrides,
/// isolates.
fn is_bidi_format(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::{is_safe_next, looks_like_a_code};

    #[test]
    fn only_a_code_of_the_lms_shape_is_exchanged() {
        assert!(looks_like_a_code("F9LbVytUEhWumiARSWYse4f55aqDNg"));
        for bad in [
            "garbage1",
            "",
            "a b c d e f g h i j k l m n",
            &"x".repeat(129),
        ] {
            assert!(!looks_like_a_code(bad), "{bad}");
        }
        assert!(!looks_like_a_code("F9LbVytUEhWumiARSWYse4f55aq%Ng"));
    }

    #[test]
    fn next_accepts_same_origin_paths() {
        for ok in ["/", "/profile/", "/courses?page=2", "/a%20b"] {
            assert!(is_safe_next(ok), "{ok}");
        }
    }

    #[test]
    fn next_refuses_other_origins_and_their_encodings() {
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil.example",
            "",
            "/%2F%2Fevil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/\t/evil.example",
            "/%09/evil.example",
            "javascript:alert(1)",
            "/a\"b",
            "/.//evil.example",
            "/%2E//evil.example",
            "/a/../..//evil.example",
            "/profile/\u{202E}lmth.exe",
            "/profile/%E2%80%AEtxt",
        ] {
            assert!(!is_safe_next(bad), "{bad}");
        }
    }
}
