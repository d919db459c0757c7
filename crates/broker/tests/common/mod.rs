//! A three-node cluster in this process (brokers and controller voters on loopback), and raw
//! gRPC helpers to drive it: what the multi-node broker tests share.

#![allow(dead_code)]

use bytes::Bytes;
use std::time::Duration;
use strata_broker::{Broker, BrokerConfig, BrokerHandle};
use strata_proto::v1 as proto;
use strata_proto::v1::broker_client::BrokerClient;
use strata_record::RecordBatchBuilder;
use tonic::transport::Channel;

/// Generous for a loaded two-core machine; failover itself takes a heartbeat or two.
pub const STEP: Duration = Duration::from_secs(30);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn start_cluster(directory: &std::path::Path) -> Vec<BrokerHandle> {
    start_cluster_with_tls(directory, |_| None).await
}

/// [`start_cluster`], node `id` with the TLS `tls(id)` gives it.
///
/// The voters' ports are picked free and then bound by the brokers, so another listener bound
/// to port 0 in between (any test's, or these brokers' own) can take one first. Such a start
/// is retried from scratch on new ports, a few times.
pub async fn start_cluster_with_tls(
    directory: &std::path::Path,
    tls: impl Fn(i32) -> Option<strata_broker::TlsConfig>,
) -> Vec<BrokerHandle> {
    for _ in 0..5 {
        let voters: Vec<(i32, String)> = (1..=3)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let starts = (1..=3).map(|id| {
            Broker::start(BrokerConfig {
                node_id: id,
                data_dir: directory.join(format!("node-{id}")),
                listen: "127.0.0.1:0".parse().unwrap(),
                // For the tests that reach the nodes as Kafka clients or over HTTP do; the
                // others never connect.
                kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
                http_listen: Some("127.0.0.1:0".parse().unwrap()),
                voters: voters.clone(),
                tls: tls(id),
                ..BrokerConfig::default()
            })
        });
        let mut started = Vec::new();
        let mut failure = None;
        for result in futures::future::join_all(starts).await {
            match result {
                Ok(broker) => started.push(broker),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        match failure {
            None => return started,
            Some(strata_broker::BrokerError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                for broker in started {
                    broker.shutdown().await;
                }
                for id in 1..=3 {
                    let _ = std::fs::remove_dir_all(directory.join(format!("node-{id}")));
                }
            }
            Some(error) => panic!("broker starts: {error:?}"),
        }
    }
    panic!("five starts of the cluster each found a voter's port taken");
}

pub async fn channel(broker: &BrokerHandle) -> Channel {
    Channel::from_shared(format!("http://{}", broker.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub async fn metadata(broker: &BrokerHandle) -> proto::MetadataResponse {
    BrokerClient::new(channel(broker).await)
        .metadata(proto::MetadataRequest { topics: vec![] })
        .await
        .unwrap()
        .into_inner()
}

/// Produces one record with `value` to partition 0 of `topic` through `broker`.
pub async fn produce(
    broker: &BrokerHandle,
    topic: &str,
    acks: i32,
    value: &str,
) -> proto::PartitionProduceResponse {
    let mut builder = RecordBatchBuilder::new();
    builder.push(1, None, Some(value.as_bytes()), &[]);
    let records: Bytes = builder.build().into_bytes();
    BrokerClient::new(channel(broker).await)
        .produce(proto::ProduceRequest {
            acks,
            timeout_ms: 10_000,
            correlation_id: 0,
            partitions: vec![proto::PartitionRecords {
                topic: topic.to_string(),
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
pub async fn metadata_where(
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

/// The leader of partition 0 of `topic` in `answer`; -1 for none.
pub fn leader_of(answer: &proto::MetadataResponse, topic: &str) -> i32 {
    answer
        .topics
        .iter()
        .find(|described| described.name == topic)
        .and_then(|topic| topic.partitions.first())
        .map_or(-1, |partition| partition.leader_id)
}

/// Creates `topic` through `broker`'s admin service and checks it was created.
pub async fn create_topic(
    broker: &BrokerHandle,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) {
    let created = strata_proto::v1::admin_client::AdminClient::new(channel(broker).await)
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![proto::CreatableTopic {
                name: topic.to_string(),
                num_partitions: partitions,
                replication_factor,
                configs: configs
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect(),
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
}

/// Creates `topic` with one partition on all three brokers, with `configs`, and waits until it
/// has a leader and all three replicas in sync.
pub async fn create_replicated_topic(
    brokers: &[BrokerHandle],
    topic: &str,
    configs: &[(&str, &str)],
) -> i32 {
    create_topic(&brokers[0], topic, 1, 3, configs).await;
    let answer = metadata_where(&brokers[0], "a leader with a full ISR", |answer| {
        answer.topics.iter().any(|described| {
            described.name == topic
                && described
                    .partitions
                    .iter()
                    .all(|partition| partition.leader_id > 0 && partition.isr.len() == 3)
        })
    })
    .await;
    leader_of(&answer, topic)
}
