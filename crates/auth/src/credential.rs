//! SCRAM credentials: what a cluster stores per user and mechanism, and how it is derived.
//!
//! RFC 5802 section 3, with Hi = PBKDF2-HMAC of the mechanism's hash:
//!
//! ```text
//! SaltedPassword = Hi(password, salt, iterations)
//! ClientKey      = HMAC(SaltedPassword, "Client Key")
//! StoredKey      = H(ClientKey)
//! ServerKey      = HMAC(SaltedPassword, "Server Key")
//! ```
//!
//! Only salt, iterations, StoredKey and ServerKey are kept. StoredKey lets the server check a
//! client's proof, ServerKey lets it prove itself to the client; neither lets anyone log in as
//! the user without the password (a client must show ClientKey, which H does not give back).

use crate::process_key::constant_time_eq;
use crate::{AuthError, Mechanism};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

/// Fewest SCRAM iterations a credential may have (Kafka's `ScramMechanism.minIterations`).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most SCRAM iterations a credential may have (Kafka's `ScramMechanism.maxIterations`). The
/// bound also caps the work one login attempt can make a server or client do.
pub const MAX_ITERATIONS: u32 = 16384;
/// Longest salt a credential may have. Salts arrive from clients in AlterUserScramCredentials
/// and are echoed in every server-first-message, so they are bounded; real salts are 16 to 64.
pub const MAX_SALT_BYTES: usize = 1024;
/// Length of the salts [`random_salt`] makes.
pub const RANDOM_SALT_BYTES: usize = 32;

/// What the cluster stores for one user and mechanism: never the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub mechanism: Mechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// From a password: Hi(password, salt, i) = PBKDF2-HMAC; errors if iterations out of bounds or
    /// salt empty (or longer than [`MAX_SALT_BYTES`]).
    pub fn from_password(
        mechanism: Mechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, AuthError> {
        let rounds = checked_iterations(iterations)?;
        check_salt(salt)?;
        let salted_password = hi(mechanism, password.as_bytes(), salt, rounds);
        Ok(Self::derive(mechanism, salt, iterations, &salted_password))
    }

    /// From the salted password Kafka's AlterUserScramCredentials carries (the client already ran
    /// Hi). The salted password must be one hash long, as Hi produces.
    pub fn from_salted_password(
        mechanism: Mechanism,
        salt: &[u8],
        iterations: u32,
        salted_password: &[u8],
    ) -> Result<Self, AuthError> {
        checked_iterations(iterations)?;
        check_salt(salt)?;
        if salted_password.len() != mechanism.hash_len() {
            return Err(AuthError::InvalidCredential(format!(
                "a {mechanism} salted password is {} bytes, not {}",
                mechanism.hash_len(),
                salted_password.len()
            )));
        }
        Ok(Self::derive(mechanism, salt, iterations, salted_password))
    }

    /// Whether `password` is this credential's, compared in constant time. A credential that
    /// fails [`validate`](Self::validate) (e.g. read back corrupted) matches no password.
    pub fn verify_password(&self, password: &str) -> bool {
        if self.validate().is_err() {
            return false;
        }
        let Ok(rounds) = checked_iterations(self.iterations) else {
            return false;
        };
        let salted_password = hi(self.mechanism, password.as_bytes(), &self.salt, rounds);
        let keys = Keys::derive(self.mechanism, &salted_password);
        constant_time_eq(&keys.stored_key, &self.stored_key)
    }

    /// Checks the invariants every constructor establishes, for a credential that was
    /// deserialized rather than built: iterations in bounds, salt non-empty and bounded, keys one
    /// hash long.
    pub fn validate(&self) -> Result<(), AuthError> {
        checked_iterations(self.iterations)?;
        check_salt(&self.salt)?;
        let hash_len = self.mechanism.hash_len();
        if self.stored_key.len() != hash_len || self.server_key.len() != hash_len {
            return Err(AuthError::InvalidCredential(format!(
                "{} keys must be {hash_len} bytes",
                self.mechanism
            )));
        }
        Ok(())
    }

    fn derive(mechanism: Mechanism, salt: &[u8], iterations: u32, salted_password: &[u8]) -> Self {
        let keys = Keys::derive(mechanism, salted_password);
        Self {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        }
    }
}

/// ClientKey, StoredKey and ServerKey of one salted password.
pub(crate) struct Keys {
    pub(crate) client_key: Vec<u8>,
    pub(crate) stored_key: Vec<u8>,
    pub(crate) server_key: Vec<u8>,
}

impl Keys {
    pub(crate) fn derive(mechanism: Mechanism, salted_password: &[u8]) -> Self {
        let key = hmac::Key::new(mechanism.hmac(), salted_password);
        let client_key = hmac::sign(&key, b"Client Key").as_ref().to_vec();
        let stored_key = digest::digest(mechanism.digest(), &client_key)
            .as_ref()
            .to_vec();
        let server_key = hmac::sign(&key, b"Server Key").as_ref().to_vec();
        Self {
            client_key,
            stored_key,
            server_key,
        }
    }
}

/// `client_key_or_proof` XOR ClientSignature, where ClientSignature = HMAC(StoredKey,
/// AuthMessage): the ClientProof from the ClientKey on the client, and the ClientKey back from the
/// ClientProof on the server (XOR undoes itself). The two inputs are one hash long.
pub(crate) fn xor_client_signature(
    mechanism: Mechanism,
    stored_key: &[u8],
    auth_message: &str,
    client_key_or_proof: &[u8],
) -> Vec<u8> {
    let key = hmac::Key::new(mechanism.hmac(), stored_key);
    let client_signature = hmac::sign(&key, auth_message.as_bytes());
    client_key_or_proof
        .iter()
        .zip(client_signature.as_ref())
        .map(|(left, right)| left ^ right)
        .collect()
}

/// ServerSignature = HMAC(ServerKey, AuthMessage): the server's proof that it holds the
/// credential.
pub(crate) fn server_signature(
    mechanism: Mechanism,
    server_key: &[u8],
    auth_message: &str,
) -> Vec<u8> {
    let key = hmac::Key::new(mechanism.hmac(), server_key);
    hmac::sign(&key, auth_message.as_bytes()).as_ref().to_vec()
}

/// Hi(password, salt, iterations) of RFC 5802: PBKDF2 with the mechanism's HMAC, one hash long.
pub(crate) fn hi(
    mechanism: Mechanism,
    password: &[u8],
    salt: &[u8],
    iterations: NonZeroU32,
) -> Vec<u8> {
    let mut salted_password = vec![0; mechanism.hash_len()];
    pbkdf2::derive(
        mechanism.pbkdf2(),
        iterations,
        salt,
        password,
        &mut salted_password,
    );
    salted_password
}

/// `iterations` if within Kafka's bounds, as the non-zero count PBKDF2 takes.
pub(crate) fn checked_iterations(iterations: u32) -> Result<NonZeroU32, AuthError> {
    match NonZeroU32::new(iterations) {
        Some(rounds) if (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) => Ok(rounds),
        _ => Err(AuthError::InvalidCredential(format!(
            "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, not {iterations}"
        ))),
    }
}

pub(crate) fn check_salt(salt: &[u8]) -> Result<(), AuthError> {
    if salt.is_empty() {
        return Err(AuthError::InvalidCredential("the salt is empty".into()));
    }
    if salt.len() > MAX_SALT_BYTES {
        return Err(AuthError::InvalidCredential(format!(
            "the salt is longer than {MAX_SALT_BYTES} bytes"
        )));
    }
    Ok(())
}

/// `length` bytes from the system's secure random generator.
///
/// Panics if the operating system cannot supply randomness (getrandom failing), since every
/// salt and nonce would then be predictable and there is no safe way to continue.
pub(crate) fn random_bytes(length: usize) -> Vec<u8> {
    let mut bytes = vec![0; length];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system supplies secure random bytes");
    bytes
}

/// A fresh random salt (ring::rand::SystemRandom), [`RANDOM_SALT_BYTES`] bytes.
pub fn random_salt() -> Vec<u8> {
    random_bytes(RANDOM_SALT_BYTES)
}

/// Salts and iterates a password client-side, as Kafka's admin clients do before
/// AlterUserScramCredentials: returns (salt, salted_password), the salt fresh from
/// [`random_salt`].
pub fn salt_password(
    mechanism: Mechanism,
    password: &str,
    iterations: u32,
) -> Result<(Vec<u8>, Vec<u8>), AuthError> {
    let rounds = checked_iterations(iterations)?;
    let salt = random_salt();
    let salted_password = hi(mechanism, password.as_bytes(), &salt, rounds);
    Ok((salt, salted_password))
}

/// Shows what a credential is for, not its keys: StoredKey and ServerKey are what a stolen
/// credential would be attacked with offline, so they stay out of logs and error messages.
impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .field("salt_bytes", &self.salt.len())
            .finish_non_exhaustive()
    }
}
