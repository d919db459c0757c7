//! The client against a small in-memory broker served over real gRPC on loopback.
//!
//! The fake speaks the wire protocol as `proto/strata.proto` describes it, keeps each partition's
//! batches in memory, and lets a test inject errors, hold produce responses and lose them after
//! appending. Like the real leader it hands out producer ids and dedupes a retried batch by its
//! producer id and sequence. That exercises the producer's batching, retries, idempotence,
//! ordering and backpressure and the consumer's long-polling without the real broker, and pins
//! down what the client expects of a broker.
//!
//! Every wait is on a condition with a bounded deadline; nothing sleeps to synchronise.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use strata_client::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};
use strata_client::{
    Acks, Admin, AdminConfig, AutoOffsetReset, Consumer, ConsumerConfig, Error, ErrorCode,
    NewTopic, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use strata_common::validate_topic_name;
use strata_proto::v1 as wire;
use strata_proto::v1::admin_server::{Admin as AdminService, AdminServer};
use strata_proto::v1::broker_server::{Broker as BrokerService, BrokerServer};
use strata_record::{BatchIter, RecordBatch};
use tokio::sync::{Notify, Semaphore};
use tonic::{Request, Response, Status};

const STEP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct PartitionLog {
    /// (base_offset, next_offset, bytes) per stored batch.
    batches: Vec<(i64, i64, Bytes)>,
    next_offset: i64,
}

/// What the fake remembers of a producer on one partition: its epoch and its last batches as
/// (base_sequence, record_count, base_offset), as the real leader does.
#[derive(Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<(i32, i32, i64)>,
}

/// The producer fields of a batch as the fake received it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ReceivedBatch {
    topic_partition: TopicPartition,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    record_count: i32,
    crc: u32,
}

/// What the sequence check decided for one batch.
enum SequenceVerdict {
    Append,
    /// Already stored at this base offset.
    Duplicate(i64),
    Refuse(ErrorCode, String),
}

#[derive(Default)]
struct FakeState {
    topics: BTreeMap<String, Vec<PartitionLog>>,
    configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Partitions that metadata answers without a leader, as during an election or while
    /// every replica is down.
    leaderless: BTreeSet<TopicPartition>,
    /// Errors the next produce of a partition gets instead of an append, in order.
    produce_faults: VecDeque<(TopicPartition, ErrorCode)>,
    /// Per produce request: the partitions it carried.
    produce_requests: Vec<Vec<TopicPartition>>,
    metadata_requests: usize,
    /// The fetch offset of every partition of every fetch request, in arrival order.
    fetch_offsets: Vec<i64>,
    /// Partitions whose next produce is appended but answered with UNAVAILABLE, as when the
    /// connection drops after the broker appended and before the response arrived.
    lost_responses: VecDeque<TopicPartition>,
    /// Every batch received, retries included, in arrival order.
    received_batches: Vec<ReceivedBatch>,
    producers: BTreeMap<(TopicPartition, i64), ProducerEntry>,
    /// Producer ids handed out by InitProducerId, in order.
    producer_ids: Vec<i64>,
    /// Retried batches answered with their original offset instead of being appended.
    duplicates_answered: usize,
    /// Produce requests that arrived on produce streams, answered or not.
    stream_requests_arrived: usize,
    /// Whether `FetchStream` is served; otherwise it is `UNIMPLEMENTED`, as from a broker that
    /// predates it, and the consumer must tail with long polls.
    serves_fetch_streams: bool,
    fetch_streams_opened: usize,
    /// Fetch streams open but send nothing, as from a broker that stopped without closing
    /// its connections.
    fetch_streams_stall: bool,
    /// Credit granted on fetch streams after their first message, in arrival order.
    fetch_stream_grants: Vec<i64>,
    /// ACL bindings as they arrived, in order.
    acls: Vec<wire::AclBinding>,
    /// CreateAcls, DescribeAcls and DeleteAcls requests received.
    acl_requests: usize,
}

impl FakeState {
    /// The leader's idempotence rules, small: a known producer's batch must continue its
    /// sequence; one of its last five batches again is a duplicate; an older epoch is fenced.
    fn check_sequence(
        &self,
        topic_partition: &TopicPartition,
        batch: &RecordBatch,
    ) -> SequenceVerdict {
        if batch.producer_id() < 0 {
            return SequenceVerdict::Append;
        }
        let Some(entry) = self
            .producers
            .get(&(topic_partition.clone(), batch.producer_id()))
        else {
            return SequenceVerdict::Append;
        };
        if batch.producer_epoch() < entry.epoch {
            return SequenceVerdict::Refuse(
                ErrorCode::InvalidProducerEpoch,
                format!(
                    "epoch {} is older than {}",
                    batch.producer_epoch(),
                    entry.epoch
                ),
            );
        }
        if let Some((_, _, base_offset)) = entry.batches.iter().find(|(sequence, count, _)| {
            *sequence == batch.base_sequence() && *count == batch.record_count()
        }) {
            return SequenceVerdict::Duplicate(*base_offset);
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |(sequence, count, _)| sequence.wrapping_add(*count));
        if batch.base_sequence() != expected {
            return SequenceVerdict::Refuse(
                ErrorCode::OutOfOrderSequenceNumber,
                format!(
                    "expected sequence {expected}, got {}",
                    batch.base_sequence()
                ),
            );
        }
        SequenceVerdict::Append
    }

    fn record_sequence(
        &mut self,
        topic_partition: &TopicPartition,
        batch: &RecordBatch,
        base_offset: i64,
    ) {
        if batch.producer_id() < 0 {
            return;
        }
        let entry = self
            .producers
            .entry((topic_partition.clone(), batch.producer_id()))
            .or_default();
        entry.epoch = batch.producer_epoch();
        entry
            .batches
            .push_back((batch.base_sequence(), batch.record_count(), base_offset));
        if entry.batches.len() > 5 {
            entry.batches.pop_front();
        }
    }

    fn received(&self, topic_partition: &TopicPartition) -> Vec<ReceivedBatch> {
        self.received_batches
            .iter()
            .filter(|batch| batch.topic_partition == *topic_partition)
            .cloned()
            .collect()
    }
}

#[derive(Clone)]
struct FakeBroker {
    address: String,
    state: Arc<Mutex<FakeState>>,
    appended: Arc<Notify>,
    /// Notified on every fetch request.
    fetched: Arc<Notify>,
    /// Notified on every produce request arriving on a produce stream.
    stream_request_arrived: Arc<Notify>,
    /// Each produce response waits for one permit: a test holds responses by emptying it.
    produce_gate: Arc<Semaphore>,
}

impl FakeBroker {
    /// The state, for an ACL request, which is counted.
    fn acl_call(&self) -> MutexGuard<'_, FakeState> {
        let mut state = self.state();
        state.acl_requests += 1;
        state
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .expect("no test thread panicked while holding the fake's state")
    }

    /// Appends a produce request once a permit of `produce_gate` allows it, and answers it.
    async fn produce_one(
        &self,
        request: wire::ProduceRequest,
    ) -> Result<wire::ProduceResponse, Status> {
        let permit = self
            .produce_gate
            .acquire()
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        permit.forget();
        let mut responses = Vec::new();
        let mut lose_response = false;
        {
            let mut state = self.state();
            state.produce_requests.push(
                request
                    .partitions
                    .iter()
                    .map(|part| TopicPartition::new(part.topic.clone(), part.partition))
                    .collect(),
            );
            for part in request.partitions {
                let topic_partition = TopicPartition::new(part.topic.clone(), part.partition);
                let mut response = wire::PartitionProduceResponse {
                    topic: part.topic.clone(),
                    partition: part.partition,
                    base_offset: -1,
                    log_append_time: -1,
                    ..Default::default()
                };
                if let Some(index) = state
                    .produce_faults
                    .iter()
                    .position(|(faulty, _)| *faulty == topic_partition)
                {
                    let (_, code) = state
                        .produce_faults
                        .remove(index)
                        .expect("the index was just found");
                    response.error_code = code.code();
                    response.error_message = format!("injected {}", code.name());
                    responses.push(response);
                    continue;
                }
                if !state
                    .topics
                    .get(&part.topic)
                    .is_some_and(|logs| (0..logs.len()).contains(&(part.partition as usize)))
                {
                    response.error_code = ErrorCode::UnknownTopicOrPartition.code();
                    responses.push(response);
                    continue;
                }
                let mut batches = Vec::new();
                for batch in BatchIter::new(part.records) {
                    let batch =
                        batch.map_err(|error| Status::invalid_argument(error.to_string()))?;
                    batch
                        .validate(usize::MAX)
                        .map_err(|error| Status::invalid_argument(error.to_string()))?;
                    state.received_batches.push(ReceivedBatch {
                        topic_partition: topic_partition.clone(),
                        producer_id: batch.producer_id(),
                        producer_epoch: batch.producer_epoch(),
                        base_sequence: batch.base_sequence(),
                        record_count: batch.record_count(),
                        crc: batch.stored_crc(),
                    });
                    batches.push(batch);
                }
                // The client sends one batch per partition, which keeps the fake's
                // idempotence check to the single-batch case the producer exercises.
                let verdict = match batches.as_slice() {
                    [only] => state.check_sequence(&topic_partition, only),
                    _ => SequenceVerdict::Append,
                };
                match verdict {
                    SequenceVerdict::Refuse(code, message) => {
                        response.error_code = code.code();
                        response.error_message = message;
                    }
                    SequenceVerdict::Duplicate(base_offset) => {
                        state.duplicates_answered += 1;
                        response.base_offset = base_offset;
                    }
                    SequenceVerdict::Append => {
                        let log = &mut state.topics.get_mut(&part.topic).expect("checked above")
                            [part.partition as usize];
                        response.base_offset = log.next_offset;
                        let mut appended = Vec::new();
                        for batch in &batches {
                            let mut bytes = batch.as_bytes().to_vec();
                            RecordBatch::set_base_offset(&mut bytes, log.next_offset);
                            let next = log.next_offset + i64::from(batch.record_count());
                            log.batches
                                .push((log.next_offset, next, Bytes::from(bytes)));
                            appended.push(log.next_offset);
                            log.next_offset = next;
                        }
                        for (batch, base_offset) in batches.iter().zip(appended) {
                            state.record_sequence(&topic_partition, batch, base_offset);
                        }
                    }
                }
                if let Some(index) = state
                    .lost_responses
                    .iter()
                    .position(|lost| *lost == topic_partition)
                {
                    state.lost_responses.remove(index);
                    lose_response = true;
                }
                responses.push(response);
            }
        }
        self.appended.notify_waiters();
        if lose_response {
            // The records are stored; only the answer goes missing. No strata-error-code, so the
            // client sees a transport failure and cannot know whether the append happened.
            return Err(Status::unavailable("connection lost before the response"));
        }
        Ok(wire::ProduceResponse {
            partitions: responses,
            correlation_id: request.correlation_id,
        })
    }

    fn create(&self, name: &str, partitions: usize) {
        let mut state = self.state();
        state.topics.insert(
            name.to_string(),
            (0..partitions).map(|_| PartitionLog::default()).collect(),
        );
    }

    fn values(&self, topic: &str, partition: usize) -> Vec<String> {
        let state = self.state();
        let mut values = Vec::new();
        for (_, _, bytes) in &state.topics[topic][partition].batches {
            for batch in BatchIter::new(bytes.clone()) {
                let batch = batch.expect("stored batches are valid");
                for record in batch.records() {
                    let record = record.expect("stored records are valid");
                    values.push(
                        String::from_utf8_lossy(record.value.as_deref().unwrap_or_default())
                            .into_owned(),
                    );
                }
            }
        }
        values
    }

    fn read(&self, request: &wire::FetchRequest) -> (wire::FetchResponse, usize) {
        let state = self.state();
        let mut total = 0;
        let mut partitions = Vec::new();
        for wanted in &request.partitions {
            let mut response = wire::FetchPartitionResponse {
                topic: wanted.topic.clone(),
                partition: wanted.partition,
                high_watermark: -1,
                log_start_offset: -1,
                last_stable_offset: -1,
                ..Default::default()
            };
            let Some(log) = state
                .topics
                .get(&wanted.topic)
                .and_then(|logs| logs.get(wanted.partition as usize))
            else {
                response.error_code = ErrorCode::UnknownTopicOrPartition.code();
                response.error_message =
                    format!("unknown partition {}-{}", wanted.topic, wanted.partition);
                partitions.push(response);
                continue;
            };
            response.high_watermark = log.next_offset;
            response.log_start_offset = 0;
            response.last_stable_offset = log.next_offset;
            if wanted.fetch_offset < 0 || wanted.fetch_offset > log.next_offset {
                response.error_code = ErrorCode::OffsetOutOfRange.code();
                response.error_message =
                    format!("fetch offset {} is outside the log", wanted.fetch_offset);
                partitions.push(response);
                continue;
            }
            let mut records = BytesMut::new();
            for (_, next, bytes) in &log.batches {
                if *next <= wanted.fetch_offset {
                    continue;
                }
                if !records.is_empty()
                    && records.len() + bytes.len() > wanted.partition_max_bytes as usize
                {
                    break;
                }
                records.extend_from_slice(bytes);
            }
            total += records.len();
            response.records = records.freeze();
            partitions.push(response);
        }
        (wire::FetchResponse { partitions }, total)
    }
}

#[tonic::async_trait]
impl BrokerService for FakeBroker {
    async fn produce(
        &self,
        request: Request<wire::ProduceRequest>,
    ) -> Result<Response<wire::ProduceResponse>, Status> {
        self.produce_one(request.into_inner())
            .await
            .map(Response::new)
    }

    type ProduceStreamStream =
        Pin<Box<dyn Stream<Item = Result<wire::ProduceResponse, Status>> + Send>>;

    async fn produce_stream(
        &self,
        request: Request<tonic::Streaming<wire::ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        // Requests are read as they arrive (so a test can see how many are in flight) and
        // handled one at a time, in the order sent, as a broker appends them. A lost response
        // ends the stream, as a dropped connection would.
        let mut requests = request.into_inner();
        let (arrived, queue) = tokio::sync::mpsc::unbounded_channel();
        let reader = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(request)) = requests.message().await {
                reader.state().stream_requests_arrived += 1;
                reader.stream_request_arrived.notify_waiters();
                if arrived.send(request).is_err() {
                    return;
                }
            }
        });
        let state = (self.clone(), queue, false);
        let responses = futures::stream::unfold(state, |(fake, mut queue, ended)| async move {
            if ended {
                return None;
            }
            let request = queue.recv().await?;
            match fake.produce_one(request).await {
                Ok(response) => Some((Ok(response), (fake, queue, false))),
                Err(status) => Some((Err(status), (fake, queue, true))),
            }
        });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn fetch(
        &self,
        request: Request<wire::FetchRequest>,
    ) -> Result<Response<wire::FetchResponse>, Status> {
        let request = request.into_inner();
        self.state()
            .fetch_offsets
            .extend(request.partitions.iter().map(|wanted| wanted.fetch_offset));
        self.fetched.notify_waiters();
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
        loop {
            let appended = self.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let (response, bytes) = self.read(&request);
            let has_error = response
                .partitions
                .iter()
                .any(|partition| partition.error_code != 0);
            if bytes >= request.min_bytes.max(0) as usize
                || has_error
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(Response::new(response));
            }
            tokio::select! {
                () = &mut appended => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    type FetchStreamStream =
        Pin<Box<dyn Stream<Item = Result<wire::FetchResponse, Status>> + Send>>;

    async fn fetch_stream(
        &self,
        request: Request<tonic::Streaming<wire::FetchStreamRequest>>,
    ) -> Result<Response<Self::FetchStreamStream>, Status> {
        if !self.state().serves_fetch_streams {
            return Err(Status::unimplemented("the fake broker has no FetchStream"));
        }
        let mut inbound = request.into_inner();
        let start = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no first message"))?;
        self.state().fetch_streams_opened += 1;
        // As the broker does: send what is readable while credit lasts (at least one batch),
        // then wait for an append or a grant.
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let fake = self.clone();
        tokio::spawn(async move {
            let mut partitions = start.partitions;
            let mut credit = start.grant_bytes;
            loop {
                let appended = fake.appended.notified();
                tokio::pin!(appended);
                appended.as_mut().enable();
                if credit > 0 && !fake.state().fetch_streams_stall {
                    for partition in &mut partitions {
                        partition.partition_max_bytes = credit.min(i64::from(i32::MAX)) as i32;
                    }
                    let (mut response, bytes) = fake.read(&wire::FetchRequest {
                        partitions: partitions.clone(),
                        ..Default::default()
                    });
                    response
                        .partitions
                        .retain(|partition| !partition.records.is_empty());
                    if bytes > 0 {
                        credit -= bytes as i64;
                        for sent in &response.partitions {
                            let next = BatchIter::new(sent.records.clone())
                                .filter_map(Result::ok)
                                .last()
                                .map(|batch| batch.next_offset())
                                .expect("whole batches");
                            for partition in &mut partitions {
                                if partition.topic == sent.topic
                                    && partition.partition == sent.partition
                                {
                                    partition.fetch_offset = next;
                                }
                            }
                        }
                        if sender.send(Ok(response)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                }
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(grant)) => {
                            fake.state().fetch_stream_grants.push(grant.grant_bytes);
                            credit += grant.grant_bytes;
                        }
                        Ok(None) | Err(_) => return,
                    },
                    () = &mut appended, if credit > 0 => {}
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn init_producer_id(
        &self,
        _request: Request<wire::InitProducerIdRequest>,
    ) -> Result<Response<wire::InitProducerIdResponse>, Status> {
        let mut state = self.state();
        // Distinct from small numbers a test might use by accident.
        let producer_id = 1_000 + state.producer_ids.len() as i64;
        state.producer_ids.push(producer_id);
        Ok(Response::new(wire::InitProducerIdResponse {
            producer_id,
            producer_epoch: 0,
            ..Default::default()
        }))
    }

    async fn list_offsets(
        &self,
        request: Request<wire::ListOffsetsRequest>,
    ) -> Result<Response<wire::ListOffsetsResponse>, Status> {
        let state = self.state();
        let mut partitions = Vec::new();
        for wanted in request.into_inner().partitions {
            let mut response = wire::ListOffsetsPartitionResponse {
                topic: wanted.topic.clone(),
                partition: wanted.partition,
                timestamp: -1,
                offset: -1,
                ..Default::default()
            };
            let Some(log) = state
                .topics
                .get(&wanted.topic)
                .and_then(|logs| logs.get(wanted.partition as usize))
            else {
                response.error_code = ErrorCode::UnknownTopicOrPartition.code();
                partitions.push(response);
                continue;
            };
            match wanted.timestamp {
                -2 => response.offset = 0,
                -1 => response.offset = log.next_offset,
                timestamp => {
                    let found = log
                        .batches
                        .iter()
                        .flat_map(|(_, _, bytes)| BatchIter::new(bytes.clone()))
                        .filter_map(Result::ok)
                        .flat_map(|batch| {
                            batch.records().filter_map(Result::ok).collect::<Vec<_>>()
                        })
                        .find(|record| record.timestamp >= timestamp);
                    if let Some(record) = found {
                        response.offset = record.offset;
                        response.timestamp = record.timestamp;
                    }
                }
            }
            partitions.push(response);
        }
        Ok(Response::new(wire::ListOffsetsResponse { partitions }))
    }

    async fn metadata(
        &self,
        request: Request<wire::MetadataRequest>,
    ) -> Result<Response<wire::MetadataResponse>, Status> {
        let mut state = self.state();
        state.metadata_requests += 1;
        let wanted = request.into_inner().topics;
        let names: Vec<String> = if wanted.is_empty() {
            state.topics.keys().cloned().collect()
        } else {
            wanted
        };
        let topics = names
            .into_iter()
            .map(|name| match state.topics.get(&name) {
                Some(logs) => wire::TopicMetadata {
                    partitions: (0..logs.len() as i32)
                        .map(|partition| {
                            let leaderless = state
                                .leaderless
                                .contains(&TopicPartition::new(name.clone(), partition));
                            wire::PartitionMetadata {
                                partition,
                                leader_id: if leaderless { -1 } else { 1 },
                                replicas: vec![1],
                                isr: if leaderless { Vec::new() } else { vec![1] },
                                ..Default::default()
                            }
                        })
                        .collect(),
                    name,
                    ..Default::default()
                },
                None => wire::TopicMetadata {
                    error_message: format!("topic '{name}' does not exist"),
                    name,
                    error_code: ErrorCode::UnknownTopicOrPartition.code(),
                    partitions: Vec::new(),
                },
            })
            .collect();
        Ok(Response::new(wire::MetadataResponse {
            cluster_id: "fake-cluster".to_string(),
            controller_id: 1,
            brokers: vec![wire::BrokerMetadata {
                node_id: 1,
                address: self.address.clone(),
                fenced: false,
                offline_log_dirs: Vec::new(),
            }],
            topics,
        }))
    }
}

fn topic_result(name: &str, code: ErrorCode, message: &str) -> wire::TopicResult {
    wire::TopicResult {
        name: name.to_string(),
        error_code: code.code(),
        error_message: message.to_string(),
    }
}

/// The topic whose ACLs the fake refuses to store.
const REFUSED_ACL_TOPIC: &str = "refused";

/// The fake's filters select by resource name only (the client's tests need no more); the
/// client's translation of every field is what round-trips through it.
fn acl_filter_matches(filter: &wire::AclFilter, binding: &wire::AclBinding) -> bool {
    filter
        .resource_name
        .as_ref()
        .is_none_or(|name| *name == binding.resource_name)
}

#[tonic::async_trait]
impl AdminService for FakeBroker {
    async fn alter_user_scram_credentials(
        &self,
        _request: Request<wire::AlterUserScramCredentialsRequest>,
    ) -> Result<Response<wire::AlterUserScramCredentialsResponse>, Status> {
        Err(Status::unimplemented("the fake broker has no users"))
    }

    async fn describe_user_scram_credentials(
        &self,
        _request: Request<wire::DescribeUserScramCredentialsRequest>,
    ) -> Result<Response<wire::DescribeUserScramCredentialsResponse>, Status> {
        Err(Status::unimplemented("the fake broker has no users"))
    }

    /// Stores each binding as it arrived but those for topic [`REFUSED_ACL_TOPIC`], which it
    /// refuses as a broker refuses one binding of several.
    async fn create_acls(
        &self,
        request: Request<wire::CreateAclsRequest>,
    ) -> Result<Response<wire::CreateAclsResponse>, Status> {
        let mut state = self.acl_call();
        let mut results = Vec::new();
        for binding in request.into_inner().creations {
            let (code, message) = if binding.resource_name == REFUSED_ACL_TOPIC {
                let refused = "not authorized to alter the cluster";
                (ErrorCode::ClusterAuthorizationFailed, refused)
            } else {
                if !state.acls.contains(&binding) {
                    state.acls.push(binding);
                }
                (ErrorCode::None, "")
            };
            results.push(wire::AclResult {
                error_code: code.code(),
                error_message: message.to_string(),
            });
        }
        Ok(Response::new(wire::CreateAclsResponse { results }))
    }

    async fn describe_acls(
        &self,
        request: Request<wire::DescribeAclsRequest>,
    ) -> Result<Response<wire::DescribeAclsResponse>, Status> {
        let state = self.acl_call();
        let filter = request.into_inner().filter.unwrap_or_default();
        let bindings = state
            .acls
            .iter()
            .filter(|binding| acl_filter_matches(&filter, binding))
            .cloned()
            .collect();
        Ok(Response::new(wire::DescribeAclsResponse {
            bindings,
            ..Default::default()
        }))
    }

    async fn delete_acls(
        &self,
        request: Request<wire::DeleteAclsRequest>,
    ) -> Result<Response<wire::DeleteAclsResponse>, Status> {
        let mut state = self.acl_call();
        let mut results = Vec::new();
        for filter in request.into_inner().filters {
            let (deleted, kept) = std::mem::take(&mut state.acls)
                .into_iter()
                .partition(|binding| acl_filter_matches(&filter, binding));
            state.acls = kept;
            results.push(wire::DeleteAclsFilterResult {
                deleted,
                ..Default::default()
            });
        }
        Ok(Response::new(wire::DeleteAclsResponse { results }))
    }

    async fn create_topics(
        &self,
        request: Request<wire::CreateTopicsRequest>,
    ) -> Result<Response<wire::CreateTopicsResponse>, Status> {
        let mut results = Vec::new();
        for topic in request.into_inner().topics {
            if topic.name == "reject-whole-request" {
                // A whole-request failure: the code travels in the status metadata.
                let mut status = Status::invalid_argument("the request is malformed");
                status.metadata_mut().insert(
                    strata_client::ERROR_CODE_METADATA_KEY,
                    ErrorCode::InvalidRequest
                        .code()
                        .to_string()
                        .parse()
                        .expect("digits are valid metadata"),
                );
                return Err(status);
            }
            let result = if let Err(reason) = validate_topic_name(&topic.name) {
                topic_result(&topic.name, ErrorCode::InvalidTopicException, &reason)
            } else if topic.num_partitions <= 0 {
                topic_result(
                    &topic.name,
                    ErrorCode::InvalidPartitions,
                    "partitions must be positive",
                )
            } else if topic.replication_factor != 1 {
                topic_result(
                    &topic.name,
                    ErrorCode::InvalidReplicationFactor,
                    "one broker",
                )
            } else if self.state().topics.contains_key(&topic.name) {
                topic_result(&topic.name, ErrorCode::TopicAlreadyExists, "exists")
            } else if topic.name.starts_with("answer-lost-") {
                // Created, but answered as a controller that committed too late for the
                // request's timeout does.
                self.create(&topic.name, topic.num_partitions as usize);
                topic_result(
                    &topic.name,
                    ErrorCode::RequestTimedOut,
                    "not committed in time",
                )
            } else {
                self.create(&topic.name, topic.num_partitions as usize);
                self.state()
                    .configs
                    .insert(topic.name.clone(), topic.configs.into_iter().collect());
                topic_result(&topic.name, ErrorCode::None, "")
            };
            results.push(result);
        }
        Ok(Response::new(wire::CreateTopicsResponse {
            topics: results,
        }))
    }

    async fn delete_topics(
        &self,
        request: Request<wire::DeleteTopicsRequest>,
    ) -> Result<Response<wire::DeleteTopicsResponse>, Status> {
        let mut state = self.state();
        let topics = request
            .into_inner()
            .names
            .into_iter()
            .map(|name| match state.topics.remove(&name) {
                Some(_) => topic_result(&name, ErrorCode::None, ""),
                None => topic_result(&name, ErrorCode::UnknownTopicOrPartition, "no such topic"),
            })
            .collect();
        Ok(Response::new(wire::DeleteTopicsResponse { topics }))
    }

    async fn describe_configs(
        &self,
        request: Request<wire::DescribeConfigsRequest>,
    ) -> Result<Response<wire::DescribeConfigsResponse>, Status> {
        let state = self.state();
        let topics = request
            .into_inner()
            .topics
            .into_iter()
            .map(|name| {
                let Some(configs) = state.configs.get(&name) else {
                    return wire::TopicConfigs {
                        name,
                        error_code: ErrorCode::UnknownTopicOrPartition.code(),
                        ..Default::default()
                    };
                };
                let mut entries: Vec<wire::ConfigEntry> = configs
                    .iter()
                    .map(|(key, value)| wire::ConfigEntry {
                        name: key.clone(),
                        value: value.clone(),
                        is_default: false,
                    })
                    .collect();
                if !configs.contains_key("retention.ms") {
                    entries.push(wire::ConfigEntry {
                        name: "retention.ms".to_string(),
                        value: "604800000".to_string(),
                        is_default: true,
                    });
                }
                wire::TopicConfigs {
                    name,
                    entries,
                    ..Default::default()
                }
            })
            .collect();
        Ok(Response::new(wire::DescribeConfigsResponse { topics }))
    }

    async fn create_partitions(
        &self,
        _request: Request<wire::CreatePartitionsRequest>,
    ) -> Result<Response<wire::CreatePartitionsResponse>, Status> {
        Err(Status::unimplemented(
            "the fake broker does not grow topics",
        ))
    }

    async fn alter_configs(
        &self,
        request: Request<wire::AlterConfigsRequest>,
    ) -> Result<Response<wire::AlterConfigsResponse>, Status> {
        let mut state = self.state();
        let topics = request
            .into_inner()
            .topics
            .into_iter()
            .map(|topic| match state.configs.get_mut(&topic.name) {
                Some(configs) => {
                    configs.extend(topic.set);
                    for key in &topic.delete {
                        configs.remove(key);
                    }
                    topic_result(&topic.name, ErrorCode::None, "")
                }
                None => topic_result(
                    &topic.name,
                    ErrorCode::UnknownTopicOrPartition,
                    "no such topic",
                ),
            })
            .collect();
        Ok(Response::new(wire::AlterConfigsResponse { topics }))
    }
}

/// Serves a fake broker on a free loopback port for the rest of the test's runtime.
async fn start_fake() -> Result<FakeBroker> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let fake = FakeBroker {
        address,
        state: Arc::default(),
        appended: Arc::new(Notify::new()),
        fetched: Arc::new(Notify::new()),
        stream_request_arrived: Arc::new(Notify::new()),
        produce_gate: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
    };
    let server = tonic::transport::Server::builder()
        .add_service(BrokerServer::new(fake.clone()))
        .add_service(AdminServer::new(fake.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(async move {
        if let Err(error) = server.await {
            eprintln!("fake broker stopped: {error}");
        }
    });
    Ok(fake)
}

/// Waits (at most `STEP_TIMEOUT`) until `count` produce requests arrived on produce streams.
async fn stream_requests_arrived(fake: &FakeBroker, count: usize) -> Result<()> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            let arrived = fake.stream_request_arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if fake.state().stream_requests_arrived >= count {
                return;
            }
            arrived.await;
        }
    })
    .await?;
    Ok(())
}

/// Collects the WARN and ERROR events of the thread it is the default subscriber of, each as a
/// line of its fields, so a test can read what whoever runs the client would read.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    fn containing(&self, text: &str) -> Vec<String> {
        let lines = self.0.lock().expect("no thread panicked while logging");
        lines
            .iter()
            .filter(|line| line.contains(text))
            .cloned()
            .collect()
    }
}

struct FieldsLine(String);

impl tracing::field::Visit for FieldsLine {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = FieldsLine(String::new());
        event.record(&mut line);
        let mut lines = self.0.lock().expect("no thread panicked while logging");
        lines.push(line.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

fn producer_config(fake: &FakeBroker) -> strata_client::ProducerConfigBuilder {
    ProducerConfig::builder()
        .bootstrap(fake.address.as_str())
        .retry_backoff_ms(10)
        .retry_backoff_max_ms(50)
}

/// A producer that gives up on a record half a second after `send`, for tests of what it says
/// when it does.
fn impatient_producer_config(fake: &FakeBroker) -> Result<ProducerConfig> {
    Ok(producer_config(fake)
        .linger_ms(0)
        .request_timeout_ms(200)
        .delivery_timeout_ms(500)
        .build()?)
}

fn consumer_config(fake: &FakeBroker) -> strata_client::ConsumerConfigBuilder {
    ConsumerConfig::builder()
        .bootstrap(fake.address.as_str())
        .auto_offset_reset(AutoOffsetReset::Earliest)
}

#[tokio::test]
async fn records_are_batched_per_partition_and_partitions_share_requests() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("batched", 3);
    let producer = Producer::connect(producer_config(&fake).linger_ms(200).build()?).await?;
    let mut deliveries = Vec::new();
    for index in 0..30 {
        let record =
            ProducerRecord::new("batched", format!("v{index}")).key(format!("k{}", index % 6));
        deliveries.push(producer.send(record).await?);
    }
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for delivery in deliveries {
        let stored = tokio::time::timeout(STEP_TIMEOUT, delivery).await??;
        per_partition
            .entry(stored.partition)
            .or_default()
            .push(stored.offset);
    }
    for offsets in per_partition.values() {
        assert_eq!(
            *offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "dense offsets in send order"
        );
    }
    let requests = fake.state().produce_requests.clone();
    assert!(
        requests.len() < 30,
        "{} requests for 30 records: no batching",
        requests.len()
    );
    assert!(
        requests.iter().any(|partitions| partitions.len() > 1),
        "partitions led by the same broker share a request: {requests:?}"
    );
    for partitions in &requests {
        let mut unique = partitions.clone();
        unique.dedup();
        assert_eq!(
            unique.len(),
            partitions.len(),
            "one batch per partition per request"
        );
    }
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn retriable_errors_are_retried_without_reordering() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("ordered", 1);
    let tp = TopicPartition::new("ordered", 0);
    {
        let mut state = fake.state();
        state
            .produce_faults
            .push_back((tp.clone(), ErrorCode::NotLeaderOrFollower));
        state
            .produce_faults
            .push_back((tp.clone(), ErrorCode::LeaderNotAvailable));
    }
    // Tiny batches, so several are queued behind the failing one.
    let config = producer_config(&fake)
        .batch_size(100)
        .linger_ms(0)
        .build()?;
    let producer = Producer::connect(config).await?;
    let metadata_requests_before = fake.state().metadata_requests;
    let mut deliveries = Vec::new();
    for index in 0..20 {
        deliveries.push(
            producer
                .send(ProducerRecord::new("ordered", format!("{index:02}")).partition(0))
                .await?,
        );
    }
    for (index, delivery) in deliveries.into_iter().enumerate() {
        let stored = tokio::time::timeout(STEP_TIMEOUT, delivery).await??;
        assert_eq!(stored.offset, index as i64);
    }
    let expected: Vec<String> = (0..20).map(|index| format!("{index:02}")).collect();
    assert_eq!(fake.values("ordered", 0), expected);
    assert!(
        fake.state().produce_faults.is_empty(),
        "both injected errors were hit"
    );
    assert!(
        fake.state().metadata_requests > metadata_requests_before,
        "NOT_LEADER refreshes metadata"
    );
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_batch_that_runs_out_of_time_names_the_error_it_kept_getting() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("starved", 1);
    let tp = TopicPartition::new("starved", 0);
    {
        // More refusals than the delivery timeout leaves room to retry.
        let mut state = fake.state();
        for _ in 0..1_000 {
            state
                .produce_faults
                .push_back((tp.clone(), ErrorCode::NotEnoughReplicas));
        }
    }
    let producer = Producer::connect(impatient_producer_config(&fake)?).await?;
    let delivery = producer
        .send(ProducerRecord::new("starved", "v").partition(0))
        .await?;
    let error = tokio::time::timeout(STEP_TIMEOUT, delivery)
        .await?
        .expect_err("no replica ever took the record");
    let message = error.to_string();
    assert!(message.contains("timed out"), "{message}");
    assert!(message.contains("NOT_ENOUGH_REPLICAS"), "{message}");
    assert!(fake.values("starved", 0).is_empty());
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn records_for_a_partition_without_a_leader_fail_naming_why_after_one_warning() -> Result<()>
{
    // A current-thread runtime: the producer's sender task logs on this thread.
    let warnings = Warnings::default();
    let _capturing = tracing::subscriber::set_default(warnings.clone());
    let fake = start_fake().await?;
    fake.create("headless", 2);
    let leaderless = TopicPartition::new("headless", 0);
    fake.state().leaderless.insert(leaderless.clone());
    let producer = Producer::connect(impatient_producer_config(&fake)?).await?;
    let stranded = producer
        .send(ProducerRecord::new("headless", "stranded").partition(0))
        .await?;
    let led = producer
        .send(ProducerRecord::new("headless", "led").partition(1))
        .await?;
    tokio::time::timeout(STEP_TIMEOUT, led)
        .await?
        .context("a partition with a leader is not held up")?;

    let error = tokio::time::timeout(STEP_TIMEOUT, stranded)
        .await?
        .expect_err("no leader ever took the record");
    let message = error.to_string();
    assert!(message.contains("timed out"), "{message}");
    assert!(
        message.contains("(never sent: no leader for headless-0 in the cluster metadata)"),
        "{message}"
    );
    assert!(
        fake.state()
            .produce_requests
            .iter()
            .all(|partitions| !partitions.contains(&leaderless))
    );
    // The batch was looked at again every retry backoff while it waited.
    let warned = warnings.containing("no leader");
    assert_eq!(warned.len(), 1, "one warning, not one per look: {warned:?}");
    assert!(warned[0].contains("headless-0"), "{warned:?}");

    // Once a leader is elected, the same partition takes records again.
    fake.state().leaderless.clear();
    let after_election = producer
        .send(ProducerRecord::new("headless", "after election").partition(0))
        .await?;
    tokio::time::timeout(STEP_TIMEOUT, after_election).await??;
    assert_eq!(fake.values("headless", 0), ["after election"]);
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn batches_in_flight_behind_a_failed_one_are_retried_after_it_in_order() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("pipelined", 1);
    let tp = TopicPartition::new("pipelined", 0);
    // Batches of one record each, sent at once, five at a time.
    let config = producer_config(&fake)
        .batch_size(100)
        .linger_ms(0)
        .max_in_flight_per_partition(5)
        .build()?;
    let producer = Producer::connect(config).await?;
    let value = |index: usize| format!("{index:02}-{}", "v".repeat(40));
    // Until the leader has acknowledged one batch of this producer, one is in flight.
    let first = producer
        .send(ProducerRecord::new("pipelined", value(0)))
        .await?;
    tokio::time::timeout(STEP_TIMEOUT, first).await??;

    // Hold every response, fail the next batch, and let five batches be in flight.
    let permits = fake.produce_gate.available_permits();
    fake.produce_gate.forget_permits(permits);
    fake.state()
        .produce_faults
        .push_back((tp.clone(), ErrorCode::NotLeaderOrFollower));
    let mut deliveries = Vec::new();
    for index in 1..=12 {
        deliveries.push(
            producer
                .send(ProducerRecord::new("pipelined", value(index)))
                .await?,
        );
    }
    // The first record's request, then five in flight.
    stream_requests_arrived(&fake, 6)
        .await
        .context("five batches in flight at once")?;
    fake.produce_gate.add_permits(Semaphore::MAX_PERMITS / 2);

    for (index, delivery) in deliveries.into_iter().enumerate() {
        let stored = tokio::time::timeout(STEP_TIMEOUT, delivery).await??;
        assert_eq!(stored.offset, index as i64 + 1, "record {}", index + 1);
    }
    producer.close().await?;
    let expected: Vec<String> = (0..=12).map(value).collect();
    assert_eq!(fake.values("pipelined", 0), expected, "in order, each once");
    // The batches behind the failed one (sequence 1; the fault answered it before the sequence
    // check saw it) reached the leader before its retry: they were in flight, were refused as
    // out of sequence, and went again after it.
    let sequences: Vec<i32> = fake
        .state()
        .received(&tp)
        .iter()
        .map(|batch| batch.base_sequence)
        .collect();
    let before_retry: Vec<i32> = sequences
        .iter()
        .copied()
        .take_while(|&sequence| sequence != 1)
        .collect();
    assert_eq!(before_retry, vec![0, 2, 3, 4, 5], "received: {sequences:?}");
    Ok(())
}

/// The produce stream's request timer is armed for the oldest request and left alone when that
/// one is answered; it must still time out the request that became the oldest.
#[tokio::test]
async fn an_unanswered_request_times_out_after_an_answered_one_and_is_retried() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("timed", 1);
    let config = producer_config(&fake)
        .linger_ms(0)
        .request_timeout_ms(300)
        .delivery_timeout_ms(60_000)
        .build()?;
    let producer = Producer::connect(config).await?;
    let first = producer
        .send(ProducerRecord::new("timed", "answered"))
        .await?;
    assert_eq!(tokio::time::timeout(STEP_TIMEOUT, first).await??.offset, 0);

    // Hold every response from now on: the next request is never answered on its stream.
    let permits = fake.produce_gate.available_permits();
    fake.produce_gate.forget_permits(permits);
    let second = producer.send(ProducerRecord::new("timed", "held")).await?;
    // The answered request, the held one, and its retry on a new stream, which only the held
    // request's timeout sends.
    stream_requests_arrived(&fake, 3)
        .await
        .context("the held request timed out and went again")?;

    fake.produce_gate.add_permits(Semaphore::MAX_PERMITS / 2);
    assert_eq!(tokio::time::timeout(STEP_TIMEOUT, second).await??.offset, 1);
    producer.close().await?;
    assert_eq!(
        fake.values("timed", 0),
        vec!["answered", "held"],
        "each once"
    );
    Ok(())
}

#[tokio::test]
async fn callbacks_run_in_offset_order_and_flush_waits_for_them() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("called", 1);
    fake.create("chained", 1);
    fake.state().produce_faults.push_back((
        TopicPartition::new("called", 0),
        ErrorCode::NotLeaderOrFollower,
    ));
    let config = producer_config(&fake)
        .batch_size(200)
        .linger_ms(0)
        .build()?;
    let producer = Producer::connect(config).await?;
    type Outcomes = Vec<(usize, Result<i64, Error>)>;
    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let (chained_sender, chained) = tokio::sync::oneshot::channel();
    let mut chained_sender = Some(chained_sender);
    for index in 0..50 {
        let outcomes = outcomes.clone();
        let chain = producer.clone();
        let chained_sender = if index == 20 {
            chained_sender.take()
        } else {
            None
        };
        producer
            .send_with_callback(
                ProducerRecord::new("called", format!("{index:02}")).partition(0),
                Box::new(move |outcome| {
                    if index == 10 {
                        panic!("a panicking callback must not stop the others");
                    }
                    // A callback may send; the record is only buffered here.
                    if let Some(chained_sender) = chained_sender {
                        tokio::spawn(async move {
                            let record = ProducerRecord::new("chained", "from a callback");
                            let stored = match chain.send(record).await {
                                Ok(delivery) => delivery.await,
                                Err(error) => Err(error),
                            };
                            let _ = chained_sender.send(stored.map(|metadata| metadata.offset));
                        });
                    }
                    outcomes
                        .lock()
                        .unwrap()
                        .push((index, outcome.map(|metadata| metadata.offset)));
                }),
            )
            .await?;
    }
    producer.flush().await?;
    let outcomes = outcomes.lock().unwrap().clone();
    let expected: Vec<(usize, i64)> = (0..50)
        .filter(|&index| index != 10)
        .map(|index| (index, index as i64))
        .collect();
    let got: Vec<(usize, i64)> = outcomes
        .iter()
        .map(|(index, offset)| (*index, *offset.as_ref().expect("stored")))
        .collect();
    assert_eq!(
        got, expected,
        "every callback ran before flush returned, in offset order"
    );
    assert!(
        fake.state().produce_faults.is_empty(),
        "the retried batch was hit"
    );

    // A refused record's callback gets the error.
    fake.state()
        .produce_faults
        .push_back((TopicPartition::new("called", 0), ErrorCode::MessageTooLarge));
    let refused: Arc<Mutex<Option<Result<i64, Error>>>> = Arc::default();
    let slot = refused.clone();
    producer
        .send_with_callback(
            ProducerRecord::new("called", "refused").partition(0),
            Box::new(move |outcome| {
                *slot.lock().unwrap() = Some(outcome.map(|metadata| metadata.offset));
            }),
        )
        .await?;
    producer.flush().await?;
    let refused = refused.lock().unwrap().take().expect("the callback ran");
    assert_eq!(
        refused.expect_err("refused").code(),
        Some(ErrorCode::MessageTooLarge)
    );
    let chained = tokio::time::timeout(STEP_TIMEOUT, chained).await??;
    assert_eq!(chained?, 0, "the record sent from a callback was stored");
    assert_eq!(
        fake.values("chained", 0),
        vec!["from a callback".to_string()]
    );
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_non_retriable_error_fails_the_batch_records() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("refused", 1);
    fake.state().produce_faults.push_back((
        TopicPartition::new("refused", 0),
        ErrorCode::MessageTooLarge,
    ));
    let producer = Producer::connect(producer_config(&fake).build()?).await?;
    let delivery = producer.send(ProducerRecord::new("refused", "x")).await?;
    let result = tokio::time::timeout(STEP_TIMEOUT, delivery).await?;
    match result {
        Err(error) => {
            assert_eq!(error.code(), Some(ErrorCode::MessageTooLarge));
            assert!(!error.is_retriable());
        }
        Ok(stored) => bail!("expected MESSAGE_TOO_LARGE, the record was stored at {stored:?}"),
    }
    // The partition is usable again afterwards.
    let stored = producer
        .send(ProducerRecord::new("refused", "y"))
        .await?
        .await?;
    assert_eq!(stored.offset, 0);
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_full_buffer_blocks_send_then_times_out() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("slow", 1);
    // Hold every produce response: nothing frees buffer memory until the gate opens.
    let permits = fake.produce_gate.available_permits();
    fake.produce_gate.forget_permits(permits);
    let config = producer_config(&fake)
        .buffer_memory(2_000)
        .linger_ms(0)
        .max_block_ms(300)
        .build()?;
    let producer = Producer::connect(config).await?;
    let mut deliveries = Vec::new();
    let started = Instant::now();
    let error = loop {
        ensure!(deliveries.len() < 100, "2000 bytes of buffer never filled");
        match producer
            .send(ProducerRecord::new("slow", vec![0u8; 300]))
            .await
        {
            Ok(delivery) => deliveries.push(delivery),
            Err(error) => break error,
        }
    };
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "send waited max_block_ms before failing"
    );
    assert!(!deliveries.is_empty());

    fake.produce_gate.add_permits(Semaphore::MAX_PERMITS / 2);
    for delivery in deliveries {
        tokio::time::timeout(STEP_TIMEOUT, delivery).await??;
    }
    // Memory is free again.
    producer
        .send(ProducerRecord::new("slow", vec![0u8; 300]))
        .await?
        .await?;
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn flush_sends_lingering_records_at_once() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("lingering", 1);
    let config = producer_config(&fake)
        .linger_ms(3_600_000)
        .delivery_timeout_ms(4_000_000)
        .build()?;
    let producer = Producer::connect(config).await?;
    let delivery = producer.send(ProducerRecord::new("lingering", "x")).await?;
    tokio::time::timeout(STEP_TIMEOUT, producer.flush()).await??;
    // Flush returned, so the delivery is already settled.
    let stored =
        futures::FutureExt::now_or_never(delivery).context("flush waited for the delivery")??;
    assert_eq!(stored.offset, 0);
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn acks_zero_resolves_with_offset_minus_one() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("fire", 1);
    let producer = Producer::connect(
        producer_config(&fake)
            .acks(Acks::None)
            .enable_idempotence(false)
            .build()?,
    )
    .await?;
    let stored = tokio::time::timeout(
        STEP_TIMEOUT,
        producer.send(ProducerRecord::new("fire", "x")).await?,
    )
    .await??;
    assert_eq!(stored.offset, -1);
    producer.close().await?;
    assert_eq!(fake.values("fire", 0), vec!["x".to_string()]);
    Ok(())
}

#[tokio::test]
async fn closing_rejects_new_records_and_delivers_buffered_ones() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("closing", 1);
    let config = producer_config(&fake)
        .linger_ms(3_600_000)
        .delivery_timeout_ms(4_000_000)
        .build()?;
    let producer = Producer::connect(config).await?;
    let delivery = producer
        .send(ProducerRecord::new("closing", "last"))
        .await?;
    tokio::time::timeout(STEP_TIMEOUT, producer.close()).await??;
    assert_eq!(delivery.await?.offset, 0);
    assert!(matches!(
        producer.send(ProducerRecord::new("closing", "late")).await,
        Err(Error::ProducerClosed)
    ));
    Ok(())
}

#[tokio::test]
async fn poll_is_bounded_by_max_poll_records_and_stream_tails() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("polled", 1);
    let producer = Producer::connect(producer_config(&fake).build()?).await?;
    let mut deliveries = Vec::new();
    for index in 0..12 {
        deliveries.push(
            producer
                .send(ProducerRecord::new("polled", format!("{index}")).partition(0))
                .await?,
        );
    }
    producer.flush().await?;
    for delivery in deliveries {
        delivery.await?;
    }

    let mut consumer =
        Consumer::connect(consumer_config(&fake).max_poll_records(5).build()?).await?;
    let tp = TopicPartition::new("polled", 0);
    consumer.assign(vec![tp.clone()])?;
    let mut sizes = Vec::new();
    let mut offsets = Vec::new();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while offsets.len() < 12 {
        ensure!(Instant::now() < deadline, "records missing: {offsets:?}");
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if !records.is_empty() {
            sizes.push(records.len());
        }
        offsets.extend(records.iter().map(|record| record.offset));
    }
    assert!(sizes.iter().all(|&size| size <= 5), "{sizes:?}");
    assert_eq!(offsets, (0..12).collect::<Vec<i64>>());
    assert_eq!(consumer.position(&tp).await?, 12);

    // The stream waits for the next record.
    let mut stream = std::pin::pin!(consumer.stream());
    let tail = producer
        .send(ProducerRecord::new("polled", "tail").partition(0))
        .await?;
    let next = tokio::time::timeout(STEP_TIMEOUT, stream.next())
        .await?
        .context("the stream ended")??;
    assert_eq!(next.offset, 12);
    assert_eq!(next.value.as_deref(), Some(&b"tail"[..]));
    assert_eq!(tail.await?.offset, 12);
    producer.close().await?;
    Ok(())
}

/// Six records in one partition, one batch each, and a consumer whose fetches return one batch.
async fn six_single_record_batches(
    fake: &FakeBroker,
    topic: &str,
) -> Result<(Producer, Consumer, TopicPartition)> {
    fake.create(topic, 1);
    let producer = Producer::connect(producer_config(fake).linger_ms(0).build()?).await?;
    for index in 0..6 {
        producer
            .send(ProducerRecord::new(topic, format!("{index}")).partition(0))
            .await?
            .await?;
    }
    let config = consumer_config(fake)
        .max_partition_fetch_bytes(1)
        .fetch_max_bytes(1)
        .build()?;
    let mut consumer = Consumer::connect(config).await?;
    let tp = TopicPartition::new(topic, 0);
    consumer.assign(vec![tp.clone()])?;
    Ok((producer, consumer, tp))
}

async fn fetch_arrives(fake: &FakeBroker, offset: i64, why: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let fetched = fake.fetched.notified();
        tokio::pin!(fetched);
        fetched.as_mut().enable();
        if fake.state().fetch_offsets.contains(&offset) {
            return Ok(());
        }
        tokio::time::timeout_at(deadline, fetched)
            .await
            .with_context(|| format!("no fetch for offset {offset}: {why}"))?;
    }
}

#[tokio::test]
async fn two_rounds_are_fetched_ahead_of_the_poll_and_a_seek_back_discards_them() -> Result<()> {
    let fake = start_fake().await?;
    let (producer, mut consumer, tp) = six_single_record_batches(&fake, "pipelined").await?;
    let first = consumer.poll(STEP_TIMEOUT).await?;
    assert_eq!(
        first.iter().map(|record| record.offset).collect::<Vec<_>>(),
        [0]
    );

    // Without another poll, the consumer asks for offset 1 and, once that is answered, for
    // offset 2: the broker sends the next round while the consumer decodes the one before.
    fetch_arrives(&fake, 2, "the second round was not fetched ahead").await?;

    // What was fetched ahead must not be returned after a seek back to 0 (it would skip record
    // 0), and pipelined fetches lose and repeat nothing.
    consumer.seek(&tp, 0)?;
    let mut offsets = Vec::new();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while offsets.len() < 6 {
        ensure!(Instant::now() < deadline, "records missing: {offsets:?}");
        let records = consumer.poll(Duration::from_millis(500)).await?;
        offsets.extend(records.iter().map(|record| record.offset));
    }
    assert_eq!(offsets, (0..6).collect::<Vec<i64>>());
    producer.close().await?;
    Ok(())
}

/// An application that works through polled records without awaiting anything gives the
/// runtime no chance to run a task the consumer spawned; the next fetch must leave anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_fetch_leaves_while_the_application_is_busy() -> Result<()> {
    let fake = start_fake().await?;
    let (producer, mut consumer, _) = six_single_record_batches(&fake, "busy").await?;
    // On a worker thread, as an application's task is: a test body runs on a thread of its own,
    // from which spawned tasks go to a queue every worker takes from.
    let application = tokio::spawn(async move {
        let first = consumer.poll(STEP_TIMEOUT).await?;
        assert_eq!(first.len(), 1);
        // Busy without yielding, as an application handling records; the fake broker runs on
        // the other worker.
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !fake.state().fetch_offsets.contains(&1) {
            ensure!(
                Instant::now() < deadline,
                "the fetch for offset 1 waited for the application to yield"
            );
            std::hint::spin_loop();
        }
        anyhow::Ok(consumer)
    });
    let consumer = application.await??;
    consumer.close().await?;
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_a_record_arrives() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("waiting", 1);
    let fetch_max_wait = Duration::from_secs(30);
    let config = consumer_config(&fake)
        .fetch_max_wait_ms(fetch_max_wait.as_millis() as u64)
        .build()?;
    let mut consumer = Consumer::connect(config).await?;
    consumer.assign(vec![TopicPartition::new("waiting", 0)])?;
    assert!(consumer.poll(Duration::ZERO).await?.is_empty());
    // Caught up, the consumer asks to tail over a FetchStream; this fake refuses it as
    // UNIMPLEMENTED, so the record below must come from a long poll.
    let started = Instant::now();
    let waiting = tokio::spawn(async move { consumer.poll(Duration::from_secs(60)).await });
    let producer = Producer::connect(producer_config(&fake).build()?).await?;
    producer
        .send(ProducerRecord::new("waiting", "now"))
        .await?
        .await?;
    let records = tokio::time::timeout(STEP_TIMEOUT, waiting).await???;
    assert_eq!(records.len(), 1);
    assert!(started.elapsed() < fetch_max_wait);
    producer.close().await?;
    Ok(())
}

/// Polls until the record at offset `last` arrived; returns the offsets polled on the way.
async fn poll_offsets_through(consumer: &mut Consumer, last: i64) -> Result<Vec<i64>> {
    let mut offsets = Vec::new();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while offsets.last() != Some(&last) {
        ensure!(
            Instant::now() < deadline,
            "offset {last} never arrived; polled {offsets:?}"
        );
        let records = consumer.poll(Duration::from_secs(1)).await?;
        offsets.extend(records.iter().map(|record| record.offset));
    }
    Ok(offsets)
}

#[tokio::test]
async fn a_caught_up_consumer_tails_over_a_fetch_stream_within_its_credit() -> Result<()> {
    let fake = start_fake().await?;
    fake.state().serves_fetch_streams = true;
    fake.create("tailed", 1);
    let producer = Producer::connect(producer_config(&fake).build()?).await?;
    let send = async |index: i64| -> Result<()> {
        let value = format!("{index:0>200}");
        producer
            .send(ProducerRecord::new("tailed", value))
            .await?
            .await?;
        Ok(())
    };
    let tp = TopicPartition::new("tailed", 0);
    // A 1,000-byte window: the records below fill it several times over, so the stream
    // only keeps going if the consumer grants credit back.
    let config = consumer_config(&fake).fetch_max_bytes(1_000).build()?;
    let mut consumer = Consumer::connect(config).await?;
    consumer.assign(vec![tp.clone()])?;
    send(0).await?;
    let first = consumer.poll(STEP_TIMEOUT).await?;
    assert_eq!(first.len(), 1, "a long poll reads the first record");
    let long_polls = fake.state().fetch_offsets.len();

    let mut offsets = Vec::new();
    for index in 1..=20 {
        send(index).await?;
        offsets.extend(poll_offsets_through(&mut consumer, index).await?);
    }
    assert_eq!(offsets, (1..=20).collect::<Vec<i64>>());
    {
        let state = fake.state();
        assert_eq!(state.fetch_streams_opened, 1);
        assert_eq!(
            state.fetch_offsets.len(),
            long_polls,
            "no long poll while tailing"
        );
        assert!(
            state.fetch_stream_grants.len() >= 3,
            "about 4,000 bytes through a 1,000-byte window take several grants: {:?}",
            state.fetch_stream_grants
        );
    }

    // A seek replaces the stream with one from the new position.
    consumer.seek(&tp, 5)?;
    let replayed = poll_offsets_through(&mut consumer, 20).await?;
    assert_eq!(replayed, (5..=20).collect::<Vec<i64>>());
    assert_eq!(fake.state().fetch_streams_opened, 2);
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_silent_fetch_stream_hands_over_to_a_long_poll() -> Result<()> {
    let fake = start_fake().await?;
    {
        let mut state = fake.state();
        state.serves_fetch_streams = true;
        state.fetch_streams_stall = true;
    }
    fake.create("stalled", 1);
    let producer = Producer::connect(producer_config(&fake).build()?).await?;
    let config = consumer_config(&fake)
        .request_timeout_ms(300)
        .fetch_max_wait_ms(100)
        .build()?;
    let mut consumer = Consumer::connect(config).await?;
    consumer.assign(vec![TopicPartition::new("stalled", 0)])?;
    for index in 0..3 {
        producer
            .send(ProducerRecord::new("stalled", format!("{index}")))
            .await?
            .await?;
        // The first comes from a long poll; the others would wait on the stalled stream
        // forever, but after 300 ms of silence a long poll reads them.
        assert_eq!(
            poll_offsets_through(&mut consumer, index).await?,
            vec![index]
        );
    }
    assert!(
        fake.state().fetch_streams_opened >= 2,
        "the consumer went back to tailing after each long poll"
    );
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn seeks_resolve_through_list_offsets() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("seeking", 1);
    let producer = Producer::connect(producer_config(&fake).build()?).await?;
    for index in 0..5i64 {
        let record =
            ProducerRecord::new("seeking", format!("{index}")).timestamp(10_000 + index * 100);
        producer.send(record).await?.await?;
    }
    let tp = TopicPartition::new("seeking", 0);
    let mut consumer = Consumer::connect(
        consumer_config(&fake)
            .auto_offset_reset(AutoOffsetReset::Latest)
            .build()?,
    )
    .await?;
    consumer.assign(vec![tp.clone()])?;
    assert_eq!(consumer.position(&tp).await?, 5, "latest reset");
    consumer
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await?;
    assert_eq!(consumer.position(&tp).await?, 0);
    consumer
        .seek_to_timestamp(std::slice::from_ref(&tp), 10_250)
        .await?;
    assert_eq!(consumer.position(&tp).await?, 3);
    consumer
        .seek_to_timestamp(std::slice::from_ref(&tp), 99_999)
        .await?;
    assert_eq!(
        consumer.position(&tp).await?,
        5,
        "no record after the timestamp: the end"
    );
    consumer.seek(&tp, 2)?;
    let records = consumer.poll(Duration::from_secs(5)).await?;
    assert_eq!(records.first().map(|record| record.offset), Some(2));

    let other = TopicPartition::new("seeking", 7);
    assert!(matches!(
        consumer.seek(&other, 0),
        Err(Error::NotAssigned(_))
    ));
    producer.close().await?;
    Ok(())
}

#[tokio::test]
async fn out_of_range_without_reset_is_an_error_with_the_range() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("ranged", 1);
    let producer = Producer::connect(producer_config(&fake).build()?).await?;
    for index in 0..3 {
        producer
            .send(ProducerRecord::new("ranged", format!("{index}")))
            .await?
            .await?;
    }
    let tp = TopicPartition::new("ranged", 0);
    let mut consumer = Consumer::connect(
        consumer_config(&fake)
            .auto_offset_reset(AutoOffsetReset::None)
            .build()?,
    )
    .await?;
    consumer.assign(vec![tp.clone()])?;
    assert!(matches!(
        consumer.poll(Duration::from_secs(1)).await,
        Err(Error::NoOffsetForPartition(_))
    ));
    consumer.seek(&tp, 50)?;
    let error = consumer
        .poll(Duration::from_secs(5))
        .await
        .expect_err("out of range");
    assert_eq!(error.code(), Some(ErrorCode::OffsetOutOfRange));
    assert!(
        error
            .to_string()
            .ends_with("offset 50 is out of range for ranged-0: it holds offsets 0 to 2"),
        "{error}"
    );
    producer.close().await?;
    Ok(())
}

/// An admin client of `fake`, with the default settings.
async fn admin_of(fake: &FakeBroker) -> Result<Admin> {
    let config = AdminConfig::builder()
        .bootstrap(fake.address.as_str())
        .build()?;
    Ok(Admin::connect(config).await?)
}

#[tokio::test]
async fn a_create_retried_after_it_took_effect_succeeds_and_a_different_topic_does_not()
-> Result<()> {
    let fake = start_fake().await?;
    let admin = admin_of(&fake).await?;
    // The first attempt creates the topic but times out; its retry finds the topic it asked for.
    admin
        .create_topic(NewTopic::new("answer-lost-once", 2, 1))
        .await?;
    assert_eq!(
        admin
            .describe_topic("answer-lost-once")
            .await?
            .partitions
            .len(),
        2
    );
    // A topic of the same name that is not the one asked for still fails the call.
    admin.create_topic(NewTopic::new("taken", 3, 1)).await?;
    let error = admin
        .create_topic(NewTopic::new("taken", 2, 1))
        .await
        .expect_err("a different topic exists");
    assert_eq!(error.code(), Some(ErrorCode::TopicAlreadyExists));
    Ok(())
}

#[tokio::test]
async fn admin_reports_body_errors_and_whole_request_failures() -> Result<()> {
    let fake = start_fake().await?;
    let admin = admin_of(&fake).await?;
    admin
        .create_topic(NewTopic::new("managed", 2, 1).config("retention.ms", "1000"))
        .await?;
    assert_eq!(admin.list_topics().await?, vec!["managed".to_string()]);
    let description = admin.describe_topic("managed").await?;
    assert_eq!(description.partitions.len(), 2);
    assert_eq!(description.partitions[1].leader, Some(1));

    let error = admin
        .create_topic(NewTopic::new("managed", 2, 1))
        .await
        .expect_err("exists");
    assert_eq!(error.code(), Some(ErrorCode::TopicAlreadyExists));
    let error = admin
        .create_topic(NewTopic::new("zero", 0, 1))
        .await
        .expect_err("zero partitions");
    assert_eq!(error.code(), Some(ErrorCode::InvalidPartitions));
    let error = admin
        .create_topic(NewTopic::new("bad name", 1, 1))
        .await
        .expect_err("bad name");
    assert_eq!(error.code(), Some(ErrorCode::InvalidTopicException));
    let error = admin
        .create_topic(NewTopic::new("reject-whole-request", 1, 1))
        .await
        .expect_err("rejected");
    assert_eq!(
        error.code(),
        Some(ErrorCode::InvalidRequest),
        "decoded from strata-error-code: {error}"
    );
    assert_eq!(
        error.to_string(),
        "INVALID_REQUEST (42): the request is malformed"
    );
    let error = admin.describe_topic("absent").await.expect_err("absent");
    assert_eq!(error.code(), Some(ErrorCode::UnknownTopicOrPartition));

    let configs = admin.describe_configs("managed").await?;
    assert!(
        configs.iter().any(|entry| entry.name == "retention.ms"
            && entry.value == "1000"
            && !entry.is_default)
    );
    admin
        .alter_configs("managed", &BTreeMap::new(), &["retention.ms".to_string()])
        .await?;
    let configs = admin.describe_configs("managed").await?;
    assert!(
        configs
            .iter()
            .any(|entry| entry.name == "retention.ms" && entry.is_default)
    );

    let cluster = admin.describe_cluster().await?;
    assert_eq!(cluster.cluster_id, "fake-cluster");
    assert_eq!(cluster.controller_id, Some(1));
    assert_eq!(cluster.brokers[0].address, fake.address);

    let tp = TopicPartition::new("managed", 0);
    let latest = admin
        .list_offsets(&tp, strata_client::OffsetSpec::Latest)
        .await?;
    assert_eq!(latest.map(|found| found.offset), Some(0));
    admin.delete_topic("managed").await?;
    assert!(admin.list_topics().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn admin_manages_acls_and_names_the_binding_the_broker_refused() -> Result<()> {
    let fake = start_fake().await?;
    let admin = admin_of(&fake).await?;
    let read = |topic: &str| AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: topic.to_string(),
        pattern_type: PatternType::Literal,
        principal: "User:alice".to_string(),
        host: "*".to_string(),
        operation: Operation::Read,
        permission: Permission::Allow,
    };
    let named = |topic: &str| AclFilter {
        resource_name: Some(topic.to_string()),
        ..AclFilter::any()
    };
    // Every field survives the trip.
    let deny_group = AclBinding {
        resource_type: ResourceType::Group,
        resource_name: "b".to_string(),
        pattern_type: PatternType::Prefixed,
        principal: "User:*".to_string(),
        host: "10.0.0.1".to_string(),
        operation: Operation::Describe,
        permission: Permission::Deny,
    };
    admin
        .create_acls(vec![read("a"), deny_group.clone()])
        .await?;
    assert_eq!(
        admin.describe_acls(AclFilter::any()).await?,
        [read("a"), deny_group.clone()]
    );

    // The refused binding is the error, by name; the broker kept the one it accepted.
    let error = admin
        .create_acls(vec![read("c"), read(REFUSED_ACL_TOPIC)])
        .await
        .expect_err("one binding is refused");
    assert_eq!(error.code(), Some(ErrorCode::ClusterAuthorizationFailed));
    assert!(
        error
            .to_string()
            .contains("not authorized to alter the cluster")
            && error.to_string().contains("'refused'"),
        "{error}"
    );
    assert_eq!(admin.describe_acls(named("c")).await?, [read("c")]);

    // An invalid binding fails before anything is sent.
    let requests = fake.state().acl_requests;
    let mut unprefixed = read("d");
    unprefixed.principal = "alice".to_string();
    let error = admin
        .create_acls(vec![read("e"), unprefixed])
        .await
        .expect_err("invalid");
    assert!(
        matches!(&error, Error::InvalidInput(reason) if reason.contains("principal")),
        "{error}"
    );
    assert_eq!(fake.state().acl_requests, requests);

    let deleted = admin.delete_acls(vec![named("a"), named("c")]).await?;
    assert_eq!(deleted, [read("a"), read("c")]);
    assert_eq!(admin.describe_acls(AclFilter::any()).await?, [deny_group]);
    assert!(admin.delete_acls(vec![named("a")]).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_unreachable_bootstrap_fails_cleanly() -> Result<()> {
    // Bind and drop a listener to get a port nothing listens on.
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.to_string()
    };
    let config = AdminConfig::builder()
        .bootstrap(address.as_str())
        .connect_timeout_ms(2_000)
        .build()?;
    let error = Admin::connect(config)
        .await
        .expect_err("nothing listens there");
    assert!(
        matches!(&error, Error::Transport { .. } | Error::Timeout { .. }),
        "{error:?}"
    );
    assert!(error.is_retriable());
    assert!(error.to_string().contains(&address), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_lost_response_is_retried_with_the_same_sequence_and_written_once() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("lost", 1);
    let tp = TopicPartition::new("lost", 0);
    let producer = Producer::connect(producer_config(&fake).linger_ms(0).build()?).await?;
    let producer_id = *fake
        .state()
        .producer_ids
        .first()
        .context("connect asked for a producer id")?;

    let first = producer.send(ProducerRecord::new("lost", "a")).await?;
    assert_eq!(tokio::time::timeout(STEP_TIMEOUT, first).await??.offset, 0);

    // The next batch is appended at offset 1, but its response never arrives.
    fake.state().lost_responses.push_back(tp.clone());
    let second = producer.send(ProducerRecord::new("lost", "b")).await?;
    let stored = tokio::time::timeout(STEP_TIMEOUT, second).await??;
    assert_eq!(
        stored.offset, 1,
        "the retry is answered with the original offset"
    );
    ensure!(
        fake.state().lost_responses.is_empty(),
        "the response was lost"
    );

    let third = producer.send(ProducerRecord::new("lost", "c")).await?;
    assert_eq!(tokio::time::timeout(STEP_TIMEOUT, third).await??.offset, 2);
    producer.close().await?;

    assert_eq!(fake.values("lost", 0), vec!["a", "b", "c"], "written once");
    let state = fake.state();
    assert_eq!(state.duplicates_answered, 1);
    assert_eq!(state.producer_ids, vec![producer_id], "no new producer id");
    let received = state.received(&tp);
    let summary: Vec<(i64, i16, i32, i32)> = received
        .iter()
        .map(|batch| {
            (
                batch.producer_id,
                batch.producer_epoch,
                batch.base_sequence,
                batch.record_count,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (producer_id, 0, 0, 1),
            (producer_id, 0, 1, 1),
            (producer_id, 0, 1, 1),
            (producer_id, 0, 2, 1),
        ],
        "the retry carried the same producer id, epoch and sequence"
    );
    assert_eq!(
        received[1].crc, received[2].crc,
        "the retry resent the same bytes"
    );
    Ok(())
}

#[tokio::test]
async fn sequence_and_epoch_errors_fail_the_batch_and_the_producer_gets_a_new_id() -> Result<()> {
    for code in [
        ErrorCode::OutOfOrderSequenceNumber,
        ErrorCode::InvalidProducerEpoch,
    ] {
        let fake = start_fake().await?;
        fake.create("fenced", 1);
        let tp = TopicPartition::new("fenced", 0);
        let producer = Producer::connect(producer_config(&fake).linger_ms(0).build()?).await?;
        producer
            .send(ProducerRecord::new("fenced", "before"))
            .await?
            .await?;

        fake.state().produce_faults.push_back((tp.clone(), code));
        let delivery = producer
            .send(ProducerRecord::new("fenced", "refused"))
            .await?;
        match tokio::time::timeout(STEP_TIMEOUT, delivery).await? {
            Err(error) => {
                assert_eq!(error.code(), Some(code), "{error}");
                assert!(!error.is_retriable());
            }
            Ok(stored) => bail!("expected {code}, the record was stored at {stored:?}"),
        }
        let requests_after_failure = fake.state().produce_requests.len();
        assert_eq!(
            requests_after_failure, 2,
            "{code} is not retried: one request for 'before', one for 'refused'"
        );

        // The old id's sequence has a gap now; the producer continues under a new id from 0.
        let stored = producer
            .send(ProducerRecord::new("fenced", "after"))
            .await?
            .await?;
        assert_eq!(stored.offset, 1);
        producer.close().await?;
        let state = fake.state();
        assert_eq!(state.producer_ids.len(), 2, "a new producer id for {code}");
        let last = state.received(&tp).last().cloned().context("a batch")?;
        assert_eq!(
            (last.producer_id, last.base_sequence),
            (state.producer_ids[1], 0)
        );
        drop(state);
        assert_eq!(fake.values("fenced", 0), vec!["before", "after"]);
    }
    Ok(())
}

#[tokio::test]
async fn without_idempotence_batches_carry_no_producer_id() -> Result<()> {
    let fake = start_fake().await?;
    fake.create("plain", 1);
    let config = producer_config(&fake)
        .acks(Acks::Leader)
        .enable_idempotence(false)
        .build()?;
    let producer = Producer::connect(config).await?;
    producer
        .send(ProducerRecord::new("plain", "x"))
        .await?
        .await?;
    producer.close().await?;
    let state = fake.state();
    assert!(state.producer_ids.is_empty(), "no InitProducerId");
    let received = state.received(&TopicPartition::new("plain", 0));
    assert_eq!(received.len(), 1);
    assert_eq!(
        (received[0].producer_id, received[0].base_sequence),
        (strata_record::NO_PRODUCER_ID, strata_record::NO_SEQUENCE)
    );
    Ok(())
}
