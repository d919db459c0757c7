//! A failing disk under a real three-node cluster (brokers and controller voters in this process,
//! on loopback): a failed fsync takes the leader's log directory offline, the produce that hit it
//! is answered `KAFKA_STORAGE_ERROR`, the broker reports the directory, and the controller fences
//! it, moving leadership to an in-sync replica that takes writes again.

use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;
use strata_broker::{Broker, BrokerConfig, BrokerHandle};
use strata_common::ErrorCode;
use strata_proto::v1 as proto;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::broker_client::BrokerClient;
use strata_record::RecordBatchBuilder;
use strata_storage::fault::{self, Fault, Operation};
use tonic::transport::Channel;

/// Generous for a loaded two-core machine; failover itself takes a heartbeat or two.
const STEP: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_cluster(directory: &std::path::Path) -> Vec<BrokerHandle> {
    let voters: Vec<(i32, String)> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let starts = (1..=3).map(|id| {
        Broker::start(BrokerConfig {
            node_id: id,
            data_dir: directory.join(format!("node-{id}")),
            listen: "127.0.0.1:0".parse().unwrap(),
            voters: voters.clone(),
            ..BrokerConfig::default()
        })
    });
    futures::future::join_all(starts)
        .await
        .into_iter()
        .map(|started| started.expect("broker starts"))
        .collect()
}

async fn channel(broker: &BrokerHandle) -> Channel {
    Channel::from_shared(format!("http://{}", broker.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn metadata(broker: &BrokerHandle) -> proto::MetadataResponse {
    BrokerClient::new(channel(broker).await)
        .metadata(proto::MetadataRequest { topics: vec![] })
        .await
        .unwrap()
        .into_inner()
}

async fn produce(broker: &BrokerHandle, value: &str) -> proto::PartitionProduceResponse {
    let mut builder = RecordBatchBuilder::new();
    builder.push(1, None, Some(value.as_bytes()), &[]);
    let records: Bytes = builder.build().into_bytes();
    BrokerClient::new(channel(broker).await)
        .produce(proto::ProduceRequest {
            acks: -1,
            timeout_ms: 10_000,
            correlation_id: 0,
            partitions: vec![proto::PartitionRecords {
                topic: "disk".to_string(),
                partition: 0,
                records,
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .partitions
        .remove(0)
}

/// Polls the cluster's metadata (from `broker`) until `done` holds.
async fn metadata_where(
    broker: &BrokerHandle,
    what: &str,
    done: impl Fn(&proto::MetadataResponse) -> bool,
) -> proto::MetadataResponse {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let answer = metadata(broker).await;
        if done(&answer) {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn leader_of(answer: &proto::MetadataResponse) -> i32 {
    answer
        .topics
        .iter()
        .find(|topic| topic.name == "disk")
        .and_then(|topic| topic.partitions.first())
        .map_or(-1, |partition| partition.leader_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_moves_leadership_off_the_broker_and_writes_resume() {
    let directory = tempfile::tempdir().unwrap();
    let brokers = start_cluster(directory.path()).await;
    let created = AdminClient::new(channel(&brokers[0]).await)
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![proto::CreatableTopic {
                name: "disk".to_string(),
                num_partitions: 1,
                replication_factor: 3,
                // Every append fsyncs, so the failing fsync is the produce's own.
                configs: HashMap::from([
                    ("min.insync.replicas".to_string(), "2".to_string()),
                    ("flush.messages".to_string(), "1".to_string()),
                ]),
            }],
            timeout_ms: 10_000,
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .topics
        .remove(0);
    assert_eq!(created.error_code, 0, "{}", created.error_message);
    let answer = metadata_where(&brokers[0], "a leader with a full ISR", |answer| {
        answer.topics.iter().any(|topic| {
            topic.name == "disk"
                && topic
                    .partitions
                    .iter()
                    .all(|partition| partition.leader_id > 0 && partition.isr.len() == 3)
        })
    })
    .await;
    let leader_id = leader_of(&answer);
    let leader = &brokers[leader_id as usize - 1];
    let survivor = brokers
        .iter()
        .find(|broker| broker.replica_manager().node_id() != leader_id)
        .unwrap();
    let first = produce(leader, "before").await;
    assert_eq!(first.error_code, 0, "{}", first.error_message);

    let _failing = fault::inject(
        &directory
            .path()
            .join(format!("node-{leader_id}"))
            .join("logs")
            .join("disk-0"),
        Fault::io_error(Operation::SegmentSync).times(1),
    );
    let failed = produce(leader, "lost").await;
    assert_eq!(
        ErrorCode::from_code(failed.error_code),
        ErrorCode::KafkaStorageError,
        "{}",
        failed.error_message
    );

    let answer = metadata_where(
        survivor,
        "leadership to move off the failed disk",
        |answer| {
            let moved = leader_of(answer) > 0 && leader_of(answer) != leader_id;
            let reported = answer.brokers.iter().any(|broker| {
                broker.node_id == leader_id && broker.fenced && !broker.offline_log_dirs.is_empty()
            });
            moved && reported
        },
    )
    .await;
    let new_leader = &brokers[leader_of(&answer) as usize - 1];
    let resumed = produce(new_leader, "after").await;
    assert_eq!(resumed.error_code, 0, "{}", resumed.error_message);
    // The failed record was written before its fsync failed, so a follower may hold it: it was
    // never acknowledged, and may or may not survive (as in Kafka). The acknowledged one must.
    assert!(resumed.base_offset >= 1, "{resumed:?}");

    for broker in brokers {
        broker.shutdown().await;
    }
}
