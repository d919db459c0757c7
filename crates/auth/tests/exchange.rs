//! Whole SCRAM exchanges through the public API: the happy path for both mechanisms and every way
//! a client can get it wrong.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use strata_auth::{
    AuthError, MAX_MESSAGE_BYTES, MIN_ITERATIONS, Mechanism, ScramClient, ScramCredential,
    ScramServer, random_salt,
};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

fn credential(mechanism: Mechanism) -> ScramCredential {
    ScramCredential::from_password(mechanism, PASSWORD, &random_salt(), MIN_ITERATIONS).unwrap()
}

/// A lookup that knows `USER` only.
fn lookup(credential: &ScramCredential) -> impl FnOnce(&str) -> Option<ScramCredential> + '_ {
    move |user| (user == USER).then(|| credential.clone())
}

/// Runs the client's first two steps against a fresh server; returns the server (awaiting the
/// client-final-message), the client and the client-final-message.
fn start(
    mechanism: Mechanism,
    credential: &ScramCredential,
    user: &str,
    password: &str,
) -> (ScramServer, ScramClient, Vec<u8>) {
    let mut server = ScramServer::new(mechanism);
    let mut client = ScramClient::new(mechanism, user, password);
    let server_first = server
        .client_first(&client.client_first(), lookup(credential))
        .unwrap();
    let client_final = client.client_final(&server_first).unwrap();
    (server, client, client_final)
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn both_mechanisms_authenticate_and_the_client_verifies_the_server() {
    for mechanism in Mechanism::ALL {
        let credential = credential(mechanism);
        let (mut server, client, client_final) = start(mechanism, &credential, USER, PASSWORD);
        let (server_final, user) = server.client_final(&client_final).unwrap();
        assert_eq!(user, USER);
        assert!(text(&server_final).starts_with("v="));
        client.verify_server_final(&server_final).unwrap();
    }
}

#[test]
fn user_names_with_commas_and_equals_signs_round_trip() {
    let mechanism = Mechanism::ScramSha512;
    let credential = credential(mechanism);
    let name = "team=a,user=ü";
    let mut server = ScramServer::new(mechanism);
    let mut client = ScramClient::new(mechanism, name, PASSWORD);
    let client_first = client.client_first();
    assert!(text(&client_first).starts_with("n,,n=team=3Da=2Cuser=3Dü,r="));
    let server_first = server
        .client_first(&client_first, |user| {
            assert_eq!(user, name);
            Some(credential.clone())
        })
        .unwrap();
    let (_, user) = server
        .client_final(&client.client_final(&server_first).unwrap())
        .unwrap();
    assert_eq!(user, name);
}

#[test]
fn the_server_nonce_extends_the_clients_with_enough_fresh_randomness() {
    let credential = credential(Mechanism::ScramSha256);
    let client_first = b"n,,n=alice,r=client-nonce";
    let nonces: Vec<String> = (0..2)
        .map(|_| {
            let mut server = ScramServer::new(Mechanism::ScramSha256);
            let server_first = server
                .client_first(client_first, lookup(&credential))
                .unwrap();
            let nonce = text(&server_first)
                .strip_prefix("r=client-nonce")
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_string();
            assert!(STANDARD.decode(&nonce).unwrap().len() >= 18);
            nonce
        })
        .collect();
    assert_ne!(nonces[0], nonces[1]);
}

#[test]
fn a_wrong_password_fails_and_ends_the_exchange() {
    for mechanism in Mechanism::ALL {
        let credential = credential(mechanism);
        let (mut server, _, client_final) = start(mechanism, &credential, USER, "wrong");
        assert_eq!(server.client_final(&client_final), Err(AuthError::Failed));
        assert_eq!(
            server.client_final(&client_final),
            Err(AuthError::OutOfOrder)
        );
    }
}

#[test]
fn a_client_final_message_with_another_nonce_fails() {
    let mechanism = Mechanism::ScramSha512;
    let credential = credential(mechanism);
    // A correct client-final-message recorded from one exchange, replayed into another.
    let (_, _, recorded) = start(mechanism, &credential, USER, PASSWORD);
    let (mut server, _, _) = start(mechanism, &credential, USER, PASSWORD);
    assert_eq!(server.client_final(&recorded), Err(AuthError::Failed));

    // The nonce changed in flight (the proof no longer covers it either).
    assert_refused_when_tampered(mechanism, |client_final| {
        client_final.replacen(",r=", ",r=x", 1)
    });
}

/// Runs an exchange whose client-final-message `tamper` rewrites in flight: the server must
/// answer [`AuthError::Failed`].
fn assert_refused_when_tampered(mechanism: Mechanism, tamper: impl FnOnce(&str) -> String) {
    let credential = credential(mechanism);
    let (mut server, _, client_final) = start(mechanism, &credential, USER, PASSWORD);
    let tampered = tamper(text(&client_final));
    assert_eq!(
        server.client_final(tampered.as_bytes()),
        Err(AuthError::Failed),
        "{tampered}"
    );
}

#[test]
fn a_tampered_channel_binding_fails() {
    // `eSws` is base64 of `y,,`: a header other than the `n,,` the client sent.
    assert_refused_when_tampered(Mechanism::ScramSha512, |client_final| {
        client_final.replacen("c=biws", "c=eSws", 1)
    });
}

#[test]
fn a_tampered_proof_fails() {
    assert_refused_when_tampered(Mechanism::ScramSha256, |client_final| {
        let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
        let mut proof = STANDARD.decode(proof).unwrap();
        proof[0] ^= 1;
        format!("{without_proof},p={}", STANDARD.encode(proof))
    });
}

#[test]
fn the_client_refuses_a_server_that_does_not_know_the_credential() {
    let mechanism = Mechanism::ScramSha256;
    let credential = credential(mechanism);
    let (_, client, _) = start(mechanism, &credential, USER, PASSWORD);
    let forged = format!("v={}", STANDARD.encode([0u8; 32]));
    assert_eq!(
        client.verify_server_final(forged.as_bytes()),
        Err(AuthError::Failed)
    );
    assert_eq!(
        client.verify_server_final(b"e=invalid-proof"),
        Err(AuthError::Failed)
    );
}

#[test]
fn an_unknown_user_gets_a_server_first_message_like_a_known_one_then_fails() {
    for mechanism in Mechanism::ALL {
        let credential = credential(mechanism);
        let shape = |server_first: &[u8]| {
            let server_first = text(server_first).to_string();
            let attributes: Vec<String> = server_first.split(',').map(str::to_string).collect();
            assert_eq!(attributes.len(), 3, "{server_first}");
            let salt = STANDARD
                .decode(attributes[1].strip_prefix("s=").unwrap())
                .unwrap();
            (salt.len(), attributes[2].clone())
        };

        let mut known = ScramServer::new(mechanism);
        let known_first = known
            .client_first(b"n,,n=alice,r=nonce", lookup(&credential))
            .unwrap();

        let mut unknown = ScramServer::new(mechanism);
        let mut client = ScramClient::new(mechanism, "mallory", PASSWORD);
        let unknown_first = unknown
            .client_first(&client.client_first(), lookup(&credential))
            .unwrap();
        assert_eq!(shape(&known_first), shape(&unknown_first));

        // The same unknown name gets the same salt each time, as a real user would.
        let mut again = ScramServer::new(mechanism);
        let again_first = again
            .client_first(b"n,,n=mallory,r=nonce", lookup(&credential))
            .unwrap();
        let salt_of = |message: &[u8]| text(message).split(',').nth(1).unwrap().to_string();
        assert_eq!(salt_of(&unknown_first), salt_of(&again_first));

        let client_final = client.client_final(&unknown_first).unwrap();
        assert_eq!(unknown.client_final(&client_final), Err(AuthError::Failed));
    }
}

#[test]
fn steps_out_of_order_are_refused() {
    let mechanism = Mechanism::ScramSha256;
    let credential = credential(mechanism);

    let mut server = ScramServer::new(mechanism);
    assert_eq!(
        server.client_final(b"c=biws,r=abc,p=abc"),
        Err(AuthError::OutOfOrder)
    );

    let (mut server, _, _) = start(mechanism, &credential, USER, PASSWORD);
    assert_eq!(
        server.client_first(b"n,,n=alice,r=again", lookup(&credential)),
        Err(AuthError::OutOfOrder)
    );

    // After success nothing more is accepted, not even the same message again.
    let (mut server, _, client_final) = start(mechanism, &credential, USER, PASSWORD);
    server.client_final(&client_final).unwrap();
    assert_eq!(
        server.client_final(&client_final),
        Err(AuthError::OutOfOrder)
    );
    assert_eq!(
        server.client_first(b"n,,n=alice,r=again", lookup(&credential)),
        Err(AuthError::OutOfOrder)
    );

    // A malformed first message ends the exchange too.
    let mut server = ScramServer::new(mechanism);
    assert!(matches!(
        server.client_first(b"garbage", lookup(&credential)),
        Err(AuthError::Malformed(_))
    ));
    assert_eq!(
        server.client_first(b"n,,n=alice,r=nonce", lookup(&credential)),
        Err(AuthError::OutOfOrder)
    );

    let mut client = ScramClient::new(mechanism, USER, PASSWORD);
    assert_eq!(
        client.client_final(b"r=abc,s=c2FsdA==,i=4096"),
        Err(AuthError::OutOfOrder)
    );
    assert_eq!(
        client.verify_server_final(b"v=abc"),
        Err(AuthError::OutOfOrder)
    );
}

#[test]
fn oversize_messages_are_refused_before_parsing() {
    let mechanism = Mechanism::ScramSha256;
    let credential = credential(mechanism);
    let long_nonce = "x".repeat(MAX_MESSAGE_BYTES);
    let oversize = format!("n,,n=alice,r={long_nonce}");
    let mut server = ScramServer::new(mechanism);
    let refused = server.client_first(oversize.as_bytes(), |_| {
        panic!("an oversize message must not reach the lookup")
    });
    assert!(matches!(refused, Err(AuthError::Malformed(_))));

    let (mut server, _, client_final) = start(mechanism, &credential, USER, PASSWORD);
    let mut oversize = client_final.clone();
    oversize.extend(std::iter::repeat_n(b'x', MAX_MESSAGE_BYTES));
    assert!(matches!(
        server.client_final(&oversize),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn delegation_tokens_and_channel_binding_and_proxy_users_are_refused() {
    let credential = credential(Mechanism::ScramSha256);
    for message in [
        "n,,n=alice,r=nonce,tokenauth=true",
        "p=tls-server-end-point,,n=alice,r=nonce",
        "n,a=admin,n=alice,r=nonce",
    ] {
        let mut server = ScramServer::new(Mechanism::ScramSha256);
        let refused = server.client_first(message.as_bytes(), lookup(&credential));
        assert!(matches!(refused, Err(AuthError::Malformed(_))), "{message}");
    }
}

#[test]
fn a_credential_for_the_other_mechanism_is_the_callers_error() {
    let sha512 = credential(Mechanism::ScramSha512);
    let mut server = ScramServer::new(Mechanism::ScramSha256);
    let refused = server.client_first(b"n,,n=alice,r=nonce", lookup(&sha512));
    assert!(matches!(refused, Err(AuthError::InvalidCredential(_))));
}

#[test]
fn the_client_refuses_a_hostile_server_first_message() {
    let mechanism = Mechanism::ScramSha256;
    for server_first in [
        // The nonce does not extend the client's.
        "r=someone-elses,s=c2FsdA==,i=4096".to_string(),
        // Iterations out of bounds: too few is weak, too many would make the client grind.
        "r={nonce}x,s=c2FsdA==,i=1".to_string(),
        "r={nonce}x,s=c2FsdA==,i=4294967295".to_string(),
        "r={nonce}x,s=c2FsdA==,i=+4096".to_string(),
        "r={nonce}x,s=,i=4096".to_string(),
        "r={nonce}x,s=!!,i=4096".to_string(),
        "r={nonce},s=c2FsdA==,i=4096".to_string(),
    ] {
        let mut client = ScramClient::new(mechanism, USER, PASSWORD);
        let client_first = client.client_first();
        let nonce = text(&client_first).rsplit_once("r=").unwrap().1.to_string();
        let server_first = server_first.replace("{nonce}", &nonce);
        assert!(
            matches!(
                client.client_final(server_first.as_bytes()),
                Err(AuthError::Malformed(_))
            ),
            "{server_first}"
        );
    }
}
