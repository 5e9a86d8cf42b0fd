//! `GET /profile/`: the signed-in person's LMS profile, from the session; `POST /profile/reload`
//! reads it from the LMS again with the (refreshed if need be) token.

use askama::Template;
use axum::{
    extract::State,
    response::{IntoResponse, Redirect, Response},
};
use openedx_client::{LmsError, Token, unix_now};
use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

use crate::{
    config::Config,
    error::AppError,
    names,
    session::Ended,
    signed_in::{CsrfForm, SignedIn, end_because, ended_page},
    state::AppState,
    store::SessionRecord,
    templates::render,
    tokens::{self, TokenError},
};

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    display_name: String,
    initials: String,
    username: String,
    email: Option<String>,
    country: Option<String>,
    date_joined: Option<String>,
    languages: Option<String>,
    bio: Option<String>,
    image_url: Option<String>,
    lms_url: String,
    /// The LMS's name, for the layout.
    lms: String,
    token_type: &'static str,
    scopes: String,
    expires: String,
    signed_in_at: String,
    claims: Option<Vec<(String, String)>>,
    csrf: String,
}

pub async fn show(State(state): State<AppState>, signed_in: SignedIn) -> Response {
    let row = &signed_in.current.row;
    render(&ProfilePage::new(
        &row.record,
        &row.token.token,
        &state.config,
    ))
}

/// `POST /profile/reload`: the account, read again from the LMS. The token is refreshed first when
/// it is (nearly) expired; if the LMS will not renew it, the session ends with a page saying so.
pub async fn reload(
    State(state): State<AppState>,
    CsrfForm(SignedIn { current, session }): CsrfForm,
) -> Result<Response, AppError> {
    let renewal_refused = || async {
        end_because(&state, &session, &current, Ended::Renewal).await?;
        Ok(ended_page(Ended::Renewal))
    };
    let token = match tokens::fresh(&state, &current.key, current.row.token.clone()).await {
        Ok(token) => token,
        Err(TokenError::Ended) => return renewal_refused().await,
        Err(TokenError::Lms(e)) => return Err(e.into()),
        Err(TokenError::Store(e)) => return Err(e.into()),
    };
    let account = match state.lms.profile(&token).await {
        Ok(account) => account,
        Err(LmsError::Rejected { .. }) => return renewal_refused().await,
        Err(e) => return Err(e.into()),
    };
    let record = SessionRecord {
        account,
        ..current.row.record.clone()
    };
    state.store.save_record(&current.key, &record).await?;
    Ok(Redirect::to("/profile/").into_response())
}

impl ProfilePage {
    fn new(s: &SessionRecord, token: &Token, config: &Config) -> Self {
        let a = &s.account;
        let present = |v: &Option<String>| {
            v.as_ref()
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
        };
        let display_name = present(&a.name).unwrap_or_else(|| a.username.clone());
        // Names where the code is known; the code itself otherwise, never nothing.
        let languages: Vec<&str> = a
            .language_proficiencies
            .iter()
            .map(|l| names::language(&l.code).unwrap_or(&l.code))
            .collect();
        Self {
            initials: initials(&display_name),
            display_name,
            username: a.username.clone(),
            email: present(&a.email),
            country: present(&a.country)
                .map(|code| names::country(&code).map_or(code, str::to_owned)),
            date_joined: a.date_joined.as_deref().and_then(human_date),
            languages: (!languages.is_empty()).then(|| languages.join(", ")),
            bio: present(&a.bio),
            image_url: a.image_url().map(str::to_owned),
            lms_url: config.lms.url.as_str().trim_end_matches('/').to_owned(),
            lms: config.lms_name().to_owned(),
            token_type: token.kind.scheme(),
            scopes: token.scopes.join(" "),
            expires: token
                .expires_at
                .map_or_else(|| "not stated by the LMS".into(), expiry),
            signed_in_at: timestamp(s.signed_in_at),
            claims: token.claims().map(|c| c.rows()),
            csrf: s.csrf.expose().to_owned(),
        }
    }
}

fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect()
}

/// `2024-01-15T10:00:00Z` as `15 January 2024`.
fn human_date(iso: &str) -> Option<String> {
    let date = OffsetDateTime::parse(iso, &Rfc3339).ok()?;
    date.format(format_description!(
        "[day padding:none] [month repr:long] [year]"
    ))
    .ok()
}

fn timestamp(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn expiry(at: i64) -> String {
    let left = at - unix_now();
    let when = match left {
        l if l <= 0 => "expired".to_owned(),
        l if l < 120 => format!("in {l} seconds"),
        l if l < 7200 => format!("in {} minutes", l / 60),
        l => format!("in {} hours", l / 3600),
    };
    format!("{} ({when})", timestamp(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_like_a_person_writes_them() {
        assert_eq!(
            human_date("2024-01-05T10:00:00Z").as_deref(),
            Some("5 January 2024")
        );
        assert_eq!(
            human_date("2024-01-05T10:00:00.123456Z").as_deref(),
            Some("5 January 2024")
        );
        assert_eq!(human_date("yesterday"), None);
        assert_eq!(timestamp(0), "1970-01-01 00:00 UTC");
    }

    #[test]
    fn initials_come_from_the_first_two_words() {
        assert_eq!(initials("Ada King Lovelace"), "AK");
        assert_eq!(initials("ada"), "A");
    }
}
