//! The broker's gRPC API, exercised over a real loopback connection with the raw proto client.

use bytes::Bytes;
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::Duration;
use strata_broker::{Broker, BrokerConfig, BrokerHandle, ERROR_CODE_METADATA};
use strata_common::ErrorCode;
use strata_proto::replication_v1 as proto_replication;
use strata_proto::replication_v1::replication_client::ReplicationClient;
use strata_proto::v1 as proto;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::broker_client::BrokerClient;
use strata_record::{BatchIter, Header, RecordBatchBuilder};
use tonic::transport::Channel;

/// How long a fetch stream may take to answer a step of a test on a loaded CI machine.
const STREAM_STEP: Duration = Duration::from_secs(20);

struct TestBroker {
    handle: BrokerHandle,
    broker: BrokerClient<Channel>,
    admin: AdminClient<Channel>,
}

async fn start(data_dir: &std::path::Path) -> TestBroker {
    start_with(BrokerConfig {
        data_dir: data_dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..BrokerConfig::default()
    })
    .await
}

async fn start_with(config: BrokerConfig) -> TestBroker {
    let handle = Broker::start(config).await.expect("broker starts");
    let endpoint = format!("http://{}", handle.local_addr());
    let channel = Channel::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .expect("connect");
    TestBroker {
        handle,
        broker: BrokerClient::new(channel.clone()).max_decoding_message_size(usize::MAX),
        admin: AdminClient::new(channel),
    }
}

async fn create_topic(
    admin: &mut AdminClient<Channel>,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> proto::TopicResult {
    let request = proto::CreateTopicsRequest {
        topics: vec![proto::CreatableTopic {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor: 1,
            configs: configs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect::<HashMap<_, _>>(),
        }],
        timeout_ms: 5_000,
        validate_only: false,
    };
    admin
        .create_topics(request)
        .await
        .unwrap()
        .into_inner()
        .topics
        .remove(0)
}

fn records(values: &[&str], timestamp: i64) -> Bytes {
    let mut builder = RecordBatchBuilder::new();
    for (index, value) in values.iter().enumerate() {
        let headers = [Header {
            key: "index".into(),
            value: Some(Bytes::from(index.to_string())),
        }];
        builder.push(
            timestamp + index as i64,
            Some(b"key"),
            Some(value.as_bytes()),
            &headers,
        );
    }
    builder.build().into_bytes()
}

async fn produce(
    broker: &mut BrokerClient<Channel>,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> proto::PartitionProduceResponse {
    let request = proto::ProduceRequest {
        acks: -1,
        timeout_ms: 5_000,
        correlation_id: 0,
        partitions: vec![proto::PartitionRecords {
            topic: topic.to_string(),
            partition,
            records,
        }],
    };
    broker
        .produce(request)
        .await
        .unwrap()
        .into_inner()
        .partitions
        .remove(0)
}

async fn fetch(
    broker: &mut BrokerClient<Channel>,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
) -> proto::FetchPartitionResponse {
    let request = proto::FetchRequest {
        max_wait_ms,
        min_bytes: 1,
        max_bytes: 1 << 20,
        isolation_level: 0,
        partitions: vec![proto::FetchPartition {
            topic: topic.to_string(),
            partition: 0,
            fetch_offset: offset,
            partition_max_bytes: 0,
        }],
    };
    broker
        .fetch(request)
        .await
        .unwrap()
        .into_inner()
        .partitions
        .remove(0)
}

/// One partition's ListOffsets answer for `timestamp` (-2 earliest, -1 latest, else a time).
async fn list_offset(
    broker: &mut BrokerClient<Channel>,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> proto::ListOffsetsPartitionResponse {
    let request = proto::ListOffsetsRequest {
        partitions: vec![proto::ListOffsetsPartition {
            topic: topic.to_string(),
            partition,
            timestamp,
        }],
    };
    broker
        .list_offsets(request)
        .await
        .unwrap()
        .into_inner()
        .partitions
        .remove(0)
}

fn values(records: Bytes) -> Vec<String> {
    BatchIter::new(records)
        .flat_map(|batch| {
            batch
                .unwrap()
                .records()
                .map(|record| String::from_utf8(record.unwrap().value.unwrap().to_vec()).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn produce_then_fetch_round_trips_and_survives_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    assert_eq!(
        create_topic(&mut node.admin, "orders", 2, &[])
            .await
            .error_code,
        0
    );
    let (first, second) = (records(&["a", "b"], 1_000), records(&["c"], 2_000));
    let stored_bytes = (first.len() + second.len()) as i64;
    let response = produce(&mut node.broker, "orders", 0, first).await;
    assert_eq!((response.error_code, response.base_offset), (0, 0));
    let response = produce(&mut node.broker, "orders", 0, second).await;
    assert_eq!(response.base_offset, 2);

    let fetched = fetch(&mut node.broker, "orders", 0, 0).await;
    assert_eq!((fetched.error_code, fetched.high_watermark), (0, 3));
    assert_eq!(values(fetched.records), ["a", "b", "c"]);
    node.handle.shutdown().await;

    let mut node = start(directory.path()).await;
    assert_eq!(
        values(fetch(&mut node.broker, "orders", 2, 0).await.records),
        ["c"]
    );
    let by_time = list_offset(&mut node.broker, "orders", 0, 1_500).await;
    assert_eq!((by_time.offset, by_time.timestamp), (2, 2_000));
    // The leader's answer carries its log's size: the batches as they were stored, counted
    // again from the segments the restart recovered.
    assert_eq!(by_time.size_bytes, Some(stored_bytes));
    let unknown = list_offset(&mut node.broker, "orders", 7, -1).await;
    assert_eq!(
        (unknown.error_code, unknown.size_bytes),
        (ErrorCode::UnknownTopicOrPartition.code(), None)
    );
    node.handle.shutdown().await;
}

#[tokio::test]
async fn a_waiting_fetch_wakes_on_produce() {
    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    create_topic(&mut node.admin, "events", 1, &[]).await;
    let mut fetcher = node.broker.clone();
    // The fetch may wait up to 30 s; it only returns records if the produce woke it.
    let waiting = tokio::spawn(async move { fetch(&mut fetcher, "events", 0, 30_000).await });
    produce(&mut node.broker, "events", 0, records(&["wake"], 1)).await;
    let fetched = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the fetch returned")
        .unwrap();
    assert_eq!(values(fetched.records), ["wake"]);
    node.handle.shutdown().await;
}

#[tokio::test]
async fn errors_carry_codes_and_touch_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    assert_eq!(
        create_topic(&mut node.admin, "bad name", 1, &[])
            .await
            .error_code,
        ErrorCode::InvalidTopicException.code()
    );
    assert_eq!(
        create_topic(&mut node.admin, "zero", 0, &[])
            .await
            .error_code,
        ErrorCode::InvalidPartitions.code()
    );
    assert_eq!(
        create_topic(&mut node.admin, "cfg", 1, &[("retention.ms", "soon")])
            .await
            .error_code,
        ErrorCode::InvalidConfig.code()
    );
    assert_eq!(
        create_topic(&mut node.admin, "small", 1, &[("max.message.bytes", "200")])
            .await
            .error_code,
        0
    );
    assert_eq!(
        create_topic(&mut node.admin, "small", 1, &[])
            .await
            .error_code,
        ErrorCode::TopicAlreadyExists.code()
    );

    assert_eq!(
        produce(&mut node.broker, "missing", 0, records(&["x"], 1))
            .await
            .error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce(&mut node.broker, "small", 7, records(&["x"], 1))
            .await
            .error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    let large = produce(
        &mut node.broker,
        "small",
        0,
        records(&[&"x".repeat(300)], 1),
    )
    .await;
    assert_eq!(large.error_code, ErrorCode::MessageTooLarge.code());
    let mut corrupt = records(&["x"], 1).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    assert_eq!(
        produce(&mut node.broker, "small", 0, corrupt.into())
            .await
            .error_code,
        ErrorCode::CorruptMessage.code()
    );
    assert_eq!(
        produce(&mut node.broker, "small", 0, Bytes::from_static(b"garbage"))
            .await
            .error_code,
        ErrorCode::CorruptMessage.code()
    );

    let out_of_range = fetch(&mut node.broker, "small", 5, 0).await;
    assert_eq!(out_of_range.error_code, ErrorCode::OffsetOutOfRange.code());
    assert!(
        out_of_range.error_message.contains("the log is empty"),
        "{}",
        out_of_range.error_message
    );
    assert_eq!(
        (out_of_range.log_start_offset, out_of_range.high_watermark),
        (0, 0)
    );

    let status = node
        .broker
        .produce(proto::ProduceRequest {
            acks: 2,
            timeout_ms: 1_000,
            correlation_id: 0,
            partitions: vec![],
        })
        .await
        .expect_err("acks=2 is refused");
    let code: i32 = status
        .metadata()
        .get(ERROR_CODE_METADATA)
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(code, ErrorCode::InvalidRequiredAcks.code());

    assert_eq!(
        fetch(&mut node.broker, "small", 0, 0).await.high_watermark,
        0,
        "nothing was stored"
    );
    node.handle.shutdown().await;
}

#[tokio::test]
async fn topic_configs_describe_alter_and_delete() {
    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    create_topic(
        &mut node.admin,
        "configured",
        1,
        &[("retention.ms", "60000")],
    )
    .await;
    let alter = proto::AlterConfigsRequest {
        topics: vec![proto::AlterTopicConfigs {
            name: "configured".into(),
            set: HashMap::from([("segment.bytes".into(), "1048576".into())]),
            delete: vec!["retention.ms".into()],
        }],
        validate_only: false,
    };
    assert_eq!(
        node.admin
            .alter_configs(alter)
            .await
            .unwrap()
            .into_inner()
            .topics[0]
            .error_code,
        0
    );
    let described = node
        .admin
        .describe_configs(proto::DescribeConfigsRequest {
            topics: vec!["configured".into(), "nope".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let entries: HashMap<String, (String, bool)> = described.topics[0]
        .entries
        .iter()
        .map(|entry| (entry.name.clone(), (entry.value.clone(), entry.is_default)))
        .collect();
    assert_eq!(entries["segment.bytes"], ("1048576".to_string(), false));
    assert_eq!(entries["retention.ms"], ("604800000".to_string(), true));
    assert_eq!(
        described.topics[1].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    produce(&mut node.broker, "configured", 0, records(&["x"], 1)).await;
    let deleted = node
        .admin
        .delete_topics(proto::DeleteTopicsRequest {
            names: vec!["configured".into()],
            timeout_ms: 1_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.topics[0].error_code, 0);
    assert!(
        !directory.path().join("logs/configured-0").exists(),
        "data is removed"
    );
    let metadata = node
        .broker
        .metadata(proto::MetadataRequest { topics: vec![] })
        .await
        .unwrap()
        .into_inner();
    assert!(metadata.topics.is_empty());
    node.handle.shutdown().await;
}

#[tokio::test]
async fn a_produce_stream_appends_and_answers_in_the_order_sent() {
    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    create_topic(&mut node.admin, "ordered", 1, &[]).await;
    const REFUSED: u64 = 7;
    // Every request is queued before the first answer, so many are in flight at once.
    let requests: Vec<proto::ProduceRequest> = (0..20u64)
        .map(|index| proto::ProduceRequest {
            acks: if index == REFUSED { 5 } else { -1 },
            timeout_ms: 5_000,
            correlation_id: index,
            partitions: vec![proto::PartitionRecords {
                topic: "ordered".to_string(),
                partition: 0,
                records: records(&[&format!("v{index:02}")], 1_000),
            }],
        })
        .collect();
    let mut responses = node
        .broker
        .produce_stream(futures::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut answered = Vec::new();
    while let Some(response) = responses.message().await.unwrap() {
        answered.push(response);
    }

    let correlation_ids: Vec<u64> = answered
        .iter()
        .map(|response| response.correlation_id)
        .collect();
    assert_eq!(
        correlation_ids,
        (0..20).collect::<Vec<_>>(),
        "answered in order"
    );
    let mut next_offset = 0;
    for response in &answered {
        let partition = &response.partitions[0];
        if response.correlation_id == REFUSED {
            // A bad request is answered with its error; the stream carries on.
            assert_eq!(partition.error_code, ErrorCode::InvalidRequiredAcks.code());
        } else {
            assert_eq!(partition.error_code, 0, "{}", partition.error_message);
            assert_eq!(
                partition.base_offset, next_offset,
                "appended in the order sent"
            );
            next_offset += 1;
        }
    }
    let fetched = fetch(&mut node.broker, "ordered", 0, 0).await;
    let expected: Vec<String> = (0..20)
        .filter(|&index| index != REFUSED)
        .map(|index| format!("v{index:02}"))
        .collect();
    assert_eq!(values(fetched.records), expected);
    node.handle.shutdown().await;
}

fn partition_from_start(topic: &str) -> proto::FetchPartition {
    proto::FetchPartition {
        topic: topic.into(),
        partition: 0,
        fetch_offset: 0,
        partition_max_bytes: 0,
    }
}

/// Opens a `FetchStream` of `partitions` with `grant_bytes` of credit; more credit goes through
/// the returned sender, and dropping it ends the consumer's side.
async fn open_fetch_stream(
    broker: &mut BrokerClient<Channel>,
    partitions: Vec<proto::FetchPartition>,
    grant_bytes: i64,
) -> (
    tokio::sync::mpsc::Sender<proto::FetchStreamRequest>,
    tonic::Streaming<proto::FetchResponse>,
) {
    let (grants, grant_stream) = tokio::sync::mpsc::channel(4);
    grants
        .send(proto::FetchStreamRequest {
            partitions,
            grant_bytes,
            max_wait_ms: 0,
        })
        .await
        .unwrap();
    let responses = broker
        .fetch_stream(tokio_stream::wrappers::ReceiverStream::new(grant_stream))
        .await
        .unwrap()
        .into_inner();
    (grants, responses)
}

#[tokio::test]
async fn streaming_fetch_respects_granted_credit() {
    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    create_topic(&mut node.admin, "tail", 1, &[]).await;
    for round in 0..3 {
        produce(
            &mut node.broker,
            "tail",
            0,
            records(&[&format!("r{round}")], round),
        )
        .await;
    }
    let (grants, mut responses) =
        open_fetch_stream(&mut node.broker, vec![partition_from_start("tail")], 1).await;
    // One byte of credit still yields one whole batch, then nothing until more is granted.
    let first = responses.message().await.unwrap().unwrap();
    assert_eq!(values(first.partitions[0].records.clone()), ["r0"]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), responses.message())
            .await
            .is_err(),
        "no credit, no data"
    );
    grants
        .send(proto::FetchStreamRequest {
            partitions: vec![],
            grant_bytes: 1 << 20,
            max_wait_ms: 0,
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let response = responses.message().await.unwrap().unwrap();
        seen.extend(values(response.partitions[0].records.clone()));
    }
    assert_eq!(seen, ["r1", "r2"]);
    drop(grants);
    node.handle.shutdown().await;
}

#[tokio::test]
async fn a_deleted_topic_leaves_the_fetch_stream_and_the_stream_ends_with_its_last_partition() {
    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    create_topic(&mut node.admin, "kept", 1, &[]).await;
    create_topic(&mut node.admin, "doomed", 1, &[]).await;
    let tailed = vec![partition_from_start("kept"), partition_from_start("doomed")];
    let (grants, mut responses) = open_fetch_stream(&mut node.broker, tailed, 1 << 20).await;
    let mut delete = async |topic: &str| {
        let deleted = node
            .admin
            .delete_topics(proto::DeleteTopicsRequest {
                names: vec![topic.into()],
                timeout_ms: 1_000,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(deleted.topics[0].error_code, 0);
    };
    let mut next_partition = async || {
        let response = tokio::time::timeout(STREAM_STEP, responses.message())
            .await
            .expect("the stream answers")
            .unwrap()
            .expect("the stream is open");
        assert_eq!(response.partitions.len(), 1, "{response:?}");
        response.partitions.into_iter().next().unwrap()
    };

    delete("doomed").await;
    let reported = next_partition().await;
    assert_eq!(reported.topic, "doomed");
    assert_eq!(
        reported.error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    produce(&mut node.broker, "kept", 0, records(&["still here"], 1)).await;
    let kept = next_partition().await;
    assert_eq!((kept.topic.as_str(), kept.error_code), ("kept", 0));
    assert_eq!(values(kept.records), ["still here"]);

    delete("kept").await;
    let reported = next_partition().await;
    assert_eq!(
        (reported.topic.as_str(), reported.error_code),
        ("kept", ErrorCode::UnknownTopicOrPartition.code())
    );
    let ended = tokio::time::timeout(STREAM_STEP, responses.message())
        .await
        .expect("the stream answers");
    assert!(
        matches!(ended, Ok(None)),
        "no partition left: the stream ends, got {ended:?}"
    );
    drop(grants);
    node.handle.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Whatever bytes arrive as records, the broker answers with an error code and keeps serving.
    #[test]
    fn arbitrary_produce_payloads_never_break_the_broker(payload in proptest::collection::vec(any::<u8>(), 0..600), mutate_at in 0usize..200, byte in any::<u8>()) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let directory = tempfile::tempdir().unwrap();
            let mut node = start(directory.path()).await;
            create_topic(&mut node.admin, "fuzz", 1, &[]).await;
            let response = produce(&mut node.broker, "fuzz", 0, Bytes::from(payload)).await;
            assert_ne!(response.error_code, 0, "random bytes are not a valid batch");
            let mut mutated = records(&["valid"], 1).to_vec();
            let position = mutate_at % mutated.len();
            mutated[position] = byte;
            let response = produce(&mut node.broker, "fuzz", 0, Bytes::from(mutated)).await;
            let stored = fetch(&mut node.broker, "fuzz", 0, 0).await;
            if response.error_code == 0 {
                assert_eq!(stored.high_watermark, 1);
            } else {
                assert_eq!(stored.high_watermark, 0, "a refused batch leaves nothing behind");
            }
            node.handle.shutdown().await;
        });
    }
}

async fn alter_config(
    admin: &mut AdminClient<Channel>,
    topic: &str,
    key: &str,
    value: &str,
) -> proto::TopicResult {
    let request = proto::AlterConfigsRequest {
        topics: vec![proto::AlterTopicConfigs {
            name: topic.to_string(),
            set: HashMap::from([(key.to_string(), value.to_string())]),
            delete: vec![],
        }],
        validate_only: false,
    };
    admin
        .alter_configs(request)
        .await
        .unwrap()
        .into_inner()
        .topics
        .remove(0)
}

/// A CRC-valid batch whose attributes claim `bits` (control 0x20, transactional 0x10): what a
/// hostile or buggy client could send.
fn batch_claiming(bits: i16) -> Bytes {
    let mut bytes = records(&["claimed"], 1).to_vec();
    let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | bits;
    bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
    // The CRC-32C covers everything from the attributes on.
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(bytes)
}

#[tokio::test]
async fn clients_cannot_touch_internal_topics_or_claim_broker_only_batches() {
    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    // The first FindCoordinator makes the broker create `__consumer_offsets` itself.
    let channel = Channel::from_shared(format!("http://{}", node.handle.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut groups =
        strata_proto::v1::group_coordinator_client::GroupCoordinatorClient::new(channel);
    let found = groups
        .find_coordinator(proto::FindCoordinatorRequest {
            group_id: "g".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.error_code, 0, "{}", found.error_message);
    let offsets_partition = node
        .handle
        .replica_manager()
        .partition("__consumer_offsets", 0)
        .expect("the broker created its offsets topic");
    let log_end_before = offsets_partition.log().log_end_offset();

    let refused = produce(
        &mut node.broker,
        "__consumer_offsets",
        0,
        records(&["x"], 1),
    )
    .await;
    assert_eq!(refused.error_code, ErrorCode::InvalidTopicException.code());
    assert!(
        refused.error_message.contains("internal topic"),
        "{}",
        refused.error_message
    );
    assert_eq!(offsets_partition.log().log_end_offset(), log_end_before);

    let created = create_topic(&mut node.admin, "__mine", 1, &[]).await;
    assert_eq!(created.error_code, ErrorCode::InvalidTopicException.code());
    let deleted = node
        .admin
        .delete_topics(proto::DeleteTopicsRequest {
            names: vec!["__consumer_offsets".to_string()],
            timeout_ms: 5_000,
        })
        .await
        .unwrap()
        .into_inner()
        .topics
        .remove(0);
    assert_eq!(deleted.error_code, ErrorCode::InvalidTopicException.code());
    let altered = alter_config(&mut node.admin, "__consumer_offsets", "retention.ms", "1").await;
    assert_eq!(altered.error_code, ErrorCode::InvalidTopicException.code());
    assert!(
        node.handle
            .replica_manager()
            .partition("__consumer_offsets", 0)
            .is_ok(),
        "the offsets topic is still there"
    );

    assert_eq!(
        create_topic(&mut node.admin, "plain", 1, &[])
            .await
            .error_code,
        0
    );
    for bits in [0x20, 0x10] {
        let refused = produce(&mut node.broker, "plain", 0, batch_claiming(bits)).await;
        assert_eq!(
            refused.error_code,
            ErrorCode::InvalidRecord.code(),
            "{bits:#x}"
        );
    }
    assert_eq!(
        fetch(&mut node.broker, "plain", 0, 0).await.high_watermark,
        0,
        "no claimed batch was stored"
    );
    // The same batch without the claim is an ordinary one, so the refusal was about the claim.
    assert_eq!(
        produce(&mut node.broker, "plain", 0, batch_claiming(0))
            .await
            .error_code,
        0
    );
    node.handle.shutdown().await;
}

#[tokio::test]
async fn the_client_listener_serves_no_inter_broker_call() {
    let directory = tempfile::tempdir().unwrap();
    let node = start(directory.path()).await;
    let client_channel = Channel::from_shared(format!("http://{}", node.handle.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let fetch = proto_replication::ReplicaFetchRequest {
        replica_id: 2,
        broker_epoch: 0,
        max_wait_ms: 0,
        max_bytes: 1 << 20,
        partitions: vec![],
    };
    let status = ReplicationClient::new(client_channel.clone())
        .replica_fetch(fetch.clone())
        .await
        .expect_err("the client listener does not serve replication");
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status}");
    let status =
        strata_proto::controller_v1::controller_service_client::ControllerServiceClient::new(
            client_channel,
        )
        .submit(strata_proto::controller_v1::SubmitRequest::default())
        .await
        .expect_err("the client listener does not serve the controller");
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status}");

    // The internal listener does serve it (and refuses this caller: no broker 2 is registered).
    let internal_channel = Channel::from_shared(format!("http://{}", node.handle.internal_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ReplicationClient::new(internal_channel)
        .replica_fetch(fetch)
        .await
        .expect("the internal listener serves replication");
    node.handle.shutdown().await;
}

#[tokio::test]
async fn min_insync_replicas_above_the_replication_factor_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    let refused = create_topic(
        &mut node.admin,
        "unwritable",
        1,
        &[("min.insync.replicas", "2")],
    )
    .await;
    assert_eq!(refused.error_code, ErrorCode::InvalidConfig.code());
    assert!(
        refused.error_message.contains("replication factor is 1"),
        "{}",
        refused.error_message
    );
    assert_eq!(
        create_topic(&mut node.admin, "single", 1, &[])
            .await
            .error_code,
        0
    );
    let altered = alter_config(&mut node.admin, "single", "min.insync.replicas", "2").await;
    assert_eq!(altered.error_code, ErrorCode::InvalidConfig.code());
    node.handle.shutdown().await;
}

/// The broker runs on a runtime of its own, so that if its request threads ever waited for the
/// disk again, the client side's deadlines would still fire and fail the test instead of hanging.
#[test]
fn a_stalled_fsync_holds_only_its_own_partitions_writes() {
    use strata_storage::fault::{self, Fault, Operation};

    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let (broker_runtime, client_runtime) = (runtime(), runtime());
    let directory = tempfile::tempdir().unwrap();
    let handle = broker_runtime
        .block_on(Broker::start(BrokerConfig {
            data_dir: directory.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..BrokerConfig::default()
        }))
        .expect("broker starts");
    let address = format!("http://{}", handle.local_addr());
    client_runtime.block_on(async {
        let channel = Channel::from_shared(address)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut broker = BrokerClient::new(channel.clone());
        let mut admin = AdminClient::new(channel);
        // Every append to `slow` fsyncs before it is acknowledged.
        let created = create_topic(&mut admin, "slow", 1, &[("flush.messages", "1")]).await;
        assert_eq!(created.error_code, 0, "{}", created.error_message);
        assert_eq!(create_topic(&mut admin, "fast", 1, &[]).await.error_code, 0);
        let before = produce(&mut broker, "slow", 0, records(&["before"], 1)).await;
        assert_eq!(before.error_code, 0);

        let stall = fault::inject(
            &directory.path().join("logs").join("slow-0"),
            Fault::stall(Operation::SegmentSync),
        );
        let mut stalled_client = broker.clone();
        let stalled = tokio::spawn(async move {
            produce(&mut stalled_client, "slow", 0, records(&["during"], 2)).await
        });
        let deadline = tokio::time::Instant::now() + STREAM_STEP;
        while stall.failures() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the append never reached its fsync"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // The disk holds that append, and nothing else: the same partition's fetches and
        // another partition's acks=all produce are answered meanwhile.
        let fetched = tokio::time::timeout(STREAM_STEP, fetch(&mut broker, "slow", 0, 0))
            .await
            .expect("a fetch of the stalled partition is answered");
        assert_eq!(values(fetched.records), ["before"]);
        let other = tokio::time::timeout(
            STREAM_STEP,
            produce(&mut broker, "fast", 0, records(&["elsewhere"], 3)),
        )
        .await
        .expect("another partition's produce is answered");
        assert_eq!(other.error_code, 0, "{}", other.error_message);
        assert!(
            !stalled.is_finished(),
            "the stalled append waits for its fsync"
        );

        drop(stall);
        let released = tokio::time::timeout(STREAM_STEP, stalled)
            .await
            .expect("the append completes once the disk answers")
            .unwrap();
        assert_eq!(released.error_code, 0, "{}", released.error_message);
        assert_eq!(
            values(fetch(&mut broker, "slow", 0, 0).await.records),
            ["before", "during"]
        );
    });
    broker_runtime.block_on(handle.shutdown());
}

#[tokio::test]
async fn a_full_disk_answers_kafka_storage_error_and_appends_resume_once_space_is_freed() {
    use strata_storage::fault::{self, Fault, Operation};

    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    assert_eq!(
        create_topic(&mut node.admin, "full", 1, &[])
            .await
            .error_code,
        0
    );
    let full = fault::inject(
        &directory.path().join("logs").join("full-0"),
        Fault::no_space(Operation::AppendWrite),
    );
    let refused = produce(&mut node.broker, "full", 0, records(&["no room"], 1)).await;
    assert_eq!(
        ErrorCode::from_code(refused.error_code),
        ErrorCode::KafkaStorageError,
        "{}",
        refused.error_message
    );
    assert!(
        refused.error_message.to_lowercase().contains("space"),
        "{}",
        refused.error_message
    );
    drop(full);
    let stored = produce(&mut node.broker, "full", 0, records(&["room again"], 2)).await;
    assert_eq!(stored.error_code, 0, "{}", stored.error_message);
    assert_eq!(
        stored.base_offset, 0,
        "the refused append left nothing behind"
    );
    assert_eq!(
        values(fetch(&mut node.broker, "full", 0, 0).await.records),
        ["room again"]
    );
    node.handle.shutdown().await;
}

#[tokio::test]
async fn a_request_above_the_size_limit_is_refused_with_a_strata_code() {
    let directory = tempfile::tempdir().unwrap();
    let mut node = start(directory.path()).await;
    assert_eq!(
        create_topic(&mut node.admin, "huge", 1, &[])
            .await
            .error_code,
        0
    );
    let oversized = || proto::ProduceRequest {
        acks: 1,
        timeout_ms: 5_000,
        correlation_id: 0,
        partitions: vec![proto::PartitionRecords {
            topic: "huge".to_string(),
            partition: 0,
            records: Bytes::from(vec![0u8; strata_broker::MAX_REQUEST_BYTES + 1]),
        }],
    };
    let code_of = |status: &tonic::Status| -> i32 {
        status
            .metadata()
            .get(ERROR_CODE_METADATA)
            .unwrap_or_else(|| panic!("no Strata code on {status:?}"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let unary = node
        .broker
        .produce(oversized())
        .await
        .expect_err("a request above the limit is refused");
    assert_eq!(
        code_of(&unary),
        ErrorCode::MessageTooLarge.code(),
        "{unary:?}"
    );

    let mut responses = node
        .broker
        .produce_stream(tokio_stream::iter([oversized()]))
        .await
        .unwrap()
        .into_inner();
    let streamed = match responses.message().await {
        Ok(Some(_)) => panic!("the oversized request was answered"),
        Ok(None) => panic!("the stream ended without a status"),
        Err(status) => status,
    };
    assert_eq!(
        code_of(&streamed),
        ErrorCode::MessageTooLarge.code(),
        "{streamed:?}"
    );
    assert_eq!(
        fetch(&mut node.broker, "huge", 0, 0).await.high_watermark,
        0
    );
    node.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_share_the_request_byte_budget_and_every_request_is_answered() {
    let directory = tempfile::tempdir().unwrap();
    // Smaller than any one request: each is then admitted alone, one after another.
    let mut node = start_with(BrokerConfig {
        data_dir: directory.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        queued_max_request_bytes: 100,
        ..BrokerConfig::default()
    })
    .await;
    assert_eq!(
        create_topic(&mut node.admin, "budget", 2, &[])
            .await
            .error_code,
        0
    );
    let stream_of = |partition: i32| {
        let requests: Vec<proto::ProduceRequest> = (0..10u64)
            .map(|index| proto::ProduceRequest {
                acks: -1,
                timeout_ms: 10_000,
                correlation_id: index,
                partitions: vec![proto::PartitionRecords {
                    topic: "budget".to_string(),
                    partition,
                    records: records(&[&"x".repeat(4_000)], 1_000),
                }],
            })
            .collect();
        let mut client = node.broker.clone();
        async move {
            let mut responses = client
                .produce_stream(futures::stream::iter(requests))
                .await
                .unwrap()
                .into_inner();
            let mut stored = 0;
            while let Some(response) = responses.message().await.unwrap() {
                let partition = &response.partitions[0];
                assert_eq!(partition.error_code, 0, "{}", partition.error_message);
                stored += 1;
            }
            stored
        }
    };
    let (first, second) = tokio::time::timeout(STREAM_STEP, async {
        tokio::join!(stream_of(0), stream_of(1))
    })
    .await
    .expect("both producers are answered");
    assert_eq!((first, second), (10, 10));
    node.handle.shutdown().await;
}
