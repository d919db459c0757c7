//! KIP-848 consumer groups through the Kafka door: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, on the same shard heartbeat the gRPC door's `ConsumerGroupHeartbeat`
//! makes (server-side assignment, member epochs, `uniform` and `range` assignors). A group
//! joined by a Kafka client and one joined by `strata consume` are the same kind of group and
//! can share members.
//!
//! What Kafka's messages carry and Strata's do not is settled here: topics are named by id in
//! assignments (see [`super::super::topic_ids`]), the session timeout is the broker's (Kafka's
//! `group.consumer.session.timeout.ms`) rather than the member's, and a member may bring its own
//! id when it joins (KIP-1082, version 1) or rejoins after being fenced.

use super::{code, group_id, text};
use crate::error::PartitionError;
use crate::kafka::KafkaDoor;
use crate::kafka::topic_ids::{kafka_topic_id, topic_by_id};
use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, DescribedGroup, Member,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as heartbeat, Assignment};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
};
use strata_auth::Operation;
use strata_common::ErrorCode;
use strata_controller::MetadataState;
use strata_coordinator::shard::{JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH};
use strata_proto::v1 as proto;
use uuid::Uuid;

/// Kafka's default `group.consumer.session.timeout.ms`: ConsumerGroupHeartbeat carries no
/// session timeout, the broker decides it (clamped into the coordinator's allowed range).
const CONSUMER_SESSION_TIMEOUT_MS: i32 = 45_000;

/// A member id longer than this is refused: it is stored in the group's record and repeated in
/// every answer, and Kafka's own ids (KIP-1082's base64 UUIDs, or the gRPC door's 32 hex
/// digits) are far shorter.
const MEMBER_ID_MAX_BYTES: usize = 255;

/// ConsumerGroupDescribe's member type of a KIP-848 member (0 is a classic member).
const CONSUMER_MEMBER: i8 = 1;

fn invalid(message: impl Into<String>) -> PartitionError {
    PartitionError::new(ErrorCode::InvalidRequest, message)
}

/// Refuses what Kafka's coordinator refuses before looking at the group, so a client mistake
/// gets INVALID_REQUEST rather than an odd membership.
fn check(request: &ConsumerGroupHeartbeatRequest) -> Result<(), PartitionError> {
    if request.member_id.len() > MEMBER_ID_MAX_BYTES {
        return Err(invalid(format!(
            "member id is {} bytes; at most {MEMBER_ID_MAX_BYTES} are accepted",
            request.member_id.len()
        )));
    }
    if request.instance_id.as_ref().is_some_and(|id| id.is_empty()) {
        return Err(invalid("instance id must be null or non-empty"));
    }
    // Kafka 4's broker-side regex (version 1) would need the pattern kept with the member and
    // re-evaluated as topics come and go; the coordinator keeps topic names only. Clients that
    // subscribe to a pattern with the classic protocol, or resolve it themselves, still work.
    if request
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|regex| !regex.is_empty())
    {
        return Err(invalid(
            "server-side regex subscriptions are not supported by Strata; subscribe to topic \
             names (or use group.protocol=classic for a pattern)",
        ));
    }
    match request.member_epoch {
        JOIN_EPOCH => {
            if request.rebalance_timeout_ms < 0 {
                return Err(invalid("a joining member must give its rebalance timeout"));
            }
            if request.subscribed_topic_names.is_none() {
                return Err(invalid(
                    "a joining member must give its subscribed topic names",
                ));
            }
            if request
                .topic_partitions
                .as_ref()
                .is_some_and(|owned| !owned.is_empty())
            {
                return Err(invalid("a joining member owns no partitions yet"));
            }
        }
        LEAVE_EPOCH | STATIC_LEAVE_EPOCH if request.member_id.is_empty() => {
            return Err(invalid("a leaving member must give its member id"));
        }
        epoch if epoch < STATIC_LEAVE_EPOCH => {
            return Err(invalid(format!("member epoch {epoch} is not valid")));
        }
        epoch if epoch > 0 && request.member_id.is_empty() => {
            return Err(invalid("a member must give its member id"));
        }
        _ => {}
    }
    Ok(())
}

/// `(topic, partitions)` pairs named by topic id; topics the metadata no longer has (deleted
/// since) are left out, as no client can consume them.
fn by_topic_id<'a>(
    state: &'a MetadataState,
    partitions: impl IntoIterator<Item = (&'a String, Vec<i32>)>,
) -> impl Iterator<Item = (Uuid, &'a str, Vec<i32>)> {
    partitions.into_iter().filter_map(|(topic, partitions)| {
        let metadata = state.topic(topic)?;
        Some((kafka_topic_id(metadata), metadata.name.as_str(), partitions))
    })
}

/// A member's partitions grouped by topic, in the coordinator's (sorted) order.
fn grouped(
    partitions: &strata_coordinator::Assignment,
) -> std::collections::BTreeMap<&String, Vec<i32>> {
    let mut topics = std::collections::BTreeMap::<&String, Vec<i32>>::new();
    for partition in partitions {
        topics
            .entry(&partition.topic)
            .or_default()
            .push(partition.partition);
    }
    topics
}

impl KafkaDoor {
    pub(super) async fn consumer_group_heartbeat(
        &self,
        request: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        match self.consumer_heartbeat(request).await {
            Ok(response) => response,
            Err(error) => ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code(error.code))
                .with_error_message(Some(text(error.message))),
        }
    }

    async fn consumer_heartbeat(
        &self,
        request: ConsumerGroupHeartbeatRequest,
    ) -> Result<ConsumerGroupHeartbeatResponse, PartitionError> {
        check(&request)?;
        let state = self.metadata_state();
        let leaving = matches!(request.member_epoch, LEAVE_EPOCH | STATIC_LEAVE_EPOCH);
        // Version 1 clients make their member id up (KIP-1082); version 0 clients are given
        // one. Either keeps it for life and rejoins with it after being fenced, so a joining
        // id is taken as the client gives it (as Kafka's coordinator does): the member takes
        // its own place back instead of its old self holding partitions until its session
        // runs out.
        let joining_member_id = if !request.member_id.is_empty() {
            request.member_id.to_string()
        } else {
            crate::grpc::new_member_id()
        };
        let config = self.state.groups.coordinator_config();
        let session_timeout_ms = CONSUMER_SESSION_TIMEOUT_MS
            .clamp(config.min_session_timeout_ms, config.max_session_timeout_ms);
        let owned = request.topic_partitions.as_ref().map(|owned| {
            owned
                .iter()
                .filter_map(|topic| {
                    // An id no topic has any more: the member cannot consume it, so there is
                    // nothing for the coordinator to wait for it to release.
                    let found = topic_by_id(&state, topic.topic_id)?;
                    Some(proto::TopicPartitions {
                        topic: found.name.clone(),
                        partitions: topic.partitions.clone(),
                    })
                })
                .collect::<Vec<_>>()
        });
        let heartbeat = proto::ConsumerGroupHeartbeatRequest {
            group_id: request.group_id.0.to_string(),
            member_id: request.member_id.to_string(),
            member_epoch: request.member_epoch,
            group_instance_id: request
                .instance_id
                .as_ref()
                .map(|id| id.to_string())
                .unwrap_or_default(),
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            session_timeout_ms,
            has_subscription: request.subscribed_topic_names.is_some(),
            subscribed_topic_names: request
                .subscribed_topic_names
                .iter()
                .flatten()
                .map(|topic| topic.0.to_string())
                .collect(),
            server_assignor: request
                .server_assignor
                .as_ref()
                .map(|name| name.to_string())
                .unwrap_or_default(),
            has_owned: owned.is_some(),
            owned_partitions: owned.unwrap_or_default(),
        };
        let answer = self
            .state
            .consumer_heartbeat(self.caller(), heartbeat, joining_member_id)
            .await?;
        let mut response = ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(text(answer.member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(answer.heartbeat_interval_ms);
        if !leaving {
            // Sent on every heartbeat, not only when it changed as Kafka's broker does: clients
            // take an unchanged assignment as no change, and nothing here has to remember
            // what each member was last told.
            let assignment = answer.assignment;
            let topics = by_topic_id(
                &state,
                assignment
                    .iter()
                    .map(|topic| (&topic.topic, topic.partitions.clone())),
            )
            .map(|(topic_id, _, partitions)| {
                heartbeat::TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)
            })
            .collect();
            response.assignment = Some(Assignment::default().with_topic_partitions(topics));
        }
        Ok(response)
    }

    pub(super) async fn consumer_group_describe(
        &self,
        request: ConsumerGroupDescribeRequest,
        version: i16,
    ) -> ConsumerGroupDescribeResponse {
        let mut groups = Vec::with_capacity(request.group_ids.len());
        for group in &request.group_ids {
            let mut described = match self.describe_consumer_group(group, version).await {
                Ok(described) => described,
                Err(error) => DescribedGroup::default()
                    .with_error_code(code(error.code))
                    .with_error_message(Some(text(error.message))),
            }
            .with_group_id(group.clone());
            if request.include_authorized_operations {
                described.authorized_operations = self.state.authorizer.authorized_operations(
                    self.caller(),
                    strata_auth::ResourceType::Group,
                    group,
                );
            }
            groups.push(described);
        }
        ConsumerGroupDescribeResponse::default().with_groups(groups)
    }

    async fn describe_consumer_group(
        &self,
        group: &str,
        version: i16,
    ) -> Result<DescribedGroup, PartitionError> {
        let not_found = |why: &str| {
            PartitionError::new(ErrorCode::GroupIdNotFound, format!("group '{group}' {why}"))
        };
        self.state
            .authorizer
            .group(self.caller(), Operation::Describe, group)?;
        let groups = &self.state.groups;
        let shard = groups.shard_for(group).await?;
        let description = groups
            .read(&shard, |shard| {
                if shard
                    .classic_group(group)
                    .is_some_and(|classic| classic.members().next().is_some())
                {
                    // As in Kafka: DescribeGroups describes it.
                    return Err(not_found("is a classic group, not a consumer group"));
                }
                match shard.describe(group) {
                    // Committed offsets and nothing else: Kafka's "simple" group, which is
                    // not a consumer group either.
                    Some(description)
                        if description.group.group_epoch == 0
                            && description.group.members.is_empty() =>
                    {
                        Err(not_found("has committed offsets only, no consumer group"))
                    }
                    Some(description) => Ok(description),
                    None => Err(not_found("does not exist")),
                }
            })
            .await??;
        let state = self.metadata_state();
        let assignment = |partitions: &strata_coordinator::Assignment| {
            let topics = by_topic_id(&state, grouped(partitions))
                .map(|(topic_id, name, partitions)| {
                    describe::TopicPartitions::default()
                        .with_topic_id(topic_id)
                        .with_topic_name(super::super::data::name(name))
                        .with_partitions(partitions)
                })
                .collect();
            describe::Assignment::default().with_topic_partitions(topics)
        };
        let group_state = description.group;
        let members = group_state
            .members
            .values()
            .map(|member| {
                let mut described = Member::default()
                    .with_member_id(text(member.member_id.clone()))
                    .with_instance_id(member.instance_id.clone().map(text))
                    .with_member_epoch(member.member_epoch)
                    // Not kept by the coordinator: a member's client id and host are not part
                    // of the group's stored state.
                    .with_client_id(text(""))
                    .with_client_host(text(""))
                    .with_subscribed_topic_names(
                        member
                            .subscribed_topics
                            .iter()
                            .map(|topic| super::super::data::name(topic))
                            .collect(),
                    )
                    .with_assignment(assignment(&member.assigned))
                    .with_target_assignment(assignment(&member.target));
                if version >= 1 {
                    described.member_type = CONSUMER_MEMBER;
                }
                described
            })
            .collect();
        Ok(DescribedGroup::default()
            .with_group_id(group_id(group))
            .with_group_state(text(description.state.as_str()))
            .with_group_epoch(group_state.group_epoch)
            .with_assignment_epoch(group_state.assignment_epoch)
            .with_assignor_name(text(group_state.assignor.clone()))
            .with_members(members))
    }
}
