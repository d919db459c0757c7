//! The coordinator's state machine driven like a cluster drives it: members heartbeat, the
//! clock moves, records come out. Clients here obey the protocol: they stop consuming a revoked
//! partition and report what they own on the next heartbeat.

use std::collections::{BTreeMap, BTreeSet};
use strata_common::{ErrorCode, TopicPartition};
use strata_coordinator::shard::{
    JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH, ShareAck, ShareFetchPartition,
};
use strata_coordinator::share::{AckKind, ShareLimits};
use strata_coordinator::*;

const SESSION_MS: i32 = 1_000;

struct Client {
    member_id: String,
    epoch: i32,
    instance_id: Option<String>,
    owned: Assignment,
}

struct Harness {
    shard: CoordinatorShard,
    counts: BTreeMap<String, i32>,
    now: i64,
    log: Vec<CoordinatorRecord>,
    next_id: u32,
}

impl Harness {
    fn new(partitions: i32) -> Harness {
        Harness::with_config(partitions, CoordinatorConfig::default())
    }

    fn with_config(partitions: i32, config: CoordinatorConfig) -> Harness {
        Harness {
            shard: CoordinatorShard::new(config),
            counts: [("t".to_string(), partitions)].into(),
            now: 0,
            log: Vec::new(),
            next_id: 0,
        }
    }

    fn request(&self, client: &Client, epoch: i32) -> HeartbeatRequest {
        HeartbeatRequest {
            group_id: "g".to_string(),
            member_id: client.member_id.clone(),
            member_epoch: epoch,
            instance_id: client.instance_id.clone(),
            rebalance_timeout_ms: 5_000,
            session_timeout_ms: SESSION_MS,
            subscribed_topics: Some(["t".to_string()].into()),
            assignor: None,
            owned: Some(client.owned.clone()),
        }
    }

    fn send(&mut self, request: HeartbeatRequest) -> Result<HeartbeatResponse, CoordinatorError> {
        self.next_id += 1;
        let id = format!("member-{}", self.next_id);
        let (response, records) = self.shard.heartbeat(request, &self.counts, &id, self.now)?;
        self.log.extend(records);
        self.check_exclusive_ownership();
        Ok(response)
    }

    fn join(&mut self, instance_id: Option<&str>) -> Client {
        let mut client = Client {
            member_id: String::new(),
            epoch: JOIN_EPOCH,
            instance_id: instance_id.map(str::to_string),
            owned: Assignment::new(),
        };
        let response = self.send(self.request(&client, JOIN_EPOCH)).unwrap();
        client.member_id = response.member_id;
        client.epoch = response.member_epoch;
        client.owned = response.assignment;
        client
    }

    fn heartbeat(&mut self, client: &mut Client) {
        let response = self.send(self.request(client, client.epoch)).unwrap();
        client.epoch = response.member_epoch;
        // An obedient client: drops revoked partitions at once, starts on new ones.
        client.owned = response.assignment;
    }

    /// Heartbeats everyone until nothing changes; returns the rounds it took.
    fn settle(&mut self, clients: &mut [&mut Client]) -> usize {
        for round in 1..=20 {
            let before: Vec<(i32, Assignment)> = clients
                .iter()
                .map(|client| (client.epoch, client.owned.clone()))
                .collect();
            for client in clients.iter_mut() {
                self.heartbeat(client);
            }
            let after: Vec<(i32, Assignment)> = clients
                .iter()
                .map(|client| (client.epoch, client.owned.clone()))
                .collect();
            if before == after && self.shard.describe("g").unwrap().state == GroupStateName::Stable
            {
                return round;
            }
        }
        panic!("the group did not settle in 20 rounds");
    }

    fn check_exclusive_ownership(&self) {
        let Some(description) = self.shard.describe("g") else {
            return;
        };
        let mut seen = BTreeSet::new();
        for member in description.group.members.values() {
            for partition in member.assigned.iter().chain(&member.revoking) {
                assert!(
                    seen.insert(partition.clone()),
                    "{partition} is owned by two members: {:?}",
                    description.group.members
                );
            }
        }
    }

    fn replayed(&self) -> CoordinatorShard {
        let mut shard = CoordinatorShard::new(CoordinatorConfig::default());
        for record in &self.log {
            shard.replay(&record.clone());
        }
        shard
    }
}

fn partitions(clients: &[&Client]) -> usize {
    clients.iter().map(|client| client.owned.len()).sum()
}

#[test]
fn three_members_share_all_partitions_disjointly() {
    let mut harness = Harness::new(12);
    let mut a = harness.join(None);
    let mut b = harness.join(None);
    let mut c = harness.join(None);
    harness.settle(&mut [&mut a, &mut b, &mut c]);
    assert_eq!(partitions(&[&a, &b, &c]), 12);
    for client in [&a, &b, &c] {
        assert_eq!(client.owned.len(), 4);
    }
    let union: BTreeSet<_> = [&a, &b, &c]
        .iter()
        .flat_map(|client| client.owned.iter().cloned())
        .collect();
    assert_eq!(union.len(), 12);
}

#[test]
fn a_fourth_member_takes_only_what_it_needs_and_the_rest_keep_consuming() {
    let mut harness = Harness::new(12);
    let mut a = harness.join(None);
    let mut b = harness.join(None);
    let mut c = harness.join(None);
    harness.settle(&mut [&mut a, &mut b, &mut c]);
    let before: Vec<Assignment> = [&a, &b, &c].iter().map(|c| c.owned.clone()).collect();

    let mut d = harness.join(None);
    // Every heartbeat during the rebalance: an old member's partitions only ever shrink to the
    // ones it keeps, never to something new.
    for _ in 0..10 {
        for (index, client) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
            harness.heartbeat(client);
            assert!(client.owned.is_subset(&before[index]));
            assert!(client.owned.len() >= 3);
        }
        harness.heartbeat(&mut d);
    }
    harness.settle(&mut [&mut a, &mut b, &mut c, &mut d]);
    for client in [&a, &b, &c, &d] {
        assert_eq!(client.owned.len(), 3);
    }
    let moved: usize = [&a, &b, &c]
        .iter()
        .enumerate()
        .map(|(index, client)| before[index].difference(&client.owned).count())
        .sum();
    assert_eq!(moved, 3, "only the new member's share moved");
}

#[test]
fn a_leaving_member_gives_its_partitions_to_the_others() {
    let mut harness = Harness::new(6);
    let mut a = harness.join(None);
    let mut b = harness.join(None);
    harness.settle(&mut [&mut a, &mut b]);
    let leaving = harness.request(&b, LEAVE_EPOCH);
    harness.send(leaving).unwrap();
    harness.settle(&mut [&mut a]);
    assert_eq!(a.owned.len(), 6);
}

#[test]
fn an_expired_member_is_removed_and_its_commits_are_rejected() {
    let mut harness = Harness::new(4);
    let mut a = harness.join(None);
    let mut b = harness.join(None);
    harness.settle(&mut [&mut a, &mut b]);
    harness.now += i64::from(SESSION_MS) / 2;
    harness.heartbeat(&mut a);
    harness.now += i64::from(SESSION_MS) / 2 + 1;
    let records = harness.shard.expire_members(harness.now);
    assert_eq!(records.len(), 1, "b's session expired");
    harness.log.extend(records);
    harness.settle(&mut [&mut a]);
    assert_eq!(a.owned.len(), 4);

    let offset = OffsetAndMetadata {
        offset: 5,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: 0,
    };
    let tp = b.owned.iter().next().unwrap().clone();
    let error = harness
        .shard
        .commit_offsets("g", &b.member_id, b.epoch, vec![(tp, offset)])
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::UnknownMemberId);
    assert!(
        error.message.contains("session timeout"),
        "{}",
        error.message
    );
}

#[test]
fn a_static_member_that_restarts_gets_its_partitions_back_without_a_rebalance() {
    let mut harness = Harness::new(6);
    let mut a = harness.join(Some("worker-a"));
    let mut b = harness.join(Some("worker-b"));
    harness.settle(&mut [&mut a, &mut b]);
    let epoch = harness.shard.describe("g").unwrap().group.group_epoch;
    let owned = a.owned.clone();

    let leaving = harness.request(&a, STATIC_LEAVE_EPOCH);
    harness.send(leaving).unwrap();
    harness.heartbeat(&mut b);
    assert_eq!(
        b.owned.len(),
        3,
        "b does not get a's partitions while it restarts"
    );

    let mut restarted = harness.join(Some("worker-a"));
    assert_eq!(restarted.owned, owned);
    harness.settle(&mut [&mut restarted, &mut b]);
    assert_eq!(
        harness.shard.describe("g").unwrap().group.group_epoch,
        epoch
    );
}

#[test]
fn a_member_that_does_not_release_revoked_partitions_is_removed_after_its_rebalance_timeout() {
    let mut harness = Harness::new(4);
    let mut a = harness.join(None);
    harness.settle(&mut [&mut a]);
    let mut b = harness.join(None);
    harness.heartbeat(&mut a);
    // `a` was told to give up two partitions but keeps reporting them.
    let stubborn = HeartbeatRequest {
        owned: Some((0..4).map(|p| TopicPartition::new("t", p)).collect()),
        ..harness.request(&a, a.epoch)
    };
    harness.send(stubborn.clone()).unwrap();
    harness.heartbeat(&mut b);
    assert!(b.owned.is_empty(), "b waits for a to release");
    harness.now += 5_001;
    harness.heartbeat(&mut b);
    harness
        .log
        .extend(harness.shard.expire_members(harness.now));
    harness.settle(&mut [&mut b]);
    assert_eq!(b.owned.len(), 4);
}

#[test]
fn commits_are_checked_against_membership() {
    let mut harness = Harness::new(2);
    let mut a = harness.join(None);
    harness.settle(&mut [&mut a]);
    let offset = |offset| OffsetAndMetadata {
        offset,
        leader_epoch: -1,
        metadata: "m".to_string(),
        commit_timestamp: 1,
    };
    let tp = TopicPartition::new("t", 0);
    let (outcomes, records) = harness
        .shard
        .commit_offsets("g", &a.member_id, a.epoch, vec![(tp.clone(), offset(10))])
        .unwrap();
    assert!(outcomes[0].1.is_ok());
    harness.log.extend(records);

    let error = harness
        .shard
        .commit_offsets("g", "", -1, vec![(tp.clone(), offset(0))])
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::NonEmptyGroup);
    let error = harness
        .shard
        .commit_offsets(
            "g",
            &a.member_id,
            a.epoch + 1,
            vec![(tp.clone(), offset(0))],
        )
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::FencedMemberEpoch);
    let (outcomes, _) = harness
        .shard
        .commit_offsets(
            "g",
            &a.member_id,
            a.epoch,
            vec![(TopicPartition::new("t", 7), offset(1))],
        )
        .unwrap();
    assert_eq!(
        outcomes[0].1.as_ref().unwrap_err().code,
        ErrorCode::StaleMemberEpoch
    );
    let (outcomes, _) = harness
        .shard
        .commit_offsets("g", &a.member_id, a.epoch, vec![(tp.clone(), offset(-5))])
        .unwrap();
    assert_eq!(
        outcomes[0].1.as_ref().unwrap_err().code,
        ErrorCode::OffsetOutOfRange
    );
    assert_eq!(
        harness
            .shard
            .committed_offsets("g", Some(std::slice::from_ref(&tp)))[0]
            .1,
        Some(offset(10))
    );

    // Once the group is empty, an outside commit (an offset reset) is accepted; then the group
    // can be deleted with its offsets.
    let leaving = harness.request(&a, LEAVE_EPOCH);
    harness.send(leaving).unwrap();
    let (outcomes, records) = harness
        .shard
        .commit_offsets("g", "", -1, vec![(tp.clone(), offset(0))])
        .unwrap();
    assert!(outcomes[0].1.is_ok());
    harness.log.extend(records);
    harness.log.extend(harness.shard.delete_group("g").unwrap());
    assert!(harness.shard.describe("g").is_none());
    assert_eq!(
        harness.shard.delete_group("g").unwrap_err().code,
        ErrorCode::GroupIdNotFound
    );
}

#[test]
fn replaying_the_records_or_a_snapshot_rebuilds_the_same_state() {
    let mut harness = Harness::new(8);
    let mut a = harness.join(Some("static"));
    let mut b = harness.join(None);
    harness.settle(&mut [&mut a, &mut b]);
    let mut c = harness.join(None);
    harness.heartbeat(&mut a);
    harness.heartbeat(&mut c);
    for (index, client) in [&a, &b].iter().enumerate() {
        let tp = client.owned.iter().next().unwrap().clone();
        let (_, records) = harness
            .shard
            .commit_offsets(
                "g",
                &client.member_id,
                client.epoch,
                vec![(
                    tp,
                    OffsetAndMetadata {
                        offset: 100 + index as i64,
                        leader_epoch: 0,
                        metadata: String::new(),
                        commit_timestamp: 9,
                    },
                )],
            )
            .unwrap();
        harness.log.extend(records);
    }
    let live = harness.shard.describe("g").unwrap();
    assert_eq!(harness.replayed().describe("g").unwrap(), live);

    let mut from_snapshot = CoordinatorShard::new(CoordinatorConfig::default());
    from_snapshot.replay(&CoordinatorRecord::Group {
        group_id: "stale".to_string(),
        value: Some(GroupState::new("stale", "range")),
    });
    from_snapshot.replay(&harness.shard.snapshot());
    assert_eq!(from_snapshot.describe("g").unwrap(), live);
    assert!(
        from_snapshot.describe("stale").is_none(),
        "a snapshot replaces older state"
    );
}

#[test]
fn bad_requests_get_clear_errors() {
    let mut harness = Harness::new(2);
    let client = Client {
        member_id: "nobody".to_string(),
        epoch: 3,
        instance_id: None,
        owned: Assignment::new(),
    };
    let error = harness.send(harness.request(&client, 3)).unwrap_err();
    assert_eq!(error.code, ErrorCode::UnknownMemberId);
    let mut request = harness.request(&client, JOIN_EPOCH);
    request.session_timeout_ms = 1;
    assert_eq!(
        harness.send(request).unwrap_err().code,
        ErrorCode::InvalidSessionTimeout
    );
    let mut request = harness.request(&client, JOIN_EPOCH);
    request.assignor = Some("magic".to_string());
    assert_eq!(
        harness.send(request).unwrap_err().code,
        ErrorCode::UnsupportedAssignor
    );
    let mut request = harness.request(&client, JOIN_EPOCH);
    request.group_id = String::new();
    assert_eq!(
        harness.send(request).unwrap_err().code,
        ErrorCode::InvalidGroupId
    );
}

#[test]
fn new_partitions_of_a_subscribed_topic_are_assigned() {
    let mut harness = Harness::new(2);
    let mut a = harness.join(None);
    harness.settle(&mut [&mut a]);
    assert_eq!(a.owned.len(), 2);
    harness.counts.insert("t".to_string(), 5);
    harness.settle(&mut [&mut a]);
    assert_eq!(a.owned.len(), 5);
}

mod share_groups {
    use super::*;

    const LIMITS: ShareLimits = ShareLimits {
        max_delivery_attempts: 2,
        max_window: 1_000,
    };

    fn partitions(high_watermark: i64) -> Vec<ShareFetchPartition> {
        (0..2)
            .map(|partition| ShareFetchPartition {
                topic_partition: TopicPartition::new("jobs", partition),
                log_start_offset: 0,
                high_watermark,
            })
            .collect()
    }

    fn offsets(acquired: &[(TopicPartition, Vec<(i64, u32)>)]) -> BTreeSet<(TopicPartition, i64)> {
        acquired
            .iter()
            .flat_map(|(tp, records)| records.iter().map(move |(offset, _)| (tp.clone(), *offset)))
            .collect()
    }

    #[test]
    fn workers_share_partitions_acks_survive_a_reload_and_poison_goes_to_the_dead_letter_topic() {
        let mut shard = CoordinatorShard::new(CoordinatorConfig::default());
        let mut log = Vec::new();
        let first = shard
            .share_acquire("q", "w1", &partitions(10), 8, 8, 1_000, &LIMITS, 0)
            .unwrap();
        let second = shard
            .share_acquire("q", "w2", &partitions(10), 100, 5, 1_000, &LIMITS, 0)
            .unwrap();
        let (first, second) = (offsets(&first), offsets(&second));
        assert_eq!(first.len(), 8);
        assert_eq!(second.len(), 5, "max_in_flight bounds what a member holds");
        assert!(
            first.is_disjoint(&second),
            "no record is held by two workers"
        );
        let third = shard
            .share_acquire("q", "w2", &partitions(10), 100, 5, 1_000, &LIMITS, 0)
            .unwrap();
        assert!(
            third.is_empty(),
            "w2 gets nothing more until it acknowledges"
        );

        let acks: Vec<ShareAck> = first
            .iter()
            .map(|(tp, offset)| ShareAck {
                topic_partition: tp.clone(),
                offset: *offset,
                kind: AckKind::Accept,
                reason: None,
            })
            .collect();
        let (outcomes, dead, records) = shard
            .share_acknowledge("q", "w1", acks.clone(), &LIMITS, 10)
            .unwrap();
        assert!(outcomes.iter().all(Result::is_ok));
        assert!(dead.is_empty());
        log.extend(records);
        let (outcomes, _, _) = shard
            .share_acknowledge("q", "w1", acks, &LIMITS, 11)
            .unwrap();
        assert!(
            outcomes
                .iter()
                .all(|outcome| outcome.as_ref().unwrap_err().code == ErrorCode::InvalidRecordState),
            "acknowledging twice is an error with no effect"
        );

        // w2 crashes: its records come back after the lock; the second expiry dead-letters them.
        let (dead, records) = shard.share_expire(&LIMITS, 1_001);
        assert!(dead.is_empty());
        log.extend(records);
        let again = shard
            .share_acquire("q", "w3", &partitions(10), 100, 100, 1_000, &LIMITS, 1_002)
            .unwrap();
        assert!(
            offsets(&again).is_superset(&second),
            "w2's records are redelivered"
        );
        let (dead, records) = shard.share_expire(&LIMITS, 3_000);
        let dead_offsets: BTreeSet<(TopicPartition, i64)> = dead
            .iter()
            .map(|letter| (letter.topic_partition.clone(), letter.dead_letter.offset))
            .collect();
        assert_eq!(
            dead_offsets, second,
            "only the twice-delivered records are dead letters"
        );
        assert!(
            dead.iter()
                .all(|letter| letter.dead_letter.delivery_count == 2)
        );
        log.extend(records);

        // The stored windows rebuild the acknowledged state.
        let mut loaded = CoordinatorShard::new(CoordinatorConfig::default());
        for record in &log {
            loaded.replay(record);
        }
        let live = shard.share_describe("q").unwrap();
        let reloaded = loaded.share_describe("q").unwrap();
        assert_eq!(live.partitions, reloaded.partitions);
        let mut from_snapshot = CoordinatorShard::new(CoordinatorConfig::default());
        from_snapshot.replay(&shard.snapshot());
        assert_eq!(
            from_snapshot.share_describe("q").unwrap().partitions,
            live.partitions
        );
    }
}

fn committed_at(offset: i64, commit_timestamp: i64) -> OffsetAndMetadata {
    OffsetAndMetadata {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp,
    }
}

const RETENTION_MS: i64 = 10_000;

fn short_retention() -> CoordinatorConfig {
    CoordinatorConfig {
        offsets_retention_ms: RETENTION_MS,
        offsets_retention_check_interval_ms: 100,
        ..CoordinatorConfig::default()
    }
}

#[test]
fn an_empty_groups_offsets_expire_one_by_one_and_then_the_group_goes() {
    let mut shard = CoordinatorShard::new(short_retention());
    let p0 = TopicPartition::new("t", 0);
    let p1 = TopicPartition::new("t", 1);
    // Offsets committed without a member (as by an admin tool), at 0 and at 5 s.
    let commit = |shard: &mut CoordinatorShard, tp: &TopicPartition, at: i64| {
        let (outcomes, _) = shard
            .commit_offsets("idle", "", -1, vec![(tp.clone(), committed_at(1, at))])
            .unwrap();
        assert!(outcomes[0].1.is_ok());
    };
    commit(&mut shard, &p0, 0);
    commit(&mut shard, &p1, 5_000);

    assert!(shard.expire_offsets(0).is_empty(), "the group is new");
    assert!(shard.expire_offsets(RETENTION_MS - 1).is_empty(), "not yet");
    assert!(
        shard.expire_offsets(RETENTION_MS + 50).is_empty(),
        "due, but the next check is 100 ms after the last"
    );

    let expired = shard.expire_offsets(RETENTION_MS + 99);
    assert_eq!(
        expired,
        vec![CoordinatorRecord::OffsetCommit {
            group_id: "idle".to_string(),
            topic_partition: p0.clone(),
            value: None,
        }]
    );
    let left: Vec<TopicPartition> = shard
        .committed_offsets("idle", None)
        .into_iter()
        .map(|(tp, _)| tp)
        .collect();
    assert_eq!(left, vec![p1.clone()], "p1 was committed later");

    let expired = shard.expire_offsets(5_000 + RETENTION_MS);
    assert_eq!(
        expired,
        vec![CoordinatorRecord::Group {
            group_id: "idle".to_string(),
            value: None,
        }]
    );
    assert!(shard.describe("idle").is_none());
}

#[test]
fn offsets_are_kept_while_the_group_has_members_and_counted_from_when_it_emptied() {
    let mut harness = Harness::with_config(2, short_retention());
    let mut a = harness.join(None);
    harness.settle(&mut [&mut a]);
    let tp = a.owned.iter().next().unwrap().clone();
    let (outcomes, records) = harness
        .shard
        .commit_offsets(
            "g",
            &a.member_id,
            a.epoch,
            vec![(tp.clone(), committed_at(7, 0))],
        )
        .unwrap();
    assert!(outcomes[0].1.is_ok());
    harness.log.extend(records);

    // Long past the retention, but a member is still there (heartbeating).
    harness.now = 3 * RETENTION_MS;
    harness.heartbeat(&mut a);
    assert!(harness.shard.expire_offsets(harness.now).is_empty());

    let leaving = harness.request(&a, LEAVE_EPOCH);
    harness.send(leaving).unwrap();
    harness.now += 1_000;
    assert!(
        harness.shard.expire_offsets(harness.now).is_empty(),
        "the retention counts from when the group emptied, not from the old commit"
    );
    harness.now += RETENTION_MS - 100;
    assert!(harness.shard.expire_offsets(harness.now).is_empty());
    harness.now += 100;
    let expired = harness.shard.expire_offsets(harness.now);
    assert_eq!(
        expired,
        vec![CoordinatorRecord::Group {
            group_id: "g".to_string(),
            value: None,
        }]
    );
    harness.log.extend(expired);
    assert!(
        harness.replayed().describe("g").is_none(),
        "the log says so too"
    );
}

#[test]
fn a_group_that_emptied_without_committing_goes_after_the_retention() {
    let mut harness = Harness::with_config(2, short_retention());
    let a = harness.join(None);
    let leaving = harness.request(&a, LEAVE_EPOCH);
    harness.send(leaving).unwrap();
    assert!(
        harness.shard.describe("g").is_some(),
        "an empty group stays at first"
    );

    assert!(harness.shard.expire_offsets(harness.now).is_empty());
    harness.now += RETENTION_MS;
    assert_eq!(
        harness.shard.expire_offsets(harness.now),
        vec![CoordinatorRecord::Group {
            group_id: "g".to_string(),
            value: None,
        }]
    );
    assert!(harness.shard.describe("g").is_none());
}

/// A member on a simulated clock, heartbeating the way `client::group` does: it sends its next
/// heartbeat `heartbeat_interval_ms` after the previous answer reached it, so consecutive
/// heartbeats reach the coordinator the interval *plus* a round trip apart.
struct TimedMember {
    client: Client,
    /// When its next heartbeat reaches the coordinator.
    arrives_at_ms: i64,
    rejoins: usize,
}

/// Latency between a member and the coordinator, there and back; a loaded machine has more.
const ROUND_TRIP_MS: i64 = 30;
/// How often the broker looks for expired sessions (it ticks at the reconcile interval).
const EXPIRY_SWEEP_MS: i64 = 100;

impl Harness {
    fn join_timed(&mut self) -> TimedMember {
        let client = self.join(None);
        TimedMember {
            client,
            arrives_at_ms: self.now
                + ROUND_TRIP_MS
                + self.shard.config().reconcile_interval_ms as i64,
            rejoins: 0,
        }
    }

    /// Runs the members and the expiry sweep until `until_ms`. A member the coordinator
    /// removed rejoins at once, as the client does after `UNKNOWN_MEMBER_ID`.
    fn run_timed(&mut self, members: &mut [TimedMember], until_ms: i64) {
        while self.now < until_ms {
            self.now += 1;
            for member in members.iter_mut() {
                if member.arrives_at_ms != self.now {
                    continue;
                }
                let request = self.request(&member.client, member.client.epoch);
                let response = match self.send(request) {
                    Ok(response) => response,
                    Err(error) => {
                        assert_eq!(error.code, ErrorCode::UnknownMemberId, "{error}");
                        member.rejoins += 1;
                        member.client.member_id.clear();
                        member.client.owned.clear();
                        let rejoin = self.request(&member.client, JOIN_EPOCH);
                        self.send(rejoin).unwrap()
                    }
                };
                member.client.member_id = response.member_id;
                member.client.epoch = response.member_epoch;
                member.client.owned = response.assignment;
                member.arrives_at_ms =
                    self.now + ROUND_TRIP_MS + i64::from(response.heartbeat_interval_ms);
            }
            if self.now % EXPIRY_SWEEP_MS == 0 {
                let records = self.shard.expire_members(self.now);
                self.log.extend(records);
            }
        }
    }
}

/// Who owns each partition, by the member's index (as the client test tracks it).
fn owners(members: &[TimedMember]) -> BTreeMap<TopicPartition, usize> {
    members
        .iter()
        .enumerate()
        .flat_map(|(index, member)| {
            member
                .client
                .owned
                .iter()
                .map(move |tp| (tp.clone(), index))
        })
        .collect()
}

/// `crates/client/tests/groups.rs` in simulated time: the settled heartbeat interval (1 s) was
/// as long as the members' session timeout (1 s), so with any latency each settled member's
/// session ran out just before its next heartbeat arrived, the expiry sweep removed it, and its
/// partitions went to the other old members.
#[test]
fn a_fourth_member_takes_partitions_only_from_old_members_while_heartbeats_take_time() {
    let mut harness = Harness::new(6);
    let mut members: Vec<TimedMember> = (0..3).map(|_| harness.join_timed()).collect();
    harness.run_timed(&mut members, 5_000);
    let before = owners(&members);
    let rejoins = |members: &[TimedMember]| -> Vec<usize> {
        members.iter().map(|member| member.rejoins).collect()
    };
    assert_eq!(before.len(), 6);
    assert!(
        members.iter().all(|member| member.client.owned.len() == 2),
        "three equal shares; rejoins after losing the session: {:?}",
        rejoins(&members)
    );

    members.push(harness.join_timed());
    harness.run_timed(&mut members, 10_000);
    let after = owners(&members);
    assert_eq!(after.len(), 6);
    assert!(!members[3].client.owned.is_empty());
    for (partition, owner) in &after {
        assert!(
            *owner == 3 || before[partition] == *owner,
            "{partition} moved between old members"
        );
    }
    assert_eq!(rejoins(&members), vec![0; 4], "no member lost its session");
}

/// Asserts the request failed with `code` and a message saying each of `says`.
fn assert_refused<T: std::fmt::Debug>(
    outcome: Result<T, CoordinatorError>,
    code: ErrorCode,
    says: &[&str],
) {
    let error = outcome.unwrap_err();
    assert_eq!(error.code, code, "{error}");
    for words in says {
        assert!(error.message.contains(words), "{error}");
    }
}

fn limited(change: impl FnOnce(&mut CoordinatorConfig)) -> CoordinatorConfig {
    let mut config = CoordinatorConfig::default();
    change(&mut config);
    config
}

#[test]
fn a_full_group_refuses_a_new_member_but_takes_back_a_restarting_static_one() {
    let config = limited(|config| config.max_group_size = 2);
    let mut harness = Harness::with_config(4, config);
    let mut a = harness.join(Some("worker-a"));
    let mut b = harness.join(None);
    harness.settle(&mut [&mut a, &mut b]);

    let newcomer = Client {
        member_id: String::new(),
        epoch: JOIN_EPOCH,
        instance_id: None,
        owned: Assignment::new(),
    };
    assert_refused(
        harness.send(harness.request(&newcomer, JOIN_EPOCH)),
        ErrorCode::GroupMaxSizeReached,
        &["already has 2 members", "max_group_size is 2"],
    );
    assert_eq!(harness.shard.describe("g").unwrap().group.members.len(), 2);

    let mut restarted = harness.join(Some("worker-a"));
    harness.settle(&mut [&mut restarted, &mut b]);
    let leaving = harness.request(&b, LEAVE_EPOCH);
    harness.send(leaving).unwrap();
    harness
        .send(harness.request(&newcomer, JOIN_EPOCH))
        .unwrap();
}

#[test]
fn a_full_shard_refuses_new_groups_of_every_kind_and_keeps_serving_its_own() {
    let config = limited(|config| config.max_groups_per_shard = 2);
    let mut harness = Harness::with_config(2, config);
    let mut a = harness.join(None);
    harness.settle(&mut [&mut a]);
    let offset = committed_at(5, 0);
    let standalone = |group_id: &str| {
        (
            group_id.to_string(),
            vec![(TopicPartition::new("t", 0), offset.clone())],
        )
    };
    let (group_id, offsets) = standalone("standalone");
    let (_, records) = harness
        .shard
        .commit_offsets(&group_id, "", -1, offsets)
        .unwrap();
    harness.log.extend(records);

    let full = ["already holds 2 groups", "max_groups_per_shard is 2"];
    let mut other_group = harness.request(&a, JOIN_EPOCH);
    other_group.group_id = "h".to_string();
    other_group.member_id = String::new();
    assert_refused(harness.send(other_group), ErrorCode::InvalidRequest, &full);
    let (group_id, offsets) = standalone("other");
    assert_refused(
        harness.shard.commit_offsets(&group_id, "", -1, offsets),
        ErrorCode::InvalidRequest,
        &full,
    );
    let fetch = [ShareFetchPartition {
        topic_partition: TopicPartition::new("t", 0),
        log_start_offset: 0,
        high_watermark: 10,
    }];
    let limits = ShareLimits::default();
    assert_refused(
        harness
            .shard
            .share_acquire("q", "w", &fetch, 10, 10, 1_000, &limits, 0),
        ErrorCode::InvalidRequest,
        &full,
    );
    assert_eq!(harness.shard.list().len(), 2);

    // The groups it has keep working, and deleting one makes room.
    harness.heartbeat(&mut a);
    let (group_id, offsets) = standalone("standalone");
    harness
        .shard
        .commit_offsets(&group_id, "", -1, offsets)
        .unwrap();
    harness
        .log
        .extend(harness.shard.delete_group("standalone").unwrap());
    harness
        .shard
        .share_acquire("q", "w", &fetch, 10, 10, 1_000, &limits, 0)
        .unwrap();

    // A coordinator with a lower limit still loads every group in its log.
    let mut loaded = CoordinatorShard::new(limited(|config| config.max_groups_per_shard = 0));
    for record in &harness.log {
        loaded.replay(record);
    }
    assert_eq!(loaded.list().len(), 1);
    assert_eq!(loaded.describe("g"), harness.shard.describe("g"));
}

#[test]
fn a_full_share_group_refuses_a_new_member_until_one_leaves() {
    let config = limited(|config| config.max_share_group_size = 2);
    let mut shard = CoordinatorShard::new(config);
    let limits = ShareLimits::default();
    let fetch = [ShareFetchPartition {
        topic_partition: TopicPartition::new("jobs", 0),
        log_start_offset: 0,
        high_watermark: 100,
    }];
    for worker in ["w1", "w2"] {
        shard
            .share_acquire("q", worker, &fetch, 5, 5, 1_000, &limits, 0)
            .unwrap();
    }
    let full = ["already has 2 members", "max_share_group_size is 2"];
    assert_refused(
        shard.share_acquire("q", "w3", &fetch, 5, 5, 1_000, &limits, 0),
        ErrorCode::GroupMaxSizeReached,
        &full,
    );
    let ack = ShareAck {
        topic_partition: TopicPartition::new("jobs", 0),
        offset: 0,
        kind: AckKind::Accept,
        reason: None,
    };
    assert_refused(
        shard.share_acknowledge("q", "w3", vec![ack], &limits, 0),
        ErrorCode::GroupMaxSizeReached,
        &full,
    );
    // Members already in keep fetching.
    shard
        .share_acquire("q", "w1", &fetch, 5, 10, 1_000, &limits, 1)
        .unwrap();
    shard.share_leave("q", "w2", &limits, 2);
    let acquired = shard
        .share_acquire("q", "w3", &fetch, 5, 5, 1_000, &limits, 3)
        .unwrap();
    assert!(!acquired.is_empty());
}

/// Kafka computes a new target from the previous *target*, not from what members happen to own
/// mid-rebalance: partitions on their way to a member stay headed there, so a member joining
/// during a rebalance takes only from the old members' targets and moves nothing else. (Static
/// members, so the assignor sees them in the order written here.)
#[test]
fn a_member_joining_mid_rebalance_moves_no_partition_between_the_others() {
    let mut harness = Harness::new(7);
    let mut a = harness.join(Some("a"));
    let mut b = harness.join(Some("b"));
    harness.settle(&mut [&mut a, &mut b]);
    let mut c = harness.join(Some("c"));
    // a and b now revoke what c is to get; c has none of it yet.
    harness.heartbeat(&mut a);
    harness.heartbeat(&mut b);
    let members = harness.shard.describe("g").unwrap().group.members;
    assert!(members.values().any(|member| !member.revoking.is_empty()));
    let headed_to: Vec<Assignment> = [&a, &b, &c]
        .iter()
        .map(|client| members[&client.member_id].target.clone())
        .collect();

    let mut d = harness.join(Some("d"));
    harness.settle(&mut [&mut a, &mut b, &mut c, &mut d]);
    for (client, target) in [&a, &b, &c].iter().zip(&headed_to) {
        assert!(
            client.owned.is_subset(target),
            "{} got {:?}, beyond its target {target:?}",
            client.member_id,
            client.owned.difference(target).collect::<Vec<_>>()
        );
    }
    assert_eq!(partitions(&[&a, &b, &c, &d]), 7);
}
