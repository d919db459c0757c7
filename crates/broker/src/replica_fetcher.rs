//! The follower side of replication: one task per followed partition that first truncates to
//! the divergence point the leader reports for this replica's latest epoch, then long-polls the
//! leader for batches and appends them as they are. The task lives as long as the follower role
//! in one leader epoch; a role change aborts it, and every append re-checks the epoch.

use crate::error::PartitionError;
use crate::replica_manager::{Partition, ReplicaManager};
use std::sync::Arc;
use std::time::Duration;
use strata_common::ErrorCode;
use strata_proto::replication_v1 as proto;
use strata_proto::replication_v1::replication_client::ReplicationClient;
use strata_proto::zero_copy::{paths, unary};
use tokio::task::JoinHandle;
use tonic::Request;
use tonic::transport::Channel;
use tracing::{debug, warn};

const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

pub(crate) fn spawn(
    manager: Arc<ReplicaManager>,
    partition: Arc<Partition>,
    leader_id: i32,
    leader_epoch: i32,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut truncated = false;
        loop {
            match fetch_once(
                &manager,
                &partition,
                leader_id,
                leader_epoch,
                &mut truncated,
            )
            .await
            {
                Ok(()) => backoff = RETRY_BACKOFF_MIN,
                Err(error) => {
                    if error.code == ErrorCode::FencedLeaderEpoch
                        && partition.leader_epoch() != leader_epoch
                    {
                        // This epoch is over; the task for the new one has taken over.
                        return;
                    }
                    debug!(partition = %partition.topic_partition(), leader_id, %error, "replica fetch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            }
        }
    })
}

async fn connect(manager: &ReplicaManager, leader_id: i32) -> Result<Channel, PartitionError> {
    let address = manager.address_of(leader_id).ok_or_else(|| {
        PartitionError::new(
            ErrorCode::LeaderNotAvailable,
            format!("no address known for broker {leader_id}"),
        )
    })?;
    manager
        .peer_channels()
        .connect(&address, Duration::from_secs(2))
        .await
        .map_err(|error| {
            PartitionError::new(
                ErrorCode::LeaderNotAvailable,
                format!("cannot reach broker {leader_id} at {address}: {error}"),
            )
        })
}

/// Bounds one request to the leader by `replica_socket_timeout_ms`. A timeout ends this
/// `fetch_once`, which drops the silent connection; the retry connects afresh.
async fn answered_in_time<T>(
    manager: &ReplicaManager,
    request: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, PartitionError> {
    let limit = Duration::from_millis(manager.config().replica_socket_timeout_ms as u64);
    match tokio::time::timeout(limit, request).await {
        Ok(answer) => answer.map_err(status_error),
        Err(_) => Err(PartitionError::new(
            ErrorCode::RequestTimedOut,
            format!("the leader did not answer within {limit:?}"),
        )),
    }
}

fn status_error(status: tonic::Status) -> PartitionError {
    PartitionError::new(
        ErrorCode::LeaderNotAvailable,
        format!("replication request failed: {status}"),
    )
}

async fn fetch_once(
    manager: &ReplicaManager,
    partition: &Arc<Partition>,
    leader_id: i32,
    leader_epoch: i32,
    truncated: &mut bool,
) -> Result<(), PartitionError> {
    let channel = connect(manager, leader_id).await?;
    let topic_partition = partition.topic_partition().clone();
    if !*truncated {
        // A write this replica began as leader may still be running; what to cut is decided
        // only once it is in the log.
        ReplicaManager::wait_for_writes(partition).await?;
        // KIP-279: ask where our latest epoch ended on the leader, and cut anything after it.
        if let Some(latest_epoch) = partition.log().latest_epoch() {
            let request = proto::OffsetsForLeaderEpochRequest {
                replica_id: manager.node_id(),
                partitions: vec![proto::EpochQuery {
                    topic: topic_partition.topic.clone(),
                    partition: topic_partition.partition,
                    current_leader_epoch: leader_epoch,
                    requested_epoch: latest_epoch,
                }],
            };
            let response = answered_in_time(
                manager,
                ReplicationClient::new(channel.clone()).offsets_for_leader_epoch(request),
            )
            .await?
            .into_inner();
            let answer = response.partitions.into_iter().next().ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::InvalidRequest,
                    "empty OffsetsForLeaderEpoch response",
                )
            })?;
            if answer.error_code != 0 {
                return Err(PartitionError::new(
                    ErrorCode::from_code(answer.error_code),
                    answer.error_message,
                ));
            }
            let log_end_offset = partition.log().log_end_offset();
            let mut divergence = if answer.end_offset < 0 {
                log_end_offset
            } else {
                answer.end_offset
            };
            if answer.leader_epoch >= 0 && answer.leader_epoch < latest_epoch {
                // The leader never saw our latest epoch: keep only what we have of its epoch.
                if let Some((_, local_end)) =
                    partition.log().end_offset_for_epoch(answer.leader_epoch)
                {
                    divergence = divergence.min(local_end);
                }
            }
            if divergence < log_end_offset {
                warn!(partition = %topic_partition, from = log_end_offset, to = divergence, leader_id, leader_epoch, "truncating a divergent tail");
                manager
                    .truncate_as_follower(partition, leader_epoch, divergence)
                    .await?;
            }
        }
        *truncated = true;
    }
    loop {
        let fetch_offset = partition.log().log_end_offset();
        let request = proto::ReplicaFetchRequest {
            replica_id: manager.node_id(),
            broker_epoch: manager.broker_epoch(),
            max_wait_ms: manager.config().replica_fetch_max_wait_ms,
            max_bytes: manager.config().replica_fetch_max_bytes,
            partitions: vec![proto::ReplicaFetchPartition {
                topic: topic_partition.topic.clone(),
                partition: topic_partition.partition,
                leader_epoch,
                fetch_offset,
            }],
        };
        let response: proto::ReplicaFetchResponse = answered_in_time(
            manager,
            unary(channel.clone(), paths::REPLICA_FETCH, Request::new(request)),
        )
        .await?
        .into_inner();
        let answer = response.partitions.into_iter().next().ok_or_else(|| {
            PartitionError::new(ErrorCode::InvalidRequest, "empty replica fetch response")
        })?;
        if answer.error_code == ErrorCode::OffsetOutOfRange.code()
            && answer.log_start_offset > fetch_offset
        {
            // Retention or a coordinator snapshot moved the leader's log start past everything
            // this replica has: what it has is gone on the leader, so start over from there.
            warn!(partition = %topic_partition, fetch_offset, leader_log_start = answer.log_start_offset, "behind the leader's log start; restarting the log there");
            manager
                .restart_log_as_follower(partition, leader_epoch, answer.log_start_offset)
                .await?;
            continue;
        }
        if answer.error_code != 0 {
            return Err(PartitionError::new(
                ErrorCode::from_code(answer.error_code),
                answer.error_message,
            ));
        }
        manager
            .append_as_follower(
                partition,
                leader_epoch,
                answer.records,
                answer.high_watermark,
                answer.log_start_offset,
            )
            .await?;
    }
}
