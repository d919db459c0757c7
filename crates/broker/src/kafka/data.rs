//! The data path through the Kafka door: Metadata, Produce, Fetch, ListOffsets,
//! InitProducerId and OffsetForLeaderEpoch, each translated onto the gRPC door's call.

use super::topic_ids::{UNKNOWN_TOPIC_ID, kafka_topic_id, topic_by_id};
use super::{KafkaDoor, Reply};
use crate::error::PartitionError;
use crate::replica_manager::Acks;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata_auth::Operation;
use strata_common::ErrorCode;
use strata_controller::MetadataState;
use strata_proto::v1 as proto;
use strata_proto::v1::broker_server::Broker;
use tonic::Status;

/// What this module serves (see `versions`). Produce and Fetch stop before the versions that
/// name topics by id only (Produce 13, Fetch 13), so clients name topics there, as with any
/// broker that predates topic ids; Metadata gives and takes topic ids ([`super::topic_ids`]).
/// ListOffsets
/// stops before version 7, which adds the max-timestamp query (-3) Strata does not answer.
pub(super) const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
];

/// A Strata error code as Kafka's (the numbers are Kafka's; see `strata_common::ErrorCode`).
pub(super) fn kafka_code(code: i32) -> i16 {
    i16::try_from(code).unwrap_or(ErrorCode::UnknownServerError.code() as i16)
}

/// The code a whole-request refusal of the gRPC door carries.
pub(super) fn status_code(status: &Status) -> i16 {
    let code = status
        .metadata()
        .get(crate::ERROR_CODE_METADATA)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .unwrap_or(ErrorCode::UnknownServerError.code());
    kafka_code(code)
}

pub(super) fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Splits a registered `host:port` (validated by the controller when the broker registered).
pub(super) fn host_and_port(address: &str) -> Option<(StrBytes, i32)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((StrBytes::from_string(host.to_string()), port.parse().ok()?))
}

/// Groups per-partition results, which arrive in request order, under their topics.
pub(super) fn by_topic<T, P>(
    results: impl IntoIterator<Item = (String, P)>,
    topic: impl Fn(TopicName, Vec<P>) -> T,
) -> Vec<T> {
    let mut grouped: Vec<(String, Vec<P>)> = Vec::new();
    for (name, partition) in results {
        match grouped.last_mut() {
            Some((last, partitions)) if *last == name => partitions.push(partition),
            _ => grouped.push((name, vec![partition])),
        }
    }
    grouped
        .into_iter()
        .map(|(topic_name, partitions)| topic(name(&topic_name), partitions))
        .collect()
}

impl KafkaDoor {
    pub(super) fn metadata_state(&self) -> std::sync::Arc<MetadataState> {
        // The same copy the gRPC door's Metadata serves: this node's view of the replicated
        // metadata, refreshed by clients on NOT_LEADER_OR_FOLLOWER.
        self.state.controller.metadata().borrow().clone()
    }

    /// Describe on `topic`: what metadata, offsets and epochs need.
    pub(super) fn may_describe(&self, topic: &str) -> Result<(), PartitionError> {
        self.state
            .authorizer
            .topic(self.caller(), Operation::Describe, topic)
    }

    pub(super) fn metadata(&self, request: MetadataRequest, version: i16) -> MetadataResponse {
        let state = self.metadata_state();
        let brokers = state
            .brokers
            .values()
            .filter(|broker| !broker.fenced)
            .filter_map(|broker| {
                let (host, port) = host_and_port(broker.kafka_address.as_deref()?)?;
                Some(
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(broker.broker_id))
                        .with_host(host)
                        .with_port(port),
                )
            })
            .collect();
        let fenced = |broker_id: i32| state.broker(broker_id).is_none_or(|broker| broker.fenced);
        let topic = |requested: &str| -> MetadataResponseTopic {
            let mut response = MetadataResponseTopic::default().with_name(Some(name(requested)));
            if version >= 1 {
                response.is_internal = requested.starts_with("__");
            }
            // Refused before existence is checked, so a caller cannot probe which topics exist.
            if let Err(refused) = self.may_describe(requested) {
                return response.with_error_code(partition_error_code(&refused));
            }
            let Some(topic) = state.topic(requested) else {
                return response.with_error_code(ErrorCode::UnknownTopicOrPartition.code() as i16);
            };
            if version >= 10 {
                response.topic_id = kafka_topic_id(topic);
            }
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let broker_ids =
                        |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
                    let offline: Vec<i32> = partition
                        .replicas
                        .iter()
                        .copied()
                        .filter(|&replica| fenced(replica))
                        .collect();
                    let mut response = MetadataResponsePartition::default()
                        .with_error_code(if partition.leader < 0 {
                            ErrorCode::LeaderNotAvailable.code() as i16
                        } else {
                            0
                        })
                        .with_partition_index(partition.partition)
                        .with_leader_id(BrokerId(partition.leader))
                        .with_replica_nodes(broker_ids(&partition.replicas))
                        .with_isr_nodes(broker_ids(&partition.isr));
                    if version >= 5 {
                        response.offline_replicas = broker_ids(&offline);
                    }
                    if version >= 7 {
                        response.leader_epoch = partition.leader_epoch;
                    }
                    response
                })
                .collect();
            response.with_partitions(partitions)
        };
        let topics = match request.topics {
            // Version 0 has no null: an empty list asks for every topic.
            Some(requested) if !(requested.is_empty() && version == 0) => requested
                .iter()
                .map(|requested| {
                    // Version 10 and later may name a topic by id (KIP-516), which then decides,
                    // as in Kafka; an id no topic has is answered with the id and no name.
                    let by_name = requested.topic_id.is_nil();
                    match requested.name.as_ref().filter(|_| by_name) {
                        Some(requested) => topic(requested.as_str()),
                        None => match topic_by_id(&state, requested.topic_id) {
                            Some(found) => match self.may_describe(&found.name) {
                                Ok(()) => topic(&found.name),
                                // Without its name: ids are easily guessed, so naming the topic
                                // would list what the caller may not describe (Kafka does the
                                // same).
                                Err(refused) => MetadataResponseTopic::default()
                                    .with_name(None)
                                    .with_topic_id(requested.topic_id)
                                    .with_error_code(partition_error_code(&refused)),
                            },
                            None => MetadataResponseTopic::default()
                                .with_name(None)
                                .with_topic_id(requested.topic_id)
                                .with_error_code(UNKNOWN_TOPIC_ID),
                        },
                    }
                })
                .collect(),
            // Every topic means every topic the caller may describe, as in Kafka.
            _ => state
                .topics
                .keys()
                .filter(|name| self.may_describe(name).is_ok())
                .map(|name| topic(name))
                .collect(),
        };
        let mut response = MetadataResponse::default()
            .with_brokers(brokers)
            .with_topics(topics);
        if version >= 1 {
            response.controller_id = BrokerId(self.state.controller.leader_id().unwrap_or(-1));
        }
        if version >= 2 {
            response.cluster_id = Some(StrBytes::from_string(state.cluster_id.clone()));
        }
        response
    }

    pub(super) async fn produce(&self, request: ProduceRequest, version: i16) -> Reply {
        let partitions: Vec<proto::PartitionRecords> = request
            .topic_data
            .into_iter()
            .flat_map(|topic| {
                let topic_name = topic.name.0.to_string();
                topic
                    .partition_data
                    .into_iter()
                    .map(move |partition| proto::PartitionRecords {
                        topic: topic_name.clone(),
                        partition: partition.index,
                        // A null record set is refused by validation as a corrupt batch.
                        records: partition.records.unwrap_or_default(),
                    })
            })
            .collect();
        let acks = match Acks::from_wire(i32::from(request.acks)) {
            Ok(acks) => acks,
            Err(error) => {
                let responses = partitions
                    .into_iter()
                    .map(|partition| proto::PartitionProduceResponse {
                        topic: partition.topic,
                        partition: partition.partition,
                        error_code: error.code.code(),
                        error_message: error.message.clone(),
                        base_offset: -1,
                        log_append_time: -1,
                        log_start_offset: -1,
                    })
                    .collect();
                return Reply::Respond(Box::new(ResponseKind::Produce(produce_response(
                    responses, version,
                ))));
            }
        };
        let completion = self
            .state
            .begin_produce(
                self.caller(),
                proto::ProduceRequest {
                    acks: i32::from(request.acks),
                    timeout_ms: request.timeout_ms,
                    partitions,
                    correlation_id: 0,
                },
                acks,
            )
            .await;
        let response = completion.await;
        if acks == Acks::None {
            return match response
                .partitions
                .iter()
                .find(|partition| partition.error_code != 0)
            {
                Some(failed) => Reply::Close(format!(
                    "an acks=0 produce to {}-{} failed: {}",
                    failed.topic, failed.partition, failed.error_message
                )),
                None => Reply::Silent,
            };
        }
        Reply::Respond(Box::new(ResponseKind::Produce(produce_response(
            response.partitions,
            version,
        ))))
    }

    pub(super) async fn fetch(&self, request: FetchRequest, version: i16) -> FetchResponse {
        // KIP-227 sessions are answered as sessionless: every response is full and names
        // session id 0, so clients keep sending full requests, which is what they are here.
        if request.session_id != 0 {
            return FetchResponse::default().with_error_code(FETCH_SESSION_ID_NOT_FOUND);
        }
        if request.session_epoch > 0 {
            return FetchResponse::default().with_error_code(INVALID_FETCH_SESSION_EPOCH);
        }
        let partitions: Vec<proto::FetchPartition> = request
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|partition| proto::FetchPartition {
                        topic: topic.topic.0.to_string(),
                        partition: partition.partition,
                        fetch_offset: partition.fetch_offset,
                        partition_max_bytes: partition.partition_max_bytes,
                    })
            })
            .collect();
        let requested = partitions.clone();
        let fetched = self
            .broker
            .fetch(self.request(proto::FetchRequest {
                max_wait_ms: request.max_wait_ms,
                min_bytes: request.min_bytes,
                // Version 3 and later carry a response limit; before it only partition limits.
                max_bytes: if request.max_bytes > 0 {
                    request.max_bytes
                } else {
                    i32::MAX
                },
                isolation_level: 0,
                partitions,
            }))
            .await;
        let fetched = match fetched {
            Ok(response) => response.into_inner().partitions,
            // Refused as a whole (a bad size, say): each partition carries the error, which every
            // version can say, where only version 7 and later have a top-level code.
            Err(status) => requested
                .into_iter()
                .map(|partition| proto::FetchPartitionResponse {
                    topic: partition.topic,
                    partition: partition.partition,
                    error_code: i32::from(status_code(&status)),
                    high_watermark: -1,
                    log_start_offset: -1,
                    last_stable_offset: -1,
                    ..Default::default()
                })
                .collect(),
        };
        let responses = by_topic(
            fetched.into_iter().map(|partition| {
                let mut data = PartitionData::default()
                    .with_partition_index(partition.partition)
                    .with_error_code(kafka_code(partition.error_code))
                    .with_high_watermark(partition.high_watermark)
                    .with_last_stable_offset(partition.last_stable_offset)
                    .with_records(Some(partition.records));
                if version >= 5 {
                    data.log_start_offset = partition.log_start_offset;
                }
                (partition.topic, data)
            }),
            |topic, partitions| {
                FetchableTopicResponse::default()
                    .with_topic(topic)
                    .with_partitions(partitions)
            },
        );
        FetchResponse::default().with_responses(responses)
    }

    pub(super) fn list_offsets(
        &self,
        request: ListOffsetsRequest,
        version: i16,
    ) -> ListOffsetsResponse {
        let results = request.topics.into_iter().flat_map(|topic| {
            let topic_name = topic.name.0.to_string();
            topic.partitions.into_iter().map(move |partition| {
                let found = self.may_describe(&topic_name).and_then(|()| {
                    self.state.replicas.list_offset(
                        &topic_name,
                        partition.partition_index,
                        partition.timestamp,
                    )
                });
                let leader_epoch = self
                    .state
                    .replicas
                    .partition(&topic_name, partition.partition_index)
                    .map_or(-1, |partition| partition.leader_epoch());
                let mut response = ListOffsetsPartitionResponse::default()
                    .with_partition_index(partition.partition_index);
                if version >= 4 {
                    response.leader_epoch = leader_epoch;
                }
                let response = match found {
                    Ok(Some(found)) => response
                        .with_offset(found.offset)
                        .with_timestamp(found.timestamp),
                    // Kafka answers "no record at or after that time" with offset -1, no error.
                    Ok(None) => response.with_offset(-1).with_timestamp(-1),
                    Err(error) => response
                        .with_error_code(partition_error_code(&error))
                        .with_offset(-1)
                        .with_timestamp(-1),
                };
                (topic_name.clone(), response)
            })
        });
        let topics = by_topic(results, |topic, partitions| {
            ListOffsetsTopicResponse::default()
                .with_name(topic)
                .with_partitions(partitions)
        });
        ListOffsetsResponse::default().with_topics(topics)
    }

    pub(super) fn init_producer_id(
        &self,
        request: InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        if request.transactional_id.is_some_and(|id| !id.0.is_empty()) {
            // Transactions come with exactly-once, after this wave.
            return InitProducerIdResponse::default()
                .with_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1);
        }
        match self
            .state
            .authorizer
            .idempotent_producer(self.caller())
            .and_then(|()| self.state.node.allocate_producer_id())
        {
            Ok(producer_id) => InitProducerIdResponse::default()
                .with_producer_id(producer_id.into())
                .with_producer_epoch(0),
            Err(error) => InitProducerIdResponse::default()
                .with_error_code(partition_error_code(&error))
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        }
    }

    pub(super) fn offset_for_leader_epoch(
        &self,
        request: OffsetForLeaderEpochRequest,
    ) -> OffsetForLeaderEpochResponse {
        let topics = request
            .topics
            .into_iter()
            .map(|topic| {
                let topic_name = topic.topic.0.to_string();
                let partitions = topic
                    .partitions
                    .into_iter()
                    .map(|partition| {
                        let response =
                            EpochEndOffset::default().with_partition(partition.partition);
                        // -1 is Kafka's "not checked": the partition's own epoch passes.
                        let current_leader_epoch = if partition.current_leader_epoch < 0 {
                            self.state
                                .replicas
                                .partition(&topic_name, partition.partition)
                                .map_or(-1, |partition| partition.leader_epoch())
                        } else {
                            partition.current_leader_epoch
                        };
                        let found = self.may_describe(&topic_name).and_then(|()| {
                            self.state.replicas.end_offset_for_epoch(
                                &topic_name,
                                partition.partition,
                                current_leader_epoch,
                                partition.leader_epoch,
                            )
                        });
                        match found {
                            Ok(Some((epoch, end_offset))) => response
                                .with_leader_epoch(epoch)
                                .with_end_offset(end_offset),
                            Ok(None) => response.with_leader_epoch(-1).with_end_offset(-1),
                            Err(error) => response
                                .with_error_code(partition_error_code(&error))
                                .with_leader_epoch(-1)
                                .with_end_offset(-1),
                        }
                    })
                    .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(topic.topic)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetForLeaderEpochResponse::default().with_topics(topics)
    }
}

pub(super) fn partition_error_code(error: &PartitionError) -> i16 {
    kafka_code(error.code.code())
}

fn produce_response(
    partitions: Vec<proto::PartitionProduceResponse>,
    version: i16,
) -> ProduceResponse {
    let responses = by_topic(
        partitions.into_iter().map(|partition| {
            let mut response = PartitionProduceResponse::default()
                .with_index(partition.partition)
                .with_error_code(kafka_code(partition.error_code))
                .with_base_offset(partition.base_offset)
                .with_log_append_time_ms(partition.log_append_time);
            if version >= 5 {
                response.log_start_offset = partition.log_start_offset;
            }
            if version >= 8 && !partition.error_message.is_empty() {
                response.error_message = Some(StrBytes::from_string(partition.error_message));
            }
            (partition.topic, response)
        }),
        |topic, partitions| {
            TopicProduceResponse::default()
                .with_name(topic)
                .with_partition_responses(partitions)
        },
    );
    ProduceResponse::default().with_responses(responses)
}

/// Kafka error codes with no `ErrorCode` of Strata's: they exist only on this door.
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
