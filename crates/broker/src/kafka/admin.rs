//! Topic and cluster administration through the Kafka door: CreateTopics, DeleteTopics,
//! CreatePartitions, DeleteRecords and DescribeCluster here, the config APIs in [`configs`].
//!
//! Topic changes go through the gRPC door's admin calls, one call per topic so each topic gets
//! its own result and its own bound (the request's `timeout_ms`, as on the gRPC door); this
//! module adds only what Kafka's messages carry and Strata's do not: broker defaults (-1),
//! duplicate names, manual replica assignments (refused: the controller places replicas), topic
//! ids (Strata's own, read as Kafka UUIDs: see [`super::topic_ids`]).

mod configs;

use super::KafkaDoor;
use super::data::{kafka_code, status_code};
use super::topic_ids::{UNKNOWN_TOPIC_ID, kafka_topic_id, topic_by_id};
use crate::client_boundary::{TopicAction, check_topic_action};
use crate::error::PartitionError;
use crate::grpc;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeClusterRequest, DescribeClusterResponse, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use strata_auth::Operation;
use strata_common::ErrorCode;
use strata_proto::v1 as proto;
use strata_proto::v1::admin_server::Admin;
use uuid::Uuid;

/// What this module serves (see `versions`): every version of these APIs `kafka-protocol`
/// decodes, which covers what librdkafka 2.x, kafka-python and Java 3.x/4.x negotiate.
/// DescribeConfigs starts at 1 because the codec does (Kafka 4 dropped version 0).
pub(super) const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
];

/// Kafka's broker defaults for a CreateTopics that asks for them with -1 (`num.partitions`,
/// `default.replication.factor`); Strata has no settings of its own for them yet.
const DEFAULT_NUM_PARTITIONS: i32 = 1;
const DEFAULT_REPLICATION_FACTOR: i32 = 1;

/// Kafka error codes with no `ErrorCode` of Strata's: they exist only on this door.
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 119;

/// DescribeCluster's endpoint type of brokers (the other, 2, is controllers, which Strata does
/// not expose to clients).
const BROKER_ENDPOINT: i8 = 1;

/// Why one topic, partition or resource of an admin request failed, in Kafka's terms.
#[derive(Clone, Debug)]
struct Refusal {
    code: i16,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code: kafka_code(code.code()),
            message: message.into(),
        }
    }

    /// A failed result of the gRPC door's admin calls; `None` for success.
    fn of_result(result: &proto::TopicResult) -> Option<Refusal> {
        (result.error_code != 0).then(|| Refusal {
            code: kafka_code(result.error_code),
            message: result.error_message.clone(),
        })
    }

    /// A gRPC call refused as a whole.
    fn of_status(status: &tonic::Status) -> Refusal {
        Refusal {
            code: status_code(status),
            message: status.message().to_string(),
        }
    }
}

impl From<PartitionError> for Refusal {
    fn from(error: PartitionError) -> Refusal {
        Refusal::new(error.code, error.message)
    }
}

/// The outcome of one topic's change through the gRPC door, from its single-topic answer.
fn single_result(answer: Result<Vec<proto::TopicResult>, tonic::Status>) -> Result<(), Refusal> {
    match answer {
        Ok(results) => match results.first().and_then(Refusal::of_result) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        },
        Err(status) => Err(Refusal::of_status(&status)),
    }
}

/// Handles the entries of a request concurrently and answers in request order. `handle` is told
/// whether the entry's key (a topic's name) is unique in the request: Kafka refuses every entry
/// of a topic named twice with INVALID_REQUEST rather than guess which one the client meant.
async fn each_unique<T, R, Handled: Future<Output = R>>(
    entries: Vec<T>,
    key: impl Fn(&T) -> String,
    handle: impl Fn(T, Result<(), Refusal>) -> Handled,
) -> Vec<R> {
    let keys: Vec<String> = entries.iter().map(key).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for key in &keys {
        *counts.entry(key.as_str()).or_default() += 1;
    }
    let unique: Vec<Result<(), Refusal>> = keys
        .iter()
        .map(|key| match counts[key.as_str()] {
            1 => Ok(()),
            _ => Err(Refusal::new(
                ErrorCode::InvalidRequest,
                format!("'{key}' appears more than once in the request"),
            )),
        })
        .collect();
    futures::future::join_all(
        entries
            .into_iter()
            .zip(unique)
            .map(|(entry, unique)| handle(entry, unique)),
    )
    .await
}

/// A result's error code and message as Kafka's responses carry them: no message on success.
fn error_fields<T>(outcome: &Result<T, Refusal>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(_) => (0, None),
        Err(refusal) => (refusal.code, Some(text(refusal.message.clone()))),
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// A topic as CreateTopics will create it: the counts with the defaults filled in.
struct NewTopic {
    name: String,
    num_partitions: i32,
    replication_factor: i32,
    configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// Refuses what the gRPC door's call cannot express; the rest is checked by that call.
    fn from_request(topic: CreatableTopic) -> Result<NewTopic, Refusal> {
        let name = topic.name.0.to_string();
        if !topic.assignments.is_empty() {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                format!(
                    "manual replica assignments for '{name}' are not supported: Strata's \
                     controller places replicas; give num_partitions and replication_factor"
                ),
            ));
        }
        let mut configs = BTreeMap::new();
        for config in topic.configs {
            let key = config.name.to_string();
            let Some(value) = config.value else {
                return Err(Refusal::new(
                    ErrorCode::InvalidConfig,
                    format!("null value not supported for topic config '{key}'"),
                ));
            };
            if configs.insert(key.clone(), value.to_string()).is_some() {
                return Err(Refusal::new(
                    ErrorCode::InvalidRequest,
                    format!("topic config '{key}' appears more than once"),
                ));
            }
        }
        let or_default = |requested: i32, default: i32| match requested {
            -1 => default,
            requested => requested,
        };
        Ok(NewTopic {
            name,
            num_partitions: or_default(topic.num_partitions, DEFAULT_NUM_PARTITIONS),
            replication_factor: or_default(
                i32::from(topic.replication_factor),
                DEFAULT_REPLICATION_FACTOR,
            ),
            configs,
        })
    }
}

impl KafkaDoor {
    /// Answers an admin request; hands back any other request.
    pub(super) async fn handle_admin_request(
        &self,
        request: RequestKind,
        version: i16,
    ) -> Result<ResponseKind, RequestKind> {
        Ok(match request {
            RequestKind::CreateTopics(body) => {
                ResponseKind::CreateTopics(self.create_topics(body, version).await)
            }
            RequestKind::DeleteTopics(body) => {
                ResponseKind::DeleteTopics(self.delete_topics(body, version).await)
            }
            RequestKind::CreatePartitions(body) => {
                ResponseKind::CreatePartitions(self.create_partitions(body).await)
            }
            RequestKind::DeleteRecords(body) => {
                ResponseKind::DeleteRecords(self.delete_records(body).await)
            }
            RequestKind::DescribeCluster(body) => {
                ResponseKind::DescribeCluster(self.describe_cluster(body, version))
            }
            RequestKind::DescribeConfigs(body) => {
                ResponseKind::DescribeConfigs(self.describe_configs(body, version).await)
            }
            RequestKind::AlterConfigs(body) => {
                ResponseKind::AlterConfigs(self.alter_configs(body).await)
            }
            RequestKind::IncrementalAlterConfigs(body) => {
                ResponseKind::IncrementalAlterConfigs(self.incremental_alter_configs(body).await)
            }
            other => return Err(other),
        })
    }

    /// The gRPC door's admin service, whose calls the handlers here make.
    pub(super) fn admin(&self) -> grpc::AdminService {
        grpc::AdminService::new(self.state.clone())
    }

    async fn create_topics(
        &self,
        request: CreateTopicsRequest,
        version: i16,
    ) -> CreateTopicsResponse {
        let (timeout_ms, validate_only) = (request.timeout_ms, request.validate_only);
        let topics = each_unique(
            request.topics,
            |topic| topic.name.0.to_string(),
            |topic, unique| async move {
                let name = topic.name.0.to_string();
                let created = match unique.and_then(|()| NewTopic::from_request(topic)) {
                    Ok(topic) => self.create_topic(topic, timeout_ms, validate_only).await,
                    Err(refusal) => Err(refusal),
                };
                // The created topic is in this broker's applied metadata once the call returns;
                // a validate-only request creates nothing and, as in Kafka, names no id.
                let topic_id = match (&created, validate_only) {
                    (Ok(_), false) => self
                        .state
                        .applied_metadata
                        .borrow()
                        .topic(&name)
                        .map_or(Uuid::nil(), kafka_topic_id),
                    _ => Uuid::nil(),
                };
                let mut result = created_result(&name, created, version);
                if version >= 7 {
                    result.topic_id = topic_id;
                }
                result
            },
        );
        CreateTopicsResponse::default().with_topics(topics.await)
    }

    async fn create_topic(
        &self,
        topic: NewTopic,
        timeout_ms: i32,
        validate_only: bool,
    ) -> Result<NewTopic, Refusal> {
        let answer = self
            .admin()
            .create_topics(self.request(proto::CreateTopicsRequest {
                topics: vec![proto::CreatableTopic {
                    name: topic.name.clone(),
                    num_partitions: topic.num_partitions,
                    replication_factor: topic.replication_factor,
                    configs: topic.configs.clone().into_iter().collect(),
                }],
                timeout_ms,
                validate_only,
            }))
            .await
            .map(|answer| answer.into_inner().topics);
        single_result(answer).map(|()| topic)
    }

    async fn delete_topics(
        &self,
        request: DeleteTopicsRequest,
        version: i16,
    ) -> DeleteTopicsResponse {
        // Version 6 names topics by name or by id; earlier ones by name only.
        let requested: Vec<(Option<String>, _)> = if version >= 6 {
            request
                .topics
                .into_iter()
                .map(|topic| (topic.name.map(|name| name.0.to_string()), topic.topic_id))
                .collect()
        } else {
            request
                .topic_names
                .into_iter()
                .map(|name| (Some(name.0.to_string()), Default::default()))
                .collect()
        };
        let timeout_ms = request.timeout_ms;
        let responses = each_unique(
            requested,
            |(name, topic_id)| name.clone().unwrap_or_else(|| topic_id.to_string()),
            |(name, topic_id), unique| async move {
                let (name, deleted) = match (unique, name) {
                    (Err(refusal), name) => (name, Err(refusal)),
                    (Ok(()), Some(name)) if !topic_id.is_nil() => (
                        Some(name),
                        Err(Refusal::new(
                            ErrorCode::InvalidRequest,
                            "a topic is named by its name or by its id, not both",
                        )),
                    ),
                    (Ok(()), Some(name)) => {
                        let deleted = self.delete_topic(&name, timeout_ms).await;
                        (Some(name), deleted)
                    }
                    // Named by id: answered with its name too, as Kafka does, unless the
                    // caller may not describe the topic (ids are easily guessed).
                    (Ok(()), None) => {
                        let found = topic_by_id(&self.metadata_state(), topic_id)
                            .map(|topic| topic.name.clone());
                        match found {
                            Some(name) => match self.may_describe(&name) {
                                Ok(()) => {
                                    let deleted = self.delete_topic(&name, timeout_ms).await;
                                    (Some(name), deleted)
                                }
                                Err(refused) => (None, Err(Refusal::from(refused))),
                            },
                            None => (
                                None,
                                Err(Refusal {
                                    code: UNKNOWN_TOPIC_ID,
                                    message: format!("no topic has id {topic_id}"),
                                }),
                            ),
                        }
                    }
                };
                let (error_code, error_message) = error_fields(&deleted);
                let mut result = DeletableTopicResult::default()
                    .with_name(name.map(|name| topic_name(&name)))
                    .with_error_code(error_code);
                if version >= 5 {
                    result.error_message = error_message;
                }
                if version >= 6 {
                    result.topic_id = topic_id;
                }
                result
            },
        );
        DeleteTopicsResponse::default().with_responses(responses.await)
    }

    async fn delete_topic(&self, name: &str, timeout_ms: i32) -> Result<(), Refusal> {
        let answer = self
            .admin()
            .delete_topics(self.request(proto::DeleteTopicsRequest {
                names: vec![name.to_string()],
                timeout_ms,
            }))
            .await
            .map(|answer| answer.into_inner().topics);
        single_result(answer)
    }

    async fn create_partitions(
        &self,
        request: CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let (timeout_ms, validate_only) = (request.timeout_ms, request.validate_only);
        let results = each_unique(
            request.topics,
            |topic| topic.name.0.to_string(),
            |topic, unique| async move {
                let name = topic.name.0.to_string();
                let assigned = topic
                    .assignments
                    .is_some_and(|assignments| !assignments.is_empty());
                let grown = match unique {
                    Err(refusal) => Err(refusal),
                    Ok(()) if assigned => Err(Refusal::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "manual replica assignments for the new partitions of '{name}' are \
                             not supported: Strata's controller places replicas"
                        ),
                    )),
                    Ok(()) => {
                        let answer = self
                            .admin()
                            .create_partitions(self.request(proto::CreatePartitionsRequest {
                                topics: vec![proto::PartitionsIncrease {
                                    name,
                                    count: topic.count,
                                }],
                                timeout_ms,
                                validate_only,
                            }))
                            .await
                            .map(|answer| answer.into_inner().topics);
                        single_result(answer)
                    }
                };
                let (error_code, error_message) = error_fields(&grown);
                CreatePartitionsTopicResult::default()
                    .with_name(topic.name)
                    .with_error_code(error_code)
                    .with_error_message(error_message)
            },
        );
        CreatePartitionsResponse::default().with_results(results.await)
    }

    async fn delete_records(&self, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
        let limit = grpc::change_timeout(request.timeout_ms);
        let topics = request.topics.into_iter().map(|topic| async move {
            let name = topic.name.0.to_string();
            let partitions = topic.partitions.into_iter().map(|partition| {
                let name = &name;
                async move {
                    let deleted = async {
                        self.state
                            .authorizer
                            .topic(self.caller(), Operation::Delete, name)?;
                        check_topic_action(name, TopicAction::DeleteRecords)?;
                        self.state
                            .replicas
                            .delete_records(name, partition.partition_index, partition.offset)
                            .await
                    };
                    let deleted = tokio::time::timeout(limit, deleted)
                        .await
                        .unwrap_or_else(|_| {
                            Err(PartitionError::new(
                                ErrorCode::RequestTimedOut,
                                format!(
                                    "the log of {name}-{} did not take the deletion within {} ms \
                                     (a slow disk?); it may still take effect",
                                    partition.partition_index,
                                    limit.as_millis()
                                ),
                            ))
                        });
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(partition.partition_index);
                    match deleted {
                        Ok(log_start_offset) => result.with_low_watermark(log_start_offset),
                        Err(error) => result
                            .with_low_watermark(-1)
                            .with_error_code(kafka_code(error.code.code())),
                    }
                }
            });
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(futures::future::join_all(partitions).await)
        });
        DeleteRecordsResponse::default().with_topics(futures::future::join_all(topics).await)
    }

    fn describe_cluster(
        &self,
        request: DescribeClusterRequest,
        version: i16,
    ) -> DescribeClusterResponse {
        if version >= 1 && request.endpoint_type != BROKER_ENDPOINT {
            return DescribeClusterResponse::default()
                .with_error_code(UNSUPPORTED_ENDPOINT_TYPE)
                .with_error_message(Some(text(format!(
                    "endpoint type {} is not served: Strata's Kafka listener describes brokers \
                     (type 1) only",
                    request.endpoint_type
                ))));
        }
        let include_fenced = version >= 2 && request.include_fenced_brokers;
        let state = self.state.controller.metadata().borrow().clone();
        let brokers = state
            .brokers
            .values()
            .filter(|broker| include_fenced || !broker.fenced)
            .filter_map(|broker| {
                // A broker without a Kafka listener cannot be reached by a Kafka client.
                let (host, port) = broker.kafka_address.as_deref()?.rsplit_once(':')?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let mut described = DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(broker.broker_id))
                    .with_host(text(host))
                    .with_port(port.parse().ok()?);
                if version >= 2 {
                    described.is_fenced = broker.fenced;
                }
                Some(described)
            })
            .collect();
        DescribeClusterResponse::default()
            .with_cluster_id(text(state.cluster_id.clone()))
            // The node Metadata names as controller, so the two answers agree.
            .with_controller_id(BrokerId(self.state.controller.leader_id().unwrap_or(-1)))
            .with_brokers(brokers)
            .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
                self.state.authorizer.authorized_operations(
                    self.caller(),
                    strata_auth::ResourceType::Cluster,
                    strata_auth::acl::CLUSTER_NAME,
                )
            } else {
                i32::MIN
            })
    }
}

/// CreateTopics' result for one topic. Versions 5 and later also describe the topic as created
/// (or as it would be, with `validate_only`): its counts and every config with its source.
fn created_result(
    name: &str,
    created: Result<NewTopic, Refusal>,
    version: i16,
) -> CreatableTopicResult {
    let result = CreatableTopicResult::default()
        .with_name(topic_name(name))
        .with_error_message(None);
    match created {
        Ok(topic) if version >= 5 => result
            .with_num_partitions(topic.num_partitions)
            .with_replication_factor(i16::try_from(topic.replication_factor).unwrap_or(i16::MAX))
            .with_configs(Some(
                configs::topic_entries(&topic.configs)
                    .map(|entry| {
                        CreatableTopicConfigs::default()
                            .with_name(text(entry.name))
                            .with_value(Some(text(entry.value)))
                            .with_config_source(entry.source)
                    })
                    .collect(),
            )),
        Ok(_) => result,
        Err(refusal) => result
            .with_error_code(refusal.code)
            .with_error_message(Some(text(refusal.message))),
    }
}
