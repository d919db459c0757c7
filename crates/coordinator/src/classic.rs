//! One group of Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup):
//! a pure state machine, as Kafka's `ClassicGroup` and the classic half of its
//! `GroupMetadataManager`.
//!
//! Assignment is the clients' business here: the coordinator picks a protocol every member
//! supports, elects a leader, hands the leader every member's metadata for that protocol, and
//! hands each member the bytes the leader's SyncGroup gave it. It never reads them (only the
//! broker does, to show a consumer group's partitions).
//!
//! States, as Kafka's:
//! - `Empty`: no members; committed offsets may still exist (a "simple" group commits with
//!   generation -1 and no member id, and only while the group is here).
//! - `PreparingRebalance`: the join phase; every JoinGroup waits until all known members have
//!   rejoined (and no KIP-394 pending member is outstanding), or the rebalance deadline passes,
//!   or, for a group that was empty, the initial delay ends (so members starting together land
//!   in one generation).
//! - `CompletingRebalance`: the generation is formed; members wait in SyncGroup for the leader's.
//! - `Stable`: everyone has its assignment; members heartbeat.
//!
//! Invariants:
//! - `Empty` if and only if there are no members; the leader is a member whenever there are any;
//! - the generation id only grows, and grows exactly when a join phase ends;
//! - in `CompletingRebalance` and `Stable` every member joined the current generation;
//! - a waiting JoinGroup or SyncGroup is answered exactly once: its ticket's answer is stored on
//!   the member until taken, a newer request from the same member supersedes it, and a member
//!   that is removed has its waiters answered UNKNOWN_MEMBER_ID;
//! - nothing here reads a clock: time comes in as `now_ms`, and deadlines are checked by
//!   [`ClassicGroup::tick`] (the caller runs it often) and by every request.
//!
//! Membership is not stored: the broker keeps it in memory only (see the broker's
//! `group_coordinator` for why that is enough). Committed offsets are the shard's, as for every
//! group.

use std::collections::{BTreeMap, BTreeSet};
use strata_common::ErrorCode;

use crate::shard::{CoordinatorError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl ClassicState {
    /// Kafka's names, which DescribeGroups and ListGroups carry.
    pub fn as_str(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
        }
    }
}

/// The limits a classic group is held to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicLimits {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_group_size: usize,
    /// Kafka's `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    /// Empty on a member's first join.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// The protocols the member supports, most preferred first, with its metadata for each.
    pub protocols: Vec<(String, Vec<u8>)>,
    /// JoinGroup version 4 and later (KIP-394): a dynamic member without an id is handed one
    /// with MEMBER_ID_REQUIRED and must join again with it.
    pub require_known_member_id: bool,
}

/// One member as the leader sees it in its JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResponse {
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata, for the leader only; empty for the others.
    pub members: Vec<JoinedMember>,
}

/// A waiting request: its member (a joining member's id is chosen by the join) and number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub member_id: String,
    pub number: u64,
}

/// What a JoinGroup or SyncGroup got: its answer, or a ticket to wait on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<T> {
    Done(T),
    /// Wait until [`ClassicGroup::poll_join`] / [`ClassicGroup::poll_sync`] answers the ticket.
    Wait(Ticket),
    /// KIP-394: join again with this member id.
    MemberIdRequired(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Waiter<T> {
    #[default]
    Idle,
    Waiting(u64),
    Answered(u64, Result<T>),
}

impl<T> Waiter<T> {
    fn is_waiting(&self) -> bool {
        matches!(self, Waiter::Waiting(_))
    }

    fn answer(&mut self, answer: Result<T>) {
        if let Waiter::Waiting(ticket) = *self {
            *self = Waiter::Answered(ticket, answer);
        }
    }

    /// The answer of `ticket` once there is one; a superseded ticket is told so.
    fn poll(&mut self, ticket: u64) -> Option<Result<T>> {
        match std::mem::take(self) {
            Waiter::Waiting(waiting) if waiting == ticket => {
                *self = Waiter::Waiting(waiting);
                None
            }
            Waiter::Answered(answered, answer) if answered == ticket => Some(answer),
            other => {
                *self = other;
                Some(Err(CoordinatorError::new(
                    ErrorCode::RebalanceInProgress,
                    "a newer request of the same member replaced this one",
                )))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Vec<u8>)>,
    /// What the leader assigned it in the current generation (empty until then).
    pub assignment: Vec<u8>,
    join: Waiter<JoinResponse>,
    sync: Waiter<Vec<u8>>,
    session_deadline_ms: i64,
}

impl ClassicMember {
    /// The member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Option<&[u8]> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.as_slice())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicGroup {
    group_id: String,
    state: ClassicState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    members: BTreeMap<String, ClassicMember>,
    /// KIP-394: ids handed out with MEMBER_ID_REQUIRED, until when they may be used.
    pending_members: BTreeMap<String, i64>,
    /// When the join phase ends even if some members have not rejoined.
    rebalance_deadline_ms: i64,
    /// A group that was empty does not end its join phase early before this time.
    initial_delay_until_ms: Option<i64>,
    next_ticket: u64,
}

fn error(code: ErrorCode, message: impl Into<String>) -> CoordinatorError {
    CoordinatorError::new(code, message)
}

impl ClassicGroup {
    pub fn new(group_id: &str) -> ClassicGroup {
        ClassicGroup {
            group_id: group_id.to_string(),
            state: ClassicState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: None,
            next_ticket: 1,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn state(&self) -> ClassicState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn members(&self) -> impl Iterator<Item = &ClassicMember> {
        self.members.values()
    }

    /// Whether the group has no members and no member id handed out: it can go.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }

    fn ticket(&mut self) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        ticket
    }

    /// The protocols every member supports.
    fn candidate_protocols(&self) -> BTreeSet<&str> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return BTreeSet::new();
        };
        let mut candidates: BTreeSet<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        for member in members {
            let supported: BTreeSet<&str> = member
                .protocols
                .iter()
                .map(|(name, _)| name.as_str())
                .collect();
            candidates.retain(|name| supported.contains(name));
        }
        candidates
    }

    /// Kafka's `supportsProtocols`: a joining member must share the protocol type and at least
    /// one protocol with every member (`excluding` itself, when it rejoins with new ones).
    fn supports(&self, request: &JoinRequest, excluding: Option<&str>) -> bool {
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return false;
        }
        let others: Vec<&ClassicMember> = self
            .members
            .values()
            .filter(|member| Some(member.member_id.as_str()) != excluding)
            .collect();
        if others.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(request.protocol_type.as_str()) {
            return false;
        }
        request.protocols.iter().any(|(name, _)| {
            others
                .iter()
                .all(|member| member.protocols.iter().any(|(other, _)| other == name))
        })
    }

    /// JoinGroup. `new_member_id` is the id a member joining without one gets.
    pub fn join(
        &mut self,
        request: JoinRequest,
        new_member_id: &str,
        limits: &ClassicLimits,
        now_ms: i64,
    ) -> Result<Step<JoinResponse>> {
        let (min, max) = (limits.min_session_timeout_ms, limits.max_session_timeout_ms);
        if !(min..=max).contains(&request.session_timeout_ms) {
            return Err(error(
                ErrorCode::InvalidSessionTimeout,
                format!(
                    "session timeout {} ms is outside [{min}, {max}] ms",
                    request.session_timeout_ms
                ),
            ));
        }
        let member_id = self.identify(&request, new_member_id, now_ms)?;
        let member_id = match member_id {
            Identified::Known(member_id) => member_id,
            Identified::Required(member_id) => return Ok(Step::MemberIdRequired(member_id)),
        };
        let ticket = self.ticket();
        let known = self.members.contains_key(&member_id);
        if !self.supports(&request, known.then_some(member_id.as_str())) {
            return Err(error(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "group '{}' uses protocol type {:?} with protocols {:?}; the member offers {:?} {:?}",
                    self.group_id,
                    self.protocol_type,
                    self.candidate_protocols(),
                    request.protocol_type,
                    request
                        .protocols
                        .iter()
                        .map(|(name, _)| name)
                        .collect::<Vec<_>>()
                ),
            ));
        }
        if !known && self.members.len() >= limits.max_group_size {
            return Err(error(
                ErrorCode::GroupMaxSizeReached,
                format!(
                    "group '{}' already has {} members and max_group_size is {}",
                    self.group_id,
                    self.members.len(),
                    limits.max_group_size
                ),
            ));
        }
        let protocols_changed = self
            .members
            .get(&member_id)
            .is_none_or(|member| member.protocols != request.protocols);
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        let member = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| ClassicMember {
                member_id: member_id.clone(),
                instance_id: request.instance_id.clone(),
                client_id: String::new(),
                client_host: String::new(),
                session_timeout_ms: 0,
                rebalance_timeout_ms: 0,
                protocols: Vec::new(),
                assignment: Vec::new(),
                join: Waiter::Idle,
                sync: Waiter::Idle,
                session_deadline_ms: 0,
            });
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms.max(request.session_timeout_ms);
        member.protocols = request.protocols;
        member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        match self.state {
            // Kafka answers a member that changed nothing from the current generation, so a
            // follower re-sending its join (a lost answer, say) does not rebalance the group.
            ClassicState::Stable if known && !protocols_changed && !is_leader => {
                return Ok(Step::Done(self.join_response(&member_id, false)));
            }
            ClassicState::CompletingRebalance if known && !protocols_changed => {
                return Ok(Step::Done(self.join_response(&member_id, is_leader)));
            }
            ClassicState::PreparingRebalance => {}
            ClassicState::Empty | ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.prepare_rebalance(limits, now_ms);
            }
        }
        let member = self.members.get_mut(&member_id).expect("added above");
        member.join = Waiter::Waiting(ticket);
        self.try_complete_join(now_ms);
        let ticket = Ticket {
            member_id,
            number: ticket,
        };
        Ok(match self.poll_join(&ticket) {
            Some(answer) => Step::Done(answer?),
            None => Step::Wait(ticket),
        })
    }

    /// Who the joining member is: a known member, or a new one (with its new id), or one that
    /// must come back with the id it is handed (KIP-394).
    fn identify(
        &mut self,
        request: &JoinRequest,
        new_member_id: &str,
        now_ms: i64,
    ) -> Result<Identified> {
        let holder = request.instance_id.as_ref().and_then(|instance_id| {
            self.members
                .values()
                .find(|member| member.instance_id.as_ref() == Some(instance_id))
                .map(|member| member.member_id.clone())
        });
        if let Some(holder) = holder {
            if request.member_id.is_empty() {
                // A restarted static member (KIP-345) takes its instance id back under a new
                // member id, with the old one's place (and leadership); the old id is unknown
                // from now on, and its requests that name the instance id are fenced.
                let mut member = self.members.remove(&holder).expect("found above");
                member.member_id = new_member_id.to_string();
                member.join = Waiter::Idle;
                member.sync = Waiter::Idle;
                if self.leader_id.as_deref() == Some(holder.as_str()) {
                    self.leader_id = Some(new_member_id.to_string());
                }
                self.members.insert(new_member_id.to_string(), member);
                return Ok(Identified::Known(new_member_id.to_string()));
            }
            if holder != request.member_id {
                return Err(error(
                    ErrorCode::FencedInstanceId,
                    format!(
                        "instance id {:?} belongs to member {holder}, not {}",
                        request.instance_id, request.member_id
                    ),
                ));
            }
            return Ok(Identified::Known(holder));
        }
        if request.member_id.is_empty() {
            if request.require_known_member_id && request.instance_id.is_none() {
                self.pending_members.insert(
                    new_member_id.to_string(),
                    now_ms + i64::from(request.session_timeout_ms),
                );
                return Ok(Identified::Required(new_member_id.to_string()));
            }
            return Ok(Identified::Known(new_member_id.to_string()));
        }
        if self.pending_members.remove(&request.member_id).is_some()
            || self.members.contains_key(&request.member_id)
        {
            return Ok(Identified::Known(request.member_id.clone()));
        }
        Err(self.unknown_member(&request.member_id))
    }

    fn unknown_member(&self, member_id: &str) -> CoordinatorError {
        error(
            ErrorCode::UnknownMemberId,
            format!(
                "member '{member_id}' is not in group '{}': it left, or was removed after missing heartbeats for its session timeout; it must rejoin",
                self.group_id
            ),
        )
    }

    fn join_response(&self, member_id: &str, with_members: bool) -> JoinResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResponse {
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if with_members {
                self.members
                    .values()
                    .map(|member| JoinedMember {
                        member_id: member.member_id.clone(),
                        instance_id: member.instance_id.clone(),
                        metadata: member.metadata(&protocol).unwrap_or_default().to_vec(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Starts a join phase: members waiting for the leader's assignment are told to rejoin.
    fn prepare_rebalance(&mut self, limits: &ClassicLimits, now_ms: i64) {
        if self.state == ClassicState::CompletingRebalance {
            for member in self.members.values_mut() {
                member.sync.answer(Err(error(
                    ErrorCode::RebalanceInProgress,
                    "the group is rebalancing; rejoin",
                )));
            }
        }
        let rebalance_timeout_ms = self
            .members
            .values()
            .map(|member| i64::from(member.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.initial_delay_until_ms = (self.state == ClassicState::Empty).then(|| {
            now_ms + i64::from(limits.initial_rebalance_delay_ms.max(0)).min(rebalance_timeout_ms)
        });
        self.state = ClassicState::PreparingRebalance;
        self.rebalance_deadline_ms = now_ms + rebalance_timeout_ms;
    }

    /// Ends the join phase if every member has rejoined or its deadline passed.
    fn try_complete_join(&mut self, now_ms: i64) {
        if self.state != ClassicState::PreparingRebalance {
            return;
        }
        let ended = match self.initial_delay_until_ms {
            // Everyone in a group that was empty joined during the delay.
            Some(until) => now_ms >= until,
            None => {
                let everyone = self.pending_members.is_empty()
                    && self.members.values().all(|member| member.join.is_waiting());
                everyone || now_ms >= self.rebalance_deadline_ms
            }
        };
        if !ended {
            return;
        }
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|member| !member.join.is_waiting())
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in gone {
            self.members.remove(&member_id);
        }
        self.generation_id += 1;
        self.initial_delay_until_ms = None;
        if self.members.is_empty() {
            self.state = ClassicState::Empty;
            self.protocol_name = None;
            self.protocol_type = None;
            self.leader_id = None;
            return;
        }
        if !self
            .leader_id
            .as_ref()
            .is_some_and(|leader| self.members.contains_key(leader))
        {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.protocol_name = Some(self.select_protocol());
        self.state = ClassicState::CompletingRebalance;
        let leader = self.leader_id.clone().expect("elected above");
        let member_ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in member_ids {
            let response = self.join_response(&member_id, member_id == leader);
            let member = self.members.get_mut(&member_id).expect("listed above");
            member.assignment.clear();
            member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
            member.join.answer(Ok(response));
        }
    }

    /// Kafka's vote: each member votes for the first protocol it lists that every member
    /// supports; the most votes wins (ties go to the leader's preference).
    fn select_protocol(&self) -> String {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(name.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let most = votes.values().copied().max().unwrap_or(0);
        let leader = self
            .leader_id
            .as_ref()
            .and_then(|leader| self.members.get(leader));
        leader
            .into_iter()
            .flat_map(|leader| leader.protocols.iter().map(|(name, _)| name.as_str()))
            .find(|name| votes.get(name) == Some(&most))
            .or_else(|| votes.iter().find(|(_, v)| **v == most).map(|(n, _)| *n))
            .unwrap_or_default()
            .to_string()
    }

    /// The answer of a waiting JoinGroup once the join phase ended.
    pub fn poll_join(&mut self, ticket: &Ticket) -> Option<Result<JoinResponse>> {
        match self.members.get_mut(&ticket.member_id) {
            Some(member) => member.join.poll(ticket.number),
            None => Some(Err(self.unknown_member(&ticket.member_id))),
        }
    }

    /// The answer of a waiting SyncGroup once the leader's has arrived.
    pub fn poll_sync(&mut self, ticket: &Ticket) -> Option<Result<Vec<u8>>> {
        match self.members.get_mut(&ticket.member_id) {
            Some(member) => member.sync.poll(ticket.number),
            None => Some(Err(self.unknown_member(&ticket.member_id))),
        }
    }

    /// Checks that `member_id` (with `instance_id`, if static) is a member of `generation_id`.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<()> {
        let Some(member) = self.members.get(member_id) else {
            let fenced = instance_id.is_some_and(|instance_id| {
                self.members
                    .values()
                    .any(|member| member.instance_id.as_deref() == Some(instance_id))
            });
            if fenced {
                return Err(error(
                    ErrorCode::FencedInstanceId,
                    format!("another member holds instance id {instance_id:?}"),
                ));
            }
            return Err(self.unknown_member(member_id));
        };
        if instance_id.is_some() && member.instance_id.as_deref() != instance_id {
            return Err(error(
                ErrorCode::FencedInstanceId,
                format!(
                    "member {member_id} holds instance id {:?}, not {instance_id:?}",
                    member.instance_id
                ),
            ));
        }
        if generation_id != self.generation_id {
            return Err(error(
                ErrorCode::IllegalGeneration,
                format!(
                    "member {member_id} used generation {generation_id}; the group's is {}; rejoin",
                    self.generation_id
                ),
            ));
        }
        Ok(())
    }

    /// SyncGroup. The leader's `assignments` are handed out; anyone else's are ignored.
    pub fn sync(&mut self, request: SyncRequest, now_ms: i64) -> Result<Step<Vec<u8>>> {
        self.check_member(
            &request.member_id,
            request.instance_id.as_deref(),
            request.generation_id,
        )?;
        let mismatch = |offered: &Option<String>, group: &Option<String>| {
            offered
                .as_ref()
                .is_some_and(|offered| Some(offered) != group.as_ref())
        };
        if mismatch(&request.protocol_type, &self.protocol_type)
            || mismatch(&request.protocol_name, &self.protocol_name)
        {
            return Err(error(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "the group's protocol is {:?} {:?}",
                    self.protocol_type, self.protocol_name
                ),
            ));
        }
        let ticket = self.ticket();
        let state = self.state;
        let member = self
            .members
            .get_mut(&request.member_id)
            .expect("checked above");
        member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        match state {
            // An empty group has no members, so check_member refused the request above.
            ClassicState::Empty | ClassicState::PreparingRebalance => Err(error(
                ErrorCode::RebalanceInProgress,
                "the group is rebalancing; rejoin",
            )),
            ClassicState::Stable => Ok(Step::Done(member.assignment.clone())),
            ClassicState::CompletingRebalance => {
                member.sync = Waiter::Waiting(ticket);
                if self.leader_id.as_deref() == Some(request.member_id.as_str()) {
                    let mut assignments: BTreeMap<String, Vec<u8>> =
                        request.assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment =
                            assignments.remove(&member.member_id).unwrap_or_default();
                        let assignment = member.assignment.clone();
                        member.sync.answer(Ok(assignment));
                    }
                    self.state = ClassicState::Stable;
                }
                let ticket = Ticket {
                    member_id: request.member_id,
                    number: ticket,
                };
                Ok(match self.poll_sync(&ticket) {
                    Some(answer) => Step::Done(answer?),
                    None => Step::Wait(ticket),
                })
            }
        }
    }

    /// Heartbeat: keeps the member's session, and tells it when to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<()> {
        // While the group rebalances the generation is the one being left, so only membership is
        // checked: the member learns it must rejoin.
        let generation = if self.state == ClassicState::PreparingRebalance {
            self.generation_id
        } else {
            generation_id
        };
        self.check_member(member_id, instance_id, generation)?;
        let member = self.members.get_mut(member_id).expect("checked above");
        member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        match self.state {
            ClassicState::PreparingRebalance => Err(error(
                ErrorCode::RebalanceInProgress,
                "the group is rebalancing; rejoin",
            )),
            _ => Ok(()),
        }
    }

    /// LeaveGroup for each `(member id, instance id)`; a static member may leave by instance
    /// id alone.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        limits: &ClassicLimits,
        now_ms: i64,
    ) -> Vec<Result<()>> {
        let mut removed = false;
        let outcomes = leaving
            .iter()
            .map(|(member_id, instance_id)| {
                let member_id = match instance_id {
                    Some(instance_id) => {
                        let holder = self
                            .members
                            .values()
                            .find(|member| member.instance_id.as_ref() == Some(instance_id))
                            .map(|member| member.member_id.clone())
                            .ok_or_else(|| self.unknown_member(member_id))?;
                        if !member_id.is_empty() && *member_id != holder {
                            return Err(error(
                                ErrorCode::FencedInstanceId,
                                format!("instance id {instance_id} belongs to member {holder}"),
                            ));
                        }
                        holder
                    }
                    None => member_id.clone(),
                };
                if self.pending_members.remove(&member_id).is_some() {
                    removed = true;
                    return Ok(());
                }
                if self.members.remove(&member_id).is_none() {
                    return Err(self.unknown_member(&member_id));
                }
                removed = true;
                Ok(())
            })
            .collect();
        if removed {
            self.membership_shrank(limits, now_ms);
        }
        outcomes
    }

    /// Members left or were removed: the rest rebalance without them.
    fn membership_shrank(&mut self, limits: &ClassicLimits, now_ms: i64) {
        if self
            .leader_id
            .as_ref()
            .is_some_and(|leader| !self.members.contains_key(leader))
        {
            self.leader_id = self.members.keys().next().cloned();
        }
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.prepare_rebalance(limits, now_ms);
                // Not the initial delay: the group was not empty.
                self.initial_delay_until_ms = None;
            }
            ClassicState::Empty | ClassicState::PreparingRebalance => {}
        }
        self.try_complete_join(now_ms);
    }

    /// Expires sessions and ends join phases whose deadline passed. Returns whether anything
    /// changed (a waiter may have its answer).
    pub fn tick(&mut self, limits: &ClassicLimits, now_ms: i64) -> bool {
        let before = (self.state, self.generation_id, self.members.len());
        let pending = self.pending_members.len();
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        // A member waiting in JoinGroup or SyncGroup is not heartbeating: the join phase's
        // deadline, or the leader's session, bounds its wait instead.
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| {
                member.session_deadline_ms <= now_ms
                    && !member.join.is_waiting()
                    && !member.sync.is_waiting()
            })
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in &expired {
            self.members.remove(member_id);
        }
        if !expired.is_empty() || pending != self.pending_members.len() {
            self.membership_shrank(limits, now_ms);
        } else {
            self.try_complete_join(now_ms);
        }
        before != (self.state, self.generation_id, self.members.len())
            || pending != self.pending_members.len()
    }

    /// OffsetCommit and TxnOffsetCommit by a classic group: a member of the current generation,
    /// or anyone with generation -1 and no member id while the group has no members.
    pub fn check_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<()> {
        if generation_id < 0 && member_id.is_empty() && instance_id.is_none() {
            if self.state == ClassicState::Empty {
                return Ok(());
            }
            return Err(error(
                ErrorCode::UnknownMemberId,
                format!(
                    "group '{}' has members; a commit from outside them (generation -1) is accepted only while it has none",
                    self.group_id
                ),
            ));
        }
        self.check_member(member_id, instance_id, generation_id)?;
        if self.state == ClassicState::CompletingRebalance {
            return Err(error(
                ErrorCode::RebalanceInProgress,
                "the group is completing a rebalance; commit after SyncGroup",
            ));
        }
        Ok(())
    }
}

enum Identified {
    Known(String),
    Required(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment of each member.
    pub assignments: Vec<(String, Vec<u8>)>,
}
