//! The `Records` service: records in as key, value and headers through any broker, out decoded,
//! with partitions led elsewhere forwarded to their leaders.

mod common;

use common::{STEP, channel, create_topic, metadata_where, start_cluster};
use strata_proto::v1 as proto;
use strata_proto::v1::records_client::RecordsClient;

fn record(key: Option<&str>, value: &str, partition: Option<i32>) -> proto::ProducedRecord {
    proto::ProducedRecord {
        key: key.map(|key| key.as_bytes().to_vec().into()),
        value: Some(value.as_bytes().to_vec().into()),
        headers: vec![proto::RecordHeader {
            key: "source".to_string(),
            value: b"test".to_vec().into(),
        }],
        timestamp_ms: 1_700_000_000_000,
        partition,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_broker_takes_records_for_every_partition_and_serves_them_back_decoded() {
    let directory = tempfile::tempdir().unwrap();
    let brokers = start_cluster(directory.path()).await;
    create_topic(&brokers[0], "spread", 3, 1, &[]).await;
    let answer = metadata_where(&brokers[0], "a leader on each broker", |answer| {
        let leaders: std::collections::BTreeSet<i32> = answer
            .topics
            .iter()
            .filter(|topic| topic.name == "spread")
            .flat_map(|topic| topic.partitions.iter().map(|p| p.leader_id))
            .collect();
        leaders.len() == 3 && !leaders.contains(&-1)
    })
    .await;
    assert!(answer.topics.iter().any(|topic| topic.name == "spread"));
    let mut records = RecordsClient::new(channel(&brokers[0]).await);
    // The metadata names a leader before that broker has applied it; a fetch through broker 1
    // succeeds once each leader serves its partition.
    for partition in 0..3 {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let fetched = records
                .fetch(proto::FetchRecordsRequest {
                    topic: "spread".to_string(),
                    partition,
                    offset: -2,
                    max_records: 1,
                    max_wait_ms: 0,
                })
                .await
                .unwrap()
                .into_inner();
            if fetched.error_code == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "partition {partition} never served: {fetched:?}"
            );
            // Poll interval, not a guess at how long the leader takes.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    let produced = records
        .produce(proto::ProduceRecordsRequest {
            topic: "spread".to_string(),
            records: vec![
                record(Some("p0-a"), "first", Some(0)),
                record(Some("p1-a"), "second", Some(1)),
                record(Some("p2-a"), "third", Some(2)),
                record(Some("p1-b"), "fourth", Some(1)),
                record(None, "keyless", None),
                record(Some("beyond"), "nowhere", Some(7)),
            ],
            acks: -1,
            timeout_ms: STEP.as_millis() as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(produced.len(), 6, "one result per record");
    for (index, expected) in [(0, (0, 0)), (1, (1, 0)), (2, (2, 0)), (3, (1, 1))] {
        let result = &produced[index];
        assert_eq!(result.error_code, 0, "record {index}: {result:?}");
        assert_eq!(
            (result.partition, result.offset),
            expected,
            "record {index}"
        );
    }
    assert_eq!(produced[4].error_code, 0, "{:?}", produced[4]);
    assert_eq!(
        produced[5].error_code,
        strata_common::ErrorCode::UnknownTopicOrPartition.code(),
        "a partition the topic does not have"
    );

    // Read partition 1, wherever it is led, from each broker.
    for broker in &brokers {
        let fetched = RecordsClient::new(channel(broker).await)
            .fetch(proto::FetchRecordsRequest {
                topic: "spread".to_string(),
                partition: 1,
                offset: -2,
                max_records: 0,
                max_wait_ms: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fetched.error_code, 0, "{fetched:?}");
        let values: Vec<(&[u8], &[u8])> = fetched
            .records
            .iter()
            .map(|record| {
                (
                    record.key.as_deref().unwrap_or_default(),
                    record.value.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        let keyless_here = produced[4].partition == 1;
        let expected: Vec<(&[u8], &[u8])> = [
            Some((&b"p1-a"[..], &b"second"[..])),
            Some((&b"p1-b"[..], &b"fourth"[..])),
            keyless_here.then_some((&b""[..], &b"keyless"[..])),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(values, expected);
        assert_eq!(fetched.records[0].headers[0].key, "source");
        assert_eq!(fetched.records[0].timestamp_ms, 1_700_000_000_000);
        assert_eq!(fetched.next_offset, fetched.records.len() as i64);
        assert_eq!(fetched.high_watermark, fetched.records.len() as i64);
    }

    let missing = RecordsClient::new(channel(&brokers[1]).await)
        .produce(proto::ProduceRecordsRequest {
            topic: "missing".to_string(),
            records: vec![record(None, "x", None)],
            acks: 1,
            timeout_ms: 5_000,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    for broker in brokers {
        broker.shutdown().await;
    }
}
