use crate::BrokerState;
use crate::error::PartitionError;
use crate::grpc::broker_service::any_changed;
use crate::grpc::status::error_fields;
use crate::replica_manager::ReplicaIdentity;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use strata_proto::replication_v1 as proto;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

pub struct ReplicationService {
    state: Arc<BrokerState>,
}

impl ReplicationService {
    pub fn new(state: Arc<BrokerState>) -> ReplicationService {
        ReplicationService { state }
    }

    fn read(
        &self,
        request: &proto::ReplicaFetchRequest,
    ) -> Vec<proto::ReplicaFetchPartitionResponse> {
        let max_bytes = request.max_bytes.max(1) as u64;
        request
            .partitions
            .iter()
            .map(|partition| {
                let result = self.state.replicas.replica_read(
                    ReplicaIdentity {
                        replica_id: request.replica_id,
                        broker_epoch: request.broker_epoch,
                    },
                    &partition.topic,
                    partition.partition,
                    partition.leader_epoch,
                    partition.fetch_offset,
                    max_bytes,
                );
                let (error_code, error_message) = error_fields(&result);
                let (records, log_start_offset, log_end_offset, high_watermark) = match result {
                    Ok((read, high_watermark)) => (
                        read.records,
                        read.log_start_offset,
                        read.log_end_offset,
                        high_watermark,
                    ),
                    // The log start tells a follower that fell below it where to restart.
                    Err(_) => (
                        Bytes::new(),
                        self.state
                            .replicas
                            .partition(&partition.topic, partition.partition)
                            .map_or(-1, |local| local.log().log_start_offset()),
                        -1,
                        -1,
                    ),
                };
                proto::ReplicaFetchPartitionResponse {
                    topic: partition.topic.clone(),
                    partition: partition.partition,
                    error_code,
                    error_message,
                    high_watermark,
                    log_start_offset,
                    log_end_offset,
                    records,
                }
            })
            .collect()
    }
}

#[tonic::async_trait]
impl proto::replication_server::Replication for ReplicationService {
    async fn replica_fetch(
        &self,
        request: Request<proto::ReplicaFetchRequest>,
    ) -> Result<Response<proto::ReplicaFetchResponse>, Status> {
        let request = request.into_inner();
        let deadline =
            Instant::now() + Duration::from_millis(request.max_wait_ms.clamp(0, 30_000) as u64);
        let mut receivers: Vec<_> = request
            .partitions
            .iter()
            .filter_map(|partition| {
                self.state
                    .replicas
                    .subscribe_log_end_offset(&partition.topic, partition.partition)
            })
            .collect();
        loop {
            for receiver in &mut receivers {
                receiver.borrow_and_update();
            }
            let partitions = self.read(&request);
            let has_data = partitions
                .iter()
                .any(|partition| !partition.records.is_empty() || partition.error_code != 0);
            // Answer as soon as there is something to copy (or an error to report); otherwise wait
            // for the leader's log to grow, up to the follower's max wait.
            if has_data || Instant::now() >= deadline || receivers.is_empty() {
                return Ok(Response::new(proto::ReplicaFetchResponse { partitions }));
            }
            if tokio::time::timeout_at(deadline, any_changed(&mut receivers))
                .await
                .is_err()
            {
                return Ok(Response::new(proto::ReplicaFetchResponse {
                    partitions: self.read(&request),
                }));
            }
        }
    }

    async fn offsets_for_leader_epoch(
        &self,
        request: Request<proto::OffsetsForLeaderEpochRequest>,
    ) -> Result<Response<proto::OffsetsForLeaderEpochResponse>, Status> {
        let partitions = request
            .into_inner()
            .partitions
            .into_iter()
            .map(|query| {
                let result: Result<Option<(i32, i64)>, PartitionError> =
                    self.state.replicas.end_offset_for_epoch(
                        &query.topic,
                        query.partition,
                        query.current_leader_epoch,
                        query.requested_epoch,
                    );
                let (error_code, error_message) = error_fields(&result);
                let (leader_epoch, end_offset) = result.ok().flatten().unwrap_or((-1, -1));
                proto::EpochEndOffset {
                    topic: query.topic,
                    partition: query.partition,
                    error_code,
                    error_message,
                    leader_epoch,
                    end_offset,
                }
            })
            .collect();
        Ok(Response::new(proto::OffsetsForLeaderEpochResponse {
            partitions,
        }))
    }
}
