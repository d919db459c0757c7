//! The SCRAM message grammar (RFC 5802 section 7, with Kafka's multi-letter extensions): parsing
//! the four messages and escaping user names. Parsers borrow from the message and allocate only
//! what they decode, all of it bounded by [`MAX_MESSAGE_BYTES`].

use crate::{AuthError, MAX_MESSAGE_BYTES};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

fn malformed(what: &str) -> AuthError {
    AuthError::Malformed(what.to_string())
}

/// The message as text, refusing oversize messages before looking at them and non-UTF-8 ones
/// (every SCRAM and PLAIN message is UTF-8).
pub(crate) fn message_text(message: &[u8]) -> Result<&str, AuthError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(AuthError::Malformed(format!(
            "the message is longer than {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    std::str::from_utf8(message).map_err(|_| malformed("the message is not UTF-8"))
}

/// A user name as SCRAM writes it (`saslname`): `,` as `=2C` and `=` as `=3D`.
pub(crate) fn encode_saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The user name a `saslname` stands for. Any `=` not starting `=2C` or `=3D` is malformed, as
/// are empty names and NULs.
pub(crate) fn decode_saslname(saslname: &str) -> Result<String, AuthError> {
    if saslname.is_empty() {
        return Err(malformed("the user name is empty"));
    }
    if saslname.contains('\0') {
        return Err(malformed("the user name contains NUL"));
    }
    let mut user = String::with_capacity(saslname.len());
    let mut rest = saslname;
    while let Some(at) = rest.find('=') {
        user.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => user.push(','),
            Some("=3D") => user.push('='),
            _ => return Err(malformed("the user name has an invalid '=' escape")),
        }
        rest = &rest[at + 3..];
    }
    user.push_str(rest);
    Ok(user)
}

/// `key=value` with the key one or more ASCII letters (RFC 5802 has one-letter keys; Kafka's
/// extensions, such as `tokenauth`, are longer) and the value possibly empty.
fn attribute(text: &str) -> Option<(&str, &str)> {
    let (key, value) = text.split_once('=')?;
    let key_ok = !key.is_empty() && key.bytes().all(|byte| byte.is_ascii_alphabetic());
    key_ok.then_some((key, value))
}

/// The value of attribute `key` in `text`, e.g. `r` in `r=abc`.
fn expect_attribute<'a>(text: Option<&'a str>, key: &str) -> Result<&'a str, AuthError> {
    match text.and_then(attribute) {
        Some((found, value)) if found == key => Ok(value),
        _ => Err(AuthError::Malformed(format!(
            "expected the '{key}=' attribute"
        ))),
    }
}

/// Checks an extension attribute after the mandatory ones: `key=value` with a non-empty value
/// without NUL. Returns the key and value.
fn extension(text: &str) -> Result<(&str, &str), AuthError> {
    match attribute(text) {
        Some((key, value)) if !value.is_empty() && !value.contains('\0') => Ok((key, value)),
        _ => Err(malformed("an extension attribute is not key=value")),
    }
}

/// A nonce: one or more printable ASCII characters other than `,`.
fn check_nonce(nonce: &str) -> Result<(), AuthError> {
    let printable = |byte: u8| (0x21..=0x7e).contains(&byte) && byte != b',';
    if nonce.is_empty() || !nonce.bytes().all(printable) {
        return Err(malformed("the nonce is empty or not printable"));
    }
    Ok(())
}

fn decode_base64(value: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    STANDARD
        .decode(value)
        .map_err(|_| AuthError::Malformed(format!("{what} is not base64")))
}

/// The client-first-message: `gs2-header client-first-message-bare`.
#[derive(Debug)]
pub(crate) struct ClientFirst<'a> {
    /// `n,,`, `y,,` or with an authzid equal to the user: what `c=` must encode later.
    pub(crate) gs2_header: &'a str,
    /// The message without the GS2 header, as it enters the AuthMessage.
    pub(crate) bare: &'a str,
    /// The user name, unescaped.
    pub(crate) user: String,
    pub(crate) nonce: &'a str,
    /// Whether the client asked to authenticate with a delegation token (`tokenauth=true`).
    pub(crate) token_auth: bool,
}

pub(crate) fn parse_client_first(text: &str) -> Result<ClientFirst<'_>, AuthError> {
    // gs2-header = gs2-cbind-flag "," [authzid] ","
    let (flag, after_flag) = text
        .split_once(',')
        .ok_or_else(|| malformed("no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        _ if flag.starts_with("p=") => {
            return Err(malformed("channel binding is not supported"));
        }
        _ => return Err(malformed("the GS2 channel-binding flag must be 'n' or 'y'")),
    }
    let (authzid, bare) = after_flag
        .split_once(',')
        .ok_or_else(|| malformed("the GS2 header is not terminated"))?;
    let gs2_header = &text[..text.len() - bare.len()];

    let mut attributes = bare.split(',');
    let first = attributes.next();
    if first.is_some_and(|text| text.starts_with("m=")) {
        return Err(malformed("mandatory extensions are not supported"));
    }
    let user = decode_saslname(expect_attribute(first, "n")?)?;
    let nonce = expect_attribute(attributes.next(), "r")?;
    check_nonce(nonce)?;

    // Kafka's clients send `tokenauth=true` to log in with a delegation token; Strata has none,
    // so that is refused outright rather than treated as a password login. Any other extension
    // is ignored, as Kafka's ScramSaslServer does, so a client sending extensions meant for other
    // brokers (e.g. from a newer Kafka) still logs in.
    let mut token_auth = false;
    for text in attributes {
        let (key, value) = extension(text)?;
        token_auth |= key == "tokenauth" && value.eq_ignore_ascii_case("true");
    }

    if !authzid.is_empty() {
        let authzid = authzid
            .strip_prefix("a=")
            .ok_or_else(|| malformed("the GS2 authzid must be 'a=name'"))?;
        // Acting as another user (proxy authorization) is not supported; naming oneself is
        // harmless and some clients do it.
        if decode_saslname(authzid)? != user {
            return Err(malformed(
                "an authorization identity other than the user is not supported",
            ));
        }
    }
    Ok(ClientFirst {
        gs2_header,
        bare,
        user,
        nonce,
        token_auth,
    })
}

/// The client-final-message: `c=binding,r=nonce[,extensions],p=proof`.
#[derive(Debug)]
pub(crate) struct ClientFinal<'a> {
    /// `c=` decoded: must equal the GS2 header (no channel binding data is supported).
    pub(crate) channel_binding: Vec<u8>,
    pub(crate) nonce: &'a str,
    /// `p=` decoded, checked to be one hash long.
    pub(crate) proof: Vec<u8>,
    /// Everything before `,p=`, as it enters the AuthMessage.
    pub(crate) without_proof: &'a str,
}

pub(crate) fn parse_client_final(
    text: &str,
    hash_len: usize,
) -> Result<ClientFinal<'_>, AuthError> {
    // The proof comes last; extension values cannot contain ',', so the last ',' starts it.
    let (without_proof, proof) = text
        .rsplit_once(',')
        .ok_or_else(|| malformed("the client-final-message has no proof"))?;
    let proof = expect_attribute(Some(proof), "p")?;
    let mut attributes = without_proof.split(',');
    let channel_binding = expect_attribute(attributes.next(), "c")?;
    let nonce = expect_attribute(attributes.next(), "r")?;
    check_nonce(nonce)?;
    for text in attributes {
        let (key, _) = extension(text)?;
        if key == "p" {
            return Err(malformed("the proof must come last, once"));
        }
    }
    let channel_binding = decode_base64(channel_binding, "the channel binding")?;
    let proof = decode_base64(proof, "the proof")?;
    if proof.len() != hash_len {
        return Err(malformed("the proof is not one hash long"));
    }
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

/// The server-first-message: `r=nonce,s=salt,i=iterations[,extensions]`.
#[derive(Debug)]
pub(crate) struct ServerFirst<'a> {
    pub(crate) nonce: &'a str,
    pub(crate) salt: Vec<u8>,
    pub(crate) iterations: u32,
}

pub(crate) fn parse_server_first(text: &str) -> Result<ServerFirst<'_>, AuthError> {
    let mut attributes = text.split(',');
    let first = attributes.next();
    if first.is_some_and(|text| text.starts_with("m=")) {
        return Err(malformed("mandatory extensions are not supported"));
    }
    let nonce = expect_attribute(first, "r")?;
    check_nonce(nonce)?;
    let salt = decode_base64(expect_attribute(attributes.next(), "s")?, "the salt")?;
    let iterations = expect_attribute(attributes.next(), "i")?;
    // `u32::from_str` would also take a leading '+'.
    let iterations = if iterations.bytes().all(|byte| byte.is_ascii_digit()) {
        iterations.parse().ok()
    } else {
        None
    }
    .ok_or_else(|| malformed("the iteration count is not a number"))?;
    for text in attributes {
        extension(text)?;
    }
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// The server-final-message: `v=signature` or `e=error`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ServerFinal {
    Verifier(Vec<u8>),
    Error,
}

pub(crate) fn parse_server_final(text: &str) -> Result<ServerFinal, AuthError> {
    let mut attributes = text.split(',');
    let first = attributes.next().and_then(attribute);
    let outcome = match first {
        Some(("v", signature)) => {
            ServerFinal::Verifier(decode_base64(signature, "the server signature")?)
        }
        Some(("e", _)) => ServerFinal::Error,
        _ => return Err(malformed("the server-final-message is neither v= nor e=")),
    };
    for text in attributes {
        extension(text)?;
    }
    Ok(outcome)
}
