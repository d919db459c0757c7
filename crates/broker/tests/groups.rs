//! The group coordinator on one broker through its gRPC API: offsets are stored in
//! `__consumer_offsets`, survive a restart, are never above the high watermark, and snapshots
//! keep the offsets log bounded however many commits are made.

use std::collections::HashMap;
use strata_broker::{Broker, BrokerConfig, BrokerHandle, GroupCoordinatorConfig};
use strata_common::ErrorCode;
use strata_coordinator::CoordinatorConfig;
use strata_proto::v1 as proto;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::broker_client::BrokerClient;
use strata_proto::v1::group_coordinator_client::GroupCoordinatorClient;
use strata_record::RecordBatchBuilder;
use tonic::transport::Channel;

const SNAPSHOT_EVERY: u64 = 20;

async fn start(data_dir: &std::path::Path) -> (BrokerHandle, Channel) {
    start_with(data_dir, CoordinatorConfig::default()).await
}

async fn start_with(
    data_dir: &std::path::Path,
    coordinator: CoordinatorConfig,
) -> (BrokerHandle, Channel) {
    let handle = Broker::start(BrokerConfig {
        data_dir: data_dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        groups: GroupCoordinatorConfig {
            offsets_topic_partitions: 2,
            snapshot_every_records: SNAPSHOT_EVERY,
            coordinator,
            ..GroupCoordinatorConfig::default()
        },
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts");
    let channel = Channel::from_shared(format!("http://{}", handle.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (handle, channel)
}

async fn create_topic_with_records(channel: &Channel, topic: &str, records: usize) {
    let created = AdminClient::new(channel.clone())
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![proto::CreatableTopic {
                name: topic.to_string(),
                num_partitions: 1,
                replication_factor: 1,
                configs: HashMap::new(),
            }],
            timeout_ms: 5_000,
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
    let mut builder = RecordBatchBuilder::new();
    for index in 0..records {
        builder.push(1, None, Some(format!("v{index}").as_bytes()), &[]);
    }
    let produced = BrokerClient::new(channel.clone())
        .produce(proto::ProduceRequest {
            acks: -1,
            timeout_ms: 5_000,
            correlation_id: 0,
            partitions: vec![proto::PartitionRecords {
                topic: topic.to_string(),
                partition: 0,
                records: builder.build().into_bytes(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(produced.partitions[0].error_code, 0);
}

async fn commit(
    groups: &mut GroupCoordinatorClient<Channel>,
    group: &str,
    offset: i64,
) -> proto::PartitionError {
    groups
        .offset_commit(proto::OffsetCommitRequest {
            group_id: group.to_string(),
            member_id: String::new(),
            member_epoch: -1,
            partitions: vec![proto::OffsetCommitPartition {
                topic: "events".to_string(),
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: format!("commit at {offset}"),
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .partitions
        .remove(0)
}

/// The group's coordinator address; the first call creates `__consumer_offsets`.
async fn find_coordinator(groups: &mut GroupCoordinatorClient<Channel>, group: &str) -> String {
    let found = groups
        .find_coordinator(proto::FindCoordinatorRequest {
            group_id: group.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.error_code, 0, "{}", found.error_message);
    found.address
}

async fn committed(groups: &mut GroupCoordinatorClient<Channel>, group: &str) -> i64 {
    let fetched = groups
        .offset_fetch(proto::OffsetFetchRequest {
            group_id: group.to_string(),
            partitions: vec![proto::TopicPartitions {
                topic: "events".to_string(),
                partitions: vec![0],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.error_code, 0, "{}", fetched.error_message);
    fetched.offsets[0].offset
}

#[tokio::test]
async fn offsets_are_durable_bounded_and_never_above_the_high_watermark() {
    let directory = tempfile::tempdir().unwrap();
    let (broker, channel) = start(directory.path()).await;
    create_topic_with_records(&channel, "events", 100).await;
    let mut groups = GroupCoordinatorClient::new(channel.clone());

    let address = find_coordinator(&mut groups, "readers").await;
    assert_eq!(address, broker.local_addr().to_string());

    let above = commit(&mut groups, "readers", 101).await;
    assert_eq!(above.error_code, ErrorCode::OffsetOutOfRange.code());
    assert!(
        above.error_message.contains("high watermark"),
        "{}",
        above.error_message
    );

    for offset in 1..=100 {
        let answer = commit(&mut groups, "readers", offset).await;
        assert_eq!(answer.error_code, 0, "{}", answer.error_message);
    }
    assert_eq!(committed(&mut groups, "readers").await, 100);

    // Snapshots moved the offsets partition's log start: what a new coordinator replays is
    // bounded by the snapshot interval, not by the 100 commits.
    let offsets_partition = broker
        .replica_manager()
        .partitions()
        .into_iter()
        .find(|partition| {
            partition.topic_partition().topic == "__consumer_offsets"
                && partition.log().log_end_offset() > 0
        })
        .expect("the group's offsets partition has records");
    let log = offsets_partition.log();
    assert!(
        log.log_end_offset() - log.log_start_offset() <= 2 * SNAPSHOT_EVERY as i64,
        "log spans [{}, {})",
        log.log_start_offset(),
        log.log_end_offset()
    );

    broker.shutdown().await;
    let (broker, channel) = start(directory.path()).await;
    let mut groups = GroupCoordinatorClient::new(channel);
    assert_eq!(
        committed(&mut groups, "readers").await,
        100,
        "offsets survive a restart"
    );
    let unknown = committed(&mut groups, "nobody-committed-here").await;
    assert_eq!(unknown, -1);
    let deleted = groups
        .delete_group(proto::DeleteGroupRequest {
            group_id: "readers".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.error_code, 0, "{}", deleted.error_message);
    assert_eq!(committed(&mut groups, "readers").await, -1);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_member_heartbeat_gets_partitions_and_a_fenced_member_cannot_commit() {
    let directory = tempfile::tempdir().unwrap();
    let (broker, channel) = start(directory.path()).await;
    create_topic_with_records(&channel, "events", 10).await;
    let mut groups = GroupCoordinatorClient::new(channel);
    let found = groups
        .find_coordinator(proto::FindCoordinatorRequest {
            group_id: "workers".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.error_code, 0, "{}", found.error_message);
    let join = proto::ConsumerGroupHeartbeatRequest {
        group_id: "workers".to_string(),
        member_id: String::new(),
        member_epoch: 0,
        group_instance_id: String::new(),
        rebalance_timeout_ms: 5_000,
        session_timeout_ms: 10_000,
        has_subscription: true,
        subscribed_topic_names: vec!["events".to_string()],
        server_assignor: String::new(),
        has_owned: true,
        owned_partitions: Vec::new(),
    };
    let joined = groups
        .consumer_group_heartbeat(join.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(joined.error_code, 0, "{}", joined.error_message);
    assert_eq!(joined.assignment.len(), 1);
    assert_eq!(joined.assignment[0].partitions, vec![0]);
    assert!(joined.member_epoch > 0);

    let stranger = groups
        .offset_commit(proto::OffsetCommitRequest {
            group_id: "workers".to_string(),
            member_id: "not-a-member".to_string(),
            member_epoch: 1,
            partitions: vec![proto::OffsetCommitPartition {
                topic: "events".to_string(),
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stranger.partitions[0].error_code,
        ErrorCode::UnknownMemberId.code()
    );
    let reset_while_active = commit(&mut groups, "workers", 0).await;
    assert_eq!(
        reset_while_active.error_code,
        ErrorCode::NonEmptyGroup.code()
    );

    let described = groups
        .describe_group(proto::DescribeGroupRequest {
            group_id: "workers".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.state, "Stable");
    assert_eq!(described.members.len(), 1);
    let listed = groups
        .list_groups(proto::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed
            .groups
            .iter()
            .any(|group| group.group_id == "workers")
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn an_empty_groups_offsets_expire_after_the_retention_and_stay_gone_after_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let short_retention = CoordinatorConfig {
        offsets_retention_ms: 300,
        offsets_retention_check_interval_ms: 50,
        ..CoordinatorConfig::default()
    };
    let (broker, channel) = start_with(directory.path(), short_retention.clone()).await;
    create_topic_with_records(&channel, "events", 10).await;
    let mut groups = GroupCoordinatorClient::new(channel.clone());
    find_coordinator(&mut groups, "gone").await;
    let accepted = commit(&mut groups, "gone", 5).await;
    assert_eq!(accepted.error_code, 0, "{}", accepted.error_message);
    assert_eq!(committed(&mut groups, "gone").await, 5);

    // The coordinator's timer deletes it; wait for that, bounded.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while committed(&mut groups, "gone").await != -1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the offset outlived its retention by seconds"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    broker.shutdown().await;
    let (_broker, channel) = start_with(directory.path(), short_retention).await;
    let mut groups = GroupCoordinatorClient::new(channel);
    assert_eq!(
        committed(&mut groups, "gone").await,
        -1,
        "the deletion was stored, not only applied in memory"
    );
}
