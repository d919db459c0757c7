//! A user's name and password, sent with every call as `authorization: Basic` (see the broker's
//! `authentication` module). Send them over TLS: Basic credentials are readable by anyone who
//! sees the traffic.

use std::fmt;

use base64::Engine as _;
use tonic::metadata::AsciiMetadataValue;

/// Who the client authenticates as. `Debug` shows the user, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub(crate) fn authorization(&self) -> AsciiMetadataValue {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.user, self.password));
        AsciiMetadataValue::try_from(format!("Basic {encoded}"))
            .expect("base64 is ASCII and has no control characters")
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}
