//! Wiring only: read the configuration, set up logging, and serve (or run the demo).

use std::process::ExitCode;

use profiles::{AppState, config::Config};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: profiles [demo]

  profiles        serve the app with the settings from the environment and .env
  profiles demo   serve the app beside a built-in LMS stand-in, on loopback, for a first try";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .init();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => serve().await,
        ["demo"] => demo().await,
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown arguments {args:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("profiles: {message}");
            ExitCode::FAILURE
        }
    }
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

async fn demo() -> Result<(), String> {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        return Err(format!(".env: could not be read ({e})"));
    }
    profiles::demo::run(std::env::vars().collect()).await
}
