//! `cargo run --locked --example demo`: the LMS stand-in and the app side by side on loopback,
//! with a registered client and a demo learner, so a newcomer can sign in on a fresh machine with
//! one command. An example rather than part of the app: the stand-in (and its development signing
//! key) is a dev-dependency, so the production build never carries it.

use std::{
    collections::HashMap,
    io::{IsTerminal, Write},
    net::SocketAddr,
    process::ExitCode,
};

use openedx_standin::{LmsUser, RegisteredClient, Settings, StandIn};
use profiles::{
    config::{Config, DEFAULT_BIND},
    routes::FRONTCHANNEL_LOGOUT_PATH,
    state::AppState,
};
use tracing_subscriber::EnvFilter;

/// Where the stand-in listens unless `DEMO_LMS_BIND` says otherwise.
const DEFAULT_DEMO_LMS_BIND: &str = "127.0.0.1:8090";
const DEMO_CLIENT_ID: &str = "profiles-demo";

#[tokio::main]
async fn main() -> ExitCode {
    // `.env` as the app reads it (its `BIND`, `DATABASE_URL`, `RUST_LOG`); a missing one is normal.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        let _ = writeln!(std::io::stderr(), "demo: .env could not be read ({e})");
        return ExitCode::FAILURE;
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colour only for a person at a terminal, as the app's own logging does.
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
    match run(std::env::vars().collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "demo: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs until Ctrl-C. `vars` is the environment (with `.env` applied); the LMS settings in it are
/// replaced by the stand-in's, everything else (`BIND`, `DATABASE_URL`, `RUST_LOG`...) is kept.
async fn run(mut vars: HashMap<String, String>) -> Result<(), String> {
    let lms_bind = vars
        .get("DEMO_LMS_BIND")
        .map_or(DEFAULT_DEMO_LMS_BIND, String::as_str);
    let lms_addr: SocketAddr = lms_bind.parse().map_err(|_| {
        format!("DEMO_LMS_BIND: {lms_bind:?} is not an address:port; use e.g. 127.0.0.1:8090")
    })?;
    let bind = vars
        .get("BIND")
        .cloned()
        .unwrap_or_else(|| DEFAULT_BIND.to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await.map_err(|e| {
        format!(
            "BIND: cannot listen on {bind}: {e}; set BIND to a free port, e.g. BIND=127.0.0.1:8081"
        )
    })?;
    let app_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let public_url = format!("http://{app_addr}/");
    // The stand-in's logout loads the app's front-channel sign-out, as Tutor's LMS does Studio's,
    // so signing out at the stand-in signs out of the app too (both are on one loopback host:
    // same-site).
    let frontchannel = format!(
        "{}{}",
        public_url.trim_end_matches('/'),
        FRONTCHANNEL_LOGOUT_PATH
    );
    let settings = Settings {
        ida_logout_uri_list: vec![frontchannel],
        ..Settings::default()
    };
    let standin = StandIn::spawn(lms_addr, settings).await.map_err(|e| {
        format!("DEMO_LMS_BIND: cannot listen on {lms_addr}: {e}; set DEMO_LMS_BIND to a free port")
    })?;

    let secret = format!("demo-{:032x}", rand::random::<u128>());
    let learner = LmsUser::demo_learner();
    standin.register_client(RegisteredClient::authorization_code(
        DEMO_CLIENT_ID,
        &secret,
        vec![
            format!("{public_url}authorize/"),
            format!("{public_url}signed-out/"),
        ],
    ));
    standin.add_user(learner.clone());

    vars.remove("LMS_INTERNAL_URL");
    vars.insert("LMS_URL".into(), standin.url().to_string());
    vars.insert("LMS_CLIENT_ID".into(), DEMO_CLIENT_ID.into());
    vars.insert("LMS_CLIENT_SECRET".into(), secret);
    vars.insert("PUBLIC_URL".into(), public_url.clone());
    vars.insert("BIND".into(), app_addr.to_string());
    let config = Config::from_vars(&vars).map_err(|e| e.to_string())?;
    let state = AppState::new(config).await?;

    println!();
    println!("  The profiles demo is running.");
    println!("  Open            {public_url}");
    println!(
        "  Sign in as      {} / {}",
        learner.username, learner.password
    );
    println!(
        "  LMS stand-in    {} (a development stand-in, not a real LMS)",
        standin.url()
    );
    println!(
        "  Sign out at     {}logout (signs you out of both)",
        standin.url()
    );
    println!("  Stop with Ctrl-C.");
    println!();

    profiles::serve(listener, state)
        .await
        .map_err(|e| e.to_string())
}
