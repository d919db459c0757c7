//! The `Records` service: produce and fetch by record, for gRPC callers without Kafka's codec.
//!
//! Any broker takes the call. Records are partitioned here (the partition a record names, else
//! Kafka's murmur2 of its key, else one partition chosen for the request's keyless records),
//! encoded as one RecordBatch per partition and appended through the same `begin_produce` the
//! batch door uses; a partition led elsewhere gets its part forwarded to its leader's internal
//! listener, marked as forwarded so it is never passed on twice. A fetch is served by the
//! partition's leader the same way, and its batches are decoded (decompressed too) here.

use crate::BrokerState;
use crate::authorization::Caller;
use crate::error::PartitionError;
use crate::grpc::status::to_status;
use crate::replica_manager::Acks;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_auth::Operation;
use strata_common::{ErrorCode, partition_for_key};
use strata_proto::v1 as proto;
use strata_proto::v1::broker_server::Broker;
use strata_proto::v1::records_client::RecordsClient;
use strata_record::{Header, RecordBatchBuilder};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Marks a call one broker passed to another, which serves it only if it leads the partition.
const FORWARDED_METADATA: &str = "strata-forwarded";
/// A fetch answers with at most this many records unless asked for fewer.
const DEFAULT_MAX_RECORDS: usize = 500;
/// Bytes a record fetch reads from the log per call.
const FETCH_BYTES: i32 = 4 << 20;
/// How long forwarding waits to reach a leader it has no connection to yet.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RecordsService {
    state: Arc<BrokerState>,
    /// Connections to other brokers' internal listeners, by broker id.
    peers: Mutex<HashMap<i32, RecordsClient<Channel>>>,
}

impl RecordsService {
    pub fn new(state: Arc<BrokerState>) -> RecordsService {
        RecordsService {
            state,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// The leader of a partition as the metadata says, or why there is none to serve it.
    fn leader_of(&self, topic: &str, partition: i32) -> Result<i32, PartitionError> {
        let metadata = self.state.controller.metadata().borrow().clone();
        let described = metadata.topic(topic).ok_or_else(|| {
            PartitionError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("topic '{topic}' does not exist"),
            )
        })?;
        let partition = usize::try_from(partition)
            .ok()
            .and_then(|index| described.partitions.get(index))
            .ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!(
                        "topic '{topic}' has {} partitions, not partition {partition}",
                        described.partitions.len()
                    ),
                )
            })?;
        if partition.leader < 0 {
            return Err(PartitionError::new(
                ErrorCode::LeaderNotAvailable,
                format!("{topic}-{} has no leader right now", partition.partition),
            ));
        }
        Ok(partition.leader)
    }

    /// A client of `leader`'s internal listener, which serves forwarded calls.
    fn peer(&self, leader: i32) -> Result<RecordsClient<Channel>, PartitionError> {
        let mut peers = self.peers.lock().expect("peer connections lock");
        if let Some(peer) = peers.get(&leader) {
            return Ok(peer.clone());
        }
        let address = self.state.replicas.address_of(leader).ok_or_else(|| {
            PartitionError::new(
                ErrorCode::LeaderNotAvailable,
                format!("the address of leader {leader} is not known here"),
            )
        })?;
        let channel = self
            .state
            .replicas
            .peer_channels()
            .lazy(&address, PEER_CONNECT_TIMEOUT)
            .map_err(|error| {
                PartitionError::new(
                    ErrorCode::UnknownServerError,
                    format!("leader {leader}: {error}"),
                )
            })?;
        let peer = RecordsClient::new(channel);
        peers.insert(leader, peer.clone());
        Ok(peer)
    }

    /// `request`, marked as forwarded.
    fn forwarded<T>(message: T, timeout: Duration) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(timeout);
        request.metadata_mut().insert(
            FORWARDED_METADATA,
            "1".parse().expect("a valid header value"),
        );
        request
    }

    /// Appends `records` (indices into the request's records, all of `partition`) to the
    /// partition here, or has its leader append them; one result per record.
    async fn produce_partition(
        &self,
        request: &proto::ProduceRecordsRequest,
        partition: i32,
        indices: &[usize],
        forwarded: bool,
    ) -> Vec<proto::RecordResult> {
        let failed = |error: PartitionError| {
            indices
                .iter()
                .map(|_| proto::RecordResult {
                    partition,
                    offset: -1,
                    error_code: error.code.code(),
                    error_message: error.message.clone(),
                })
                .collect::<Vec<_>>()
        };
        let leader = match self.leader_of(&request.topic, partition) {
            Ok(leader) => leader,
            Err(error) => return failed(error),
        };
        let timeout = Duration::from_millis(request.timeout_ms.clamp(1, 300_000) as u64);
        if leader != self.state.replicas.node_id() {
            if forwarded {
                return failed(PartitionError::new(
                    ErrorCode::NotLeaderOrFollower,
                    format!("{}-{partition} is led by broker {leader}", request.topic),
                ));
            }
            let part = proto::ProduceRecordsRequest {
                topic: request.topic.clone(),
                records: indices
                    .iter()
                    .map(|&index| proto::ProducedRecord {
                        partition: Some(partition),
                        ..request.records[index].clone()
                    })
                    .collect(),
                acks: request.acks,
                timeout_ms: request.timeout_ms,
            };
            let mut peer = match self.peer(leader) {
                Ok(peer) => peer,
                Err(error) => return failed(error),
            };
            return match peer.produce(Self::forwarded(part, timeout)).await {
                Ok(response) => response.into_inner().results,
                Err(status) => failed(status_error(&status)),
            };
        }
        let acks = match Acks::from_wire(request.acks) {
            Ok(acks) => acks,
            Err(error) => return failed(error),
        };
        let now_ms = self.state.replicas.now_ms();
        let mut builder = RecordBatchBuilder::new();
        for &index in indices {
            let record = &request.records[index];
            let headers: Vec<Header> = record
                .headers
                .iter()
                .map(|header| Header {
                    key: header.key.clone(),
                    value: Some(header.value.clone()),
                })
                .collect();
            let timestamp = if record.timestamp_ms > 0 {
                record.timestamp_ms
            } else {
                now_ms
            };
            builder.push(
                timestamp,
                record.key.as_deref(),
                record.value.as_deref(),
                &headers,
            );
        }
        let completion = self
            .state
            .begin_produce(
                None,
                proto::ProduceRequest {
                    acks: request.acks,
                    timeout_ms: request.timeout_ms,
                    partitions: vec![proto::PartitionRecords {
                        topic: request.topic.clone(),
                        partition,
                        records: builder.build().into_bytes(),
                    }],
                    correlation_id: 0,
                },
                acks,
            )
            .await;
        let answer = completion.await.partitions.remove(0);
        indices
            .iter()
            .enumerate()
            .map(|(position, _)| proto::RecordResult {
                partition,
                offset: if answer.error_code == 0 {
                    answer.base_offset + position as i64
                } else {
                    -1
                },
                error_code: answer.error_code,
                error_message: answer.error_message.clone(),
            })
            .collect()
    }
}

/// The error a failed call to another broker carries.
fn status_error(status: &Status) -> PartitionError {
    let code = status
        .metadata()
        .get(crate::ERROR_CODE_METADATA)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map_or(ErrorCode::LeaderNotAvailable, ErrorCode::from_code);
    PartitionError::new(
        code,
        format!("the leader did not answer: {}", status.message()),
    )
}

#[tonic::async_trait]
impl proto::records_server::Records for RecordsService {
    async fn produce(
        &self,
        request: Request<proto::ProduceRecordsRequest>,
    ) -> Result<Response<proto::ProduceRecordsResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED_METADATA);
        let caller = Caller::of(&request);
        let request = request.into_inner();
        // Checked here, on the node the client called: a forwarded part reaches the leader on
        // the internal listener, where only nodes are.
        self.state
            .authorizer
            .topic(caller.as_ref(), Operation::Write, &request.topic)
            .map_err(to_status)?;
        let partition_count = {
            let metadata = self.state.controller.metadata().borrow().clone();
            metadata
                .topic(&request.topic)
                .map(|topic| topic.partitions.len() as i32)
        };
        let Some(partition_count) = partition_count.filter(|count| *count > 0) else {
            return Err(to_status(PartitionError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("topic '{}' does not exist", request.topic),
            )));
        };
        // One partition for every keyless record of the request, as a sticky partitioner
        // would choose for one batch.
        let keyless = rand::random_range(0..partition_count);
        let mut by_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (index, record) in request.records.iter().enumerate() {
            let partition = match (record.partition, &record.key) {
                (Some(partition), _) => partition,
                (None, Some(key)) => partition_for_key(key, partition_count),
                (None, None) => keyless,
            };
            by_partition.entry(partition).or_default().push(index);
        }
        let parts = by_partition.iter().map(|(&partition, indices)| {
            self.produce_partition(&request, partition, indices, forwarded)
        });
        let answered = futures::future::join_all(parts).await;
        let mut results = vec![proto::RecordResult::default(); request.records.len()];
        for (indices, part) in by_partition.values().zip(answered) {
            for (&index, result) in indices.iter().zip(part) {
                results[index] = result;
            }
        }
        Ok(Response::new(proto::ProduceRecordsResponse { results }))
    }

    async fn fetch(
        &self,
        request: Request<proto::FetchRecordsRequest>,
    ) -> Result<Response<proto::FetchRecordsResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED_METADATA);
        let caller = Caller::of(&request);
        let request = request.into_inner();
        self.state
            .authorizer
            .topic(caller.as_ref(), Operation::Read, &request.topic)
            .map_err(to_status)?;
        let failed = |error: PartitionError| proto::FetchRecordsResponse {
            error_code: error.code.code(),
            error_message: error.message,
            next_offset: request.offset,
            high_watermark: -1,
            log_start_offset: -1,
            records: Vec::new(),
        };
        let leader = match self.leader_of(&request.topic, request.partition) {
            Ok(leader) => leader,
            Err(error) => return Ok(Response::new(failed(error))),
        };
        if leader != self.state.replicas.node_id() {
            if forwarded {
                return Ok(Response::new(failed(PartitionError::new(
                    ErrorCode::NotLeaderOrFollower,
                    format!(
                        "{}-{} is led by broker {leader}",
                        request.topic, request.partition
                    ),
                ))));
            }
            let timeout =
                Duration::from_millis(request.max_wait_ms.max(0) as u64) + Duration::from_secs(30);
            let answer = match self.peer(leader) {
                Ok(mut peer) => peer
                    .fetch(Self::forwarded(request.clone(), timeout))
                    .await
                    .map(Response::into_inner)
                    .unwrap_or_else(|status| failed(status_error(&status))),
                Err(error) => failed(error),
            };
            return Ok(Response::new(answer));
        }
        let partition = match self
            .state
            .replicas
            .partition(&request.topic, request.partition)
        {
            Ok(partition) => partition,
            Err(error) => return Ok(Response::new(failed(error))),
        };
        let offset = match request.offset {
            -2 => partition.log().log_start_offset(),
            -1 => partition.high_watermark(),
            offset => offset,
        };
        let fetched = fetch_partition(&self.state, &request, offset).await?;
        let max_records = usize::try_from(request.max_records)
            .ok()
            .filter(|max| *max > 0)
            .unwrap_or(DEFAULT_MAX_RECORDS);
        let mut records = Vec::new();
        for batch in strata_record::BatchIter::new(fetched.records) {
            let batch = batch.map_err(corrupt)?;
            for record in batch.records() {
                let record = record.map_err(corrupt)?;
                if record.offset < offset || records.len() >= max_records {
                    continue;
                }
                records.push(proto::FetchedRecord {
                    offset: record.offset,
                    timestamp_ms: record.timestamp,
                    key: record.key,
                    value: record.value,
                    headers: record
                        .headers
                        .into_iter()
                        .map(|header| proto::RecordHeader {
                            key: header.key,
                            value: header.value.unwrap_or_default(),
                        })
                        .collect(),
                });
            }
        }
        Ok(Response::new(proto::FetchRecordsResponse {
            error_code: fetched.error_code,
            error_message: fetched.error_message,
            next_offset: records.last().map_or(offset, |record| record.offset + 1),
            records,
            high_watermark: fetched.high_watermark,
            log_start_offset: fetched.log_start_offset,
        }))
    }
}

/// The batch door's fetch, for one partition.
async fn fetch_partition(
    state: &Arc<BrokerState>,
    request: &proto::FetchRecordsRequest,
    offset: i64,
) -> Result<proto::FetchPartitionResponse, Status> {
    let service = crate::grpc::BrokerService::new(state.clone());
    let mut response = service
        .fetch(Request::new(proto::FetchRequest {
            max_wait_ms: request.max_wait_ms.max(0),
            min_bytes: 1,
            max_bytes: FETCH_BYTES,
            isolation_level: 0,
            partitions: vec![proto::FetchPartition {
                topic: request.topic.clone(),
                partition: request.partition,
                fetch_offset: offset,
                partition_max_bytes: FETCH_BYTES,
            }],
        }))
        .await?
        .into_inner();
    Ok(response.partitions.remove(0))
}

/// A stored batch that does not decode: the log is damaged, which no retry mends.
fn corrupt(error: strata_record::BatchError) -> Status {
    to_status(PartitionError::new(
        ErrorCode::CorruptMessage,
        format!("a stored batch does not decode: {error}"),
    ))
}
