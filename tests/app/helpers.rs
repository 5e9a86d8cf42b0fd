//! Runs the real app and the LMS stand-in on random loopback ports, each app with its own SQLite
//! database, and a browser-like HTTP client that keeps cookies and does not follow redirects.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use openedx_standin::{LmsUser, RegisteredClient, Settings, StandIn};
use profiles::{AppState, config::Config};
use reqwest::{StatusCode, cookie::CookieStore, header};
use tokio::{net::TcpListener, task::JoinHandle};
use url::Url;

pub const CLIENT_ID: &str = "profiles-test";
pub const CLIENT_SECRET: &str = "test-client-secret-value";

pub struct TestApp {
    pub url: Url,
    pub standin: StandIn,
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub vars: HashMap<String, String>,
    pub db_path: PathBuf,
    /// The running app's state, to reach its store (e.g. to take the database away).
    pub state: AppState,
    tweak: Option<fn(&mut Config)>,
    /// Between the app's server-to-server calls and the stand-in, when asked for.
    pub proxy: Option<crate::proxy::Proxy>,
    task: JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Another server on a [`TestApp`]'s database and LMS, stopped when dropped.
pub struct Replica {
    pub url: Url,
    task: JoinHandle<()>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
pub struct Options {
    pub vars: Vec<(&'static str, String)>,
    pub skip_authorization: bool,
    /// Also register `PUBLIC_URL/signed-out/`, as the README says to for `LMS_LOGOUT=true`.
    pub register_signed_out: bool,
    pub settings: Settings,
    /// Changes the configuration after it is read, for limits the environment only takes in
    /// minutes (e.g. a three-second idle time).
    pub tweak: Option<fn(&mut Config)>,
    /// Send the app's server-to-server calls (`LMS_INTERNAL_URL`) through a [`crate::proxy::Proxy`];
    /// the browser still goes straight to the stand-in.
    pub behind_proxy: bool,
    /// List the app's front-channel sign-out in the stand-in's `IDA_LOGOUT_URI_LIST`, as the
    /// Tutor plugin does in the LMS's settings.
    pub frontchannel_logout: bool,
    /// The host name of `PUBLIC_URL` (with the app's port), for a browser that maps it to
    /// loopback; the stand-in's is `settings.host`. The test client resolves both to loopback,
    /// and the app calls the stand-in by its address.
    pub app_host: Option<&'static str>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// An app whose learner has just approved a sign-in at the LMS, and the callback URL the LMS
/// sent the browser back to, not yet visited.
pub async fn spawn_app_approved_at_lms() -> (TestApp, Url) {
    let app = spawn_app().await;
    let callback = app.approved_callback().await;
    (app, callback)
}

/// An app whose configuration `tweak` changes (e.g. a session lifetime of seconds), with the
/// learner signed in.
pub async fn spawn_signed_in_with(tweak: fn(&mut Config)) -> TestApp {
    let app = spawn_app_with(Options {
        tweak: Some(tweak),
        ..Options::default()
    })
    .await;
    app.sign_in().await;
    app
}

pub async fn spawn_app_with(mut options: Options) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    let url = match options.app_host {
        Some(host) => Url::parse(&format!("http://{host}:{}/", app_addr.port())).unwrap(),
        None => Url::parse(&format!("http://{app_addr}/")).unwrap(),
    };
    if options.frontchannel_logout {
        let endpoint = url
            .join(profiles::routes::FRONTCHANNEL_LOGOUT_PATH)
            .unwrap();
        options.settings.ida_logout_uri_list.push(endpoint.into());
    }
    let lms_host = options.settings.host.clone();
    let standin = StandIn::spawn("127.0.0.1:0".parse().unwrap(), options.settings)
        .await
        .unwrap();
    standin.add_user(LmsUser::demo_learner());
    let redirect_uris = if options.register_signed_out {
        vec![format!("{url}authorize/"), format!("{url}signed-out/")]
    } else {
        vec![format!("{url}authorize/")]
    };
    standin.register_client(RegisteredClient {
        skip_authorization: options.skip_authorization,
        ..RegisteredClient::authorization_code(CLIENT_ID, CLIENT_SECRET, redirect_uris)
    });
    let db_path = std::env::temp_dir()
        .join(format!("profiles-test-{:016x}", rand::random::<u64>()))
        .join("profiles.db");
    let mut vars: HashMap<String, String> = [
        ("LMS_URL", standin.url().to_string()),
        ("LMS_CLIENT_ID", CLIENT_ID.into()),
        ("LMS_CLIENT_SECRET", CLIENT_SECRET.into()),
        ("PUBLIC_URL", url.to_string()),
        ("DATABASE_URL", format!("sqlite://{}", db_path.display())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if lms_host.is_some() {
        let internal = format!("http://{}/", standin.addr());
        vars.insert("LMS_INTERNAL_URL".into(), internal);
    }
    let proxy = if options.behind_proxy {
        let proxy = crate::proxy::Proxy::spawn(standin.url().clone()).await;
        vars.insert("LMS_INTERNAL_URL".into(), proxy.url.to_string());
        Some(proxy)
    } else {
        None
    };
    for (k, v) in options.vars {
        vars.insert(k.into(), v);
    }
    let (state, task) = serve(listener, &vars, options.tweak).await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let mut client = browser_builder(&jar);
    // Both listen on loopback; the port comes from the URL.
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    for host in options.app_host.into_iter().chain(lms_host.as_deref()) {
        client = client.resolve(host, loopback);
    }
    TestApp {
        url,
        standin,
        client: client.build().unwrap(),
        jar,
        vars,
        db_path,
        state,
        tweak: options.tweak,
        proxy,
        task,
    }
}

async fn serve(
    listener: TcpListener,
    vars: &HashMap<String, String>,
    tweak: Option<fn(&mut Config)>,
) -> (AppState, JoinHandle<()>) {
    let mut config = Config::from_vars(vars).expect("test config");
    if let Some(tweak) = tweak {
        tweak(&mut config);
    }
    let state = AppState::new(config).await.expect("app state");
    // As `main` serves it: with the background work (expired sessions, kept revocations, the
    // database watch) that a real process runs.
    let served = state.clone();
    let task = tokio::spawn(async move {
        profiles::serve_until(listener, served, std::future::pending())
            .await
            .unwrap();
    });
    (state, task)
}

/// A client that keeps cookies in `jar` like a browser and never follows redirects by itself.
pub fn browser(jar: &Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    browser_builder(jar).build().unwrap()
}

fn browser_builder(jar: &Arc<reqwest::cookie::Jar>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
}

/// Where a redirect points, resolved against the URL that answered.
pub fn location(response: &reqwest::Response) -> Url {
    let value = response
        .headers()
        .get(header::LOCATION)
        .expect("a Location header");
    response.url().join(value.to_str().unwrap()).unwrap()
}

/// The value of the query parameter `name` in `url` (e.g. the `state` of an authorize URL).
pub fn query_param(url: &Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// A client with no cookies at all, as a stranger or another browser, that does not follow
/// redirects.
pub fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A refusal before the LMS is asked: the response has `status`, its page says `says`, and the
/// app exchanged no code at the LMS (its token endpoint was never called).
pub async fn assert_refused_before_the_lms(
    app: &TestApp,
    response: reqwest::Response,
    status: StatusCode,
    says: &str,
) {
    assert_eq!(response.status(), status);
    assert!(response.text().await.unwrap().contains(says));
    assert_eq!(app.standin.calls("token"), 0);
}

/// How many refresh tokens the app revoked at the LMS, as the stand-in's journal shows them.
pub fn revoked_refresh_tokens(app: &TestApp) -> usize {
    app.standin
        .token_requests()
        .iter()
        .filter(|r| {
            r.field("token").is_some() && r.field("token_type_hint") == Some("refresh_token")
        })
        .count()
}

impl TestApp {
    /// `GET /` and the LMS authorize URL it redirects to.
    pub async fn start_sign_in(&self) -> Url {
        let response = self.client.get(self.url.clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        location(&response)
    }

    /// Plays the learner at the stand-in: log in when asked, approve consent when shown. Returns
    /// the callback URL the LMS sends the browser back to.
    pub async fn approve_at_lms(&self, authorize: Url) -> Url {
        self.answer_at_lms(authorize, true).await
    }

    pub async fn answer_at_lms(&self, authorize: Url, allow: bool) -> Url {
        let mut response = self.client.get(authorize.clone()).send().await.unwrap();
        if response.status() == StatusCode::FOUND && location(&response).path() == "/login" {
            let next = query_param(&location(&response), "next");
            let login = self.standin.url().join("/login").unwrap();
            let form = [
                ("username", "learner"),
                ("password", "learner-password"),
                ("next", next.as_str()),
            ];
            let logged_in = self.client.post(login).form(&form).send().await.unwrap();
            assert_eq!(
                logged_in.status(),
                StatusCode::FOUND,
                "login at the stand-in"
            );
            response = self.client.get(location(&logged_in)).send().await.unwrap();
        }
        if response.status() == StatusCode::OK {
            let choice = if allow {
                ("allow", "Authorize")
            } else {
                ("cancel", "Cancel")
            };
            response = self
                .client
                .post(response.url().clone())
                .form(&[choice])
                .send()
                .await
                .unwrap();
        }
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "the LMS redirects back"
        );
        location(&response)
    }

    /// A sign-in started and approved at the LMS: the callback URL, not yet visited.
    pub async fn approved_callback(&self) -> Url {
        let authorize = self.start_sign_in().await;
        self.approve_at_lms(authorize).await
    }

    /// The whole sign-in; returns the callback's response (a 303 to `/profile/` on success).
    pub async fn sign_in(&self) -> reqwest::Response {
        let callback = self.approved_callback().await;
        self.client.get(callback).send().await.unwrap()
    }

    /// The whole sign-in started at `/` with `next` as its `next` parameter; returns the
    /// callback's response.
    pub async fn sign_in_with_next(&self, next: &str) -> reqwest::Response {
        let mut start = self.url.clone();
        start.query_pairs_mut().append_pair("next", next);
        let response = self.client.get(start).send().await.unwrap();
        let callback = self.approve_at_lms(location(&response)).await;
        self.client.get(callback).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url.join(path).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// The session cookie the browser holds for the app, if any.
    pub fn session_cookie(&self) -> Option<String> {
        let header = self.jar.cookies(&self.url)?;
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|pair| pair.strip_prefix("profiles_session=").map(str::to_owned))
    }

    /// The CSRF token the profile page's forms carry.
    pub async fn csrf(&self) -> String {
        let page = self.get("/profile/").await.text().await.unwrap();
        let marker = "name=\"csrf\" value=\"";
        let start = page.find(marker).expect("a form with a csrf field") + marker.len();
        page[start..].split('"').next().unwrap().to_owned()
    }

    /// POSTs a form to the app.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url.join(path).unwrap())
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a form with this session's CSRF token.
    pub async fn post_with_csrf(&self, path: &str) -> reqwest::Response {
        let csrf = self.csrf().await;
        self.post(path, &[("csrf", csrf.as_str())]).await
    }

    /// Another server on the same database and LMS, as a second replica would be; it shares
    /// this app's cookie jar (cookies ignore ports).
    pub async fn replica(&self) -> (Url, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        (url, serve(listener, &self.vars, self.tweak).await.1)
    }

    /// [`replica`](Self::replica), with the variable `name` set to `value` (e.g. another
    /// `SECRET_KEYS`, as a replica in the middle of a rolling deploy has).
    pub async fn replica_with(&self, name: &str, value: &str) -> Replica {
        let mut vars = self.vars.clone();
        vars.insert(name.into(), value.into());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let (_, task) = serve(listener, &vars, self.tweak).await;
        Replica { url, task }
    }

    /// Stops this app, as a replica that is shut down or dies.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Stops this app and starts a fresh process-equivalent on the same database and cookie jar.
    pub async fn restart(&mut self) {
        self.task.abort();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let (state, task) = serve(listener, &self.vars, self.tweak).await;
        self.state = state;
        self.task = task;
    }

    /// A connection to this app's SQLite database, to look at what it stores.
    pub async fn database(&self) -> sqlx::SqliteConnection {
        use sqlx::Connection;
        sqlx::SqliteConnection::connect(&self.vars["DATABASE_URL"])
            .await
            .unwrap()
    }

    /// How many signed-in sessions are stored.
    pub async fn sessions_stored(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&mut self.database().await)
            .await
            .unwrap()
    }

    /// The one signed-in session's row key and its token, as stored.
    pub async fn stored_session(&self) -> (String, openedx_client::Token) {
        let key: String = sqlx::query_scalar("SELECT id FROM sessions")
            .fetch_one(&mut self.database().await)
            .await
            .unwrap();
        let token = self
            .state
            .store
            .token(&key, 0)
            .await
            .unwrap()
            .unwrap()
            .token;
        (key, token)
    }
}
