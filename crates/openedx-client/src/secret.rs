//! A string that must never reach a log, an error page or `Debug` output.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Holds a token or similar credential. `Debug` prints `[redacted]`; there is no `Display`, so
/// formatting it into a message takes a deliberate call to [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send it (a header, a form field).
    ///
    /// ```
    /// use openedx_client::Secret;
    ///
    /// let secret = Secret::new("s3cret");
    /// assert_eq!(format!("{secret:?}"), "[redacted]");
    /// assert_eq!(secret.expose(), "s3cret");
    /// ```
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_value() {
        let secret = Secret::new("eyJhbGciOi.top.secret");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.expose(), "eyJhbGciOi.top.secret");
    }
}
