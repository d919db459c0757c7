//! The classic group protocol's pure core: generations, KIP-394 member ids, leader election,
//! the leader's assignment handed out, rebalances on join, leave and expiry, commits checked
//! against the generation, and how a group id is either classic or KIP-848.

use std::collections::{BTreeMap, BTreeSet};
use strata_common::{ErrorCode, TopicPartition};
use strata_coordinator::classic::{
    ClassicGroup, ClassicLimits, ClassicState, JoinRequest, JoinResponse, Step, SyncRequest, Ticket,
};
use strata_coordinator::{
    CoordinatorConfig, CoordinatorShard, HeartbeatRequest, OffsetAndMetadata,
};

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn limits(initial_rebalance_delay_ms: i32) -> ClassicLimits {
    ClassicLimits {
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 60_000,
        max_group_size: 10,
        initial_rebalance_delay_ms,
    }
}

fn join_request(member_id: &str, protocols: &[(&str, &str)]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        instance_id: None,
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".to_string(),
        protocols: protocols
            .iter()
            .map(|(name, metadata)| (name.to_string(), metadata.as_bytes().to_vec()))
            .collect(),
        require_known_member_id: true,
    }
}

fn range(metadata: &str) -> Vec<(&str, &str)> {
    vec![("range", metadata)]
}

/// Joins `id` the KIP-394 way (refused first, then joined with the id it was handed).
fn join_new(
    group: &mut ClassicGroup,
    id: &str,
    metadata: &str,
    limits: &ClassicLimits,
    now_ms: i64,
) -> Step<JoinResponse> {
    let first = group
        .join(join_request("", &range(metadata)), id, limits, now_ms)
        .unwrap();
    assert_eq!(first, Step::MemberIdRequired(id.to_string()));
    group
        .join(join_request(id, &range(metadata)), "unused", limits, now_ms)
        .unwrap()
}

fn done<T: std::fmt::Debug>(step: Step<T>) -> T {
    match step {
        Step::Done(answer) => answer,
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn ticket<T: std::fmt::Debug>(step: Step<T>) -> Ticket {
    match step {
        Step::Wait(ticket) => ticket,
        other => panic!("expected to wait, got {other:?}"),
    }
}

fn sync_request(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_string(),
        instance_id: None,
        generation_id,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("range".to_string()),
        assignments: assignments
            .iter()
            .map(|(member, assignment)| (member.to_string(), assignment.as_bytes().to_vec()))
            .collect(),
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, strata_coordinator::CoordinatorError>) -> ErrorCode {
    result.expect_err("refused").code
}

/// A group whose members `a` and `b` are Stable in generation 2 (`a` leads).
fn stable_pair(limits: &ClassicLimits) -> ClassicGroup {
    let mut group = ClassicGroup::new("g");
    let alone = done(join_new(&mut group, "a", "meta-a", limits, 0));
    assert_eq!(alone.generation_id, 1);
    done(
        group
            .sync(sync_request("a", 1, &[("a", "all")]), 0)
            .unwrap(),
    );
    let b_wait = ticket(join_new(&mut group, "b", "meta-b", limits, 0));
    assert_eq!(
        code(group.heartbeat("a", None, 1, 0)),
        ErrorCode::RebalanceInProgress
    );
    let leader = done(
        group
            .join(join_request("a", &range("meta-a")), "unused", limits, 0)
            .unwrap(),
    );
    assert_eq!(leader.generation_id, 2);
    let b = group.poll_join(&b_wait).unwrap().unwrap();
    assert!(b.members.is_empty());
    let b_sync = ticket(group.sync(sync_request("b", 2, &[]), 0).unwrap());
    done(
        group
            .sync(sync_request("a", 2, &[("a", "p0"), ("b", "p1")]), 0)
            .unwrap(),
    );
    assert_eq!(group.poll_sync(&b_sync).unwrap().unwrap(), b"p1");
    assert_eq!(group.state(), ClassicState::Stable);
    group
}

#[test]
fn a_new_member_is_handed_an_id_then_forms_a_generation_and_leads_it() {
    let limits = limits(0);
    let mut group = ClassicGroup::new("g");
    let joined = done(join_new(&mut group, "m1", "meta", &limits, 0));
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, "m1");
    assert_eq!(joined.member_id, "m1");
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, b"meta");
    assert_eq!(group.state(), ClassicState::CompletingRebalance);
    // An id nobody was handed is unknown.
    let unknown = group.join(join_request("stranger", &range("x")), "unused", &limits, 0);
    assert_eq!(code(unknown), ErrorCode::UnknownMemberId);
}

#[test]
fn the_leader_gets_every_members_metadata_and_its_assignment_is_handed_out() {
    let limits = limits(0);
    let group = stable_pair(&limits);
    let members: BTreeMap<&str, &[u8]> = group
        .members()
        .map(|member| (member.member_id.as_str(), member.assignment.as_slice()))
        .collect();
    assert_eq!(
        members,
        BTreeMap::from([("a", b"p0".as_slice()), ("b", b"p1".as_slice())])
    );
    assert_eq!(group.leader_id(), Some("a"));
    assert_eq!(group.generation_id(), 2);
}

#[test]
fn members_starting_together_land_in_one_generation_after_the_initial_delay() {
    let limits = limits(3_000);
    let mut group = ClassicGroup::new("g");
    let a = ticket(join_new(&mut group, "a", "meta-a", &limits, 0));
    let b = ticket(join_new(&mut group, "b", "meta-b", &limits, 1_000));
    assert!(!group.tick(&limits, 2_999));
    assert!(group.poll_join(&a).is_none());
    assert!(group.tick(&limits, 3_000));
    let a = group.poll_join(&a).unwrap().unwrap();
    let b = group.poll_join(&b).unwrap().unwrap();
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    assert_eq!(a.members.len() + b.members.len(), 2);
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_when_the_rebalance_times_out() {
    let limits = limits(0);
    let mut group = stable_pair(&limits);
    // A third member joins; only `a` rejoins.
    let c = ticket(join_new(&mut group, "c", "meta-c", &limits, 100));
    let a = ticket(
        group
            .join(join_request("a", &range("meta-a")), "unused", &limits, 200)
            .unwrap(),
    );
    // `b` keeps its session but does not rejoin.
    for now_ms in [9_000, 18_000, 27_000] {
        assert_eq!(
            code(group.heartbeat("b", None, 2, now_ms)),
            ErrorCode::RebalanceInProgress
        );
    }
    assert!(!group.tick(&limits, 100 + i64::from(REBALANCE_MS) - 1));
    assert!(group.tick(&limits, 100 + i64::from(REBALANCE_MS)));
    let a = group.poll_join(&a).unwrap().unwrap();
    assert_eq!(a.generation_id, 3);
    let mut members: Vec<String> = a.members.into_iter().map(|m| m.member_id).collect();
    members.sort();
    assert_eq!(members, ["a", "c"]);
    assert!(group.poll_join(&c).unwrap().is_ok());
    assert_eq!(
        code(group.heartbeat("b", None, 2, 0)),
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn an_expired_session_removes_the_member_and_rebalances_the_rest() {
    let limits = limits(0);
    let mut group = stable_pair(&limits);
    group.heartbeat("a", None, 2, 5_000).unwrap();
    // `b` never heartbeats again: its session ends SESSION_MS after its sync.
    assert!(group.tick(&limits, i64::from(SESSION_MS)));
    assert_eq!(group.state(), ClassicState::PreparingRebalance);
    assert_eq!(
        code(group.heartbeat("a", None, 2, 10_001)),
        ErrorCode::RebalanceInProgress
    );
    let alone = done(
        group
            .join(
                join_request("a", &range("meta-a")),
                "unused",
                &limits,
                10_002,
            )
            .unwrap(),
    );
    assert_eq!(alone.generation_id, 3);
    assert_eq!(alone.members.len(), 1);
}

#[test]
fn a_leave_rebalances_and_the_last_one_out_empties_the_group() {
    let limits = limits(0);
    let mut group = stable_pair(&limits);
    let outcomes = group.leave(
        &[("b".to_string(), None), ("ghost".to_string(), None)],
        &limits,
        0,
    );
    assert!(outcomes[0].is_ok());
    assert_eq!(
        outcomes[1].as_ref().unwrap_err().code,
        ErrorCode::UnknownMemberId
    );
    assert_eq!(group.state(), ClassicState::PreparingRebalance);
    assert!(group.leave(&[("a".to_string(), None)], &limits, 0)[0].is_ok());
    assert_eq!(group.state(), ClassicState::Empty);
    assert!(group.is_empty());
}

#[test]
fn a_join_during_completing_rebalance_sends_waiting_followers_back_to_rejoin() {
    let limits = limits(0);
    let mut group = stable_pair(&limits);
    // A third member makes everyone rejoin; generation 3 forms, and `b` waits in SyncGroup.
    let c = ticket(join_new(&mut group, "c", "meta-c", &limits, 0));
    let b = ticket(
        group
            .join(join_request("b", &range("meta-b")), "unused", &limits, 0)
            .unwrap(),
    );
    done(
        group
            .join(join_request("a", &range("meta-a")), "unused", &limits, 0)
            .unwrap(),
    );
    group.poll_join(&b).unwrap().unwrap();
    group.poll_join(&c).unwrap().unwrap();
    let b_sync = ticket(group.sync(sync_request("b", 3, &[]), 0).unwrap());
    // A fourth member arrives before the leader's SyncGroup.
    let _d = ticket(join_new(&mut group, "d", "meta-d", &limits, 0));
    assert_eq!(
        code(group.poll_sync(&b_sync).unwrap()),
        ErrorCode::RebalanceInProgress
    );
}

#[test]
fn protocols_must_fit_the_group_and_the_most_voted_common_one_is_chosen() {
    let limits = limits(0);
    // Three members join during the initial delay; two of them prefer "range".
    let mut group = ClassicGroup::new("g");
    let delayed = ClassicLimits {
        initial_rebalance_delay_ms: 1_000,
        ..limits.clone()
    };
    let mut request = |id: &str, protocols: &[(&str, &str)]| {
        let mut request = join_request("", protocols);
        request.require_known_member_id = false;
        ticket(group.join(request, id, &delayed, 0).unwrap())
    };
    let a = request("a", &[("roundrobin", ""), ("range", "")]);
    request("b", &[("range", ""), ("roundrobin", "")]);
    request("c", &[("range", ""), ("sticky", "")]);
    let mut other_type = join_request("", &[("range", "")]);
    other_type.require_known_member_id = false;
    other_type.protocol_type = "connect".to_string();
    assert_eq!(
        code(group.join(other_type, "d", &delayed, 0)),
        ErrorCode::InconsistentGroupProtocol
    );
    let mut nothing_common = join_request("", &[("sticky", "")]);
    nothing_common.require_known_member_id = false;
    assert_eq!(
        code(group.join(nothing_common, "e", &delayed, 0)),
        ErrorCode::InconsistentGroupProtocol
    );
    group.tick(&delayed, 1_000);
    let a = group.poll_join(&a).unwrap().unwrap();
    assert_eq!(a.protocol_name.as_deref(), Some("range"));
}

#[test]
fn commits_need_the_current_generation_or_an_empty_group() {
    let limits = limits(0);
    let mut group = stable_pair(&limits);
    group.check_commit("a", None, 2).unwrap();
    assert_eq!(
        code(group.check_commit("a", None, 1)),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        code(group.check_commit("x", None, 2)),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        code(group.check_commit("", None, -1)),
        ErrorCode::UnknownMemberId
    );
    group.leave(
        &[("a".to_string(), None), ("b".to_string(), None)],
        &limits,
        0,
    );
    group.check_commit("", None, -1).unwrap();
}

#[test]
fn a_restarted_static_member_takes_its_place_back_and_fences_the_old_id() {
    let limits = limits(0);
    let mut group = ClassicGroup::new("g");
    let mut request = join_request("", &range("meta"));
    request.instance_id = Some("instance-1".to_string());
    // Static members are not asked for a member id first.
    let first = done(group.join(request.clone(), "old", &limits, 0).unwrap());
    assert_eq!(first.member_id, "old");
    done(
        group
            .sync(sync_request("old", 1, &[("old", "p")]), 0)
            .unwrap(),
    );
    let again = group.join(request, "new", &limits, 0).unwrap();
    let again = match again {
        Step::Done(answer) => answer,
        Step::Wait(ticket) => {
            group.tick(&limits, 0);
            group.poll_join(&ticket).unwrap().unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(again.member_id, "new");
    assert_eq!(group.leader_id(), Some("new"));
    assert_eq!(
        code(group.heartbeat("old", Some("instance-1"), again.generation_id, 0)),
        ErrorCode::FencedInstanceId
    );
}

fn offset(offset: i64) -> OffsetAndMetadata {
    OffsetAndMetadata {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: 0,
    }
}

#[test]
fn a_group_id_is_classic_or_kip_848_and_classic_commits_share_the_offsets_store() {
    let mut shard = CoordinatorShard::new(CoordinatorConfig {
        classic_initial_rebalance_delay_ms: 0,
        ..CoordinatorConfig::default()
    });
    let counts = BTreeMap::from([("t".to_string(), 1)]);
    let heartbeat = |group_id: &str| HeartbeatRequest {
        group_id: group_id.to_string(),
        member_id: String::new(),
        member_epoch: 0,
        instance_id: None,
        rebalance_timeout_ms: 10_000,
        session_timeout_ms: 10_000,
        subscribed_topics: Some(BTreeSet::from(["t".to_string()])),
        assignor: None,
        owned: None,
    };
    shard
        .heartbeat(heartbeat("kip848"), &counts, "m", 0)
        .unwrap();
    let mut request = join_request("", &range("meta"));
    request.require_known_member_id = false;
    assert_eq!(
        code(shard.classic_join("kip848", request.clone(), "c", 0)),
        ErrorCode::InconsistentGroupProtocol
    );
    let joined = done(shard.classic_join("classic", request, "c", 0).unwrap());
    let sync = SyncRequest {
        member_id: "c".to_string(),
        instance_id: None,
        generation_id: joined.generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: Vec::new(),
    };
    done(shard.classic_sync("classic", sync, 0).unwrap());
    assert_eq!(
        code(shard.heartbeat(heartbeat("classic"), &counts, "m2", 0)),
        ErrorCode::GroupIdNotFound
    );
    let (outcomes, records) = shard
        .commit_offsets(
            "classic",
            "c",
            joined.generation_id,
            vec![(TopicPartition::new("t", 0), offset(5))],
        )
        .unwrap();
    assert!(outcomes[0].1.is_ok());
    assert_eq!(records.len(), 1);
    assert_eq!(
        code(shard.commit_offsets(
            "classic",
            "c",
            joined.generation_id + 1,
            vec![(TopicPartition::new("t", 0), offset(6))],
        )),
        ErrorCode::IllegalGeneration
    );
    let committed = shard.committed_offsets("classic", None);
    assert_eq!(committed[0].1.as_ref().map(|o| o.offset), Some(5));
    assert_eq!(
        code(shard.delete_group("classic")),
        ErrorCode::NonEmptyGroup
    );
    shard
        .classic_leave("classic", &[("c".to_string(), None)], 0)
        .unwrap();
    assert!(shard.classic_group("classic").is_none());
    shard.delete_group("classic").unwrap();
    assert!(shard.committed_offsets("classic", None)[..].is_empty());
}
