//! The SASL mechanisms Kafka clients authenticate with: SCRAM-SHA-256 and SCRAM-SHA-512
//! (RFC 5802, RFC 7677, as Kafka implements them in KIP-84) and PLAIN (RFC 4616), plus the
//! credentials a cluster stores for them. Pure: no IO, no async; the listeners move the bytes.
//!
//! **Credentials.** A user has one [`ScramCredential`] per mechanism: salt, iteration count,
//! StoredKey and ServerKey (derivation in `credential.rs`). The password is never stored. A
//! credential is made from a password ([`ScramCredential::from_password`], e.g. `strata user
//! create`) or from the salted password Kafka's AlterUserScramCredentials carries
//! ([`ScramCredential::from_salted_password`]; the admin client ran PBKDF2 itself, see
//! [`salt_password`]). PLAIN logins are checked against the same credential
//! ([`ScramCredential::verify_password`]), so one stored secret serves every mechanism.
//!
//! **A SCRAM exchange** is four messages; [`ScramServer`] takes the client's two and makes its
//! two, [`ScramClient`] the other way round:
//!
//! ```text
//! client-first   n,,n=<user>,r=<client nonce>
//! server-first   r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>
//! client-final   c=biws,r=<client nonce><server nonce>,p=<base64 ClientProof>
//! server-final   v=<base64 ServerSignature>
//! ```
//!
//! AuthMessage is client-first without its `n,,`, server-first and client-final without `,p=`,
//! joined by commas. ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage); the server
//! recovers ClientKey and accepts if H(ClientKey) = StoredKey. ServerSignature =
//! HMAC(ServerKey, AuthMessage) proves to the client that the server holds the credential.
//!
//! **Invariants, and why the exchange is safe against a hostile client:**
//! - every message longer than [`MAX_MESSAGE_BYTES`] is refused before it is parsed, and parsing
//!   never panics and allocates only for what it decodes, so input cannot exhaust memory;
//! - iteration counts are within [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`] wherever a credential is
//!   made or used, so no input can make a node (or a client, from a hostile server) grind;
//! - the server nonce is fresh randomness appended to the client's, and `r=` must repeat it, so a
//!   recorded client-final-message cannot be replayed into another exchange; an exchange ends at
//!   its first error or at success, and any further call is [`AuthError::OutOfOrder`];
//! - `c=` must be the base64 of the exact GS2 header the client sent, so a man in the middle
//!   cannot strip it; channel binding itself (`p=`) is refused (TLS is terminated by the
//!   listener, and Kafka's clients do not bind), as is proxy authorization (an authzid other than
//!   the user) and delegation tokens (`tokenauth`);
//! - secrets are compared in constant time (`process_key.rs`), and every authentication failure
//!   is the same [`AuthError::Failed`];
//! - an unknown user is answered with a stand-in credential shaped like a real one (stable per
//!   name, keyed by a per-process secret) and fails only at the proof, like a wrong password, so
//!   the exchange does not tell which users exist;
//! - errors carry no secret: [`AuthError::Malformed`] says which rule a message broke, never
//!   what it contained.
//!
//! User names are UTF-8, escaped in SCRAM as RFC 5802's `saslname` (`=2C` for `,`, `=3D` for
//! `=`). Like Kafka, passwords are not SASLprep-normalized: a password is its UTF-8 bytes, so
//! credentials made by Kafka's tools and by Strata agree.

pub mod acl;
mod client;
mod credential;
mod grammar;
mod mechanism;
mod plain;
mod process_key;
mod server;
#[cfg(test)]
mod tests;

pub use acl::{
    AclBinding, AclFilter, AclSet, InvalidAcl, Operation, PatternFilter, PatternType, Permission,
    ResourceType,
};
pub use client::ScramClient;
pub use credential::{
    MAX_ITERATIONS, MAX_SALT_BYTES, MIN_ITERATIONS, RANDOM_SALT_BYTES, ScramCredential,
    random_salt, salt_password,
};
pub use mechanism::Mechanism;
pub use plain::parse_plain;
pub use server::ScramServer;

/// Largest SASL message accepted (bytes); anything larger is Malformed before parsing.
pub const MAX_MESSAGE_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The message breaks the mechanism's grammar or bounds; the string says what, without any
    /// secret.
    #[error("malformed authentication message: {0}")]
    Malformed(String),
    /// Wrong user or password; deliberately says no more.
    #[error("authentication failed: invalid user name or password")]
    Failed,
    /// A step out of order (client_final before client_first, reuse after the end).
    #[error("authentication step out of order")]
    OutOfOrder,
    /// Iterations out of [MIN_ITERATIONS, MAX_ITERATIONS], empty salt, or other bad credential
    /// inputs.
    #[error("invalid credential: {0}")]
    InvalidCredential(String),
}
