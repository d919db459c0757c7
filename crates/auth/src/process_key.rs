//! A random key made once per process, for the two things that need a secret no one else knows:
//! comparing secrets in constant time, and answering for unknown users with credentials that look
//! real.

use crate::{MIN_ITERATIONS, Mechanism, ScramCredential};
use ring::rand::SystemRandom;
use ring::{digest, hmac};
use std::sync::OnceLock;

/// Iterations of the stand-in credential for an unknown user. Kafka's default (and the count
/// `strata user create` is expected to use), so an unknown user looks like most known ones.
pub(crate) const UNKNOWN_USER_ITERATIONS: u32 = MIN_ITERATIONS;

fn process_key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the operating system supplies secure random bytes")
    })
}

/// Whether `a == b`, in time that depends on neither's content.
///
/// Both sides are MACed under the process key and the tags compared with `ring::hmac::verify`
/// (ring's `constant_time` module is deprecated). Even if that final comparison leaked where the
/// tags differ, it would leak it about tags under a key the caller never sees, which says nothing
/// about `a` or `b`.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let key = process_key();
    let tag_of_a = hmac::sign(key, a);
    hmac::verify(key, b, tag_of_a.as_ref()).is_ok()
}

/// A credential for a user that does not exist, so the server-first-message for an unknown user
/// has the same shape as for a known one: a salt of the usual length that is the same each time
/// the same user is tried (a real user's salt does not change between attempts, so a random one
/// would give unknown users away), and the usual iteration count. The salt is a MAC of the user
/// name under the process key, so it cannot be predicted or told apart from a random salt. The
/// keys are derived the same way; no password produces them, and the server refuses the exchange
/// anyway, but verifying against them costs what verifying a real proof costs.
pub(crate) fn unknown_user_credential(mechanism: Mechanism, user: &str) -> ScramCredential {
    let derive = |purpose: &[u8]| {
        let mut context = hmac::Context::with_key(process_key());
        for part in [purpose, mechanism.name().as_bytes(), user.as_bytes()] {
            // Length-prefixed so no two (purpose, mechanism, user) triples feed the same bytes.
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        context.sign()
    };
    let key = |purpose: &[u8]| {
        digest::digest(mechanism.digest(), derive(purpose).as_ref())
            .as_ref()
            .to_vec()
    };
    ScramCredential {
        mechanism,
        // HMAC-SHA256 is 32 bytes, the length of the salts `random_salt` makes.
        salt: derive(b"salt").as_ref().to_vec(),
        iterations: UNKNOWN_USER_ITERATIONS,
        stored_key: key(b"stored key"),
        server_key: key(b"server key"),
    }
}
