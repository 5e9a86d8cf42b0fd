//! Wiring only: read the configuration, set up logging, and serve (or run the demo).

use std::process::ExitCode;

use profiles::{AppState, config::Config};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: profiles [demo | healthcheck]

  profiles              serve the app with the settings from the environment and .env
  profiles demo         serve the app beside a built-in LMS stand-in, on loopback, for a first try
  profiles healthcheck  exit 0 if the app on BIND answers /healthz (for container health checks)";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match load_dotenv().and_then(|()| init_logging()) {
        Err(message) => Err(message),
        Ok(()) => match args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [] => serve().await,
            ["demo"] => profiles::demo::run(std::env::vars().collect()).await,
            ["healthcheck"] => healthcheck().await,
            ["-h" | "--help" | "help"] => {
                println!("{USAGE}");
                Ok(())
            }
            _ => Err(format!("unknown arguments {args:?}\n{USAGE}")),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("profiles: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `.env` first, so that `RUST_LOG` and `LOG_FORMAT` in it apply to logging too. A missing `.env`
/// is normal (containers pass real variables); a broken one is not.
fn load_dotenv() -> Result<(), String> {
    match dotenvy::dotenv() {
        Err(e) if !e.not_found() => Err(format!(
            ".env: could not be read ({e}); fix the line it names or remove it"
        )),
        _ => Ok(()),
    }
}

/// `RUST_LOG` filters (default `info,sqlx=warn`); `LOG_FORMAT=json` writes one JSON object per
/// line for log shippers, `text` (the default) is for people.
fn init_logging() -> Result<(), String> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    match format.trim().to_ascii_lowercase().as_str() {
        "" | "text" => tracing_subscriber::fmt().with_env_filter(filter).init(),
        "json" => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(filter)
            .init(),
        other => {
            return Err(format!(
                "LOG_FORMAT: {other:?} is not valid; use text or json"
            ));
        }
    }
    Ok(())
}

async fn serve() -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let bind = config.bind;
    let state = AppState::new(config).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("BIND: cannot listen on {bind}: {e}; choose a free address:port"))?;
    tracing::info!(%bind, "profiles is listening");
    profiles::serve(listener, state)
        .await
        .map_err(|e| e.to_string())
}

/// For `HEALTHCHECK` in the image, which has no curl: asks this app's `/healthz` on `BIND`.
async fn healthcheck() -> Result<(), String> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| profiles::config::DEFAULT_BIND.into());
    let mut addr: std::net::SocketAddr = bind
        .parse()
        .map_err(|_| format!("BIND: {bind:?} is not an address:port"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .map_err(|e| format!("http://{addr}/healthz: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "http://{addr}/healthz answered {}",
            response.status()
        ))
    }
}
