//! The Kafka door: Kafka's wire protocol on a listener of its own, over the same partitions,
//! groups, offsets and topics the gRPC door serves.
//!
//! Nothing here keeps state of its own. Each request is translated into the call the gRPC door
//! makes for the same thing (the `grpc` services, or `BrokerState` for produce), and the answer
//! back into Kafka's message, so the two doors cannot disagree: a record produced by kcat is
//! read by `strata consume`, and a Kafka error code is the `ErrorCode` Strata already returns
//! (its numbers are Kafka's).
//!
//! Connections follow Kafka's broker: requests on one connection are handled one at a time, in
//! order, and each gets its response before the next is read (acks=0 produce gets none). What
//! a client controls is refused before it is trusted ([`frame`]): a size prefix above
//! [`crate::MAX_REQUEST_BYTES`] or below zero, an API or version outside [`versions`], a body
//! that does not decode (bytes after a whole body are ignored, as Kafka ignores them). Such a connection is closed with one log line
//! (Kafka's protocol has no error frame that fits a request it cannot parse), except an
//! ApiVersions request in a version not served, which is answered with UNSUPPORTED_VERSION and
//! the served list, so a newer client can retry lower. Nothing from a refused request is
//! appended, and no other connection notices.

mod acls;
mod admin;
mod data;
pub mod frame;
mod groups;
mod sasl;
mod topic_ids;
mod users;
mod versions;

use crate::BrokerState;
use crate::authorization::Caller;
use crate::grpc;
use bytes::Bytes;
use frame::{FrameError, Request};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};
use std::future::Future;
use std::sync::Arc;
use strata_tls::{MaybeTlsStream, TlsListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// One connection's handlers: the broker's state, the gRPC services whose calls they reuse, and
/// who is calling (checked by `authorization` here and in the gRPC services they call).
pub(crate) struct KafkaDoor {
    state: Arc<BrokerState>,
    broker: grpc::BrokerService,
    caller: Caller,
}

/// What a handler decided about one request.
enum Reply {
    Respond(Box<ResponseKind>),
    /// acks=0 produce: Kafka sends nothing back.
    Silent,
    /// acks=0 produce that failed: Kafka's broker closes the connection, the only way such a
    /// producer learns of it.
    Close(String),
}

impl KafkaDoor {
    fn new(state: Arc<BrokerState>, caller: Caller) -> KafkaDoor {
        KafkaDoor {
            broker: grpc::BrokerService::new(state.clone()),
            state,
            caller,
        }
    }

    /// A gRPC request for the call this connection's request translates into, carrying the
    /// caller so the service checks it as it checks the gRPC door's.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.extensions_mut().insert(self.caller.clone());
        request
    }

    fn caller(&self) -> Option<&Caller> {
        Some(&self.caller)
    }

    async fn handle(&self, request: Request) -> Reply {
        let version = request.header.request_api_version;
        let api_key = request.api_key;
        let response = match request.body {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(0)),
            RequestKind::Metadata(body) => ResponseKind::Metadata(self.metadata(body, version)),
            RequestKind::Produce(body) => return self.produce(body, version).await,
            RequestKind::Fetch(body) => ResponseKind::Fetch(self.fetch(body, version).await),
            RequestKind::ListOffsets(body) => {
                ResponseKind::ListOffsets(self.list_offsets(body, version))
            }
            RequestKind::InitProducerId(body) => {
                ResponseKind::InitProducerId(self.init_producer_id(body))
            }
            RequestKind::OffsetForLeaderEpoch(body) => {
                ResponseKind::OffsetForLeaderEpoch(self.offset_for_leader_epoch(body))
            }
            other => {
                let other = match self.handle_group_request(other, &request.header).await {
                    Ok(response) => return Reply::Respond(Box::new(response)),
                    Err(other) => other,
                };
                let other = match self.handle_admin_request(other, version).await {
                    Ok(response) => return Reply::Respond(Box::new(response)),
                    Err(other) => other,
                };
                let other = match self.handle_user_request(other).await {
                    Ok(response) => return Reply::Respond(Box::new(response)),
                    Err(other) => other,
                };
                if let Ok(response) = self.handle_acl_request(other).await {
                    return Reply::Respond(Box::new(response));
                }
                // The frame decoder lets through only what `versions` lists; a listed API without
                // an arm here is a bug, answered the way an unserved API is.
                return Reply::Close(format!(
                    "{api_key:?} is listed as served but has no handler"
                ));
            }
        };
        Reply::Respond(Box::new(response))
    }
}

/// The ApiVersions answer with `error_code`.
fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(versions::api_versions())
}

/// Accepts Kafka connections until `shutdown` resolves; then every open connection is dropped.
/// Each connection's TLS handshake, when the listener has TLS, runs in that connection's task.
pub(crate) async fn serve(
    listener: TlsListener,
    state: Arc<BrokerState>,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    let state = state.clone();
                    connections.spawn(async move {
                        if let Some(stream) = accepted.establish().await {
                            serve_connection(stream, state).await;
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors, usually; the next accept may succeed.
                    warn!(%error, "Kafka listener could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    info!("Kafka listener stopped");
}

/// The largest read buffered ahead of the frame being decoded.
const READ_BUFFER_BYTES: usize = 64 * 1024;

async fn serve_connection(stream: MaybeTlsStream, state: Arc<BrokerState>) {
    let peer = stream.peer();
    let certificate_user = stream
        .client_certificates()
        .as_deref()
        .and_then(strata_tls::certificate_user);
    let mut session = sasl::Session::new(
        peer,
        stream.is_tls(),
        certificate_user,
        state.authenticator.clone(),
    );
    let caller_of = |session: &sasl::Session| match session.principal() {
        Some(principal) => Caller::user(&principal.user, peer.ip()),
        None => Caller::anonymous(peer.ip()),
    };
    let _open = state.metrics.connection(crate::metrics::Door::Kafka);
    let metrics = state.metrics.clone();
    let mut door = KafkaDoor::new(state, caller_of(&session));
    // One request at a time, so reads and writes never overlap and one buffered stream serves
    // both (writes pass through the read buffer).
    let mut connection = BufReader::with_capacity(READ_BUFFER_BYTES, stream);
    loop {
        let max_bytes = if session.may_proceed() {
            crate::MAX_REQUEST_BYTES
        } else {
            UNAUTHENTICATED_MAX_REQUEST_BYTES
        };
        let frame = match read_frame(&mut connection, max_bytes).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(reason) => {
                warn!(%peer, %reason, "closing Kafka connection");
                return;
            }
        };
        // Set when a SASL exchange failed: the response is written, then the connection closed,
        // as Kafka does, so the client can say why.
        let mut closing = None;
        let started = std::time::Instant::now();
        let reply = match frame::decode_request(frame, versions::served) {
            Ok(request) => {
                let api_key = request.api_key;
                if request.trailing_bytes > 0 {
                    debug!(%peer, api = ?request.api_key, bytes = request.trailing_bytes, "ignoring bytes after a request body");
                }
                let correlation_id = request.header.correlation_id;
                let version = request.header.request_api_version;
                let reply = match request.body {
                    RequestKind::SaslHandshake(body) => {
                        let (response, after) = session.handshake(body, version);
                        if let sasl::After::Close(reason) = after {
                            closing = Some(reason);
                        }
                        Reply::Respond(Box::new(ResponseKind::SaslHandshake(response)))
                    }
                    RequestKind::SaslAuthenticate(body) => {
                        let (response, after) = session.authenticate(body).await;
                        if let sasl::After::Close(reason) = after {
                            closing = Some(reason);
                        }
                        door.caller = caller_of(&session);
                        Reply::Respond(Box::new(ResponseKind::SaslAuthenticate(response)))
                    }
                    RequestKind::ApiVersions(_) => door.handle(request).await,
                    _ if !session.may_proceed() => {
                        warn!(%peer, api = ?request.api_key, "closing Kafka connection: a request before SASL authentication");
                        return;
                    }
                    _ => door.handle(request).await,
                };
                // Timed to the response being ready: writing it is the client's pace.
                metrics.request(
                    crate::metrics::Door::Kafka,
                    &format!("{api_key:?}"),
                    started.elapsed(),
                    None,
                );
                match reply {
                    Reply::Respond(response) => Some((correlation_id, version, *response)),
                    Reply::Silent => None,
                    Reply::Close(reason) => {
                        warn!(%peer, %reason, "closing Kafka connection");
                        return;
                    }
                }
            }
            Err(FrameError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                // KIP-511: answered in version 0 with the served ranges, so the client retries in
                // one of them.
                let response = ResponseKind::ApiVersions(api_versions(UNSUPPORTED_VERSION));
                Some((correlation_id, 0, response))
            }
            Err(error) => {
                warn!(%peer, %error, "closing Kafka connection");
                return;
            }
        };
        let Some((correlation_id, version, response)) = reply else {
            continue;
        };
        let bytes = match frame::encode_response(correlation_id, version, &response) {
            Ok(bytes) => bytes,
            Err(error) => {
                warn!(%peer, error = %format!("{error:#}"), "a Kafka response did not encode; closing the connection");
                return;
            }
        };
        // TLS holds written bytes in its record buffer until flushed.
        let written = async {
            connection.write_all(&bytes).await?;
            connection.flush().await
        };
        if let Err(error) = written.await {
            debug!(%peer, %error, "Kafka client went away before its response was written");
            return;
        }
        if let Some(reason) = closing {
            debug!(%peer, %reason, "closing Kafka connection after a failed SASL exchange");
            return;
        }
    }
}

/// Kafka's UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

/// Reads one frame; `None` when the client closed the connection between frames.
/// The largest request a connection may send before it has authenticated, when the broker
/// requires it: enough for ApiVersions and SASL messages, so a stranger cannot make the broker
/// buffer a full-size produce request (Kafka's `sasl.server.max.receive.size` is the same).
const UNAUTHENTICATED_MAX_REQUEST_BYTES: usize = 512 * 1024;

async fn read_frame(
    reader: &mut BufReader<MaybeTlsStream>,
    max_bytes: usize,
) -> Result<Option<Bytes>, String> {
    let mut prefix = [0u8; frame::SIZE_PREFIX_BYTES];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.to_string()),
    }
    let size = frame::frame_size(prefix, max_bytes).map_err(|error| error.to_string())?;
    // Grows as bytes arrive rather than reserving what the prefix claims, so a client that
    // announces a large frame and sends little holds little memory.
    let mut frame = Vec::with_capacity(size.min(READ_BUFFER_BYTES));
    let read = (&mut *reader)
        .take(size as u64)
        .read_to_end(&mut frame)
        .await
        .map_err(|error| error.to_string())?;
    if read < size {
        return Err(format!(
            "the connection closed {read} bytes into a {size}-byte frame"
        ));
    }
    Ok(Some(Bytes::from(frame)))
}
