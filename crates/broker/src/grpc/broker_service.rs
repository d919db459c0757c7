use crate::BrokerState;
use crate::authorization::Caller;
use crate::client_boundary;
use crate::error::PartitionError;
use crate::grpc::status::{error_fields, to_status, with_error_code};
use crate::replica_manager::Acks;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::{join_all, select_all};
use futures::stream::FuturesOrdered;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use strata_auth::Operation;
use strata_common::ErrorCode;
use strata_proto::v1 as proto;
use strata_storage::AppendInfo;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// A fetch never holds a request open longer than this, whatever it asks for.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);
/// Largest chunk a streaming fetch sends for one partition at a time.
const STREAM_CHUNK_BYTES: u64 = 1 << 20;
/// Requests of one produce stream appended but not yet answered; the stream reads no further
/// until one is answered, which bounds what a producer can make the broker hold.
const PRODUCE_STREAM_DEPTH: usize = 8;

pub struct BrokerService {
    state: Arc<BrokerState>,
}

impl BrokerService {
    pub fn new(state: Arc<BrokerState>) -> BrokerService {
        BrokerService { state }
    }
}

fn fetch_error(
    topic: &str,
    partition: i32,
    error: PartitionError,
) -> proto::FetchPartitionResponse {
    proto::FetchPartitionResponse {
        topic: topic.to_string(),
        partition,
        error_code: error.code.code(),
        error_message: error.message,
        high_watermark: -1,
        log_start_offset: -1,
        last_stable_offset: -1,
        records: Bytes::new(),
    }
}

impl BrokerState {
    /// Counts a partition answered with `error`, and logs it when the fault is the server's (a
    /// failing disk, a bug): what a client caused, or a leadership move explains, the client is
    /// told and the metric counts, but a log line each would only bury the ones that matter.
    fn partition_error(
        &self,
        api: &'static str,
        topic: &str,
        partition: i32,
        error: &PartitionError,
    ) {
        self.metrics.partition_error(api, error.code);
        if error.code.is_server_fault() {
            tracing::warn!(
                api,
                topic,
                partition,
                code = error.code.name(),
                cause = %error.message,
                "a partition request failed by the server's fault"
            );
        }
    }

    /// One pass over the requested partitions: whatever is readable now, within the byte budgets.
    /// Once the budget is spent, later partitions are still answered (without records) so the
    /// client learns their high watermarks; the first batch found always comes back whole, so a
    /// consumer makes progress past a batch larger than its budget.
    fn read_partitions(
        &self,
        caller: Option<&Caller>,
        partitions: &[proto::FetchPartition],
        max_bytes: u64,
    ) -> Vec<proto::FetchPartitionResponse> {
        let mut remaining = max_bytes;
        let mut responses: Vec<proto::FetchPartitionResponse> =
            Vec::with_capacity(partitions.len());
        for request in partitions {
            let nothing_read_yet = responses.iter().all(|response| response.records.is_empty());
            let partition_budget = if request.partition_max_bytes > 0 {
                request.partition_max_bytes as u64
            } else {
                u64::MAX
            };
            let budget = partition_budget.min(remaining);
            if let Err(refused) = self
                .authorizer
                .topic(caller, Operation::Read, &request.topic)
            {
                // Nothing about a partition the caller may not read, not even its offsets.
                self.partition_error("fetch", &request.topic, request.partition, &refused);
                responses.push(fetch_error(&request.topic, request.partition, refused));
                continue;
            }
            let result = if budget == 0 && !nothing_read_yet {
                self.replicas
                    .partition(&request.topic, request.partition)
                    .map(|partition| {
                        (
                            Bytes::new(),
                            partition.log().log_start_offset(),
                            partition.high_watermark(),
                        )
                    })
            } else {
                self.replicas
                    .read(
                        &request.topic,
                        request.partition,
                        request.fetch_offset,
                        budget,
                    )
                    .map(|(read, high_watermark)| {
                        (read.records, read.log_start_offset, high_watermark)
                    })
            };
            responses.push(match result {
                Ok((records, log_start_offset, high_watermark)) => {
                    remaining = remaining.saturating_sub(records.len() as u64);
                    self.metrics.fetched(&request.topic, records.len());
                    proto::FetchPartitionResponse {
                        topic: request.topic.clone(),
                        partition: request.partition,
                        error_code: 0,
                        error_message: String::new(),
                        high_watermark,
                        log_start_offset,
                        last_stable_offset: high_watermark,
                        records,
                    }
                }
                Err(error) => {
                    self.partition_error("fetch", &request.topic, request.partition, &error);
                    let mut response = fetch_error(&request.topic, request.partition, error);
                    // As Kafka does, tell a consumer that asked out of range where the range is.
                    if let Ok(partition) =
                        self.replicas.partition(&request.topic, request.partition)
                    {
                        response.high_watermark = partition.high_watermark();
                        response.log_start_offset = partition.log().log_start_offset();
                    }
                    response
                }
            });
        }
        responses
    }

    fn subscribe(&self, partitions: &[proto::FetchPartition]) -> Vec<watch::Receiver<i64>> {
        partitions
            .iter()
            .filter_map(|request| {
                self.replicas
                    .partition(&request.topic, request.partition)
                    .ok()
            })
            .map(|partition| partition.subscribe())
            .collect()
    }
}

/// Waits until any of `receivers` sees a new value (or all senders are gone); forever when there
/// are none, so callers bound it with their own deadline.
pub(crate) async fn any_changed(receivers: &mut [watch::Receiver<i64>]) {
    if receivers.is_empty() {
        return futures::future::pending().await;
    }
    let changes = receivers
        .iter_mut()
        .map(|receiver| Box::pin(receiver.changed()));
    let _ = select_all(changes).await;
}

type FetchStream = Pin<Box<dyn Stream<Item = Result<proto::FetchResponse, Status>> + Send>>;

/// One consumer's `FetchStream`: the partitions it tails, each at the offset it gets next.
struct StreamedFetch {
    state: Arc<BrokerState>,
    caller: Option<Caller>,
    inbound: Streaming<proto::FetchStreamRequest>,
    /// Each `fetch_offset` is where the partition's next response starts.
    partitions: Vec<proto::FetchPartition>,
    /// Bytes granted and not yet sent; below zero after a batch larger than the grant.
    credit: i64,
    /// The partitions' high-watermark watches.
    receivers: Vec<watch::Receiver<i64>>,
}

impl StreamedFetch {
    /// Waits for records within the credit and returns them; `None` ends the stream: the
    /// consumer hung up, or every partition left it with an error.
    async fn next_response(&mut self) -> Option<proto::FetchResponse> {
        loop {
            if self.partitions.is_empty() {
                return None;
            }
            if self.credit > 0 {
                for receiver in &mut self.receivers {
                    receiver.borrow_and_update();
                }
                let budget =
                    (self.credit as u64).min(STREAM_CHUNK_BYTES * self.partitions.len() as u64);
                let mut responses =
                    self.state
                        .read_partitions(self.caller.as_ref(), &self.partitions, budget);
                responses
                    .retain(|response| response.error_code != 0 || !response.records.is_empty());
                if !responses.is_empty() {
                    self.advance_past(&responses);
                    return Some(proto::FetchResponse {
                        partitions: responses,
                    });
                }
            }
            tokio::select! {
                message = self.inbound.message() => match message {
                    Ok(Some(grant)) => {
                        self.credit = self.credit.saturating_add(grant.grant_bytes.max(0));
                    }
                    // The consumer went away or broke the stream: stop reading for it.
                    Ok(None) | Err(_) => return None,
                },
                _ = any_changed(&mut self.receivers), if self.credit > 0 => {}
            }
        }
    }

    /// Moves each partition past what `responses` send and charges it to the credit. A
    /// partition in error is reported once and leaves the stream.
    fn advance_past(&mut self, responses: &[proto::FetchPartitionResponse]) {
        let tailed = self.partitions.len();
        for response in responses {
            let is_this = |partition: &proto::FetchPartition| {
                partition.topic == response.topic && partition.partition == response.partition
            };
            if response.error_code != 0 {
                self.partitions.retain(|partition| !is_this(partition));
                continue;
            }
            self.credit -= response.records.len() as i64;
            let next_offset = strata_record::BatchIter::new(response.records.clone())
                .filter_map(Result::ok)
                .last()
                .map(|batch| batch.next_offset());
            if let (Some(next_offset), Some(partition)) =
                (next_offset, self.partitions.iter_mut().find(|p| is_this(p)))
            {
                partition.fetch_offset = next_offset;
            }
        }
        if self.partitions.len() != tailed {
            // A deleted partition's watch is closed and would report a change on every wait.
            self.receivers = self.state.subscribe(&self.partitions);
        }
    }
}

/// What a produce request still owes once its appends are done: its response, after waiting for
/// replication where `acks=all` asks for it.
pub(crate) type ProduceCompletion = Pin<Box<dyn Future<Output = proto::ProduceResponse> + Send>>;

impl BrokerState {
    /// Appends each partition's batches to its leader log, then returns the rest of the request
    /// as a future. The appends are done when this returns, so requests awaited one after another
    /// are appended in that order: what `ProduceStream` promises.
    pub(crate) async fn begin_produce(
        self: &Arc<Self>,
        caller: Option<&Caller>,
        request: proto::ProduceRequest,
        acks: Acks,
    ) -> ProduceCompletion {
        let timeout = Duration::from_millis(request.timeout_ms.clamp(1, 300_000) as u64);
        let deadline = Instant::now() + timeout;
        let correlation_id = request.correlation_id;
        let bytes = request
            .partitions
            .iter()
            .map(|partition| partition.records.len())
            .sum();
        // Held until the appends are done; a spent budget holds this stream's next read too.
        let budget_share =
            match tokio::time::timeout_at(deadline, self.request_budget.acquire(bytes)).await {
                Ok(share) => share,
                Err(_) => return refuse_produce(self, request, produce_timed_out(timeout)),
            };
        let appends = request.partitions.into_iter().map(|partition| async move {
            let append = async {
                self.authorizer
                    .topic(caller, Operation::Write, &partition.topic)?;
                client_boundary::check_produce(&partition.topic, &partition.records)?;
                let bytes = partition.records.len();
                let appended = self
                    .replicas
                    .append_as_leader(
                        &partition.topic,
                        partition.partition,
                        partition.records,
                        acks,
                    )
                    .await?;
                self.metrics.produced(&partition.topic, bytes);
                Ok(appended)
            };
            let appended = tokio::time::timeout_at(deadline, append)
                .await
                .unwrap_or_else(|_| Err(produce_timed_out(timeout)));
            (partition.topic, partition.partition, appended)
        });
        let appended = join_all(appends).await;
        drop(budget_share);
        let state = self.clone();
        Box::pin(async move {
            let completions = appended.into_iter().map(|(topic, partition, appended)| {
                let state = &state;
                async move {
                    let result = match appended {
                        Ok((info, replication)) => {
                            let remaining = deadline.saturating_duration_since(Instant::now());
                            replication.complete(info, acks, remaining).await
                        }
                        Err(error) => Err(error),
                    };
                    state.partition_produce_response(topic, partition, &result)
                }
            });
            proto::ProduceResponse {
                partitions: join_all(completions).await,
                correlation_id,
            }
        })
    }

    fn partition_produce_response(
        &self,
        topic: String,
        partition: i32,
        result: &Result<AppendInfo, PartitionError>,
    ) -> proto::PartitionProduceResponse {
        if let Err(error) = result {
            self.partition_error("produce", &topic, partition, error);
        }
        let (error_code, error_message) = error_fields(result);
        let (base_offset, log_append_time) = match result {
            Ok(info) => (info.base_offset, info.log_append_time.unwrap_or(-1)),
            Err(_) => (-1, -1),
        };
        let log_start_offset = self
            .replicas
            .partition(&topic, partition)
            .map_or(-1, |partition| partition.log().log_start_offset());
        proto::PartitionProduceResponse {
            topic,
            partition,
            error_code,
            error_message,
            base_offset,
            log_append_time,
            log_start_offset,
        }
    }
}

fn produce_timed_out(timeout: Duration) -> PartitionError {
    PartitionError::new(
        ErrorCode::RequestTimedOut,
        format!(
            "the append did not complete within {} ms",
            timeout.as_millis()
        ),
    )
}

/// Answers every partition of a request that cannot be served (bad `acks`) with `error`.
fn refuse_produce(
    state: &BrokerState,
    request: proto::ProduceRequest,
    error: PartitionError,
) -> ProduceCompletion {
    let refused = Err(error);
    let partitions = request
        .partitions
        .into_iter()
        .map(|partition| {
            state.partition_produce_response(partition.topic, partition.partition, &refused)
        })
        .collect();
    let response = proto::ProduceResponse {
        partitions,
        correlation_id: request.correlation_id,
    };
    Box::pin(std::future::ready(response))
}

/// The responses of a `ProduceStream`, in the order of its requests.
pub type ProduceResponses = ReceiverStream<Result<proto::ProduceResponse, Status>>;

impl BrokerService {
    /// Appends the produce requests of one stream in arrival order and answers them in that
    /// order. `requests` is tonic's decoder or the zero-copy one (see `record_routes`).
    pub fn serve_produce_stream<Requests>(
        &self,
        caller: Option<Caller>,
        mut requests: Requests,
    ) -> ProduceResponses
    where
        Requests: Stream<Item = Result<proto::ProduceRequest, Status>> + Send + Unpin + 'static,
    {
        let state = self.state.clone();
        let (responses, receiver) = mpsc::channel(PRODUCE_STREAM_DEPTH);
        tokio::spawn(async move {
            // Appends run one request after another, in arrival order; only the waits for
            // replication overlap. Responses leave in the same order.
            let mut pending = FuturesOrdered::new();
            let mut inbound_open = true;
            while inbound_open || !pending.is_empty() {
                tokio::select! {
                    Some(response) = pending.next(), if !pending.is_empty() => {
                        if responses.send(Ok(response)).await.is_err() {
                            return; // the client went away; its requests' fate is in the log
                        }
                    }
                    message = requests.next(), if inbound_open && pending.len() < PRODUCE_STREAM_DEPTH => {
                        match message {
                            Some(Ok(request)) => {
                                let completion = match Acks::from_wire(request.acks) {
                                    Ok(acks) => {
                                        state.begin_produce(caller.as_ref(), request, acks).await
                                    }
                                    Err(error) => refuse_produce(&state, request, error),
                                };
                                pending.push_back(completion);
                            }
                            None => inbound_open = false,
                            // A broken or malformed stream: nothing more can be answered on it.
                            // The requests already appended stay appended; the client learns why
                            // the stream ended, if it is still there to hear it.
                            Some(Err(status)) => {
                                let _ = responses.send(Err(with_error_code(status))).await;
                                return;
                            }
                        }
                    }
                }
            }
        });
        ReceiverStream::new(receiver)
    }
}

#[tonic::async_trait]
impl proto::broker_server::Broker for BrokerService {
    async fn produce(
        &self,
        request: Request<proto::ProduceRequest>,
    ) -> Result<Response<proto::ProduceResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let acks = Acks::from_wire(request.acks).map_err(to_status)?;
        let completion = self
            .state
            .begin_produce(caller.as_ref(), request, acks)
            .await;
        Ok(Response::new(completion.await))
    }

    type ProduceStreamStream = ProduceResponses;

    async fn produce_stream(
        &self,
        request: Request<Streaming<proto::ProduceRequest>>,
    ) -> Result<Response<ProduceResponses>, Status> {
        let caller = Caller::of(&request);
        Ok(Response::new(
            self.serve_produce_stream(caller, request.into_inner()),
        ))
    }

    async fn fetch(
        &self,
        request: Request<proto::FetchRequest>,
    ) -> Result<Response<proto::FetchResponse>, Status> {
        let caller = Caller::of(&request);
        let caller = caller.as_ref();
        let request = request.into_inner();
        if request.max_bytes <= 0 {
            return Err(to_status(PartitionError::new(
                ErrorCode::InvalidFetchSize,
                format!("max_bytes must be positive, got {}", request.max_bytes),
            )));
        }
        let deadline = Instant::now()
            + Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
        let min_bytes = request.min_bytes.max(0) as usize;
        // Subscribe before reading, so a produce between the read and the wait still wakes us.
        let mut receivers = self.state.subscribe(&request.partitions);
        loop {
            for receiver in &mut receivers {
                receiver.borrow_and_update();
            }
            let partitions =
                self.state
                    .read_partitions(caller, &request.partitions, request.max_bytes as u64);
            let bytes: usize = partitions
                .iter()
                .map(|partition| partition.records.len())
                .sum();
            let failed = partitions.iter().any(|partition| partition.error_code != 0);
            if bytes >= min_bytes || failed || Instant::now() >= deadline {
                return Ok(Response::new(proto::FetchResponse { partitions }));
            }
            if tokio::time::timeout_at(deadline, any_changed(&mut receivers))
                .await
                .is_err()
            {
                let partitions = self.state.read_partitions(
                    caller,
                    &request.partitions,
                    request.max_bytes as u64,
                );
                return Ok(Response::new(proto::FetchResponse { partitions }));
            }
        }
    }

    type FetchStreamStream = FetchStream;

    async fn fetch_stream(
        &self,
        request: Request<Streaming<proto::FetchStreamRequest>>,
    ) -> Result<Response<FetchStream>, Status> {
        let caller = Caller::of(&request);
        let mut inbound = request.into_inner();
        let start = inbound.message().await?.ok_or_else(|| {
            to_status(PartitionError::new(
                ErrorCode::InvalidRequest,
                "the stream closed before its first message",
            ))
        })?;
        if start.partitions.is_empty() {
            return Err(to_status(PartitionError::new(
                ErrorCode::InvalidRequest,
                "the first message must name the partitions to fetch",
            )));
        }
        let tail = StreamedFetch {
            receivers: self.state.subscribe(&start.partitions),
            state: self.state.clone(),
            caller,
            inbound,
            partitions: start.partitions,
            credit: start.grant_bytes,
        };
        // Polled by the task that sends the response whenever HTTP/2 can take more: no task or
        // channel of its own, so a pushed batch wakes one task fewer.
        let responses = futures::stream::unfold(tail, |mut tail| async move {
            let response = tail.next_response().await?;
            Some((Ok(response), tail))
        });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn list_offsets(
        &self,
        request: Request<proto::ListOffsetsRequest>,
    ) -> Result<Response<proto::ListOffsetsResponse>, Status> {
        let caller = Caller::of(&request);
        let partitions = request
            .into_inner()
            .partitions
            .into_iter()
            .map(|request| {
                let result = self
                    .state
                    .authorizer
                    .topic(caller.as_ref(), Operation::Describe, &request.topic)
                    .and_then(|()| {
                        self.state.replicas.list_offset(
                            &request.topic,
                            request.partition,
                            request.timestamp,
                        )
                    });
                let (error_code, error_message) = error_fields(&result);
                // The leader's log size rides along, so `topic describe` has it from the same
                // round trip as the offsets; only beside an answer, as an error has no log.
                let size_bytes = match &result {
                    Ok(_) => self
                        .state
                        .replicas
                        .log_size(&request.topic, request.partition)
                        .ok()
                        .map(|size| i64::try_from(size).unwrap_or(i64::MAX)),
                    Err(_) => None,
                };
                let (offset, timestamp) = match result {
                    Ok(Some(found)) => (found.offset, found.timestamp),
                    Ok(None) | Err(_) => (-1, -1),
                };
                proto::ListOffsetsPartitionResponse {
                    topic: request.topic,
                    partition: request.partition,
                    error_code,
                    error_message,
                    timestamp,
                    offset,
                    size_bytes,
                }
            })
            .collect();
        Ok(Response::new(proto::ListOffsetsResponse { partitions }))
    }

    async fn init_producer_id(
        &self,
        request: Request<proto::InitProducerIdRequest>,
    ) -> Result<Response<proto::InitProducerIdResponse>, Status> {
        self.state
            .authorizer
            .idempotent_producer(Caller::of(&request).as_ref())
            .map_err(to_status)?;
        if !request.into_inner().transactional_id.is_empty() {
            return Err(to_status(PartitionError::new(
                ErrorCode::InvalidRequest,
                "transactional producers are not supported",
            )));
        }
        let result = self.state.node.allocate_producer_id();
        let (error_code, error_message) = error_fields(&result);
        Ok(Response::new(proto::InitProducerIdResponse {
            error_code,
            error_message,
            producer_id: result.unwrap_or(-1),
            producer_epoch: 0,
        }))
    }

    async fn metadata(
        &self,
        request: Request<proto::MetadataRequest>,
    ) -> Result<Response<proto::MetadataResponse>, Status> {
        let caller = Caller::of(&request);
        let may_describe = |topic: &str| {
            self.state
                .authorizer
                .topic(caller.as_ref(), Operation::Describe, topic)
        };
        let request = request.into_inner();
        // Served from this node's copy of the replicated metadata, which trails the controller
        // leader by at most the replication delay; clients refresh on NOT_LEADER_OR_FOLLOWER.
        let state = self.state.controller.metadata().borrow().clone();
        let topic_metadata = |name: &str| -> proto::TopicMetadata {
            // Refused before existence is checked, so a caller cannot probe which topics exist.
            if let Err(refused) = may_describe(name) {
                return proto::TopicMetadata {
                    name: name.to_string(),
                    error_code: refused.code.code(),
                    error_message: refused.message,
                    partitions: Vec::new(),
                };
            }
            let Some(topic) = state.topic(name) else {
                return proto::TopicMetadata {
                    name: name.to_string(),
                    error_code: ErrorCode::UnknownTopicOrPartition.code(),
                    error_message: format!("topic '{name}' does not exist"),
                    partitions: Vec::new(),
                };
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| proto::PartitionMetadata {
                    partition: partition.partition,
                    error_code: if partition.leader < 0 {
                        ErrorCode::LeaderNotAvailable.code()
                    } else {
                        0
                    },
                    leader_id: partition.leader,
                    leader_epoch: partition.leader_epoch,
                    replicas: partition.replicas.clone(),
                    isr: partition.isr.clone(),
                })
                .collect();
            proto::TopicMetadata {
                name: topic.name.clone(),
                error_code: 0,
                error_message: String::new(),
                partitions,
            }
        };
        let topics = if request.topics.is_empty() {
            // Listing everything lists what the caller may describe, as Kafka does.
            state
                .topics
                .keys()
                .filter(|name| may_describe(name).is_ok())
                .map(|name| topic_metadata(name))
                .collect()
        } else {
            request
                .topics
                .iter()
                .map(|name| topic_metadata(name))
                .collect()
        };
        let brokers = state
            .brokers
            .values()
            .map(|broker| proto::BrokerMetadata {
                node_id: broker.broker_id,
                address: broker.address.clone(),
                fenced: broker.fenced,
                offline_log_dirs: broker.offline_log_dirs.clone(),
            })
            .collect();
        Ok(Response::new(proto::MetadataResponse {
            cluster_id: state.cluster_id.clone(),
            controller_id: self.state.controller.leader_id().unwrap_or(-1),
            brokers,
            topics,
        }))
    }
}
