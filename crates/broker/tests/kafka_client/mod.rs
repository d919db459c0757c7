//! A bare Kafka wire client for tests of the Kafka listener: one connection, one request at a
//! time, messages from the `kafka-protocol` crate. Real Kafka clients (kcat, confluent-kafka,
//! kafka-python) are exercised by the tests crate; this one reaches what they never send.
//! Beside it, what the Kafka listener's tests share: a broker to talk to (open, or requiring
//! SASL), logging in, and common requests.

#![allow(dead_code)]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, ApiVersionsResponse, CreateTopicsRequest,
    FetchRequest, GroupId, JoinGroupRequest, ListOffsetsRequest, MetadataRequest,
    OffsetCommitRequest, ProduceRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;
use strata_auth::{Mechanism, ScramClient};
use strata_broker::{Broker, BrokerConfig, BrokerHandle};
use strata_record::RecordBatchBuilder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

/// Long enough for a loaded two-core machine; a healthy answer takes milliseconds.
pub const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// What a connection runs over: TCP, or TLS over TCP.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for S {}

pub struct KafkaConnection {
    stream: Box<dyn ByteStream>,
    next_correlation_id: i32,
}

impl KafkaConnection {
    pub async fn connect(address: SocketAddr) -> KafkaConnection {
        KafkaConnection::over(
            TcpStream::connect(address)
                .await
                .expect("connects to the Kafka listener"),
        )
    }

    /// A connection over a stream already open, such as a TLS session.
    pub fn over(stream: impl ByteStream + 'static) -> KafkaConnection {
        KafkaConnection {
            stream: Box::new(stream),
            next_correlation_id: 1,
        }
    }

    /// The frame of `request` at `version` (size prefix included) and its correlation id.
    pub fn frame<R: Request>(&mut self, request: &R, version: i16) -> (Bytes, i32) {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("strata-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("header encodes");
        request.encode(&mut body, version).expect("request encodes");
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        (frame.freeze(), correlation_id)
    }

    /// Sends `request` and returns its response.
    pub async fn send<R: Request>(&mut self, request: R, version: i16) -> R::Response {
        let (frame, correlation_id) = self.frame(&request, version);
        self.write_raw(&frame).await;
        let mut response = self
            .read_frame()
            .await
            .expect("the broker answers instead of closing the connection");
        let header = ResponseHeader::decode(
            &mut response,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .expect("response header decodes");
        assert_eq!(header.correlation_id, correlation_id);
        let decoded = R::Response::decode(&mut response, version).expect("response decodes");
        assert!(
            !response.has_remaining(),
            "{} bytes left after the response",
            response.remaining()
        );
        decoded
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("writes");
        // TLS holds what is written until flushed.
        self.stream.flush().await.expect("flushes");
    }

    /// Closes the sending side, as a client that stops mid-frame does.
    pub async fn shutdown_write(&mut self) {
        self.stream.shutdown().await.expect("shuts down");
    }

    /// The next response frame without its size prefix; `None` once the broker closed the
    /// connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let mut prefix = [0u8; 4];
            self.stream.read_exact(&mut prefix).await.ok()?;
            let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
            self.stream.read_exact(&mut frame).await.ok()?;
            Some(Bytes::from(frame))
        };
        tokio::time::timeout(ANSWER_WAIT, read)
            .await
            .expect("the broker answers or closes within the wait")
    }

    /// Whether the broker closed the connection (rather than answering or waiting).
    pub async fn is_closed_by_broker(&mut self) -> bool {
        self.read_frame().await.is_none()
    }
}

/// A single-node broker with a Kafka listener, both on free ports.
pub async fn start(directory: &std::path::Path) -> BrokerHandle {
    Broker::start(BrokerConfig {
        data_dir: directory.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts")
}

/// The bootstrap user (name, password) of [`start_secured`]: a super user, as Kafka's
/// `super.users` are.
pub const ADMIN: (&str, &str) = ("admin", "admin-secret");

/// A single-node broker that requires authentication (SASL before anything but ApiVersions on
/// the Kafka listener, `authorization: Basic` on gRPC, and so ACLs for everyone but super
/// users), with [`ADMIN`] as its bootstrap user.
pub fn secured_config(directory: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: directory.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        require_authentication: true,
        bootstrap_user: Some((ADMIN.0.to_string(), ADMIN.1.to_string())),
        ..BrokerConfig::default()
    }
}

/// [`secured_config`], started.
pub async fn start_secured(directory: &std::path::Path) -> BrokerHandle {
    Broker::start(secured_config(directory))
        .await
        .expect("broker starts")
}

/// The gRPC door's credentials header value: `Basic base64(user:password)`.
pub fn basic_authorization(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A SCRAM exchange over `connection`; returns the error code of the step that failed, if any.
pub async fn scram_login(
    connection: &mut KafkaConnection,
    mechanism: Mechanism,
    user: &str,
    password: &str,
) -> Result<(), i16> {
    let handshake = connection
        .send(
            SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(mechanism.name())),
            1,
        )
        .await;
    if handshake.error_code != 0 {
        return Err(handshake.error_code);
    }
    let mut client = ScramClient::new(mechanism, user, password);
    let first = connection
        .send(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(client.client_first())),
            2,
        )
        .await;
    if first.error_code != 0 {
        return Err(first.error_code);
    }
    let client_final = client.client_final(&first.auth_bytes).unwrap();
    let last = connection
        .send(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(client_final)),
            2,
        )
        .await;
    if last.error_code != 0 {
        return Err(last.error_code);
    }
    client
        .verify_server_final(&last.auth_bytes)
        .expect("the broker proves it knows the credential");
    Ok(())
}

/// A connection to `address` logged in as `user` (SCRAM-SHA-512).
pub async fn connect_as(address: SocketAddr, user: &str, password: &str) -> KafkaConnection {
    let mut connection = KafkaConnection::connect(address).await;
    scram_login(&mut connection, Mechanism::ScramSha512, user, password)
        .await
        .unwrap_or_else(|code| panic!("{user} logs in, not refused with {code}"));
    connection
}

/// Kafka's request to give `user` a `mechanism` credential for `password`, salted here as
/// Kafka's admin tools salt it.
pub fn upsert_user_request(
    user: &str,
    mechanism: Mechanism,
    password: &str,
) -> AlterUserScramCredentialsRequest {
    let (salt, salted_password) = strata_auth::salt_password(mechanism, password, 4096).unwrap();
    AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.to_string()))
            .with_mechanism(mechanism.kafka_type())
            .with_iterations(4096)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted_password)),
    ])
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The versions of `api_key` an ApiVersions answer lists.
pub fn served(versions: &ApiVersionsResponse, api_key: ApiKey) -> RangeInclusive<i16> {
    let listed = versions
        .api_keys
        .iter()
        .find(|listed| listed.api_key == api_key as i16)
        .unwrap_or_else(|| panic!("{api_key:?} is listed"));
    listed.min_version..=listed.max_version
}

/// One batch of records with `values`.
pub fn batch(values: &[&str]) -> Bytes {
    let mut builder = RecordBatchBuilder::new();
    for value in values {
        builder.push(1_700_000_000_000, None, Some(value.as_bytes()), &[]);
    }
    builder.build().into_bytes()
}

/// A produce of `records` to partition 0 of `topic`.
pub fn produce_request(topic: &str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

/// A topic of `partitions` partitions with `replication_factor` replicas, for CreateTopics.
pub fn new_topic(name: &str, partitions: i32, replication_factor: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
}

pub fn create_topics_request(
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
}

/// Creates one-partition `topics` through the Kafka door and checks each was created.
pub async fn create_topics(connection: &mut KafkaConnection, topics: &[&str]) {
    let topics = topics.iter().map(|name| new_topic(name, 1, 1)).collect();
    let answer = connection
        .send(create_topics_request(topics, false), 7)
        .await;
    for result in answer.topics {
        assert_eq!(result.error_code, 0, "{result:?}");
    }
}

/// A consumer's Fetch of partition 0 of `topic` from `offset`, answered at once.
pub fn fetch_request(topic: &str, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

/// A consumer-protocol JoinGroup with `metadata` for the range assignor.
pub fn join_group_request(
    group_id: &str,
    member_id: &str,
    metadata: &'static [u8],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(60_000)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(metadata)),
        ])
}

/// An OffsetCommit of `offset` for partition `partition` of `topic`, by `member_id` in
/// `generation` (-1 and no member for a consumer outside any generation).
pub fn offset_commit_request(
    group_id: &str,
    generation: i32,
    member_id: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(StrBytes::from_static_str("note"))),
                ]),
        ])
}

/// A consumer's ListOffsets of partition 0 of `topic` at `timestamp`.
pub fn list_offsets_request(topic: &str, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(timestamp),
                ]),
        ])
}

/// The offset ListOffsets answers for partition 0 of `topic` at `timestamp` (-2 the log start,
/// -1 the high watermark).
pub async fn list_offset(connection: &mut KafkaConnection, topic: &str, timestamp: i64) -> i64 {
    let answer = connection
        .send(list_offsets_request(topic, timestamp), 1)
        .await;
    let partition = &answer.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.offset
}

/// `topic` as Metadata version 12 describes it.
pub async fn metadata_topic(
    connection: &mut KafkaConnection,
    topic: &str,
) -> MetadataResponseTopic {
    let mut answer = connection
        .send(
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
            ])),
            12,
        )
        .await;
    answer.topics.remove(0)
}

/// `topic`'s Kafka topic id, as Metadata version 12 names it.
pub async fn topic_id(connection: &mut KafkaConnection, topic: &str) -> Uuid {
    let described = metadata_topic(connection, topic).await;
    assert_eq!(described.error_code, 0, "{described:?}");
    assert!(!described.topic_id.is_nil(), "{topic} has a topic id");
    described.topic_id
}
