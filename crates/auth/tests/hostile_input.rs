//! Arbitrary and mutated bytes into every parser: an error, never a panic.

use proptest::prelude::*;
use std::sync::OnceLock;
use strata_auth::{
    MIN_ITERATIONS, Mechanism, ScramClient, ScramCredential, ScramServer, parse_plain,
};

/// One credential for every case: deriving it runs PBKDF2, too slow to repeat per case.
fn credential() -> &'static ScramCredential {
    static CREDENTIAL: OnceLock<ScramCredential> = OnceLock::new();
    CREDENTIAL.get_or_init(|| {
        ScramCredential::from_password(Mechanism::ScramSha256, "pw", b"salt", MIN_ITERATIONS)
            .unwrap()
    })
}

fn lookup(user: &str) -> Option<ScramCredential> {
    (user == "alice").then(|| credential().clone())
}

/// Bytes that are often close to SCRAM messages: pieces of their grammar run together, so the
/// parsers' deeper branches are reached, not just the first check.
fn scram_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"n,,".to_vec()),
        Just(b"y,,".to_vec()),
        Just(b"p=x,,".to_vec()),
        Just(b"n,a=alice,".to_vec()),
        Just(b"n=alice".to_vec()),
        Just(b"r=".to_vec()),
        Just(b"c=biws".to_vec()),
        Just(b"p=".to_vec()),
        Just(b"=2C".to_vec()),
        Just(b"=3".to_vec()),
        Just(b",".to_vec()),
        Just(b"tokenauth=true".to_vec()),
        Just(b"AAAA".to_vec()),
        Just(b"\0".to_vec()),
        Just(vec![0xff]),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..256), scram_like()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn client_first_never_panics(message in bytes()) {
        let mut server = ScramServer::new(Mechanism::ScramSha256);
        let _ = server.client_first(&message, lookup);
    }

    #[test]
    fn client_final_never_panics(first in bytes(), last in bytes()) {
        // After a valid first step, so client_final's parser runs.
        let mut server = ScramServer::new(Mechanism::ScramSha256);
        server.client_first(b"n,,n=alice,r=nonce", lookup).unwrap();
        let _ = server.client_final(&last);
        // And after an arbitrary one.
        let mut server = ScramServer::new(Mechanism::ScramSha256);
        let _ = server.client_first(&first, lookup);
        let _ = server.client_final(&last);
    }

    #[test]
    fn the_client_never_panics_on_server_messages(server_first in bytes(), server_final in bytes()) {
        let mut client = ScramClient::new(Mechanism::ScramSha512, "alice", "pw");
        client.client_first();
        let _ = client.client_final(&server_first);
        let _ = client.verify_server_final(&server_final);
    }

    #[test]
    fn parse_plain_never_panics(message in bytes()) {
        let _ = parse_plain(&message);
    }
}

proptest! {
    // Each case runs a real client, so PBKDF2: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_valid_client_final_with_bytes_appended_never_panics(extra in bytes()) {
        let mut server = ScramServer::new(Mechanism::ScramSha256);
        let mut client = ScramClient::new(Mechanism::ScramSha256, "alice", "pw");
        let server_first = server.client_first(&client.client_first(), lookup).unwrap();
        let mut client_final = client.client_final(&server_first).unwrap();
        client_final.extend(extra);
        let _ = server.client_final(&client_final);
    }
}
