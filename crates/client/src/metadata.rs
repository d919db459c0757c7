//! The client's picture of the cluster: brokers, topics and who leads each partition.
//!
//! A [`MetadataSnapshot`] is immutable; refreshing builds a new one and swaps it in, so a reader
//! never sees a half-updated view and never holds a lock across an await.

use std::collections::BTreeMap;

use strata_common::{ErrorCode, TopicPartition};

use crate::descriptions::{BrokerNode, ClusterDescription, TopicDescription};
use crate::error::{Error, Result};

/// The leader of a partition and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Leader {
    pub node_id: i32,
    pub address: String,
}

/// One answer to a Metadata request, possibly merged with earlier answers for other topics.
#[derive(Clone, Debug, Default)]
pub(crate) struct MetadataSnapshot {
    pub cluster_id: String,
    pub controller_id: Option<i32>,
    pub brokers: BTreeMap<i32, BrokerNode>,
    /// A topic the broker reported an error for (e.g. it does not exist) maps to that error.
    pub topics: BTreeMap<String, Result<TopicDescription>>,
}

impl MetadataSnapshot {
    /// A snapshot with this response's brokers and topics, keeping the topics of `self` that the
    /// response does not mention (a request for some topics says nothing about the others).
    /// When `all_topics` is set the response lists every topic, so topics missing from it are
    /// dropped.
    pub fn merged(&self, response: MetadataSnapshot, all_topics: bool) -> MetadataSnapshot {
        let mut topics = if all_topics {
            BTreeMap::new()
        } else {
            self.topics.clone()
        };
        topics.extend(response.topics);
        MetadataSnapshot { topics, ..response }
    }

    /// Names of the topics that exist (not those the broker reported an error for).
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.topics
            .iter()
            .filter(|(_, description)| description.is_ok())
            .map(|(name, _)| name.as_str())
    }

    pub fn topic(&self, topic: &str) -> Option<&Result<TopicDescription>> {
        self.topics.get(topic)
    }

    /// The partition count of `topic`, when metadata knows the topic.
    pub fn partition_count(&self, topic: &str) -> Option<Result<i32>> {
        // Borrowed, not cloned: the producer asks this once per record.
        self.topics.get(topic).map(|description| match description {
            Ok(description) => Ok(description.partitions.len() as i32),
            Err(error) => Err(error.clone()),
        })
    }

    /// The leader of a partition, or why there is none. `None` when the topic is not in this
    /// snapshot at all, so the caller knows to ask the cluster.
    pub fn leader(&self, topic_partition: &TopicPartition) -> Option<Result<Leader>> {
        let description = match self.topics.get(&topic_partition.topic)? {
            Ok(description) => description,
            Err(error) => return Some(Err(error.clone())),
        };
        let Some(partition) = description
            .partitions
            .iter()
            .find(|info| info.partition == topic_partition.partition)
        else {
            return Some(Err(Error::broker(
                ErrorCode::UnknownTopicOrPartition,
                format!(
                    "topic '{}' has {} partitions; partition {} does not exist",
                    topic_partition.topic,
                    description.partitions.len(),
                    topic_partition.partition
                ),
            )));
        };
        let no_leader = || {
            Error::broker(
                ErrorCode::LeaderNotAvailable,
                format!("{topic_partition} has no leader at the moment"),
            )
        };
        let Some(leader_id) = partition.leader else {
            return Some(Err(no_leader()));
        };
        match self.brokers.get(&leader_id) {
            Some(broker) => Some(Ok(Leader {
                node_id: leader_id,
                address: broker.address.clone(),
            })),
            // The leader is not among the brokers listed: the view is inconsistent, so treat it
            // as an election in progress and let the caller refresh.
            None => Some(Err(no_leader())),
        }
    }

    pub fn description(&self) -> ClusterDescription {
        ClusterDescription {
            cluster_id: self.cluster_id.clone(),
            controller_id: self.controller_id,
            brokers: self.brokers.values().cloned().collect(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::descriptions::PartitionInfo;

    /// A snapshot of one broker (`h1:1`) and one topic whose partitions all have `leader`.
    pub(crate) fn snapshot(topic: &str, partitions: i32, leader: Option<i32>) -> MetadataSnapshot {
        let mut brokers = BTreeMap::new();
        brokers.insert(
            1,
            BrokerNode {
                node_id: 1,
                address: "h1:1".into(),
                fenced: false,
                offline_log_dirs: Vec::new(),
            },
        );
        let mut topics = BTreeMap::new();
        topics.insert(
            topic.to_string(),
            Ok(TopicDescription {
                name: topic.to_string(),
                partitions: (0..partitions)
                    .map(|partition| PartitionInfo {
                        partition,
                        leader,
                        leader_epoch: 0,
                        replicas: vec![1],
                        isr: vec![1],
                    })
                    .collect(),
            }),
        );
        MetadataSnapshot {
            cluster_id: "c".into(),
            controller_id: Some(1),
            brokers,
            topics,
        }
    }

    #[test]
    fn leader_lookup_distinguishes_missing_unknown_and_leaderless() {
        let metadata = snapshot("t", 2, Some(1));
        let leader = metadata
            .leader(&TopicPartition::new("t", 1))
            .expect("known")
            .expect("led");
        assert_eq!(
            leader,
            Leader {
                node_id: 1,
                address: "h1:1".into()
            }
        );
        assert!(metadata.leader(&TopicPartition::new("other", 0)).is_none());
        let error = metadata
            .leader(&TopicPartition::new("t", 5))
            .expect("known")
            .unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::UnknownTopicOrPartition));

        let leaderless = snapshot("t", 1, None);
        let error = leaderless
            .leader(&TopicPartition::new("t", 0))
            .expect("known")
            .unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::LeaderNotAvailable));
    }

    #[test]
    fn merging_keeps_topics_the_response_did_not_mention() {
        let first = snapshot("a", 1, Some(1));
        let merged = first.merged(snapshot("b", 2, Some(1)), false);
        assert_eq!(
            merged.partition_count("a").map(|count| count.ok()),
            Some(Some(1))
        );
        assert_eq!(
            merged.partition_count("b").map(|count| count.ok()),
            Some(Some(2))
        );
        let replaced = merged.merged(snapshot("b", 3, Some(1)), true);
        assert!(replaced.topic("a").is_none());
        assert_eq!(
            replaced.partition_count("b").map(|count| count.ok()),
            Some(Some(3))
        );
    }
}
