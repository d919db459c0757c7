//! Credentials, password checks, mechanism names and PLAIN.

use strata_auth::{
    AuthError, MAX_ITERATIONS, MAX_MESSAGE_BYTES, MIN_ITERATIONS, Mechanism, RANDOM_SALT_BYTES,
    ScramCredential, parse_plain, random_salt, salt_password,
};

#[test]
fn mechanisms_have_kafkas_names_and_ids() {
    assert_eq!(Mechanism::ScramSha256.name(), "SCRAM-SHA-256");
    assert_eq!(Mechanism::ScramSha512.name(), "SCRAM-SHA-512");
    assert_eq!(Mechanism::ScramSha256.kafka_type(), 1);
    assert_eq!(Mechanism::ScramSha512.kafka_type(), 2);
    for mechanism in Mechanism::ALL {
        assert_eq!(Mechanism::from_name(mechanism.name()), Some(mechanism));
        assert_eq!(
            Mechanism::from_kafka_type(mechanism.kafka_type()),
            Some(mechanism)
        );
    }
    assert_eq!(Mechanism::from_name("scram-sha-256"), None);
    assert_eq!(Mechanism::from_name("PLAIN"), None);
    assert_eq!(Mechanism::from_kafka_type(0), None);
    assert_eq!(Mechanism::from_kafka_type(3), None);
    assert_eq!(Mechanism::ScramSha512.hash_len(), 64);
}

#[test]
fn a_credential_verifies_its_password_only() {
    for mechanism in Mechanism::ALL {
        let credential =
            ScramCredential::from_password(mechanism, "s3cret", &random_salt(), MIN_ITERATIONS)
                .unwrap();
        assert!(credential.verify_password("s3cret"));
        assert!(!credential.verify_password("s3cret "));
        assert!(!credential.verify_password(""));
        assert_eq!(credential.stored_key.len(), mechanism.hash_len());
        assert_eq!(credential.server_key.len(), mechanism.hash_len());
    }
}

#[test]
fn a_credential_from_a_client_salted_password_equals_one_from_the_password() {
    for mechanism in Mechanism::ALL {
        let (salt, salted_password) = salt_password(mechanism, "s3cret", 8192).unwrap();
        assert_eq!(salt.len(), RANDOM_SALT_BYTES);
        let from_salted =
            ScramCredential::from_salted_password(mechanism, &salt, 8192, &salted_password)
                .unwrap();
        let from_password =
            ScramCredential::from_password(mechanism, "s3cret", &salt, 8192).unwrap();
        assert_eq!(from_salted, from_password);
        assert!(from_salted.verify_password("s3cret"));
    }
}

fn invalid<T>(result: Result<T, AuthError>) -> bool {
    matches!(result, Err(AuthError::InvalidCredential(_)))
}

#[test]
fn credentials_refuse_out_of_bounds_iterations_and_bad_salts() {
    let mechanism = Mechanism::ScramSha256;
    let salt = random_salt();
    for iterations in [0, 1, MIN_ITERATIONS - 1, MAX_ITERATIONS + 1, u32::MAX] {
        assert!(invalid(ScramCredential::from_password(
            mechanism, "p", &salt, iterations
        )));
        assert!(invalid(salt_password(mechanism, "p", iterations)));
        assert!(invalid(ScramCredential::from_salted_password(
            mechanism, &salt, iterations, &[0; 32]
        )));
    }
    assert!(ScramCredential::from_password(mechanism, "p", &salt, MAX_ITERATIONS).is_ok());
    assert!(invalid(ScramCredential::from_password(
        mechanism,
        "p",
        &[],
        4096
    )));
    assert!(invalid(ScramCredential::from_password(
        mechanism, "p", &[0; 1025], 4096
    )));
    // A salted password must be one hash long, as Hi makes it.
    assert!(invalid(ScramCredential::from_salted_password(
        mechanism, &salt, 4096, &[0; 31]
    )));
    assert!(invalid(ScramCredential::from_salted_password(
        Mechanism::ScramSha512,
        &salt,
        4096,
        &[0; 32]
    )));
}

#[test]
fn a_corrupted_credential_matches_no_password_and_costs_no_unbounded_work() {
    let mut credential =
        ScramCredential::from_password(Mechanism::ScramSha256, "p", &random_salt(), 4096).unwrap();
    credential.iterations = u32::MAX;
    assert!(credential.validate().is_err());
    assert!(!credential.verify_password("p"));
    credential.iterations = 4096;
    credential.stored_key.pop();
    assert!(!credential.verify_password("p"));
}

#[test]
fn random_salts_are_fresh() {
    assert_ne!(random_salt(), random_salt());
    assert_eq!(random_salt().len(), RANDOM_SALT_BYTES);
}

#[test]
fn plain_gives_the_user_and_password() {
    assert_eq!(
        parse_plain(b"\0alice\0pw").unwrap(),
        ("alice".to_string(), "pw".to_string())
    );
    assert_eq!(
        parse_plain(b"alice\0alice\0p w\xc3\xa9").unwrap(),
        ("alice".to_string(), "p wé".to_string())
    );
}

#[test]
fn plain_refuses_other_users_missing_fields_and_bad_bytes() {
    let oversize = [b'a'; MAX_MESSAGE_BYTES + 1];
    for message in [
        &b"admin\0alice\0pw"[..],
        b"\0\0pw",
        b"\0alice\0",
        b"\0alice",
        b"alice",
        b"",
        b"\0alice\0pw\0extra",
        b"\0al\xffice\0pw",
        &oversize,
    ] {
        assert!(
            matches!(parse_plain(message), Err(AuthError::Malformed(_))),
            "{message:?}"
        );
    }
}

#[test]
fn errors_say_what_broke_without_the_secret() {
    let error = parse_plain(b"admin\0alice\0hunter2").unwrap_err();
    assert!(!error.to_string().contains("hunter2"));
    assert_eq!(
        AuthError::Failed.to_string(),
        "authentication failed: invalid user name or password"
    );
}

#[test]
fn a_credential_printed_for_debugging_shows_no_keys() {
    let credential =
        ScramCredential::from_password(Mechanism::ScramSha256, "pencil", b"salt", 4096).unwrap();
    let printed = format!("{credential:?}");
    assert!(
        printed.contains("ScramSha256") && printed.contains("4096"),
        "{printed}"
    );
    for secret in [&credential.stored_key, &credential.server_key] {
        assert!(!printed.contains(&format!("{secret:?}")), "{printed}");
    }
}
