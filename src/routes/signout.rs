//! Signing out, and every other way a signed-in session ends: revoke what the LMS can revoke,
//! delete the token and the session, and say so on a page. Signing out of the LMS ends the
//! session here too, through the front-channel sign-out its logout page loads in an iframe (and
//! nothing else may end it that way: [`frontchannel`]).

use askama::Template;
use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use url::{Origin, Url};

use crate::{
    error::AppError,
    middleware::FramableByLms,
    session::{Ended, Presence},
    signed_in::{CsrfForm, NotSignedIn, SignedIn, Visitor, end, end_because, ended_page},
    state::AppState,
    templates::render,
};

/// Where the app sends the browser after ending a session itself without going through the
/// LMS's logout: the page then says that the LMS session may well be alive.
const SIGNED_OUT_HERE: &str = "/signed-out/?why=here";

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {
    title: &'static str,
    message: &'static str,
    lms: String,
    /// The LMS's logout, offered when the person may still be signed in there; `None` when they
    /// have just come back from it.
    lms_logout: Option<String>,
}

/// What the LMS's logout page finds in its iframe: nothing to see, since the iframe is hidden.
#[derive(Template)]
#[template(path = "frontchannel_logout.html")]
struct FrontChannelPage;

/// What a signed-in person who reached the front-channel sign-out some other way than the LMS's
/// iframe sees instead of being signed out: a button that signs out as the profile's does.
#[derive(Template)]
#[template(path = "signout_button.html")]
struct SignOutButtonPage {
    /// The LMS's name, for the layout.
    lms: String,
    csrf: String,
}

/// `POST /logout`: a POST with the session's CSRF token, so neither a link nor a form on another
/// site can sign anyone out. With `LMS_LOGOUT=true` the browser then goes on to the LMS's own
/// logout, which sends it back to `/signed-out/`.
pub async fn logout(
    State(state): State<AppState>,
    form: Result<CsrfForm, NotSignedIn>,
) -> Result<Response, NotSignedIn> {
    let SignedIn { current, session } = match form {
        Ok(CsrfForm(signed_in)) => signed_in,
        // Nothing to end (signed out in another tab, or just expired): the outcome is the same.
        Err(NotSignedIn::Anonymous | NotSignedIn::Ended(_)) => {
            return Ok(Redirect::to(SIGNED_OUT_HERE).into_response());
        }
        Err(refused) => return Err(refused),
    };
    end(&state, &session, &current.key).await?;
    tracing::info!(username = %current.row.record.account.username, "signed out");
    if !state.config.lms_logout {
        return Ok(Redirect::to(SIGNED_OUT_HERE).into_response());
    }
    Ok(Redirect::to(lms_logout_url(&state).as_str()).into_response())
}

/// `{LMS_URL}/logout`, asked to come back to `/signed-out/` (which it does only if that address is
/// part of a registered redirect URI: `openedx_client::wire`, logout).
fn lms_logout_url(state: &AppState) -> Url {
    state.lms.logout_url(&state.config.after_lms_logout_url())
}

/// `GET /frontchannel-logout/[?no_redirect=1]`: the LMS's logout page loads this in a hidden
/// iframe, as it does every URL in its `IDA_LOGOUT_URI_LIST` (`openedx_client::wire`, logout), so
/// that signing out of the LMS ends this browser's session here as our own sign-out does: the
/// refresh token revoked, the session deleted. The browser sends the session cookie with that
/// iframe's request only when the app is same-site with the LMS (`SameSite=Lax`).
///
/// A GET carries no CSRF token, and any site can send the browser here with the cookie (a link or
/// a redirect is a top-level navigation, which `Lax` lets through). So the session ends only when
/// the browser's own headers say the request is an iframe of the LMS's (`from_the_lms`); anyone
/// else who is signed in gets a page that says so, with a sign-out button that posts to
/// `/logout` with the session's CSRF token. A session past its absolute lifetime ends either way,
/// as it does on every page. It never goes on to the LMS, and a visitor without a session gets no
/// cookie and no row.
pub async fn frontchannel(
    State(state): State<AppState>,
    Visitor { presence, session }: Visitor,
    headers: HeaderMap,
    query: Result<Query<FrontChannelQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let lms = from_the_lms(&headers, &state.config.lms.url.origin());
    match presence {
        Presence::SignedIn(current) if !lms => {
            tracing::info!(
                username = %current.row.record.account.username,
                site = fetch_metadata(&headers, SEC_FETCH_SITE),
                dest = fetch_metadata(&headers, SEC_FETCH_DEST),
                "the front-channel sign-out was not the LMS's iframe: offered a button, ended nothing"
            );
            return Ok(render(&SignOutButtonPage {
                lms: state.config.lms_name().to_owned(),
                csrf: current.row.record.csrf.expose().to_owned(),
            }));
        }
        Presence::Expired(current) if !lms => {
            end_because(&state, &session, &current, Ended::Expired).await?;
            return Ok(ended_page(Ended::Expired));
        }
        Presence::SignedIn(current) | Presence::Expired(current) => {
            end(&state, &session, &current.key).await?;
            tracing::info!(
                username = %current.row.record.account.username,
                "signed out through the front-channel sign-out"
            );
        }
        Presence::Anonymous => {}
    }
    let no_redirect = query.is_ok_and(|Query(q)| q.no_redirect.is_some_and(|v| !v.is_empty()));
    if !no_redirect {
        // Not the address the LMS loads: the signed-out page, which cannot tell whether the LMS
        // session ended.
        return Ok(Redirect::to(SIGNED_OUT_HERE).into_response());
    }
    let mut response = render(&FrontChannelPage);
    response.extensions_mut().insert(FramableByLms);
    Ok(response)
}

const SEC_FETCH_SITE: &str = "sec-fetch-site";
const SEC_FETCH_DEST: &str = "sec-fetch-dest";

/// Whether a request is the LMS's logout page loading the front-channel sign-out in its iframe,
/// as far as the browser's own headers tell (a page cannot set them):
///
/// - With Fetch Metadata (current browsers, over https or on `localhost`): `Sec-Fetch-Dest:
///   iframe`, from a page that is `Sec-Fetch-Site: same-site` (the LMS on a sibling host, the
///   normal case) or `same-origin`. A `cross-site` iframe only with an `Origin` or `Referer` of
///   the LMS's origin: any site can frame the address, so being framed proves nothing by itself.
///   Anything else (a top-level navigation: a link followed, a redirect, an address typed; an
///   image, a fetch) is not the LMS.
/// - Without Fetch Metadata (older browsers, and every browser over plain http elsewhere than
///   `localhost`): only an `Origin` or `Referer` of the LMS's origin, which is what a browser's
///   default referrer policy sends from the LMS's page.
/// - Either way, an `Origin` or `Referer` naming any other origin, or naming one unreadably
///   (`null`, twice), rules the request out. Neither is required with Fetch Metadata, since a
///   stricter referrer policy of the LMS's may keep its address from another origin.
///
/// What this cannot rule out is a page of the LMS's own site framing the address (another host
/// under the same registrable domain that sends no `Referer`), or, without Fetch Metadata, a page
/// of the LMS's origin linking to it. The LMS's site is trusted that far; and any page can send
/// the person to the LMS's own logout, a plain GET, which then loads this iframe itself.
fn from_the_lms(headers: &HeaderMap, lms: &Origin) -> bool {
    let Some(names_the_lms) = initiator_is(headers, lms) else {
        return false;
    };
    let site = single(headers, SEC_FETCH_SITE);
    let dest = single(headers, SEC_FETCH_DEST);
    match (site, dest) {
        (Ok(None), Ok(None)) => names_the_lms,
        (Ok(Some("same-origin" | "same-site")), Ok(Some("iframe"))) => true,
        (Ok(Some("cross-site")), Ok(Some("iframe"))) => names_the_lms,
        _ => false,
    }
}

/// Whether the request's `Origin` and `Referer` name the LMS: `Some(true)` when one does and no
/// other says otherwise, `Some(false)` when neither is sent, `None` when one names another
/// origin or cannot be read.
fn initiator_is(headers: &HeaderMap, lms: &Origin) -> Option<bool> {
    let mut named = false;
    for name in [header::ORIGIN, header::REFERER] {
        match single(headers, name.as_str()) {
            Ok(None) => {}
            Ok(Some(value)) if Url::parse(value).is_ok_and(|url| url.origin() == *lms) => {
                named = true;
            }
            _ => return None,
        }
    }
    Some(named)
}

/// The one value of header `name`, `Ok(None)` without one; `Err` when it is sent twice or is not
/// visible ASCII, which no browser does.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value.to_str().map(Some).map_err(|_| ()),
        (Some(_), Some(_)) => Err(()),
    }
}

/// A Fetch Metadata header for the log: its value, `-` without one, `?` when unreadable.
fn fetch_metadata<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    match single(headers, name) {
        Ok(Some(value)) => value,
        Ok(None) => "-",
        Err(()) => "?",
    }
}

/// `?no_redirect=1`, as the LMS appends it to every `IDA_LOGOUT_URI_LIST` entry.
#[derive(Deserialize)]
pub struct FrontChannelQuery {
    no_redirect: Option<String>,
}

/// `HEAD /frontchannel-logout/`: a link checker or prefetcher must not sign anyone out (axum
/// would otherwise run the GET handler for it).
pub async fn frontchannel_head() -> AppError {
    AppError::MethodNotAllowed
}

/// `GET /signed-out/[?why=here|expired|renewal]`. The app cannot see the LMS's cookie, so what
/// the page says about the LMS session follows from how the person got here: without `why`, back
/// from the LMS's logout (the address the app gives it); with one, from the app alone, which
/// leaves the LMS session as it was.
pub async fn signed_out(
    State(state): State<AppState>,
    query: Result<Query<SignedOutQuery>, QueryRejection>,
) -> Response {
    let why = query.ok().and_then(|Query(q)| q.why);
    let signed_out = (
        "You are signed out",
        "This app no longer holds your LMS token or profile.",
    );
    let (title, message) = match why.as_deref().and_then(Ended::from_query) {
        None => signed_out,
        Some(Ended::Expired) => (
            "Your session has ended",
            "You were signed in for longer than this app allows, so you were signed out. Sign \
             in again to carry on.",
        ),
        Some(Ended::Renewal) => (
            "Please sign in again",
            "The LMS no longer accepts this app's access on your behalf (it was revoked or has \
             run out), so you were signed out.",
        ),
    };
    let lms_logout = why.map(|_| lms_logout_url(&state).to_string());
    render(&SignedOutPage {
        title,
        message,
        lms: state.config.lms_name().to_owned(),
        lms_logout,
    })
}

/// `?why=here|expired|renewal`.
#[derive(Deserialize)]
pub struct SignedOutQuery {
    why: Option<String>,
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const LMS: &str = "https://lms.example.com";

    fn lms() -> Origin {
        Url::parse(LMS).expect("a URL").origin()
    }

    fn from(pairs: &[(&'static str, &str)]) -> bool {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        from_the_lms(&headers, &lms())
    }

    fn iframe(site: &str) -> Vec<(&'static str, &str)> {
        vec![
            ("sec-fetch-dest", "iframe"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-site", site),
        ]
    }

    fn with<'a>(
        mut pairs: Vec<(&'static str, &'a str)>,
        more: (&'static str, &'a str),
    ) -> Vec<(&'static str, &'a str)> {
        pairs.push(more);
        pairs
    }

    #[test]
    fn the_lms_iframe_on_its_own_site_is_believed_without_a_referer() {
        // The LMS's referrer policy may send nothing to another origin.
        assert!(from(&iframe("same-site")));
        assert!(from(&iframe("same-origin")));
        assert!(from(&with(
            iframe("same-site"),
            ("referer", "https://lms.example.com/")
        )));
        assert!(from(&with(
            iframe("same-site"),
            ("referer", "https://lms.example.com:443/logout?x=1")
        )));
    }

    #[test]
    fn a_cross_site_iframe_is_believed_only_when_it_names_the_lms() {
        assert!(!from(&iframe("cross-site")));
        assert!(!from(&with(
            iframe("cross-site"),
            ("referer", "https://evil.example/")
        )));
        assert!(from(&with(
            iframe("cross-site"),
            ("referer", "https://lms.example.com/")
        )));
        assert!(from(&with(iframe("cross-site"), ("origin", LMS))));
    }

    #[test]
    fn an_iframe_naming_another_origin_is_not_the_lms_even_on_its_site() {
        for other in [
            "https://studio.example.com/",
            "http://lms.example.com/",
            "https://lms.example.com:8443/",
            "https://lms.example.com.evil.example/",
            "null",
            "not a url",
        ] {
            assert!(
                !from(&with(iframe("same-site"), ("referer", other))),
                "{other}"
            );
            assert!(
                !from(&with(iframe("same-site"), ("origin", other))),
                "{other}"
            );
        }
        // The LMS named by one, another origin by the other.
        let both = with(
            with(iframe("same-site"), ("origin", LMS)),
            ("referer", "https://evil.example/"),
        );
        assert!(!from(&both));
    }

    #[test]
    fn anything_but_an_iframe_is_not_the_lms_whatever_else_it_says() {
        for dest in [
            "document", "frame", "embed", "object", "image", "empty", "IFRAME", "",
        ] {
            for site in ["same-origin", "same-site", "cross-site", "none"] {
                let request = [
                    ("sec-fetch-dest", dest),
                    ("sec-fetch-site", site),
                    ("referer", "https://lms.example.com/"),
                ];
                assert!(!from(&request), "{dest} from {site}");
            }
        }
        // A link followed, a redirect, an address typed: top-level navigations.
        assert!(!from(&[
            ("sec-fetch-dest", "document"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-user", "?1"),
        ]));
        assert!(!from(&[
            ("sec-fetch-dest", "document"),
            ("sec-fetch-site", "none")
        ]));
    }

    #[test]
    fn half_of_the_fetch_metadata_or_an_unknown_site_is_not_the_lms() {
        assert!(!from(&[("sec-fetch-dest", "iframe")]));
        assert!(!from(&[("sec-fetch-site", "same-site")]));
        assert!(!from(&[
            ("sec-fetch-dest", "iframe"),
            ("sec-fetch-site", "none")
        ]));
        assert!(!from(&[
            ("sec-fetch-dest", "iframe"),
            ("sec-fetch-site", "Same-Site")
        ]));
        assert!(!from(&[
            ("sec-fetch-dest", "iframe"),
            ("sec-fetch-site", "same-site"),
            ("sec-fetch-site", "same-site"),
        ]));
        assert!(!from(&[
            ("sec-fetch-dest", "iframe"),
            ("sec-fetch-dest", "iframe"),
            ("sec-fetch-site", "same-site"),
        ]));
    }

    #[test]
    fn without_fetch_metadata_only_the_lms_origin_is_believed() {
        assert!(!from(&[]), "a bare GET");
        assert!(from(&[("referer", "https://lms.example.com/logout")]));
        assert!(from(&[("origin", LMS)]));
        assert!(!from(&[("referer", "https://evil.example/")]));
        assert!(!from(&[
            ("referer", "https://lms.example.com/"),
            ("referer", "https://lms.example.com/"),
        ]));
    }
}
