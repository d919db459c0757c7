//! Topic and cluster administration through the Kafka listener: every served version of the
//! admin APIs answers in a form the codec reads, a topic lives through create, describe, alter,
//! grow and delete, refusals carry Kafka's codes, DeleteRecords moves the log start, and the two
//! doors see the same topics.

mod kafka_client;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_client::{
    KafkaConnection, batch, create_topics_request, list_offset, metadata_topic, new_topic,
    produce_request, served, start, topic_id, topic_name,
};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId,
    CreatePartitionsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, alter_configs_request,
    incremental_alter_configs_request,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use strata_broker::BrokerHandle;
use strata_proto::v1 as proto;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::broker_client::BrokerClient;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_ID: i16 = 100;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 119;

/// Kafka's config resource types, sources and IncrementalAlterConfigs operations.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// A connection whose ApiVersions answer says what is served.
async fn connect(broker: &BrokerHandle) -> (KafkaConnection, ApiVersionsResponse) {
    let mut connection =
        KafkaConnection::connect(broker.kafka_addr().expect("a Kafka listener")).await;
    let versions = connection.send(ApiVersionsRequest::default(), 3).await;
    assert_eq!(versions.error_code, 0);
    (connection, versions)
}

fn with_configs(topic: CreatableTopic, configs: &[(&str, &str)]) -> CreatableTopic {
    topic.with_configs(
        configs
            .iter()
            .map(|(key, value)| {
                CreatableTopicConfig::default()
                    .with_name(text(key))
                    .with_value(Some(text(value)))
            })
            .collect(),
    )
}

/// Creates one topic through the Kafka door and returns its result's code and message.
async fn create(
    connection: &mut KafkaConnection,
    topic: CreatableTopic,
    validate_only: bool,
) -> (i16, String) {
    let answer = connection
        .send(create_topics_request(vec![topic], validate_only), 7)
        .await;
    let result = &answer.topics[0];
    let message = result
        .error_message
        .as_ref()
        .map(|message| message.to_string());
    (result.error_code, message.unwrap_or_default())
}

fn describe_topic_request(topic: &str) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default()
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(text(topic))
                .with_configuration_keys(None),
        ])
        .with_include_synonyms(true)
}

async fn describe_topic(connection: &mut KafkaConnection, topic: &str) -> DescribeConfigsResult {
    let mut answer = connection.send(describe_topic_request(topic), 4).await;
    answer.results.remove(0)
}

fn entry<'a>(result: &'a DescribeConfigsResult, key: &str) -> &'a DescribeConfigsResourceResult {
    result
        .configs
        .iter()
        .find(|entry| entry.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} is described: {result:?}"))
}

fn value(entry: &DescribeConfigsResourceResult) -> &str {
    entry.value.as_ref().map_or("", |value| value.as_str())
}

fn incremental(
    topic: &str,
    changes: &[(&str, i8, Option<&str>)],
) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(text(topic))
            .with_configs(
                changes
                    .iter()
                    .map(|&(key, operation, value)| {
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(text(key))
                            .with_config_operation(operation)
                            .with_value(value.map(text))
                    })
                    .collect(),
            ),
    ])
}

fn grow(topic: &str, count: i32) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None),
        ])
}

fn delete_records(topic: &str, offset: i64) -> DeleteRecordsRequest {
    DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(offset),
                ]),
        ])
}

/// DeleteTopics by name in `version` (version 6 names topics in another field).
fn delete_topics(names: &[&str], version: i16) -> DeleteTopicsRequest {
    let request = DeleteTopicsRequest::default().with_timeout_ms(10_000);
    if version >= 6 {
        request.with_topics(
            names
                .iter()
                .map(|name| DeleteTopicState::default().with_name(Some(topic_name(name))))
                .collect(),
        )
    } else {
        request.with_topic_names(names.iter().map(|name| topic_name(name)).collect())
    }
}

/// Produces `count` records to partition 0 of `topic` through the Kafka door.
async fn produce(connection: &mut KafkaConnection, topic: &str, count: usize) {
    let records = batch(&vec!["record"; count]);
    let answer = connection
        .send(produce_request(topic, -1, records), 9)
        .await;
    assert_eq!(answer.responses[0].partition_responses[0].error_code, 0);
}

/// The partition count of `topic` through the Kafka door's Metadata, `None` if it is unknown.
async fn partitions(connection: &mut KafkaConnection, topic: &str) -> Option<usize> {
    let topic = metadata_topic(connection, topic).await;
    (topic.error_code == 0).then_some(topic.partitions.len())
}

/// The cluster id DescribeCluster names once the controller has chosen one. The controller
/// leader's driver does that on its own tick, which may come after the broker started, and
/// nothing public signals it, so it is polled (with a bound).
async fn initialized_cluster_id(connection: &mut KafkaConnection) -> StrBytes {
    let deadline = tokio::time::Instant::now() + kafka_client::ANSWER_WAIT;
    loop {
        let answer = connection.send(DescribeClusterRequest::default(), 0).await;
        if !answer.cluster_id.is_empty() {
            return answer.cluster_id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cluster id is chosen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_version_of_the_admin_apis_answers_in_a_form_the_codec_reads() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let (mut connection, versions) = connect(&broker).await;

    let mut created = Vec::new();
    for version in served(&versions, ApiKey::CreateTopics) {
        let name = format!("created-v{version}");
        // -1 asks for the broker's defaults.
        let topic = with_configs(new_topic(&name, -1, -1), &[("retention.ms", "60000")]);
        let answer = connection
            .send(create_topics_request(vec![topic], false), version)
            .await;
        let result = &answer.topics[0];
        assert_eq!(result.error_code, 0, "v{version}: {result:?}");
        assert_eq!(result.name.0.as_str(), name);
        if version >= 7 {
            assert_eq!(
                result.topic_id,
                topic_id(&mut connection, &name).await,
                "v{version}"
            );
        }
        if version >= 5 {
            assert_eq!(
                (result.num_partitions, result.replication_factor),
                (1, 1),
                "v{version}"
            );
            let configs = result.configs.as_ref().expect("configs");
            let retention = configs
                .iter()
                .find(|config| config.name.as_str() == "retention.ms")
                .expect("retention.ms is listed");
            assert_eq!(
                (retention.value.as_deref(), retention.config_source),
                (Some("60000"), DYNAMIC_TOPIC_CONFIG),
                "v{version}"
            );
            let segment = configs
                .iter()
                .find(|config| config.name.as_str() == "segment.bytes")
                .expect("segment.bytes is listed");
            assert_eq!(segment.config_source, DEFAULT_CONFIG, "v{version}");
        }
        created.push(name);
    }
    let topic = created[0].clone();

    for version in served(&versions, ApiKey::DescribeConfigs) {
        let mut request = describe_topic_request(&topic);
        request.resources.push(
            DescribeConfigsResource::default()
                .with_resource_type(BROKER)
                .with_resource_name(text("1"))
                .with_configuration_keys(None),
        );
        if version >= 3 {
            request.include_documentation = true;
        }
        let answer = connection.send(request, version).await;
        let topic_result = &answer.results[0];
        assert_eq!(topic_result.error_code, 0, "v{version}: {topic_result:?}");
        let retention = entry(topic_result, "retention.ms");
        assert_eq!(value(retention), "60000", "v{version}");
        assert_eq!(retention.config_source, DYNAMIC_TOPIC_CONFIG, "v{version}");
        assert_eq!(
            retention.synonyms.len(),
            2,
            "v{version}: override and default"
        );
        let segment = entry(topic_result, "segment.bytes");
        assert_eq!(segment.config_source, DEFAULT_CONFIG, "v{version}");
        if version >= 3 {
            assert_ne!(segment.config_type, 0, "v{version}: typed");
        }
        let broker_result = &answer.results[1];
        assert_eq!(broker_result.error_code, 0, "v{version}");
        let log_retention = entry(broker_result, "log.retention.ms");
        assert_eq!(value(log_retention), "604800000", "v{version}");
        assert!(log_retention.read_only, "v{version}");
    }

    for version in served(&versions, ApiKey::AlterConfigs) {
        let retention = format!("{}", 70_000 + i32::from(version));
        let answer = connection
            .send(
                AlterConfigsRequest::default().with_resources(vec![
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(TOPIC)
                        .with_resource_name(text(&topic))
                        .with_configs(vec![
                            alter_configs_request::AlterableConfig::default()
                                .with_name(text("retention.ms"))
                                .with_value(Some(text(&retention))),
                        ]),
                ]),
                version,
            )
            .await;
        assert_eq!(answer.responses[0].error_code, 0, "v{version}: {answer:?}");
        let described = describe_topic(&mut connection, &topic).await;
        assert_eq!(
            value(entry(&described, "retention.ms")),
            retention,
            "v{version}"
        );
    }

    for version in served(&versions, ApiKey::IncrementalAlterConfigs) {
        let max_message_bytes = format!("{}", 100_000 + i32::from(version));
        let answer = connection
            .send(
                incremental(
                    &topic,
                    &[("max.message.bytes", SET, Some(&max_message_bytes))],
                ),
                version,
            )
            .await;
        assert_eq!(answer.responses[0].error_code, 0, "v{version}: {answer:?}");
        let described = describe_topic(&mut connection, &topic).await;
        assert_eq!(
            value(entry(&described, "max.message.bytes")),
            max_message_bytes,
            "v{version}"
        );
    }

    for version in served(&versions, ApiKey::CreatePartitions) {
        let count = 2 + i32::from(version);
        let answer = connection.send(grow(&topic, count), version).await;
        assert_eq!(answer.results[0].error_code, 0, "v{version}: {answer:?}");
        assert_eq!(
            partitions(&mut connection, &topic).await,
            Some(count as usize),
            "v{version}"
        );
    }

    produce(&mut connection, &topic, 10).await;
    for version in served(&versions, ApiKey::DeleteRecords) {
        let before = i64::from(version) + 1;
        let answer = connection
            .send(delete_records(&topic, before), version)
            .await;
        let partition = &answer.topics[0].partitions[0];
        assert_eq!(
            (partition.error_code, partition.low_watermark),
            (0, before),
            "v{version}"
        );
        assert_eq!(list_offset(&mut connection, &topic, -2).await, before);
    }

    let kafka_port = i32::from(broker.kafka_addr().unwrap().port());
    let cluster_id = initialized_cluster_id(&mut connection).await;
    for version in served(&versions, ApiKey::DescribeCluster) {
        let answer = connection
            .send(DescribeClusterRequest::default(), version)
            .await;
        assert_eq!(answer.error_code, 0, "v{version}: {answer:?}");
        assert_eq!(answer.cluster_id, cluster_id, "v{version}");
        assert_eq!(answer.controller_id, BrokerId(1), "v{version}");
        assert_eq!(answer.brokers.len(), 1, "v{version}");
        assert_eq!(answer.brokers[0].port, kafka_port, "v{version}");
        assert_eq!(answer.cluster_authorized_operations, i32::MIN, "v{version}");
    }
    let asked = connection
        .send(
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
            1,
        )
        .await;
    assert_ne!(asked.cluster_authorized_operations, i32::MIN);

    let deletions = served(&versions, ApiKey::DeleteTopics);
    assert!(deletions.clone().count() >= created.len());
    for (version, name) in deletions.zip(&created) {
        let answer = connection
            .send(delete_topics(&[name.as_str()], version), version)
            .await;
        let result = &answer.responses[0];
        assert_eq!(result.error_code, 0, "v{version}: {result:?}");
        assert_eq!(
            result.name.as_ref().map(|name| name.0.as_str()),
            Some(name.as_str())
        );
        assert_eq!(partitions(&mut connection, name).await, None, "v{version}");
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_is_created_described_altered_grown_and_deleted_through_the_kafka_door() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let (mut connection, _) = connect(&broker).await;

    let topic = with_configs(new_topic("orders", 2, 1), &[("retention.ms", "3600000")]);
    assert_eq!(create(&mut connection, topic, false).await.0, 0);
    let described = describe_topic(&mut connection, "orders").await;
    let retention = entry(&described, "retention.ms");
    assert_eq!(
        (value(retention), retention.config_source),
        ("3600000", DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(retention.synonyms[0].source, DYNAMIC_TOPIC_CONFIG);
    assert_eq!(retention.synonyms[1].name.as_str(), "log.retention.ms");
    assert_eq!(retention.synonyms[1].source, DEFAULT_CONFIG);
    let segment_ms = entry(&described, "segment.ms");
    assert_eq!(segment_ms.config_source, DEFAULT_CONFIG);
    assert!(!segment_ms.read_only && !segment_ms.is_sensitive);

    // Only asked keys are described.
    let mut asked = describe_topic_request("orders");
    asked.resources[0].configuration_keys = Some(vec![text("segment.ms")]);
    let answer = connection.send(asked, 4).await;
    assert_eq!(answer.results[0].configs.len(), 1);

    // SET and DELETE in one request: retention returns to its default.
    let answer = connection
        .send(
            incremental(
                "orders",
                &[
                    ("retention.ms", DELETE, None),
                    ("segment.ms", SET, Some("600000")),
                ],
            ),
            1,
        )
        .await;
    assert_eq!(answer.responses[0].error_code, 0, "{answer:?}");
    let described = describe_topic(&mut connection, "orders").await;
    let retention = entry(&described, "retention.ms");
    assert_eq!(
        (value(retention), retention.config_source),
        ("604800000", DEFAULT_CONFIG)
    );
    let segment_ms = entry(&described, "segment.ms");
    assert_eq!(
        (value(segment_ms), segment_ms.config_source),
        ("600000", DYNAMIC_TOPIC_CONFIG)
    );

    // APPEND is for list configs only, as in Kafka.
    let answer = connection
        .send(
            incremental("orders", &[("segment.ms", APPEND, Some("1"))]),
            1,
        )
        .await;
    assert_eq!(answer.responses[0].error_code, INVALID_CONFIG);

    // AlterConfigs replaces the whole override set: segment.ms, left out, returns to default.
    let answer = connection
        .send(
            AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(TOPIC)
                    .with_resource_name(text("orders"))
                    .with_configs(vec![
                        alter_configs_request::AlterableConfig::default()
                            .with_name(text("retention.bytes"))
                            .with_value(Some(text("1048576"))),
                    ]),
            ]),
            2,
        )
        .await;
    assert_eq!(answer.responses[0].error_code, 0, "{answer:?}");
    let described = describe_topic(&mut connection, "orders").await;
    assert_eq!(
        entry(&described, "segment.ms").config_source,
        DEFAULT_CONFIG
    );
    assert_eq!(value(entry(&described, "retention.bytes")), "1048576");

    // validate_only changes nothing.
    let mut validated = grow("orders", 5);
    validated.validate_only = true;
    let answer = connection.send(validated, 3).await;
    assert_eq!(answer.results[0].error_code, 0);
    assert_eq!(partitions(&mut connection, "orders").await, Some(2));
    let answer = connection.send(grow("orders", 5), 3).await;
    assert_eq!(answer.results[0].error_code, 0);
    assert_eq!(partitions(&mut connection, "orders").await, Some(5));

    // Deleted by its id, which the answer names it by too, with its name.
    let id = topic_id(&mut connection, "orders").await;
    let answer = connection
        .send(
            DeleteTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![DeleteTopicState::default().with_topic_id(id)]),
            6,
        )
        .await;
    let result = &answer.responses[0];
    assert_eq!(result.error_code, 0, "{result:?}");
    assert_eq!(
        (
            result.name.as_ref().map(|name| name.0.as_str()),
            result.topic_id
        ),
        (Some("orders"), id)
    );
    assert_eq!(partitions(&mut connection, "orders").await, None);
    let described = describe_topic(&mut connection, "orders").await;
    assert_eq!(described.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_refusals_carry_kafkas_codes_and_change_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let (mut connection, _) = connect(&broker).await;
    assert_eq!(
        create(&mut connection, new_topic("taken", 1, 1), false)
            .await
            .0,
        0
    );

    let refused_creations = [
        (new_topic("taken", 1, 1), TOPIC_ALREADY_EXISTS),
        (new_topic("wide", 1, 3), INVALID_REPLICATION_FACTOR),
        (new_topic("empty", 0, 1), INVALID_PARTITIONS),
        (new_topic("bad/name", 1, 1), INVALID_TOPIC_EXCEPTION),
        (new_topic("__internal", 1, 1), INVALID_TOPIC_EXCEPTION),
        (
            with_configs(new_topic("odd", 1, 1), &[("no.such.key", "1")]),
            INVALID_CONFIG,
        ),
        (
            with_configs(new_topic("odd", 1, 1), &[("retention.ms", "soon")]),
            INVALID_CONFIG,
        ),
        (
            new_topic("placed", -1, -1).with_assignments(vec![
                CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(1)]),
            ]),
            INVALID_REQUEST,
        ),
    ];
    for validate_only in [true, false] {
        for (topic, code) in refused_creations.iter().cloned() {
            let name = topic.name.0.to_string();
            let (refused, message) = create(&mut connection, topic, validate_only).await;
            assert_eq!(
                refused, code,
                "{name} (validate_only {validate_only}): {message}"
            );
            assert!(!message.is_empty(), "{name}: a refusal says why");
        }
    }
    for name in ["wide", "empty", "odd", "placed"] {
        assert_eq!(partitions(&mut connection, name).await, None, "{name}");
    }
    // validate_only creates nothing.
    assert_eq!(
        create(&mut connection, new_topic("dry", 1, 1), true)
            .await
            .0,
        0
    );
    assert_eq!(partitions(&mut connection, "dry").await, None);

    // A name given twice is refused in each of its entries; the others go ahead.
    let answer = connection
        .send(
            create_topics_request(
                vec![
                    new_topic("twice", 1, 1),
                    new_topic("twice", 1, 1),
                    new_topic("once", 1, 1),
                ],
                false,
            ),
            7,
        )
        .await;
    let codes: Vec<i16> = answer.topics.iter().map(|topic| topic.error_code).collect();
    assert_eq!(codes, vec![INVALID_REQUEST, INVALID_REQUEST, 0]);

    let describe = describe_topic(&mut connection, "missing").await;
    assert_eq!(describe.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let answer = connection
        .send(
            incremental("missing", &[("retention.ms", SET, Some("1000"))]),
            1,
        )
        .await;
    assert_eq!(answer.responses[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let answer = connection
        .send(incremental("taken", &[("no.such.key", SET, Some("1"))]), 1)
        .await;
    assert_eq!(answer.responses[0].error_code, INVALID_CONFIG);
    let answer = connection
        .send(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(BROKER)
                    .with_resource_name(text("1")),
            ]),
            1,
        )
        .await;
    assert_eq!(answer.responses[0].error_code, INVALID_REQUEST);

    let answer = connection.send(grow("taken", 1), 3).await;
    assert_eq!(answer.results[0].error_code, INVALID_PARTITIONS);
    let answer = connection.send(grow("missing", 2), 3).await;
    assert_eq!(answer.results[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let mut placed = grow("taken", 2);
    placed.topics[0].assignments = Some(vec![
        CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)]),
    ]);
    let answer = connection.send(placed, 3).await;
    assert_eq!(answer.results[0].error_code, INVALID_REQUEST);

    // Internal topics are the cluster's own: clients may not change them.
    let answer = connection
        .send(delete_topics(&["__consumer_offsets"], 6), 6)
        .await;
    assert_eq!(answer.responses[0].error_code, INVALID_TOPIC_EXCEPTION);
    let answer = connection
        .send(
            incremental("__consumer_offsets", &[("retention.ms", SET, Some("1"))]),
            1,
        )
        .await;
    assert_eq!(answer.responses[0].error_code, INVALID_TOPIC_EXCEPTION);
    let answer = connection.send(grow("__consumer_offsets", 100), 3).await;
    assert_eq!(answer.results[0].error_code, INVALID_TOPIC_EXCEPTION);
    let answer = connection
        .send(delete_records("__consumer_offsets", -1), 2)
        .await;
    assert_eq!(
        answer.topics[0].partitions[0].error_code,
        INVALID_TOPIC_EXCEPTION
    );

    let answer = connection.send(delete_topics(&["missing"], 6), 6).await;
    assert_eq!(answer.responses[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    // An id no topic has names no topic.
    let mut by_id = BytesMut::new();
    by_id.put_u8(0); // a null name
    by_id.put_slice(&[7; 16]);
    by_id.put_u8(0); // no tagged fields
    let by_id = DeleteTopicState::decode(&mut Bytes::from(by_id), 6).unwrap();
    let answer = connection
        .send(
            DeleteTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![by_id]),
            6,
        )
        .await;
    assert_eq!(answer.responses[0].error_code, UNKNOWN_TOPIC_ID);
    assert!(answer.responses[0].name.is_none());

    produce(&mut connection, "taken", 3).await;
    let answer = connection.send(delete_records("taken", 4), 2).await;
    let partition = &answer.topics[0].partitions[0];
    assert_eq!(
        (partition.error_code, partition.low_watermark),
        (OFFSET_OUT_OF_RANGE, -1)
    );
    assert_eq!(list_offset(&mut connection, "taken", -2).await, 0);
    let answer = connection.send(delete_records("missing", 0), 2).await;
    assert_eq!(
        answer.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    let answer = connection
        .send(DescribeClusterRequest::default().with_endpoint_type(2), 1)
        .await;
    assert_eq!(answer.error_code, UNSUPPORTED_ENDPOINT_TYPE);
    assert_eq!(partitions(&mut connection, "taken").await, Some(1));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_that_list_offsets_earliest_shows() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let (mut connection, _) = connect(&broker).await;
    assert_eq!(
        create(&mut connection, new_topic("trimmed", 1, 1), false)
            .await
            .0,
        0
    );
    produce(&mut connection, "trimmed", 5).await;

    let answer = connection.send(delete_records("trimmed", 2), 2).await;
    assert_eq!(answer.topics[0].partitions[0].low_watermark, 2);
    assert_eq!(list_offset(&mut connection, "trimmed", -2).await, 2);
    // An offset below the log start changes nothing.
    let answer = connection.send(delete_records("trimmed", 1), 2).await;
    assert_eq!(answer.topics[0].partitions[0].low_watermark, 2);
    // -1 is the high watermark: everything produced goes.
    let answer = connection.send(delete_records("trimmed", -1), 2).await;
    let partition = &answer.topics[0].partitions[0];
    assert_eq!((partition.error_code, partition.low_watermark), (0, 5));
    assert_eq!(list_offset(&mut connection, "trimmed", -2).await, 5);
    assert_eq!(list_offset(&mut connection, "trimmed", -1).await, 5);
    // The log goes on from there.
    produce(&mut connection, "trimmed", 1).await;
    assert_eq!(list_offset(&mut connection, "trimmed", -1).await, 6);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_created_through_either_door_are_seen_through_the_other() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let (mut connection, _) = connect(&broker).await;
    let grpc_address = format!("http://{}", broker.local_addr());
    let mut admin = AdminClient::connect(grpc_address.clone()).await.unwrap();
    let mut metadata = BrokerClient::connect(grpc_address).await.unwrap();

    let topic = with_configs(new_topic("from-kafka", 3, 1), &[("segment.ms", "600000")]);
    assert_eq!(create(&mut connection, topic, false).await.0, 0);
    let seen = metadata
        .metadata(proto::MetadataRequest {
            topics: vec!["from-kafka".to_string()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.topics[0].error_code, 0);
    assert_eq!(seen.topics[0].partitions.len(), 3);
    let configs = admin
        .describe_configs(proto::DescribeConfigsRequest {
            topics: vec!["from-kafka".to_string()],
        })
        .await
        .unwrap()
        .into_inner();
    let segment_ms = configs.topics[0]
        .entries
        .iter()
        .find(|entry| entry.name == "segment.ms")
        .unwrap();
    assert_eq!(
        (segment_ms.value.as_str(), segment_ms.is_default),
        ("600000", false)
    );

    let created = admin
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![proto::CreatableTopic {
                name: "from-grpc".to_string(),
                num_partitions: 2,
                replication_factor: 1,
                configs: [("retention.ms".to_string(), "1000".to_string())].into(),
            }],
            timeout_ms: 10_000,
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(partitions(&mut connection, "from-grpc").await, Some(2));
    let described = describe_topic(&mut connection, "from-grpc").await;
    let retention = entry(&described, "retention.ms");
    assert_eq!(
        (value(retention), retention.config_source),
        ("1000", DYNAMIC_TOPIC_CONFIG)
    );

    // And deletion through one door is seen through the other.
    let answer = connection.send(delete_topics(&["from-grpc"], 4), 4).await;
    assert_eq!(answer.responses[0].error_code, 0);
    let seen = metadata
        .metadata(proto::MetadataRequest {
            topics: vec!["from-grpc".to_string()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        seen.topics[0].error_code,
        i32::from(UNKNOWN_TOPIC_OR_PARTITION)
    );
    broker.shutdown().await;
}
