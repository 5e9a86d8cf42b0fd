//! Signing out of this app: the whole session is deleted, server-side and cookie.
//! (Ending the LMS session and revoking the refresh token build on this.)

use askama::Template;
use axum::response::{IntoResponse, Redirect, Response};

use crate::{error::AppError, session::AppSession, templates::render};

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage;

/// `POST /signout/`: a POST, so a link or an image elsewhere cannot sign anyone out.
pub async fn sign_out(session: AppSession) -> Result<Response, AppError> {
    session.sign_out().await?;
    Ok(Redirect::to("/signed-out/").into_response())
}

pub async fn signed_out() -> Response {
    render(&SignedOutPage)
}
