//! Where the LMS is and who the client is to it: [`ClientConfig`], built in code
//! ([`ClientConfig::new`]) or read from the `LMS_*` variables ([`ClientConfig::from_vars`]), as
//! the `openedx` command and the profiles app do.

use std::{collections::HashMap, fmt, time::Duration};

use url::Url;

use crate::Secret;

/// How the client asks the LMS for its access token (`LMS_TOKEN_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenTypeRequest {
    /// Post `token_type=jwt`: the LMS answers with a JWT, sent back as `Authorization: JWT ...`.
    Jwt,
    /// Post nothing: the LMS answers with an opaque DOT token, sent back as `Authorization: Bearer ...`.
    Bearer,
}

/// Where the client id and secret go on the token request (`LMS_CLIENT_AUTH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic, as RFC 6749 §2.3.1 prefers; DOT accepts it.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// Scopes asked for unless told otherwise: `user_id` must be granted to the application
/// (`create_dot_application --scopes user_id`); the others every application may have.
pub const DEFAULT_SCOPES: &str = "user_id email profile";

/// Everything [`LmsClient::new`](crate::LmsClient::new) needs. Each field names the variable
/// [`from_vars`](Self::from_vars) reads it from.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `LMS_URL`: the LMS root as the browser reaches it, e.g. `http://local.openedx.io`. Ends in
    /// `/`.
    pub url: Url,
    /// `LMS_INTERNAL_URL`: the LMS root for server-to-server calls (token, APIs), e.g.
    /// `http://lms:8000` inside Tutor's network. Defaults to `url`.
    pub internal_url: Url,
    /// `LMS_CLIENT_ID`: the DOT application's client id.
    pub client_id: String,
    /// `LMS_CLIENT_SECRET`: the DOT application's client secret (its `Debug` is redacted).
    pub client_secret: Secret,
    /// `LMS_REDIRECT_URI`: the redirect URI registered with the application, sent with the
    /// authorization request and the code exchange. `None` leaves it out (the LMS then uses the only one registered).
    pub redirect_uri: Option<Url>,
    /// `LMS_SCOPES`: space-separated scopes to ask for.
    pub scopes: Vec<String>,
    /// `LMS_TOKEN_TYPE`: `jwt` or `bearer`.
    pub token_type: TokenTypeRequest,
    /// `LMS_CLIENT_AUTH`: `basic` or `post`.
    pub client_auth: ClientAuth,
    /// `LMS_TIMEOUT_SECS`: total time allowed for one call to the LMS (connecting gets at most
    /// half).
    pub timeout: Duration,
    /// The `User-Agent` of every call.
    pub user_agent: String,
}

/// A setting that cannot be used, worded for the person who set it.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable (or, for [`ClientConfig::new`], the argument's variable) at fault.
    pub variable: &'static str,
    /// What is wrong with it and how to fix it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl ClientConfig {
    /// A client of the LMS at `lms_url` (its root, as the browser reaches it) with the LMS's
    /// defaults: JWTs, HTTP Basic client authentication, the scopes `user_id email profile`,
    /// 10 seconds per call.
    pub fn new(
        lms_url: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let url = parse_root_url("LMS_URL", lms_url)?;
        Ok(Self {
            internal_url: url.clone(),
            url,
            client_id: client_id.into(),
            client_secret: Secret::new(client_secret),
            redirect_uri: None,
            scopes: DEFAULT_SCOPES.split(' ').map(str::to_owned).collect(),
            token_type: TokenTypeRequest::Jwt,
            client_auth: ClientAuth::Basic,
            timeout: Duration::from_secs(10),
            user_agent: concat!("openedx-client/", env!("CARGO_PKG_VERSION")).into(),
        })
    }

    /// Reads `LMS_URL`, `LMS_CLIENT_ID` and `LMS_CLIENT_SECRET` (required), and
    /// `LMS_REDIRECT_URI`, `LMS_INTERNAL_URL`, `LMS_SCOPES`, `LMS_TOKEN_TYPE`, `LMS_CLIENT_AUTH`, `LMS_TIMEOUT_SECS`
    /// from a map of variables (e.g. `std::env::vars().collect()`); an empty value counts as
    /// unset. The error names the variable and the fix.
    ///
    /// ```
    /// use std::collections::HashMap;
    ///
    /// use openedx_client::{ClientAuth, ClientConfig};
    ///
    /// let mut vars: HashMap<String, String> = [
    ///     ("LMS_URL", "http://local.openedx.io"),
    ///     ("LMS_INTERNAL_URL", "http://lms:8000"),
    ///     ("LMS_CLIENT_ID", "my-app"),
    ///     ("LMS_CLIENT_SECRET", "my-secret"),
    ///     ("LMS_CLIENT_AUTH", "post"),
    /// ]
    /// .into_iter()
    /// .map(|(k, v)| (k.to_owned(), v.to_owned()))
    /// .collect();
    /// let config = ClientConfig::from_vars(&vars).expect("valid");
    /// assert_eq!(config.internal_url.as_str(), "http://lms:8000/");
    /// assert_eq!(config.client_auth, ClientAuth::Post);
    ///
    /// vars.insert("LMS_SCOPES".into(), "openid profile".into());
    /// let error = ClientConfig::from_vars(&vars).expect_err("no OpenID Connect");
    /// assert_eq!(error.variable, "LMS_SCOPES");
    /// ```
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(vars, name);
        let required = |name: &'static str, example: &str| {
            get(name).ok_or_else(|| ConfigError {
                variable: name,
                problem: format!("is not set; set it, e.g. {name}={example}"),
            })
        };
        let lms_url = required("LMS_URL", "http://local.openedx.io")?;
        let mut config = Self::new(
            lms_url,
            required("LMS_CLIENT_ID", "profiles")?,
            required("LMS_CLIENT_SECRET", "<the secret you registered>")?,
        )?;
        if let Some(v) = get("LMS_REDIRECT_URI") {
            let fix = "use the absolute URL registered with the application, e.g. \
                       http://127.0.0.1:3000/callback";
            let uri = Url::parse(v).map_err(|_| invalid("LMS_REDIRECT_URI", v, fix))?;
            if !matches!(uri.scheme(), "http" | "https") || uri.fragment().is_some() {
                return Err(invalid("LMS_REDIRECT_URI", v, fix));
            }
            config.redirect_uri = Some(uri);
        }
        if let Some(v) = get("LMS_INTERNAL_URL") {
            config.internal_url = parse_root_url("LMS_INTERNAL_URL", v)?;
        }
        if let Some(v) = get("LMS_SCOPES") {
            config.scopes = parse_scopes(v)?;
        }
        config.token_type = match get("LMS_TOKEN_TYPE")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("jwt") => TokenTypeRequest::Jwt,
            Some("bearer") => TokenTypeRequest::Bearer,
            Some(other) => return Err(invalid("LMS_TOKEN_TYPE", other, "use jwt or bearer")),
        };
        config.client_auth = match get("LMS_CLIENT_AUTH")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("basic") => ClientAuth::Basic,
            Some("post") => ClientAuth::Post,
            Some(other) => return Err(invalid("LMS_CLIENT_AUTH", other, "use basic or post")),
        };
        if let Some(v) = get("LMS_TIMEOUT_SECS") {
            let (min, max, default) = (1, 300, 10);
            let secs = v
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "LMS_TIMEOUT_SECS",
                        v,
                        &format!("use a whole number from {min} to {max} (default {default})"),
                    )
                })?;
            config.timeout = Duration::from_secs(secs);
        }
        Ok(config)
    }
}

/// Joins a relative path onto a root URL that is known to end in `/`, keeping the root's own path
/// (an LMS served under `/lms/` keeps it).
pub(crate) fn join(root: &Url, path: &str) -> Url {
    let mut url = root.clone();
    let base = root.path().trim_end_matches('/');
    url.set_path(&format!("{base}/{path}"));
    url
}

/// A variable's value, with surrounding blanks trimmed; an empty value counts as unset.
pub(crate) fn lookup<'a>(vars: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The error for a value that does not parse: the variable, the value as given, and the fix.
pub(crate) fn invalid(variable: &'static str, value: &str, fix: &str) -> ConfigError {
    ConfigError {
        variable,
        problem: format!("{value:?} is not valid; {fix}"),
    }
}

/// An http(s) URL with no query or fragment, normalised to end in `/` so paths join predictably.
pub(crate) fn parse_root_url(variable: &'static str, value: &str) -> Result<Url, ConfigError> {
    let fix = "use an absolute http:// or https:// URL such as http://local.openedx.io";
    let mut url = Url::parse(value).map_err(|_| invalid(variable, value, fix))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(variable, value, fix));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(variable, value, "remove the ?query or #fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn parse_scopes(value: &str) -> Result<Vec<String>, ConfigError> {
    let scopes: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    if scopes.iter().any(|s| s == "openid") {
        return Err(invalid(
            "LMS_SCOPES",
            value,
            "Open edX has no OpenID Connect; drop openid (e.g. LMS_SCOPES=user_id email profile)",
        ));
    }
    if scopes.iter().any(|s| s.contains(',')) {
        return Err(invalid(
            "LMS_SCOPES",
            value,
            "separate scopes with spaces, not commas",
        ));
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
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
    fn defaults_are_the_lms_defaults() {
        let config = ClientConfig::from_vars(&vars(&[])).expect("valid");
        assert_eq!(config.internal_url, config.url);
        assert_eq!(config.scopes, ["user_id", "email", "profile"]);
        assert_eq!(config.token_type, TokenTypeRequest::Jwt);
        assert_eq!(config.client_auth, ClientAuth::Basic);
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert!(!format!("{config:?}").contains("s3cret-value"));
    }

    #[test]
    fn an_lms_url_with_a_path_keeps_it_when_endpoints_are_joined() {
        let config =
            ClientConfig::from_vars(&vars(&[("LMS_URL", "https://example.org/lms")])).expect("ok");
        assert_eq!(
            join(&config.url, "oauth2/authorize/").as_str(),
            "https://example.org/lms/oauth2/authorize/"
        );
    }

    #[test]
    fn the_redirect_uri_is_read_when_set() {
        let config = ClientConfig::from_vars(&vars(&[])).expect("valid");
        assert_eq!(config.redirect_uri, None);
        let uri = "http://127.0.0.1:3000/callback";
        let config = ClientConfig::from_vars(&vars(&[("LMS_REDIRECT_URI", uri)])).expect("valid");
        assert_eq!(config.redirect_uri.map(String::from).as_deref(), Some(uri));
    }

    #[test]
    fn a_missing_variable_is_named_with_an_example_and_no_file_the_app_lacks() {
        let mut map = vars(&[]);
        map.remove("LMS_CLIENT_SECRET");
        let err = ClientConfig::from_vars(&map).expect_err("required");
        assert_eq!(err.variable, "LMS_CLIENT_SECRET");
        assert!(!err.problem.contains(".env.example"), "{}", err.problem);
    }

    #[test]
    fn malformed_values_are_rejected_with_the_variable_named() {
        for (var, value) in [
            ("LMS_URL", "local.openedx.io"),
            ("LMS_URL", "ftp://lms"),
            ("LMS_INTERNAL_URL", "http://lms/?x=1"),
            ("LMS_TOKEN_TYPE", "jwe"),
            ("LMS_CLIENT_AUTH", "header"),
            ("LMS_SCOPES", "openid profile"),
            ("LMS_SCOPES", "user_id,email"),
            ("LMS_TIMEOUT_SECS", "0"),
            ("LMS_TIMEOUT_SECS", "18446744073709551615"),
            ("LMS_REDIRECT_URI", "/callback"),
            ("LMS_REDIRECT_URI", "ftp://app/callback"),
        ] {
            let err = ClientConfig::from_vars(&vars(&[(var, value)])).expect_err(var);
            assert_eq!(err.variable, var, "{value}");
        }
    }
}
