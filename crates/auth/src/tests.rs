//! Tests that need the fixed-nonce hooks or the private grammar: the RFC 7677 vector, an
//! independently computed SCRAM-SHA-512 exchange, and the grammar's edge cases. The public API's
//! behaviour is tested in `tests/`.

use crate::grammar::{decode_saslname, encode_saslname, parse_client_first};
use crate::process_key::{UNKNOWN_USER_ITERATIONS, unknown_user_credential};
use crate::{AuthError, Mechanism, ScramClient, ScramCredential, ScramServer};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// RFC 7677 section 3.
mod rfc7677 {
    pub const USER: &str = "user";
    pub const PASSWORD: &str = "pencil";
    pub const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    pub const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    pub const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    pub const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    pub const SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                    s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    pub const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                    p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    pub const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
}

fn assert_malformed<T: std::fmt::Debug>(result: Result<T, AuthError>, input: &str) {
    assert!(
        matches!(result, Err(AuthError::Malformed(_))),
        "{input:?} should be malformed, got {result:?}"
    );
}

fn rfc7677_credential() -> ScramCredential {
    let salt = STANDARD.decode(rfc7677::SALT).unwrap();
    ScramCredential::from_password(Mechanism::ScramSha256, rfc7677::PASSWORD, &salt, 4096).unwrap()
}

#[test]
fn the_server_reproduces_the_rfc_7677_exchange() {
    let credential = rfc7677_credential();
    let mut server = ScramServer::with_server_nonce(Mechanism::ScramSha256, rfc7677::SERVER_NONCE);
    let server_first = server
        .client_first(rfc7677::CLIENT_FIRST.as_bytes(), |user| {
            assert_eq!(user, rfc7677::USER);
            Some(credential)
        })
        .unwrap();
    assert_eq!(
        String::from_utf8(server_first).unwrap(),
        rfc7677::SERVER_FIRST
    );
    let (server_final, user) = server
        .client_final(rfc7677::CLIENT_FINAL.as_bytes())
        .unwrap();
    assert_eq!(
        String::from_utf8(server_final).unwrap(),
        rfc7677::SERVER_FINAL
    );
    assert_eq!(user, rfc7677::USER);
}

#[test]
fn the_client_reproduces_the_rfc_7677_exchange() {
    let mut client = ScramClient::with_nonce(
        Mechanism::ScramSha256,
        rfc7677::USER,
        rfc7677::PASSWORD,
        rfc7677::CLIENT_NONCE,
    );
    assert_eq!(client.client_first(), rfc7677::CLIENT_FIRST.as_bytes());
    let client_final = client
        .client_final(rfc7677::SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(
        String::from_utf8(client_final).unwrap(),
        rfc7677::CLIENT_FINAL
    );
    client
        .verify_server_final(rfc7677::SERVER_FINAL.as_bytes())
        .unwrap();
}

/// A SCRAM-SHA-512 exchange computed independently of ring, with Python's hashlib and hmac:
///
/// ```python
/// import base64, hashlib, hmac
/// salt = b"strata-salt-512!"; it = 4096
/// sp = hashlib.pbkdf2_hmac("sha512", b"pencil", salt, it)
/// ck = hmac.new(sp, b"Client Key", "sha512").digest(); sk = hashlib.sha512(ck).digest()
/// svk = hmac.new(sp, b"Server Key", "sha512").digest()
/// sf = "r=clientNONCEserverNONCE,s=" + base64.b64encode(salt).decode() + ",i=4096"
/// am = ("n=user,r=clientNONCE," + sf + ",c=biws,r=clientNONCEserverNONCE").encode()
/// proof = bytes(a ^ b for a, b in zip(ck, hmac.new(sk, am, "sha512").digest()))
/// print(base64.b64encode(proof), base64.b64encode(hmac.new(svk, am, "sha512").digest()))
/// ```
mod independent_sha512 {
    pub const SALT: &[u8] = b"strata-salt-512!";
    pub const CLIENT_FIRST: &str = "n,,n=user,r=clientNONCE";
    pub const SERVER_FIRST: &str = "r=clientNONCEserverNONCE,s=c3RyYXRhLXNhbHQtNTEyIQ==,i=4096";
    pub const PROOF: &str =
        "h7IoeqdhMs9jny3UySI+tO/hZX7cfIiFlwkerRE1jGH5ba2Eyl0O2t2yuRHOIwA1w9lBow7aUAKtDTJoo9IOOw==";
    pub const SERVER_SIGNATURE: &str =
        "zmVDol51wl7waR0zKXhmkxzp25Wu52EuMvZE+u8AtgkdSIsLX39OKQGXdVxLcw5gg4XkqTCUvDnLo8ZUXoYIXg==";
}

#[test]
fn a_sha512_exchange_matches_an_independent_implementation() {
    use independent_sha512::*;
    let credential =
        ScramCredential::from_password(Mechanism::ScramSha512, "pencil", SALT, 4096).unwrap();
    let mut server = ScramServer::with_server_nonce(Mechanism::ScramSha512, "serverNONCE");
    let server_first = server
        .client_first(CLIENT_FIRST.as_bytes(), |_| Some(credential))
        .unwrap();
    assert_eq!(String::from_utf8(server_first).unwrap(), SERVER_FIRST);
    let client_final = format!("c=biws,r=clientNONCEserverNONCE,p={}", PROOF);
    let (server_final, _) = server.client_final(client_final.as_bytes()).unwrap();
    assert_eq!(
        String::from_utf8(server_final).unwrap(),
        format!("v={}", SERVER_SIGNATURE)
    );

    let mut client =
        ScramClient::with_nonce(Mechanism::ScramSha512, "user", "pencil", "clientNONCE");
    client.client_first();
    let ours = client.client_final(SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(ours).unwrap(), client_final);
}

#[test]
fn user_names_escape_commas_and_equals_signs() {
    for user in ["plain", "a,b", "a=b", "=2C", ",,==", "ünïcødé"] {
        assert_eq!(decode_saslname(&encode_saslname(user)).unwrap(), user);
    }
    assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
    for bad in ["a=2c", "a=", "a=3", "a=41", "", "a\0b", "=é"] {
        assert_malformed(decode_saslname(bad), bad);
    }
}

#[test]
fn the_gs2_header_takes_n_and_y_and_refuses_channel_binding_and_other_users() {
    let parsed = parse_client_first("y,,n=user,r=abc").unwrap();
    assert_eq!((parsed.gs2_header, parsed.bare), ("y,,", "n=user,r=abc"));
    let parsed = parse_client_first("n,a=us=2Cer,n=us=2Cer,r=abc").unwrap();
    assert_eq!(parsed.gs2_header, "n,a=us=2Cer,");
    assert_eq!(parsed.user, "us,er");
    for bad in [
        "p=tls-unique,,n=user,r=abc",
        "n,a=admin,n=user,r=abc",
        "n,x=user,n=user,r=abc",
        "N,,n=user,r=abc",
        ",,n=user,r=abc",
        "n,,m=x,n=user,r=abc",
        "n,,r=abc,n=user",
        "n,,n=user",
        "n,,n=user,r=",
        "n,,n=user,r=a b",
        "n,,n=user,r=abc,=x",
        "n,,n=user,r=abc,ext",
        "n,,n=user,r=abc,ext=",
        "n,,",
        "n,",
        "",
    ] {
        assert_malformed(parse_client_first(bad), bad);
    }
}

#[test]
fn extensions_are_ignored_except_delegation_tokens() {
    let parsed = parse_client_first("n,,n=user,r=abc,future=1,tokenauth=false").unwrap();
    assert!(!parsed.token_auth);
    assert!(
        parse_client_first("n,,n=user,r=abc,tokenauth=TRUE")
            .unwrap()
            .token_auth
    );
}

#[test]
fn an_unknown_users_stand_in_is_stable_per_name_and_looks_like_a_fresh_credential() {
    let first = unknown_user_credential(Mechanism::ScramSha512, "ghost");
    assert_eq!(
        first,
        unknown_user_credential(Mechanism::ScramSha512, "ghost")
    );
    assert_ne!(
        first.salt,
        unknown_user_credential(Mechanism::ScramSha512, "ghost2").salt
    );
    assert_ne!(
        first.salt,
        unknown_user_credential(Mechanism::ScramSha256, "ghost").salt
    );
    assert_eq!(first.salt.len(), crate::RANDOM_SALT_BYTES);
    assert_eq!(first.iterations, UNKNOWN_USER_ITERATIONS);
    first.validate().unwrap();
}
