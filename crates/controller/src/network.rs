//! The client side of the controller gRPC service: openraft's `RaftNetwork` over tonic, and
//! command forwarding to the leader.
//!
//! One lazily connected tonic `Channel` per peer, created on first use and reused by every RPC to
//! that peer (a channel reconnects by itself after the peer restarts, and is replaced when calls
//! over it go unanswered for `SILENT_CONNECTION_LIMIT`). A peer that is down is an
//! error returned to the caller — openraft backs off and retries — never a panic. Every call is
//! bounded by a timeout, since a peer that accepts connections but does not answer must not stall
//! replication or an election.

use crate::error::ControllerError;
use crate::metadata_command::MetadataCommand;
use crate::raft_types::{Node, NodeId, TypeConfig};
use crate::submit::SubmitReply;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use strata_proto::controller_v1::controller_service_client::ControllerServiceClient;
use strata_proto::controller_v1::{RaftRequest, SubmitRequest};
use tonic::transport::{Channel, Endpoint};

/// The largest message either side accepts: snapshot chunks are sent in 512 KiB pieces, which JSON
/// inflates up to four times, and an append batch holds at most a few hundred small entries.
pub(crate) const MESSAGE_BYTES_MAX: usize = 16 << 20;
/// The raw bytes per snapshot chunk (see `MESSAGE_BYTES_MAX`).
pub(crate) const SNAPSHOT_CHUNK_BYTES: u64 = 512 << 10;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How soon openraft retries a peer that was unreachable; short, so a restarted controller is
/// caught up soon after it comes back.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(200);
/// Votes and snapshot chunks get at least this long before a peer counts as unreachable: on a
/// saturated machine a live peer can take several heartbeat intervals to answer, and calling it
/// unreachable makes openraft back off and stop replicating to it, which is worse than waiting.
/// (openraft itself cuts every `AppendEntries` off after one heartbeat interval.)
const RAFT_RPC_TIMEOUT_FLOOR: Duration = Duration::from_secs(1);
/// A peer's channel is replaced once a call to it goes unanswered (timed out, or dropped by
/// openraft's own timeout) after nothing has come back for this long. A connection that went
/// silent without a reset never fails by itself, so the channel would wait on it for good; the
/// delay keeps a live peer that is merely slow for a moment on its connection.
const SILENT_CONNECTION_LIMIT: Duration = Duration::from_secs(2);

/// The cluster id this node knows, empty until it learns one; sent with every request and
/// checked on every request received.
pub(crate) type SharedClusterId = Arc<RwLock<String>>;

pub(crate) fn read_cluster_id(cluster_id: &SharedClusterId) -> String {
    cluster_id
        .read()
        .map(|id| id.clone())
        .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    /// The peer could not be reached (down, restarting, or not listening yet). Safe to retry.
    #[error("controller {node_id} at {address} is unreachable: {message}")]
    Unreachable {
        node_id: NodeId,
        address: String,
        message: String,
    },
    /// The peer answered with an error, or the answer could not be understood.
    #[error("controller {node_id} failed the request: {message}")]
    Failed { node_id: NodeId, message: String },
    /// The peer refused the request because it belongs to another cluster or is another node
    /// than the voter list says; retrying cannot help.
    #[error("controller {node_id} refused the request: {message}")]
    Refused { node_id: NodeId, message: String },
    #[error("no address is known for controller {0}")]
    UnknownPeer(NodeId),
}

/// Connections to the other controllers.
pub(crate) struct PeerClients {
    addresses: BTreeMap<NodeId, String>,
    channels: Mutex<HashMap<NodeId, PeerChannel>>,
    cluster_id: SharedClusterId,
    tls: Option<strata_tls::ClientTls>,
}

struct PeerChannel {
    channel: Channel,
    /// When a call over `channel` last got any answer (or the channel was made).
    last_answer: Instant,
}

/// Held across one call to a peer; a call that ends without [`AwaitedAnswer::answered`] (our
/// timeout, or openraft dropping the future at its own) counts towards replacing the channel.
struct AwaitedAnswer<'a> {
    peers: &'a PeerClients,
    node_id: NodeId,
    answered: bool,
}

impl AwaitedAnswer<'_> {
    fn answered(mut self) {
        self.answered = true;
        if let Some(peer) = self.peers.lock_channels().get_mut(&self.node_id) {
            peer.last_answer = Instant::now();
        }
    }
}

impl Drop for AwaitedAnswer<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let mut channels = self.peers.lock_channels();
        if channels
            .get(&self.node_id)
            .is_some_and(|peer| peer.last_answer.elapsed() >= SILENT_CONNECTION_LIMIT)
        {
            channels.remove(&self.node_id);
            tracing::info!(
                node_id = self.node_id,
                "controller peer silent for {SILENT_CONNECTION_LIMIT:?}; reconnecting"
            );
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum RaftRpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
    TimeoutNow,
    PreVote,
}

impl PeerClients {
    pub(crate) fn new(
        addresses: BTreeMap<NodeId, String>,
        cluster_id: SharedClusterId,
        tls: Option<strata_tls::ClientTls>,
    ) -> PeerClients {
        PeerClients {
            addresses,
            channels: Mutex::new(HashMap::new()),
            cluster_id,
            tls,
        }
    }

    /// The client for `node_id`, creating its channel on first use. The channel connects lazily,
    /// so this does no IO and a dead peer fails the call, not this.
    fn client(
        &self,
        node_id: NodeId,
        fallback_address: Option<&str>,
    ) -> Result<(ControllerServiceClient<Channel>, String), PeerError> {
        let address = self
            .addresses
            .get(&node_id)
            .map(String::as_str)
            .or(fallback_address)
            .ok_or(PeerError::UnknownPeer(node_id))?
            .to_string();
        let mut channels = self.lock_channels();
        let channel = match channels.get(&node_id) {
            Some(peer) => peer.channel.clone(),
            None => {
                let endpoint =
                    Endpoint::from_shared(format!("http://{address}")).map_err(|error| {
                        PeerError::Failed {
                            node_id,
                            message: format!("bad address '{address}': {error}"),
                        }
                    })?;
                let channel = strata_tls::lazy_channel(
                    endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true),
                    self.tls.as_ref(),
                );
                channels.insert(
                    node_id,
                    PeerChannel {
                        channel: channel.clone(),
                        last_answer: Instant::now(),
                    },
                );
                channel
            }
        };
        let client = ControllerServiceClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX);
        Ok((client, address))
    }

    fn lock_channels(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, PeerChannel>> {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn await_answer(&self, node_id: NodeId) -> AwaitedAnswer<'_> {
        AwaitedAnswer {
            peers: self,
            node_id,
            answered: false,
        }
    }

    fn status_error(node_id: NodeId, address: &str, status: tonic::Status) -> PeerError {
        match status.code() {
            // Connection refused or reset, or the peer is shutting down.
            tonic::Code::Unavailable => PeerError::Unreachable {
                node_id,
                address: address.to_string(),
                message: status.message().to_string(),
            },
            tonic::Code::FailedPrecondition => PeerError::Refused {
                node_id,
                message: status.message().to_string(),
            },
            _ => PeerError::Failed {
                node_id,
                message: format!("{:?}: {}", status.code(), status.message()),
            },
        }
    }

    /// Sends one Raft message and decodes the peer's Raft result.
    async fn raft_call<Request: Serialize, Reply: DeserializeOwned>(
        &self,
        target: NodeId,
        fallback_address: Option<&str>,
        rpc: RaftRpc,
        request: &Request,
        timeout: Duration,
    ) -> Result<Reply, PeerError> {
        let failed = |message: String| PeerError::Failed {
            node_id: target,
            message,
        };
        let payload = serde_json::to_vec(request)
            .map_err(|error| failed(format!("encode {rpc:?}: {error}")))?;
        let message = RaftRequest {
            cluster_id: read_cluster_id(&self.cluster_id),
            target_node_id: i32::try_from(target).unwrap_or(-1),
            payload: payload.into(),
        };
        let (mut client, address) = self.client(target, fallback_address)?;
        let call = async {
            match rpc {
                RaftRpc::AppendEntries => client.append_entries(message).await,
                RaftRpc::Vote => client.vote(message).await,
                RaftRpc::InstallSnapshot => client.install_snapshot(message).await,
                RaftRpc::TimeoutNow => client.timeout_now(message).await,
                RaftRpc::PreVote => client.pre_vote(message).await,
            }
        };
        let awaited = self.await_answer(target);
        let response =
            tokio::time::timeout(timeout, call)
                .await
                .map_err(|_| PeerError::Unreachable {
                    node_id: target,
                    address: address.clone(),
                    message: format!("no answer to {rpc:?} within {} ms", timeout.as_millis()),
                })?;
        awaited.answered();
        let response =
            response.map_err(|status| PeerClients::status_error(target, &address, status))?;
        serde_json::from_slice(&response.into_inner().payload)
            .map_err(|error| failed(format!("decode {rpc:?} reply: {error}")))
    }

    /// Asks `target` to stand for election now; see [`crate::Controller::hand_off_leadership`].
    pub(crate) async fn timeout_now(
        &self,
        target: NodeId,
        timeout: Duration,
    ) -> Result<(), PeerError> {
        self.raft_call(target, None, RaftRpc::TimeoutNow, &(), timeout)
            .await
    }

    /// Asks `target` whether it would vote for this node now; see [`crate::pre_vote`].
    pub(crate) async fn pre_vote(
        &self,
        target: NodeId,
        timeout: Duration,
    ) -> Result<bool, PeerError> {
        self.raft_call(target, None, RaftRpc::PreVote, &(), timeout)
            .await
    }

    /// Asks `target` to propose `command` as leader.
    pub(crate) async fn submit(
        &self,
        target: NodeId,
        command: &MetadataCommand,
        timeout: Duration,
    ) -> Result<SubmitReply, PeerError> {
        let failed = |message: String| PeerError::Failed {
            node_id: target,
            message,
        };
        let encoded = serde_json::to_vec(command)
            .map_err(|error| failed(format!("encode command: {error}")))?;
        let request = SubmitRequest {
            cluster_id: read_cluster_id(&self.cluster_id),
            command: encoded.into(),
        };
        let (mut client, address) = self.client(target, None)?;
        let awaited = self.await_answer(target);
        let response = tokio::time::timeout(timeout, client.submit(request))
            .await
            .map_err(|_| PeerError::Failed {
                node_id: target,
                message: format!(
                    "no answer within {} ms; the command may or may not have applied",
                    timeout.as_millis()
                ),
            })?;
        awaited.answered();
        let response =
            response.map_err(|status| PeerClients::status_error(target, &address, status))?;
        SubmitReply::from_response(response.into_inner())
            .map_err(|error| failed(format!("decode reply: {error}")))
    }
}

impl From<PeerError> for ControllerError {
    fn from(error: PeerError) -> ControllerError {
        match error {
            PeerError::Refused { .. } => ControllerError::DataDirectoryMismatch(error.to_string()),
            other => ControllerError::LeaderNotAvailable {
                elapsed_ms: 0,
                reason: other.to_string(),
            },
        }
    }
}

fn rpc_error<E: Error>(error: PeerError) -> RPCError<NodeId, Node, E> {
    match error {
        PeerError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&error)),
        other => RPCError::Network(NetworkError::new(&other)),
    }
}

/// Creates openraft's per-peer connections.
pub(crate) struct NetworkFactory {
    peers: Arc<PeerClients>,
}

impl NetworkFactory {
    pub(crate) fn new(peers: Arc<PeerClients>) -> NetworkFactory {
        NetworkFactory { peers }
    }
}

/// openraft's handle on one peer; cheap, since the channel lives in `PeerClients`.
pub(crate) struct PeerConnection {
    target: NodeId,
    address: String,
    peers: Arc<PeerClients>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerConnection {
        PeerConnection {
            target,
            address: node.addr.clone(),
            peers: Arc::clone(&self.peers),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let result: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> = self
            .peers
            .raft_call(
                self.target,
                Some(&self.address),
                RaftRpc::AppendEntries,
                &rpc,
                option.hard_ttl().max(RAFT_RPC_TIMEOUT_FLOOR),
            )
            .await
            .map_err(rpc_error)?;
        result.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let result: Result<
            InstallSnapshotResponse<NodeId>,
            RaftError<NodeId, InstallSnapshotError>,
        > = self
            .peers
            .raft_call(
                self.target,
                Some(&self.address),
                RaftRpc::InstallSnapshot,
                &rpc,
                option.hard_ttl().max(RAFT_RPC_TIMEOUT_FLOOR),
            )
            .await
            .map_err(rpc_error)?;
        result.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let result: Result<VoteResponse<NodeId>, RaftError<NodeId>> = self
            .peers
            .raft_call(
                self.target,
                Some(&self.address),
                RaftRpc::Vote,
                &rpc,
                option.hard_ttl().max(RAFT_RPC_TIMEOUT_FLOOR),
            )
            .await
            .map_err(rpc_error)?;
        result.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }
}
