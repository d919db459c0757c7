//! Proposing a metadata command on the Raft leader, and the reply as it crosses the wire.

use crate::error::{CommandRejected, ControllerError};
use crate::metadata_command::{CommandOutcome, MetadataCommand};
use crate::raft_types::{EntryResponse, NodeId, Raft};
use openraft::error::{ClientWriteError, RaftError};
use strata_common::ErrorCode;
use strata_proto::controller_v1::SubmitResponse;

/// What proposing a command on one controller gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SubmitReply {
    Applied(CommandOutcome),
    Rejected(CommandRejected),
    /// This controller is not the leader; nothing was proposed. The leader it knows, if any.
    NotLeader {
        leader_id: Option<NodeId>,
    },
}

/// The largest command, serialised, that the leader accepts into the log. Every controller keeps
/// every entry until the next snapshot, so one oversized command must be refused up front rather
/// than replicated everywhere.
pub(crate) const COMMAND_BYTES_MAX: usize = 1 << 20;

/// Proposes `command` through this node's Raft and waits until it is committed and applied.
pub(crate) async fn propose(
    raft: &Raft,
    command: MetadataCommand,
) -> Result<SubmitReply, ControllerError> {
    let size = serde_json::to_vec(&command)
        .map_err(|error| ControllerError::Raft(format!("serialise command: {error}")))?
        .len();
    if size > COMMAND_BYTES_MAX {
        return Ok(SubmitReply::Rejected(CommandRejected::new(
            ErrorCode::InvalidRequest,
            format!("the command is {size} bytes serialised; the limit is {COMMAND_BYTES_MAX}"),
        )));
    }
    match raft.client_write(command).await {
        Ok(response) => match response.data {
            EntryResponse::Applied(outcome) => Ok(SubmitReply::Applied(outcome)),
            EntryResponse::Rejected(rejected) => Ok(SubmitReply::Rejected(rejected)),
            EntryResponse::NotACommand => Err(ControllerError::Raft(
                "a metadata command was applied as a Raft-internal entry".to_string(),
            )),
        },
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            Ok(SubmitReply::NotLeader {
                leader_id: forward.leader_id,
            })
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(error))) => Err(
            ControllerError::Raft(format!("unexpected membership error: {error}")),
        ),
        Err(RaftError::Fatal(fatal)) => Err(ControllerError::Raft(fatal.to_string())),
    }
}

impl SubmitReply {
    pub(crate) fn into_response(self) -> Result<SubmitResponse, serde_json::Error> {
        let mut response = SubmitResponse {
            not_leader: false,
            leader_id: -1,
            error_code: ErrorCode::None.code(),
            error_message: String::new(),
            outcome: Default::default(),
        };
        match self {
            SubmitReply::Applied(outcome) => {
                response.outcome = serde_json::to_vec(&outcome)?.into()
            }
            SubmitReply::Rejected(rejected) => {
                response.error_code = rejected.code.code();
                response.error_message = rejected.message;
            }
            SubmitReply::NotLeader { leader_id } => {
                response.not_leader = true;
                response.leader_id = leader_id
                    .and_then(|id| i32::try_from(id).ok())
                    .unwrap_or(-1);
            }
        }
        Ok(response)
    }

    pub(crate) fn from_response(
        response: SubmitResponse,
    ) -> Result<SubmitReply, serde_json::Error> {
        if response.not_leader {
            return Ok(SubmitReply::NotLeader {
                leader_id: u64::try_from(response.leader_id).ok(),
            });
        }
        if response.error_code != ErrorCode::None.code() {
            return Ok(SubmitReply::Rejected(CommandRejected::new(
                ErrorCode::from_code(response.error_code),
                response.error_message,
            )));
        }
        serde_json::from_slice(&response.outcome).map(SubmitReply::Applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_through_the_wire_message() {
        for reply in [
            SubmitReply::Applied(CommandOutcome::BrokerUnfenced { broker_id: 3 }),
            SubmitReply::Rejected(CommandRejected::new(
                ErrorCode::TopicAlreadyExists,
                "exists",
            )),
            SubmitReply::NotLeader { leader_id: Some(2) },
            SubmitReply::NotLeader { leader_id: None },
        ] {
            let response = reply.clone().into_response().expect("encodes");
            assert_eq!(
                SubmitReply::from_response(response).expect("decodes"),
                reply
            );
        }
    }
}
