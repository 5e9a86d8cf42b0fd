//! Reading one setting from the environment: set or not, a root URL, a number in its range, a
//! yes/no. Each failure is a [`ConfigError`] naming the variable and the fix.

use std::collections::HashMap;

use openedx_client::ConfigError;
use url::Url;

/// A variable's value, trimmed; an empty value counts as unset.
pub fn lookup<'a>(vars: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A value that is set but wrong, with how to make it right.
pub fn invalid(variable: &'static str, value: &str, fix: &str) -> ConfigError {
    ConfigError {
        variable,
        problem: format!("{value:?} is not valid; {fix}"),
    }
}

/// An absolute http(s) URL without query or fragment, its path ending in `/` so that
/// [`join`] keeps it.
pub fn root_url(variable: &'static str, value: &str) -> Result<Url, ConfigError> {
    let fix = "use an absolute http:// or https:// URL such as https://profiles.example.org/";
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

/// `path` under `root`, keeping `root`'s own path (`Url::join` would drop its last segment).
pub fn join(root: &Url, path: &str) -> Url {
    let mut url = root.clone();
    let base = root.path().trim_end_matches('/');
    url.set_path(&format!("{base}/{path}"));
    url
}

/// A numeric setting and the values it may take. The bounds keep every sum and product the app
/// makes of them (timeouts, expiry times) far from overflow, and refuse values that are surely
/// typing mistakes.
pub struct Range {
    pub variable: &'static str,
    pub min: u64,
    pub max: u64,
    pub default: u64,
}

impl Range {
    pub fn read(&self, vars: &HashMap<String, String>) -> Result<u64, ConfigError> {
        let Self {
            variable,
            min,
            max,
            default,
        } = *self;
        let Some(value) = lookup(vars, variable) else {
            return Ok(default);
        };
        value
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                let fix = format!("use a whole number from {min} to {max} (default {default})");
                invalid(variable, value, &fix)
            })
    }
}

/// A yes/no setting: `true`/`false` (or `1`/`0`, `yes`/`no`), `false` when unset.
pub fn flag(vars: &HashMap<String, String>, variable: &'static str) -> Result<bool, ConfigError> {
    match lookup(vars, variable)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(invalid(variable, other, "use true or false")),
    }
}
