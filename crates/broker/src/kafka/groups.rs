//! Groups and committed offsets through the Kafka door, on the same group coordinator the gRPC
//! door uses.
//!
//! FindCoordinator, OffsetCommit, OffsetFetch, DeleteGroups and ConsumerGroupHeartbeat
//! ([`consumer`], with ConsumerGroupDescribe) are the gRPC door's calls (`grpc::GroupService`),
//! translated; so an offset committed by a Kafka
//! client is the one `strata group describe` shows, and the other way round. The classic group
//! protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) has no gRPC counterpart: it goes to
//! the coordinator's classic groups directly (`group_coordinator::classic`), as do the group
//! listings, which need what only Kafka's messages carry (protocol types, member metadata).
//!
//! A group's coordinator is the broker that leads its `__consumer_offsets` partition, as in
//! Kafka; FindCoordinator answers with that broker's Kafka listener, and any other broker
//! answers group requests with NOT_COORDINATOR, which sends clients back to FindCoordinator.

mod consumer;

use super::KafkaDoor;
use super::data::{by_topic, host_and_port, kafka_code};
use crate::error::PartitionError;
use crate::group_coordinator::{ClassicAnswer, classic_subscriptions};
use crate::grpc::GroupService;
use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, RequestHeader, RequestKind, ResponseKind, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;
use strata_auth::{Operation, ResourceType};
use strata_common::{ErrorCode, TopicPartition};
use strata_coordinator::classic::{JoinRequest, SyncRequest};
use strata_proto::v1 as proto;
use strata_proto::v1::group_coordinator_server::GroupCoordinator;

/// What this module serves (see `versions`). OffsetCommit and OffsetFetch stop before the
/// versions that name topics by id only (10 and 10), as Produce and Fetch do.
/// FindCoordinator stops before version 6, which adds share-group keys. ConsumerGroupHeartbeat
/// version 1 is served without its server-side regex, which is refused ([`consumer`]).
pub(super) const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 5),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// Kafka error codes with no `ErrorCode` of Strata's: they exist only on this door.
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

fn code(error: ErrorCode) -> i16 {
    kafka_code(error.code())
}

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn group_id(id: &str) -> GroupId {
    GroupId(text(id))
}

/// A `Cow`-free read of a nullable Kafka string.
fn optional(value: &Option<StrBytes>) -> Option<String> {
    value.as_ref().map(|value| value.to_string())
}

/// A new classic member's id, Kafka's way: the client id and a random UUID.
fn new_member_id(client_id: &str) -> String {
    let id = rand::random::<u128>();
    format!(
        "{client_id}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        id >> 96,
        (id >> 80) & 0xffff,
        (id >> 64) & 0xffff,
        (id >> 48) & 0xffff,
        id & 0xffff_ffff_ffff
    )
}

impl KafkaDoor {
    fn group_service(&self) -> GroupService {
        GroupService::new(self.state.clone())
    }

    /// Answers a group or offset request; hands back any other request.
    pub(super) async fn handle_group_request(
        &self,
        request: RequestKind,
        header: &RequestHeader,
    ) -> Result<ResponseKind, RequestKind> {
        let version = header.request_api_version;
        let client_id = header
            .client_id
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default();
        Ok(match request {
            RequestKind::FindCoordinator(body) => {
                ResponseKind::FindCoordinator(self.find_coordinator(body, version).await)
            }
            RequestKind::OffsetCommit(body) => {
                ResponseKind::OffsetCommit(self.offset_commit(body, version).await)
            }
            RequestKind::OffsetFetch(body) => {
                ResponseKind::OffsetFetch(self.offset_fetch(body, version).await)
            }
            RequestKind::JoinGroup(body) => {
                ResponseKind::JoinGroup(self.join_group(body, version, client_id).await)
            }
            RequestKind::SyncGroup(body) => {
                ResponseKind::SyncGroup(self.sync_group(body, version).await)
            }
            RequestKind::Heartbeat(body) => ResponseKind::Heartbeat(self.heartbeat(body).await),
            RequestKind::LeaveGroup(body) => {
                ResponseKind::LeaveGroup(self.leave_group(body, version).await)
            }
            RequestKind::ListGroups(body) => {
                ResponseKind::ListGroups(self.list_groups(body, version).await)
            }
            RequestKind::DescribeGroups(body) => {
                ResponseKind::DescribeGroups(self.describe_groups(body, version).await)
            }
            RequestKind::DeleteGroups(body) => {
                ResponseKind::DeleteGroups(self.delete_groups(body).await)
            }
            RequestKind::OffsetDelete(body) => {
                ResponseKind::OffsetDelete(self.offset_delete(body).await)
            }
            RequestKind::ConsumerGroupHeartbeat(body) => {
                ResponseKind::ConsumerGroupHeartbeat(self.consumer_group_heartbeat(body).await)
            }
            RequestKind::ConsumerGroupDescribe(body) => ResponseKind::ConsumerGroupDescribe(
                self.consumer_group_describe(body, version).await,
            ),
            other => return Err(other),
        })
    }

    /// One coordinator lookup: the Kafka listener of the broker leading the group's
    /// `__consumer_offsets` partition.
    async fn coordinator(&self, key: &str, key_type: i8) -> Coordinator {
        let refused = |error_code: i16, message: String| {
            Coordinator::default()
                .with_key(text(key))
                .with_node_id(BrokerId(-1))
                .with_host(text(""))
                .with_port(-1)
                .with_error_code(error_code)
                .with_error_message(Some(text(message)))
        };
        match key_type {
            0 => {}
            // Transactions come with exactly-once, after this wave (see InitProducerId).
            1 => {
                return refused(
                    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    "transactions are not supported yet".to_string(),
                );
            }
            other => {
                return refused(
                    code(ErrorCode::InvalidRequest),
                    format!("unknown coordinator key type {other}"),
                );
            }
        }
        let found = self
            .group_service()
            .find_coordinator(self.request(proto::FindCoordinatorRequest {
                group_id: key.to_string(),
            }))
            .await
            .map(|response| response.into_inner());
        let found = match found {
            Ok(found) if found.error_code == 0 => found,
            Ok(found) => return refused(kafka_code(found.error_code), found.error_message),
            Err(status) => return refused(super::data::status_code(&status), status.to_string()),
        };
        let state = self.state.controller.metadata().borrow().clone();
        let listener = state
            .broker(found.node_id)
            .and_then(|broker| broker.kafka_address.as_deref())
            .and_then(host_and_port);
        match listener {
            Some((host, port)) => Coordinator::default()
                .with_key(text(key))
                .with_node_id(BrokerId(found.node_id))
                .with_host(host)
                .with_port(port),
            None => refused(
                code(ErrorCode::CoordinatorNotAvailable),
                format!(
                    "the coordinator, broker {}, has no Kafka listener known yet",
                    found.node_id
                ),
            ),
        }
    }

    async fn find_coordinator(
        &self,
        request: FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        if version >= 4 {
            let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
            for key in &request.coordinator_keys {
                coordinators.push(self.coordinator(key, request.key_type).await);
            }
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        let found = self.coordinator(&request.key, request.key_type).await;
        let mut response = FindCoordinatorResponse::default()
            .with_error_code(found.error_code)
            .with_node_id(found.node_id)
            .with_host(found.host)
            .with_port(found.port);
        if version >= 1 {
            response.error_message = found.error_message;
        }
        response
    }

    async fn offset_commit(
        &self,
        request: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let partitions: Vec<proto::OffsetCommitPartition> = request
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|partition| proto::OffsetCommitPartition {
                        topic: topic.name.0.to_string(),
                        partition: partition.partition_index,
                        offset: partition.committed_offset,
                        leader_epoch: if version >= 6 {
                            partition.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: optional(&partition.committed_metadata).unwrap_or_default(),
                    })
            })
            .collect();
        // The gRPC door answers every partition, in request order, even when the whole commit
        // is refused.
        let answers = self
            .group_service()
            .offset_commit(self.request(proto::OffsetCommitRequest {
                group_id: request.group_id.0.to_string(),
                member_id: request.member_id.to_string(),
                member_epoch: request.generation_id_or_member_epoch,
                partitions,
            }))
            .await
            .map(|response| response.into_inner().partitions)
            .unwrap_or_default();
        let topics = by_topic(
            answers.into_iter().map(|answer| {
                (
                    answer.topic,
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(answer.partition)
                        .with_error_code(kafka_code(answer.error_code)),
                )
            }),
            |topic, partitions| {
                OffsetCommitResponseTopic::default()
                    .with_name(topic)
                    .with_partitions(partitions)
            },
        );
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// One group's committed offsets: `None` asks for every committed partition.
    async fn group_offsets(
        &self,
        group: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<proto::CommittedOffset>, (i16, String)> {
        let partitions: Vec<proto::TopicPartitions> = match topics {
            // An empty list asks for nothing, where the gRPC door's empty list means all.
            Some(topics) if topics.iter().all(|(_, partitions)| partitions.is_empty()) => {
                return Ok(Vec::new());
            }
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| proto::TopicPartitions { topic, partitions })
                .collect(),
            None => Vec::new(),
        };
        let response = self
            .group_service()
            .offset_fetch(self.request(proto::OffsetFetchRequest {
                group_id: group.to_string(),
                partitions,
            }))
            .await
            .map_err(|status| (super::data::status_code(&status), status.to_string()))?
            .into_inner();
        if response.error_code != 0 {
            return Err((kafka_code(response.error_code), response.error_message));
        }
        Ok(response.offsets)
    }

    async fn offset_fetch(&self, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        if version >= 8 {
            let mut groups = Vec::with_capacity(request.groups.len());
            for group in request.groups {
                let topics = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|topic| (topic.name.0.to_string(), topic.partition_indexes))
                        .collect()
                });
                let response = OffsetFetchResponseGroup::default().with_group_id(group.group_id);
                groups.push(match self.group_offsets(&response.group_id, topics).await {
                    Ok(offsets) => response.with_topics(by_topic(
                        offsets.into_iter().map(|offset| {
                            (
                                offset.topic,
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(offset.partition)
                                    .with_committed_offset(offset.offset)
                                    .with_committed_leader_epoch(offset.leader_epoch)
                                    .with_metadata(Some(text(offset.metadata))),
                            )
                        }),
                        |topic, partitions| {
                            OffsetFetchResponseTopics::default()
                                .with_name(topic)
                                .with_partitions(partitions)
                        },
                    )),
                    Err((error_code, _)) => response.with_error_code(error_code),
                });
            }
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let requested: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
            topics
                .into_iter()
                .map(|topic| (topic.name.0.to_string(), topic.partition_indexes))
                .collect()
        });
        let partition = |offset: proto::CommittedOffset, error_code: i16| {
            let mut partition = OffsetFetchResponsePartition::default()
                .with_partition_index(offset.partition)
                .with_committed_offset(offset.offset)
                .with_metadata(Some(text(offset.metadata)))
                .with_error_code(error_code);
            if version >= 5 {
                partition.committed_leader_epoch = offset.leader_epoch;
            }
            (offset.topic, partition)
        };
        let topics = |partitions: Vec<(String, OffsetFetchResponsePartition)>| {
            by_topic(partitions, |topic, partitions| {
                OffsetFetchResponseTopic::default()
                    .with_name(topic)
                    .with_partitions(partitions)
            })
        };
        match self
            .group_offsets(&request.group_id, requested.clone())
            .await
        {
            Ok(offsets) => OffsetFetchResponse::default().with_topics(topics(
                offsets
                    .into_iter()
                    .map(|offset| partition(offset, 0))
                    .collect(),
            )),
            // Version 2 and later carry a group-level code.
            Err((error_code, _)) if version >= 2 => {
                OffsetFetchResponse::default().with_error_code(error_code)
            }
            // Version 1 has only partition codes: each requested partition carries it.
            Err((error_code, _)) => {
                let failed = requested
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|(topic, partitions)| {
                        partitions
                            .into_iter()
                            .map(move |index| proto::CommittedOffset {
                                topic: topic.clone(),
                                partition: index,
                                offset: -1,
                                leader_epoch: -1,
                                ..Default::default()
                            })
                    })
                    .map(|offset| partition(offset, error_code))
                    .collect();
                OffsetFetchResponse::default().with_topics(topics(failed))
            }
        }
    }

    async fn join_group(
        &self,
        request: JoinGroupRequest,
        version: i16,
        client_id: String,
    ) -> JoinGroupResponse {
        let group = request.group_id.0.to_string();
        let rebalance_timeout_ms = if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        };
        let join = JoinRequest {
            member_id: request.member_id.to_string(),
            instance_id: optional(&request.group_instance_id),
            client_id: client_id.clone(),
            client_host: String::new(),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms,
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .iter()
                .map(|protocol| (protocol.name.to_string(), protocol.metadata.to_vec()))
                .collect(),
            require_known_member_id: version >= 4,
        };
        let new_member_id = new_member_id(&client_id);
        let groups = &self.state.groups;
        let limit = Duration::from_millis(rebalance_timeout_ms.max(0) as u64);
        let answer = async {
            self.state
                .authorizer
                .group(self.caller(), Operation::Read, &group)?;
            let shard = groups.shard_for(&group).await?;
            let (start_group, poll_group) = (group.clone(), group.clone());
            groups
                .classic_wait(
                    &shard,
                    move |shard, now_ms| {
                        shard.classic_join(&start_group, join, &new_member_id, now_ms)
                    },
                    move |shard, ticket| shard.classic_poll_join(&poll_group, ticket),
                    limit,
                )
                .await
        }
        .await;
        let mut response = JoinGroupResponse::default()
            .with_generation_id(-1)
            .with_member_id(request.member_id.clone());
        // Before version 7 the protocol name is not nullable.
        if version < 7 {
            response.protocol_name = Some(text(""));
        }
        match answer {
            Ok(ClassicAnswer::Done(joined)) => {
                response.generation_id = joined.generation_id;
                response.member_id = text(joined.member_id);
                response.leader = text(joined.leader);
                if let Some(protocol) = joined.protocol_name {
                    response.protocol_name = Some(text(protocol));
                }
                if version >= 7 {
                    response.protocol_type = joined.protocol_type.map(text);
                }
                response.members = joined
                    .members
                    .into_iter()
                    .map(|member| {
                        let mut joined = JoinGroupResponseMember::default()
                            .with_member_id(text(member.member_id))
                            .with_metadata(Bytes::from(member.metadata));
                        if version >= 5 {
                            joined.group_instance_id = member.instance_id.map(text);
                        }
                        joined
                    })
                    .collect();
                response
            }
            Ok(ClassicAnswer::MemberIdRequired(member_id)) => response
                .with_error_code(code(ErrorCode::MemberIdRequired))
                .with_member_id(text(member_id)),
            Err(error) => response.with_error_code(code(error.code)),
        }
    }

    async fn sync_group(&self, request: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let group = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        let sync = SyncRequest {
            member_id: member_id.clone(),
            instance_id: optional(&request.group_instance_id),
            generation_id: request.generation_id,
            protocol_type: optional(&request.protocol_type),
            protocol_name: optional(&request.protocol_name),
            assignments: request
                .assignments
                .iter()
                .map(|assignment| {
                    (
                        assignment.member_id.to_string(),
                        assignment.assignment.to_vec(),
                    )
                })
                .collect(),
        };
        let groups = &self.state.groups;
        // A follower waits for the leader's SyncGroup, which comes within the leader's session
        // timeout or the leader is removed (and the wait answered).
        let limit =
            Duration::from_millis(groups.coordinator_config().max_session_timeout_ms.max(0) as u64);
        let answer = async {
            self.state
                .authorizer
                .group(self.caller(), Operation::Read, &group)?;
            let shard = groups.shard_for(&group).await?;
            let (start_group, poll_group) = (group.clone(), group.clone());
            groups
                .classic_wait(
                    &shard,
                    move |shard, now_ms| shard.classic_sync(&start_group, sync, now_ms),
                    move |shard, ticket| shard.classic_poll_sync(&poll_group, ticket),
                    limit,
                )
                .await
        }
        .await;
        let mut response = SyncGroupResponse::default();
        match answer {
            Ok(ClassicAnswer::Done(assignment)) => {
                response.assignment = Bytes::from(assignment);
                if version >= 5 {
                    response.protocol_type = request.protocol_type;
                    response.protocol_name = request.protocol_name;
                }
            }
            Ok(ClassicAnswer::MemberIdRequired(_)) => {
                response.error_code = code(ErrorCode::UnknownMemberId);
            }
            Err(error) => response.error_code = code(error.code),
        }
        response
    }

    async fn heartbeat(&self, request: HeartbeatRequest) -> HeartbeatResponse {
        let group = request.group_id.0.to_string();
        let groups = &self.state.groups;
        let answer = async {
            self.state
                .authorizer
                .group(self.caller(), Operation::Read, &group)?;
            let shard = groups.shard_for(&group).await?;
            groups
                .classic(&shard, |shard, now_ms| {
                    shard.classic_heartbeat(
                        &group,
                        &request.member_id,
                        request.group_instance_id.as_deref(),
                        request.generation_id,
                        now_ms,
                    )
                })
                .await
        }
        .await;
        let error_code = answer.err().map_or(0, |error| code(error.code));
        HeartbeatResponse::default().with_error_code(error_code)
    }

    async fn leave_group(&self, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let group = request.group_id.0.to_string();
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            request
                .members
                .iter()
                .map(|member| {
                    (
                        member.member_id.to_string(),
                        optional(&member.group_instance_id),
                    )
                })
                .collect()
        } else {
            vec![(request.member_id.to_string(), None)]
        };
        let groups = &self.state.groups;
        let answer = async {
            self.state
                .authorizer
                .group(self.caller(), Operation::Read, &group)?;
            let shard = groups.shard_for(&group).await?;
            groups
                .classic(&shard, |shard, now_ms| {
                    shard.classic_leave(&group, &leaving, now_ms)
                })
                .await
        }
        .await;
        match answer {
            Ok(outcomes) if version >= 3 => LeaveGroupResponse::default().with_members(
                request
                    .members
                    .into_iter()
                    .zip(outcomes)
                    .map(|(member, outcome)| {
                        MemberResponse::default()
                            .with_member_id(member.member_id)
                            .with_group_instance_id(member.group_instance_id)
                            .with_error_code(outcome.err().map_or(0, |error| code(error.code)))
                    })
                    .collect(),
            ),
            Ok(outcomes) => LeaveGroupResponse::default().with_error_code(
                outcomes
                    .into_iter()
                    .find_map(|outcome| outcome.err())
                    .map_or(0, |error| code(error.code)),
            ),
            Err(error) => LeaveGroupResponse::default().with_error_code(code(error.code)),
        }
    }

    async fn list_groups(&self, request: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let wanted = |filter: &[StrBytes], value: &str| {
            filter.is_empty()
                || filter
                    .iter()
                    .any(|wanted| wanted.eq_ignore_ascii_case(value))
        };
        let mut listed = Vec::new();
        for shard in self.state.groups.led_shards().await {
            let groups = self
                .state
                .groups
                .read(&shard, |shard| {
                    let mut groups: Vec<(String, String, String, &'static str)> = shard
                        .list()
                        .into_iter()
                        .map(|(group_id, state, _)| {
                            (
                                group_id,
                                "consumer".to_string(),
                                state.as_str().to_string(),
                                "consumer",
                            )
                        })
                        .collect();
                    groups.extend(shard.classic_groups().map(|group| {
                        (
                            group.group_id().to_string(),
                            group.protocol_type().unwrap_or_default().to_string(),
                            group.state().as_str().to_string(),
                            "classic",
                        )
                    }));
                    groups.extend(shard.share_group_ids().into_iter().map(
                        |(group_id, members)| {
                            let state = if members == 0 { "Empty" } else { "Stable" };
                            (group_id, "share".to_string(), state.to_string(), "share")
                        },
                    ));
                    groups
                })
                .await;
            let Ok(groups) = groups else { continue };
            for (group, protocol_type, state, group_type) in groups {
                // The groups the caller may describe, as Kafka lists them.
                if !wanted(&request.states_filter, &state)
                    || !wanted(&request.types_filter, group_type)
                    || !self.state.authorizer.allows(
                        self.caller(),
                        Operation::Describe,
                        ResourceType::Group,
                        &group,
                    )
                {
                    continue;
                }
                let mut entry = ListedGroup::default()
                    .with_group_id(group_id(&group))
                    .with_protocol_type(text(protocol_type));
                if version >= 4 {
                    entry.group_state = text(state);
                }
                if version >= 5 {
                    entry.group_type = text(group_type);
                }
                listed.push(entry);
            }
        }
        ListGroupsResponse::default().with_groups(listed)
    }

    async fn describe_group(&self, group: &str, version: i16) -> DescribedGroup {
        let described = DescribedGroup::default().with_group_id(group_id(group));
        if let Err(refused) = self
            .state
            .authorizer
            .group(self.caller(), Operation::Describe, group)
        {
            return described.with_error_code(code(refused.code));
        }
        let groups = &self.state.groups;
        let shard = match groups.shard_for(group).await {
            Ok(shard) => shard,
            Err(error) => return described.with_error_code(code(error.code)),
        };
        let read = groups
            .read(&shard, |shard| {
                if let Some(classic) = shard.classic_group(group) {
                    let protocol = classic.protocol_name().unwrap_or_default();
                    let members = classic
                        .members()
                        .map(|member| {
                            let mut described = DescribedGroupMember::default()
                                .with_member_id(text(member.member_id.clone()))
                                .with_client_id(text(member.client_id.clone()))
                                .with_client_host(text(member.client_host.clone()))
                                .with_member_metadata(Bytes::copy_from_slice(
                                    member.metadata(protocol).unwrap_or_default(),
                                ))
                                .with_member_assignment(Bytes::from(member.assignment.clone()));
                            if version >= 4 {
                                described.group_instance_id = member.instance_id.clone().map(text);
                            }
                            described
                        })
                        .collect();
                    return Ok(DescribedGroup::default()
                        .with_group_state(text(classic.state().as_str()))
                        .with_protocol_type(text(classic.protocol_type().unwrap_or_default()))
                        .with_protocol_data(text(protocol))
                        .with_members(members));
                }
                match shard.describe(group) {
                    // A KIP-848 group: ConsumerGroupDescribe describes it, as in Kafka.
                    Some(description) if !description.group.members.is_empty() => {
                        Err(PartitionError::new(
                            ErrorCode::GroupIdNotFound,
                            format!("group '{group}' is a consumer group, not a classic group"),
                        ))
                    }
                    // Offsets only: Kafka's "simple" group, empty and without a protocol.
                    Some(_) => Ok(DescribedGroup::default().with_group_state(text("Empty"))),
                    None => Ok(DescribedGroup::default().with_group_state(text("Dead"))),
                }
            })
            .await
            .and_then(|described| described);
        match read {
            Ok(read) => read.with_group_id(group_id(group)),
            Err(error) => described.with_error_code(code(error.code)),
        }
    }

    async fn describe_groups(
        &self,
        request: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let mut described = Vec::with_capacity(request.groups.len());
        for group in &request.groups {
            described.push(self.describe_group(group, version).await);
        }
        DescribeGroupsResponse::default().with_groups(described)
    }

    async fn delete_groups(&self, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
        let mut results = Vec::with_capacity(request.groups_names.len());
        for group in request.groups_names {
            let error_code = match self
                .group_service()
                .delete_group(self.request(proto::DeleteGroupRequest {
                    group_id: group.0.to_string(),
                }))
                .await
            {
                Ok(response) => kafka_code(response.into_inner().error_code),
                Err(status) => super::data::status_code(&status),
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group)
                    .with_error_code(error_code),
            );
        }
        DeleteGroupsResponse::default().with_results(results)
    }

    async fn offset_delete(&self, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
        let group = request.group_id.0.to_string();
        let partitions: Vec<TopicPartition> = request
            .topics
            .iter()
            .flat_map(|topic| {
                topic.partitions.iter().map(|partition| {
                    TopicPartition::new(topic.name.0.to_string(), partition.partition_index)
                })
            })
            .collect();
        // As in Kafka: Delete on the group, and Read on each partition's topic, or that
        // partition is refused on its own.
        let (permitted, refused): (Vec<TopicPartition>, Vec<TopicPartition>) =
            partitions.into_iter().partition(|partition| {
                self.state.authorizer.allows(
                    self.caller(),
                    Operation::Read,
                    ResourceType::Topic,
                    &partition.topic,
                )
            });
        let groups = &self.state.groups;
        let answer = async {
            self.state
                .authorizer
                .group(self.caller(), Operation::Delete, &group)?;
            let shard = groups.shard_for(&group).await?;
            groups
                .write(&shard, |shard| {
                    let classic = shard
                        .classic_group(&group)
                        .map(classic_subscriptions)
                        .unwrap_or_default();
                    shard.delete_offsets(&group, permitted, &classic)
                })
                .await
        }
        .await;
        match answer {
            Ok(outcomes) => {
                OffsetDeleteResponse::default().with_topics(by_topic(
                    outcomes
                        .into_iter()
                        .map(|(partition, outcome)| {
                            (partition, outcome.err().map_or(0, |error| code(error.code)))
                        })
                        .chain(refused.into_iter().map(|partition| {
                            (partition, code(ErrorCode::TopicAuthorizationFailed))
                        }))
                        .map(|(partition, error_code)| {
                            (
                                partition.topic,
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(partition.partition)
                                    .with_error_code(error_code),
                            )
                        }),
                    |topic, partitions| {
                        OffsetDeleteResponseTopic::default()
                            .with_name(topic)
                            .with_partitions(partitions)
                    },
                ))
            }
            Err(error) => OffsetDeleteResponse::default().with_error_code(code(error.code)),
        }
    }
}
