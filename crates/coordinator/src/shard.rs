//! All consumer groups of one `__consumer_offsets` partition: a pure state machine.
//!
//! Requests go in with the current time; records and answers come out. Every operation first
//! works out the records that describe its effect, then applies them with [`replay`] — the same
//! function a newly elected coordinator uses to load the partition — so the live state and the
//! loaded state cannot drift apart. The caller appends the records and answers the client only
//! once they are replicated; if that fails it throws the shard away and reloads it from the log.
//!
//! [`replay`]: CoordinatorShard::replay

use std::collections::{BTreeMap, BTreeSet, HashMap};
use strata_common::{ErrorCode, TopicPartition};

use crate::OFFSETS_TOPIC;
use crate::assignor::{Assignment, Assignor, AssignorMember};
use crate::classic::{
    ClassicGroup, ClassicLimits, ClassicState, JoinRequest, JoinResponse, Step, SyncRequest, Ticket,
};
use crate::records::{
    CoordinatorRecord, GroupOffsets, GroupState, MemberState, OffsetAndMetadata, ShareStateEntry,
};
use crate::share::{AckKind, DeadLetter, ShareCounts, ShareLimits, SharePartition};

/// Kafka's limit for the free-form metadata committed with an offset.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
const GROUP_ID_MAX_BYTES: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorError {
    pub code: ErrorCode,
    pub message: String,
}

impl CoordinatorError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> CoordinatorError {
        CoordinatorError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CoordinatorError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CoordinatorError {}

pub type Result<T> = std::result::Result<T, CoordinatorError>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// How often settled members heartbeat; members with a short session timeout are told to
    /// heartbeat more often (a third of their session timeout).
    pub heartbeat_interval_ms: i32,
    /// How often members that are moving partitions heartbeat, so a rebalance takes a few of
    /// these rather than a few heartbeat intervals.
    pub reconcile_interval_ms: i32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub default_assignor: Assignor,
    /// Kafka's `offsets.retention.minutes`: the committed offsets of a group with no members
    /// are deleted once the group has been empty, and the offset uncommitted, this long.
    pub offsets_retention_ms: i64,
    /// Kafka's `offsets.retention.check.interval.ms`: how often expired offsets are looked for.
    pub offsets_retention_check_interval_ms: i64,
    /// Kafka's `group.consumer.max.size`: the most members a consumer group may have; one more
    /// gets `GROUP_MAX_SIZE_REACHED`. Kafka's default is unbounded, but here every membership
    /// change writes the whole group as one `Group` record and recomputes the assignment, so
    /// the cost of each heartbeat grows with the group; 1,000 is far beyond any consumer group
    /// that makes sense for a topic's partitions and keeps that record in the hundreds of KB.
    pub max_group_size: usize,
    /// Kafka's `group.share.max.size` (and its default, 200): the most members a share group
    /// may have at once.
    pub max_share_group_size: usize,
    /// The most groups (consumer and share together) one shard holds. Kafka has no such limit;
    /// here every group of a shard is in memory and in each `Snapshot` record, which bounds
    /// the coordinator's memory and how long a new coordinator takes to load. A request that
    /// would create one more gets `INVALID_REQUEST` (not retriable: groups go only when deleted
    /// or expired, so retrying would not help) with a message naming this limit. Groups already
    /// in the log are always loaded, even past the limit.
    pub max_groups_per_shard: usize,
    /// Kafka's `group.initial.rebalance.delay.ms`: a classic group that was empty waits this
    /// long for more members before forming its first generation, so consumers started
    /// together do not rebalance once per member.
    pub classic_initial_rebalance_delay_ms: i32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            heartbeat_interval_ms: 1_000,
            reconcile_interval_ms: 100,
            min_session_timeout_ms: 500,
            max_session_timeout_ms: 300_000,
            default_assignor: Assignor::Uniform,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1_000,
            offsets_retention_check_interval_ms: 10 * 60 * 1_000,
            max_group_size: 1_000,
            max_share_group_size: 200,
            max_groups_per_shard: 10_000,
            classic_initial_rebalance_delay_ms: 3_000,
        }
    }
}

/// Member epochs with a meaning of their own (KIP-848).
pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscribed_topics: Option<BTreeSet<String>>,
    pub assignor: Option<String>,
    pub owned: Option<Assignment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Assignment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupStateName {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl GroupStateName {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStateName::Empty => "Empty",
            GroupStateName::Assigning => "Assigning",
            GroupStateName::Reconciling => "Reconciling",
            GroupStateName::Stable => "Stable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupStateName,
    pub group: GroupState,
    pub offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
}

/// A group in memory: its stored state plus timers, which are not stored (a new coordinator
/// gives every member a fresh session).
#[derive(Clone, Debug, Default)]
struct Group {
    state: Option<GroupState>,
    offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    session_deadlines: HashMap<String, i64>,
    revocation_deadlines: HashMap<String, i64>,
    /// When an offset-retention check first found the group without members. Not stored: a
    /// new coordinator starts counting again, which can only keep offsets longer.
    empty_since_ms: Option<i64>,
}

impl Group {
    fn has_members(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|state| !state.members.is_empty())
    }

    fn is_empty(&self) -> bool {
        self.state.is_none() && self.offsets.is_empty()
    }
}

/// A share group: its partitions' windows and, for `describe`, its members and counters (the
/// members and counters are not stored; a new coordinator starts them afresh).
#[derive(Clone, Debug, Default)]
struct ShareGroup {
    partitions: BTreeMap<TopicPartition, SharePartition>,
    members: BTreeMap<String, i64>,
    delivered: u64,
    acknowledged: u64,
    dead_lettered: u64,
}

/// A share group as `describe` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareGroupDescription {
    /// Member id and the time it last fetched.
    pub members: Vec<(String, i64)>,
    pub partitions: Vec<(TopicPartition, ShareCounts)>,
    pub delivered: u64,
    pub acknowledged: u64,
    pub dead_lettered: u64,
}

/// One acknowledgement of a share-group member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareAck {
    pub topic_partition: TopicPartition,
    pub offset: i64,
    pub kind: AckKind,
    pub reason: Option<String>,
}

/// A partition a share fetch may acquire from: its log start and high watermark now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareFetchPartition {
    pub topic_partition: TopicPartition,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// Acquired `(offset, delivery count)` pairs per partition.
pub type AcquiredRecords = Vec<(TopicPartition, Vec<(i64, u32)>)>;

/// A dead letter with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareDeadLetter {
    pub group_id: String,
    pub topic_partition: TopicPartition,
    pub dead_letter: DeadLetter,
}

/// Share-group members unseen for this long are dropped from `describe` and their records
/// released (their locks would expire anyway).
const SHARE_MEMBER_IDLE_MS: i64 = 60_000;

#[derive(Debug, Default)]
pub struct CoordinatorShard {
    config: CoordinatorConfig,
    groups: BTreeMap<String, Group>,
    share_groups: BTreeMap<String, ShareGroup>,
    /// Classic-protocol groups, in memory only: no record stores them, so a new coordinator
    /// starts without them and their members rejoin (their committed offsets are in `groups`).
    /// A group is dropped once it has no members.
    classic: BTreeMap<String, ClassicGroup>,
    /// When `expire_offsets` next looks; `None` until its first call.
    next_offsets_check_ms: Option<i64>,
}

fn settled(member: &MemberState, assignment_epoch: i32) -> bool {
    member.revoking.is_empty()
        && member.assigned == member.target
        && member.member_epoch == assignment_epoch
}

/// A member gets at least this many heartbeats into each session timeout.
const HEARTBEATS_PER_SESSION: i32 = 3;

/// The interval a member is told to heartbeat at: `configured`, but never more than a third of
/// its session timeout (Kafka's advice for `heartbeat.interval.ms`). A client sends its next
/// heartbeat the interval *after* the previous answer arrived, so an interval as long as the
/// session would let every session run out a round trip before the heartbeat that renews it,
/// and any expiry sweep in that gap would remove a healthy member and move its partitions.
fn heartbeat_interval_ms(configured: i32, session_timeout_ms: i32) -> i32 {
    configured
        .min(session_timeout_ms / HEARTBEATS_PER_SESSION)
        .max(1)
}

fn validate_group_id(group_id: &str) -> Result<()> {
    if group_id.is_empty() || group_id.len() > GROUP_ID_MAX_BYTES {
        return Err(CoordinatorError::new(
            ErrorCode::InvalidGroupId,
            format!("group id must be 1 to {GROUP_ID_MAX_BYTES} bytes long"),
        ));
    }
    Ok(())
}

impl CoordinatorShard {
    pub fn new(config: CoordinatorConfig) -> CoordinatorShard {
        CoordinatorShard {
            config,
            groups: BTreeMap::new(),
            share_groups: BTreeMap::new(),
            classic: BTreeMap::new(),
            next_offsets_check_ms: None,
        }
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Applies one record: the only way the shard's stored state changes.
    pub fn replay(&mut self, record: &CoordinatorRecord) {
        match record {
            CoordinatorRecord::OffsetCommit {
                group_id,
                topic_partition,
                value,
            } => {
                let group = self.groups.entry(group_id.clone()).or_default();
                match value {
                    Some(value) => {
                        group.offsets.insert(topic_partition.clone(), value.clone());
                    }
                    None => {
                        group.offsets.remove(topic_partition);
                    }
                }
                if group.is_empty() {
                    self.groups.remove(group_id);
                }
            }
            CoordinatorRecord::Group { group_id, value } => match value {
                Some(state) => {
                    let group = self.groups.entry(group_id.clone()).or_default();
                    group
                        .session_deadlines
                        .retain(|member_id, _| state.members.contains_key(member_id));
                    group.revocation_deadlines.retain(|member_id, _| {
                        state
                            .members
                            .get(member_id)
                            .is_some_and(|member| !member.revoking.is_empty())
                    });
                    group.state = Some(state.clone());
                }
                None => {
                    self.groups.remove(group_id);
                }
            },
            CoordinatorRecord::ShareState {
                group_id,
                topic_partition,
                value,
            } => {
                let group = self.share_groups.entry(group_id.clone()).or_default();
                match value {
                    Some(stored) => {
                        group
                            .partitions
                            .insert(topic_partition.clone(), SharePartition::from_stored(stored));
                    }
                    None => {
                        group.partitions.remove(topic_partition);
                    }
                }
                if group.partitions.is_empty() {
                    self.share_groups.remove(group_id);
                }
            }
            CoordinatorRecord::Snapshot {
                groups,
                offsets,
                share,
            } => {
                self.groups.clear();
                self.share_groups.clear();
                for entry in share {
                    self.share_groups
                        .entry(entry.group_id.clone())
                        .or_default()
                        .partitions
                        .insert(
                            entry.topic_partition.clone(),
                            SharePartition::from_stored(&entry.state),
                        );
                }
                for state in groups {
                    self.groups.entry(state.group_id.clone()).or_default().state =
                        Some(state.clone());
                }
                for group_offsets in offsets {
                    let group = self
                        .groups
                        .entry(group_offsets.group_id.clone())
                        .or_default();
                    group.offsets = group_offsets.offsets.iter().cloned().collect();
                }
            }
        }
    }

    fn apply(&mut self, records: &[CoordinatorRecord]) {
        for record in records {
            self.replay(record);
        }
    }

    /// A record holding the whole shard, to write and then cut the log before.
    pub fn snapshot(&self) -> CoordinatorRecord {
        CoordinatorRecord::Snapshot {
            groups: self
                .groups
                .values()
                .filter_map(|group| group.state.clone())
                .collect(),
            offsets: self
                .groups
                .iter()
                .filter(|(_, group)| !group.offsets.is_empty())
                .map(|(group_id, group)| GroupOffsets {
                    group_id: group_id.clone(),
                    offsets: group
                        .offsets
                        .iter()
                        .map(|(tp, offset)| (tp.clone(), offset.clone()))
                        .collect(),
                })
                .collect(),
            share: self
                .share_groups
                .iter()
                .flat_map(|(group_id, group)| {
                    group
                        .partitions
                        .iter()
                        .map(move |(topic_partition, partition)| ShareStateEntry {
                            group_id: group_id.clone(),
                            topic_partition: topic_partition.clone(),
                            state: partition.to_stored(),
                        })
                })
                .collect(),
        }
    }

    /// The KIP-848 heartbeat: join, stay, or leave; returns the member's current assignment.
    /// `new_member_id` is used if the request joins.
    pub fn heartbeat(
        &mut self,
        request: HeartbeatRequest,
        topic_partition_counts: &BTreeMap<String, i32>,
        new_member_id: &str,
        now_ms: i64,
    ) -> Result<(HeartbeatResponse, Vec<CoordinatorRecord>)> {
        validate_group_id(&request.group_id)?;
        if self.classic_has_members(&request.group_id) {
            return Err(CoordinatorError::new(
                ErrorCode::GroupIdNotFound,
                format!(
                    "group '{}' is a classic group with members, not a consumer group",
                    request.group_id
                ),
            ));
        }
        let assignor_name = match &request.assignor {
            Some(name) if !name.is_empty() => {
                if Assignor::from_name(name).is_none() {
                    return Err(CoordinatorError::new(
                        ErrorCode::UnsupportedAssignor,
                        format!(
                            "no assignor named '{name}'; choose one of {:?}",
                            Assignor::NAMES
                        ),
                    ));
                }
                Some(name.clone())
            }
            _ => None,
        };
        let group = self.groups.get(&request.group_id);
        let mut next = group
            .and_then(|group| group.state.clone())
            .unwrap_or_else(|| {
                GroupState::new(&request.group_id, self.config.default_assignor.name())
            });
        let before = group.and_then(|group| group.state.clone());

        let member_id = match request.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => {
                return self.leave(next, before, &request);
            }
            JOIN_EPOCH => {
                self.check_session_timeout(request.session_timeout_ms)?;
                self.check_room_for_group(&request.group_id)?;
                self.check_room_for_member(&next, &request)?;
                join(&mut next, &request, new_member_id)
            }
            epoch => {
                let Some(member) = next.members.get_mut(&request.member_id) else {
                    return Err(unknown_member(&request.group_id, &request.member_id));
                };
                if epoch != member.member_epoch && epoch != member.previous_member_epoch {
                    return Err(CoordinatorError::new(
                        ErrorCode::FencedMemberEpoch,
                        format!(
                            "member {} sent epoch {epoch} but its epoch is {}; it must rejoin",
                            request.member_id, member.member_epoch
                        ),
                    ));
                }
                member.left_temporarily = false;
                request.member_id.clone()
            }
        };

        {
            let member = next.members.get_mut(&member_id).expect("joined or known");
            if let Some(topics) = &request.subscribed_topics
                && *topics != member.subscribed_topics
            {
                member.subscribed_topics = topics.clone();
                next.group_epoch += 1;
            }
        }
        if let Some(name) = assignor_name
            && name != next.assignor
        {
            next.assignor = name;
            next.group_epoch += 1;
        }
        let subscribed: BTreeSet<&String> = next
            .members
            .values()
            .flat_map(|member| &member.subscribed_topics)
            .collect();
        let counts: BTreeMap<String, i32> = topic_partition_counts
            .iter()
            .filter(|(topic, _)| subscribed.contains(topic))
            .map(|(topic, count)| (topic.clone(), *count))
            .collect();
        if counts != next.partition_counts {
            next.partition_counts = counts;
            next.group_epoch += 1;
        }
        compute_target_if_stale(&mut next);
        reconcile(&mut next, &member_id, request.owned.as_ref());

        let member = &next.members[&member_id];
        let response = HeartbeatResponse {
            member_id: member_id.clone(),
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: heartbeat_interval_ms(
                if settled(member, next.assignment_epoch) {
                    self.config.heartbeat_interval_ms
                } else {
                    self.config.reconcile_interval_ms
                },
                member.session_timeout_ms,
            ),
            assignment: member.assigned.clone(),
        };
        let session_timeout = i64::from(member.session_timeout_ms);
        let revoking = !member.revoking.is_empty();
        let rebalance_timeout = i64::from(member.rebalance_timeout_ms);
        let records = if before.as_ref() != Some(&next) {
            vec![CoordinatorRecord::Group {
                group_id: request.group_id.clone(),
                value: Some(next),
            }]
        } else {
            Vec::new()
        };
        self.apply(&records);
        let group = self
            .groups
            .get_mut(&request.group_id)
            .expect("the group exists after a heartbeat");
        group
            .session_deadlines
            .insert(member_id.clone(), now_ms + session_timeout);
        if revoking {
            group
                .revocation_deadlines
                .entry(member_id)
                .or_insert(now_ms + rebalance_timeout);
        } else {
            group.revocation_deadlines.remove(&member_id);
        }
        Ok((response, records))
    }

    /// Refuses to create a group once the shard holds `max_groups_per_shard`.
    fn check_room_for_group(&self, group_id: &str) -> Result<()> {
        if self.groups.contains_key(group_id)
            || self.share_groups.contains_key(group_id)
            || self.classic.contains_key(group_id)
        {
            return Ok(());
        }
        let classic_only = self
            .classic
            .keys()
            .filter(|group_id| !self.groups.contains_key(*group_id))
            .count();
        let groups = self.groups.len() + self.share_groups.len() + classic_only;
        let max = self.config.max_groups_per_shard;
        if groups >= max {
            return Err(CoordinatorError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "cannot create group '{group_id}': its coordinator ({OFFSETS_TOPIC} partition) already holds {groups} groups and max_groups_per_shard is {max}; delete unused groups or raise the limit"
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a new member once the group has `max_group_size`. A static member taking its
    /// instance id back replaces the old holder, so it always fits.
    fn check_room_for_member(&self, group: &GroupState, request: &HeartbeatRequest) -> Result<()> {
        let replaces = request.instance_id.as_ref().is_some_and(|instance_id| {
            group
                .members
                .values()
                .any(|member| member.instance_id.as_ref() == Some(instance_id))
        });
        let max = self.config.max_group_size;
        if !replaces && group.members.len() >= max {
            return Err(CoordinatorError::new(
                ErrorCode::GroupMaxSizeReached,
                format!(
                    "group '{}' already has {} members and max_group_size is {max}",
                    group.group_id,
                    group.members.len()
                ),
            ));
        }
        Ok(())
    }

    fn check_session_timeout(&self, session_timeout_ms: i32) -> Result<()> {
        let (min, max) = (
            self.config.min_session_timeout_ms,
            self.config.max_session_timeout_ms,
        );
        if !(min..=max).contains(&session_timeout_ms) {
            return Err(CoordinatorError::new(
                ErrorCode::InvalidSessionTimeout,
                format!("session timeout {session_timeout_ms} ms is outside [{min}, {max}] ms"),
            ));
        }
        Ok(())
    }

    fn leave(
        &mut self,
        mut next: GroupState,
        before: Option<GroupState>,
        request: &HeartbeatRequest,
    ) -> Result<(HeartbeatResponse, Vec<CoordinatorRecord>)> {
        let temporary = request.member_epoch == STATIC_LEAVE_EPOCH;
        match next.members.get_mut(&request.member_id) {
            Some(member) if temporary && member.instance_id.is_some() => {
                member.left_temporarily = true;
            }
            Some(_) => {
                next.members.remove(&request.member_id);
                next.group_epoch += 1;
                compute_target_if_stale(&mut next);
            }
            // Leaving twice, or after being removed, is not an error.
            None => {}
        }
        let records = if before.as_ref() != Some(&next) && before.is_some() {
            vec![CoordinatorRecord::Group {
                group_id: request.group_id.clone(),
                value: Some(next),
            }]
        } else {
            Vec::new()
        };
        self.apply(&records);
        Ok((
            HeartbeatResponse {
                member_id: request.member_id.clone(),
                member_epoch: request.member_epoch,
                heartbeat_interval_ms: 0,
                assignment: Assignment::new(),
            },
            records,
        ))
    }

    /// Removes members whose session expired, and members that did not release revoked
    /// partitions within their rebalance timeout. Also starts sessions for members loaded from
    /// the log, which have none yet.
    pub fn expire_members(&mut self, now_ms: i64) -> Vec<CoordinatorRecord> {
        let mut records = Vec::new();
        for (group_id, group) in &mut self.groups {
            let Some(state) = &group.state else { continue };
            let mut next = state.clone();
            for (member_id, member) in &state.members {
                let session = *group
                    .session_deadlines
                    .entry(member_id.clone())
                    .or_insert(now_ms + i64::from(member.session_timeout_ms));
                let revocation = group.revocation_deadlines.get(member_id).copied();
                if session <= now_ms || revocation.is_some_and(|deadline| deadline <= now_ms) {
                    next.members.remove(member_id);
                }
            }
            if next.members.len() != state.members.len() {
                next.group_epoch += 1;
                compute_target_if_stale(&mut next);
                records.push(CoordinatorRecord::Group {
                    group_id: group_id.clone(),
                    value: Some(next),
                });
            }
        }
        self.apply(&records);
        records
    }

    /// Deletes the offsets of groups that have had no members, and no commit to the offset, for
    /// `offsets_retention_ms` (Kafka's KIP-211 rule); a memberless group is deleted with its
    /// last offset, or after the retention when it has none. Looks at most once per `offsets_retention_check_interval_ms`.
    pub fn expire_offsets(&mut self, now_ms: i64) -> Vec<CoordinatorRecord> {
        if self.next_offsets_check_ms.is_some_and(|next| now_ms < next) {
            return Vec::new();
        }
        self.next_offsets_check_ms = Some(now_ms + self.config.offsets_retention_check_interval_ms);
        let retention_ms = self.config.offsets_retention_ms;
        let mut records = Vec::new();
        for (group_id, group) in &mut self.groups {
            let classic_members = self
                .classic
                .get(group_id)
                .is_some_and(|classic| !classic.is_empty());
            if group.has_members() || classic_members {
                group.empty_since_ms = None;
                continue;
            }
            let empty_since = *group.empty_since_ms.get_or_insert(now_ms);
            let expired: Vec<&TopicPartition> = group
                .offsets
                .iter()
                .filter(|(_, offset)| {
                    now_ms - offset.commit_timestamp.max(empty_since) >= retention_ms
                })
                .map(|(topic_partition, _)| topic_partition)
                .collect();
            let nothing_left = expired.len() == group.offsets.len();
            // A group that never committed goes once it has been empty for the retention.
            if nothing_left && (!expired.is_empty() || now_ms - empty_since >= retention_ms) {
                records.push(CoordinatorRecord::Group {
                    group_id: group_id.clone(),
                    value: None,
                });
                continue;
            }
            records.extend(expired.into_iter().map(|topic_partition| {
                CoordinatorRecord::OffsetCommit {
                    group_id: group_id.clone(),
                    topic_partition: topic_partition.clone(),
                    value: None,
                }
            }));
        }
        self.apply(&records);
        records
    }

    /// Checks a commit against the group's membership. Returns the per-partition outcome and
    /// the records of the accepted ones.
    #[allow(clippy::type_complexity)]
    pub fn commit_offsets(
        &mut self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
    ) -> Result<(Vec<(TopicPartition, Result<()>)>, Vec<CoordinatorRecord>)> {
        validate_group_id(group_id)?;
        let group = self.groups.get(group_id);
        let classic = self.classic.get(group_id);
        let owner = if let Some(classic) = classic {
            // Assignment is the clients' own: any member of the generation commits anything.
            classic.check_commit(member_id, None, member_epoch)?;
            None
        } else if member_id.is_empty() && member_epoch < 0 {
            if group.is_none() {
                self.check_room_for_group(group_id)?;
            }
            if group.is_some_and(Group::has_members) {
                return Err(CoordinatorError::new(
                    ErrorCode::NonEmptyGroup,
                    format!(
                        "group '{group_id}' has active members; only they can commit (stop them to reset offsets)"
                    ),
                ));
            }
            None
        } else {
            let member = group
                .and_then(|group| group.state.as_ref())
                .and_then(|state| state.members.get(member_id))
                .ok_or_else(|| unknown_member(group_id, member_id))?;
            if member_epoch > member.member_epoch {
                return Err(CoordinatorError::new(
                    ErrorCode::FencedMemberEpoch,
                    format!(
                        "member {member_id} committed with epoch {member_epoch}; its epoch is {}",
                        member.member_epoch
                    ),
                ));
            }
            if member_epoch < member.member_epoch && member_epoch != member.previous_member_epoch {
                return Err(CoordinatorError::new(
                    ErrorCode::StaleMemberEpoch,
                    format!(
                        "member {member_id} committed with epoch {member_epoch}; its epoch is {}",
                        member.member_epoch
                    ),
                ));
            }
            Some(member)
        };
        let mut outcomes = Vec::new();
        let mut records = Vec::new();
        for (topic_partition, offset) in offsets {
            let outcome = if let Some(member) = owner
                && !member.assigned.contains(&topic_partition)
                && !member.revoking.contains(&topic_partition)
            {
                Err(CoordinatorError::new(
                    ErrorCode::StaleMemberEpoch,
                    format!(
                        "member {member_id} does not own {topic_partition} (its assignment changed)"
                    ),
                ))
            } else if offset.offset < 0 {
                Err(CoordinatorError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!("offset {} for {topic_partition} is negative", offset.offset),
                ))
            } else if offset.metadata.len() > OFFSET_METADATA_MAX_BYTES {
                Err(CoordinatorError::new(
                    ErrorCode::OffsetMetadataTooLarge,
                    format!(
                        "metadata is {} bytes; the limit is {OFFSET_METADATA_MAX_BYTES}",
                        offset.metadata.len()
                    ),
                ))
            } else {
                records.push(CoordinatorRecord::OffsetCommit {
                    group_id: group_id.to_string(),
                    topic_partition: topic_partition.clone(),
                    value: Some(offset),
                });
                Ok(())
            };
            outcomes.push((topic_partition, outcome));
        }
        self.apply(&records);
        Ok((outcomes, records))
    }

    /// Every group's committed offset of every partition, as (group, partition, offset).
    pub fn all_committed_offsets(&self) -> impl Iterator<Item = (&str, &TopicPartition, i64)> {
        self.groups.iter().flat_map(|(group_id, group)| {
            group
                .offsets
                .iter()
                .map(move |(partition, committed)| (group_id.as_str(), partition, committed.offset))
        })
    }

    /// Committed offsets of `partitions` (all committed ones when `None`).
    pub fn committed_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Vec<(TopicPartition, Option<OffsetAndMetadata>)> {
        let offsets = self.groups.get(group_id).map(|group| &group.offsets);
        match partitions {
            Some(partitions) => partitions
                .iter()
                .map(|tp| (tp.clone(), offsets.and_then(|o| o.get(tp)).cloned()))
                .collect(),
            None => offsets
                .into_iter()
                .flatten()
                .map(|(tp, offset)| (tp.clone(), Some(offset.clone())))
                .collect(),
        }
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let group = self.groups.get(group_id)?;
        let state = group
            .state
            .clone()
            .unwrap_or_else(|| GroupState::new(group_id, self.config.default_assignor.name()));
        Some(GroupDescription {
            state: state_name(&state),
            group: state,
            offsets: group.offsets.clone(),
        })
    }

    /// Every group: id, state and member count. Classic groups with members are listed by
    /// [`CoordinatorShard::classic_groups`] instead.
    pub fn list(&self) -> Vec<(String, GroupStateName, usize)> {
        self.groups
            .iter()
            .filter(|(group_id, _)| !self.classic_has_members(group_id))
            .map(|(group_id, group)| {
                let (state, members) = match &group.state {
                    Some(state) => (state_name(state), state.members.len()),
                    None => (GroupStateName::Empty, 0),
                };
                (group_id.clone(), state, members)
            })
            .collect()
    }

    /// Kafka's OffsetDelete: drops the group's committed offsets of `partitions`, except those
    /// of topics its members consume (the KIP-848 members' subscriptions, plus
    /// `classic_subscribed`, which the caller reads from the classic members' metadata).
    #[allow(clippy::type_complexity)]
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
        classic_subscribed: &BTreeSet<String>,
    ) -> Result<(Vec<(TopicPartition, Result<()>)>, Vec<CoordinatorRecord>)> {
        let Some(group) = self.groups.get(group_id) else {
            if self.classic.contains_key(group_id) {
                let outcomes = partitions
                    .into_iter()
                    .map(|partition| (partition, Ok(())))
                    .collect();
                return Ok((outcomes, Vec::new()));
            }
            return Err(CoordinatorError::new(
                ErrorCode::GroupIdNotFound,
                format!("group '{group_id}' does not exist"),
            ));
        };
        let subscribed: BTreeSet<&String> = group
            .state
            .iter()
            .flat_map(|state| state.members.values())
            .flat_map(|member| &member.subscribed_topics)
            .chain(classic_subscribed)
            .collect();
        let mut outcomes = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        for partition in partitions {
            if subscribed.contains(&partition.topic) {
                outcomes.push((
                    partition.clone(),
                    Err(CoordinatorError::new(
                        ErrorCode::GroupSubscribedToTopic,
                        format!(
                            "members of group '{group_id}' consume {}; stop them first",
                            partition.topic
                        ),
                    )),
                ));
                continue;
            }
            if group.offsets.contains_key(&partition) {
                records.push(CoordinatorRecord::OffsetCommit {
                    group_id: group_id.to_string(),
                    topic_partition: partition.clone(),
                    value: None,
                });
            }
            outcomes.push((partition, Ok(())));
        }
        self.apply(&records);
        Ok((outcomes, records))
    }

    /// Deletes an empty group with its offsets.
    pub fn delete_group(&mut self, group_id: &str) -> Result<Vec<CoordinatorRecord>> {
        if self.classic_has_members(group_id) {
            return Err(CoordinatorError::new(
                ErrorCode::NonEmptyGroup,
                format!("group '{group_id}' has active members; stop them first"),
            ));
        }
        let classic = self.classic.remove(group_id);
        let Some(group) = self.groups.get(group_id) else {
            if classic.is_some() {
                return Ok(Vec::new());
            }
            return Err(CoordinatorError::new(
                ErrorCode::GroupIdNotFound,
                format!("group '{group_id}' does not exist"),
            ));
        };
        if group.has_members() {
            return Err(CoordinatorError::new(
                ErrorCode::NonEmptyGroup,
                format!("group '{group_id}' has active members; stop them first"),
            ));
        }
        let records = vec![CoordinatorRecord::Group {
            group_id: group_id.to_string(),
            value: None,
        }];
        self.apply(&records);
        Ok(records)
    }
}

/// Classic-protocol groups ([`ClassicGroup`]): membership in memory, offsets in `groups`. A
/// group id is either classic or KIP-848: a classic member cannot join a consumer group that
/// has members (INCONSISTENT_GROUP_PROTOCOL) nor a KIP-848 member a classic group that has
/// members (GROUP_ID_NOT_FOUND), as in Kafka; an empty group of either kind may change kind.
impl CoordinatorShard {
    fn classic_limits(&self) -> ClassicLimits {
        ClassicLimits {
            min_session_timeout_ms: self.config.min_session_timeout_ms,
            max_session_timeout_ms: self.config.max_session_timeout_ms,
            max_group_size: self.config.max_group_size,
            initial_rebalance_delay_ms: self.config.classic_initial_rebalance_delay_ms,
        }
    }

    fn classic_has_members(&self, group_id: &str) -> bool {
        self.classic
            .get(group_id)
            .is_some_and(|group| !group.is_empty())
    }

    /// Runs `operation` on the classic group `group_id`, then drops the group if it is left
    /// without members.
    fn on_classic<T>(
        &mut self,
        group_id: &str,
        operation: impl FnOnce(&mut ClassicGroup, &ClassicLimits) -> Result<T>,
    ) -> Result<T> {
        let limits = self.classic_limits();
        let Some(group) = self.classic.get_mut(group_id) else {
            return Err(CoordinatorError::new(
                ErrorCode::UnknownMemberId,
                format!("classic group '{group_id}' has no members; join it first"),
            ));
        };
        let answer = operation(group, &limits);
        if group.is_empty() && group.state() == ClassicState::Empty {
            self.classic.remove(group_id);
        }
        answer
    }

    /// JoinGroup; see [`ClassicGroup::join`].
    pub fn classic_join(
        &mut self,
        group_id: &str,
        request: JoinRequest,
        new_member_id: &str,
        now_ms: i64,
    ) -> Result<Step<JoinResponse>> {
        validate_group_id(group_id)?;
        let consumer_members = self.groups.get(group_id).is_some_and(Group::has_members);
        if consumer_members || self.share_groups.contains_key(group_id) {
            return Err(CoordinatorError::new(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "group '{group_id}' is a {} group; classic members cannot join it",
                    if consumer_members {
                        "consumer"
                    } else {
                        "share"
                    }
                ),
            ));
        }
        if !self.classic.contains_key(group_id) {
            self.check_room_for_group(group_id)?;
            self.classic
                .insert(group_id.to_string(), ClassicGroup::new(group_id));
        }
        self.on_classic(group_id, |group, limits| {
            group.join(request, new_member_id, limits, now_ms)
        })
    }

    /// The answer of a JoinGroup that waited with `ticket`, once there is one.
    pub fn classic_poll_join(
        &mut self,
        group_id: &str,
        ticket: &Ticket,
    ) -> Option<Result<JoinResponse>> {
        self.on_classic(group_id, |group, _| Ok(group.poll_join(ticket)))
            .transpose()
            .map(|answer| answer.and_then(|answer| answer))
    }

    /// SyncGroup; see [`ClassicGroup::sync`].
    pub fn classic_sync(
        &mut self,
        group_id: &str,
        request: SyncRequest,
        now_ms: i64,
    ) -> Result<Step<Vec<u8>>> {
        self.on_classic(group_id, |group, _| group.sync(request, now_ms))
    }

    /// The answer of a SyncGroup that waited with `ticket`, once there is one.
    pub fn classic_poll_sync(
        &mut self,
        group_id: &str,
        ticket: &Ticket,
    ) -> Option<Result<Vec<u8>>> {
        self.on_classic(group_id, |group, _| Ok(group.poll_sync(ticket)))
            .transpose()
            .map(|answer| answer.and_then(|answer| answer))
    }

    /// Heartbeat; see [`ClassicGroup::heartbeat`].
    pub fn classic_heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<()> {
        self.on_classic(group_id, |group, _| {
            group.heartbeat(member_id, instance_id, generation_id, now_ms)
        })
    }

    /// LeaveGroup; one outcome per leaving member.
    pub fn classic_leave(
        &mut self,
        group_id: &str,
        leaving: &[(String, Option<String>)],
        now_ms: i64,
    ) -> Result<Vec<Result<()>>> {
        self.on_classic(group_id, |group, limits| {
            Ok(group.leave(leaving, limits, now_ms))
        })
    }

    /// Session timeouts and join-phase deadlines of every classic group. Returns whether any
    /// group changed, so that waiting requests look again.
    pub fn classic_tick(&mut self, now_ms: i64) -> bool {
        let limits = self.classic_limits();
        let mut changed = false;
        for group in self.classic.values_mut() {
            changed |= group.tick(&limits, now_ms);
        }
        self.classic
            .retain(|_, group| !(group.is_empty() && group.state() == ClassicState::Empty));
        changed
    }

    pub fn classic_group(&self, group_id: &str) -> Option<&ClassicGroup> {
        self.classic.get(group_id)
    }

    /// Every classic group that has members.
    pub fn classic_groups(&self) -> impl Iterator<Item = &ClassicGroup> {
        self.classic.values().filter(|group| !group.is_empty())
    }
}

/// Share groups. Acquisitions change only memory; everything else also returns the record
/// that stores the changed windows, so the live state equals the loaded state except that
/// acquired records are loaded as available (redelivered after a failover).
impl CoordinatorShard {
    fn check_not_consumer_group(&self, group_id: &str) -> Result<()> {
        validate_group_id(group_id)?;
        if self.groups.contains_key(group_id) || self.classic.contains_key(group_id) {
            return Err(CoordinatorError::new(
                ErrorCode::InvalidGroupId,
                format!("'{group_id}' is a consumer group; a share group needs another name"),
            ));
        }
        Ok(())
    }

    /// The share group `member_id` fetches or acknowledges in, creating the group and adding
    /// the member within the shard's limits, and noting when the member was last seen.
    fn share_member_seen(
        &mut self,
        group_id: &str,
        member_id: &str,
        now_ms: i64,
    ) -> Result<&mut ShareGroup> {
        self.check_not_consumer_group(group_id)?;
        self.check_room_for_group(group_id)?;
        let members = self.share_groups.get(group_id).map(|group| &group.members);
        let count = members.map_or(0, BTreeMap::len);
        let max = self.config.max_share_group_size;
        if !members.is_some_and(|members| members.contains_key(member_id)) && count >= max {
            return Err(CoordinatorError::new(
                ErrorCode::GroupMaxSizeReached,
                format!(
                    "share group '{group_id}' already has {count} members and max_share_group_size is {max}"
                ),
            ));
        }
        let group = self.share_groups.entry(group_id.to_string()).or_default();
        group.members.insert(member_id.to_string(), now_ms);
        Ok(group)
    }

    /// Acquires records for `member_id` across `partitions` (round robin from `first`), at
    /// most `max_records` and never more than `max_in_flight` held by the member in all.
    #[allow(clippy::too_many_arguments)]
    pub fn share_acquire(
        &mut self,
        group_id: &str,
        member_id: &str,
        partitions: &[ShareFetchPartition],
        max_records: usize,
        max_in_flight: usize,
        lock_ms: i64,
        limits: &ShareLimits,
        now_ms: i64,
    ) -> Result<AcquiredRecords> {
        let group = self.share_member_seen(group_id, member_id, now_ms)?;
        let held: usize = group
            .partitions
            .values()
            .map(|partition| partition.held_by(member_id))
            .sum();
        let mut budget = max_records.min(max_in_flight.saturating_sub(held));
        let mut acquired = Vec::new();
        for fetch in partitions {
            if budget == 0 {
                break;
            }
            let partition = group
                .partitions
                .entry(fetch.topic_partition.clone())
                .or_default();
            partition.initialize(fetch.log_start_offset);
            partition.skip_to(fetch.log_start_offset);
            let records = partition.acquire(
                member_id,
                budget,
                now_ms,
                now_ms + lock_ms,
                fetch.high_watermark,
                limits,
            );
            if !records.is_empty() {
                budget -= records.len();
                group.delivered += records.len() as u64;
                acquired.push((fetch.topic_partition.clone(), records));
            }
        }
        Ok(acquired)
    }

    /// Whether any of `partitions` has records that are available again now, or the time the
    /// first delayed one becomes available.
    pub fn share_next_available(&self, group_id: &str, now_ms: i64) -> Option<i64> {
        let group = self.share_groups.get(group_id)?;
        group
            .partitions
            .values()
            .filter_map(|partition| {
                if partition.has_available(now_ms) {
                    Some(now_ms)
                } else {
                    partition.next_available_ms()
                }
            })
            .min()
    }

    /// Applies acknowledgements; each gets its own outcome. Returns the dead letters to move
    /// and the records storing the changed windows.
    #[allow(clippy::type_complexity)]
    pub fn share_acknowledge(
        &mut self,
        group_id: &str,
        member_id: &str,
        acks: Vec<ShareAck>,
        limits: &ShareLimits,
        now_ms: i64,
    ) -> Result<(
        Vec<Result<()>>,
        Vec<ShareDeadLetter>,
        Vec<CoordinatorRecord>,
    )> {
        let group = self.share_member_seen(group_id, member_id, now_ms)?;
        let mut outcomes = Vec::with_capacity(acks.len());
        let mut dead_letters = Vec::new();
        let mut changed = BTreeSet::new();
        for ack in acks {
            let Some(partition) = group.partitions.get_mut(&ack.topic_partition) else {
                outcomes.push(Err(CoordinatorError::new(
                    ErrorCode::InvalidRecordState,
                    format!(
                        "member {member_id} holds nothing in {}",
                        ack.topic_partition
                    ),
                )));
                continue;
            };
            let outcome = partition.acknowledge(
                member_id,
                ack.offset,
                &ack.kind,
                ack.reason.as_deref(),
                now_ms,
                limits,
            );
            match outcome {
                Ok(dead_letter) => {
                    if ack.kind == AckKind::Accept {
                        group.acknowledged += 1;
                    }
                    if let Some(dead_letter) = dead_letter {
                        group.dead_lettered += 1;
                        dead_letters.push(ShareDeadLetter {
                            group_id: group_id.to_string(),
                            topic_partition: ack.topic_partition.clone(),
                            dead_letter,
                        });
                    }
                    changed.insert(ack.topic_partition);
                    outcomes.push(Ok(()));
                }
                Err(error) => outcomes.push(Err(error)),
            }
        }
        let records = store_windows(group_id, group, changed);
        Ok((outcomes, dead_letters, records))
    }

    /// Extends the member's locks on `offsets`.
    pub fn share_renew(
        &mut self,
        group_id: &str,
        member_id: &str,
        offsets: &[(TopicPartition, i64)],
        lock_ms: i64,
        now_ms: i64,
    ) -> Vec<Result<()>> {
        let Some(group) = self.share_groups.get_mut(group_id) else {
            return offsets
                .iter()
                .map(|(tp, offset)| {
                    Err(CoordinatorError::new(
                        ErrorCode::InvalidRecordState,
                        format!("offset {offset} of {tp} is not held by member {member_id}"),
                    ))
                })
                .collect();
        };
        group.members.insert(member_id.to_string(), now_ms);
        offsets
            .iter()
            .map(
                |(topic_partition, offset)| match group.partitions.get_mut(topic_partition) {
                    Some(partition) => partition.renew(member_id, *offset, now_ms + lock_ms),
                    None => Err(CoordinatorError::new(
                        ErrorCode::InvalidRecordState,
                        format!("member {member_id} holds nothing in {topic_partition}"),
                    )),
                },
            )
            .collect()
    }

    /// Releases everything a leaving member holds.
    pub fn share_leave(
        &mut self,
        group_id: &str,
        member_id: &str,
        limits: &ShareLimits,
        now_ms: i64,
    ) -> (Vec<ShareDeadLetter>, Vec<CoordinatorRecord>) {
        let Some(group) = self.share_groups.get_mut(group_id) else {
            return (Vec::new(), Vec::new());
        };
        group.members.remove(member_id);
        let mut dead_letters = Vec::new();
        let mut changed = BTreeSet::new();
        for (topic_partition, partition) in &mut group.partitions {
            if partition.held_by(member_id) > 0 {
                for dead_letter in partition.release_member(member_id, now_ms, limits) {
                    dead_letters.push(ShareDeadLetter {
                        group_id: group_id.to_string(),
                        topic_partition: topic_partition.clone(),
                        dead_letter,
                    });
                }
                changed.insert(topic_partition.clone());
            }
        }
        group.dead_lettered += dead_letters.len() as u64;
        let records = store_windows(group_id, group, changed);
        (dead_letters, records)
    }

    /// Expired locks in every share group: redelivery or dead letters. Also forgets members
    /// that stopped fetching.
    pub fn share_expire(
        &mut self,
        limits: &ShareLimits,
        now_ms: i64,
    ) -> (Vec<ShareDeadLetter>, Vec<CoordinatorRecord>) {
        let mut dead_letters = Vec::new();
        let mut records = Vec::new();
        for (group_id, group) in &mut self.share_groups {
            group
                .members
                .retain(|_, last_seen| now_ms - *last_seen < SHARE_MEMBER_IDLE_MS);
            let mut changed = BTreeSet::new();
            for (topic_partition, partition) in &mut group.partitions {
                let (dead, partition_changed) = partition.expire(now_ms, limits);
                if partition_changed {
                    changed.insert(topic_partition.clone());
                }
                group.dead_lettered += dead.len() as u64;
                dead_letters.extend(dead.into_iter().map(|dead_letter| ShareDeadLetter {
                    group_id: group_id.clone(),
                    topic_partition: topic_partition.clone(),
                    dead_letter,
                }));
            }
            records.extend(store_windows(group_id, group, changed));
        }
        (dead_letters, records)
    }

    pub fn share_describe(&self, group_id: &str) -> Option<ShareGroupDescription> {
        let group = self.share_groups.get(group_id)?;
        Some(ShareGroupDescription {
            members: group
                .members
                .iter()
                .map(|(member_id, last_seen)| (member_id.clone(), *last_seen))
                .collect(),
            partitions: group
                .partitions
                .iter()
                .map(|(topic_partition, partition)| (topic_partition.clone(), partition.counts()))
                .collect(),
            delivered: group.delivered,
            acknowledged: group.acknowledged,
            dead_lettered: group.dead_lettered,
        })
    }

    pub fn share_group_ids(&self) -> Vec<(String, usize)> {
        self.share_groups
            .iter()
            .map(|(group_id, group)| (group_id.clone(), group.members.len()))
            .collect()
    }

    /// Deletes a share group with no active members.
    pub fn share_delete(&mut self, group_id: &str) -> Result<Vec<CoordinatorRecord>> {
        let Some(group) = self.share_groups.get(group_id) else {
            return Err(CoordinatorError::new(
                ErrorCode::GroupIdNotFound,
                format!("share group '{group_id}' does not exist"),
            ));
        };
        if !group.members.is_empty() {
            return Err(CoordinatorError::new(
                ErrorCode::NonEmptyGroup,
                format!("share group '{group_id}' has active members; stop them first"),
            ));
        }
        let records: Vec<CoordinatorRecord> = group
            .partitions
            .keys()
            .map(|topic_partition| CoordinatorRecord::ShareState {
                group_id: group_id.to_string(),
                topic_partition: topic_partition.clone(),
                value: None,
            })
            .collect();
        self.share_groups.remove(group_id);
        Ok(records)
    }
}

/// Moves the start of each changed window and returns the records that store them.
fn store_windows(
    group_id: &str,
    group: &mut ShareGroup,
    changed: BTreeSet<TopicPartition>,
) -> Vec<CoordinatorRecord> {
    changed
        .into_iter()
        .filter_map(|topic_partition| {
            let partition = group.partitions.get_mut(&topic_partition)?;
            partition.advance_start();
            Some(CoordinatorRecord::ShareState {
                group_id: group_id.to_string(),
                topic_partition,
                value: Some(partition.to_stored()),
            })
        })
        .collect()
}

fn unknown_member(group_id: &str, member_id: &str) -> CoordinatorError {
    CoordinatorError::new(
        ErrorCode::UnknownMemberId,
        format!(
            "member '{member_id}' is not in group '{group_id}': it left or was removed after missing heartbeats for its session timeout; it must rejoin"
        ),
    )
}

fn state_name(state: &GroupState) -> GroupStateName {
    if state.members.is_empty() {
        GroupStateName::Empty
    } else if state.assignment_epoch < state.group_epoch {
        GroupStateName::Assigning
    } else if state
        .members
        .values()
        .all(|member| settled(member, state.assignment_epoch))
    {
        GroupStateName::Stable
    } else {
        GroupStateName::Reconciling
    }
}

/// Adds the joining member; a static member replaces the previous holder of its instance id and
/// inherits its partitions and epoch, so a restart moves nothing.
fn join(next: &mut GroupState, request: &HeartbeatRequest, new_member_id: &str) -> String {
    let previous = request.instance_id.as_ref().and_then(|instance_id| {
        next.members
            .values()
            .find(|member| member.instance_id.as_ref() == Some(instance_id))
            .map(|member| member.member_id.clone())
    });
    let mut member = match previous.and_then(|id| next.members.remove(&id)) {
        Some(previous) => MemberState {
            member_id: new_member_id.to_string(),
            left_temporarily: false,
            ..previous
        },
        None => {
            next.group_epoch += 1;
            MemberState {
                member_id: new_member_id.to_string(),
                instance_id: request.instance_id.clone(),
                member_epoch: 0,
                previous_member_epoch: 0,
                subscribed_topics: BTreeSet::new(),
                rebalance_timeout_ms: 0,
                session_timeout_ms: 0,
                assigned: Assignment::new(),
                revoking: Assignment::new(),
                target: Assignment::new(),
                left_temporarily: false,
            }
        }
    };
    member.rebalance_timeout_ms = request.rebalance_timeout_ms.max(1);
    member.session_timeout_ms = request.session_timeout_ms;
    next.members.insert(new_member_id.to_string(), member);
    new_member_id.to_string()
}

fn compute_target_if_stale(group: &mut GroupState) {
    if group.assignment_epoch >= group.group_epoch {
        return;
    }
    let assignor = Assignor::from_name(&group.assignor).unwrap_or_default();
    let assignor_members: Vec<AssignorMember<'_>> = group
        .members
        .values()
        .map(|member| AssignorMember {
            member_id: &member.member_id,
            sort_key: member.instance_id.as_deref().unwrap_or(&member.member_id),
            subscribed_topics: &member.subscribed_topics,
            // The previous target, as Kafka's target-assignment builder does: mid-rebalance a
            // member owns less than its target (partitions still being revoked elsewhere, or
            // not yet handed over), and an assignor sticky to ownership would give those
            // partitions out afresh, moving them between members that are staying.
            current: &member.target,
        })
        .collect();
    let mut target = assignor.assign(&assignor_members, &group.partition_counts);
    for (member_id, member) in &mut group.members {
        member.target = target.remove(member_id).unwrap_or_default();
    }
    group.assignment_epoch = group.group_epoch;
}

/// Moves one member toward its target (KIP-848's reconciliation): first it gives up what it must
/// lose and confirms (by reporting what it owns); only then does it get partitions, and only
/// those no other member still owns. So no partition is ever consumed by two members at once,
/// and partitions that do not move are consumed throughout.
fn reconcile(group: &mut GroupState, member_id: &str, owned: Option<&Assignment>) {
    let held_by_others: BTreeSet<TopicPartition> = group
        .members
        .values()
        .filter(|other| other.member_id != member_id)
        .flat_map(|other| other.assigned.iter().chain(&other.revoking))
        .cloned()
        .collect();
    let assignment_epoch = group.assignment_epoch;
    let member = group.members.get_mut(member_id).expect("member exists");
    if !member.revoking.is_empty() {
        match owned {
            Some(owned) if owned.is_disjoint(&member.revoking) => member.revoking.clear(),
            _ => return,
        }
    }
    let revoke: Assignment = member
        .assigned
        .difference(&member.target)
        .cloned()
        .collect();
    if !revoke.is_empty() {
        member
            .assigned
            .retain(|partition| !revoke.contains(partition));
        member.revoking = revoke;
        return;
    }
    let free: Vec<TopicPartition> = member
        .target
        .difference(&member.assigned)
        .filter(|partition| !held_by_others.contains(*partition))
        .cloned()
        .collect();
    member.assigned.extend(free);
    if member.member_epoch != assignment_epoch {
        member.previous_member_epoch = member.member_epoch;
        member.member_epoch = assignment_epoch;
    }
}
