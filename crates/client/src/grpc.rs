//! The edge between the client and the wire: every RPC, and the conversion of prost messages to
//! and from the client's domain types.
//!
//! Architecture invariant: this is the only module of the crate that names a prost type, so the
//! public API never leaks generated code and a change to the `.proto` is absorbed here.
//!
//! Errors arrive two ways, as the proto file describes: a per-partition (or per-topic)
//! `error_code` + `error_message` in the response body, or, for a request that fails as a whole,
//! a `tonic::Status` whose `strata-error-code` metadata carries the numeric code.
//! [`status_to_error`] decodes the second; [`body_error`] the first.

use crate::credentials::Credentials;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};
use strata_auth::{AclBinding, AclFilter};
use strata_tls::ClientTls;

use bytes::Bytes;
use strata_common::{ErrorCode, TopicPartition};
use strata_proto::v1 as wire;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::broker_client::BrokerClient;
use strata_proto::v1::group_coordinator_client::GroupCoordinatorClient;
use strata_proto::zero_copy;
use tonic::transport::Channel;

use crate::descriptions::{
    BrokerNode, ConfigEntry, GroupDescription, GroupListing, MemberDescription, NewTopic,
    OffsetAndMetadata, PartitionInfo, ProducerIdAndEpoch, ShareGroupDescription,
    SharePartitionDescription, TopicDescription, UserDescription,
};
use crate::error::{Error, Result};
use crate::metadata::MetadataSnapshot;

/// The gRPC metadata key through which the broker reports a whole-request failure's error code.
pub const ERROR_CODE_METADATA_KEY: &str = "strata-error-code";

/// `ListOffsets` query for the log start offset.
pub(crate) const EARLIEST_TIMESTAMP: i64 = -2;
/// `ListOffsets` query for the high watermark.
pub(crate) const LATEST_TIMESTAMP: i64 = -1;

/// A broker to talk to: its channel and the address it was opened to, for error messages.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    pub address: String,
    pub channel: Channel,
    /// `Basic base64(user:password)`, sent with every call when the client has credentials.
    pub authorization: Option<tonic::metadata::AsciiMetadataValue>,
}

/// Turns a failed call into the client's error.
///
/// A status carrying `strata-error-code` is the broker speaking: its code and message are kept.
/// Without it, a status that has a local source (connection refused, reset, h2 error) or says
/// `UNAVAILABLE` is a transport failure, which is retriable; anything else the broker sent
/// without a code is an unexpected server error.
pub(crate) fn status_to_error(status: &tonic::Status, address: &str) -> Error {
    if let Some(code) = status
        .metadata()
        .get(ERROR_CODE_METADATA_KEY)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<i32>().ok())
    {
        let code = ErrorCode::from_code(code);
        // The broker starts the message with the code's name for readers of the raw status;
        // the error prints the code itself, so the name would show twice.
        let message = status.message();
        let message = message
            .strip_prefix(code.name())
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(message);
        return Error::broker(code, message);
    }
    let has_local_source = std::error::Error::source(status).is_some();
    // tonic enforces the request's deadline itself too, and reports it as CANCELLED.
    let deadline_passed = status.code() == tonic::Code::Cancelled
        && status.message() == tonic::TimeoutExpired(()).to_string();
    match status.code() {
        _ if deadline_passed => Error::Timeout {
            operation: format!("waiting for broker {address}"),
            elapsed: Duration::ZERO,
        },
        tonic::Code::DeadlineExceeded => Error::Timeout {
            operation: format!("waiting for broker {address}: {}", status.message()),
            elapsed: Duration::ZERO,
        },
        tonic::Code::Unavailable | tonic::Code::Cancelled => Error::Transport {
            address: address.to_string(),
            message: describe_status(status),
        },
        _ if has_local_source => Error::Transport {
            address: address.to_string(),
            message: describe_status(status),
        },
        code => Error::broker(
            ErrorCode::UnknownServerError,
            format!("gRPC status {code:?}: {}", status.message()),
        ),
    }
}

fn describe_status(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    // Error chains are short; the bound only guards against a cycle in a foreign error type.
    for _ in 0..16 {
        let Some(error) = source else { break };
        let cause = error.to_string();
        if !text.contains(&cause) {
            text = if text.is_empty() {
                cause
            } else {
                format!("{text}: {cause}")
            };
        }
        source = error.source();
    }
    text
}

/// A whole chain of `source()`s as one line, for transport errors whose top level says only
/// "transport error".
pub(crate) fn describe_error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    for _ in 0..16 {
        let Some(cause) = source else { break };
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The error a response body reports for one partition or topic, if any.
pub(crate) fn body_error(
    code: i32,
    message: &str,
    context: impl FnOnce() -> String,
) -> Option<Error> {
    if code == ErrorCode::None.code() {
        return None;
    }
    let code = ErrorCode::from_code(code);
    let message = if message.is_empty() {
        context()
    } else {
        message.to_string()
    };
    Some(Error::broker(code, message))
}

/// Opens a channel to `address` (`host:port`), over TLS when `tls` is given; every call made on
/// it carries `credentials` when given.
pub(crate) async fn connect(
    address: &str,
    connect_timeout: Duration,
    tls: Option<&ClientTls>,
    credentials: Option<&Credentials>,
) -> Result<Connection> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|error| Error::Config(format!("'{address}' is not a valid host:port: {error}")))?
        .connect_timeout(connect_timeout);
    let endpoint = strata_proto::http2::endpoint(endpoint);
    let started = Instant::now();
    let channel =
        match tokio::time::timeout(connect_timeout, strata_tls::channel(endpoint, tls)).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(error)) => {
                return Err(Error::Transport {
                    address: address.to_string(),
                    message: describe_error_chain(&error),
                });
            }
            Err(_) => {
                return Err(Error::timeout(
                    format!("connecting to {address}"),
                    started.elapsed(),
                ));
            }
        };
    Ok(Connection {
        address: address.to_string(),
        channel,
        authorization: credentials.map(Credentials::authorization),
    })
}

/// Runs one RPC with a client-side deadline (the broker also sees it as `grpc-timeout`).
async fn call<T, F>(connection: &Connection, rpc: &str, timeout: Duration, future: F) -> Result<T>
where
    F: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(timeout, future).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        // Whichever noticed the deadline first, the error says what was waited for, and how long.
        Ok(Err(status)) => match status_to_error(&status, &connection.address) {
            Error::Timeout { .. } => Err(rpc_timeout(connection, rpc, timeout)),
            other => Err(other),
        },
        Err(_) => Err(rpc_timeout(connection, rpc, timeout)),
    }
}

fn rpc_timeout(connection: &Connection, rpc: &str, timeout: Duration) -> Error {
    Error::timeout(
        format!("waiting for {rpc} from {}", connection.address),
        timeout,
    )
}

// tonic refuses responses above 4 MiB by default. What a broker sends back is bounded by what
// the client asked for (a fetch by `fetch_max_bytes`, 50 MiB by default), so the client sets no
// limit of its own rather than fail a fetch it requested.

fn broker_client(connection: &Connection) -> BrokerClient<Channel> {
    BrokerClient::new(connection.channel.clone()).max_decoding_message_size(usize::MAX)
}

fn admin_client(connection: &Connection) -> AdminClient<Channel> {
    AdminClient::new(connection.channel.clone()).max_decoding_message_size(usize::MAX)
}

fn group_client(connection: &Connection) -> GroupCoordinatorClient<Channel> {
    GroupCoordinatorClient::new(connection.channel.clone()).max_decoding_message_size(usize::MAX)
}

impl Connection {
    /// A call's request: its deadline, and the user's credentials when the client has them.
    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        request
    }
}

// ---- Metadata ----

/// Asks for `topics` (all topics when empty).
pub(crate) async fn metadata(
    connection: &Connection,
    topics: &[String],
    timeout: Duration,
) -> Result<MetadataSnapshot> {
    let mut client = broker_client(connection);
    let message = wire::MetadataRequest {
        topics: topics.to_vec(),
    };
    let response = call(
        connection,
        "Metadata",
        timeout,
        client.metadata(connection.request(message, timeout)),
    )
    .await?;
    Ok(metadata_from_wire(response))
}

fn metadata_from_wire(response: wire::MetadataResponse) -> MetadataSnapshot {
    let brokers = response
        .brokers
        .into_iter()
        .map(|broker| {
            let node = BrokerNode {
                node_id: broker.node_id,
                address: broker.address,
                fenced: broker.fenced,
                offline_log_dirs: broker.offline_log_dirs,
            };
            (node.node_id, node)
        })
        .collect();
    let topics = response
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.clone();
            let description = match body_error(topic.error_code, &topic.error_message, || {
                format!("topic '{}' is not available", topic.name)
            }) {
                Some(error) => Err(error),
                None => {
                    let mut partitions: Vec<PartitionInfo> = topic
                        .partitions
                        .into_iter()
                        .map(|partition| PartitionInfo {
                            partition: partition.partition,
                            leader: (partition.leader_id >= 0).then_some(partition.leader_id),
                            leader_epoch: partition.leader_epoch,
                            replicas: partition.replicas,
                            isr: partition.isr,
                        })
                        .collect();
                    partitions.sort_by_key(|partition| partition.partition);
                    Ok(TopicDescription {
                        name: topic.name,
                        partitions,
                    })
                }
            };
            (name, description)
        })
        .collect();
    MetadataSnapshot {
        cluster_id: response.cluster_id,
        controller_id: (response.controller_id >= 0).then_some(response.controller_id),
        brokers,
        topics,
    }
}

// ---- Produce ----

/// Where a produced batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProducedBatch {
    pub base_offset: i64,
    /// The broker's append time, when the topic uses LogAppendTime.
    pub log_append_time: Option<i64>,
}

/// A produce request carrying batches of several partitions, all led by one broker.
pub(crate) struct ProduceRequest(wire::ProduceRequest);

/// Each partition's outcome in a produce response.
pub(crate) type ProduceResults = Vec<(TopicPartition, Result<ProducedBatch>)>;

impl ProduceRequest {
    pub(crate) fn new(
        acks: i32,
        timeout: Duration,
        partitions: Vec<(TopicPartition, Bytes)>,
    ) -> ProduceRequest {
        ProduceRequest(wire::ProduceRequest {
            acks,
            timeout_ms: duration_ms_i32(timeout),
            partitions: partitions
                .into_iter()
                .map(|(topic_partition, records)| wire::PartitionRecords {
                    topic: topic_partition.topic,
                    partition: topic_partition.partition,
                    records,
                })
                .collect(),
            correlation_id: 0,
        })
    }

    /// Pairs the request with its response on a `ProduceStream`.
    pub(crate) fn set_correlation_id(&mut self, correlation_id: u64) {
        self.0.correlation_id = correlation_id;
    }
}

/// The responses of a `ProduceStream`, in the order of its requests.
pub(crate) struct ProduceResponses {
    address: String,
    responses: tonic::Streaming<wire::ProduceResponse>,
}

impl ProduceResponses {
    /// The next response as `(correlation_id, results)`; `None` when the broker ended the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<(u64, ProduceResults)>> {
        match self.responses.message().await {
            Ok(Some(response)) => Ok(Some((response.correlation_id, produce_results(response)))),
            Ok(None) => Ok(None),
            Err(status) => Err(status_to_error(&status, &self.address)),
        }
    }
}

fn produce_results(response: wire::ProduceResponse) -> ProduceResults {
    response
        .partitions
        .into_iter()
        .map(|partition| {
            let topic_partition = TopicPartition::new(partition.topic, partition.partition);
            let result = match body_error(partition.error_code, &partition.error_message, || {
                format!("producing to {topic_partition} failed")
            }) {
                Some(error) => Err(error),
                None => Ok(ProducedBatch {
                    base_offset: partition.base_offset,
                    log_append_time: (partition.log_append_time >= 0)
                        .then_some(partition.log_append_time),
                }),
            };
            (topic_partition, result)
        })
        .collect()
}

/// Opens a `ProduceStream` that sends the requests `requests` yields, in order. Each batch
/// goes to the socket from the producer's own buffer (see `strata_proto::zero_copy`).
pub(crate) async fn open_produce_stream(
    connection: &Connection,
    requests: tokio::sync::mpsc::UnboundedReceiver<ProduceRequest>,
    timeout: Duration,
) -> Result<ProduceResponses> {
    use tokio_stream::StreamExt;
    let requests =
        tokio_stream::wrappers::UnboundedReceiverStream::new(requests).map(|request| request.0);
    let responses = call(
        connection,
        "ProduceStream",
        timeout,
        zero_copy::streaming(
            connection.channel.clone(),
            zero_copy::paths::PRODUCE_STREAM,
            {
                let mut request = tonic::Request::new(requests);
                if let Some(authorization) = &connection.authorization {
                    request
                        .metadata_mut()
                        .insert("authorization", authorization.clone());
                }
                request
            },
        ),
    )
    .await?;
    Ok(ProduceResponses {
        address: connection.address.clone(),
        responses,
    })
}

// ---- InitProducerId ----

/// Asks for a fresh producer id and epoch for an idempotent producer (no transactional id).
pub(crate) async fn init_producer_id(
    connection: &Connection,
    timeout: Duration,
) -> Result<ProducerIdAndEpoch> {
    let mut client = broker_client(connection);
    let message = wire::InitProducerIdRequest {
        transactional_id: String::new(),
    };
    let response = call(
        connection,
        "InitProducerId",
        timeout,
        client.init_producer_id(connection.request(message, timeout)),
    )
    .await?;
    if let Some(error) = body_error(response.error_code, &response.error_message, || {
        format!("{} could not allocate a producer id", connection.address)
    }) {
        return Err(error);
    }
    let epoch = i16::try_from(response.producer_epoch).map_err(|_| {
        Error::broker(
            ErrorCode::UnknownServerError,
            format!(
                "{} answered InitProducerId with epoch {}, outside the batch header's 16 bits",
                connection.address, response.producer_epoch
            ),
        )
    })?;
    if response.producer_id < 0 || epoch < 0 {
        return Err(Error::broker(
            ErrorCode::UnknownServerError,
            format!(
                "{} answered InitProducerId without an error but with producer id {} epoch {epoch}",
                connection.address, response.producer_id
            ),
        ));
    }
    Ok(ProducerIdAndEpoch {
        producer_id: response.producer_id,
        epoch,
    })
}

// ---- Fetch ----

/// One partition to fetch and from where.
#[derive(Clone, Debug)]
pub(crate) struct FetchTarget {
    pub topic_partition: TopicPartition,
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
}

/// A long-poll fetch: the broker answers once `min_bytes` are available or `max_wait` passed.
#[derive(Clone, Debug)]
pub(crate) struct FetchParameters {
    pub max_wait: Duration,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub targets: Vec<FetchTarget>,
}

/// What one partition's fetch returned.
#[derive(Clone, Debug)]
pub(crate) struct FetchedPartition {
    pub topic_partition: TopicPartition,
    pub error: Option<Error>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Whole batches, concatenated; the first contains the fetch offset.
    pub records: Bytes,
}

/// `request_timeout` bounds the wait on top of `max_wait`, which the broker may use in full.
pub(crate) async fn fetch(
    connection: &Connection,
    parameters: FetchParameters,
    request_timeout: Duration,
) -> Result<Vec<FetchedPartition>> {
    let timeout = parameters.max_wait + request_timeout;
    let message = wire::FetchRequest {
        max_wait_ms: duration_ms_i32(parameters.max_wait),
        min_bytes: parameters.min_bytes,
        max_bytes: parameters.max_bytes,
        isolation_level: wire::IsolationLevel::ReadUncommitted as i32,
        partitions: fetch_partitions_to_wire(parameters.targets),
    };
    let response = call(
        connection,
        "Fetch",
        timeout,
        // Records arrive as slices of the frames read from the socket, not copied into one
        // buffer as the generated client would.
        zero_copy::unary::<_, wire::FetchResponse>(
            connection.channel.clone(),
            zero_copy::paths::FETCH,
            connection.request(message, timeout),
        ),
    )
    .await?;
    Ok(fetched_partitions(response))
}

fn fetch_partitions_to_wire(targets: Vec<FetchTarget>) -> Vec<wire::FetchPartition> {
    targets
        .into_iter()
        .map(|target| wire::FetchPartition {
            topic: target.topic_partition.topic,
            partition: target.topic_partition.partition,
            fetch_offset: target.fetch_offset,
            partition_max_bytes: target.partition_max_bytes,
        })
        .collect()
}

fn fetched_partitions(response: wire::FetchResponse) -> Vec<FetchedPartition> {
    response
        .partitions
        .into_iter()
        .map(|partition| {
            let topic_partition = TopicPartition::new(partition.topic, partition.partition);
            let error = body_error(partition.error_code, &partition.error_message, || {
                format!("fetching from {topic_partition} failed")
            });
            FetchedPartition {
                topic_partition,
                error,
                high_watermark: partition.high_watermark,
                log_start_offset: partition.log_start_offset,
                records: partition.records,
            }
        })
        .collect()
}

// ---- FetchStream ----

/// An open `FetchStream`: the broker pushes each partition's new batches as they become
/// readable, never more bytes than were granted and not yet sent.
pub(crate) struct FetchStream {
    address: String,
    grants: tokio::sync::mpsc::UnboundedSender<wire::FetchStreamRequest>,
    responses: tonic::Streaming<wire::FetchResponse>,
}

impl FetchStream {
    /// Lets the broker send `bytes` more. A stream the broker already closed shows as such on
    /// the next [`next`](Self::next), so a grant that cannot be delivered is dropped here.
    pub fn grant(&self, bytes: i64) {
        let _ = self.grants.send(wire::FetchStreamRequest {
            partitions: Vec::new(),
            grant_bytes: bytes,
            max_wait_ms: 0,
        });
    }

    /// The partitions of the next response; `None` once the broker ended the stream. A
    /// partition answered with an error has left the stream. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<Vec<FetchedPartition>>> {
        match self.responses.message().await {
            Ok(response) => Ok(response.map(fetched_partitions)),
            Err(status) => Err(status_to_error(&status, &self.address)),
        }
    }
}

/// Opens a `FetchStream` of `targets` with `grant_bytes` of initial credit. `Ok(None)` when the
/// broker does not offer the call (it answered `UNIMPLEMENTED`).
pub(crate) async fn open_fetch_stream(
    connection: &Connection,
    targets: Vec<FetchTarget>,
    grant_bytes: i64,
    max_wait: Duration,
    timeout: Duration,
) -> Result<Option<FetchStream>> {
    let (grants, requests) = tokio::sync::mpsc::unbounded_channel();
    grants
        .send(wire::FetchStreamRequest {
            partitions: fetch_partitions_to_wire(targets),
            grant_bytes,
            max_wait_ms: duration_ms_i32(max_wait),
        })
        .expect("the receiver is alive");
    let mut client = broker_client(connection);
    let requests = tokio_stream::wrappers::UnboundedReceiverStream::new(requests);
    let opened = tokio::time::timeout(timeout, client.fetch_stream(requests)).await;
    match opened {
        Ok(Ok(response)) => Ok(Some(FetchStream {
            address: connection.address.clone(),
            grants,
            responses: response.into_inner(),
        })),
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => Ok(None),
        Ok(Err(status)) => Err(status_to_error(&status, &connection.address)),
        Err(_) => Err(Error::timeout(
            format!("opening FetchStream to {}", connection.address),
            timeout,
        )),
    }
}

// ---- ListOffsets ----

/// An offset found by `ListOffsets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ListedOffset {
    /// `None` when a timestamp query found no record at or after the timestamp.
    pub offset: Option<i64>,
    /// The found record's timestamp, for timestamp queries.
    pub timestamp: Option<i64>,
    /// Bytes of the answering leader's log; `None` from a broker too old to say.
    pub size_bytes: Option<u64>,
}

/// `query` per partition: [`EARLIEST_TIMESTAMP`], [`LATEST_TIMESTAMP`] or a timestamp in ms.
pub(crate) async fn list_offsets(
    connection: &Connection,
    queries: Vec<(TopicPartition, i64)>,
    timeout: Duration,
) -> Result<Vec<(TopicPartition, Result<ListedOffset>)>> {
    let mut client = broker_client(connection);
    let message = wire::ListOffsetsRequest {
        partitions: queries
            .into_iter()
            .map(|(topic_partition, timestamp)| wire::ListOffsetsPartition {
                topic: topic_partition.topic,
                partition: topic_partition.partition,
                timestamp,
            })
            .collect(),
    };
    let response = call(
        connection,
        "ListOffsets",
        timeout,
        client.list_offsets(connection.request(message, timeout)),
    )
    .await?;
    Ok(response
        .partitions
        .into_iter()
        .map(|partition| {
            let topic_partition = TopicPartition::new(partition.topic, partition.partition);
            let result = match body_error(partition.error_code, &partition.error_message, || {
                format!("listing offsets of {topic_partition} failed")
            }) {
                Some(error) => Err(error),
                None => Ok(ListedOffset {
                    offset: (partition.offset >= 0).then_some(partition.offset),
                    timestamp: (partition.timestamp >= 0).then_some(partition.timestamp),
                    size_bytes: partition
                        .size_bytes
                        .and_then(|size| u64::try_from(size).ok()),
                }),
            };
            (topic_partition, result)
        })
        .collect())
}

// ---- Admin ----

fn single_topic_result(results: Vec<wire::TopicResult>, name: &str, operation: &str) -> Result<()> {
    let Some(result) = results.into_iter().find(|result| result.name == name) else {
        return Err(Error::broker(
            ErrorCode::UnknownServerError,
            format!("the broker's {operation} response does not mention topic '{name}'"),
        ));
    };
    match body_error(result.error_code, &result.error_message, || {
        format!("{operation} '{name}' failed")
    }) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

pub(crate) async fn create_topic(
    connection: &Connection,
    topic: &NewTopic,
    timeout: Duration,
) -> Result<()> {
    let mut client = admin_client(connection);
    let message = wire::CreateTopicsRequest {
        topics: vec![wire::CreatableTopic {
            name: topic.name.clone(),
            num_partitions: topic.partitions,
            replication_factor: topic.replication_factor,
            configs: topic.configs.clone().into_iter().collect(),
        }],
        timeout_ms: duration_ms_i32(timeout),
        validate_only: false,
    };
    let response = call(
        connection,
        "CreateTopics",
        timeout,
        client.create_topics(connection.request(message, timeout)),
    )
    .await?;
    single_topic_result(response.topics, &topic.name, "creating topic")
}

pub(crate) async fn delete_topic(
    connection: &Connection,
    name: &str,
    timeout: Duration,
) -> Result<()> {
    let mut client = admin_client(connection);
    let message = wire::DeleteTopicsRequest {
        names: vec![name.to_string()],
        timeout_ms: duration_ms_i32(timeout),
    };
    let response = call(
        connection,
        "DeleteTopics",
        timeout,
        client.delete_topics(connection.request(message, timeout)),
    )
    .await?;
    single_topic_result(response.topics, name, "deleting topic")
}

pub(crate) async fn create_partitions(
    connection: &Connection,
    name: &str,
    total: i32,
    timeout: Duration,
) -> Result<()> {
    let mut client = admin_client(connection);
    let message = wire::CreatePartitionsRequest {
        topics: vec![wire::PartitionsIncrease {
            name: name.to_string(),
            count: total,
        }],
        timeout_ms: duration_ms_i32(timeout),
        validate_only: false,
    };
    let response = call(
        connection,
        "CreatePartitions",
        timeout,
        client.create_partitions(connection.request(message, timeout)),
    )
    .await?;
    single_topic_result(response.topics, name, "adding partitions to topic")
}

/// A user's SCRAM credentials: what AlterUserScramCredentials sets.
pub(crate) async fn alter_user(
    connection: &Connection,
    user: &str,
    upsertions: Vec<(strata_auth::Mechanism, u32, Vec<u8>, Vec<u8>)>,
    deletions: Vec<strata_auth::Mechanism>,
    timeout: Duration,
) -> Result<()> {
    let mut client = admin_client(connection);
    let message = wire::AlterUserScramCredentialsRequest {
        upsertions: upsertions
            .into_iter()
            .map(
                |(mechanism, iterations, salt, salted_password)| wire::ScramCredentialUpsertion {
                    user: user.to_string(),
                    mechanism: i32::from(mechanism.kafka_type()),
                    iterations: i32::try_from(iterations).unwrap_or(i32::MAX),
                    salt: salt.into(),
                    salted_password: salted_password.into(),
                },
            )
            .collect(),
        deletions: deletions
            .into_iter()
            .map(|mechanism| wire::ScramCredentialDeletion {
                user: user.to_string(),
                mechanism: i32::from(mechanism.kafka_type()),
            })
            .collect(),
    };
    let response = call(
        connection,
        "AlterUserScramCredentials",
        timeout,
        client.alter_user_scram_credentials(connection.request(message, timeout)),
    )
    .await?;
    for result in response.results {
        if let Some(error) = body_error(result.error_code, &result.error_message, || {
            format!("changing user '{}'", result.user)
        }) {
            return Err(error);
        }
    }
    Ok(())
}

/// Every user (`users` empty) or the named ones, with their mechanisms and iterations.
pub(crate) async fn describe_users(
    connection: &Connection,
    users: Vec<String>,
    timeout: Duration,
) -> Result<Vec<UserDescription>> {
    let mut client = admin_client(connection);
    let message = wire::DescribeUserScramCredentialsRequest { users };
    let response = call(
        connection,
        "DescribeUserScramCredentials",
        timeout,
        client.describe_user_scram_credentials(connection.request(message, timeout)),
    )
    .await?;
    let mut described = Vec::new();
    for user in response.users {
        if let Some(error) = body_error(user.error_code, &user.error_message, || {
            format!("describing user '{}'", user.user)
        }) {
            return Err(error);
        }
        described.push(UserDescription {
            user: user.user,
            mechanisms: user
                .credentials
                .into_iter()
                .filter_map(|info| {
                    let mechanism = i8::try_from(info.mechanism)
                        .ok()
                        .and_then(strata_auth::Mechanism::from_kafka_type)?;
                    Some((mechanism, u32::try_from(info.iterations).unwrap_or(0)))
                })
                .collect(),
        });
    }
    Ok(described)
}

// ---- ACLs ----

/// A binding the broker sent. One this client cannot read (a code from a newer broker) fails
/// the call rather than go missing from a listing or a deletion report.
fn binding_from_wire(binding: wire::AclBinding) -> Result<AclBinding> {
    AclBinding::try_from(binding).map_err(|invalid| {
        Error::broker(
            ErrorCode::UnknownServerError,
            format!("the broker sent an ACL this client cannot read: {invalid}"),
        )
    })
}

fn filter_to_wire(filter: &AclFilter) -> wire::AclFilter {
    let (resource_type, operation, permission) = filter.codes();
    wire::AclFilter {
        resource_type: resource_type.into(),
        resource_name: filter.resource_name.clone(),
        pattern_type: filter.pattern.code().into(),
        principal: filter.principal.clone(),
        host: filter.host.clone(),
        operation: operation.into(),
        permission: permission.into(),
    }
}

/// A binding in a sentence, for the error that names the one the broker refused.
fn describe_binding(binding: &AclBinding) -> String {
    format!(
        "{} {} {} on {} {} '{}' from host {}",
        binding.permission,
        binding.principal,
        binding.operation,
        binding.pattern_type,
        binding.resource_type,
        binding.resource_name,
        binding.host
    )
}

/// Stores `bindings`; the first one the broker refused is the error, naming the binding. The
/// broker stores the others (as Kafka's does), so a retry of the whole call changes nothing for
/// them.
pub(crate) async fn create_acls(
    connection: &Connection,
    bindings: &[AclBinding],
    timeout: Duration,
) -> Result<()> {
    let mut client = admin_client(connection);
    let message = wire::CreateAclsRequest {
        creations: bindings.iter().map(wire::AclBinding::from).collect(),
    };
    let response = call(
        connection,
        "CreateAcls",
        timeout,
        client.create_acls(connection.request(message, timeout)),
    )
    .await?;
    if response.results.len() != bindings.len() {
        return Err(Error::broker(
            ErrorCode::UnknownServerError,
            format!(
                "the broker answered {} ACLs with {} results",
                bindings.len(),
                response.results.len()
            ),
        ));
    }
    for (binding, result) in bindings.iter().zip(response.results) {
        if result.error_code != ErrorCode::None.code() {
            let reason = match result.error_message.as_str() {
                "" => "refused",
                reason => reason,
            };
            return Err(Error::broker(
                ErrorCode::from_code(result.error_code),
                format!("{reason} (ACL: {})", describe_binding(binding)),
            ));
        }
    }
    Ok(())
}

/// The bindings `filter` matches.
pub(crate) async fn describe_acls(
    connection: &Connection,
    filter: &AclFilter,
    timeout: Duration,
) -> Result<Vec<AclBinding>> {
    let mut client = admin_client(connection);
    let message = wire::DescribeAclsRequest {
        filter: Some(filter_to_wire(filter)),
    };
    let response = call(
        connection,
        "DescribeAcls",
        timeout,
        client.describe_acls(connection.request(message, timeout)),
    )
    .await?;
    if let Some(error) = body_error(response.error_code, &response.error_message, || {
        "describing ACLs failed".to_string()
    }) {
        return Err(error);
    }
    response
        .bindings
        .into_iter()
        .map(binding_from_wire)
        .collect()
}

/// Removes what each of `filters` matches; the bindings removed, or the first filter's error.
pub(crate) async fn delete_acls(
    connection: &Connection,
    filters: &[AclFilter],
    timeout: Duration,
) -> Result<Vec<AclBinding>> {
    let mut client = admin_client(connection);
    let message = wire::DeleteAclsRequest {
        filters: filters.iter().map(filter_to_wire).collect(),
    };
    let response = call(
        connection,
        "DeleteAcls",
        timeout,
        client.delete_acls(connection.request(message, timeout)),
    )
    .await?;
    let mut deleted = Vec::new();
    for result in response.results {
        if let Some(error) = body_error(result.error_code, &result.error_message, || {
            "deleting ACLs failed".to_string()
        }) {
            return Err(error);
        }
        for binding in result.deleted {
            deleted.push(binding_from_wire(binding)?);
        }
    }
    Ok(deleted)
}

pub(crate) async fn describe_configs(
    connection: &Connection,
    name: &str,
    timeout: Duration,
) -> Result<Vec<ConfigEntry>> {
    let mut client = admin_client(connection);
    let message = wire::DescribeConfigsRequest {
        topics: vec![name.to_string()],
    };
    let response = call(
        connection,
        "DescribeConfigs",
        timeout,
        client.describe_configs(connection.request(message, timeout)),
    )
    .await?;
    let Some(topic) = response.topics.into_iter().find(|topic| topic.name == name) else {
        return Err(Error::broker(
            ErrorCode::UnknownServerError,
            format!("the broker's DescribeConfigs response does not mention topic '{name}'"),
        ));
    };
    if let Some(error) = body_error(topic.error_code, &topic.error_message, || {
        format!("describing the configs of '{name}' failed")
    }) {
        return Err(error);
    }
    let mut entries: Vec<ConfigEntry> = topic
        .entries
        .into_iter()
        .map(|entry| ConfigEntry {
            name: entry.name,
            value: entry.value,
            is_default: entry.is_default,
        })
        .collect();
    entries.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(entries)
}

pub(crate) async fn alter_configs(
    connection: &Connection,
    name: &str,
    set: &BTreeMap<String, String>,
    delete: &[String],
    timeout: Duration,
) -> Result<()> {
    let mut client = admin_client(connection);
    let message = wire::AlterConfigsRequest {
        topics: vec![wire::AlterTopicConfigs {
            name: name.to_string(),
            set: set.clone().into_iter().collect(),
            delete: delete.to_vec(),
        }],
        validate_only: false,
    };
    let response = call(
        connection,
        "AlterConfigs",
        timeout,
        client.alter_configs(connection.request(message, timeout)),
    )
    .await?;
    single_topic_result(response.topics, name, "altering the configs of topic")
}

/// Milliseconds for an `int32` field, saturating rather than wrapping for absurd durations.
fn duration_ms_i32(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_with_code(code: &str) -> tonic::Status {
        let mut status =
            tonic::Status::new(tonic::Code::InvalidArgument, "topic name 'a b' is invalid");
        status.metadata_mut().insert(
            ERROR_CODE_METADATA_KEY,
            code.parse().expect("ASCII metadata value"),
        );
        status
    }

    #[test]
    fn status_metadata_carries_the_broker_error_code() {
        let error = status_to_error(&status_with_code("17"), "h:1");
        assert_eq!(error.code(), Some(ErrorCode::InvalidTopicException));
        assert_eq!(
            error.to_string(),
            "INVALID_TOPIC_EXCEPTION (17): topic name 'a b' is invalid"
        );
        assert!(!error.is_retriable());

        let error = status_to_error(&status_with_code(" 6 "), "h:1");
        assert_eq!(error.code(), Some(ErrorCode::NotLeaderOrFollower));
        assert!(error.is_retriable());

        // The broker's message starts with the code's name; it is printed once.
        let mut named = tonic::Status::new(
            tonic::Code::AlreadyExists,
            "TOPIC_ALREADY_EXISTS: topic 'a' already exists",
        );
        named
            .metadata_mut()
            .insert(ERROR_CODE_METADATA_KEY, "36".parse().unwrap());
        assert_eq!(
            status_to_error(&named, "h:1").to_string(),
            "TOPIC_ALREADY_EXISTS (36): topic 'a' already exists"
        );
    }

    #[test]
    fn the_code_is_named_once() {
        let mut status = tonic::Status::new(
            tonic::Code::Unavailable,
            "LEADER_NOT_AVAILABLE: this node is still starting",
        );
        status.metadata_mut().insert(
            ERROR_CODE_METADATA_KEY,
            "5".parse().expect("ASCII metadata value"),
        );
        assert_eq!(
            status_to_error(&status, "h:1").to_string(),
            "LEADER_NOT_AVAILABLE (5): this node is still starting"
        );
    }

    #[test]
    fn a_deadline_tonic_enforced_is_a_timeout_not_a_broken_connection() {
        let status = tonic::Status::cancelled(tonic::TimeoutExpired(()).to_string());
        assert!(matches!(
            status_to_error(&status, "h:1"),
            Error::Timeout { .. }
        ));
    }

    #[test]
    fn unknown_or_garbled_codes_stay_errors() {
        let error = status_to_error(&status_with_code("99999"), "h:1");
        assert_eq!(error.code(), Some(ErrorCode::UnknownServerError));
        // Not a number: decoded from the gRPC status code instead.
        let error = status_to_error(&status_with_code("six"), "h:1");
        assert_eq!(error.code(), Some(ErrorCode::UnknownServerError));
    }

    #[test]
    fn statuses_without_a_code_map_by_kind() {
        let error = status_to_error(&tonic::Status::unavailable("connection refused"), "h:1");
        assert!(matches!(&error, Error::Transport { address, .. } if address == "h:1"));
        assert!(error.is_retriable());
        let error = status_to_error(&tonic::Status::deadline_exceeded("slow"), "h:1");
        assert!(matches!(error, Error::Timeout { .. }));
        let error = status_to_error(&tonic::Status::internal("boom"), "h:1");
        assert_eq!(error.code(), Some(ErrorCode::UnknownServerError));
        assert!(error.to_string().contains("boom"));
    }

    #[test]
    fn body_errors_keep_the_message_or_explain() {
        assert!(body_error(0, "", || "unused".into()).is_none());
        let error = body_error(3, "", || "topic 'x' is not available".into()).expect("an error");
        assert_eq!(
            error.to_string(),
            "UNKNOWN_TOPIC_OR_PARTITION (3): topic 'x' is not available"
        );
        let error = body_error(1, "offset 9 is past 3", || "unused".into()).expect("an error");
        assert_eq!(error.code(), Some(ErrorCode::OffsetOutOfRange));
        assert!(error.to_string().ends_with("offset 9 is past 3"));
    }

    #[test]
    fn metadata_conversion_maps_missing_leaders_and_topic_errors() {
        let response = wire::MetadataResponse {
            cluster_id: "cluster".into(),
            controller_id: -1,
            brokers: vec![wire::BrokerMetadata {
                node_id: 1,
                address: "h:1".into(),
                fenced: false,
                offline_log_dirs: Vec::new(),
            }],
            topics: vec![
                wire::TopicMetadata {
                    name: "t".into(),
                    error_code: 0,
                    error_message: String::new(),
                    partitions: vec![
                        wire::PartitionMetadata {
                            partition: 1,
                            error_code: 0,
                            leader_id: -1,
                            leader_epoch: 3,
                            replicas: vec![1],
                            isr: vec![],
                        },
                        wire::PartitionMetadata {
                            partition: 0,
                            error_code: 0,
                            leader_id: 1,
                            leader_epoch: 2,
                            replicas: vec![1],
                            isr: vec![1],
                        },
                    ],
                },
                wire::TopicMetadata {
                    name: "missing".into(),
                    error_code: 3,
                    error_message: String::new(),
                    partitions: vec![],
                },
            ],
        };
        let snapshot = metadata_from_wire(response);
        assert_eq!(snapshot.controller_id, None);
        let topic = snapshot
            .topic("t")
            .expect("listed")
            .as_ref()
            .expect("no error");
        assert_eq!(topic.partitions[0].partition, 0);
        assert_eq!(topic.partitions[0].leader, Some(1));
        assert_eq!(topic.partitions[1].leader, None);
        let missing = snapshot
            .topic("missing")
            .expect("listed")
            .as_ref()
            .unwrap_err();
        assert_eq!(missing.code(), Some(ErrorCode::UnknownTopicOrPartition));
    }
}

// ---- Consumer groups ----

fn to_wire_partitions<'a>(
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) -> Vec<wire::TopicPartitions> {
    let mut topics: Vec<wire::TopicPartitions> = Vec::new();
    for partition in partitions {
        match topics.last_mut() {
            Some(last) if last.topic == partition.topic => {
                last.partitions.push(partition.partition)
            }
            _ => topics.push(wire::TopicPartitions {
                topic: partition.topic.clone(),
                partitions: vec![partition.partition],
            }),
        }
    }
    topics
}

fn from_wire_partitions(topics: Vec<wire::TopicPartitions>) -> BTreeSet<TopicPartition> {
    topics
        .into_iter()
        .flat_map(|topic| {
            let name = topic.topic;
            topic
                .partitions
                .into_iter()
                .map(move |partition| TopicPartition::new(name.clone(), partition))
        })
        .collect()
}

fn group_error(code: i32, message: &str, group_id: &str, rpc: &str) -> Result<()> {
    match body_error(code, message, || {
        format!("{rpc} for group '{group_id}' failed")
    }) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Returns the coordinator's `(node id, address)`.
pub(crate) async fn find_coordinator(
    connection: &Connection,
    group_id: &str,
    timeout: Duration,
) -> Result<(i32, String)> {
    let mut client = group_client(connection);
    let message = wire::FindCoordinatorRequest {
        group_id: group_id.to_string(),
    };
    let response = call(
        connection,
        "FindCoordinator",
        timeout,
        client.find_coordinator(connection.request(message, timeout)),
    )
    .await?;
    group_error(
        response.error_code,
        &response.error_message,
        group_id,
        "FindCoordinator",
    )?;
    Ok((response.node_id, response.address))
}

/// What a member tells its coordinator on every heartbeat.
#[derive(Clone, Debug)]
pub(crate) struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscribed_topics: BTreeSet<String>,
    pub assignor: Option<String>,
    pub owned: BTreeSet<TopicPartition>,
}

#[derive(Clone, Debug)]
pub(crate) struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval: Duration,
    pub assignment: BTreeSet<TopicPartition>,
}

pub(crate) async fn consumer_group_heartbeat(
    connection: &Connection,
    heartbeat: &Heartbeat,
    timeout: Duration,
) -> Result<HeartbeatAnswer> {
    let mut client = group_client(connection);
    let message = wire::ConsumerGroupHeartbeatRequest {
        group_id: heartbeat.group_id.clone(),
        member_id: heartbeat.member_id.clone(),
        member_epoch: heartbeat.member_epoch,
        group_instance_id: heartbeat.instance_id.clone().unwrap_or_default(),
        rebalance_timeout_ms: heartbeat.rebalance_timeout_ms,
        session_timeout_ms: heartbeat.session_timeout_ms,
        has_subscription: true,
        subscribed_topic_names: heartbeat.subscribed_topics.iter().cloned().collect(),
        server_assignor: heartbeat.assignor.clone().unwrap_or_default(),
        has_owned: true,
        owned_partitions: to_wire_partitions(&heartbeat.owned),
    };
    let response = call(
        connection,
        "ConsumerGroupHeartbeat",
        timeout,
        client.consumer_group_heartbeat(connection.request(message, timeout)),
    )
    .await?;
    group_error(
        response.error_code,
        &response.error_message,
        &heartbeat.group_id,
        "ConsumerGroupHeartbeat",
    )?;
    Ok(HeartbeatAnswer {
        member_id: response.member_id,
        member_epoch: response.member_epoch,
        heartbeat_interval: Duration::from_millis(response.heartbeat_interval_ms.max(0) as u64),
        assignment: from_wire_partitions(response.assignment),
    })
}

/// Commits offsets; the answer is per partition.
pub(crate) async fn offset_commit(
    connection: &Connection,
    group_id: &str,
    member: Option<(&str, i32)>,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    timeout: Duration,
) -> Result<Vec<(TopicPartition, Result<()>)>> {
    let mut client = group_client(connection);
    let (member_id, member_epoch) = member.unwrap_or(("", -1));
    let message = wire::OffsetCommitRequest {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
        member_epoch,
        partitions: offsets
            .iter()
            .map(|(topic_partition, offset)| wire::OffsetCommitPartition {
                topic: topic_partition.topic.clone(),
                partition: topic_partition.partition,
                offset: offset.offset,
                leader_epoch: offset.leader_epoch.unwrap_or(-1),
                metadata: offset.metadata.clone(),
            })
            .collect(),
    };
    let response = call(
        connection,
        "OffsetCommit",
        timeout,
        client.offset_commit(connection.request(message, timeout)),
    )
    .await?;
    Ok(response
        .partitions
        .into_iter()
        .map(|partition| {
            let topic_partition = TopicPartition::new(partition.topic, partition.partition);
            let result = match body_error(partition.error_code, &partition.error_message, || {
                format!("committing {topic_partition} for group '{group_id}' failed")
            }) {
                Some(error) => Err(error),
                None => Ok(()),
            };
            (topic_partition, result)
        })
        .collect())
}

fn from_wire_offset(offset: wire::CommittedOffset) -> (TopicPartition, Option<OffsetAndMetadata>) {
    let topic_partition = TopicPartition::new(offset.topic, offset.partition);
    let committed = (offset.offset >= 0).then(|| OffsetAndMetadata {
        offset: offset.offset,
        leader_epoch: (offset.leader_epoch >= 0).then_some(offset.leader_epoch),
        metadata: offset.metadata,
    });
    (topic_partition, committed)
}

/// Committed offsets of `partitions` (every committed partition when empty).
pub(crate) async fn offset_fetch(
    connection: &Connection,
    group_id: &str,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
    let mut client = group_client(connection);
    let message = wire::OffsetFetchRequest {
        group_id: group_id.to_string(),
        partitions: to_wire_partitions(partitions),
    };
    let response = call(
        connection,
        "OffsetFetch",
        timeout,
        client.offset_fetch(connection.request(message, timeout)),
    )
    .await?;
    group_error(
        response.error_code,
        &response.error_message,
        group_id,
        "OffsetFetch",
    )?;
    Ok(response.offsets.into_iter().map(from_wire_offset).collect())
}

pub(crate) async fn list_groups(
    connection: &Connection,
    timeout: Duration,
) -> Result<Vec<GroupListing>> {
    let mut client = group_client(connection);
    let response = call(
        connection,
        "ListGroups",
        timeout,
        client.list_groups(connection.request(wire::ListGroupsRequest {}, timeout)),
    )
    .await?;
    group_error(
        response.error_code,
        &response.error_message,
        "*",
        "ListGroups",
    )?;
    Ok(response
        .groups
        .into_iter()
        .map(|group| GroupListing {
            group_id: group.group_id,
            state: group.state,
            members: group.members.max(0) as usize,
            group_type: if group.group_type.is_empty() {
                "consumer".to_string()
            } else {
                group.group_type
            },
        })
        .collect())
}

pub(crate) async fn describe_group(
    connection: &Connection,
    group_id: &str,
    timeout: Duration,
) -> Result<GroupDescription> {
    let mut client = group_client(connection);
    let message = wire::DescribeGroupRequest {
        group_id: group_id.to_string(),
    };
    let response = call(
        connection,
        "DescribeGroup",
        timeout,
        client.describe_group(connection.request(message, timeout)),
    )
    .await?;
    group_error(
        response.error_code,
        &response.error_message,
        group_id,
        "DescribeGroup",
    )?;
    Ok(GroupDescription {
        group_id: response.group_id,
        state: response.state,
        group_epoch: response.group_epoch,
        assignment_epoch: response.assignment_epoch,
        assignor: response.assignor,
        coordinator_id: response.coordinator_id,
        members: response
            .members
            .into_iter()
            .map(|member| MemberDescription {
                member_id: member.member_id,
                group_instance_id: Some(member.group_instance_id).filter(|id| !id.is_empty()),
                member_epoch: member.member_epoch,
                subscribed_topics: member.subscribed_topic_names,
                assignment: from_wire_partitions(member.assignment),
                revoking: from_wire_partitions(member.revoking),
                target: from_wire_partitions(member.target),
            })
            .collect(),
        offsets: response
            .offsets
            .into_iter()
            .map(from_wire_offset)
            .filter_map(|(topic_partition, offset)| Some((topic_partition, offset?)))
            .collect(),
    })
}

pub(crate) async fn delete_group(
    connection: &Connection,
    group_id: &str,
    timeout: Duration,
) -> Result<()> {
    let mut client = group_client(connection);
    let message = wire::DeleteGroupRequest {
        group_id: group_id.to_string(),
    };
    let response = call(
        connection,
        "DeleteGroup",
        timeout,
        client.delete_group(connection.request(message, timeout)),
    )
    .await?;
    group_error(
        response.error_code,
        &response.error_message,
        group_id,
        "DeleteGroup",
    )
}

// ---- Share groups ----

/// One acknowledgement of a delivered share-group record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShareAckRequest {
    pub topic_partition: TopicPartition,
    pub offset: i64,
    pub kind: ShareAckKind,
    pub delay_ms: i64,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShareAckKind {
    Accept,
    Release,
    Reject,
    Renew,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct ShareSettings {
    pub visibility_timeout_ms: i32,
    pub max_in_flight: i32,
    pub max_delivery_attempts: i32,
}

fn to_wire_acks(acks: &[ShareAckRequest]) -> Vec<wire::ShareAck> {
    acks.iter()
        .map(|ack| wire::ShareAck {
            topic: ack.topic_partition.topic.clone(),
            partition: ack.topic_partition.partition,
            offset: ack.offset,
            r#type: match ack.kind {
                ShareAckKind::Accept => wire::ShareAckType::Accept,
                ShareAckKind::Release => wire::ShareAckType::Release,
                ShareAckKind::Reject => wire::ShareAckType::Reject,
                ShareAckKind::Renew => wire::ShareAckType::Renew,
            } as i32,
            delay_ms: ack.delay_ms,
            reason: ack.reason.clone(),
        })
        .collect()
}

fn to_wire_settings(settings: ShareSettings) -> wire::ShareSettings {
    wire::ShareSettings {
        visibility_timeout_ms: settings.visibility_timeout_ms,
        max_in_flight: settings.max_in_flight,
        max_delivery_attempts: settings.max_delivery_attempts,
    }
}

type AckOutcomes = Vec<(TopicPartition, i64, Result<()>)>;

fn from_wire_ack_results(results: Vec<wire::ShareAckResult>) -> AckOutcomes {
    results
        .into_iter()
        .map(|result| {
            let topic_partition = TopicPartition::new(result.topic, result.partition);
            let outcome = match body_error(result.error_code, &result.error_message, || {
                format!(
                    "acknowledging offset {} of {topic_partition} failed",
                    result.offset
                )
            }) {
                Some(error) => Err(error),
                None => Ok(()),
            };
            (topic_partition, result.offset, outcome)
        })
        .collect()
}

/// One partition's acquired records: the batches and `(offset, delivery count)` pairs.
pub(crate) type SharePartitionRecords = (TopicPartition, Bytes, Vec<(i64, u32)>);

#[allow(clippy::too_many_arguments)]
pub(crate) async fn share_fetch(
    connection: &Connection,
    group_id: &str,
    member_id: &str,
    topics: &[String],
    max_records: i32,
    max_wait: Duration,
    settings: ShareSettings,
    acks: &[ShareAckRequest],
    timeout: Duration,
) -> Result<(Vec<SharePartitionRecords>, AckOutcomes)> {
    let message = wire::ShareFetchRequest {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
        topics: topics.to_vec(),
        max_records,
        max_wait_ms: duration_ms_i32(max_wait),
        settings: Some(to_wire_settings(settings)),
        acknowledgements: to_wire_acks(acks),
    };
    let response = call(
        connection,
        "ShareFetch",
        timeout + max_wait,
        zero_copy::unary::<_, wire::ShareFetchResponse>(
            connection.channel.clone(),
            zero_copy::paths::SHARE_FETCH,
            connection.request(message, timeout + max_wait),
        ),
    )
    .await?;
    group_error(
        response.error_code,
        &response.error_message,
        group_id,
        "ShareFetch",
    )?;
    let partitions = response
        .partitions
        .into_iter()
        .map(|partition| {
            (
                TopicPartition::new(partition.topic, partition.partition),
                partition.records,
                partition
                    .acquired
                    .into_iter()
                    .map(|record| (record.offset, record.delivery_count.max(0) as u32))
                    .collect(),
            )
        })
        .collect();
    Ok((partitions, from_wire_ack_results(response.acknowledgements)))
}

pub(crate) async fn share_acknowledge(
    connection: &Connection,
    group_id: &str,
    member_id: &str,
    acks: &[ShareAckRequest],
    settings: ShareSettings,
    leave: bool,
    timeout: Duration,
) -> Result<AckOutcomes> {
    let mut client = group_client(connection);
    let message = wire::ShareAcknowledgeRequest {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
        acknowledgements: to_wire_acks(acks),
        settings: Some(to_wire_settings(settings)),
        leave,
    };
    let response = call(
        connection,
        "ShareAcknowledge",
        timeout,
        client.share_acknowledge(connection.request(message, timeout)),
    )
    .await?;
    group_error(
        response.error_code,
        &response.error_message,
        group_id,
        "ShareAcknowledge",
    )?;
    Ok(from_wire_ack_results(response.acknowledgements))
}

pub(crate) async fn describe_share_group(
    connection: &Connection,
    group_id: &str,
    timeout: Duration,
) -> Result<ShareGroupDescription> {
    let mut client = group_client(connection);
    let message = wire::DescribeGroupRequest {
        group_id: group_id.to_string(),
    };
    let response = call(
        connection,
        "DescribeShareGroup",
        timeout,
        client.describe_share_group(connection.request(message, timeout)),
    )
    .await?;
    group_error(
        response.error_code,
        &response.error_message,
        group_id,
        "DescribeShareGroup",
    )?;
    Ok(ShareGroupDescription {
        group_id: group_id.to_string(),
        coordinator_id: response.coordinator_id,
        members: response.members,
        partitions: response
            .partitions
            .into_iter()
            .map(|partition| SharePartitionDescription {
                topic_partition: TopicPartition::new(partition.topic, partition.partition),
                start_offset: partition.start_offset,
                fetch_offset: partition.fetch_offset,
                acquired: partition.acquired.max(0) as usize,
                available: partition.available.max(0) as usize,
            })
            .collect(),
        delivered: response.delivered.max(0) as u64,
        acknowledged: response.acknowledged.max(0) as u64,
        dead_lettered: response.dead_lettered.max(0) as u64,
    })
}
