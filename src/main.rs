//! Wiring only: read the command, set up logging, and serve, migrate the database, or check a
//! running server's health.

use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
    time::Duration,
};

use profiles::{
    AppState,
    config::{Config, DEFAULT_BIND},
    store::Store,
};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
usage: profiles [serve | migrate | healthcheck]

  serve         serve the app with the settings from the environment and .env (the default);
                pending migrations are applied first
  migrate       apply pending database migrations and exit (e.g. as a deployment's init job)
  healthcheck   exit 0 if the app on BIND answers /healthz (for container health checks)

To try it beside a built-in LMS stand-in, from a clone: cargo run --locked --example demo
The LMS token recipes are the `openedx` command of the openedx-client crate:
  cargo run --locked -p openedx-client --features cli -- --help";

/// The app's commands. Read by hand rather than with an argument parser: there are three words
/// and no options, and the production binary carries one dependency fewer for it.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Serve,
    Migrate,
    Healthcheck,
    Help,
    Version,
}

fn command(args: &[String]) -> Result<Command, String> {
    if let Some(word @ ("token" | "api")) = args.first().map(String::as_str) {
        return Err(format!(
            "`{word}` is now the `openedx` command of the openedx-client crate: \
             cargo run --locked -p openedx-client --features cli -- {word} --help"
        ));
    }
    if args.first().is_some_and(|word| word == "demo") {
        return Err("the demo is a cargo example now: cargo run --locked --example demo".into());
    }
    let word = match args {
        [] => return Ok(Command::Serve),
        [word] => word.as_str(),
        _ => {
            return Err(format!(
                "expected one command, got {}; see --help",
                args.len()
            ));
        }
    };
    Ok(match word {
        "serve" => Command::Serve,
        "migrate" => Command::Migrate,
        "healthcheck" => Command::Healthcheck,
        "-h" | "--help" | "help" => Command::Help,
        "-V" | "--version" => Command::Version,
        other => return Err(format!("{other:?} is not a command; see --help")),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match command(&args) {
        Err(message) => Err(message),
        Ok(Command::Help) => print(USAGE),
        Ok(Command::Version) => print(concat!("profiles ", env!("CARGO_PKG_VERSION"))),
        Ok(command) => match load_dotenv().and_then(|()| init_logging()) {
            Err(message) => Err(message),
            Ok(()) => match command {
                Command::Migrate => migrate().await,
                Command::Healthcheck => healthcheck().await,
                _ => serve().await,
            },
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Not eprintln!, which panics when stderr is a closed pipe: the exit code still tells.
            let _ = writeln!(std::io::stderr(), "profiles: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print(text: &str) -> Result<(), String> {
    writeln!(std::io::stdout(), "{text}").map_err(|e| format!("cannot write: {e}"))
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
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // tower-sessions warns of "possibly suspicious activity" for every stale or malformed session
    // cookie; a stale cookie is routine (an expired session) and our store logs it once at info,
    // so its own lines are kept to errors unless RUST_LOG names it.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("tower_sessions")) {
        for directive in ["tower_sessions=error", "tower_sessions_core=error"] {
            if let Ok(directive) = directive.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let ansi = colour(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    match format.trim().to_ascii_lowercase().as_str() {
        "" | "text" => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .init(),
        "json" => tracing_subscriber::fmt()
            .json()
            .with_ansi(false)
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

/// Colour codes only for a person at a terminal: in a file or a pipe they are noise to every
/// reader and tool. `NO_COLOR` set to anything but the empty string turns them off (no-color.org).
fn colour(on_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    on_terminal && no_color.is_none_or(|v| v.is_empty())
}

async fn serve() -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
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

/// `profiles migrate`: what `serve` does first, alone. Replicas starting together may also each
/// migrate (sqlx serializes them), but a deployment's init job does it once, before any starts.
async fn migrate() -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let store = Store::connect(config.database_url.expose(), config.secret_keys.clone()).await?;
    store.check().await?;
    store.close().await;
    tracing::info!(backend = store.backend(), "the database is migrated");
    Ok(())
}

/// `profiles healthcheck`: asks this app's `/healthz` on `BIND` (the image has no curl).
async fn healthcheck() -> Result<(), String> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| DEFAULT_BIND.into());
    let mut addr: std::net::SocketAddr = bind
        .parse()
        .map_err(|_| format!("BIND: {bind:?} is not an address:port"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(3))
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

#[cfg(test)]
mod tests {
    use super::{Command, colour, command};

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_command_line_takes_one_of_three_commands() {
        assert_eq!(command(&args(&[])), Ok(Command::Serve));
        assert_eq!(command(&args(&["serve"])), Ok(Command::Serve));
        assert_eq!(command(&args(&["migrate"])), Ok(Command::Migrate));
        assert!(
            command(&args(&["demo"]))
                .expect_err("moved")
                .contains("--example demo")
        );
        assert_eq!(command(&args(&["healthcheck"])), Ok(Command::Healthcheck));
        assert_eq!(command(&args(&["--help"])), Ok(Command::Help));
        assert!(command(&args(&["serve", "now"])).is_err());
        assert!(command(&args(&["--json"])).is_err());
        for moved in [&["token", "client-credentials"][..], &["api"]] {
            let message = command(&args(moved)).expect_err("moved");
            assert!(message.contains("openedx-client"), "{message}");
        }
    }

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
