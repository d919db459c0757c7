//! Groups and committed offsets through the Kafka listener, at the wire: FindCoordinator names
//! the Kafka listener, standalone consumers commit and fetch offsets, a classic group forms its
//! generations (KIP-394 member ids, leader election, the leader's assignment handed out,
//! rebalances, leaving), stale generations are refused, and the two doors share one store.

mod common;
mod kafka_client;

use bytes::Bytes;
use kafka_client::KafkaConnection;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use strata_broker::{Broker, BrokerConfig, BrokerHandle, GroupCoordinatorConfig};
use strata_coordinator::CoordinatorConfig;
use strata_proto::v1 as proto;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::group_coordinator_client::GroupCoordinatorClient;

const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const NON_EMPTY_GROUP: i16 = 68;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

const TOPIC: &str = "events";
/// A consumer's JoinGroup metadata (`ConsumerProtocolSubscription` version 0) subscribing to
/// `TOPIC`: version, one topic, the topic's name, no user data.
const SUBSCRIBED_TO_TOPIC: &[u8] = b"\x00\x00\x00\x00\x00\x01\x00\x06events\xff\xff\xff\xff";

/// One broker with a Kafka listener whose classic groups form their first generation at once,
/// so a test decides who is in it by who has joined.
async fn start(directory: &std::path::Path) -> BrokerHandle {
    let broker = Broker::start(BrokerConfig {
        data_dir: directory.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        groups: GroupCoordinatorConfig {
            offsets_topic_partitions: 2,
            coordinator: CoordinatorConfig {
                classic_initial_rebalance_delay_ms: 0,
                ..CoordinatorConfig::default()
            },
            ..GroupCoordinatorConfig::default()
        },
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts");
    let created = AdminClient::new(common::channel(&broker).await)
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![proto::CreatableTopic {
                name: TOPIC.to_string(),
                num_partitions: 2,
                replication_factor: 1,
                configs: HashMap::new(),
            }],
            timeout_ms: 10_000,
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
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

fn commit(
    group_id: &str,
    generation: i32,
    member_id: &str,
    partition: i32,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(text(member_id))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(text(TOPIC)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(text("note"))),
                ]),
        ])
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

/// A consumer-protocol JoinGroup with `metadata` for the range assignor.
fn join(group_id: &str, member_id: &str, metadata: &'static [u8]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(60_000)
        .with_member_id(text(member_id))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Bytes::from_static(metadata)),
        ])
}

/// Joins as a new member the KIP-394 way: the first JoinGroup is refused with the member id
/// to use, the second waits for the generation and returns its answer.
async fn join_new_member(
    connection: &mut KafkaConnection,
    group_id: &str,
    metadata: &'static [u8],
) -> JoinGroupResponse {
    let first = connection.send(join(group_id, "", metadata), 9).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(!first.member_id.is_empty());
    let joined = connection
        .send(join(group_id, &first.member_id, metadata), 9)
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
    let rejoined = first.send(join(group_id, &a_id, b"meta-a"), 9).await;
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
    let first_join = third.send(join(group_id, "", b"meta-c"), 9).await;
    assert_eq!(first_join.error_code, MEMBER_ID_REQUIRED);
    let c_id = first_join.member_id.to_string();
    let c_join = tokio::spawn(async move {
        let joined = third.send(join(group_id, &c_id, b"meta-c"), 9).await;
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
    let rejoined = first.send(join(group_id, &a_id, b"meta-a"), 9).await;
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
