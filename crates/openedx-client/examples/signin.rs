//! Sign people in with the Open edX LMS: a whole axum app, run as the crate README shows. Sessions
//! live in memory; a real app keeps them in a store and sets `Secure` on HTTPS.

use std::{
    collections::HashMap,
    process::ExitCode,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use openedx_client::{ClientConfig, LmsClient, Secret, Token};

#[derive(Clone)]
struct App {
    lms: Arc<LmsClient>,
    /// Cookie value to what it holds: a sign-in under way, or a signed-in person.
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

enum Session {
    Pending { state: Secret, verifier: Secret },
    SignedIn { name: String, token: Token },
}

#[tokio::main]
async fn main() -> ExitCode {
    let Err(e) = run().await else {
        return ExitCode::SUCCESS;
    };
    eprintln!("signin: {e}"); // Display, not Debug: it says what happened and holds no secret
    ExitCode::FAILURE
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // LMS_URL, LMS_CLIENT_ID, LMS_CLIENT_SECRET, LMS_REDIRECT_URI and the optional LMS_* settings.
    let vars: HashMap<String, String> = std::env::vars().collect();
    let lms = Arc::new(LmsClient::new(ClientConfig::from_vars(&vars)?)?);
    let app = App {
        lms,
        sessions: Arc::default(),
    };
    let router = Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/logout", post(logout))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("open http://127.0.0.1:3000/");
    Ok(axum::serve(listener, router).await?)
}

impl App {
    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // A panic elsewhere leaves a plain map behind: keep serving.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn cookie(headers: &HeaderMap) -> String {
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let mut pairs = cookies.into_iter().flat_map(|c| c.split(';'));
    let ours = pairs.find_map(|c| c.trim().strip_prefix("signin_example="));
    ours.unwrap_or_default().to_owned()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}. Start again at /login.")).into_response()
}

async fn home(State(app): State<App>, headers: HeaderMap) -> Html<String> {
    match app.sessions().get(&cookie(&headers)) {
        Some(Session::SignedIn { name, .. }) => Html(format!(
            "<p>Hello, {}.</p><form method=post action=/logout><button>Sign out</button></form>",
            name.replace('&', "&amp;").replace('<', "&lt;")
        )),
        _ => Html("<p><a href=/login>Sign in with Open edX</a></p>".into()),
    }
}

/// Sends the browser to the LMS, keeping the state and the PKCE verifier for the callback.
async fn login(State(app): State<App>) -> Response {
    let request = app.lms.authorize();
    let id = format!("{:032x}", rand::random::<u128>());
    let (state, verifier) = (request.state, request.pkce_verifier);
    app.sessions()
        .insert(id.clone(), Session::Pending { state, verifier });
    let set_cookie = [(
        header::SET_COOKIE,
        format!("signin_example={id}; Path=/; HttpOnly; SameSite=Lax"),
    )];
    (set_cookie, Redirect::to(request.url.as_str())).into_response()
}

/// The LMS sends the browser back here with `code` and `state`, or with `error`.
async fn callback(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = cookie(&headers);
    // Removed before comparing, so a callback is used at most once.
    let Some(Session::Pending { state, verifier }) = app.sessions().remove(&id) else {
        return refuse(StatusCode::BAD_REQUEST, "No sign-in is under way");
    };
    if let Some(error) = query.get("error") {
        // access_denied: the person declined on the consent page.
        return refuse(StatusCode::FORBIDDEN, &format!("The LMS said {error}"));
    }
    let (Some(code), Some(returned)) = (query.get("code"), query.get("state")) else {
        return refuse(StatusCode::BAD_REQUEST, "The callback lacks code or state");
    };
    if returned != state.expose() {
        return refuse(StatusCode::BAD_REQUEST, "This sign-in was not started here");
    }
    let signed_in = async {
        let token = app.lms.exchange_code(code, &verifier).await?;
        let account = app.lms.profile(&token).await?;
        Ok::<_, openedx_client::LmsError>((account, token))
    };
    match signed_in.await {
        Ok((account, token)) => {
            let name = account.name.unwrap_or(account.username);
            app.sessions().insert(id, Session::SignedIn { name, token });
            Redirect::to("/").into_response()
        }
        Err(e) => refuse(StatusCode::BAD_GATEWAY, &format!("Sign-in failed: {e}")),
    }
}

/// Revokes what can be revoked, then sends the browser to the LMS's logout and back home.
async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    let session = app.sessions().remove(&cookie(&headers));
    if let Some(Session::SignedIn { token, .. }) = session {
        // The refresh token dies here; the JWT itself cannot be revoked and just expires.
        if let Err(e) = app.lms.revoke(&token).await {
            eprintln!("signin: revocation failed: {e}");
        }
    }
    let home = url::Url::parse("http://127.0.0.1:3000/");
    let lms_logout = home.map(|home| app.lms.logout_url(&home).to_string());
    Redirect::to(&lms_logout.unwrap_or_else(|_| "/".into())).into_response()
}
