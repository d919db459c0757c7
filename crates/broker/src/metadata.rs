//! The broker's view of the cluster: its identity, the topics and where their partitions live.
//!
//! Until the Raft controller lands this is a single-node store kept in the data directory
//! (`cluster-metadata`, a checksummed checkpoint holding JSON), and this node leads every
//! partition in leader epoch 0. Everything else in the broker asks this type, not the disk,
//! so the controller can replace it without touching the request paths.

use crate::error::{BrokerError, PartitionError};
use crate::topic_config::TopicConfig;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use strata_common::{ErrorCode, validate_topic_name};
use strata_storage::checkpoint;

const FILE_NAME: &str = "cluster-metadata";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct MetadataState {
    cluster_id: String,
    node_id: i32,
    topics: BTreeMap<String, TopicRecord>,
    /// The next idempotent-producer id to hand out; persisted before it is handed out.
    #[serde(default)]
    next_producer_id: i64,
}

pub struct LocalMetadata {
    path: PathBuf,
    state: RwLock<MetadataState>,
}

fn random_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl LocalMetadata {
    /// Loads the metadata of `data_dir`, or initialises it with a new cluster id. A data
    /// directory written by another node id is refused: its logs belong to that node.
    pub fn open(data_dir: &Path, node_id: i32) -> Result<LocalMetadata, BrokerError> {
        let path = data_dir.join(FILE_NAME);
        let state = match checkpoint::read(&path)? {
            Some(payload) => {
                let state: MetadataState = serde_json::from_slice(&payload).map_err(|error| {
                    BrokerError::Startup(format!(
                        "{} is not valid metadata: {error}",
                        path.display()
                    ))
                })?;
                if state.node_id != node_id {
                    return Err(BrokerError::Startup(format!(
                        "data directory {} belongs to node {}, not node {node_id}; use that node id or another directory",
                        data_dir.display(),
                        state.node_id
                    )));
                }
                state
            }
            None => {
                let state = MetadataState {
                    cluster_id: random_id(),
                    node_id,
                    topics: BTreeMap::new(),
                    next_producer_id: 0,
                };
                checkpoint::write(
                    &path,
                    &serde_json::to_vec(&state).expect("metadata serialises"),
                )?;
                state
            }
        };
        Ok(LocalMetadata {
            path,
            state: RwLock::new(state),
        })
    }

    pub fn cluster_id(&self) -> String {
        self.state.read().expect("metadata lock").cluster_id.clone()
    }

    pub fn topics(&self) -> Vec<TopicRecord> {
        self.state
            .read()
            .expect("metadata lock")
            .topics
            .values()
            .cloned()
            .collect()
    }

    pub fn topic(&self, name: &str) -> Option<TopicRecord> {
        self.state
            .read()
            .expect("metadata lock")
            .topics
            .get(name)
            .cloned()
    }

    fn persist(&self, state: &MetadataState) -> Result<(), PartitionError> {
        let payload = serde_json::to_vec(state).expect("metadata serialises");
        checkpoint::write(&self.path, &payload).map_err(PartitionError::from)
    }

    /// Validates a new topic against the rules and the live brokers; `commit` false only checks.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
        live_brokers: i32,
        commit: bool,
    ) -> Result<TopicRecord, PartitionError> {
        validate_topic_name(name)
            .map_err(|message| PartitionError::new(ErrorCode::InvalidTopicException, message))?;
        if partitions <= 0 {
            return Err(PartitionError::new(
                ErrorCode::InvalidPartitions,
                format!("a topic needs at least one partition, got {partitions}"),
            ));
        }
        if replication_factor <= 0 || replication_factor > live_brokers {
            return Err(PartitionError::new(
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "replication factor {replication_factor} must be between 1 and the {live_brokers} live broker(s)"
                ),
            ));
        }
        TopicConfig::resolve(&configs)?;
        let mut state = self.state.write().expect("metadata lock");
        if state.topics.contains_key(name) {
            return Err(PartitionError::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        let record = TopicRecord {
            name: name.to_string(),
            topic_id: random_id(),
            partitions,
            replication_factor,
            configs,
        };
        if commit {
            let mut next = state.clone();
            next.topics.insert(name.to_string(), record.clone());
            self.persist(&next)?;
            *state = next;
        }
        Ok(record)
    }

    /// A producer id never handed out before, on this cluster, even across restarts.
    pub fn allocate_producer_id(&self) -> Result<i64, PartitionError> {
        let mut state = self.state.write().expect("metadata lock");
        let mut next = state.clone();
        let producer_id = next.next_producer_id;
        next.next_producer_id += 1;
        self.persist(&next)?;
        *state = next;
        Ok(producer_id)
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicRecord, PartitionError> {
        let mut state = self.state.write().expect("metadata lock");
        let mut next = state.clone();
        let removed = next.topics.remove(name).ok_or_else(|| {
            PartitionError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )
        })?;
        self.persist(&next)?;
        *state = next;
        Ok(removed)
    }

    /// Applies config changes (set, then delete) after validating the result.
    pub fn alter_configs(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: &[String],
        commit: bool,
    ) -> Result<TopicRecord, PartitionError> {
        let mut state = self.state.write().expect("metadata lock");
        let mut next = state.clone();
        let topic = next.topics.get_mut(name).ok_or_else(|| {
            PartitionError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )
        })?;
        TopicConfig::check_keys(
            &delete
                .iter()
                .map(|key| (key.clone(), String::new()))
                .collect(),
        )?;
        topic.configs.extend(set);
        for key in delete {
            topic.configs.remove(key);
        }
        TopicConfig::resolve(&topic.configs)?;
        let record = topic.clone();
        if commit {
            self.persist(&next)?;
            *state = next;
        }
        Ok(record)
    }
}
