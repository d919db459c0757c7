//! Groups and committed offsets through the Kafka listener, at the wire: FindCoordinator names
//! the Kafka listener, standalone consumers commit and fetch offsets, a classic group forms its
//! generations (KIP-394 member ids, leader election, the leader's assignment handed out,
//! rebalances, leaving), stale generations are refused, and the two doors share one store.
//! KIP-848 consumer groups assign partitions by topic id, rebalance member by member, are
//! described, and refuse what Kafka refuses.

mod common;
mod kafka_client;

use bytes::Bytes;
use kafka_client::{KafkaConnection, join_group_request, offset_commit_request, served, topic_id};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupResponse, LeaveGroupRequest,
    ListGroupsRequest, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::net::SocketAddr;
use strata_broker::{Broker, BrokerConfig, BrokerHandle, GroupCoordinatorConfig};
use strata_coordinator::CoordinatorConfig;
use strata_proto::v1 as proto;
use strata_proto::v1::group_coordinator_client::GroupCoordinatorClient;
use uuid::Uuid;

const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const NON_EMPTY_GROUP: i16 = 68;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const GROUP_MAX_SIZE_REACHED: i16 = 81;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNSUPPORTED_ASSIGNOR: i16 = 112;

const TOPIC: &str = "events";
/// A consumer's JoinGroup metadata (`ConsumerProtocolSubscription` version 0) subscribing to
/// `TOPIC`: version, one topic, the topic's name, no user data.
const SUBSCRIBED_TO_TOPIC: &[u8] = b"\x00\x00\x00\x00\x00\x01\x00\x06events\xff\xff\xff\xff";

/// One broker with a Kafka listener whose classic groups form their first generation at once,
/// so a test decides who is in it by who has joined.
async fn start(directory: &std::path::Path) -> BrokerHandle {
    start_with(directory, CoordinatorConfig::default()).await
}

/// `start` with the coordinator's other settings from `coordinator`.
async fn start_with(directory: &std::path::Path, coordinator: CoordinatorConfig) -> BrokerHandle {
    let broker = Broker::start(BrokerConfig {
        data_dir: directory.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        groups: GroupCoordinatorConfig {
            offsets_topic_partitions: 2,
            coordinator: CoordinatorConfig {
                classic_initial_rebalance_delay_ms: 0,
                ..coordinator
            },
            ..GroupCoordinatorConfig::default()
        },
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts");
    common::create_topic(&broker, TOPIC, 2, 1, &[]).await;
    for value in ["a", "b", "c"] {
        assert_eq!(
            common::produce(&broker, TOPIC, -1, value).await.error_code,
            0
        );
    }
    broker
}

fn kafka_address(broker: &BrokerHandle) -> SocketAddr {
    broker.kafka_addr().expect("a Kafka listener")
}

/// A connection to the Kafka listener after finding `group_id`'s coordinator, as clients do
/// first (it creates `__consumer_offsets`).
async fn connect(broker: &BrokerHandle, group_id: &str) -> KafkaConnection {
    let mut connection = KafkaConnection::connect(kafka_address(broker)).await;
    let found = connection
        .send(
            FindCoordinatorRequest::default().with_key(text(group_id)),
            3,
        )
        .await;
    assert_eq!(found.error_code, 0, "{found:?}");
    connection
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn group(id: &str) -> GroupId {
    GroupId(text(id))
}

/// An OffsetCommit for partition `partition` of the test topic.
fn commit(
    group_id: &str,
    generation: i32,
    member_id: &str,
    partition: i32,
    offset: i64,
) -> OffsetCommitRequest {
    offset_commit_request(group_id, generation, member_id, TOPIC, partition, offset)
}

fn commit_error(response: &OffsetCommitResponse) -> i16 {
    response.topics[0].partitions[0].error_code
}

/// The offset committed for partition `partition` of the test topic, through OffsetFetch at
/// `version`.
async fn fetch_offset(
    connection: &mut KafkaConnection,
    group_id: &str,
    partition: i32,
    version: i16,
) -> i64 {
    if version >= 8 {
        let answer = connection
            .send(
                OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(group(group_id))
                        .with_topics(Some(vec![
                            OffsetFetchRequestTopics::default()
                                .with_name(TopicName(text(TOPIC)))
                                .with_partition_indexes(vec![partition]),
                        ])),
                ]),
                version,
            )
            .await;
        let group = &answer.groups[0];
        assert_eq!(group.error_code, 0);
        let partition = &group.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        return partition.committed_offset;
    }
    let answer = connection
        .send(
            OffsetFetchRequest::default()
                .with_group_id(group(group_id))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(text(TOPIC)))
                        .with_partition_indexes(vec![partition]),
                ])),
            version,
        )
        .await;
    assert_eq!(answer.error_code, 0);
    let partition = &answer.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.committed_offset
}

/// Joins as a new member the KIP-394 way: the first JoinGroup is refused with the member id
/// to use, the second waits for the generation and returns its answer.
async fn join_new_member(
    connection: &mut KafkaConnection,
    group_id: &str,
    metadata: &'static [u8],
) -> JoinGroupResponse {
    let first = connection
        .send(join_group_request(group_id, "", metadata), 9)
        .await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(!first.member_id.is_empty());
    let joined = connection
        .send(join_group_request(group_id, &first.member_id, metadata), 9)
        .await;
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert_eq!(joined.member_id, first.member_id);
    joined
}

fn heartbeat(group_id: &str, generation: i32, member_id: &str) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(generation)
        .with_member_id(text(member_id))
}

fn sync(
    group_id: &str,
    generation: i32,
    member_id: &str,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(generation)
        .with_member_id(text(member_id))
        .with_protocol_type(Some(text("consumer")))
        .with_protocol_name(Some(text("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(member, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(text(member))
                        .with_assignment(Bytes::from_static(assignment))
                })
                .collect(),
        )
}

#[tokio::test]
async fn find_coordinator_names_the_kafka_listener_in_every_version() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let address = kafka_address(&broker);
    let mut connection = KafkaConnection::connect(address).await;
    for version in 0..=3 {
        let answer = connection
            .send(
                FindCoordinatorRequest::default().with_key(text("g")),
                version,
            )
            .await;
        assert_eq!(answer.error_code, 0, "version {version}: {answer:?}");
        assert_eq!(answer.node_id.0, 1);
        assert_eq!(answer.host.as_str(), "127.0.0.1");
        assert_eq!(answer.port, i32::from(address.port()));
    }
    for version in 4..=5 {
        let answer = connection
            .send(
                FindCoordinatorRequest::default().with_coordinator_keys(vec![text("g"), text("h")]),
                version,
            )
            .await;
        assert_eq!(answer.coordinators.len(), 2);
        for (coordinator, key) in answer.coordinators.iter().zip(["g", "h"]) {
            assert_eq!(coordinator.key.as_str(), key);
            assert_eq!(coordinator.error_code, 0);
            assert_eq!(coordinator.port, i32::from(address.port()));
        }
    }
    let transactions = connection
        .send(
            FindCoordinatorRequest::default()
                .with_key(text("txn"))
                .with_key_type(1),
            3,
        )
        .await;
    assert_eq!(
        transactions.error_code,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(transactions.node_id.0, -1);
}

#[tokio::test]
async fn a_standalone_consumer_commits_and_fetches_offsets_in_every_version() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let mut connection = connect(&broker, "standalone-2").await;
    for version in 2..=9 {
        let group_id = format!("standalone-{version}");
        let committed = connection
            .send(commit(&group_id, -1, "", 0, 2), version)
            .await;
        assert_eq!(commit_error(&committed), 0, "version {version}");
        for fetch_version in [1, 7, 8, 9] {
            assert_eq!(
                fetch_offset(&mut connection, &group_id, 0, fetch_version).await,
                2
            );
        }
        // A partition without a commit answers -1, not an error.
        assert_eq!(fetch_offset(&mut connection, &group_id, 1, 5).await, -1);
    }
    // Every committed partition when no topics are named.
    let all = connection
        .send(
            OffsetFetchRequest::default()
                .with_group_id(group("standalone-2"))
                .with_topics(None),
            7,
        )
        .await;
    assert_eq!(all.topics.len(), 1);
    assert_eq!(all.topics[0].partitions[0].committed_offset, 2);
    assert_eq!(
        all.topics[0].partitions[0].metadata.as_deref(),
        Some("note")
    );
}

#[tokio::test]
async fn a_classic_group_forms_generations_hands_out_the_leaders_assignment_and_rebalances() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let address = kafka_address(&broker);
    let group_id = "classic";
    let (mut first, mut second, mut third) = (
        connect(&broker, group_id).await,
        KafkaConnection::connect(address).await,
        KafkaConnection::connect(address).await,
    );

    // The first member forms generation 1 alone and leads it.
    let a = join_new_member(&mut first, group_id, b"meta-a").await;
    assert_eq!(a.leader.as_str(), a.member_id.as_str());
    assert_eq!(a.members.len(), 1);
    let a_id = a.member_id.to_string();
    let synced = first
        .send(
            sync(group_id, a.generation_id, &a_id, &[(&a_id, b"all")]),
            5,
        )
        .await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"all");
    let beat = first
        .send(heartbeat(group_id, a.generation_id, &a_id), 4)
        .await;
    assert_eq!(beat.error_code, 0);

    // A second member's join waits for the first to rejoin, which it learns to do from its
    // heartbeat.
    let second_join = tokio::spawn(async move {
        let joined = join_new_member(&mut second, group_id, b"meta-b").await;
        (second, joined)
    });
    loop {
        let beat = first
            .send(heartbeat(group_id, a.generation_id, &a_id), 4)
            .await;
        if beat.error_code == REBALANCE_IN_PROGRESS {
            break;
        }
        assert_eq!(beat.error_code, 0);
        // The second member has not reached the coordinator yet; ask again once it has had a
        // chance to.
        tokio::task::yield_now().await;
    }
    let rejoined = first
        .send(join_group_request(group_id, &a_id, b"meta-a"), 9)
        .await;
    assert_eq!(rejoined.error_code, 0);
    let (mut second, b) = second_join.await.unwrap();
    let b_id = b.member_id.to_string();
    assert_eq!(rejoined.generation_id, a.generation_id + 1);
    assert_eq!(b.generation_id, rejoined.generation_id);
    assert_eq!(rejoined.leader.as_str(), a_id);
    assert_eq!(b.leader.as_str(), a_id);
    assert_eq!(rejoined.protocol_name.as_deref(), Some("range"));
    // Only the leader sees the members, each with its metadata.
    assert!(b.members.is_empty());
    let mut members: Vec<(String, Vec<u8>)> = rejoined
        .members
        .iter()
        .map(|member| (member.member_id.to_string(), member.metadata.to_vec()))
        .collect();
    members.sort();
    let mut expected = vec![
        (a_id.clone(), b"meta-a".to_vec()),
        (b_id.clone(), b"meta-b".to_vec()),
    ];
    expected.sort();
    assert_eq!(members, expected);

    // The follower's SyncGroup waits for the leader's, then gets what the leader gave it.
    let generation = rejoined.generation_id;
    let follower_sync = {
        let b_id = b_id.clone();
        tokio::spawn(async move {
            let synced = second.send(sync(group_id, generation, &b_id, &[]), 3).await;
            (second, synced)
        })
    };
    let leader_synced = first
        .send(
            sync(
                group_id,
                generation,
                &a_id,
                &[(&a_id, b"part-0"), (&b_id, b"part-1")],
            ),
            5,
        )
        .await;
    assert_eq!(leader_synced.error_code, 0);
    assert_eq!(&leader_synced.assignment[..], b"part-0");
    let (mut second, follower_synced) = follower_sync.await.unwrap();
    assert_eq!(follower_synced.error_code, 0);
    assert_eq!(&follower_synced.assignment[..], b"part-1");
    for (connection, member) in [(&mut first, &a_id), (&mut second, &b_id)] {
        let beat = connection
            .send(heartbeat(group_id, generation, member), 4)
            .await;
        assert_eq!(beat.error_code, 0);
    }

    // Both doors show the group with its two members.
    let described = first
        .send(
            DescribeGroupsRequest::default().with_groups(vec![group(group_id)]),
            5,
        )
        .await;
    let described = &described.groups[0];
    assert_eq!(described.error_code, 0);
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.protocol_type.as_str(), "consumer");
    assert_eq!(described.protocol_data.as_str(), "range");
    assert_eq!(described.members.len(), 2);
    let listed = first
        .send(ListGroupsRequest::default(), 5)
        .await
        .groups
        .into_iter()
        .find(|listed| listed.group_id.as_str() == group_id)
        .expect("the group is listed");
    assert_eq!(listed.group_type.as_str(), "classic");
    assert_eq!(listed.group_state.as_str(), "Stable");
    let mut groups = GroupCoordinatorClient::new(common::channel(&broker).await);
    let grpc = groups
        .describe_group(proto::DescribeGroupRequest {
            group_id: group_id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc.error_code, 0);
    assert_eq!(grpc.state, "Stable");
    assert_eq!(grpc.members.len(), 2);

    // A third member triggers a rebalance the others learn of from their heartbeats.
    let first_join = third
        .send(join_group_request(group_id, "", b"meta-c"), 9)
        .await;
    assert_eq!(first_join.error_code, MEMBER_ID_REQUIRED);
    let c_id = first_join.member_id.to_string();
    let c_join = tokio::spawn(async move {
        let joined = third
            .send(join_group_request(group_id, &c_id, b"meta-c"), 9)
            .await;
        (third, joined)
    });
    loop {
        let beat = first.send(heartbeat(group_id, generation, &a_id), 4).await;
        if beat.error_code == REBALANCE_IN_PROGRESS {
            break;
        }
        assert_eq!(beat.error_code, 0);
        tokio::task::yield_now().await;
    }
    let beat = second.send(heartbeat(group_id, generation, &b_id), 4).await;
    assert_eq!(beat.error_code, REBALANCE_IN_PROGRESS);

    // The second member leaves instead of rejoining; the first rejoins, so the generation forms
    // with the first and third.
    let left = second
        .send(
            LeaveGroupRequest::default()
                .with_group_id(group(group_id))
                .with_members(vec![MemberIdentity::default().with_member_id(text(&b_id))]),
            5,
        )
        .await;
    assert_eq!(left.error_code, 0);
    assert_eq!(left.members[0].error_code, 0);
    let rejoined = first
        .send(join_group_request(group_id, &a_id, b"meta-a"), 9)
        .await;
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(rejoined.generation_id, generation + 1);
    assert_eq!(rejoined.members.len(), 2);
    let (_, c) = c_join.await.unwrap();
    assert_eq!(c.error_code, 0);
    assert_eq!(c.generation_id, generation + 1);
    // The member that left is unknown now.
    let beat = second.send(heartbeat(group_id, generation, &b_id), 4).await;
    assert_eq!(beat.error_code, UNKNOWN_MEMBER_ID);
    // A group with members cannot be deleted.
    let deleted = first
        .send(
            DeleteGroupsRequest::default().with_groups_names(vec![group(group_id)]),
            2,
        )
        .await;
    assert_eq!(deleted.results[0].error_code, NON_EMPTY_GROUP);
}

#[tokio::test]
async fn classic_commits_are_checked_against_the_generation_and_seen_by_the_grpc_door() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let group_id = "committing";
    let mut connection = connect(&broker, group_id).await;
    let joined = join_new_member(&mut connection, group_id, SUBSCRIBED_TO_TOPIC).await;
    let member_id = joined.member_id.to_string();
    let generation = joined.generation_id;
    let synced = connection
        .send(sync(group_id, generation, &member_id, &[]), 5)
        .await;
    assert_eq!(synced.error_code, 0);

    let committed = connection
        .send(commit(group_id, generation, &member_id, 0, 3), 8)
        .await;
    assert_eq!(commit_error(&committed), 0);
    let stale = connection
        .send(commit(group_id, generation - 1, &member_id, 0, 1), 8)
        .await;
    assert_eq!(commit_error(&stale), ILLEGAL_GENERATION);
    let stranger = connection
        .send(commit(group_id, generation, "stranger", 0, 1), 8)
        .await;
    assert_eq!(commit_error(&stranger), UNKNOWN_MEMBER_ID);
    // A standalone commit is refused while the group has members.
    let standalone = connection.send(commit(group_id, -1, "", 0, 1), 8).await;
    assert_eq!(commit_error(&standalone), UNKNOWN_MEMBER_ID);
    assert_eq!(fetch_offset(&mut connection, group_id, 0, 8).await, 3);

    // The gRPC door reads the same offset.
    let mut groups = GroupCoordinatorClient::new(common::channel(&broker).await);
    let fetched = groups
        .offset_fetch(proto::OffsetFetchRequest {
            group_id: group_id.to_string(),
            partitions: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.error_code, 0);
    assert_eq!(fetched.offsets.len(), 1);
    assert_eq!(fetched.offsets[0].offset, 3);
    assert_eq!(fetched.offsets[0].metadata, "note");

    // Offsets of a topic a member consumes cannot be deleted; once it leaves they can.
    let delete_offset = OffsetDeleteRequest::default()
        .with_group_id(group(group_id))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(text(TOPIC)))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0),
                ]),
        ]);
    let refused = connection.send(delete_offset.clone(), 0).await;
    assert_eq!(refused.error_code, 0);
    assert_eq!(
        refused.topics[0].partitions[0].error_code,
        GROUP_SUBSCRIBED_TO_TOPIC
    );
    let left = connection
        .send(
            LeaveGroupRequest::default()
                .with_group_id(group(group_id))
                .with_member_id(text(&member_id)),
            2,
        )
        .await;
    assert_eq!(left.error_code, 0);
    let deleted = connection.send(delete_offset, 0).await;
    assert_eq!(deleted.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offset(&mut connection, group_id, 0, 8).await, -1);
    let standalone = connection.send(commit(group_id, -1, "", 0, 1), 8).await;
    assert_eq!(commit_error(&standalone), 0);
    let deleted = connection
        .send(
            DeleteGroupsRequest::default().with_groups_names(vec![group(group_id)]),
            2,
        )
        .await;
    assert_eq!(deleted.results[0].error_code, 0);
    let described = connection
        .send(
            DescribeGroupsRequest::default().with_groups(vec![group(group_id)]),
            5,
        )
        .await;
    assert_eq!(described.groups[0].group_state.as_str(), "Dead");
}

/// A KIP-848 member as its client keeps it: id, epoch and the partitions of `TOPIC` it owns.
struct Member {
    id: String,
    epoch: i32,
    owned: Vec<i32>,
}

/// A ConsumerGroupHeartbeat that joins `group_id` subscribed to `TOPIC`, with `member_id`
/// (empty: the coordinator gives one, as in version 0).
fn consumer_join(group_id: &str, member_id: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(member_id))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(60_000)
        .with_subscribed_topic_names(Some(vec![TopicName(text(TOPIC))]))
        .with_topic_partitions(Some(Vec::new()))
}

/// The partitions of `TOPIC` in a heartbeat's assignment, which names topics by `topic_id`.
fn assigned(response: &ConsumerGroupHeartbeatResponse, topic_id: Uuid) -> Vec<i32> {
    let assignment = response.assignment.as_ref().expect("an assignment");
    let mut partitions = Vec::new();
    for topic in &assignment.topic_partitions {
        assert_eq!(topic.topic_id, topic_id, "{response:?}");
        partitions.extend(&topic.partitions);
    }
    partitions.sort();
    partitions
}

/// Joins `group_id` and returns the member as the coordinator answered.
async fn consumer_joins(
    connection: &mut KafkaConnection,
    version: i16,
    group_id: &str,
    member_id: &str,
    topic_id: Uuid,
) -> Member {
    let joined = connection
        .send(consumer_join(group_id, member_id), version)
        .await;
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert!(joined.member_epoch > 0, "{joined:?}");
    assert!(joined.heartbeat_interval_ms > 0, "{joined:?}");
    let id = joined.member_id.clone().expect("a member id").to_string();
    assert!(!id.is_empty());
    Member {
        id,
        epoch: joined.member_epoch,
        owned: assigned(&joined, topic_id),
    }
}

/// One heartbeat of `member`, reporting what it owns and taking what it is given, as a client
/// that releases and takes partitions at once does.
async fn consumer_beat(
    connection: &mut KafkaConnection,
    version: i16,
    group_id: &str,
    member: &mut Member,
    topic_id: Uuid,
) {
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(&member.id))
        .with_member_epoch(member.epoch)
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic_id(topic_id)
                .with_partitions(member.owned.clone()),
        ]));
    let answer = connection.send(request, version).await;
    assert_eq!(answer.error_code, 0, "{answer:?}");
    assert_eq!(answer.member_id.as_deref(), Some(member.id.as_str()));
    member.epoch = answer.member_epoch;
    member.owned = assigned(&answer, topic_id);
}

/// The error code `request` is refused with; a refusal always says why.
async fn consumer_refused(
    connection: &mut KafkaConnection,
    version: i16,
    request: ConsumerGroupHeartbeatRequest,
) -> i16 {
    let answer = connection.send(request, version).await;
    assert!(answer.error_message.is_some(), "{answer:?}");
    answer.error_code
}

async fn served_versions(connection: &mut KafkaConnection, api_key: ApiKey) -> Vec<i16> {
    let versions = connection.send(ApiVersionsRequest::default(), 0).await;
    served(&versions, api_key).collect()
}

#[tokio::test]
async fn a_consumer_group_assigns_by_topic_id_rebalances_and_is_described_in_every_version() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let address = kafka_address(&broker);
    let mut connection = connect(&broker, "probe").await;
    let topic_id = topic_id(&mut connection, TOPIC).await;
    let describe_versions = served_versions(&mut connection, ApiKey::ConsumerGroupDescribe).await;
    for version in served_versions(&mut connection, ApiKey::ConsumerGroupHeartbeat).await {
        let group_id = format!("consumers-v{version}");
        let (mut first, mut second) = (
            connect(&broker, &group_id).await,
            KafkaConnection::connect(address).await,
        );
        // Version 1 members bring their own ids (KIP-1082); version 0 members are given one.
        let chosen = |name: &str| match version {
            0 => String::new(),
            _ => format!("{name}-{version}"),
        };

        // Alone, the first member gets both partitions, named by topic id, and stays at its
        // epoch while nothing changes.
        let mut a = consumer_joins(&mut first, version, &group_id, &chosen("a"), topic_id).await;
        if version >= 1 {
            assert_eq!(a.id, chosen("a"));
        }
        assert_eq!(a.owned, vec![0, 1], "v{version}");
        let stable = a.epoch;
        consumer_beat(&mut first, version, &group_id, &mut a, topic_id).await;
        assert_eq!(
            (a.epoch, a.owned.clone()),
            (stable, vec![0, 1]),
            "v{version}"
        );

        // A committed offset is checked against the member's epoch.
        let committed = first.send(commit(&group_id, a.epoch, &a.id, 0, 2), 9).await;
        assert_eq!(commit_error(&committed), 0, "v{version}");
        assert_eq!(fetch_offset(&mut first, &group_id, 0, 9).await, 2);

        // A second member: the first gives up one partition before the second gets it, and
        // both end at one epoch with one partition each.
        let mut b = consumer_joins(&mut second, version, &group_id, &chosen("b"), topic_id).await;
        assert_ne!(a.id, b.id);
        for _ in 0..10 {
            consumer_beat(&mut first, version, &group_id, &mut a, topic_id).await;
            consumer_beat(&mut second, version, &group_id, &mut b, topic_id).await;
            assert!(
                a.owned.iter().all(|partition| !b.owned.contains(partition)),
                "v{version}: a partition owned twice: {:?} {:?}",
                a.owned,
                b.owned
            );
            if a.owned.len() == 1 && b.owned.len() == 1 && a.epoch == b.epoch {
                break;
            }
        }
        assert_eq!((a.owned.len(), b.owned.len()), (1, 1), "v{version}");
        assert!(a.epoch > stable && a.epoch == b.epoch, "v{version}");

        for &describe_version in &describe_versions {
            let described = first
                .send(
                    ConsumerGroupDescribeRequest::default()
                        .with_group_ids(vec![group(&group_id), group("nobody-here")])
                        .with_include_authorized_operations(true),
                    describe_version,
                )
                .await;
            let (found, missing) = (&described.groups[0], &described.groups[1]);
            assert_eq!(found.error_code, 0, "v{describe_version}: {found:?}");
            assert_eq!(found.group_state.as_str(), "Stable");
            assert_eq!(found.group_epoch, a.epoch);
            assert_eq!(found.assignor_name.as_str(), "uniform");
            assert_ne!(found.authorized_operations, i32::MIN);
            assert_eq!(found.members.len(), 2);
            for member in &found.members {
                let owner = if member.member_id.as_str() == a.id {
                    &a
                } else {
                    &b
                };
                assert_eq!(member.member_id.as_str(), owner.id);
                assert_eq!(member.member_epoch, owner.epoch);
                assert_eq!(member.subscribed_topic_names, vec![TopicName(text(TOPIC))]);
                let topic = &member.assignment.topic_partitions[0];
                assert_eq!(
                    (topic.topic_id, topic.topic_name.0.as_str()),
                    (topic_id, TOPIC)
                );
                assert_eq!(topic.partitions, owner.owned);
                assert_eq!(member.target_assignment, member.assignment);
                assert_eq!(
                    member.member_type,
                    if describe_version >= 1 { 1 } else { -1 }
                );
            }
            assert_eq!(missing.error_code, GROUP_ID_NOT_FOUND);
        }

        // An epoch the member never had fences it; an id the group does not know is unknown.
        let mut fenced = consumer_join(&group_id, &a.id)
            .with_member_epoch(a.epoch + 10)
            .with_rebalance_timeout_ms(-1)
            .with_subscribed_topic_names(None)
            .with_topic_partitions(None);
        assert_eq!(
            consumer_refused(&mut first, version, fenced.clone()).await,
            FENCED_MEMBER_EPOCH
        );
        fenced.member_id = text("nobody");
        fenced.member_epoch = 1;
        assert_eq!(
            consumer_refused(&mut first, version, fenced).await,
            UNKNOWN_MEMBER_ID
        );
        // Fenced, a member rejoins with its own id and takes its own place back.
        let rejoined = consumer_joins(&mut first, version, &group_id, &a.id, topic_id).await;
        assert_eq!(rejoined.id, a.id, "v{version}");
        a = rejoined;
        let described = first
            .send(
                ConsumerGroupDescribeRequest::default().with_group_ids(vec![group(&group_id)]),
                0,
            )
            .await;
        assert_eq!(described.groups[0].members.len(), 2, "v{version}");

        // The second member leaves; the first gets both partitions back.
        let left = second
            .send(
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(group(&group_id))
                    .with_member_id(text(&b.id))
                    .with_member_epoch(-1),
                version,
            )
            .await;
        assert_eq!((left.error_code, left.member_epoch), (0, -1), "{left:?}");
        for _ in 0..10 {
            consumer_beat(&mut first, version, &group_id, &mut a, topic_id).await;
            if a.owned.len() == 2 {
                break;
            }
        }
        assert_eq!(a.owned, vec![0, 1], "v{version}");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn consumer_group_heartbeats_are_refused_with_kafkas_codes() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start_with(
        directory.path(),
        CoordinatorConfig {
            max_group_size: 1,
            ..CoordinatorConfig::default()
        },
    )
    .await;
    let mut connection = connect(&broker, "refusals").await;
    let topic_id = topic_id(&mut connection, TOPIC).await;

    let unknown_assignor = consumer_join("refusals", "").with_server_assignor(Some(text("sticky")));
    assert_eq!(
        consumer_refused(&mut connection, 1, unknown_assignor).await,
        UNSUPPORTED_ASSIGNOR
    );
    // Server-side regex (version 1) is refused rather than silently ignored.
    let regex = consumer_join("refusals", "")
        .with_subscribed_topic_names(Some(Vec::new()))
        .with_subscribed_topic_regex(Some(text("ev.*")));
    assert_eq!(
        consumer_refused(&mut connection, 1, regex).await,
        INVALID_REQUEST
    );
    let no_rebalance_timeout = consumer_join("refusals", "").with_rebalance_timeout_ms(-1);
    assert_eq!(
        consumer_refused(&mut connection, 0, no_rebalance_timeout).await,
        INVALID_REQUEST
    );

    // The group holds one member; a second is refused.
    let member = consumer_joins(&mut connection, 1, "refusals", "only", topic_id).await;
    assert_eq!(
        consumer_refused(&mut connection, 1, consumer_join("refusals", "second")).await,
        GROUP_MAX_SIZE_REACHED
    );
    // A classic member cannot join a consumer group that has members.
    let classic = connection
        .send(join_group_request("refusals", "", SUBSCRIBED_TO_TOPIC), 9)
        .await;
    assert_eq!(classic.error_code, INCONSISTENT_GROUP_PROTOCOL);
    // Leaving twice is not an error.
    let leave = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group("refusals"))
        .with_member_id(text(&member.id))
        .with_member_epoch(-1);
    for _ in 0..2 {
        let left = connection.send(leave.clone(), 1).await;
        assert_eq!(left.error_code, 0, "{left:?}");
    }

    // Nor a KIP-848 member a classic group that has members (GROUP_ID_NOT_FOUND, as in Kafka),
    // which ConsumerGroupDescribe does not describe either.
    join_new_member(&mut connection, "classic-only", SUBSCRIBED_TO_TOPIC).await;
    assert_eq!(
        consumer_refused(&mut connection, 1, consumer_join("classic-only", "")).await,
        GROUP_ID_NOT_FOUND
    );
    let described = connection
        .send(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![group("classic-only")]),
            1,
        )
        .await;
    assert_eq!(described.groups[0].error_code, GROUP_ID_NOT_FOUND);
    broker.shutdown().await;
}
