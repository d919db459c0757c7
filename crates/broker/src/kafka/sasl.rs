//! SASL on the Kafka listener: a connection proves its user once, before anything else, as on
//! Kafka's SASL_PLAINTEXT and SASL_SSL listeners.
//!
//! The exchange (KIP-152): SaslHandshake v1 names a mechanism, then SaslAuthenticate requests
//! carry the mechanism's messages until it succeeds or fails. SCRAM-SHA-256 and SCRAM-SHA-512
//! take two round trips; PLAIN, one, and is offered only over TLS since it sends the password
//! itself. A failure is answered with SASL_AUTHENTICATION_FAILED and the connection closed,
//! as Kafka does; so is any request other than ApiVersions or SASL before success, when the
//! broker requires authentication. Re-authentication (KIP-368) is not offered: the session
//! lifetime is 0, which tells clients not to.
//!
//! SaslHandshake v0 (the raw-token framing of Kafka 0.10) is listed, because librdkafka decides
//! from version 0's presence that the broker speaks SASL at all, but a v0 handshake is refused
//! and the connection closed: every client of the last years sends v1 when it is offered.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_auth::{Mechanism, ScramServer};
use strata_common::ErrorCode;

use crate::authentication::{Authenticator, Principal};

pub(super) const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

const PLAIN: &str = "PLAIN";

/// Where one connection's authentication stands.
enum Progress {
    Start,
    /// Handshake done, first SaslAuthenticate awaited.
    Chosen(Chosen),
    /// SCRAM: client-first answered, client-final awaited.
    Scram(Box<ScramServer>),
    Done(Principal),
}

#[derive(Clone, Copy)]
enum Chosen {
    Scram(Mechanism),
    Plain,
}

/// What to do after answering a SASL request.
pub(super) enum After {
    Continue,
    /// The exchange failed; answer, then close.
    Close(String),
}

pub(super) struct Session {
    peer: SocketAddr,
    tls: bool,
    authenticator: Arc<Authenticator>,
    progress: Progress,
    /// The user a verified client certificate names: authenticated without SASL, as on Kafka's
    /// SSL listeners with client authentication. A SASL exchange still replaces it.
    certificate_user: Option<Principal>,
}

impl Session {
    pub(super) fn new(
        peer: SocketAddr,
        tls: bool,
        certificate_user: Option<String>,
        authenticator: Arc<Authenticator>,
    ) -> Self {
        Self {
            peer,
            tls,
            authenticator,
            progress: Progress::Start,
            certificate_user: certificate_user.map(|user| Principal { user }),
        }
    }

    /// Who the connection has proven to be, if anyone.
    pub(super) fn principal(&self) -> Option<&Principal> {
        match &self.progress {
            Progress::Done(principal) => Some(principal),
            _ => self.certificate_user.as_ref(),
        }
    }

    /// Whether the connection may make requests beyond ApiVersions and SASL.
    pub(super) fn may_proceed(&self) -> bool {
        !self.authenticator.required() || self.principal().is_some()
    }

    fn mechanisms(&self) -> Vec<&'static str> {
        let mut mechanisms = vec![Mechanism::ScramSha512.name(), Mechanism::ScramSha256.name()];
        if self.tls {
            mechanisms.push(PLAIN);
        }
        mechanisms
    }

    pub(super) fn handshake(
        &mut self,
        request: SaslHandshakeRequest,
        version: i16,
    ) -> (SaslHandshakeResponse, After) {
        let mechanisms = self
            .mechanisms()
            .into_iter()
            .map(StrBytes::from_static_str)
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
        if version == 0 {
            return (
                response.with_error_code(ErrorCode::IllegalSaslState.code() as i16),
                After::Close(
                    "SaslHandshake v0 (raw SASL frames) is not served; clients use v1".to_string(),
                ),
            );
        }
        if !matches!(self.progress, Progress::Start) {
            return (
                response.with_error_code(ErrorCode::IllegalSaslState.code() as i16),
                After::Close("a second SASL handshake".to_string()),
            );
        }
        let asked = request.mechanism.as_str();
        let chosen = match Mechanism::from_name(asked) {
            Some(mechanism) => Chosen::Scram(mechanism),
            None if asked == PLAIN && self.tls => Chosen::Plain,
            None => {
                let why = if asked == PLAIN {
                    "PLAIN is offered only over TLS".to_string()
                } else {
                    format!("unsupported SASL mechanism '{asked}'")
                };
                return (
                    response.with_error_code(ErrorCode::UnsupportedSaslMechanism.code() as i16),
                    After::Close(why),
                );
            }
        };
        self.progress = Progress::Chosen(chosen);
        (response, After::Continue)
    }

    pub(super) async fn authenticate(
        &mut self,
        request: SaslAuthenticateRequest,
    ) -> (SaslAuthenticateResponse, After) {
        let source = self.peer.ip();
        let failed = |code: ErrorCode, message: String| {
            (
                SaslAuthenticateResponse::default()
                    .with_error_code(code.code() as i16)
                    .with_error_message(Some(StrBytes::from_string(message.clone()))),
                After::Close(message),
            )
        };
        if let Err(refusal) = self.authenticator.admit(source) {
            return failed(ErrorCode::SaslAuthenticationFailed, refusal.to_string());
        }
        let bytes = request.auth_bytes;
        match std::mem::replace(&mut self.progress, Progress::Start) {
            Progress::Chosen(Chosen::Plain) => match strata_auth::parse_plain(&bytes) {
                Ok((user, password)) => {
                    if self.authenticator.verify_password(&user, &password).await {
                        self.progress = Progress::Done(Principal { user });
                        return (SaslAuthenticateResponse::default(), After::Continue);
                    }
                    self.authenticator.failed(
                        source,
                        Some(&user),
                        "kafka",
                        "wrong user or password",
                    );
                    failed(
                        ErrorCode::SaslAuthenticationFailed,
                        strata_auth::AuthError::Failed.to_string(),
                    )
                }
                Err(error) => {
                    self.authenticator
                        .failed(source, None, "kafka", "malformed PLAIN message");
                    failed(ErrorCode::SaslAuthenticationFailed, error.to_string())
                }
            },
            Progress::Chosen(Chosen::Scram(mechanism)) => {
                let mut server = ScramServer::new(mechanism);
                let authenticator = self.authenticator.clone();
                match server.client_first(&bytes, |user| authenticator.credential(user, mechanism))
                {
                    Ok(server_first) => {
                        self.progress = Progress::Scram(Box::new(server));
                        (
                            SaslAuthenticateResponse::default()
                                .with_auth_bytes(Bytes::from(server_first)),
                            After::Continue,
                        )
                    }
                    Err(error) => {
                        self.authenticator.failed(
                            source,
                            None,
                            "kafka",
                            "malformed SCRAM client-first",
                        );
                        failed(ErrorCode::SaslAuthenticationFailed, error.to_string())
                    }
                }
            }
            Progress::Scram(mut server) => match server.client_final(&bytes) {
                Ok((server_final, user)) => {
                    self.progress = Progress::Done(Principal { user });
                    (
                        SaslAuthenticateResponse::default()
                            .with_auth_bytes(Bytes::from(server_final)),
                        After::Continue,
                    )
                }
                Err(error) => {
                    self.authenticator
                        .failed(source, None, "kafka", &error.to_string());
                    failed(ErrorCode::SaslAuthenticationFailed, error.to_string())
                }
            },
            Progress::Start => failed(
                ErrorCode::IllegalSaslState,
                "SaslAuthenticate before SaslHandshake".to_string(),
            ),
            Progress::Done(principal) => {
                self.progress = Progress::Done(principal);
                failed(
                    ErrorCode::IllegalSaslState,
                    "already authenticated; re-authentication is not offered".to_string(),
                )
            }
        }
    }
}
