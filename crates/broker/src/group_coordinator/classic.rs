//! Classic-protocol groups on the coordinator: JoinGroup and SyncGroup wait here for the rest
//! of the group.
//!
//! The state machine is the shard's ([`strata_coordinator::classic`]); this only waits. A
//! request that must wait gets a ticket from the shard and sleeps on `classic_changed`, which
//! every classic operation and every expiry sweep bumps, then asks the shard for the ticket's
//! answer again. The shard guarantees an answer by the join phase's deadline or the leader's
//! session timeout (the sweep runs every `reconcile_interval_ms`), so the wait here is only a
//! backstop.
//!
//! Classic membership is in memory only: nothing is appended to `__consumer_offsets` for it, so
//! a new coordinator (a failover, or a reload after a failed write) starts with no classic
//! members. Kafka clients handle that as they handle any coordinator move: NOT_COORDINATOR or
//! UNKNOWN_MEMBER_ID makes them find the coordinator and rejoin, which costs one rebalance.
//! Committed offsets, which are what must survive, go through the shard's records like every
//! other group's. Storing membership would buy only that one rebalance, at the price of a
//! replicated write per join and sync.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::{Buf, Bytes};
use strata_common::TopicPartition;
use strata_coordinator::classic::ClassicGroup;

use strata_common::ErrorCode;
use strata_coordinator::classic::{Step, Ticket};
use strata_coordinator::{CoordinatorError, CoordinatorShard};

use super::{GroupCoordinator, LoadedShard, coordinator_error};
use crate::error::PartitionError;

/// How much longer than the shard's own deadline a request waits before giving up on it.
const WAIT_MARGIN: Duration = Duration::from_secs(5);

/// What a JoinGroup or SyncGroup ends with.
pub(crate) enum ClassicAnswer<T> {
    Done(T),
    /// KIP-394: the member joins again with this id.
    MemberIdRequired(String),
}

impl GroupCoordinator {
    fn classic_notify(&self) {
        self.classic_changed.send_modify(|version| *version += 1);
    }

    /// Runs a classic operation that changes no stored state, then wakes waiting requests.
    pub(crate) async fn classic<T>(
        &self,
        shard: &LoadedShard,
        operation: impl FnOnce(&mut CoordinatorShard, i64) -> Result<T, CoordinatorError>,
    ) -> Result<T, PartitionError> {
        let now_ms = self.now_ms();
        let answer = self
            .write(shard, |shard| Ok((operation(shard, now_ms)?, Vec::new())))
            .await;
        self.classic_notify();
        answer
    }

    /// Runs `start`; if it must wait, waits (at most `limit`) until `poll` has its ticket's
    /// answer.
    pub(crate) async fn classic_wait<T>(
        &self,
        shard: &LoadedShard,
        start: impl FnOnce(&mut CoordinatorShard, i64) -> Result<Step<T>, CoordinatorError>,
        poll: impl Fn(&mut CoordinatorShard, &Ticket) -> Option<Result<T, CoordinatorError>>,
        limit: Duration,
    ) -> Result<ClassicAnswer<T>, PartitionError> {
        // Subscribed before the operation, so no change after it is missed.
        let mut changed = self.classic_changed.subscribe();
        let ticket = match self.classic(shard, start).await? {
            Step::Done(answer) => return Ok(ClassicAnswer::Done(answer)),
            Step::MemberIdRequired(member_id) => {
                return Ok(ClassicAnswer::MemberIdRequired(member_id));
            }
            Step::Wait(ticket) => ticket,
        };
        let deadline = tokio::time::Instant::now() + limit + WAIT_MARGIN;
        loop {
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Err(PartitionError::new(
                    ErrorCode::RebalanceInProgress,
                    "the group did not complete its rebalance in time; rejoin",
                ));
            }
            if !shard.partition.is_leader() || shard.partition.leader_epoch() != shard.leader_epoch
            {
                return Err(PartitionError::new(
                    ErrorCode::NotCoordinator,
                    "this broker stopped coordinating the group; find the coordinator again",
                ));
            }
            let answer = self
                .write(shard, |shard| Ok((poll(shard, &ticket), Vec::new())))
                .await?;
            if let Some(answer) = answer {
                return answer.map(ClassicAnswer::Done).map_err(coordinator_error);
            }
        }
    }

    /// Session timeouts and join-phase deadlines of the shard's classic groups.
    pub(super) async fn classic_tick(&self, shard: &LoadedShard, now_ms: i64) {
        let changed = self
            .write(shard, |shard| Ok((shard.classic_tick(now_ms), Vec::new())))
            .await;
        if matches!(changed, Ok(true)) {
            self.classic_notify();
        }
    }
}

/// A reader of the consumer protocol's bytes (Kafka's `ConsumerProtocolSubscription` and
/// `ConsumerProtocolAssignment`, versions 0 to 3, which share the fields read here). They come
/// from clients, so every length is checked against what is left before anything is taken:
/// `kafka-protocol`'s decoders reserve whatever an array's count claims, which a hostile
/// client could make gigabytes.
struct ConsumerProtocolReader(Bytes);

impl ConsumerProtocolReader {
    /// Past the version, which only adds fields after the ones read here.
    fn new(bytes: &[u8]) -> Option<ConsumerProtocolReader> {
        let mut bytes = Bytes::copy_from_slice(bytes);
        (bytes.remaining() >= 2).then(|| bytes.get_i16())?;
        Some(ConsumerProtocolReader(bytes))
    }

    /// An array's count, if that many items of at least `item_bytes` each can follow.
    fn count(&mut self, item_bytes: usize) -> Option<usize> {
        if self.0.remaining() < 4 {
            return None;
        }
        let count = usize::try_from(self.0.get_i32()).ok()?;
        (count.checked_mul(item_bytes)? <= self.0.remaining()).then_some(count)
    }

    fn string(&mut self) -> Option<String> {
        if self.0.remaining() < 2 {
            return None;
        }
        let length = usize::try_from(self.0.get_i16()).ok()?;
        if length > self.0.remaining() {
            return None;
        }
        String::from_utf8(self.0.split_to(length).to_vec()).ok()
    }

    fn int32(&mut self) -> Option<i32> {
        (self.0.remaining() >= 4).then(|| self.0.get_i32())
    }

    /// The subscription's topics.
    fn topics(&mut self) -> Option<Vec<String>> {
        let count = self.count(2)?;
        (0..count).map(|_| self.string()).collect()
    }

    /// The assignment's partitions.
    fn partitions(&mut self) -> Option<Vec<TopicPartition>> {
        let count = self.count(6)?;
        let mut partitions = Vec::new();
        for _ in 0..count {
            let topic = self.string()?;
            let indexes = self.count(4)?;
            for _ in 0..indexes {
                partitions.push(TopicPartition::new(topic.clone(), self.int32()?));
            }
        }
        Some(partitions)
    }
}

/// The topics a classic consumer-protocol member subscribes to, read from its JoinGroup
/// metadata; nothing for other protocol types or metadata that does not parse.
fn subscribed_topics(protocol_type: Option<&str>, metadata: &[u8]) -> Vec<String> {
    (protocol_type == Some("consumer"))
        .then(|| ConsumerProtocolReader::new(metadata)?.topics())
        .flatten()
        .unwrap_or_default()
}

/// The partitions a classic consumer-protocol member was assigned; nothing for other protocol
/// types or assignments that do not parse.
fn assigned_partitions(protocol_type: Option<&str>, assignment: &[u8]) -> Vec<TopicPartition> {
    (protocol_type == Some("consumer"))
        .then(|| ConsumerProtocolReader::new(assignment)?.partitions())
        .flatten()
        .unwrap_or_default()
}

/// Every topic the members of a classic group consume.
pub(crate) fn classic_subscriptions(group: &ClassicGroup) -> BTreeSet<String> {
    let protocol = group.protocol_name().unwrap_or_default();
    group
        .members()
        .flat_map(|member| {
            subscribed_topics(
                group.protocol_type(),
                member.metadata(protocol).unwrap_or_default(),
            )
        })
        .collect()
}

/// A classic member's assignment as topic partitions, for `strata group describe`.
pub(crate) fn classic_assignment(group: &ClassicGroup, assignment: &[u8]) -> Vec<TopicPartition> {
    assigned_partitions(group.protocol_type(), assignment)
}

/// A classic member's subscription, for `strata group describe`.
pub(crate) fn classic_subscription(group: &ClassicGroup, metadata: &[u8]) -> Vec<String> {
    subscribed_topics(group.protocol_type(), metadata)
}
