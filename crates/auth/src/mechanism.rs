//! The two SCRAM hashes and the ring algorithms each one selects.

use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The SCRAM hash: SCRAM-SHA-256 or SCRAM-SHA-512.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mechanism {
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    /// Every SCRAM mechanism, in Kafka's id order.
    pub const ALL: [Mechanism; 2] = [Mechanism::ScramSha256, Mechanism::ScramSha512];

    /// The SASL mechanism name, as clients ask for it in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism with this exact name. Case-sensitive, as Kafka's `ScramMechanism.forMechanismName`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|mechanism| mechanism.name() == name)
    }

    /// Kafka's `ScramMechanism` id, as Describe/AlterUserScramCredentials carry it.
    pub fn kafka_type(self) -> i8 {
        match self {
            Mechanism::ScramSha256 => 1,
            Mechanism::ScramSha512 => 2,
        }
    }

    /// The mechanism with Kafka's id `id`; `None` for 0 (Kafka's UNKNOWN) and anything else.
    pub fn from_kafka_type(id: i8) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|mechanism| mechanism.kafka_type() == id)
    }

    /// Bytes of this mechanism's hash output, which is also the length of every salted
    /// password, key, proof and signature of the mechanism.
    pub fn hash_len(self) -> usize {
        self.digest().output_len()
    }

    pub(crate) fn digest(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::ScramSha256 => &digest::SHA256,
            Mechanism::ScramSha512 => &digest::SHA512,
        }
    }

    pub(crate) fn hmac(self) -> hmac::Algorithm {
        match self {
            Mechanism::ScramSha256 => hmac::HMAC_SHA256,
            Mechanism::ScramSha512 => hmac::HMAC_SHA512,
        }
    }

    pub(crate) fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::ScramSha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::ScramSha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}
