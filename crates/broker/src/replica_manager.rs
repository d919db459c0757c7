//! The partitions this broker hosts and the produce and fetch paths into their logs (Kafka's
//! `ReplicaManager` and `Partition`).
//!
//! Invariant: a consumer never reads past a partition's high watermark, and the high watermark
//! never passes what `acks=all` has acknowledged. With a single replica the in-sync replica set
//! is the leader alone, so the high watermark is the log end offset; the replication issue
//! replaces `advance_high_watermark` with the minimum over the ISR.
//!
//! Logs do blocking file IO, so appends run on tokio's blocking pool; reads are memory-map
//! lookups and run inline.

use crate::error::PartitionError;
use crate::topic_config::TopicConfig;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, RwLock};
use strata_common::{ErrorCode, TopicPartition};
use strata_storage::{AppendInfo, Log, LogManager, ReadResult, StorageError, TimestampOffset};
use tokio::sync::watch;

/// `acks` as a producer asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    pub fn from_wire(acks: i32) -> Result<Acks, PartitionError> {
        match acks {
            0 => Ok(Acks::None),
            1 => Ok(Acks::Leader),
            -1 => Ok(Acks::All),
            other => Err(PartitionError::new(ErrorCode::InvalidRequiredAcks, format!("acks must be 0, 1 or -1 (all), got {other}"))),
        }
    }
}

pub struct Partition {
    topic_partition: TopicPartition,
    log: Arc<Log>,
    leader_epoch: i32,
    min_insync_replicas: AtomicI32,
    /// Published so fetches waiting for data wake as soon as it becomes readable.
    high_watermark: watch::Sender<i64>,
}

impl Partition {
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }
    /// The in-sync replicas: the leader alone until replication lands.
    pub fn in_sync_replica_count(&self) -> i32 {
        1
    }

    fn advance_high_watermark(&self) {
        let log_end_offset = self.log.log_end_offset();
        self.high_watermark.send_if_modified(|high_watermark| {
            let advanced = log_end_offset != *high_watermark;
            *high_watermark = log_end_offset;
            advanced
        });
    }
}

pub struct ReplicaManager {
    logs: Arc<LogManager>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
}

impl ReplicaManager {
    pub fn new(logs: Arc<LogManager>) -> ReplicaManager {
        ReplicaManager { logs, partitions: RwLock::new(HashMap::new()) }
    }

    pub fn logs(&self) -> &Arc<LogManager> {
        &self.logs
    }

    /// Opens (recovering if needed) the partition's log and starts leading it.
    pub fn become_leader(&self, topic_partition: TopicPartition, config: &TopicConfig, leader_epoch: i32) -> Result<Arc<Partition>, StorageError> {
        let (log, _) = self.logs.open_log(&topic_partition, config.log.clone())?;
        let high_watermark = log.log_end_offset();
        let partition = Arc::new(Partition {
            topic_partition: topic_partition.clone(),
            log,
            leader_epoch,
            min_insync_replicas: AtomicI32::new(config.min_insync_replicas),
            high_watermark: watch::Sender::new(high_watermark),
        });
        self.partitions.write().expect("partitions lock").insert(topic_partition, partition.clone());
        Ok(partition)
    }

    /// Stops hosting a partition; with `delete`, removes its data.
    pub fn remove_partition(&self, topic_partition: &TopicPartition, delete: bool) -> Result<(), StorageError> {
        self.partitions.write().expect("partitions lock").remove(topic_partition);
        if delete { self.logs.delete_log(topic_partition) } else { Ok(()) }
    }

    pub fn update_config(&self, topic_partition: &TopicPartition, config: &TopicConfig) -> Result<(), PartitionError> {
        let partition = self.partition(&topic_partition.topic, topic_partition.partition)?;
        partition.log.set_config(config.log.clone())?;
        partition.min_insync_replicas.store(config.min_insync_replicas, Ordering::Release);
        Ok(())
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>, PartitionError> {
        self.partitions
            .read()
            .expect("partitions lock")
            .get(&TopicPartition::new(topic, partition))
            .cloned()
            .ok_or_else(|| PartitionError::unknown_topic_or_partition(topic, partition))
    }

    /// Appends a producer's batches as leader and waits as `acks` asks.
    pub async fn append(&self, topic: &str, partition: i32, records: Bytes, acks: Acks) -> Result<AppendInfo, PartitionError> {
        let partition = self.partition(topic, partition)?;
        if acks == Acks::All {
            let required = partition.min_insync_replicas.load(Ordering::Acquire);
            let in_sync = partition.in_sync_replica_count();
            if in_sync < required {
                return Err(PartitionError::new(
                    ErrorCode::NotEnoughReplicas,
                    format!("{} has {in_sync} in-sync replica(s); min.insync.replicas is {required}", partition.topic_partition),
                ));
            }
        }
        let appending = partition.clone();
        let info = tokio::task::spawn_blocking(move || appending.log.append(records, appending.leader_epoch))
            .await
            .map_err(|error| PartitionError::new(ErrorCode::UnknownServerError, format!("append task failed: {error}")))??;
        partition.advance_high_watermark();
        Ok(info)
    }

    /// Whole batches from `offset`, up to the high watermark.
    pub fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: u64) -> Result<(ReadResult, i64), PartitionError> {
        let partition = self.partition(topic, partition)?;
        let high_watermark = partition.high_watermark();
        let read = partition.log.read(offset, max_bytes, Some(high_watermark))?;
        Ok((read, high_watermark))
    }

    /// Kafka's ListOffsets: -2 earliest, -1 latest (the high watermark), else the first offset at
    /// or after a timestamp (`None` when there is none below the high watermark).
    pub fn list_offset(&self, topic: &str, partition: i32, timestamp: i64) -> Result<Option<TimestampOffset>, PartitionError> {
        let partition = self.partition(topic, partition)?;
        match timestamp {
            -2 => Ok(Some(TimestampOffset { offset: partition.log.log_start_offset(), timestamp: -1 })),
            -1 => Ok(Some(TimestampOffset { offset: partition.high_watermark(), timestamp: -1 })),
            timestamp if timestamp >= 0 => {
                let found = partition.log.offset_for_timestamp(timestamp);
                Ok(found.filter(|found| found.offset < partition.high_watermark()))
            }
            other => Err(PartitionError::new(ErrorCode::InvalidRequest, format!("timestamp {other} is not -2 (earliest), -1 (latest) or a time in milliseconds"))),
        }
    }
}
