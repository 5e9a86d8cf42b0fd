//! `GET /profile/`: the signed-in person's LMS profile, from the session.

use askama::Template;
use axum::{
    extract::State,
    response::{IntoResponse, Redirect, Response},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

use crate::{
    AppState,
    error::AppError,
    lms::unix_now,
    session::{AppSession, SignedIn},
    templates::render,
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
    token_type: &'static str,
    scopes: String,
    expires: String,
    signed_in_at: String,
    claims: Option<Vec<(String, String)>>,
}

pub async fn show(
    State(state): State<AppState>,
    session: AppSession,
) -> Result<Response, AppError> {
    let Some(signed_in) = session.signed_in().await? else {
        return Ok(Redirect::to("/").into_response());
    };
    Ok(render(&ProfilePage::new(
        &signed_in,
        state.config.lms_url.as_str(),
    )))
}

impl ProfilePage {
    fn new(s: &SignedIn, lms_url: &str) -> Self {
        let a = &s.account;
        let present = |v: &Option<String>| {
            v.as_ref()
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
        };
        let display_name = present(&a.name).unwrap_or_else(|| a.username.clone());
        let languages: Vec<&str> = a
            .language_proficiencies
            .iter()
            .map(|l| l.code.as_str())
            .collect();
        Self {
            initials: initials(&display_name),
            display_name,
            username: a.username.clone(),
            email: present(&a.email),
            country: present(&a.country),
            date_joined: a.date_joined.as_deref().and_then(human_date),
            languages: (!languages.is_empty()).then(|| languages.join(", ")),
            bio: present(&a.bio),
            image_url: a.image_url().map(str::to_owned),
            lms_url: lms_url.trim_end_matches('/').to_owned(),
            token_type: s.token.kind.scheme(),
            scopes: s.token.scopes.join(" "),
            expires: s
                .token
                .expires_at
                .map_or_else(|| "not stated by the LMS".into(), expiry),
            signed_in_at: timestamp(s.signed_in_at),
            claims: s.token.claims().map(|c| c.rows()),
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
