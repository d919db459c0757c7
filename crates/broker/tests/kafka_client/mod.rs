//! A bare Kafka wire client for tests of the Kafka listener: one connection, one request at a
//! time, messages from the `kafka-protocol` crate. Real Kafka clients (kcat, confluent-kafka,
//! kafka-python) are exercised by the tests crate; this one reaches what they never send.
//! Beside it, what the Kafka listener's tests share: a broker to talk to and common requests.

#![allow(dead_code)]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;
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
