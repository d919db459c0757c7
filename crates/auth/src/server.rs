//! The server side of one SCRAM exchange.

use crate::credential::{random_bytes, server_signature, xor_client_signature};
use crate::grammar::{message_text, parse_client_final, parse_client_first};
use crate::process_key::{constant_time_eq, unknown_user_credential};
use crate::{AuthError, Mechanism, ScramCredential};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::digest;

/// Random bytes in the server's half of the nonce (RFC 5802 asks for enough to be unpredictable;
/// 24 bytes is 192 bits, 32 base64 characters).
const SERVER_NONCE_BYTES: usize = 24;

/// One SCRAM exchange on the server side: two client messages in, two server messages out.
///
/// Any error ends the exchange: a later call gets [`AuthError::OutOfOrder`], so a client cannot
/// retry proofs against one server nonce.
pub struct ScramServer {
    mechanism: Mechanism,
    state: ServerState,
    /// The RFC 7677 test vector's server nonce, instead of a random one.
    #[cfg(test)]
    fixed_server_nonce: Option<String>,
}

enum ServerState {
    AwaitingClientFirst,
    AwaitingClientFinal(Box<Exchange>),
    /// Succeeded or failed; either way nothing more is accepted.
    Finished,
}

/// What the client-first step leaves for the client-final step.
struct Exchange {
    user: String,
    /// The credential to verify against: the user's, or a stand-in if there is no such user.
    credential: ScramCredential,
    user_exists: bool,
    gs2_header: String,
    /// Client and server nonce together, which the client-final-message must repeat.
    nonce: String,
    /// `client-first-message-bare "," server-first-message ","`: the AuthMessage up to the
    /// client-final-message-without-proof.
    auth_message_start: String,
}

impl ScramServer {
    pub fn new(mechanism: Mechanism) -> Self {
        Self {
            mechanism,
            state: ServerState::AwaitingClientFirst,
            #[cfg(test)]
            fixed_server_nonce: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_server_nonce(mechanism: Mechanism, server_nonce: &str) -> Self {
        Self {
            fixed_server_nonce: Some(server_nonce.to_string()),
            ..Self::new(mechanism)
        }
    }

    /// The mechanism this exchange runs.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Takes the client-first-message. `lookup(user)` returns the user's credential for this
    /// mechanism, if any. Returns the server-first-message.
    ///
    /// For an unknown user the answer is shaped like a known user's (a salt that is stable per
    /// user name and secret per process, the usual iteration count) and the exchange fails at
    /// [`client_final`](Self::client_final) with [`AuthError::Failed`], so the exchange does not
    /// reveal which users exist. A credential from `lookup` for another mechanism, or one that
    /// fails [`ScramCredential::validate`], is the caller's bug and gives
    /// [`AuthError::InvalidCredential`].
    pub fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, AuthError> {
        // Finished until this step succeeds, so an error ends the exchange.
        let state = std::mem::replace(&mut self.state, ServerState::Finished);
        if !matches!(state, ServerState::AwaitingClientFirst) {
            return Err(AuthError::OutOfOrder);
        }

        let client_first = parse_client_first(message_text(message)?)?;
        if client_first.token_auth {
            return Err(AuthError::Malformed(
                "delegation tokens (tokenauth) are not supported".into(),
            ));
        }
        let (credential, user_exists) = match lookup(&client_first.user) {
            Some(credential) => {
                if credential.mechanism != self.mechanism {
                    return Err(AuthError::InvalidCredential(format!(
                        "looked up a {} credential for a {} exchange",
                        credential.mechanism, self.mechanism
                    )));
                }
                credential.validate()?;
                (credential, true)
            }
            None => (
                unknown_user_credential(self.mechanism, &client_first.user),
                false,
            ),
        };

        let nonce = format!("{}{}", client_first.nonce, self.server_nonce());
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        let auth_message_start = format!("{},{server_first},", client_first.bare);
        self.state = ServerState::AwaitingClientFinal(Box::new(Exchange {
            user: client_first.user,
            credential,
            user_exists,
            gs2_header: client_first.gs2_header.to_string(),
            nonce,
            auth_message_start,
        }));
        Ok(server_first.into_bytes())
    }

    /// Takes the client-final-message; on success returns the server-final-message (`v=...`) and
    /// the authenticated user name. A wrong proof, nonce or channel binding, or an unknown user,
    /// is [`AuthError::Failed`].
    pub fn client_final(&mut self, message: &[u8]) -> Result<(Vec<u8>, String), AuthError> {
        let ServerState::AwaitingClientFinal(exchange) =
            std::mem::replace(&mut self.state, ServerState::Finished)
        else {
            return Err(AuthError::OutOfOrder);
        };
        let mechanism = self.mechanism;
        let client_final = parse_client_final(message_text(message)?, mechanism.hash_len())?;
        let auth_message = format!(
            "{}{}",
            exchange.auth_message_start, client_final.without_proof
        );

        // ClientKey = ClientProof XOR ClientSignature, and the client knew the password if
        // H(ClientKey) is the StoredKey. The check runs in full for unknown users too, so their
        // failure takes as long as a wrong password.
        let credential = &exchange.credential;
        let client_key = xor_client_signature(
            mechanism,
            &credential.stored_key,
            &auth_message,
            &client_final.proof,
        );
        let proof_matches = constant_time_eq(
            digest::digest(mechanism.digest(), &client_key).as_ref(),
            &credential.stored_key,
        );
        // `c=` must carry the GS2 header the client started with, so an attacker cannot strip or
        // change it in between; `r=` must carry this exchange's nonce, so a recorded
        // client-final-message cannot be replayed into a new exchange. The nonce must end with
        // it rather than equal it, as Kafka's ScramSaslServer checks: librdkafka puts its own
        // nonce in front of the server's combined one. What precedes adds nothing an attacker
        // could use: the proof covers the whole message as sent.
        let binding_matches = client_final.channel_binding == exchange.gs2_header.as_bytes();
        let nonce_matches = client_final.nonce.ends_with(exchange.nonce.as_str());
        if !(proof_matches && binding_matches && nonce_matches && exchange.user_exists) {
            return Err(AuthError::Failed);
        }

        let signature = server_signature(mechanism, &credential.server_key, &auth_message);
        let server_final = format!("v={}", STANDARD.encode(signature));
        Ok((server_final.into_bytes(), exchange.user))
    }

    fn server_nonce(&self) -> String {
        #[cfg(test)]
        if let Some(nonce) = &self.fixed_server_nonce {
            return nonce.clone();
        }
        STANDARD.encode(random_bytes(SERVER_NONCE_BYTES))
    }
}
