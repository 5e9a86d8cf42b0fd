//! Wiring only: parse the command line, set up logging, and serve, run the demo, or run an LMS
//! command ([`profiles::cli`]).

use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
};

use clap::Parser;
use profiles::{
    AppState,
    cli::{self, Cli, Command},
    config::Config,
};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that print results keep stdout for them; the server logs to stdout as usual.
    let logs_to_stderr = matches!(cli.command, Some(Command::Token(_) | Command::Api { .. }));
    let result = match load_dotenv().and_then(|()| init_logging(logs_to_stderr)) {
        Err(message) => Err(message),
        Ok(()) => match cli.command {
            None | Some(Command::Serve) => serve().await,
            Some(Command::Demo) => profiles::demo::run(std::env::vars().collect()).await,
            Some(Command::Healthcheck) => cli::healthcheck().await,
            Some(command) => cli::run_lms_command(command, cli.json).await,
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
fn init_logging(to_stderr: bool) -> Result<(), String> {
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
    let writer = move || -> Box<dyn std::io::Write> {
        if to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        }
    };
    let on_terminal = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let ansi = colour(on_terminal, std::env::var_os("NO_COLOR"));
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    match format.trim().to_ascii_lowercase().as_str() {
        "" | "text" => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(writer)
            .init(),
        "json" => tracing_subscriber::fmt()
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_env_filter(filter)
            .with_writer(writer)
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

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
