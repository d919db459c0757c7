//! The Kafka listener at the wire: every served version of the data APIs answers in a form the
//! codec accepts, and hostile frames close only their own connection and append nothing.

mod common;
mod kafka_client;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_client::{
    KafkaConnection, batch, fetch_request, list_offset, list_offsets_request, produce_request,
    served, start, topic_id, topic_name,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, InitProducerIdRequest, MetadataRequest,
    OffsetForLeaderEpochRequest,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use uuid::Uuid;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const UNSUPPORTED_VERSION: i16 = 35;
const UNKNOWN_TOPIC_ID: i16 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_version_of_the_data_apis_answers_in_a_form_the_codec_reads() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let kafka_address = broker.kafka_addr().expect("a Kafka listener");
    common::create_topic(&broker, "events", 1, 1, &[]).await;
    let mut connection = KafkaConnection::connect(kafka_address).await;
    let versions = connection
        .send(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("test"))
                .with_client_software_version(StrBytes::from_static_str("1")),
            3,
        )
        .await;
    assert_eq!(versions.error_code, 0);

    for version in served(&versions, ApiKey::Metadata) {
        let topics = (version > 0).then(|| {
            vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("events"))),
                MetadataRequestTopic::default().with_name(Some(topic_name("missing"))),
            ]
        });
        let answer = connection
            .send(MetadataRequest::default().with_topics(topics), version)
            .await;
        assert_eq!(answer.brokers.len(), 1, "v{version}");
        assert_eq!(answer.brokers[0].node_id.0, 1);
        assert_eq!(i32::from(kafka_address.port()), answer.brokers[0].port);
        let events = answer
            .topics
            .iter()
            .find(|topic| {
                topic
                    .name
                    .as_ref()
                    .is_some_and(|name| name.0.as_str() == "events")
            })
            .unwrap_or_else(|| panic!("v{version} lists events: {answer:?}"));
        assert_eq!(events.error_code, 0);
        assert_eq!(events.partitions[0].leader_id.0, 1);
        if version >= 10 {
            // Named by the id just learned, the topic is answered by name and id too; an id no
            // topic has is answered with Kafka's UNKNOWN_TOPIC_ID.
            assert!(!events.topic_id.is_nil(), "v{version}");
            let unknown = Uuid::from_u128(7);
            let answer = connection
                .send(
                    MetadataRequest::default().with_topics(Some(vec![
                        MetadataRequestTopic::default().with_topic_id(events.topic_id),
                        MetadataRequestTopic::default().with_topic_id(unknown),
                    ])),
                    version,
                )
                .await;
            let (by_id, missing) = (&answer.topics[0], &answer.topics[1]);
            assert_eq!(by_id.error_code, 0, "v{version}");
            assert_eq!(by_id.name, events.name, "v{version}");
            assert_eq!(by_id.topic_id, events.topic_id, "v{version}");
            assert_eq!(
                (missing.error_code, missing.topic_id, missing.name.is_none()),
                (UNKNOWN_TOPIC_ID, unknown, true),
                "v{version}"
            );
        }
        if version > 0 {
            let missing = answer
                .topics
                .iter()
                .find(|topic| {
                    topic
                        .name
                        .as_ref()
                        .is_some_and(|name| name.0.as_str() == "missing")
                })
                .expect("the missing topic is answered");
            assert_eq!(missing.error_code, UNKNOWN_TOPIC_OR_PARTITION, "v{version}");
        }
    }

    let mut produced = 0i64;
    for version in served(&versions, ApiKey::Produce) {
        let answer = connection
            .send(
                produce_request("events", 1, batch(&[&format!("v{version}"), "second"])),
                version,
            )
            .await;
        let partition = &answer.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "v{version}: {partition:?}");
        assert_eq!(partition.base_offset, produced, "v{version}");
        produced += 2;
    }
    assert_eq!(list_offset(&mut connection, "events", -1).await, produced);

    for version in served(&versions, ApiKey::Fetch) {
        let answer = connection.send(fetch_request("events", 0), version).await;
        let partition = &answer.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "v{version}");
        assert_eq!(partition.high_watermark, produced, "v{version}");
        let records = partition.records.clone().expect("records");
        let batches: Vec<_> = strata_record::BatchIter::new(records)
            .map(|batch| batch.expect("whole batches"))
            .collect();
        assert_eq!(batches.len() as i64, produced / 2, "v{version}");
    }

    for version in served(&versions, ApiKey::ListOffsets) {
        let answer = connection
            .send(list_offsets_request("events", -2), version)
            .await;
        let partition = &answer.topics[0].partitions[0];
        assert_eq!(
            (partition.error_code, partition.offset),
            (0, 0),
            "v{version}"
        );
    }

    for version in served(&versions, ApiKey::InitProducerId) {
        let answer = connection
            .send(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000),
                version,
            )
            .await;
        assert_eq!(answer.error_code, 0, "v{version}");
        assert!(answer.producer_id.0 >= 0, "v{version}");
    }

    for version in served(&versions, ApiKey::OffsetForLeaderEpoch) {
        let answer = connection
            .send(
                OffsetForLeaderEpochRequest::default()
                    .with_replica_id((-1).into())
                    .with_topics(vec![
                        OffsetForLeaderTopic::default()
                            .with_topic(topic_name("events"))
                            .with_partitions(vec![
                                OffsetForLeaderPartition::default()
                                    .with_partition(0)
                                    .with_current_leader_epoch(-1)
                                    .with_leader_epoch(0),
                            ]),
                    ]),
                version,
            )
            .await;
        let partition = &answer.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0, "v{version}: {partition:?}");
        assert_eq!(partition.end_offset, produced, "v{version}");
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_api_versions_request_is_answered_with_unsupported_version_and_the_served_list() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let mut connection = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
    let (frame, correlation_id) = connection.frame(&ApiVersionsRequest::default(), 4);
    connection.write_raw(&frame).await;
    let mut answer = connection.read_frame().await.expect("an answer");
    // KIP-511: the answer is version 0, whose header is the correlation id alone.
    let header = kafka_protocol::messages::ResponseHeader::decode(&mut answer, 0).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    let body = ApiVersionsResponse::decode(&mut answer, 0).unwrap();
    assert_eq!(body.error_code, UNSUPPORTED_VERSION);
    assert_eq!(served(&body, ApiKey::ApiVersions), 0..=3);
    // The connection stays usable for a retry in a served version.
    let retried = connection.send(ApiVersionsRequest::default(), 3).await;
    assert_eq!(retried.error_code, 0);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_and_oversized_batches_are_refused_with_kafkas_codes() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    common::create_topic(&broker, "small", 1, 1, &[("max.message.bytes", "1024")]).await;
    let mut connection = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
    let answer = connection
        .send(produce_request("nowhere", 1, batch(&["x"])), 9)
        .await;
    assert_eq!(
        answer.responses[0].partition_responses[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let large = "x".repeat(4096);
    let answer = connection
        .send(produce_request("small", -1, batch(&[&large])), 9)
        .await;
    let partition = &answer.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, MESSAGE_TOO_LARGE);
    assert!(
        partition.error_message.is_some(),
        "version 8 and later carry the reason"
    );
    assert_eq!(list_offset(&mut connection, "small", -1).await, 0);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_zero_produce_gets_no_response_and_the_next_request_is_answered() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    common::create_topic(&broker, "quiet", 1, 1, &[]).await;
    let mut connection = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
    let (frame, _) = connection.frame(&produce_request("quiet", 0, batch(&["a", "b"])), 9);
    connection.write_raw(&frame).await;
    // The next answer on the connection is the ListOffsets one (its correlation id is checked),
    // and it sees the acks=0 records, which were appended before it was read.
    assert_eq!(list_offset(&mut connection, "quiet", -1).await, 2);
    broker.shutdown().await;
}

/// A valid header for `api_key`/`version` followed by `body`, framed with a true size.
fn raw_frame(api_key: i16, version: i16, body: &[u8]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_i32((8 + 2 + body.len()) as i32);
    frame.put_i16(api_key);
    frame.put_i16(version);
    frame.put_i32(99);
    frame.put_i16(-1); // null client id
    frame.put_slice(body);
    frame.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_close_only_their_connection_and_append_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let address = broker.kafka_addr().unwrap();
    common::create_topic(&broker, "guarded", 1, 1, &[]).await;
    let mut witness = KafkaConnection::connect(address).await;
    assert_eq!(list_offset(&mut witness, "guarded", -1).await, 0);

    let valid_produce = {
        let mut connection = KafkaConnection::connect(address).await;
        connection
            .frame(&produce_request("guarded", 1, batch(&["x"])), 9)
            .0
    };
    let mut lying_size = BytesMut::from(&valid_produce[..]);
    lying_size[..4].copy_from_slice(&((valid_produce.len() - 4) as i32 - 7).to_be_bytes());
    let hostile: Vec<(&str, Bytes, bool)> = vec![
        (
            "a 1 GB size prefix",
            Bytes::from_static(&[0x40, 0, 0, 0]),
            false,
        ),
        (
            "a negative size prefix",
            Bytes::from_static(&[0xff, 0xff, 0xff, 0xf0]),
            false,
        ),
        ("an unknown API key", raw_frame(9_999, 0, b""), false),
        ("an unserved version", raw_frame(0, 99, b""), false),
        (
            "an unserved API",
            raw_frame(ApiKey::AlterPartition as i16, 0, b""),
            false,
        ),
        (
            "a size prefix shorter than the produce",
            lying_size.freeze(),
            false,
        ),
        (
            "a frame that stops halfway",
            valid_produce.slice(..valid_produce.len() / 2),
            true,
        ),
        ("a header and no body", raw_frame(0, 9, b"\x00"), false),
        (
            "an array that claims two billion elements",
            raw_frame(3, 1, &i32::MAX.to_be_bytes()),
            false,
        ),
        (
            "a compact array that claims four billion elements",
            raw_frame(3, 9, b"\x00\xff\xff\xff\xff\x0f"),
            false,
        ),
    ];
    for (what, bytes, then_stop_sending) in hostile {
        let mut connection = KafkaConnection::connect(address).await;
        connection.write_raw(&bytes).await;
        if then_stop_sending {
            connection.shutdown_write().await;
        }
        assert!(
            connection.is_closed_by_broker().await,
            "{what}: the broker closes the connection"
        );
        assert_eq!(
            list_offset(&mut witness, "guarded", -1).await,
            0,
            "{what}: nothing was appended, and other connections are still served"
        );
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_whole_request_are_ignored_as_kafka_ignores_them() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    common::create_topic(&broker, "tolerant", 1, 1, &[]).await;
    let mut connection = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
    let (frame, _) = connection.frame(&produce_request("tolerant", 1, batch(&["x"])), 9);
    let mut padded = BytesMut::from(&frame[..]);
    padded.put_slice(b"\x01\x00\x00");
    let size = (padded.len() - 4) as i32;
    padded[..4].copy_from_slice(&size.to_be_bytes());
    connection.write_raw(&padded).await;
    assert!(
        connection.read_frame().await.is_some(),
        "the produce is answered"
    );
    assert_eq!(
        list_offset(&mut connection, "tolerant", -1).await,
        1,
        "and appended once"
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_id_is_the_same_on_every_broker() {
    let directory = tempfile::tempdir().unwrap();
    let brokers = common::start_cluster(directory.path()).await;
    common::create_replicated_topic(&brokers, "orders", &[]).await;
    let mut ids = Vec::new();
    for broker in &brokers {
        common::metadata_where(broker, "orders on this broker", |answer| {
            answer.topics.iter().any(|topic| topic.name == "orders")
        })
        .await;
        let mut connection = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
        ids.push(topic_id(&mut connection, "orders").await);
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    for broker in brokers {
        broker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_id_survives_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    common::create_topic(&broker, "orders", 1, 1, &[]).await;
    let mut connection = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
    let before = topic_id(&mut connection, "orders").await;
    drop(connection);
    broker.shutdown().await;

    let broker = start(directory.path()).await;
    let mut connection = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
    assert_eq!(topic_id(&mut connection, "orders").await, before);
    broker.shutdown().await;
}
