//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs through the Kafka door, on the
//! gRPC door's DescribeConfigs and AlterConfigs calls.
//!
//! Topics have configs of their own (overrides) over the defaults; brokers have only the
//! defaults, fixed when the broker starts, so broker resources are described and never altered.
//! Kafka's two alter APIs differ in what they mean, not in what they can express here:
//! AlterConfigs replaces a topic's whole override set, IncrementalAlterConfigs changes the keys
//! it names. Both become the set/delete the gRPC door's AlterConfigs takes.

use super::{KafkaDoor, Refusal, error_fields, single_result, text};
use crate::topic_config::TopicConfig;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use strata_auth::Operation;
use strata_common::ErrorCode;
use strata_proto::v1 as proto;
use strata_proto::v1::admin_server::Admin;

/// Kafka's config resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Kafka's config sources.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;

/// Kafka's config types (DescribeConfigs version 3 and later).
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const INT: i8 = 3;
const LONG: i8 = 5;
const LIST: i8 = 7;

/// Each topic config as Kafka describes it: its type, and the broker setting whose value is its
/// default (Kafka lists it as the key's synonym, and under a broker resource).
const KAFKA_KEYS: &[(&str, i8, &str)] = &[
    ("cleanup.policy", LIST, "log.cleanup.policy"),
    ("compression.type", STRING, "compression.type"),
    ("flush.messages", LONG, "log.flush.interval.messages"),
    ("flush.ms", LONG, "log.flush.interval.ms"),
    ("index.interval.bytes", INT, "log.index.interval.bytes"),
    ("max.message.bytes", INT, "message.max.bytes"),
    (
        "message.timestamp.type",
        STRING,
        "log.message.timestamp.type",
    ),
    ("min.insync.replicas", INT, "min.insync.replicas"),
    ("retention.bytes", LONG, "log.retention.bytes"),
    ("retention.ms", LONG, "log.retention.ms"),
    ("segment.bytes", INT, "log.segment.bytes"),
    ("segment.index.bytes", INT, "log.index.size.max.bytes"),
    ("segment.ms", LONG, "log.roll.ms"),
    (
        "unclean.leader.election.enable",
        BOOLEAN,
        "unclean.leader.election.enable",
    ),
];

/// The type and broker setting of a topic config key; unknown keys (none, while
/// [`KAFKA_KEYS`] covers `TopicConfig`'s) have neither.
fn kafka_key(key: &str) -> (i8, Option<&'static str>) {
    KAFKA_KEYS
        .iter()
        .find(|(known, _, _)| *known == key)
        .map_or((0, None), |&(_, config_type, broker)| {
            (config_type, Some(broker))
        })
}

/// One config as Kafka describes it.
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) value: String,
    pub(super) source: i8,
    read_only: bool,
    config_type: i8,
    /// `(name, value, source)`, the value in effect first.
    synonyms: Vec<(String, String, i8)>,
}

impl Entry {
    /// A topic config, an override (`is_default` false) or the broker's default.
    fn topic(name: String, value: String, is_default: bool, default: &str) -> Entry {
        let (config_type, broker) = kafka_key(&name);
        let mut synonyms = Vec::new();
        if !is_default {
            synonyms.push((name.clone(), value.clone(), DYNAMIC_TOPIC_CONFIG));
        }
        if let Some(broker) = broker {
            synonyms.push((broker.to_string(), default.to_string(), DEFAULT_CONFIG));
        }
        Entry {
            name,
            value,
            source: if is_default {
                DEFAULT_CONFIG
            } else {
                DYNAMIC_TOPIC_CONFIG
            },
            read_only: false,
            config_type,
            synonyms,
        }
    }

    fn into_kafka(self, include_synonyms: bool, version: i16) -> DescribeConfigsResourceResult {
        let mut described = DescribeConfigsResourceResult::default()
            .with_name(text(self.name))
            .with_value(Some(text(self.value)))
            .with_read_only(self.read_only)
            .with_config_source(self.source)
            .with_is_sensitive(false);
        if include_synonyms {
            described.synonyms = self
                .synonyms
                .into_iter()
                .map(|(name, value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(text(name))
                        .with_value(Some(text(value)))
                        .with_source(source)
                })
                .collect();
        }
        if version >= 3 {
            described.config_type = self.config_type;
            // Kafka's documentation strings are not carried; null is what the field allows.
            described.documentation = None;
        }
        described
    }
}

/// Every topic config key with its default.
fn defaults() -> HashMap<String, String> {
    TopicConfig::describe(&BTreeMap::new())
        .into_iter()
        .map(|(name, value, _)| (name, value))
        .collect()
}

/// Every config of a topic with `overrides`, as CreateTopics (version 5 and later) lists them.
pub(super) fn topic_entries(overrides: &BTreeMap<String, String>) -> impl Iterator<Item = Entry> {
    let defaults = defaults();
    TopicConfig::describe(overrides)
        .into_iter()
        .map(move |(name, value, is_default)| {
            let default = defaults.get(&name).cloned().unwrap_or_default();
            Entry::topic(name, value, is_default, &default)
        })
}

/// A broker's configs: the broker settings that are the topic configs' defaults. They are
/// fixed when the broker starts, so read-only, and Kafka's static defaults, so DEFAULT_CONFIG.
fn broker_entries() -> impl Iterator<Item = Entry> {
    TopicConfig::describe(&BTreeMap::new())
        .into_iter()
        .filter_map(|(key, value, _)| {
            let (config_type, broker) = kafka_key(&key);
            let name = broker?.to_string();
            Some(Entry {
                synonyms: vec![(name.clone(), value.clone(), DEFAULT_CONFIG)],
                name,
                value,
                source: DEFAULT_CONFIG,
                read_only: true,
                config_type,
            })
        })
}

/// The refusal of a resource this door does not describe or alter.
fn unsupported_resource(resource_type: i8) -> Refusal {
    Refusal::new(
        ErrorCode::InvalidRequest,
        format!(
            "config resource type {resource_type} is not supported; Strata serves topics (2) \
             and brokers (4)"
        ),
    )
}

fn static_broker() -> Refusal {
    Refusal::new(
        ErrorCode::InvalidRequest,
        "broker configs are static in Strata (the defaults of the topic configs); alter the \
         topic's configs instead",
    )
}

/// One change IncrementalAlterConfigs asks for (AlterConfigs' become `Set`s and `Delete`s).
enum Change {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

impl Change {
    fn from_kafka(key: &str, operation: i8, value: Option<StrBytes>) -> Result<Change, Refusal> {
        let value = || {
            value
                .as_ref()
                .map(|value| value.to_string())
                .ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::InvalidRequest,
                        format!("operation {operation} on '{key}' needs a value"),
                    )
                })
        };
        Ok(match operation {
            0 => Change::Set(value()?),
            1 => Change::Delete,
            2 => Change::Append(value()?),
            3 => Change::Subtract(value()?),
            other => {
                return Err(Refusal::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "unknown config operation {other} on '{key}'; SET (0), DELETE (1), \
                         APPEND (2) and SUBTRACT (3) are Kafka's"
                    ),
                ));
            }
        })
    }
}

/// The list elements of a LIST config value.
fn elements(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|element| !element.is_empty())
        .map(str::to_string)
        .collect()
}

/// Turns `changes` to a topic with `current` overrides into the keys to set and to delete.
/// APPEND and SUBTRACT work on the value in effect (the default if not overridden), and only on
/// LIST configs, as in Kafka.
fn plan(
    current: &BTreeMap<String, String>,
    changes: Vec<(String, Change)>,
) -> Result<(BTreeMap<String, String>, Vec<String>), Refusal> {
    let mut seen = HashMap::new();
    for (key, _) in &changes {
        if seen.insert(key.as_str(), ()).is_some() {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                format!("config '{key}' appears more than once in the request"),
            ));
        }
    }
    let defaults = defaults();
    let (mut set, mut delete) = (BTreeMap::new(), Vec::new());
    for (key, change) in changes {
        let (value, adding) = match change {
            Change::Set(value) => {
                set.insert(key, value);
                continue;
            }
            Change::Delete => {
                delete.push(key);
                continue;
            }
            Change::Append(value) => (value, true),
            Change::Subtract(value) => (value, false),
        };
        if kafka_key(&key).0 != LIST {
            TopicConfig::check_keys(&BTreeMap::from([(key.clone(), value.clone())]))?;
            return Err(Refusal::new(
                ErrorCode::InvalidConfig,
                format!(
                    "'{key}' is not a list config: APPEND and SUBTRACT apply to list configs \
                     only; use SET"
                ),
            ));
        }
        let in_effect = current.get(&key).or_else(|| defaults.get(&key));
        let mut list = elements(in_effect.map_or("", String::as_str));
        let changed = elements(&value);
        if adding {
            for element in changed {
                if !list.contains(&element) {
                    list.push(element);
                }
            }
        } else {
            list.retain(|element| !changed.contains(element));
        }
        set.insert(key, list.join(","));
    }
    Ok((set, delete))
}

impl KafkaDoor {
    pub(super) async fn describe_configs(
        &self,
        request: DescribeConfigsRequest,
        version: i16,
    ) -> DescribeConfigsResponse {
        let topics: Vec<String> = request
            .resources
            .iter()
            .filter(|resource| resource.resource_type == TOPIC)
            .map(|resource| resource.resource_name.to_string())
            .collect();
        let described = if topics.is_empty() {
            Ok(HashMap::new())
        } else {
            self.admin()
                .describe_configs(self.request(proto::DescribeConfigsRequest { topics }))
                .await
                .map(|answer| {
                    let topics = answer.into_inner().topics;
                    topics
                        .into_iter()
                        .map(|topic| (topic.name.clone(), topic))
                        .collect()
                })
                .map_err(|status| Refusal::of_status(&status))
        };
        let node_id = self.state.replicas.node_id().to_string();
        let defaults = defaults();
        let include_synonyms = request.include_synonyms;
        let results = request
            .resources
            .into_iter()
            .map(|resource| {
                let name = resource.resource_name.to_string();
                let entries: Result<Vec<Entry>, Refusal> = match resource.resource_type {
                    TOPIC => match &described {
                        Ok(described) => match described.get(&name) {
                            Some(topic) if topic.error_code == 0 => Ok(topic
                                .entries
                                .iter()
                                .map(|entry| {
                                    let default = defaults.get(&entry.name);
                                    Entry::topic(
                                        entry.name.clone(),
                                        entry.value.clone(),
                                        entry.is_default,
                                        default.map_or("", String::as_str),
                                    )
                                })
                                .collect()),
                            Some(topic) => Err(Refusal {
                                code: super::kafka_code(topic.error_code),
                                message: topic.error_message.clone(),
                            }),
                            None => Err(Refusal::new(
                                ErrorCode::UnknownServerError,
                                format!("the description of '{name}' is missing"),
                            )),
                        },
                        Err(refusal) => Err(refusal.clone()),
                    },
                    // The empty name is the cluster-wide default, which is the same here.
                    BROKER if name.is_empty() || name == node_id => self
                        .state
                        .authorizer
                        .cluster(self.caller(), Operation::DescribeConfigs)
                        .map(|()| broker_entries().collect())
                        .map_err(Refusal::from),
                    BROKER => Err(Refusal::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "this is broker {node_id}; ask broker {name} for its configs, or \
                             name none for the cluster's defaults"
                        ),
                    )),
                    other => Err(unsupported_resource(other)),
                };
                // A null or empty key list asks for every key.
                let wanted = resource.configuration_keys.filter(|keys| !keys.is_empty());
                let result = DescribeConfigsResult::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name)
                    .with_error_message(None);
                match entries {
                    Ok(entries) => result.with_configs(
                        entries
                            .into_iter()
                            .filter(|entry| {
                                wanted.as_ref().is_none_or(|wanted| {
                                    wanted.iter().any(|key| key.as_str() == entry.name)
                                })
                            })
                            .map(|entry| entry.into_kafka(include_synonyms, version))
                            .collect(),
                    ),
                    Err(refusal) => result
                        .with_error_code(refusal.code)
                        .with_error_message(Some(text(refusal.message))),
                }
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    pub(super) async fn alter_configs(&self, request: AlterConfigsRequest) -> AlterConfigsResponse {
        let validate_only = request.validate_only;
        let results = request.resources.into_iter().map(|resource| async move {
            let configs = resource.configs;
            // Kafka's AlterConfigs replaces the whole override set: what the request leaves out
            // returns to its default. A null value sets nothing.
            let replace = |current: &BTreeMap<String, String>| {
                let mut changes: Vec<(String, Change)> = configs
                    .into_iter()
                    .filter_map(|config| {
                        Some((
                            config.name.to_string(),
                            Change::Set(config.value?.to_string()),
                        ))
                    })
                    .collect();
                let left_out: Vec<(String, Change)> = current
                    .keys()
                    .filter(|key| !changes.iter().any(|(named, _)| named == *key))
                    .map(|key| (key.clone(), Change::Delete))
                    .collect();
                changes.extend(left_out);
                Ok(changes)
            };
            let (error_code, error_message) = self
                .alter_resource(
                    resource.resource_type,
                    &resource.resource_name,
                    validate_only,
                    replace,
                )
                .await;
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(error_code)
                .with_error_message(error_message)
        });
        AlterConfigsResponse::default().with_responses(futures::future::join_all(results).await)
    }

    pub(super) async fn incremental_alter_configs(
        &self,
        request: IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let validate_only = request.validate_only;
        let results = request.resources.into_iter().map(|resource| async move {
            let configs = resource.configs;
            let changes = |_: &BTreeMap<String, String>| {
                configs
                    .into_iter()
                    .map(|config| {
                        let key = config.name.to_string();
                        Change::from_kafka(&key, config.config_operation, config.value)
                            .map(|change| (key, change))
                    })
                    .collect()
            };
            let (error_code, error_message) = self
                .alter_resource(
                    resource.resource_type,
                    &resource.resource_name,
                    validate_only,
                    changes,
                )
                .await;
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(error_code)
                .with_error_message(error_message)
        });
        IncrementalAlterConfigsResponse::default()
            .with_responses(futures::future::join_all(results).await)
    }

    /// Alters one config resource: a topic by `changes` to its current overrides, through the
    /// gRPC door; never a broker (see the module's documentation) or anything else.
    async fn alter_resource(
        &self,
        resource_type: i8,
        name: &str,
        validate_only: bool,
        changes: impl FnOnce(&BTreeMap<String, String>) -> Result<Vec<(String, Change)>, Refusal>,
    ) -> (i16, Option<StrBytes>) {
        let altered = match resource_type {
            TOPIC => {
                let current = self.overrides(name);
                match changes(&current) {
                    Ok(changes) => {
                        self.alter_topic(name.to_string(), &current, changes, validate_only)
                            .await
                    }
                    Err(refusal) => Err(refusal),
                }
            }
            BROKER => Err(static_broker()),
            other => Err(unsupported_resource(other)),
        };
        error_fields(&altered)
    }

    /// A topic's overrides as this broker's metadata has them; none for an unknown topic, which
    /// the gRPC door's call then refuses.
    fn overrides(&self, topic: &str) -> BTreeMap<String, String> {
        self.state
            .controller
            .metadata()
            .borrow()
            .topic(topic)
            .map(|topic| topic.configs.clone())
            .unwrap_or_default()
    }

    /// Applies `changes` to a topic whose overrides are `current`, through the gRPC door. The
    /// read of `current` and the change are not one step: a concurrent change to the same
    /// topic's configs can be overwritten, as with Kafka's read-modify-write clients.
    async fn alter_topic(
        &self,
        name: String,
        current: &BTreeMap<String, String>,
        changes: Vec<(String, Change)>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        let (set, delete) = plan(current, changes)?;
        let answer = self
            .admin()
            .alter_configs(self.request(proto::AlterConfigsRequest {
                topics: vec![proto::AlterTopicConfigs {
                    name,
                    set: set.into_iter().collect(),
                    delete,
                }],
                validate_only,
            }))
            .await
            .map(|answer| answer.into_inner().topics);
        single_result(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_config_key_has_its_kafka_type_and_broker_setting() {
        let keys: Vec<String> = TopicConfig::describe(&BTreeMap::new())
            .into_iter()
            .map(|(key, _, _)| key)
            .collect();
        let described: Vec<&str> = KAFKA_KEYS.iter().map(|(key, _, _)| *key).collect();
        assert_eq!(keys, described);
    }

    #[test]
    fn append_and_subtract_work_on_the_list_in_effect_and_only_on_lists() {
        let current = BTreeMap::new();
        let (set, delete) = plan(
            &current,
            vec![
                (
                    "cleanup.policy".to_string(),
                    Change::Append("compact".into()),
                ),
                ("retention.ms".to_string(), Change::Delete),
            ],
        )
        .unwrap();
        assert_eq!(set["cleanup.policy"], "delete,compact");
        assert_eq!(delete, vec!["retention.ms".to_string()]);
        let current = BTreeMap::from([("cleanup.policy".to_string(), "delete,compact".into())]);
        let (set, _) = plan(
            &current,
            vec![(
                "cleanup.policy".to_string(),
                Change::Subtract("compact".into()),
            )],
        )
        .unwrap();
        assert_eq!(set["cleanup.policy"], "delete");
        let refused = plan(
            &current,
            vec![("retention.ms".to_string(), Change::Append("1".into()))],
        )
        .unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidConfig.code() as i16);
    }
}
