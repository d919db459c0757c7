//! The client side of one SCRAM exchange, for tests, the CLI and a future Rust client.

use crate::credential::{
    Keys, check_salt, checked_iterations, hi, random_bytes, server_signature, xor_client_signature,
};
use crate::grammar::{
    ServerFinal, encode_saslname, message_text, parse_server_final, parse_server_first,
};
use crate::process_key::constant_time_eq;
use crate::{AuthError, Mechanism};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Random bytes in the client nonce.
const CLIENT_NONCE_BYTES: usize = 24;

/// The GS2 header this client sends: no channel binding, no authorization identity (as Kafka's
/// clients), and its base64 (`biws`) that the client-final-message repeats.
const GS2_HEADER: &str = "n,,";

/// A SCRAM client, so tests (and a future Rust client) can run the exchange without a Kafka
/// library. It checks the server as RFC 5802 asks: the server nonce must extend the client's,
/// the iteration count must be within Kafka's bounds (so a hostile server cannot make it grind),
/// and the server's signature must prove the server holds the user's ServerKey.
pub struct ScramClient {
    mechanism: Mechanism,
    user: String,
    password: String,
    state: ClientState,
    /// The RFC 7677 test vector's client nonce, instead of a random one.
    #[cfg(test)]
    fixed_nonce: Option<String>,
}

enum ClientState {
    /// No exchange under way (not started, or failed).
    Idle,
    SentFirst {
        nonce: String,
        bare: String,
    },
    SentFinal {
        expected_server_signature: Vec<u8>,
    },
}

impl ScramClient {
    pub fn new(mechanism: Mechanism, user: &str, password: &str) -> Self {
        Self {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            state: ClientState::Idle,
            #[cfg(test)]
            fixed_nonce: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_nonce(
        mechanism: Mechanism,
        user: &str,
        password: &str,
        nonce: &str,
    ) -> Self {
        Self {
            fixed_nonce: Some(nonce.to_string()),
            ..Self::new(mechanism, user, password)
        }
    }

    /// The client-first-message, `n,,n=user,r=nonce`. Calling it again starts a new exchange.
    pub fn client_first(&mut self) -> Vec<u8> {
        let nonce = self.nonce();
        let bare = format!("n={},r={nonce}", encode_saslname(&self.user));
        let message = format!("{GS2_HEADER}{bare}");
        self.state = ClientState::SentFirst { nonce, bare };
        message.into_bytes()
    }

    /// The client-final-message answering `server_first`, with the proof that this client knows
    /// the password.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, AuthError> {
        let ClientState::SentFirst { nonce, bare } =
            std::mem::replace(&mut self.state, ClientState::Idle)
        else {
            return Err(AuthError::OutOfOrder);
        };
        let server_first_text = message_text(server_first)?;
        let server_first = parse_server_first(server_first_text)?;
        if server_first.nonce.len() <= nonce.len() || !server_first.nonce.starts_with(&nonce) {
            return Err(AuthError::Malformed(
                "the server nonce does not extend the client nonce".into(),
            ));
        }
        let rounds = checked_iterations(server_first.iterations)
            .and_then(|rounds| check_salt(&server_first.salt).map(|()| rounds))
            .map_err(|error| AuthError::Malformed(format!("server-first-message: {error}")))?;

        let mechanism = self.mechanism;
        let salted_password = hi(
            mechanism,
            self.password.as_bytes(),
            &server_first.salt,
            rounds,
        );
        let keys = Keys::derive(mechanism, &salted_password);
        let without_proof = format!("c={},r={}", STANDARD.encode(GS2_HEADER), server_first.nonce);
        let auth_message = format!("{bare},{server_first_text},{without_proof}");
        let proof =
            xor_client_signature(mechanism, &keys.stored_key, &auth_message, &keys.client_key);
        let expected_server_signature =
            server_signature(mechanism, &keys.server_key, &auth_message);
        self.state = ClientState::SentFinal {
            expected_server_signature,
        };
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks the server-final-message: `Ok` only if it carries the signature that proves the
    /// server knows this user's ServerKey. `e=` from the server, or a wrong signature, is
    /// [`AuthError::Failed`].
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), AuthError> {
        let ClientState::SentFinal {
            expected_server_signature,
        } = &self.state
        else {
            return Err(AuthError::OutOfOrder);
        };
        match parse_server_final(message_text(server_final)?)? {
            ServerFinal::Verifier(signature)
                if constant_time_eq(&signature, expected_server_signature) =>
            {
                Ok(())
            }
            _ => Err(AuthError::Failed),
        }
    }

    fn nonce(&self) -> String {
        #[cfg(test)]
        if let Some(nonce) = &self.fixed_nonce {
            return nonce.clone();
        }
        STANDARD.encode(random_bytes(CLIENT_NONCE_BYTES))
    }
}
