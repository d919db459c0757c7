use crate::authorization::Caller;
use std::collections::BTreeSet;
use std::sync::Arc;
use strata_auth::{Operation, ResourceType};

use strata_common::{ErrorCode, TopicPartition};
use strata_coordinator::{Assignment, HeartbeatRequest, OffsetAndMetadata};
use strata_proto::v1 as proto;
use tonic::{Request, Response, Status};

use crate::BrokerState;
use crate::error::PartitionError;
use crate::group_coordinator::{
    MemberAck, ShareSettings, classic_assignment, classic_subscription,
};
use crate::grpc::status::error_fields;
use strata_coordinator::shard::ShareAck;
use strata_coordinator::share::AckKind;

pub struct GroupService {
    state: Arc<BrokerState>,
}

impl GroupService {
    pub fn new(state: Arc<BrokerState>) -> GroupService {
        GroupService { state }
    }
}

fn to_assignment(partitions: Vec<proto::TopicPartitions>) -> Assignment {
    partitions
        .into_iter()
        .flat_map(|topic| {
            let name = topic.topic;
            topic
                .partitions
                .into_iter()
                .map(move |partition| TopicPartition::new(name.clone(), partition))
        })
        .collect()
}

fn from_assignment<'a>(
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) -> Vec<proto::TopicPartitions> {
    let mut topics: Vec<proto::TopicPartitions> = Vec::new();
    for partition in partitions {
        match topics.last_mut() {
            Some(last) if last.topic == partition.topic => {
                last.partitions.push(partition.partition)
            }
            _ => topics.push(proto::TopicPartitions {
                topic: partition.topic.clone(),
                partitions: vec![partition.partition],
            }),
        }
    }
    topics
}

fn committed(
    topic_partition: &TopicPartition,
    offset: Option<&OffsetAndMetadata>,
) -> proto::CommittedOffset {
    proto::CommittedOffset {
        topic: topic_partition.topic.clone(),
        partition: topic_partition.partition,
        offset: offset.map_or(-1, |offset| offset.offset),
        leader_epoch: offset.map_or(-1, |offset| offset.leader_epoch),
        metadata: offset
            .map(|offset| offset.metadata.clone())
            .unwrap_or_default(),
        commit_timestamp: offset.map_or(-1, |offset| offset.commit_timestamp),
    }
}

fn share_settings(settings: Option<proto::ShareSettings>) -> Result<ShareSettings, PartitionError> {
    let settings = settings.unwrap_or_default();
    let visibility_timeout_ms = match settings.visibility_timeout_ms {
        0 => 30_000,
        timeout if (100..=43_200_000).contains(&timeout) => i64::from(timeout),
        other => {
            return Err(PartitionError::new(
                ErrorCode::InvalidRequest,
                format!("visibility timeout {other} ms is outside [100 ms, 12 h]"),
            ));
        }
    };
    let max_in_flight = match settings.max_in_flight {
        0 => 500,
        count if (1..=100_000).contains(&count) => count as usize,
        other => {
            return Err(PartitionError::new(
                ErrorCode::InvalidRequest,
                format!("max_in_flight {other} is outside [1, 100000]"),
            ));
        }
    };
    let max_delivery_attempts = match settings.max_delivery_attempts {
        attempts if (0..=1_000).contains(&attempts) => attempts as u32,
        other => {
            return Err(PartitionError::new(
                ErrorCode::InvalidRequest,
                format!("max_delivery_attempts {other} is outside [1, 1000]"),
            ));
        }
    };
    Ok(ShareSettings {
        visibility_timeout_ms,
        max_in_flight,
        max_delivery_attempts,
    })
}

fn member_acks(acks: Vec<proto::ShareAck>) -> Vec<MemberAck> {
    acks.into_iter()
        .map(|ack| {
            let topic_partition = TopicPartition::new(ack.topic, ack.partition);
            let reason = Some(ack.reason).filter(|reason| !reason.is_empty());
            let kind = match proto::ShareAckType::try_from(ack.r#type) {
                Ok(proto::ShareAckType::Renew) => {
                    return MemberAck::Renew(topic_partition, ack.offset);
                }
                Ok(proto::ShareAckType::Release) => AckKind::Release {
                    delay_ms: ack.delay_ms.max(0),
                },
                Ok(proto::ShareAckType::Reject) => AckKind::Reject,
                Ok(proto::ShareAckType::Accept) | Err(_) => AckKind::Accept,
            };
            MemberAck::Settle(ShareAck {
                topic_partition,
                offset: ack.offset,
                kind,
                reason,
            })
        })
        .collect()
}

fn ack_results(
    results: Vec<(TopicPartition, i64, Result<(), PartitionError>)>,
) -> Vec<proto::ShareAckResult> {
    results
        .into_iter()
        .map(|(topic_partition, offset, result)| {
            let (error_code, error_message) = error_fields(&result);
            proto::ShareAckResult {
                topic: topic_partition.topic,
                partition: topic_partition.partition,
                offset,
                error_code,
                error_message,
            }
        })
        .collect()
}

fn check_member(member_id: &str) -> Result<(), PartitionError> {
    if member_id.is_empty() || member_id.len() > 255 {
        return Err(PartitionError::new(
            ErrorCode::InvalidRequest,
            "a share-group member id must be 1 to 255 bytes long",
        ));
    }
    Ok(())
}

pub(crate) fn new_member_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl BrokerState {
    /// A share-group member reads its group and the topics it fetches: Read on each, as
    /// Kafka's ShareFetch asks.
    fn authorize_share_group(
        &self,
        caller: Option<&Caller>,
        group_id: &str,
        topics: &[String],
    ) -> Result<(), PartitionError> {
        self.authorizer.group(caller, Operation::Read, group_id)?;
        topics
            .iter()
            .try_for_each(|topic| self.authorizer.topic(caller, Operation::Read, topic))
    }

    /// The KIP-848 heartbeat of both doors. A joining member gets `joining_member_id`: the gRPC
    /// door makes one up, a Kafka client (ConsumerGroupHeartbeat v1, KIP-1082) brings its own.
    pub(crate) async fn consumer_heartbeat(
        &self,
        caller: Option<&Caller>,
        request: proto::ConsumerGroupHeartbeatRequest,
        joining_member_id: String,
    ) -> Result<proto::ConsumerGroupHeartbeatResponse, PartitionError> {
        self.authorizer
            .group(caller, Operation::Read, &request.group_id)?;
        // A subscription to a topic the member may not describe would hand it that topic's
        // partitions in its assignment, as Kafka 4 refuses.
        if let Some(topic) = request.subscribed_topic_names.iter().find(|topic| {
            !self
                .authorizer
                .allows(caller, Operation::Describe, ResourceType::Topic, topic)
        }) {
            return Err(PartitionError::new(
                ErrorCode::TopicAuthorizationFailed,
                format!(
                    "not authorized to describe topic '{topic}', which the member subscribes to"
                ),
            ));
        }
        let groups = &self.groups;
        let shard = groups.shard_for(&request.group_id).await?;
        let counts = groups.topic_partition_counts();
        let heartbeat = HeartbeatRequest {
            group_id: request.group_id,
            member_id: request.member_id,
            member_epoch: request.member_epoch,
            instance_id: Some(request.group_instance_id).filter(|id| !id.is_empty()),
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            session_timeout_ms: request.session_timeout_ms,
            subscribed_topics: request.has_subscription.then(|| {
                request
                    .subscribed_topic_names
                    .into_iter()
                    .collect::<BTreeSet<_>>()
            }),
            assignor: Some(request.server_assignor).filter(|name| !name.is_empty()),
            owned: request
                .has_owned
                .then(|| to_assignment(request.owned_partitions)),
        };
        let now_ms = self.groups.now_ms();
        let response = groups
            .write(&shard, |shard| {
                shard.heartbeat(heartbeat, &counts, &joining_member_id, now_ms)
            })
            .await?;
        Ok(proto::ConsumerGroupHeartbeatResponse {
            error_code: 0,
            error_message: String::new(),
            member_id: response.member_id,
            member_epoch: response.member_epoch,
            heartbeat_interval_ms: response.heartbeat_interval_ms,
            assignment: from_assignment(&response.assignment),
        })
    }

    async fn commit(
        &self,
        caller: Option<&Caller>,
        request: proto::OffsetCommitRequest,
    ) -> Result<Vec<proto::PartitionError>, PartitionError> {
        self.authorizer
            .group(caller, Operation::Read, &request.group_id)?;
        let groups = &self.groups;
        let shard = groups.shard_for(&request.group_id).await?;
        let now_ms = self.groups.now_ms();
        let wanted: Vec<(TopicPartition, i64)> = request
            .partitions
            .iter()
            .map(|partition| {
                (
                    TopicPartition::new(partition.topic.clone(), partition.partition),
                    partition.offset,
                )
            })
            .collect();
        // A committed offset is never above the high watermark: it would skip records that do
        // not exist yet (or never will, after a leader change).
        let checks = groups.check_high_watermarks(&wanted).await;
        // Committing for a partition needs Read on its topic too, as in Kafka.
        let checks = wanted.iter().zip(checks).map(|((partition, _), check)| {
            self.authorizer
                .topic(caller, Operation::Read, &partition.topic)
                .and(check)
        });
        let mut answers = vec![None; wanted.len()];
        let mut accepted = Vec::new();
        for (index, (partition, check)) in request.partitions.into_iter().zip(checks).enumerate() {
            match check {
                Ok(()) => accepted.push((
                    index,
                    TopicPartition::new(partition.topic, partition.partition),
                    OffsetAndMetadata {
                        offset: partition.offset,
                        leader_epoch: partition.leader_epoch,
                        metadata: partition.metadata,
                        commit_timestamp: now_ms,
                    },
                )),
                Err(error) => answers[index] = Some(Err(error)),
            }
        }
        if !accepted.is_empty() {
            let indexes: Vec<usize> = accepted.iter().map(|(index, _, _)| *index).collect();
            let offsets = accepted
                .into_iter()
                .map(|(_, partition, offset)| (partition, offset))
                .collect();
            let outcomes = groups
                .write(&shard, |shard| {
                    shard.commit_offsets(
                        &request.group_id,
                        &request.member_id,
                        request.member_epoch,
                        offsets,
                    )
                })
                .await?;
            for (index, (_, outcome)) in indexes.into_iter().zip(outcomes) {
                answers[index] =
                    Some(outcome.map_err(|error| PartitionError::new(error.code, error.message)));
            }
        }
        Ok(wanted
            .iter()
            .zip(answers)
            .map(|((topic_partition, _), answer)| {
                let (error_code, error_message) =
                    error_fields(&answer.expect("every partition was answered"));
                proto::PartitionError {
                    topic: topic_partition.topic.clone(),
                    partition: topic_partition.partition,
                    error_code,
                    error_message,
                }
            })
            .collect())
    }

    async fn fetch_offsets(
        &self,
        caller: Option<&Caller>,
        request: proto::OffsetFetchRequest,
    ) -> Result<Vec<proto::CommittedOffset>, PartitionError> {
        self.authorizer
            .group(caller, Operation::Describe, &request.group_id)?;
        let shard = self.groups.shard_for(&request.group_id).await?;
        let partitions: Vec<TopicPartition> =
            to_assignment(request.partitions).into_iter().collect();
        let wanted = (!partitions.is_empty()).then_some(partitions.as_slice());
        let offsets = self
            .groups
            .read(&shard, |shard| {
                shard.committed_offsets(&request.group_id, wanted)
            })
            .await?;
        // Offsets of topics the caller may not describe are left out, as Kafka leaves them out.
        Ok(offsets
            .iter()
            .filter(|(topic_partition, _)| {
                self.authorizer.allows(
                    caller,
                    Operation::Describe,
                    ResourceType::Topic,
                    &topic_partition.topic,
                )
            })
            .map(|(topic_partition, offset)| committed(topic_partition, offset.as_ref()))
            .collect())
    }

    async fn describe_group(
        &self,
        group_id: String,
    ) -> Result<proto::DescribeGroupResponse, PartitionError> {
        let shard = self.groups.shard_for(&group_id).await?;
        if let Some(classic) = self
            .groups
            .read(&shard, |shard| describe_classic(shard, &group_id))
            .await?
        {
            return Ok(proto::DescribeGroupResponse {
                coordinator_id: self.replicas.node_id(),
                ..classic
            });
        }
        let description = self
            .groups
            .read(&shard, |shard| shard.describe(&group_id))
            .await?
            .ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::GroupIdNotFound,
                    format!("group '{group_id}' does not exist"),
                )
            })?;
        let group = description.group;
        Ok(proto::DescribeGroupResponse {
            error_code: 0,
            error_message: String::new(),
            group_id,
            state: description.state.as_str().to_string(),
            group_epoch: group.group_epoch,
            assignment_epoch: group.assignment_epoch,
            assignor: group.assignor,
            members: group
                .members
                .into_values()
                .map(|member| proto::GroupMember {
                    member_id: member.member_id,
                    group_instance_id: member.instance_id.unwrap_or_default(),
                    member_epoch: member.member_epoch,
                    subscribed_topic_names: member.subscribed_topics.into_iter().collect(),
                    assignment: from_assignment(&member.assigned),
                    revoking: from_assignment(&member.revoking),
                    target: from_assignment(&member.target),
                })
                .collect(),
            offsets: description
                .offsets
                .iter()
                .map(|(topic_partition, offset)| committed(topic_partition, Some(offset)))
                .collect(),
            coordinator_id: self.replicas.node_id(),
        })
    }
}

/// A classic group as `strata group describe` shows it: its generation stands for the epochs,
/// its protocol for the assignor, and a consumer-protocol member's subscription and assignment
/// are read from the bytes the clients exchanged.
fn describe_classic(
    shard: &strata_coordinator::CoordinatorShard,
    group_id: &str,
) -> Option<proto::DescribeGroupResponse> {
    let group = shard.classic_group(group_id)?;
    let protocol = group.protocol_name().unwrap_or_default();
    let generation = group.generation_id();
    Some(proto::DescribeGroupResponse {
        error_code: 0,
        error_message: String::new(),
        group_id: group_id.to_string(),
        state: group.state().as_str().to_string(),
        group_epoch: generation,
        assignment_epoch: generation,
        assignor: protocol.to_string(),
        members: group
            .members()
            .map(|member| {
                let assignment = from_assignment(&classic_assignment(group, &member.assignment));
                proto::GroupMember {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.instance_id.clone().unwrap_or_default(),
                    member_epoch: generation,
                    subscribed_topic_names: classic_subscription(
                        group,
                        member.metadata(protocol).unwrap_or_default(),
                    ),
                    target: assignment.clone(),
                    assignment,
                    revoking: Vec::new(),
                }
            })
            .collect(),
        offsets: shard
            .committed_offsets(group_id, None)
            .iter()
            .map(|(topic_partition, offset)| committed(topic_partition, offset.as_ref()))
            .collect(),
        coordinator_id: -1,
    })
}

/// A group call's answer; a failure of the whole request is reported in the response's
/// `error_code` and `error_message`, as Kafka's group APIs do, not as a gRPC status.
fn reply<T: FailedResponse>(result: Result<T, PartitionError>) -> Result<Response<T>, Status> {
    Ok(Response::new(result.unwrap_or_else(T::failed)))
}

/// A response that carries a whole-request failure: its error code and message set, every other
/// field empty.
trait FailedResponse {
    fn failed(error: PartitionError) -> Self;
}

macro_rules! failed_with_other_fields_empty {
    ($($response:ty),+ $(,)?) => {$(
        impl FailedResponse for $response {
            // `DeleteGroupResponse` has no other fields.
            #[allow(clippy::needless_update)]
            fn failed(error: PartitionError) -> Self {
                Self {
                    error_code: error.code.code(),
                    error_message: error.message,
                    ..Default::default()
                }
            }
        }
    )+};
}

failed_with_other_fields_empty!(
    proto::ConsumerGroupHeartbeatResponse,
    proto::OffsetFetchResponse,
    proto::DescribeGroupResponse,
    proto::ShareFetchResponse,
    proto::ShareAcknowledgeResponse,
    proto::DescribeShareGroupResponse,
    proto::DeleteGroupResponse,
);

impl FailedResponse for proto::FindCoordinatorResponse {
    fn failed(error: PartitionError) -> Self {
        proto::FindCoordinatorResponse {
            error_code: error.code.code(),
            error_message: error.message,
            // No coordinator: node ids start at 0.
            node_id: -1,
            address: String::new(),
        }
    }
}

#[tonic::async_trait]
impl proto::group_coordinator_server::GroupCoordinator for GroupService {
    async fn find_coordinator(
        &self,
        request: Request<proto::FindCoordinatorRequest>,
    ) -> Result<Response<proto::FindCoordinatorResponse>, Status> {
        let caller = Caller::of(&request);
        let group_id = request.into_inner().group_id;
        let result = async {
            self.state
                .authorizer
                .group(caller.as_ref(), Operation::Describe, &group_id)?;
            self.state.groups.find_coordinator(&group_id).await
        }
        .await
        .map(|(node_id, address)| proto::FindCoordinatorResponse {
            error_code: 0,
            error_message: String::new(),
            node_id,
            address,
        });
        reply(result)
    }

    async fn consumer_group_heartbeat(
        &self,
        request: Request<proto::ConsumerGroupHeartbeatRequest>,
    ) -> Result<Response<proto::ConsumerGroupHeartbeatResponse>, Status> {
        let caller = Caller::of(&request);
        let result = self
            .state
            .consumer_heartbeat(caller.as_ref(), request.into_inner(), new_member_id())
            .await;
        reply(result)
    }

    async fn offset_commit(
        &self,
        request: Request<proto::OffsetCommitRequest>,
    ) -> Result<Response<proto::OffsetCommitResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let partitions: Vec<(String, i32)> = request
            .partitions
            .iter()
            .map(|partition| (partition.topic.clone(), partition.partition))
            .collect();
        let result = self.state.commit(caller.as_ref(), request).await;
        // A failure of the whole commit is reported on every partition, as Kafka does.
        let partitions = match result {
            Ok(answers) => answers,
            Err(error) => partitions
                .into_iter()
                .map(|(topic, partition)| proto::PartitionError {
                    topic,
                    partition,
                    error_code: error.code.code(),
                    error_message: error.message.clone(),
                })
                .collect(),
        };
        Ok(Response::new(proto::OffsetCommitResponse { partitions }))
    }

    async fn offset_fetch(
        &self,
        request: Request<proto::OffsetFetchRequest>,
    ) -> Result<Response<proto::OffsetFetchResponse>, Status> {
        let caller = Caller::of(&request);
        let result = self
            .state
            .fetch_offsets(caller.as_ref(), request.into_inner())
            .await
            .map(|offsets| proto::OffsetFetchResponse {
                error_code: 0,
                error_message: String::new(),
                offsets,
            });
        reply(result)
    }

    async fn list_groups(
        &self,
        request: Request<proto::ListGroupsRequest>,
    ) -> Result<Response<proto::ListGroupsResponse>, Status> {
        let caller = Caller::of(&request);
        let mut groups = Vec::new();
        for shard in self.state.groups.led_shards().await {
            if let Ok(listed) = self.state.groups.read(&shard, |shard| shard.list()).await {
                groups.extend(listed.into_iter().map(|(group_id, state, members)| {
                    proto::ListedGroup {
                        group_id,
                        state: state.as_str().to_string(),
                        members: members as i32,
                        group_type: "consumer".to_string(),
                    }
                }));
            }
            if let Ok(listed) = self
                .state
                .groups
                .read(&shard, |shard| {
                    shard
                        .classic_groups()
                        .map(|group| proto::ListedGroup {
                            group_id: group.group_id().to_string(),
                            state: group.state().as_str().to_string(),
                            members: group.members().count() as i32,
                            group_type: "classic".to_string(),
                        })
                        .collect::<Vec<_>>()
                })
                .await
            {
                groups.extend(listed);
            }
            if let Ok(listed) = self
                .state
                .groups
                .read(&shard, |shard| shard.share_group_ids())
                .await
            {
                groups.extend(
                    listed
                        .into_iter()
                        .map(|(group_id, members)| proto::ListedGroup {
                            group_id,
                            state: if members == 0 { "Empty" } else { "Stable" }.to_string(),
                            members: members as i32,
                            group_type: "share".to_string(),
                        }),
                );
            }
        }
        // The groups the caller may describe, as Kafka lists them.
        groups.retain(|group| {
            self.state.authorizer.allows(
                caller.as_ref(),
                Operation::Describe,
                ResourceType::Group,
                &group.group_id,
            )
        });
        Ok(Response::new(proto::ListGroupsResponse {
            error_code: 0,
            error_message: String::new(),
            groups,
        }))
    }

    async fn describe_group(
        &self,
        request: Request<proto::DescribeGroupRequest>,
    ) -> Result<Response<proto::DescribeGroupResponse>, Status> {
        let caller = Caller::of(&request);
        let group_id = request.into_inner().group_id;
        let result = async {
            self.state
                .authorizer
                .group(caller.as_ref(), Operation::Describe, &group_id)?;
            self.state.describe_group(group_id).await
        }
        .await;
        reply(result)
    }

    async fn share_fetch(
        &self,
        request: Request<proto::ShareFetchRequest>,
    ) -> Result<Response<proto::ShareFetchResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let groups = &self.state.groups;
        let result = async {
            self.state.authorize_share_group(
                caller.as_ref(),
                &request.group_id,
                &request.topics,
            )?;
            check_member(&request.member_id)?;
            let settings = share_settings(request.settings)?;
            let shard = groups.shard_for(&request.group_id).await?;
            let acknowledgements = if request.acknowledgements.is_empty() {
                Vec::new()
            } else {
                groups
                    .share_acknowledge(
                        &shard,
                        &request.group_id,
                        &request.member_id,
                        member_acks(request.acknowledgements),
                        &settings,
                    )
                    .await?
            };
            let max_records = request.max_records.clamp(1, 10_000) as usize;
            let max_wait =
                std::time::Duration::from_millis(request.max_wait_ms.clamp(0, 30_000) as u64);
            let partitions = groups
                .share_fetch(
                    &shard,
                    &request.group_id,
                    &request.member_id,
                    &request.topics,
                    max_records,
                    max_wait,
                    &settings,
                )
                .await?;
            Ok::<_, PartitionError>(proto::ShareFetchResponse {
                error_code: 0,
                error_message: String::new(),
                partitions: partitions
                    .into_iter()
                    .map(|partition| proto::ShareFetchPartition {
                        topic: partition.topic_partition.topic,
                        partition: partition.topic_partition.partition,
                        records: partition.records,
                        acquired: partition
                            .acquired
                            .into_iter()
                            .map(|(offset, delivery_count)| proto::AcquiredRecord {
                                offset,
                                delivery_count: delivery_count as i32,
                            })
                            .collect(),
                    })
                    .collect(),
                acknowledgements: ack_results(acknowledgements),
            })
        }
        .await;
        reply(result)
    }

    async fn share_acknowledge(
        &self,
        request: Request<proto::ShareAcknowledgeRequest>,
    ) -> Result<Response<proto::ShareAcknowledgeResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let groups = &self.state.groups;
        let result = async {
            self.state
                .authorize_share_group(caller.as_ref(), &request.group_id, &[])?;
            check_member(&request.member_id)?;
            let settings = share_settings(request.settings)?;
            let shard = groups.shard_for(&request.group_id).await?;
            let results = groups
                .share_acknowledge(
                    &shard,
                    &request.group_id,
                    &request.member_id,
                    member_acks(request.acknowledgements),
                    &settings,
                )
                .await?;
            if request.leave {
                groups
                    .share_leave(&shard, &request.group_id, &request.member_id, &settings)
                    .await?;
            }
            Ok::<_, PartitionError>(proto::ShareAcknowledgeResponse {
                error_code: 0,
                error_message: String::new(),
                acknowledgements: ack_results(results),
            })
        }
        .await;
        reply(result)
    }

    async fn describe_share_group(
        &self,
        request: Request<proto::DescribeGroupRequest>,
    ) -> Result<Response<proto::DescribeShareGroupResponse>, Status> {
        let caller = Caller::of(&request);
        let group_id = request.into_inner().group_id;
        let groups = &self.state.groups;
        let result = async {
            self.state
                .authorizer
                .group(caller.as_ref(), Operation::Describe, &group_id)?;
            let shard = groups.shard_for(&group_id).await?;
            let description = groups.describe_share(&shard, &group_id).await?;
            Ok::<_, PartitionError>(proto::DescribeShareGroupResponse {
                error_code: 0,
                error_message: String::new(),
                members: description.members.into_iter().map(|(id, _)| id).collect(),
                partitions: description
                    .partitions
                    .into_iter()
                    .map(|(topic_partition, counts)| proto::SharePartitionState {
                        topic: topic_partition.topic,
                        partition: topic_partition.partition,
                        start_offset: counts.start_offset,
                        fetch_offset: counts.fetch_offset,
                        acquired: counts.acquired as i32,
                        available: counts.available as i32,
                    })
                    .collect(),
                delivered: description.delivered as i64,
                acknowledged: description.acknowledged as i64,
                dead_lettered: description.dead_lettered as i64,
                coordinator_id: self.state.replicas.node_id(),
            })
        }
        .await;
        reply(result)
    }

    async fn delete_group(
        &self,
        request: Request<proto::DeleteGroupRequest>,
    ) -> Result<Response<proto::DeleteGroupResponse>, Status> {
        let caller = Caller::of(&request);
        let group_id = request.into_inner().group_id;
        let groups = &self.state.groups;
        let result = async {
            self.state
                .authorizer
                .group(caller.as_ref(), Operation::Delete, &group_id)?;
            let shard = groups.shard_for(&group_id).await?;
            groups
                .write(&shard, |shard| Ok(((), shard.delete_group(&group_id)?)))
                .await
        }
        .await
        .map(|()| proto::DeleteGroupResponse {
            error_code: 0,
            error_message: String::new(),
        });
        reply(result)
    }
}
