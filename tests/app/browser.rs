//! The whole flow in a real browser: Debian's Chromium driven through chromedriver (WebDriver),
//! against the app and the LMS stand-in on random loopback ports. Screenshots of every page at phone
//! (360 px) and desktop (1280 px) width go to `target/screenshots/`, and axe-core checks each page.
//!
//! Needs `chromium` and `chromium-driver` (apt-get) and axe-core (npm); `.ci/run` installs them.
//! Run with `cargo test --locked --test browser -- --ignored` (see the README).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::helpers::{Options, TestApp, revoked_refresh_tokens, spawn_app_with};
use fantoccini::{Client, ClientBuilder, Locator};
use openedx_standin::Settings;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const WIDTHS: [u32; 2] = [360, 1280];

fn chromedriver_path() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()),
    );
    assert!(
        path.exists(),
        "chromedriver not found at {}: install it with `sudo apt-get install chromium \
         chromium-driver`, or set CHROMEDRIVER to its path",
        path.display()
    );
    path
}

fn axe_source() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "axe-core not found at {}: install it with `npm install --prefix target/axe \
             axe-core@4`",
            path.display()
        )
    })
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver_path())
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    // Owned by the guard at once, so a panic below still kills it.
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if reqwest::get(format!("{}/status", driver.url)).await.is_ok() {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {}", driver.url);
}

async fn browser(driver: &Driver) -> Client {
    browser_with(driver, &[]).await
}

/// A Chromium session with `extra` command-line switches.
async fn browser_with(driver: &Driver, extra: &[&str]) -> Client {
    let profile = std::env::temp_dir().join(format!("profiles-chromium-{}", rand::random::<u64>()));
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut args = vec![
        // The machine has no internet; without these Chromium stalls on it.
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        format!("--user-data-dir={}", profile.display()),
        "--window-size=1280,900".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": binary, "args": args }),
    );
    // chromedriver is on loopback: plain HTTP, no TLS stack needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Screenshots of the current page at each width, and an axe-core check at each.
async fn capture_and_check(client: &Client, name: &str) {
    for width in WIDTHS {
        client.set_window_size(width, 900).await.unwrap();
        let png = client.screenshot().await.unwrap();
        let file = screenshot_dir().join(format!("{name}-{width}.png"));
        std::fs::write(&file, png).unwrap();
        let serious = axe_violations(client).await;
        assert!(
            serious.is_empty(),
            "{name} at {width}px has serious accessibility violations: {serious:#?}"
        );
        let scrolls_sideways: bool = client
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth;",
                vec![],
            )
            .await
            .unwrap()
            .as_bool()
            .unwrap();
        assert!(!scrolls_sideways, "{name} at {width}px scrolls sideways");
    }
    client.set_window_size(1280, 900).await.unwrap();
}

/// axe-core's serious and critical violations on the current page (WebDriver scripts are not
/// subject to the page's Content-Security-Policy).
async fn axe_violations(client: &Client) -> Vec<Value> {
    let script = format!(
        "{}\nconst done = arguments[arguments.length - 1];\n\
         axe.run(document, {{ resultTypes: ['violations'] }})\n\
           .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\n\
             .map(v => ({{ id: v.id, help: v.help, nodes: v.nodes.map(n => n.target) }}))))\n\
           .catch(e => done([{{ id: 'axe-error', help: String(e) }}]));",
        axe_source()
    );
    let result = client.execute_async(&script, vec![]).await.unwrap();
    result.as_array().cloned().unwrap_or_default()
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .text()
        .await
        .unwrap()
}

/// At the stand-in: the login form with the demo credentials, then the consent page.
async fn sign_in_at_lms(client: &Client, app: &TestApp, allow: bool) {
    let username = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("input[name=username]"))
        .await
        .expect("the LMS login form");
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(app.standin.url().as_str())
    );
    username.send_keys("learner").await.unwrap();
    client
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("learner-password")
        .await
        .unwrap();
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let button = if allow {
        "button[name=allow]"
    } else {
        "button[name=cancel]"
    };
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(button))
        .await
        .expect("the consent page")
        .click()
        .await
        .unwrap();
}

/// Chromium opens the app and answers at the stand-in, allowing or declining the consent; the
/// tools a check needs are there first.
async fn open_the_app_and_answer_at_the_lms(allow: bool) -> (TestApp, Driver, Client) {
    chromedriver_path();
    axe_source();
    let app = spawn_app_with(Options::default()).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(app.url.as_str()).await.unwrap();
    sign_in_at_lms(&client, &app, allow).await;
    (app, driver, client)
}

#[tokio::test]
#[ignore = "needs Chromium, chromedriver and axe-core; run with --ignored (see the README)"]
async fn a_learner_signs_in_sees_the_profile_and_signs_out_in_chromium() {
    let (app, _driver, client) = open_the_app_and_answer_at_the_lms(true).await;
    assert_eq!(text_of(&client, "h1#name").await, "Ada Lovelace");
    assert_eq!(text_of(&client, ".username").await, "@learner");
    assert_eq!(client.current_url().await.unwrap().path(), "/profile/");
    capture_and_check(&client, "profile").await;

    // The developer panel opens and shows the claims table.
    client
        .find(Locator::Css("details.how summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        text_of(&client, "table.claims")
            .await
            .contains("preferred_username")
    );
    capture_and_check(&client, "profile-details").await;

    // Waited for: the profile's own h1 would otherwise be read as it goes stale.
    press_sign_out(&client, &app).await;
    assert_eq!(text_of(&client, "h1").await, "You are signed out");
    capture_and_check(&client, "signed-out").await;

    client
        .goto(app.url.join("/nowhere").unwrap().as_str())
        .await
        .unwrap();
    assert_eq!(text_of(&client, "h1").await, "Page not found");
    capture_and_check(&client, "not-found").await;

    client.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Chromium, chromedriver and axe-core; run with --ignored (see the README)"]
async fn declining_at_the_first_consent_shows_the_decline_page_in_chromium() {
    let (_app, _driver, client) = open_the_app_and_answer_at_the_lms(false).await;
    // The consent page's own h1 would otherwise be read before the LMS sends the browser back.
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::LinkText("Start again"))
        .await
        .expect("the decline page");
    assert_eq!(
        text_of(&client, "h1").await,
        "You declined to share your profile"
    );
    assert_eq!(client.current_url().await.unwrap().path(), "/authorize/");
    assert!(client.find(Locator::LinkText("Start again")).await.is_ok());
    capture_and_check(&client, "declined").await;
    client.close().await.unwrap();
}

/// Names Chromium resolves to loopback, so that the app and the LMS stand-in can be same-site
/// (`app.profiles.test` beside `lms.profiles.test`, one registrable domain) or cross-site
/// (`lms.openedx.test`) on purpose; ports never count towards a site.
const HOST_RULES: &str = "--host-resolver-rules=MAP *.test 127.0.0.1";
const APP_HOST: &str = "app.profiles.test";
/// The app under a name Chromium resolves to loopback itself and counts as a secure context,
/// as it does an https origin: only there does it send Fetch Metadata (`Sec-Fetch-*`), which
/// plain http under any other name lacks.
const SECURE_APP_HOST: &str = "app.profiles.localhost";

/// Signs in to the app at `app_host` through the stand-in at `lms_host`, whose `/logout` lists
/// the app's front-channel sign-out.
async fn sign_in_beside(app_host: &'static str, lms_host: &str) -> (TestApp, Driver, Client) {
    chromedriver_path();
    let app = spawn_app_with(Options {
        app_host: Some(app_host),
        settings: Settings {
            host: Some(lms_host.into()),
            ..Settings::default()
        },
        frontchannel_logout: true,
        ..Options::default()
    })
    .await;
    let driver = start_driver().await;
    let client = browser_with(&driver, &[HOST_RULES]).await;
    client.goto(app.url.as_str()).await.unwrap();
    sign_in_at_lms(&client, &app, true).await;
    assert_eq!(text_of(&client, "h1#name").await, "Ada Lovelace");
    assert_eq!(
        client.current_url().await.unwrap().host_str(),
        Some(app_host)
    );
    (app, driver, client)
}

/// Signs in to the app through the stand-in at `lms_host`, then signs out at the stand-in's
/// `/logout`, which loads the app's front-channel sign-out in a hidden iframe and moves on to
/// the LMS's home page once it has loaded.
async fn sign_in_then_sign_out_at_the_lms(
    app_host: &'static str,
    lms_host: &str,
) -> (TestApp, Driver, Client) {
    let (app, driver, client) = sign_in_beside(app_host, lms_host).await;
    let logout = app.standin.url().join("/logout").unwrap();
    client.goto(logout.as_str()).await.unwrap();
    let home = app.standin.url().join("/").unwrap();
    client
        .wait()
        .at_most(WAIT)
        .for_url(home)
        .await
        .expect("the LMS's logout page moves on once its iframes have loaded");
    assert_eq!(text_of(&client, "main p").await, "You are not signed in.");
    (app, driver, client)
}

/// How many times the app answered the LMS's iframe, whatever it found.
fn frontchannel_calls(app: &TestApp) -> usize {
    app.state
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("profiles_http_requests_total{route=\"/frontchannel-logout/\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver; run with --ignored (see the README)"]
async fn signing_out_at_a_same_site_lms_signs_out_of_the_app_in_chromium() {
    let (app, _driver, client) =
        sign_in_then_sign_out_at_the_lms(APP_HOST, "lms.profiles.test").await;
    assert_eq!(frontchannel_calls(&app), 1);
    assert_eq!(
        revoked_refresh_tokens(&app),
        1,
        "the journal shows the revocation"
    );
    assert_eq!(app.standin.live_refresh_tokens(), 0);

    // The profile sends the person to sign in, which the LMS now asks a password for.
    client
        .goto(app.url.join("/profile/").unwrap().as_str())
        .await
        .unwrap();
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("input[name=username]"))
        .await
        .expect("the LMS's login form");
    let url = client.current_url().await.unwrap();
    assert_eq!(
        (url.host_str(), url.path()),
        (Some("lms.profiles.test"), "/login")
    );
    client.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver; run with --ignored (see the README)"]
async fn signing_out_at_a_cross_site_lms_leaves_the_app_signed_in_in_chromium() {
    let (app, _driver, client) =
        sign_in_then_sign_out_at_the_lms(APP_HOST, "lms.openedx.test").await;
    // The iframe's request arrived, but without the SameSite=Lax cookie: the README's limit.
    assert_eq!(frontchannel_calls(&app), 1);
    assert_eq!(revoked_refresh_tokens(&app), 0);
    assert_eq!(app.standin.live_refresh_tokens(), 1);
    client
        .goto(app.url.join("/profile/").unwrap().as_str())
        .await
        .unwrap();
    assert_eq!(text_of(&client, "h1#name").await, "Ada Lovelace");
    client.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver; run with --ignored (see the README)"]
async fn signing_out_at_a_same_site_lms_signs_out_of_the_app_with_fetch_metadata_in_chromium() {
    let (app, _driver, client) =
        sign_in_then_sign_out_at_the_lms(SECURE_APP_HOST, "lms.profiles.localhost").await;
    assert_eq!(frontchannel_calls(&app), 1);
    assert_eq!(revoked_refresh_tokens(&app), 1);
    assert_eq!(app.standin.live_refresh_tokens(), 0);
    client.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Chromium, chromedriver and axe-core; run with --ignored (see the README)"]
async fn a_link_from_another_site_gets_a_sign_out_button_in_chromium() {
    axe_source();
    // With Fetch Metadata (a secure context) and without (plain http).
    for app_host in [SECURE_APP_HOST, APP_HOST] {
        let lms_host = app_host.replace("app.", "lms.");
        let (app, _driver, client) = sign_in_beside(app_host, &lms_host).await;
        // A page of another site links to the address; following the link is a top-level
        // navigation, which brings the SameSite=Lax cookie.
        let frontchannel = app.url.join("/frontchannel-logout/").unwrap();
        let elsewhere =
            format!("data:text/html,<title>Elsewhere</title><a href=\"{frontchannel}\">Go</a>");
        client.goto(&elsewhere).await.unwrap();
        client
            .find(Locator::LinkText("Go"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(
            text_of(&client, "h1").await,
            "Sign out of profiles?",
            "{app_host}"
        );
        assert_eq!(client.current_url().await.unwrap(), frontchannel);
        assert_eq!(frontchannel_calls(&app), 1);
        assert_eq!(revoked_refresh_tokens(&app), 0, "nothing ended");
        assert_eq!(app.standin.live_refresh_tokens(), 1);
        capture_and_check(&client, "sign-out-button").await;

        press_sign_out(&client, &app).await;
        assert_eq!(revoked_refresh_tokens(&app), 1, "the button signs out");
        client.close().await.unwrap();
    }
}

/// Presses the page's "Sign out" button and waits until the browser is on the signed-out page.
async fn press_sign_out(client: &Client, app: &TestApp) {
    client
        .find(Locator::XPath("//button[normalize-space()='Sign out']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(WAIT)
        .for_url(app.url.join("/signed-out/?why=here").unwrap())
        .await
        .unwrap();
}
