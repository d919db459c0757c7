//! The client against a real broker started in this process on a loopback port.
//!
//! Every wait is on a condition (a delivery, a poll result) with a bounded deadline; nothing
//! sleeps to synchronise.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use strata_broker::{Broker, BrokerConfig};
use strata_client::{
    Acks, Admin, AdminConfig, AutoOffsetReset, CompressionType, Consumer, ConsumerConfig,
    ConsumerRecord, Error, ErrorCode, Header, NewTopic, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord, RecordMetadata, TopicPartition,
};
use strata_proto::v1 as wire;
use strata_proto::v1::broker_client::BrokerClient;
use strata_record::{BatchIter, RecordBatch};
use strata_tests::relay::SilencingRelay;
use tempfile::TempDir;

/// The longest any single step of these tests may take on a slow, loaded CI machine.
mod common;
use common::start_broker;

const STEP_TIMEOUT: Duration = Duration::from_secs(30);

async fn admin(bootstrap: &str) -> Result<Admin> {
    Ok(Admin::connect(AdminConfig::builder().bootstrap(bootstrap).build()?).await?)
}

async fn producer(bootstrap: &str) -> Result<Producer> {
    Ok(Producer::connect(
        ProducerConfig::builder()
            .bootstrap(bootstrap)
            .linger_ms(1)
            .build()?,
    )
    .await?)
}

async fn consumer(bootstrap: &str, reset: AutoOffsetReset) -> Result<Consumer> {
    let config = ConsumerConfig::builder()
        .bootstrap(bootstrap)
        .auto_offset_reset(reset)
        .fetch_max_wait_ms(200)
        .build()?;
    Ok(Consumer::connect(config).await?)
}

/// Polls until `count` records arrived or the step timeout passes.
async fn poll_records(consumer: &mut Consumer, count: usize) -> Result<Vec<ConsumerRecord>> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut records = Vec::new();
    while records.len() < count {
        ensure!(
            Instant::now() < deadline,
            "only {} of {count} records arrived in time",
            records.len()
        );
        records.extend(consumer.poll(Duration::from_millis(500)).await?);
    }
    Ok(records)
}

fn partitions(topic: &str, count: i32) -> Vec<TopicPartition> {
    (0..count)
        .map(|partition| TopicPartition::new(topic, partition))
        .collect()
}

fn expect_code<T: std::fmt::Debug>(result: Result<T, Error>, code: ErrorCode) -> Result<Error> {
    match result {
        Err(error) if error.code() == Some(code) => Ok(error),
        other => bail!("expected {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn produce_then_fetch_round_trips_keys_values_headers_and_timestamps() -> Result<()> {
    let data_dir = TempDir::new()?;
    let (broker, bootstrap) = start_broker(data_dir.path()).await?;
    let topic = "round-trip";
    admin(&bootstrap)
        .await?
        .create_topic(NewTopic::new(topic, 3, 1))
        .await?;

    let producer = producer(&bootstrap).await?;
    let base_timestamp = 1_700_000_000_000;
    let mut sent = Vec::new();
    let mut deliveries = Vec::new();
    for index in 0..30i64 {
        let record = ProducerRecord::new(topic, format!("value-{index}"))
            .key(format!("key-{}", index % 5))
            .headers(vec![
                Header {
                    key: "index".to_string(),
                    value: Some(Bytes::from(index.to_string())),
                },
                Header {
                    key: "no-value".to_string(),
                    value: None,
                },
            ])
            .timestamp(base_timestamp + index);
        sent.push(record.clone());
        deliveries.push(producer.send(record).await?);
    }
    let mut stored: Vec<RecordMetadata> = Vec::new();
    for delivery in deliveries {
        stored.push(tokio::time::timeout(STEP_TIMEOUT, delivery).await??);
    }
    producer.close().await?;

    // Equal keys land on one partition; offsets within a partition are dense, in send order.
    let mut partition_of_key: BTreeMap<Bytes, i32> = BTreeMap::new();
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for (record, metadata) in sent.iter().zip(&stored) {
        let key = record.key.clone().context("every record has a key")?;
        assert_eq!(
            *partition_of_key.entry(key).or_insert(metadata.partition),
            metadata.partition
        );
        let expected = next_offset.entry(metadata.partition).or_insert(0);
        assert_eq!(metadata.offset, *expected, "offsets are dense");
        *expected += 1;
        assert_eq!(Some(metadata.timestamp), record.timestamp);
    }

    let mut consumer = consumer(&bootstrap, AutoOffsetReset::Earliest).await?;
    consumer.assign(partitions(topic, 3))?;
    let received = poll_records(&mut consumer, sent.len()).await?;
    assert_eq!(received.len(), sent.len());
    for (record, metadata) in sent.iter().zip(&stored) {
        let found = received
            .iter()
            .find(|candidate| {
                candidate.partition == metadata.partition && candidate.offset == metadata.offset
            })
            .context("every stored record is fetched")?;
        assert_eq!(*found.topic, *topic);
        assert_eq!(found.key, record.key);
        assert_eq!(found.value, record.value);
        assert_eq!(found.headers, record.headers);
        assert_eq!(Some(found.timestamp), record.timestamp);
    }
    broker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn replay_after_restart_from_the_start_the_middle_and_a_timestamp() -> Result<()> {
    let data_dir = TempDir::new()?;
    let topic = "replay";
    let base_timestamp = 1_600_000_000_000i64;
    {
        let (broker, bootstrap) = start_broker(data_dir.path()).await?;
        admin(&bootstrap)
            .await?
            .create_topic(NewTopic::new(topic, 1, 1))
            .await?;
        let producer = producer(&bootstrap).await?;
        let mut deliveries = Vec::new();
        for index in 0..10i64 {
            let record = ProducerRecord::new(topic, format!("event-{index}"))
                .timestamp(base_timestamp + index * 1_000);
            deliveries.push(producer.send(record).await?);
        }
        producer.flush().await?;
        for delivery in deliveries {
            delivery.await?;
        }
        producer.close().await?;
        broker.shutdown().await;
    }

    let (broker, bootstrap) = start_broker(data_dir.path()).await?;
    let tp = TopicPartition::new(topic, 0);
    let values = |records: &[ConsumerRecord]| -> Vec<String> {
        records
            .iter()
            .map(|record| {
                String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned()
            })
            .collect()
    };

    let mut consumer = consumer(&bootstrap, AutoOffsetReset::None).await?;
    consumer.assign(vec![tp.clone()])?;
    consumer.seek(&tp, 0)?;
    let all = poll_records(&mut consumer, 10).await?;
    assert_eq!(
        values(&all),
        (0..10)
            .map(|index| format!("event-{index}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        all.iter().map(|record| record.offset).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );

    consumer.seek(&tp, 4)?;
    let middle = poll_records(&mut consumer, 6).await?;
    assert_eq!(middle.first().map(|record| record.offset), Some(4));
    assert_eq!(middle.len(), 6);

    // Between the 7th and 8th record's timestamps: starts at offset 7.
    consumer
        .seek_to_timestamp(std::slice::from_ref(&tp), base_timestamp + 6_500)
        .await?;
    assert_eq!(consumer.position(&tp).await?, 7);
    let from_timestamp = poll_records(&mut consumer, 3).await?;
    assert_eq!(from_timestamp[0].offset, 7);
    assert_eq!(from_timestamp[0].timestamp, base_timestamp + 7_000);

    // After the last record: the end of the log.
    consumer
        .seek_to_timestamp(std::slice::from_ref(&tp), base_timestamp + 1_000_000)
        .await?;
    assert_eq!(consumer.position(&tp).await?, 10);

    let admin = admin(&bootstrap).await?;
    assert_eq!(
        admin
            .list_offsets(&tp, OffsetSpec::Earliest)
            .await?
            .map(|found| found.offset),
        Some(0)
    );
    assert_eq!(
        admin
            .list_offsets(&tp, OffsetSpec::Latest)
            .await?
            .map(|found| found.offset),
        Some(10)
    );
    let found = admin
        .list_offsets(&tp, OffsetSpec::Timestamp(base_timestamp + 6_500))
        .await?;
    assert_eq!(
        found.map(|found| (found.offset, found.timestamp)),
        Some((7, Some(base_timestamp + 7_000)))
    );
    assert_eq!(
        admin
            .list_offsets(&tp, OffsetSpec::Timestamp(base_timestamp + 1_000_000))
            .await?,
        None
    );
    broker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_long_poll_fetch_wakes_when_a_record_is_produced() -> Result<()> {
    let data_dir = TempDir::new()?;
    let (broker, bootstrap) = start_broker(data_dir.path()).await?;
    let topic = "long-poll";
    admin(&bootstrap)
        .await?
        .create_topic(NewTopic::new(topic, 1, 1))
        .await?;
    let tp = TopicPartition::new(topic, 0);

    // The broker may hold each fetch for 20 s; the record must arrive long before that.
    let fetch_max_wait = Duration::from_secs(20);
    let config = ConsumerConfig::builder()
        .bootstrap(bootstrap.as_str())
        .fetch_max_wait_ms(fetch_max_wait.as_millis() as u64)
        .build()?;
    let mut consumer = Consumer::connect(config).await?;
    consumer.assign(vec![tp.clone()])?;
    consumer.seek_to_end(std::slice::from_ref(&tp)).await?;
    // Connects and proves the partition is empty, so the next fetch is a parked long poll.
    assert!(consumer.poll(Duration::ZERO).await?.is_empty());

    let started = Instant::now();
    let waiting = tokio::spawn(async move { consumer.poll(Duration::from_secs(60)).await });
    let producer = producer(&bootstrap).await?;
    let stored = producer
        .send(ProducerRecord::new(topic, "wake up"))
        .await?
        .await?;
    let records = tokio::time::timeout(STEP_TIMEOUT, waiting).await???;
    let elapsed = started.elapsed();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].offset, stored.offset);
    assert_eq!(records[0].value.as_deref(), Some(&b"wake up"[..]));
    assert!(
        elapsed < fetch_max_wait,
        "the fetch waited {elapsed:?}, as if nothing woke it"
    );
    producer.close().await?;
    broker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_unknown_topic_is_reported_by_every_client() -> Result<()> {
    let data_dir = TempDir::new()?;
    let (broker, bootstrap) = start_broker(data_dir.path()).await?;

    expect_code(
        admin(&bootstrap).await?.describe_topic("missing").await,
        ErrorCode::UnknownTopicOrPartition,
    )?;

    let mut consumer = consumer(&bootstrap, AutoOffsetReset::Earliest).await?;
    consumer.assign(vec![TopicPartition::new("missing", 0)])?;
    expect_code(
        consumer.poll(Duration::from_secs(5)).await,
        ErrorCode::UnknownTopicOrPartition,
    )?;

    let config = ProducerConfig::builder()
        .bootstrap(bootstrap.as_str())
        .max_block_ms(500)
        .build()?;
    let producer = Producer::connect(config).await?;
    let error = expect_code(
        producer.send(ProducerRecord::new("missing", "lost")).await,
        ErrorCode::UnknownTopicOrPartition,
    )?;
    assert!(error.to_string().contains("missing"), "{error}");
    broker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_offset_out_of_range_names_the_valid_range_or_resets() -> Result<()> {
    let data_dir = TempDir::new()?;
    let (broker, bootstrap) = start_broker(data_dir.path()).await?;
    let topic = "range";
    admin(&bootstrap)
        .await?
        .create_topic(NewTopic::new(topic, 1, 1))
        .await?;
    let producer = producer(&bootstrap).await?;
    for index in 0..3 {
        producer
            .send(ProducerRecord::new(topic, format!("{index}")))
            .await?
            .await?;
    }
    let tp = TopicPartition::new(topic, 0);

    let mut strict = consumer(&bootstrap, AutoOffsetReset::None).await?;
    strict.assign(vec![tp.clone()])?;
    strict.seek(&tp, 100)?;
    let error = expect_code(
        strict.poll(Duration::from_secs(5)).await,
        ErrorCode::OffsetOutOfRange,
    )?;
    // The client words the range from the response's log_start_offset and high_watermark when
    // the broker fills them in; the broker's own message may state it too.
    let message = error.to_string();
    assert!(
        message.contains("0 to 2"),
        "the valid range is named: {message}"
    );

    let mut resetting = consumer(&bootstrap, AutoOffsetReset::Earliest).await?;
    resetting.assign(vec![tp.clone()])?;
    resetting.seek(&tp, 100)?;
    let records = poll_records(&mut resetting, 3).await?;
    assert_eq!(records[0].offset, 0);
    producer.close().await?;
    broker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn invalid_topic_names_and_zero_partitions_are_refused() -> Result<()> {
    let data_dir = TempDir::new()?;
    let (broker, bootstrap) = start_broker(data_dir.path()).await?;
    let admin = admin(&bootstrap).await?;

    expect_code(
        admin.create_topic(NewTopic::new("bad name!", 1, 1)).await,
        ErrorCode::InvalidTopicException,
    )?;
    expect_code(
        admin.create_topic(NewTopic::new("zero", 0, 1)).await,
        ErrorCode::InvalidPartitions,
    )?;
    expect_code(
        admin.create_topic(NewTopic::new("no-replicas", 1, 0)).await,
        ErrorCode::InvalidReplicationFactor,
    )?;
    assert!(!admin.list_topics().await?.contains(&"zero".to_string()));

    // The producer refuses a bad name itself, before any request.
    let producer = producer(&bootstrap).await?;
    let result = producer.send(ProducerRecord::new("bad name!", "x")).await;
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
    broker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn topics_can_be_created_described_configured_and_deleted() -> Result<()> {
    let data_dir = TempDir::new()?;
    let (broker, bootstrap) = start_broker(data_dir.path()).await?;
    let admin = admin(&bootstrap).await?;
    admin
        .create_topic(NewTopic::new("lifecycle", 2, 1).config("retention.ms", "3600000"))
        .await?;
    expect_code(
        admin.create_topic(NewTopic::new("lifecycle", 2, 1)).await,
        ErrorCode::TopicAlreadyExists,
    )?;
    assert!(
        admin
            .list_topics()
            .await?
            .contains(&"lifecycle".to_string())
    );

    let description = admin.describe_topic("lifecycle").await?;
    assert_eq!(description.partitions.len(), 2);
    for partition in &description.partitions {
        let leader = partition.leader.context("every partition has a leader")?;
        assert_eq!(partition.replicas, vec![leader]);
        assert_eq!(partition.isr, vec![leader]);
    }
    let cluster = admin.describe_cluster().await?;
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].address, bootstrap);

    let retention = |entries: &[strata_client::ConfigEntry]| {
        entries
            .iter()
            .find(|entry| entry.name == "retention.ms")
            .map(|entry| (entry.value.clone(), entry.is_default))
    };
    let configs = admin.describe_configs("lifecycle").await?;
    assert_eq!(retention(&configs), Some(("3600000".to_string(), false)));
    let set = BTreeMap::from([("retention.ms".to_string(), "7200000".to_string())]);
    admin.alter_configs("lifecycle", &set, &[]).await?;
    assert_eq!(
        retention(&admin.describe_configs("lifecycle").await?),
        Some(("7200000".to_string(), false))
    );
    admin
        .alter_configs("lifecycle", &BTreeMap::new(), &["retention.ms".to_string()])
        .await?;
    assert_eq!(
        retention(&admin.describe_configs("lifecycle").await?).map(|(_, is_default)| is_default),
        Some(true)
    );

    admin.delete_topic("lifecycle").await?;
    assert!(
        !admin
            .list_topics()
            .await?
            .contains(&"lifecycle".to_string())
    );
    expect_code(
        admin.delete_topic("lifecycle").await,
        ErrorCode::UnknownTopicOrPartition,
    )?;
    broker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn acks_zero_does_not_wait_for_offsets() -> Result<()> {
    let data_dir = TempDir::new()?;
    let (broker, bootstrap) = start_broker(data_dir.path()).await?;
    admin(&bootstrap)
        .await?
        .create_topic(NewTopic::new("fire-and-forget", 1, 1))
        .await?;
    let config = ProducerConfig::builder()
        .bootstrap(bootstrap.as_str())
        .acks(Acks::None)
        .enable_idempotence(false)
        .build()?;
    let producer = Producer::connect(config).await?;
    let stored = producer
        .send(ProducerRecord::new("fire-and-forget", "x"))
        .await?
        .await?;
    assert_eq!(stored.offset, -1);
    producer.close().await?;

    // The record still arrives.
    let mut consumer = consumer(&bootstrap, AutoOffsetReset::Earliest).await?;
    consumer.assign(vec![TopicPartition::new("fire-and-forget", 0)])?;
    let records = poll_records(&mut consumer, 1).await?;
    assert_eq!(records[0].value.as_deref(), Some(&b"x"[..]));
    broker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_fetch_response_above_four_mib_is_read() -> Result<()> {
    // gRPC's default message limit is 4 MiB; a consumer asking for more per fetch must get it.
    let data_dir = TempDir::new()?;
    let (broker, bootstrap) = start_broker(data_dir.path()).await?;
    admin(&bootstrap)
        .await?
        .create_topic(NewTopic::new("large-fetches", 1, 1))
        .await?;
    let producer = producer(&bootstrap).await?;
    const RECORDS: usize = 48;
    let value = Bytes::from(vec![b'v'; 128 << 10]);
    for _ in 0..RECORDS {
        drop(
            producer
                .send(ProducerRecord::new("large-fetches", value.clone()))
                .await?,
        );
    }
    producer.flush().await?;
    producer.close().await?;

    let config = ConsumerConfig::builder()
        .bootstrap(bootstrap.as_str())
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .max_partition_fetch_bytes(8 << 20)
        .build()?;
    let mut consumer = Consumer::connect(config).await?;
    consumer.assign(vec![TopicPartition::new("large-fetches", 0)])?;
    let records = poll_records(&mut consumer, RECORDS).await?;
    assert_eq!(records.len(), RECORDS);
    assert!(
        records
            .iter()
            .all(|record| record.value == Some(value.clone()))
    );
    broker.shutdown().await;
    Ok(())
}

/// Every batch of `topic_partition` from offset 0, as stored, through a raw Fetch.
async fn stored_batches(
    client: &mut BrokerClient<tonic::transport::Channel>,
    topic_partition: &TopicPartition,
) -> Result<Vec<RecordBatch>> {
    let response = client
        .fetch(wire::FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 64 << 20,
            isolation_level: wire::IsolationLevel::ReadUncommitted as i32,
            partitions: vec![wire::FetchPartition {
                topic: topic_partition.topic.clone(),
                partition: topic_partition.partition,
                fetch_offset: 0,
                partition_max_bytes: 64 << 20,
            }],
        })
        .await?
        .into_inner();
    let partition = response
        .partitions
        .into_iter()
        .next()
        .context("the fetch answers the partition")?;
    ensure!(partition.error_code == 0, "{}", partition.error_message);
    Ok(BatchIter::new(partition.records).collect::<Result<Vec<_>, _>>()?)
}

#[tokio::test]
async fn each_compression_type_is_stored_as_produced_and_consumed_back_or_as_the_topic_says()
-> Result<()> {
    let data_dir = TempDir::new()?;
    let (broker, bootstrap) = start_broker(data_dir.path()).await?;
    let admin = admin(&bootstrap).await?;
    let mut raw = BrokerClient::connect(format!("http://{bootstrap}")).await?;
    for codec in [
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ] {
        let topic = format!("compressed-{codec}");
        admin.create_topic(NewTopic::new(&topic, 1, 1)).await?;
        let producer = Producer::connect(
            ProducerConfig::builder()
                .bootstrap(bootstrap.as_str())
                .linger_ms(50)
                .compression_type_name(codec.name())?
                .build()?,
        )
        .await?;
        let sent: Vec<ProducerRecord> = (0..50)
            .map(|index| {
                ProducerRecord::new(topic.as_str(), format!("{codec} value {index} {index}"))
                    .key(format!("key-{}", index % 3))
                    .headers(vec![Header {
                        key: "index".to_string(),
                        value: Some(Bytes::from(index.to_string())),
                    }])
                    .partition(0)
            })
            .collect();
        let mut deliveries = Vec::new();
        for record in &sent {
            deliveries.push(producer.send(record.clone()).await?);
        }
        for delivery in deliveries {
            tokio::time::timeout(STEP_TIMEOUT, delivery).await??;
        }
        producer.close().await?;

        // The broker stored the producer's compressed batches as they were sent.
        let topic_partition = TopicPartition::new(topic.as_str(), 0);
        let batches = stored_batches(&mut raw, &topic_partition).await?;
        ensure!(!batches.is_empty());
        for batch in &batches {
            assert_eq!(batch.compression_type(), Ok(codec));
            batch.validate(usize::MAX)?;
        }

        let mut consumer = consumer(&bootstrap, AutoOffsetReset::Earliest).await?;
        consumer.assign(vec![topic_partition])?;
        let received = poll_records(&mut consumer, sent.len()).await?;
        assert_eq!(received.len(), sent.len(), "{codec}");
        for (offset, (found, record)) in received.iter().zip(&sent).enumerate() {
            assert_eq!(found.offset, offset as i64, "{codec}");
            assert_eq!(found.key, record.key, "{codec}");
            assert_eq!(found.value, record.value, "{codec}");
            assert_eq!(found.headers, record.headers, "{codec}");
        }
    }

    // A topic whose compression.type names a codec gets its batches in that codec, whatever
    // the producer sent.
    let topic = "recompressed";
    admin
        .create_topic(NewTopic::new(topic, 1, 1).config("compression.type", "lz4"))
        .await?;
    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(bootstrap.as_str())
            .compression_type(CompressionType::Gzip)
            .build()?,
    )
    .await?;
    let delivery = producer
        .send(ProducerRecord::new(topic, "lz4 on disk").partition(0))
        .await?;
    tokio::time::timeout(STEP_TIMEOUT, delivery).await??;
    producer.close().await?;
    let topic_partition = TopicPartition::new(topic, 0);
    let batches = stored_batches(&mut raw, &topic_partition).await?;
    ensure!(batches.len() == 1, "{batches:?}");
    assert_eq!(batches[0].compression_type(), Ok(CompressionType::Lz4));
    let mut consumer = consumer(&bootstrap, AutoOffsetReset::Earliest).await?;
    consumer.assign(vec![topic_partition])?;
    let received = poll_records(&mut consumer, 1).await?;
    assert_eq!(received[0].value.as_deref(), Some(&b"lz4 on disk"[..]));
    broker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_idempotent_producer_writes_each_record_once() -> Result<()> {
    let data_dir = TempDir::new()?;
    let (broker, bootstrap) = start_broker(data_dir.path()).await?;
    let topic = "written-once";
    admin(&bootstrap)
        .await?
        .create_topic(NewTopic::new(topic, 2, 1))
        .await?;

    // Small batches, so each partition gets several and the sequences have to add up.
    let config = ProducerConfig::builder()
        .bootstrap(bootstrap.as_str())
        .batch_size(256)
        .linger_ms(1)
        .build()?;
    assert!(config.enable_idempotence(), "idempotence is the default");
    let producer = Producer::connect(config).await?;
    let mut deliveries = Vec::new();
    for index in 0..200 {
        let record =
            ProducerRecord::new(topic, format!("value-{index}")).key(format!("key-{}", index % 7));
        deliveries.push(producer.send(record).await?);
    }
    let mut stored = Vec::new();
    for delivery in deliveries {
        stored.push(tokio::time::timeout(STEP_TIMEOUT, delivery).await??);
    }
    producer.close().await?;
    let positions: BTreeSet<(i32, i64)> = stored
        .iter()
        .map(|metadata| (metadata.partition, metadata.offset))
        .collect();
    assert_eq!(positions.len(), 200, "every record has its own offset");

    // Each record is in the log exactly once: the log ends right after the 200.
    let admin = admin(&bootstrap).await?;
    let mut log_end = BTreeMap::new();
    for topic_partition in partitions(topic, 2) {
        let latest = admin
            .list_offsets(&topic_partition, OffsetSpec::Latest)
            .await?
            .context("latest always has an offset")?;
        log_end.insert(topic_partition, latest.offset);
    }
    assert_eq!(log_end.values().sum::<i64>(), 200);
    let mut consumer = consumer(&bootstrap, AutoOffsetReset::Earliest).await?;
    consumer.assign(partitions(topic, 2))?;
    let received = poll_records(&mut consumer, 200).await?;
    let values: BTreeSet<Bytes> = received
        .iter()
        .filter_map(|record| record.value.clone())
        .collect();
    assert_eq!(received.len(), 200);
    assert_eq!(values.len(), 200, "no value twice");

    // The batches carry one producer id, epoch 0, and per-partition sequences from 0 that count
    // records without a gap.
    let mut raw = BrokerClient::connect(format!("http://{bootstrap}")).await?;
    let mut producer_ids = BTreeSet::new();
    let mut last_batch = None;
    for topic_partition in partitions(topic, 2) {
        let batches = stored_batches(&mut raw, &topic_partition).await?;
        ensure!(batches.len() > 1, "{topic_partition} got several batches");
        let mut expected_sequence = 0;
        for batch in &batches {
            producer_ids.insert(batch.producer_id());
            assert_eq!(batch.producer_epoch(), 0);
            assert_eq!(
                batch.base_sequence(),
                expected_sequence,
                "{topic_partition}"
            );
            expected_sequence += batch.record_count();
        }
        last_batch = batches
            .last()
            .cloned()
            .map(|batch| (topic_partition, batch));
    }
    assert_eq!(producer_ids.len(), 1, "{producer_ids:?}");
    assert!(producer_ids.iter().all(|&id| id >= 0));

    // A retry after a lost response resends the producer's bytes: the leader must answer with
    // the original offset and write nothing. The stored batch differs from what the producer
    // sent only in the two fields the leader stamps, outside the CRC.
    let (topic_partition, batch) = last_batch.context("a batch")?;
    let mut resent = batch.as_bytes().to_vec();
    RecordBatch::set_base_offset(&mut resent, 0);
    RecordBatch::set_partition_leader_epoch(&mut resent, -1);
    let response = raw
        .produce(wire::ProduceRequest {
            acks: -1,
            timeout_ms: 10_000,
            correlation_id: 0,
            partitions: vec![wire::PartitionRecords {
                topic: topic_partition.topic.clone(),
                partition: topic_partition.partition,
                records: Bytes::from(resent),
            }],
        })
        .await?
        .into_inner();
    let answer = &response.partitions[0];
    assert_eq!(answer.error_code, 0, "{}", answer.error_message);
    assert_eq!(
        answer.base_offset,
        batch.base_offset(),
        "the original offset"
    );
    let latest = admin
        .list_offsets(&topic_partition, OffsetSpec::Latest)
        .await?
        .context("latest")?;
    assert_eq!(Some(latest.offset), log_end.get(&topic_partition).copied());
    broker.shutdown().await;
    Ok(())
}

/// A connection that went silent (the broker's host vanished without a reset, or a NAT forgot
/// the connection) never fails by itself. Like Kafka's clients, ours drop a connection whose
/// request timed out, so the retry goes over a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_drop_a_connection_that_went_silent_and_carry_on_over_a_new_one() -> Result<()> {
    let data_dir = TempDir::new()?;
    let mut relay = SilencingRelay::bind().await;
    // Advertising the relay sends every client connection through it, not only the bootstrap.
    let broker = Broker::start(BrokerConfig {
        data_dir: data_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        advertise: Some(relay.address().to_string()),
        ..Default::default()
    })
    .await?;
    relay.forward_to(broker.local_addr());
    let bootstrap = relay.address();
    let request_timeout_ms = 1_000;
    let admin = Admin::connect(
        AdminConfig::builder()
            .bootstrap(bootstrap)
            .request_timeout_ms(request_timeout_ms)
            .build()?,
    )
    .await?;
    let topic = "silenced";
    admin.create_topic(NewTopic::new(topic, 1, 1)).await?;
    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(bootstrap)
            .linger_ms(1)
            .request_timeout_ms(request_timeout_ms)
            .delivery_timeout_ms(20_000)
            .build()?,
    )
    .await?;
    let mut consumer = Consumer::connect(
        ConsumerConfig::builder()
            .bootstrap(bootstrap)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .fetch_max_wait_ms(200)
            .request_timeout_ms(request_timeout_ms)
            .build()?,
    )
    .await?;
    consumer.assign(vec![TopicPartition::new(topic, 0)])?;
    producer
        .send(ProducerRecord::new(topic, "before"))
        .await?
        .await?;
    assert_eq!(poll_records(&mut consumer, 1).await?.len(), 1);

    relay.silence_existing_connections();
    let stored = tokio::time::timeout(STEP_TIMEOUT, async {
        producer
            .send(ProducerRecord::new(topic, "after"))
            .await?
            .await
    })
    .await
    .context("the producer stayed on its silent connection")??;
    assert_eq!(stored.offset, 1);
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut values = Vec::new();
    while values.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "the consumer stayed on its silent connection"
        );
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => values.extend(records.into_iter().map(|record| record.value)),
            // Each timed-out fetch may surface once; the next poll must go over a new connection.
            Err(error) if error.is_retriable() => {}
            Err(error) => return Err(error.into()),
        }
    }
    assert_eq!(values, [Some(Bytes::from_static(b"after"))]);
    assert_eq!(admin.list_topics().await?, [topic]);
    producer.close().await?;
    broker.shutdown().await;
    Ok(())
}
