//! SASL PLAIN (RFC 4616): the password itself, in the clear, so only ever over TLS.

use crate::AuthError;
use crate::grammar::message_text;

/// PLAIN (RFC 4616): `authzid NUL authcid NUL passwd` -> (user, password). The user and the
/// password must be non-empty; a non-empty authzid different from the user is refused, as Kafka's
/// PlainSaslServer refuses it, since acting as another user is not supported.
pub fn parse_plain(message: &[u8]) -> Result<(String, String), AuthError> {
    let text = message_text(message)?;
    let mut fields = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(AuthError::Malformed(
            "a PLAIN message is authzid, user and password separated by NUL".into(),
        ));
    };
    if user.is_empty() {
        return Err(AuthError::Malformed("the user name is empty".into()));
    }
    if password.is_empty() {
        return Err(AuthError::Malformed("the password is empty".into()));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthError::Malformed(
            "an authorization identity other than the user is not supported".into(),
        ));
    }
    Ok((user.to_string(), password.to_string()))
}
