//! The environment as the settings read it ([`Vars`]): a variable set or not, a number in its
//! range, a yes/no, the app's own root URL. Each failure is a [`ConfigError`] naming the variable
//! and the fix. (The LMS's settings are the client crate's to read: `ClientConfig::from_vars`.)

use std::collections::HashMap;

use openedx_client::ConfigError;
use url::Url;

/// A value that is set but wrong, with how to make it right.
pub fn invalid(variable: &'static str, value: &str, fix: &str) -> ConfigError {
    ConfigError {
        variable,
        problem: format!("{value:?} is not valid; {fix}"),
    }
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

/// The variables, from the process environment or a test's map.
#[derive(Clone, Copy)]
pub struct Vars<'a>(pub &'a HashMap<String, String>);

impl<'a> Vars<'a> {
    /// A variable's value, trimmed; an empty value counts as unset.
    pub fn get(self, name: &str) -> Option<&'a str> {
        let value = self.0.get(name)?.trim();
        (!value.is_empty()).then_some(value)
    }

    /// A whole number within `range`, or its default when unset.
    pub fn number(self, range: &Range) -> Result<u64, ConfigError> {
        let Some(value) = self.get(range.variable) else {
            return Ok(range.default);
        };
        match value.parse::<u64>() {
            Ok(n) if (range.min..=range.max).contains(&n) => Ok(n),
            _ => Err(invalid(
                range.variable,
                value,
                &format!(
                    "use a whole number from {} to {} (default {})",
                    range.min, range.max, range.default
                ),
            )),
        }
    }

    /// A yes/no: `true`/`false` (or `1`/`0`, `yes`/`no`), `false` when unset.
    pub fn flag(self, name: &'static str) -> Result<bool, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(false);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(invalid(name, value, "use true or false")),
        }
    }

    /// `PUBLIC_URL` (or `fallback` when unset): the root of a host, over http or https. Every
    /// route, redirect and cookie path assumes the root: under a path they would all point past
    /// the app, so a path is refused, with the way out.
    pub fn public_url(self, fallback: String) -> Result<Url, ConfigError> {
        const NAME: &str = "PUBLIC_URL";
        let text = self.get(NAME).map_or(fallback, str::to_owned);
        let url = Url::parse(&text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                invalid(
                    NAME,
                    &text,
                    "use the app's address, e.g. https://profiles.example.org/",
                )
            })?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(NAME, &text, "remove the ?query or #fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not the value: it holds a password. It would ride in every redirect URI.
            return Err(ConfigError {
                variable: NAME,
                problem: "holds a user name or password; remove the user@ part".into(),
            });
        }
        let path = url.path().trim_end_matches('/');
        if !path.is_empty() {
            return Err(ConfigError {
                variable: NAME,
                problem: format!(
                    "{text:?} has a path ({path}/), but the app can only be served at the root of \
                     a host; give it a host of its own (e.g. https://profiles.example.org/) and \
                     set PUBLIC_URL to that"
                ),
            });
        }
        Ok(url)
    }
}
