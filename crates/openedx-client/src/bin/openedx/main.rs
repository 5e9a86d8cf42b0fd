//! `openedx`: the Open edX token recipes and API calls from a shell, on the same client an app
//! uses. Settings come from the environment and `.env` (`LMS_URL`, `LMS_CLIENT_ID`,
//! `LMS_CLIENT_SECRET`, `LMS_PUBLIC_CLIENT_ID`, `LMS_JWT_*`...), and each command reads only the
//! ones it needs (`token inspect` none: it is offline). `--json` makes output, and errors,
//! machine-readable; an error is one line on stderr and an exit code that says what kind it is
//! ([`Failure`]).

use std::{
    collections::HashMap,
    io::{BufRead, IsTerminal, Write},
    process::ExitCode,
    time::Duration,
};

use clap::{Parser, Subcommand, ValueEnum};
use openedx_client::{
    ClientConfig, ClientCredentialsAuthorizer, Expected, Jwt, JwtError, JwtKey, LmsClient,
    LmsError, Secret, Token, TokenHint, check_api_path, unix_now,
};
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

/// What `--help` says after the options: where settings come from, and what exit codes mean.
const AFTER_HELP: &str = "\
Environment (or a .env file in the current directory); each command reads only what it needs:
  LMS_URL               the LMS root as browsers reach it, e.g. http://local.openedx.io
  LMS_INTERNAL_URL      the LMS root for server-to-server calls (default: LMS_URL)
  LMS_CLIENT_ID         the confidential application (client-credentials, refresh, revoke, api)
  LMS_CLIENT_SECRET     its secret (never an argument)
  LMS_PUBLIC_CLIENT_ID  the public application of the password grant (or --client-id); without
                        LMS_CLIENT_SECRET, LMS_CLIENT_ID is taken for a public client
  LMS_SCOPES, LMS_TOKEN_TYPE, LMS_CLIENT_AUTH, LMS_TIMEOUT_SECS
                        what to ask for, and how (see the crate's README)
  LMS_JWT_SECRET        token inspect: the HS256 key (JWT_SECRET_KEY)
  LMS_JWT_JWKS          token inspect: the RS512 public JWK set, inline or a file's path
  LMS_JWT_ISSUER, LMS_JWT_AUDIENCE
                        token inspect: the expected iss and aud
  RUST_LOG              log filter for stderr (default: warn)

Exit codes:
  0  done
  1  anything else (stdin or stdout unusable...)
  2  usage: a wrong argument or setting
  3  the LMS refused (an OAuth error such as invalid_client, or an API's 401/403)
  4  the LMS could not be reached, did not answer in time, or answered unusably
  5  token inspect: the JWT is not valid (signature, expiry, issuer, audience)";

#[derive(Debug, Parser)]
#[command(
    name = "openedx",
    version,
    about = "The Open edX LMS token recipes and API calls",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Print JSON instead of text (for scripts), errors included.
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

/// Why a command failed, by kind: each kind has its exit code, documented in `--help`.
#[derive(Debug)]
struct Failure {
    kind: Kind,
    message: String,
    /// What to try, when the failure has a likely cause.
    hint: Option<String>,
    /// The LMS's OAuth error code, for scripts that branch on it.
    oauth_error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Other,
    Usage,
    Refused,
    Unreachable,
    Invalid,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Self::Other => 1,
            Self::Usage => 2,
            Self::Refused => 3,
            Self::Unreachable => 4,
            Self::Invalid => 5,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Other => "other",
            Self::Usage => "usage",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::Invalid => "invalid",
        }
    }
}

impl Failure {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            oauth_error: None,
        }
    }

    fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    fn other(message: impl Into<String>) -> Self {
        Self::new(Kind::Other, message)
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An LMS error, by what happened, with a hint when `invalid_client` has a likely cause.
    fn lms(error: LmsError, invalid_client_hint: &str) -> Self {
        let kind = match &error {
            LmsError::OAuth { .. } | LmsError::Rejected { .. } => Kind::Refused,
            LmsError::NotAnLmsPath { .. } => Kind::Usage,
            LmsError::Unreachable { .. }
            | LmsError::Timeout { .. }
            | LmsError::Interrupted { .. }
            | LmsError::Status { .. }
            | LmsError::Garbage { .. } => Kind::Unreachable,
        };
        let mut failure = Self::new(kind, error.to_string());
        if let LmsError::OAuth { error, .. } = &error {
            if error == "invalid_client" {
                failure.hint = Some(invalid_client_hint.to_owned());
            }
            failure.oauth_error = Some(error.clone());
        }
        if let LmsError::Unreachable { .. } = &error {
            failure.hint = Some("is LMS_URL (or LMS_INTERNAL_URL) right, and the LMS up?".into());
        }
        failure
    }
}

impl From<JwtError> for Failure {
    fn from(error: JwtError) -> Self {
        Self::new(Kind::Invalid, error.to_string())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Parsed by hand so that `--json` also shapes usage errors.
    let json = std::env::args().any(|a| a == "--json");
    let result = match Cli::try_parse() {
        Err(e) if !e.use_stderr() => {
            // --help and --version: printed to stdout, a success.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => Err(Failure::usage(e.to_string().trim_end().to_owned())),
        Ok(cli) => match load_dotenv().and_then(|()| init_logging()) {
            Err(failure) => Err(failure),
            Ok(()) => run(cli.command, cli.json).await,
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let line = if json {
                json!({ "error": {
                    "kind": failure.kind.name(),
                    "exit_code": failure.kind.code(),
                    "message": failure.message,
                    "oauth_error": failure.oauth_error,
                    "hint": failure.hint,
                }})
                .to_string()
            } else {
                match &failure.hint {
                    Some(hint) => format!("openedx: {}\nhint: {hint}", failure.message),
                    None => format!("openedx: {}", failure.message),
                }
            };
            // Not eprintln!, which panics when stderr is a closed pipe: the exit code still tells.
            let _ = writeln!(std::io::stderr(), "{line}");
            ExitCode::from(failure.kind.code())
        }
    }
}

/// `.env` first, so that `RUST_LOG` in it applies to logging too. A missing `.env` is normal; a
/// broken one is not.
fn load_dotenv() -> Result<(), Failure> {
    match dotenvy::dotenv() {
        Err(e) if !e.not_found() => Err(Failure::usage(format!(
            ".env: could not be read ({e}); fix the line it names or remove it"
        ))),
        _ => Ok(()),
    }
}

/// Logs go to stderr, stdout being for results; `RUST_LOG` filters (default: warnings only).
fn init_logging() -> Result<(), Failure> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| Failure::other(format!("cannot set up logging: {e}")))
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
    /// from a prompt, or from stdin when it is not a terminal; never from an argument. Needs
    /// LMS_URL and the public client, not LMS_CLIENT_SECRET.
    Password {
        /// The learner's username or email.
        #[arg(long)]
        username: String,
        /// The public client's id (default: LMS_PUBLIC_CLIENT_ID, else LMS_CLIENT_ID when
        /// LMS_CLIENT_SECRET is not set).
        #[arg(long)]
        client_id: Option<String>,
    },
    /// Trade a refresh token (read from stdin or a prompt) for a new token; keep the new refresh
    /// token, the old one is spent.
    Refresh {
        /// The public client that got the token (password grant); default: this application
        /// (LMS_CLIENT_ID and LMS_CLIENT_SECRET), or LMS_PUBLIC_CLIENT_ID when no secret is set.
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
        /// What the token is.
        #[arg(long, value_enum, default_value = "refresh-token")]
        hint: Hint,
        /// The public client the token was issued to (password grant); default as for refresh.
        #[arg(long)]
        client_id: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Hint {
    AccessToken,
    RefreshToken,
}

/// Hints for `invalid_client`, by who the client was.
const CONFIDENTIAL_HINT: &str = "check LMS_CLIENT_ID and LMS_CLIENT_SECRET against the \
    application registered in the LMS; a token from the password grant belongs to its public \
    client: pass --client-id ID or set LMS_PUBLIC_CLIENT_ID";
const PUBLIC_HINT: &str = "is the client id that of a public application (create_dot_application \
    --public) with this grant? A confidential one needs LMS_CLIENT_ID and LMS_CLIENT_SECRET \
    instead of --client-id";

/// The settings of the environment, read once.
struct Settings(HashMap<String, String>);

impl Settings {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A client as the confidential application: LMS_URL, LMS_CLIENT_ID, LMS_CLIENT_SECRET.
    fn confidential(&self) -> Result<LmsClient, Failure> {
        client(&self.0)
    }

    /// A client that only talks as a public application: LMS_URL, and no secret needed. The
    /// confidential id and secret are never sent by the public-client calls.
    fn public(&self) -> Result<LmsClient, Failure> {
        let mut vars = self.0.clone();
        vars.insert("LMS_CLIENT_ID".into(), "public-client".into());
        vars.insert(
            "LMS_CLIENT_SECRET".into(),
            "not-used-by-public-clients".into(),
        );
        client(&vars)
    }

    /// The public client a command talks as, if any: the flag, else LMS_PUBLIC_CLIENT_ID, else
    /// LMS_CLIENT_ID when no secret is set (a public application's settings, as the stand-in
    /// prints them for one).
    fn public_client_id(&self, flag: Option<String>) -> Option<String> {
        flag.filter(|id| !id.trim().is_empty())
            .or_else(|| self.get("LMS_PUBLIC_CLIENT_ID").map(str::to_owned))
            .or_else(|| {
                self.get("LMS_CLIENT_SECRET")
                    .is_none()
                    .then(|| self.get("LMS_CLIENT_ID").map(str::to_owned))
                    .flatten()
            })
    }

    /// For refresh and revoke: the flag's public client, or the confidential application when
    /// its secret is set, or else the public client of the environment.
    fn refresh_client_id(&self, flag: Option<String>) -> Option<String> {
        if flag.is_some() || self.get("LMS_CLIENT_SECRET").is_none() {
            self.public_client_id(flag)
        } else {
            None
        }
    }
}

fn client(vars: &HashMap<String, String>) -> Result<LmsClient, Failure> {
    let mut config = ClientConfig::from_vars(vars).map_err(|e| Failure::usage(e.to_string()))?;
    config.user_agent = concat!("openedx/", env!("CARGO_PKG_VERSION")).into();
    LmsClient::new(config).map_err(|e| Failure::other(e.to_string()))
}

/// Runs a `token` or `api` command, reading only the settings it needs.
async fn run(command: Command, json_output: bool) -> Result<(), Failure> {
    let settings = Settings(std::env::vars().collect());
    let out = Output { json: json_output };
    match command {
        Command::Token(TokenCommand::ClientCredentials { asymmetric }) => {
            let client = settings.confidential()?;
            let client = if asymmetric {
                client.asymmetric()
            } else {
                client
            };
            let token = client
                .client_credentials()
                .await
                .map_err(|e| Failure::lms(e, CONFIDENTIAL_HINT))?;
            out.token(&token)
        }
        Command::Token(TokenCommand::Password {
            username,
            client_id,
        }) => {
            let client_id = settings.public_client_id(client_id).ok_or_else(|| {
                Failure::usage("no public client: pass --client-id ID or set LMS_PUBLIC_CLIENT_ID")
                    .hint("the password grant goes through a public application, as the mobile apps do")
            })?;
            let client = settings.public()?;
            let password = read_secret("Password: ")?;
            let token = client
                .password(&client_id, &username, &password)
                .await
                .map_err(|e| Failure::lms(e, PUBLIC_HINT))?;
            out.token(&token)
        }
        Command::Token(TokenCommand::Refresh { client_id }) => {
            let public = settings.refresh_client_id(client_id);
            let client = match public {
                Some(_) => settings.public()?,
                None => settings.confidential()?,
            };
            let refresh = read_secret("Refresh token: ")?;
            let hint = if public.is_some() {
                PUBLIC_HINT
            } else {
                CONFIDENTIAL_HINT
            };
            let token = client
                .refresh_token(&refresh, public.as_deref())
                .await
                .map_err(|e| {
                    let failure = Failure::lms(e, hint);
                    // The LMS says no more than invalid_grant: name the usual causes.
                    if failure.oauth_error.as_deref() == Some("invalid_grant") {
                        failure.hint(
                            "the refresh token was spent (each is single use: keep the newest), \
                             revoked or expired, or belongs to another client (a password-grant \
                             token is refreshed by its public client: --client-id ID)",
                        )
                    } else {
                        failure
                    }
                })?;
            out.token(&token)
        }
        Command::Token(TokenCommand::Inspect { jwt }) => {
            let raw = match jwt {
                Some(jwt) => Secret::new(jwt),
                None => read_secret("JWT: ")?,
            };
            out.inspect(&raw, &settings)
        }
        Command::Token(TokenCommand::Revoke { hint, client_id }) => {
            let public = settings.refresh_client_id(client_id);
            let client = match public {
                Some(_) => settings.public()?,
                None => settings.confidential()?,
            };
            let token = read_secret("Token: ")?;
            let hint = match hint {
                Hint::AccessToken => TokenHint::AccessToken,
                Hint::RefreshToken => TokenHint::RefreshToken,
            };
            let invalid_client = if public.is_some() {
                PUBLIC_HINT
            } else {
                CONFIDENTIAL_HINT
            };
            client
                .revoke_token(&token, hint, public.as_deref())
                .await
                .map_err(|e| Failure::lms(e, invalid_client))?;
            out.line("revoked", json!({ "revoked": true }))
        }
        Command::Api { method, path } => {
            if !method.eq_ignore_ascii_case("get") {
                return Err(Failure::usage(format!("{method}: only GET is supported")));
            }
            // Before any token is asked for: the mistake is in the argument, not at the LMS.
            check_api_path(&path).map_err(|problem| {
                Failure::usage(format!("{path:?} is not a path on the LMS: {problem}"))
            })?;
            let authorizer =
                ClientCredentialsAuthorizer::new(settings.confidential()?, Duration::from_secs(60));
            let body = authorizer
                .get(&path)
                .await
                .map_err(|e| Failure::lms(e, CONFIDENTIAL_HINT))?;
            out.api(&body)
        }
    }
}

/// A secret from a hidden prompt when stdin is a terminal, else the first line of stdin.
fn read_secret(prompt: &str) -> Result<Secret, Failure> {
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)
            .map_err(|e| Failure::other(format!("cannot read from the terminal: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::other(format!("cannot read stdin: {e}")))?;
        line
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(Failure::usage(format!(
            "{} is empty",
            prompt.trim_end_matches([':', ' '])
        )));
    }
    Ok(Secret::new(value))
}

/// The key for `token inspect`, from the environment.
fn jwt_key(settings: &Settings) -> Result<Option<JwtKey>, Failure> {
    if let Some(secret) = settings.get("LMS_JWT_SECRET") {
        return Ok(Some(JwtKey::Hs256(Secret::new(secret))));
    }
    match settings.get("LMS_JWT_JWKS") {
        Some(value) => {
            // Inline JSON, or the path of a file that holds it.
            let json = if value.starts_with('{') {
                value.to_owned()
            } else {
                std::fs::read_to_string(value).map_err(|e| {
                    Failure::usage(format!("LMS_JWT_JWKS: cannot read {value:?}: {e}"))
                })?
            };
            JwtKey::from_jwk_set(&json)
                .map(Some)
                .map_err(|e| Failure::usage(format!("LMS_JWT_JWKS: {e}")))
        }
        None => Ok(None),
    }
}

struct Output {
    json: bool,
}

impl Output {
    fn print(&self, text: &str) -> Result<(), Failure> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}").map_err(|e| Failure::other(format!("cannot write: {e}")))
    }

    fn line(&self, text: &str, json: Value) -> Result<(), Failure> {
        if self.json {
            self.print(&json.to_string())
        } else {
            self.print(text)
        }
    }

    fn token(&self, token: &Token) -> Result<(), Failure> {
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

    fn inspect(&self, raw: &Secret, settings: &Settings) -> Result<(), Failure> {
        let jwt = Jwt::decode(raw.expose())?;
        let now = unix_now();
        let expected = Expected {
            issuer: settings.get("LMS_JWT_ISSUER").map(str::to_owned),
            audience: settings.get("LMS_JWT_AUDIENCE").map(str::to_owned),
            leeway_secs: 1,
        };
        let verdict = jwt_key(settings)?.map(|key| jwt.verify(&key, &expected, now));
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
            Some(Err(e)) => Err(e.into()),
            _ if expired => Err(JwtError::Expired.into()),
            _ => Ok(()),
        }
    }

    fn api(&self, body: &Value) -> Result<(), Failure> {
        let text = if std::io::stdout().is_terminal() && !self.json {
            serde_json::to_string_pretty(body)
        } else {
            serde_json::to_string(body)
        };
        self.print(&text.map_err(|e| Failure::other(e.to_string()))?)
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
