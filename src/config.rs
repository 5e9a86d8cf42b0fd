//! Settings, read once from the environment (and `.env`) and validated at start-up.
//!
//! Every field names the variable it comes from. A bad value stops start-up with one line that names
//! the variable and says how to fix it; `.env.example` documents each of them. `.env` itself is
//! loaded once, by `main`, before logging starts (its `RUST_LOG` applies too).

pub mod env;

use std::{collections::HashMap, net::SocketAddr, time::Duration};

pub use openedx_client::ConfigError;
use openedx_client::{ClientConfig, Secret};
use url::Url;

use self::env::{Range, Vars, invalid};
use crate::keys::KeyRing;

/// The whole configuration of the app.
#[derive(Clone, Debug)]
pub struct Config {
    /// The LMS and this app's registration there, read by the client crate: `LMS_URL` (as the
    /// browser reaches it), `LMS_INTERNAL_URL` (server to server), `LMS_CLIENT_ID`,
    /// `LMS_CLIENT_SECRET`, `LMS_SCOPES`, `LMS_TOKEN_TYPE`, `LMS_CLIENT_AUTH`, `LMS_TIMEOUT_SECS`.
    /// Its redirect URI is `PUBLIC_URL/authorize/`.
    pub lms: ClientConfig,
    /// `PUBLIC_URL`: this app's external root; the redirect URI is `PUBLIC_URL/authorize/`.
    pub public_url: Url,
    /// `DATABASE_URL`: where sessions, tokens and the `profiles` table live: SQLite (the default),
    /// PostgreSQL or MySQL/MariaDB. Redacted in `Debug`: a URL may carry a password.
    pub database_url: Secret,
    /// `BIND`: the address this app listens on.
    pub bind: SocketAddr,
    /// `SESSION_IDLE_MINUTES`: a session not used for this long ends.
    pub session_idle: Duration,
    /// `SESSION_MAX_MINUTES`: a sign-in ends this long after it began, however busy (OWASP's
    /// absolute timeout).
    pub session_max: Duration,
    /// `LMS_TOKEN_LEEWAY_SECS`: an access token this close to its expiry counts as expired, so
    /// clock skew and a slow call cannot make the LMS see it expired.
    pub token_leeway: Duration,
    /// `LMS_LOGOUT`: whether signing out also ends the LMS session (`{LMS_URL}/logout`).
    pub lms_logout: bool,
    /// `METRICS_BIND`: an internal address serving `/metrics` and the detailed `/readyz`.
    pub metrics_bind: Option<SocketAddr>,
    /// `SECRET_KEYS`: the keys that seal pending sign-in cookies and stored tokens, newest first.
    /// Unset on SQLite, a key is generated beside the database at first start
    /// (`<database>.key`, see `crate::store`); PostgreSQL and MySQL replicas must share one, so
    /// there it is required.
    pub secret_keys: Option<KeyRing>,
    /// `METRICS_PUBLIC`: also serve `/metrics` beside the pages. Off by default: the counters
    /// describe the traffic, which is nobody's business outside the monitoring network.
    pub metrics_public: bool,
    /// `REVOCATION_RETRY_MAX_SECS`: the longest wait between two tries of a revocation the LMS
    /// did not confirm (the waits double from 5 s up to this).
    pub revocation_retry_max: Duration,
    /// `DATABASE_TIMEOUT_MS`: how long one query may take, connection and answer together (and a
    /// probe of the database), before the request answers 503.
    pub database_timeout: Duration,
    /// How long a client may hold a connection without using it, and how many it may hold:
    /// `HTTP_HEADER_READ_TIMEOUT_SECS`, `HTTP_IDLE_TIMEOUT_SECS`, `HTTP_MAX_CONNECTIONS`.
    pub http: HttpLimits,
}

/// The limits on connections to `BIND` (and, each on its own, to `METRICS_BIND`), so a slow or
/// idle client cannot hold the app's connections, tasks and file descriptors for ever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// `HTTP_HEADER_READ_TIMEOUT_SECS`: a request's line and headers must all arrive within this
    /// time of its first byte (on a new connection, of the connection's start); a client that
    /// trickles them in (slowloris) is cut off.
    pub header_read_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT_SECS`: a kept-alive connection is closed after this long without a next
    /// request.
    pub idle_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`: connections open at once; further ones wait in the listen queue
    /// (and connections idle between requests are closed to make room). Over HTTP/1.1 a
    /// connection carries one request at a time, so this bounds requests in progress too.
    pub max_connections: usize,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/profiles.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

impl Config {
    /// Reads the process environment (with `.env` already applied by `main`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Builds the configuration from a map of variables (so tests need not touch the process env).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let env = Vars(vars);
        let get = |name: &str| env.get(name);

        // The client crate's messages are for any app; this one has a `.env.example` to point at.
        let mut lms = ClientConfig::from_vars(vars).map_err(|e| ConfigError {
            problem: format!("{} (see .env.example)", e.problem),
            ..e
        })?;
        lms.user_agent = concat!("profiles/", env!("CARGO_PKG_VERSION")).into();
        let bind_text = get("BIND").unwrap_or(DEFAULT_BIND);
        let bind: SocketAddr = bind_text.parse().map_err(|_| ConfigError {
            variable: "BIND",
            problem: format!("{bind_text:?} is not an address:port; use e.g. BIND=127.0.0.1:8080"),
        })?;
        let public_url = env.public_url(format!("http://{bind}/"))?;
        let session_idle = Duration::from_secs(60 * env.number(&SESSION_IDLE_MINUTES)?);
        let session_max = Duration::from_secs(60 * env.number(&SESSION_MAX_MINUTES)?);
        let token_leeway = Duration::from_secs(env.number(&LMS_TOKEN_LEEWAY_SECS)?);
        let lms_logout = env.flag("LMS_LOGOUT")?;
        let metrics_bind = get("METRICS_BIND")
            .map(|v| {
                v.parse::<SocketAddr>().map_err(|_| {
                    invalid("METRICS_BIND", v, "use an address:port, e.g. 0.0.0.0:9090")
                })
            })
            .transpose()?;
        let metrics_public = env.flag("METRICS_PUBLIC")?;
        let revocation_retry_max = Duration::from_secs(env.number(&REVOCATION_RETRY_MAX_SECS)?);
        let database_timeout = Duration::from_millis(env.number(&DATABASE_TIMEOUT_MS)?);
        let http = HttpLimits {
            header_read_timeout: Duration::from_secs(env.number(&HTTP_HEADER_READ_TIMEOUT_SECS)?),
            idle_timeout: Duration::from_secs(env.number(&HTTP_IDLE_TIMEOUT_SECS)?),
            // At most 100 000: it fits every usize.
            max_connections: usize::try_from(env.number(&HTTP_MAX_CONNECTIONS)?)
                .unwrap_or(usize::MAX),
        };
        let database_url = get("DATABASE_URL")
            .unwrap_or(DEFAULT_DATABASE_URL)
            .to_owned();
        let known = [
            "sqlite:",
            "postgres://",
            "postgresql://",
            "mysql://",
            "mariadb://",
        ];
        if !known.iter().any(|scheme| database_url.starts_with(scheme)) {
            return Err(ConfigError {
                variable: "DATABASE_URL",
                // Not the value: a database URL may carry a password.
                problem: "is not a sqlite:, postgres:// or mysql:// URL; use e.g. \
                          sqlite://data/profiles.db, postgres://user@host/profiles or \
                          mysql://user:password@host:3306/profiles"
                    .into(),
            });
        }

        let secret_keys = get("SECRET_KEYS")
            .map(|list| {
                KeyRing::parse(list).map_err(|problem| ConfigError {
                    variable: "SECRET_KEYS",
                    problem: format!(
                        "{problem}; generate one with `openssl rand -base64 32` and list keys \
                         newest first, separated by commas"
                    ),
                })
            })
            .transpose()?;
        if secret_keys.is_none() && !database_url.starts_with("sqlite:") {
            return Err(ConfigError {
                variable: "SECRET_KEYS",
                problem: "is not set, and on PostgreSQL or MySQL every replica must seal and \
                          open sessions with the same key; generate one with `openssl rand \
                          -base64 32` and set the same SECRET_KEYS on every replica"
                    .into(),
            });
        }

        // Always from `PUBLIC_URL`, never from a request's `Host`: the LMS compares it letter for
        // letter with the registered one.
        lms.redirect_uri = Some(at(&public_url, "/authorize/"));
        Ok(Self {
            lms,
            public_url,
            database_url: Secret::new(database_url),
            bind,
            session_idle,
            session_max,
            token_leeway,
            lms_logout,
            metrics_bind,
            secret_keys,
            metrics_public,
            revocation_retry_max,
            database_timeout,
            http,
        })
    }

    /// The LMS's name on pages: its browser-facing host.
    pub fn lms_name(&self) -> &str {
        self.lms.url.host_str().unwrap_or("the LMS")
    }

    /// Where the LMS sends the browser after its own logout. It must be part of a registered
    /// redirect URI of the app for the LMS to honour it (`openedx_client::wire`, logout).
    pub fn after_lms_logout_url(&self) -> Url {
        at(&self.public_url, "/signed-out/")
    }

    /// What is allowed but risky, for the log at start. A plain-http `PUBLIC_URL` off this machine
    /// cannot use `__Host-` cookies (browsers require `Secure` for them), so a neighbouring
    /// subdomain can plant a session or pending-sign-in cookie, and everything crosses the
    /// network in clear.
    pub fn warnings(&self) -> Vec<String> {
        let loopback = match self.public_url.host() {
            Some(url::Host::Domain(name)) => name == "localhost" || name.ends_with(".localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if self.public_url.scheme() == "http" && !loopback {
            return vec![format!(
                "PUBLIC_URL is plain http on a host other than this machine ({}): cookies cannot \
                 be __Host- or Secure, so a sibling subdomain can plant a session or sign-in \
                 cookie, and tokens' pages cross the network in clear; serve the app over https \
                 and set PUBLIC_URL to the https:// address",
                self.public_url.host_str().unwrap_or("?")
            )];
        }
        Vec::new()
    }

    /// Whether cookies must be `Secure` (and may carry the `__Host-` prefix).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// The app's page at `path`.
fn at(public_url: &Url, path: &str) -> Url {
    let mut url = public_url.clone();
    url.set_path(path);
    url
}

const SESSION_IDLE_MINUTES: Range = Range {
    variable: "SESSION_IDLE_MINUTES",
    min: 1,
    max: 60 * 24 * 366,
    default: 480,
};
const SESSION_MAX_MINUTES: Range = Range {
    variable: "SESSION_MAX_MINUTES",
    min: 1,
    max: 60 * 24 * 366,
    default: 1440,
};
/// A JWT lives an hour: a leeway of an hour or more would refresh it on every request.
const LMS_TOKEN_LEEWAY_SECS: Range = Range {
    variable: "LMS_TOKEN_LEEWAY_SECS",
    min: 0,
    max: 1800,
    default: 60,
};
/// From seconds (an LMS back within a minute is retried at once) to a day.
const REVOCATION_RETRY_MAX_SECS: Range = Range {
    variable: "REVOCATION_RETRY_MAX_SECS",
    min: 1,
    max: 86_400,
    default: 300,
};
/// Below a second, so a database outage answers before a browser or a probe gives up; long
/// enough for a busy pool to hand over a connection.
const DATABASE_TIMEOUT_MS: Range = Range {
    variable: "DATABASE_TIMEOUT_MS",
    min: 50,
    max: 30_000,
    default: 800,
};

/// Long enough for a person typing a request by hand; a browser or proxy sends its head at once.
const HTTP_HEADER_READ_TIMEOUT_SECS: Range = Range {
    variable: "HTTP_HEADER_READ_TIMEOUT_SECS",
    min: 1,
    max: 300,
    default: 10,
};
/// Above the time the proxies in front keep an idle connection to the app (Caddy, as the Tutor
/// plugin runs it: 2 minutes; nginx's upstream keepalive and AWS load balancers: 60 s), so the
/// app never closes one just as the proxy sends a request on it. Idle connections are closed
/// early when `HTTP_MAX_CONNECTIONS` is reached, so a long wait costs no room.
const HTTP_IDLE_TIMEOUT_SECS: Range = Range {
    variable: "HTTP_IDLE_TIMEOUT_SECS",
    min: 1,
    max: 3600,
    default: 180,
};
/// Below the 1024 open files a process may have by default on many systems (`ulimit -n`, in
/// containers too), with room for the database's and the LMS's connections.
const HTTP_MAX_CONNECTIONS: Range = Range {
    variable: "HTTP_MAX_CONNECTIONS",
    min: 1,
    max: 100_000,
    default: 512,
};

#[cfg(test)]
mod tests {
    use openedx_client::{ClientAuth, TokenTypeRequest};

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = [
            ("LMS_URL", "http://local.openedx.io"),
            ("LMS_CLIENT_ID", "profiles"),
            ("LMS_CLIENT_SECRET", "s3cret-value"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        map
    }

    #[test]
    fn defaults_follow_the_documented_values() {
        let config = Config::from_vars(&vars(&[])).expect("valid");
        assert_eq!(config.lms.internal_url, config.lms.url);
        assert_eq!(config.lms.scopes, ["user_id", "email", "profile"]);
        assert_eq!(config.lms.token_type, TokenTypeRequest::Jwt);
        assert_eq!(config.lms.client_auth, ClientAuth::Basic);
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.lms.redirect_uri.as_ref().expect("set").as_str(),
            "http://127.0.0.1:8080/authorize/"
        );
        assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        assert!(!config.secure_cookies());
        assert_eq!(
            config.http,
            HttpLimits {
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(180),
                max_connections: 512,
            }
        );
    }

    #[test]
    fn a_missing_client_id_names_the_variable_and_the_fix() {
        let mut map = vars(&[]);
        map.remove("LMS_CLIENT_ID");
        let err = Config::from_vars(&map).expect_err("must fail");
        assert_eq!(err.variable, "LMS_CLIENT_ID");
        assert_eq!(
            err.to_string(),
            "LMS_CLIENT_ID: is not set; set it, e.g. LMS_CLIENT_ID=profiles (see .env.example)"
        );
    }

    #[test]
    fn malformed_values_are_rejected_with_the_variable_named() {
        for (var, value) in [
            ("LMS_URL", "local.openedx.io"),
            ("LMS_URL", "ftp://lms"),
            ("PUBLIC_URL", "https://app.example/?x=1"),
            ("PUBLIC_URL", "https://user:pass@app.example/"),
            ("LMS_TOKEN_TYPE", "jwe"),
            ("LMS_CLIENT_AUTH", "header"),
            ("BIND", "8080"),
            ("LMS_SCOPES", "openid profile"),
            ("LMS_SCOPES", "user_id,email"),
            ("LMS_TIMEOUT_SECS", "0"),
            ("DATABASE_URL", "redis://db/profiles"),
            ("METRICS_PUBLIC", "maybe"),
        ] {
            let err = Config::from_vars(&vars(&[(var, value)])).expect_err(var);
            assert_eq!(err.variable, var, "{value}");
        }
    }

    #[test]
    fn an_lms_url_with_a_path_keeps_it_when_endpoints_are_joined() {
        let config = Config::from_vars(&vars(&[
            ("PUBLIC_URL", "https://apps.example.org"),
            ("LMS_URL", "https://example.org/lms"),
        ]))
        .expect("valid");
        assert_eq!(
            config.lms.redirect_uri.as_ref().expect("set").as_str(),
            "https://apps.example.org/authorize/"
        );
        let lms = openedx_client::LmsClient::new(config.lms.clone()).expect("client");
        let authorize = lms.authorize().url;
        assert!(
            authorize
                .as_str()
                .starts_with("https://example.org/lms/oauth2/authorize/?"),
            "{authorize}"
        );
        assert!(config.secure_cookies());
    }

    #[test]
    fn postgres_without_secret_keys_names_the_variable_and_how_to_make_one() {
        let err = Config::from_vars(&vars(&[("DATABASE_URL", "postgres://db/profiles")]))
            .expect_err("replicas must share a key");
        assert_eq!(err.variable, "SECRET_KEYS");
        assert!(err.problem.contains("openssl rand -base64 32"), "{err}");
        let key = KeyRing::generate_key();
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://db/profiles"),
            ("SECRET_KEYS", &key),
        ]))
        .expect("valid with a key");
        assert!(config.secret_keys.is_some());
        assert!(!format!("{config:?}").contains(&key));
    }

    #[test]
    fn a_short_secret_key_is_refused_at_start() {
        let err = Config::from_vars(&vars(&[("SECRET_KEYS", "c2hvcnQ=")])).expect_err("short");
        assert_eq!(err.variable, "SECRET_KEYS");
    }

    #[test]
    fn a_public_url_with_a_path_is_refused_with_the_fix() {
        for value in [
            "https://host.example/profiles/",
            "https://host.example/profiles",
        ] {
            let err = Config::from_vars(&vars(&[("PUBLIC_URL", value)])).expect_err(value);
            assert_eq!(err.variable, "PUBLIC_URL");
            let message = err.to_string();
            assert!(message.contains("/profiles/"), "{message}");
            assert!(message.contains("root"), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
        Config::from_vars(&vars(&[("PUBLIC_URL", "https://host.example/")])).expect("the root");
    }

    #[test]
    fn numeric_settings_out_of_range_are_refused_with_the_range() {
        for (var, value) in [
            ("LMS_TIMEOUT_SECS", "18446744073709551615"),
            ("LMS_TIMEOUT_SECS", "301"),
            ("SESSION_IDLE_MINUTES", "18446744073709551615"),
            ("SESSION_MAX_MINUTES", "307445734561825861"),
            ("SESSION_MAX_MINUTES", "0"),
            ("LMS_TOKEN_LEEWAY_SECS", "18446744073709551615"),
            ("LMS_TOKEN_LEEWAY_SECS", "-1"),
            ("HTTP_HEADER_READ_TIMEOUT_SECS", "0"),
            ("HTTP_HEADER_READ_TIMEOUT_SECS", "301"),
            ("HTTP_IDLE_TIMEOUT_SECS", "0"),
            ("HTTP_IDLE_TIMEOUT_SECS", "3601"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("HTTP_MAX_CONNECTIONS", "100001"),
            ("HTTP_MAX_CONNECTIONS", "1e3"),
        ] {
            let err = Config::from_vars(&vars(&[(var, value)])).expect_err(var);
            assert_eq!(err.variable, var, "{value}");
            assert!(err.problem.contains("from "), "{err}");
        }
        let config = Config::from_vars(&vars(&[
            ("LMS_TIMEOUT_SECS", "300"),
            ("LMS_TOKEN_LEEWAY_SECS", "0"),
            ("HTTP_HEADER_READ_TIMEOUT_SECS", "300"),
            ("HTTP_IDLE_TIMEOUT_SECS", "1"),
            ("HTTP_MAX_CONNECTIONS", "100000"),
        ]))
        .expect("the bounds themselves are valid");
        assert_eq!(config.lms.timeout, Duration::from_secs(300));
        assert_eq!(config.http.header_read_timeout, Duration::from_secs(300));
        assert_eq!(config.http.idle_timeout, Duration::from_secs(1));
        assert_eq!(config.http.max_connections, 100_000);
        let err = Config::from_vars(&vars(&[("HTTP_MAX_CONNECTIONS", "0")])).expect_err("zero");
        assert_eq!(
            err.to_string(),
            "HTTP_MAX_CONNECTIONS: \"0\" is not valid; use a whole number from 1 to 100000 \
             (default 512)"
        );
    }

    #[test]
    fn only_a_plain_http_public_url_off_this_machine_is_warned_about() {
        for (url, warned) in [
            ("http://profiles.example.org/", true),
            ("http://10.0.0.5:8080/", true),
            ("https://profiles.example.org/", false),
            ("http://127.0.0.1:8080/", false),
            ("http://localhost:8080/", false),
            ("http://[::1]:8080/", false),
        ] {
            let config = Config::from_vars(&vars(&[("PUBLIC_URL", url)])).expect(url);
            assert_eq!(!config.warnings().is_empty(), warned, "{url}");
        }
    }

    #[test]
    fn the_client_secret_never_shows_in_debug_output() {
        let config = Config::from_vars(&vars(&[])).expect("valid");
        assert!(!format!("{config:?}").contains("s3cret-value"));
    }
}
