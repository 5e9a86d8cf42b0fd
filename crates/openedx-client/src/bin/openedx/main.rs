//! The command line: the web app (`serve`, `demo`), a container health check, and the Open edX
//! token recipes and API calls on the same client the app uses. Settings come from the same
//! environment and `.env` as the app; `--json` makes output machine-readable; an error is one line
//! on stderr and a non-zero exit.

//! `openedx`: the Open edX token recipes and API calls from a shell, on the same client an app
//! uses. Settings come from the environment and `.env` (`LMS_URL`, `LMS_CLIENT_ID`,
//! `LMS_CLIENT_SECRET`, `LMS_PUBLIC_CLIENT_ID`, `LMS_JWT_*`...); `--json` makes output
//! machine-readable; an error is one line on stderr and a non-zero exit.

use std::{
    collections::HashMap,
    io::{BufRead, IsTerminal, Write},
    process::ExitCode,
    time::Duration,
};

use clap::{Parser, Subcommand, ValueEnum};
use openedx_client::{
    ClientConfig, ClientCredentialsAuthorizer, Expected, Jwt, JwtError, JwtKey, LmsClient, Secret,
    Token, TokenHint, check_api_path, unix_now,
};
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "openedx",
    version,
    about = "The Open edX LMS token recipes and API calls"
)]
struct Cli {
    /// Print JSON instead of text (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Get, refresh, inspect or revoke LMS tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Call an LMS API with a client-credentials JWT, renewed as needed; prints the JSON.
    Api {
        /// Only GET: these calls read.
        method: String,
        /// A path on the LMS, e.g. /api/enrollment/v1/enrollment
        path: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match load_dotenv().and_then(|()| init_logging()) {
        Err(message) => Err(message),
        Ok(()) => run(cli.command, cli.json).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Not eprintln!, which panics when stderr is a closed pipe: the exit code still tells.
            let _ = writeln!(std::io::stderr(), "openedx: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `.env` first, so that `RUST_LOG` in it applies to logging too. A missing `.env` is normal; a
/// broken one is not.
fn load_dotenv() -> Result<(), String> {
    match dotenvy::dotenv() {
        Err(e) if !e.not_found() => Err(format!(
            ".env: could not be read ({e}); fix the line it names or remove it"
        )),
        _ => Ok(()),
    }
}

/// Logs go to stderr, stdout being for results; `RUST_LOG` filters (default: warnings only).
fn init_logging() -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// A token for this application (LMS_CLIENT_ID/LMS_CLIENT_SECRET, grant client-credentials).
    ClientCredentials {
        /// Ask for an RS512 JWT (asymmetric_jwt) instead of HS256.
        #[arg(long)]
        asymmetric: bool,
    },
    /// A token for a user, through a public client as the mobile apps do. The password is read
    /// from a prompt, or from stdin when it is not a terminal; never from an argument.
    Password {
        #[arg(long)]
        username: String,
        /// The public client's id (default: LMS_PUBLIC_CLIENT_ID).
        #[arg(long)]
        client_id: Option<String>,
    },
    /// Trade a refresh token (read from stdin or a prompt) for a new token; keep the new refresh
    /// token, the old one is spent.
    Refresh {
        /// The public client that got the token (password grant); default: this application.
        #[arg(long)]
        client_id: Option<String>,
    },
    /// Decode a JWT: claims, expiry, and the signature when a key is set (LMS_JWT_SECRET for
    /// HS256, LMS_JWT_JWKS for RS512; LMS_JWT_ISSUER, LMS_JWT_AUDIENCE). The JWT is read from
    /// standard input (or a hidden prompt) when not given: an argument lands in shell history and
    /// in `ps`, so prefer `openedx token inspect < jwt.txt`.
    Inspect {
        /// The JWT; leave it out to read it from standard input (arguments show in shell history
        /// and `ps`).
        jwt: Option<String>,
    },
    /// Revoke a token read from stdin or a prompt.
    Revoke {
        #[arg(long, value_enum, default_value = "refresh-token")]
        hint: Hint,
        /// The public client the token was issued to (password grant); default: this application.
        #[arg(long)]
        client_id: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Hint {
    AccessToken,
    RefreshToken,
}

/// Runs a `token` or `api` command.
async fn run(command: Command, json_output: bool) -> Result<(), String> {
    let vars: HashMap<String, String> = std::env::vars().collect();
    let mut config = ClientConfig::from_vars(&vars).map_err(|e| e.to_string())?;
    config.user_agent = concat!("openedx/", env!("CARGO_PKG_VERSION")).into();
    let client = LmsClient::new(config).map_err(|e| e.to_string())?;
    let out = Output { json: json_output };
    match command {
        Command::Token(TokenCommand::ClientCredentials { asymmetric }) => {
            let client = if asymmetric {
                client.asymmetric()
            } else {
                client
            };
            out.token(
                &client
                    .client_credentials()
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
        Command::Token(TokenCommand::Password {
            username,
            client_id,
        }) => {
            let client_id = public_client_id(client_id)?;
            let password = read_secret("Password: ")?;
            let token = client
                .password(&client_id, &username, &password)
                .await
                .map_err(|e| e.to_string())?;
            out.token(&token)
        }
        Command::Token(TokenCommand::Refresh { client_id }) => {
            let refresh = read_secret("Refresh token: ")?;
            let token = client
                .refresh_token(&refresh, client_id.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            out.token(&token)
        }
        Command::Token(TokenCommand::Inspect { jwt }) => {
            let raw = match jwt {
                Some(jwt) => Secret::new(jwt),
                None => read_secret("JWT: ")?,
            };
            out.inspect(&raw)
        }
        Command::Token(TokenCommand::Revoke { hint, client_id }) => {
            let token = read_secret("Token: ")?;
            let hint = match hint {
                Hint::AccessToken => TokenHint::AccessToken,
                Hint::RefreshToken => TokenHint::RefreshToken,
            };
            client
                .revoke_token(&token, hint, client_id.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            out.line("revoked", json!({ "revoked": true }))
        }
        Command::Api { method, path } => {
            if !method.eq_ignore_ascii_case("get") {
                return Err(format!("{method}: only GET is supported"));
            }
            // Before any token is asked for: the mistake is in the argument, not at the LMS.
            check_api_path(&path)
                .map_err(|problem| format!("{path:?} is not a path on the LMS: {problem}"))?;
            let authorizer = ClientCredentialsAuthorizer::new(client, Duration::from_secs(60));
            let body = authorizer.get(&path).await.map_err(|e| e.to_string())?;
            out.api(&body)
        }
    }
}

fn public_client_id(flag: Option<String>) -> Result<String, String> {
    flag.or_else(|| std::env::var("LMS_PUBLIC_CLIENT_ID").ok())
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| {
            "LMS_PUBLIC_CLIENT_ID is not set; pass --client-id or set it to the public \
             (password-grant) application's client id"
                .into()
        })
}

/// A secret from a hidden prompt when stdin is a terminal, else the first line of stdin.
fn read_secret(prompt: &str) -> Result<Secret, String> {
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)
            .map_err(|e| format!("cannot read from the terminal: {e}"))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        line
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(format!("{} is empty", prompt.trim_end_matches([':', ' '])));
    }
    Ok(Secret::new(value))
}

/// The key and expectations for `token inspect`, from the environment.
fn jwt_key() -> Result<Option<JwtKey>, String> {
    if let Ok(secret) = std::env::var("LMS_JWT_SECRET")
        && !secret.is_empty()
    {
        return Ok(Some(JwtKey::Hs256(Secret::new(secret))));
    }
    match std::env::var("LMS_JWT_JWKS") {
        Ok(value) if !value.trim().is_empty() => {
            // Inline JSON, or the path of a file that holds it.
            let json = if value.trim_start().starts_with('{') {
                value
            } else {
                std::fs::read_to_string(value.trim())
                    .map_err(|e| format!("LMS_JWT_JWKS: cannot read {value:?}: {e}"))?
            };
            JwtKey::from_jwk_set(&json)
                .map(Some)
                .map_err(|e| format!("LMS_JWT_JWKS: {e}"))
        }
        _ => Ok(None),
    }
}

struct Output {
    json: bool,
}

impl Output {
    fn print(&self, text: &str) -> Result<(), String> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}").map_err(|e| format!("cannot write: {e}"))
    }

    fn line(&self, text: &str, json: Value) -> Result<(), String> {
        if self.json {
            self.print(&json.to_string())
        } else {
            self.print(text)
        }
    }

    fn token(&self, token: &Token) -> Result<(), String> {
        let now = unix_now();
        if self.json {
            return self.print(
                &json!({
                    "access_token": token.access_token.expose(),
                    "token_type": token.kind.scheme(),
                    "expires_in": token.expires_at.map(|at| at - now),
                    "expires_at": token.expires_at,
                    "scope": token.scopes.join(" "),
                    "refresh_token": token.refresh_token.as_ref().map(Secret::expose),
                })
                .to_string(),
            );
        }
        let mut rows = vec![
            ("token_type", token.kind.scheme().to_owned()),
            (
                "expires",
                token
                    .expires_at
                    .map_or_else(|| "not stated".into(), |at| in_words(at - now)),
            ),
            ("scope", token.scopes.join(" ")),
            ("access_token", token.access_token.expose().to_owned()),
        ];
        rows.push((
            "refresh_token",
            token.refresh_token.as_ref().map_or_else(
                || "none (ask again to renew)".into(),
                |r| r.expose().to_owned(),
            ),
        ));
        self.print(&table(&rows))
    }

    fn inspect(&self, raw: &Secret) -> Result<(), String> {
        let jwt = Jwt::decode(raw.expose()).map_err(|e| e.to_string())?;
        let now = unix_now();
        let expected = Expected {
            issuer: std::env::var("LMS_JWT_ISSUER")
                .ok()
                .filter(|v| !v.is_empty()),
            audience: std::env::var("LMS_JWT_AUDIENCE")
                .ok()
                .filter(|v| !v.is_empty()),
            leeway_secs: 1,
        };
        let verdict = jwt_key()?.map(|key| jwt.verify(&key, &expected, now));
        let expired = jwt.is_expired(now, expected.leeway_secs);
        let exp = jwt.claims().expires_at();
        let signature = match &verdict {
            None => "not checked (set LMS_JWT_SECRET or LMS_JWT_JWKS)".to_owned(),
            Some(Ok(())) => "valid".to_owned(),
            Some(Err(e)) => format!("INVALID: {e}"),
        };
        let issuer = claim_check(
            expected.issuer.as_deref(),
            "LMS_JWT_ISSUER",
            &verdict,
            JwtError::WrongIssuer,
        );
        let audience = claim_check(
            expected.audience.as_deref(),
            "LMS_JWT_AUDIENCE",
            &verdict,
            JwtError::WrongAudience,
        );
        if self.json {
            self.print(
                &json!({
                    "algorithm": jwt.algorithm(),
                    "expires_at": exp,
                    "expired": expired,
                    "signature": match &verdict {
                        None => "not_checked",
                        Some(Ok(())) => "valid",
                        Some(Err(_)) => "invalid",
                    },
                    "issuer": issuer.0,
                    "audience": audience.0,
                    "claims": jwt.claims().0,
                })
                .to_string(),
            )?;
        } else {
            let mut rows = vec![
                ("algorithm", jwt.algorithm().unwrap_or("?").to_owned()),
                ("signature", signature),
                ("issuer", issuer.1),
                ("audience", audience.1),
                (
                    "expires",
                    exp.map_or_else(
                        || "never: the JWT has no expiry (no exp claim)".into(),
                        |e| in_words(e - now),
                    ),
                ),
            ];
            let claims = jwt.claims().rows();
            rows.extend(claims.iter().map(|(k, v)| (k.as_str(), v.clone())));
            self.print(&table(&rows))?;
        }
        match verdict {
            Some(Err(e)) => Err(e.to_string()),
            _ if expired => Err("the JWT has expired".into()),
            _ => Ok(()),
        }
    }

    fn api(&self, body: &Value) -> Result<(), String> {
        let text = if std::io::stdout().is_terminal() && !self.json {
            serde_json::to_string_pretty(body)
        } else {
            serde_json::to_string(body)
        };
        self.print(&text.map_err(|e| e.to_string())?)
    }
}

/// Whether `iss` or `aud` was checked, for `token inspect`: its JSON word and its line for people.
/// Unset expectations are said to be unchecked, so a valid signature is not read as more.
fn claim_check(
    expected: Option<&str>,
    variable: &str,
    verdict: &Option<Result<(), JwtError>>,
    wrong: JwtError,
) -> (&'static str, String) {
    match (expected, verdict) {
        (None, _) => ("not_checked", format!("not checked (set {variable})")),
        (Some(_), None) => (
            "not_checked",
            "not checked (no key to verify the JWT with)".into(),
        ),
        (Some(value), Some(Ok(()))) => ("valid", format!("{value} (as expected)")),
        (Some(value), Some(Err(e))) if *e == wrong => ("invalid", format!("INVALID: not {value}")),
        (Some(_), Some(Err(_))) => ("not_checked", "not checked (the JWT failed before)".into()),
    }
}

/// Two aligned columns.
fn table(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:width$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `in 59 minutes` or `expired 3 minutes ago`.
fn in_words(seconds: i64) -> String {
    let amount = |s: i64| match s {
        s if s < 120 => format!("{s} seconds"),
        s if s < 7200 => format!("{} minutes", s / 60),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    };
    if seconds > 0 {
        format!("in {}", amount(seconds))
    } else {
        format!("expired {} ago", amount(-seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_reads_in_words() {
        assert_eq!(in_words(3540), "in 59 minutes");
        assert_eq!(in_words(-180), "expired 3 minutes ago");
        assert_eq!(in_words(30), "in 30 seconds");
    }

    #[test]
    fn the_command_line_parses_every_recipe() {
        for args in [
            vec!["openedx", "token", "client-credentials", "--json"],
            vec!["openedx", "token", "password", "--username", "learner"],
            vec!["openedx", "token", "refresh", "--client-id", "mobile"],
            vec!["openedx", "token", "inspect", "a.b.c"],
            vec!["openedx", "token", "revoke", "--hint", "access-token"],
            vec!["openedx", "api", "GET", "/api/enrollment/v1/enrollment"],
        ] {
            Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        assert!(Cli::try_parse_from(["openedx", "token", "password"]).is_err());
    }
}
