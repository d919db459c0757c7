//! The server side of the controller gRPC service (`strata.controller.v1.ControllerService`).
//!
//! It hands Raft messages to the local openraft node and proposes forwarded commands when this
//! node leads. Errors become `tonic::Status` in exactly one place, [`status`]; Raft's own errors
//! travel back inside the reply payload, where the sender's openraft expects them.
//!
//! Mixed-version clusters. The payloads (openraft's `AppendEntries`, `Vote` and
//! `InstallSnapshot` messages and replies, forwarded `MetadataCommand`s and their outcomes) are
//! serde JSON with no format version: they are never stored, so the durable format versions of
//! `file_format` do not apply to them, and each node writes what it receives in its own format.
//! During a rolling upgrade voters on two builds exchange them, which works as long as both
//! builds spell every message the same way:
//! - the durable format versions left these payloads byte for byte as before (snapshot chunks
//!   stay the bare `MetadataState`), so upgrading to or past that change is plain restarts;
//! - a new optional field (`#[serde(default)]`) is safe both ways: an older build ignores fields
//!   it does not know;
//! - a new `MetadataCommand` variant, or a renamed or retyped field, is not: an older voter
//!   cannot decode an `AppendEntries` batch holding it, answers `invalid_argument`, and the
//!   leader's openraft retries that voter without end. The voter stops advancing (it applies
//!   nothing wrong), and once a majority cannot decode, nothing commits. Such a change must
//!   therefore not be proposed until every voter runs a build that reads it, which needs a
//!   cluster-wide feature level (Kafka's `metadata.version`) that Strata does not have yet;
//! - a new call (`TimeoutNow`, `PreVote`) is answered `unimplemented` by an older build, which
//!   the caller takes as a refusal: no hand-over (the quorum elects after its timeout, as before
//!   the call existed) and no pre-vote from that voter (its own election timer still runs).

use crate::error::ControllerError;
use crate::metadata_command::MetadataCommand;
use crate::network::{SharedClusterId, read_cluster_id};
use crate::pre_vote::{LeaderContact, would_vote};
use crate::raft_types::{NodeId, Raft, TypeConfig};
use crate::submit::{SubmitReply, propose};
use openraft::error::RaftError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use strata_proto::controller_v1::controller_service_server::ControllerService;
use strata_proto::controller_v1::{RaftRequest, RaftResponse, SubmitRequest, SubmitResponse};
use tonic::{Request, Response, Status};

/// Why a request to this controller failed before or outside Raft.
#[derive(Debug, thiserror::Error)]
enum ServiceError {
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The sender belongs to another cluster or addressed another node.
    #[error("{0}")]
    WrongPeer(String),
    #[error("controller {0} is stopped")]
    Stopped(NodeId),
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

/// The one mapping from this service's errors to gRPC statuses.
fn status(error: ServiceError) -> Status {
    match &error {
        ServiceError::Malformed(_) => Status::invalid_argument(error.to_string()),
        ServiceError::WrongPeer(_) => Status::failed_precondition(error.to_string()),
        // Unavailable is what the sender treats as "down, back off and retry".
        ServiceError::Stopped(_) => Status::unavailable(error.to_string()),
        ServiceError::Controller(ControllerError::Raft(_)) => {
            Status::unavailable(error.to_string())
        }
        ServiceError::Controller(_) => Status::internal(error.to_string()),
    }
}

/// The controller service; mount it with `tonic::transport::Server::add_service` (see
/// [`crate::Controller::service`]).
#[derive(Clone)]
pub struct ControllerGrpcService {
    raft: Raft,
    node_id: NodeId,
    cluster_id: SharedClusterId,
    leader_contact: Arc<LeaderContact>,
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServiceError> {
    serde_json::from_slice(bytes).map_err(|error| ServiceError::Malformed(error.to_string()))
}

impl ControllerGrpcService {
    pub(crate) fn new(
        raft: Raft,
        node_id: NodeId,
        cluster_id: SharedClusterId,
        leader_contact: Arc<LeaderContact>,
    ) -> ControllerGrpcService {
        ControllerGrpcService {
            raft,
            node_id,
            cluster_id,
            leader_contact,
        }
    }

    fn check_cluster(&self, sender_cluster_id: &str) -> Result<(), ServiceError> {
        let ours = read_cluster_id(&self.cluster_id);
        if !ours.is_empty() && !sender_cluster_id.is_empty() && ours != sender_cluster_id {
            return Err(ServiceError::WrongPeer(format!(
                "controller {} belongs to cluster {ours}, but the request comes from cluster {sender_cluster_id}",
                self.node_id
            )));
        }
        Ok(())
    }

    fn check_raft_request(&self, request: &RaftRequest) -> Result<(), ServiceError> {
        if u64::try_from(request.target_node_id) != Ok(self.node_id) {
            return Err(ServiceError::WrongPeer(format!(
                "this is controller {}, not controller {}; check the voter list",
                self.node_id, request.target_node_id
            )));
        }
        self.check_cluster(&request.cluster_id)
    }

    /// Encodes a Raft result for the sender, unless the node is stopped: then the sender should
    /// see this peer as down rather than receive a fatal error of ours as if it were its own.
    fn raft_reply<T: Serialize, E: Serialize>(
        &self,
        result: Result<T, RaftError<NodeId, E>>,
    ) -> Result<RaftResponse, ServiceError> {
        if let Err(RaftError::Fatal(_)) = &result {
            return Err(ServiceError::Stopped(self.node_id));
        }
        let payload = serde_json::to_vec(&result)
            .map_err(|error| ServiceError::Malformed(error.to_string()))?;
        Ok(RaftResponse {
            payload: payload.into(),
        })
    }

    async fn handle_submit(&self, request: SubmitRequest) -> Result<SubmitResponse, ServiceError> {
        self.check_cluster(&request.cluster_id)?;
        let command: MetadataCommand = decode(&request.command)?;
        let reply: SubmitReply = propose(&self.raft, command).await?;
        reply
            .into_response()
            .map_err(|error| ServiceError::Malformed(error.to_string()))
    }
}

#[tonic::async_trait]
impl ControllerService for ControllerGrpcService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        let request = request.into_inner();
        let reply = async {
            self.check_raft_request(&request)?;
            let rpc: AppendEntriesRequest<TypeConfig> = decode(&request.payload)?;
            let result = self.raft.append_entries(rpc).await;
            // Anything but a refusal of a stale leader's term is word from the current leader.
            if matches!(&result, Ok(response) if !matches!(response, AppendEntriesResponse::HigherVote(_)))
            {
                self.leader_contact.heard_from_leader();
            }
            self.raft_reply(result)
        };
        reply.await.map(Response::new).map_err(status)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftResponse>, Status> {
        let request = request.into_inner();
        let reply = async {
            self.check_raft_request(&request)?;
            let rpc: VoteRequest<NodeId> = decode(&request.payload)?;
            self.raft_reply(self.raft.vote(rpc).await)
        };
        reply.await.map(Response::new).map_err(status)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        let request = request.into_inner();
        let reply = async {
            self.check_raft_request(&request)?;
            let rpc: InstallSnapshotRequest<TypeConfig> = decode(&request.payload)?;
            let sender_vote = rpc.vote;
            let result = self.raft.install_snapshot(rpc).await;
            if matches!(&result, Ok(response) if response.vote <= sender_vote) {
                self.leader_contact.heard_from_leader();
            }
            self.raft_reply(result)
        };
        reply.await.map(Response::new).map_err(status)
    }

    async fn timeout_now(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        let request = request.into_inner();
        let reply = async {
            self.check_raft_request(&request)?;
            // A leader ignores it. A follower campaigns at once and wins with the sender's vote:
            // the sender grants it when this log is as complete as its own and it has led for
            // longer than openraft's leader lease; the other followers' votes are not needed.
            self.raft
                .trigger()
                .elect()
                .await
                .map_err(|_| ServiceError::Stopped(self.node_id))?;
            Ok(RaftResponse {
                payload: b"null".to_vec().into(),
            })
        };
        reply.await.map(Response::new).map_err(status)
    }

    async fn pre_vote(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        let request = request.into_inner();
        let reply = async {
            self.check_raft_request(&request)?;
            let answer = would_vote(&self.raft, self.node_id, &self.leader_contact);
            Ok(RaftResponse {
                payload: if answer { &b"true"[..] } else { &b"false"[..] }
                    .to_vec()
                    .into(),
            })
        };
        reply.await.map(Response::new).map_err(status)
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        self.handle_submit(request.into_inner())
            .await
            .map(Response::new)
            .map_err(status)
    }
}
