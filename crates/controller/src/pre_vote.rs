//! Elections only when they can succeed: Raft's pre-vote (Ongaro's thesis, §9.6), built around
//! openraft 0.9, which lacks it.
//!
//! Without pre-vote, a voter that stops hearing from the leader campaigns, and every campaign
//! raises its term. A voter cut off from the leader alone (a partial partition: it cannot reach
//! the leader, the third voter reaches both) or from everyone keeps raising its term for as long
//! as the cut lasts, and once the network heals its higher term deposes a leader that was
//! serving fine; the quorum then has no leader for an election's length, brokers cannot renew
//! their sessions meanwhile, and their leases stop writes everywhere.
//!
//! So openraft's election timer runs on a voter only while a majority of the voters (itself
//! included) would vote for it, which they would only if they have not heard from a leader
//! either. Every heartbeat interval the guard decides:
//! - a voter that heard from a leader within the election timeout, or leads, does not campaign
//!   (openraft would not either; keeping the timer off also covers a process resumed after a
//!   pause, whose timers would otherwise fire before it hears from anyone);
//! - otherwise it asks the other voters ([`would_vote`] on each, the `PreVote` call) and turns
//!   the timer on only if, counting itself, a majority says yes.
//!
//! This changes when elections start, never how they are decided: a vote is still granted by
//! openraft alone, so safety does not depend on this module. A leader that hands over
//! ([`crate::Controller::hand_off_leadership`]) uses openraft's explicit trigger, which the
//! timer switch does not affect.

use crate::network::PeerClients;
use crate::raft_types::{NodeId, Raft};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// When this voter last heard from a leader: an AppendEntries or InstallSnapshot it accepted.
pub(crate) struct LeaderContact {
    started: Instant,
    /// Milliseconds after `started`; `u64::MAX` while it never heard from one.
    last_heard_ms: AtomicU64,
    /// How recent counts as in contact: the election timeout.
    recent: Duration,
}

impl LeaderContact {
    pub(crate) fn new(recent: Duration) -> LeaderContact {
        LeaderContact {
            started: Instant::now(),
            last_heard_ms: AtomicU64::new(u64::MAX),
            recent,
        }
    }

    pub(crate) fn heard_from_leader(&self) {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_heard_ms.store(elapsed, Ordering::Release);
    }

    fn heard_recently(&self) -> bool {
        match self.last_heard_ms.load(Ordering::Acquire) {
            u64::MAX => false,
            heard_ms => {
                let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
                now_ms.saturating_sub(heard_ms) <= self.recent.as_millis() as u64
            }
        }
    }
}

/// Whether this voter would vote for a candidate now: it neither leads a quorum that answered
/// within the election timeout nor heard from a leader within it.
pub(crate) fn would_vote(raft: &Raft, node_id: NodeId, contact: &LeaderContact) -> bool {
    let leading = {
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        metrics.current_leader == Some(node_id)
            && metrics
                .millis_since_quorum_ack
                .is_some_and(|millis| millis <= contact.recent.as_millis() as u64)
    };
    !leading && !contact.heard_recently()
}

/// Switches openraft's election timer on and off as the module documentation says, every
/// `interval`, until `shutdown`.
pub(crate) async fn guard_elections(
    raft: Raft,
    node_id: NodeId,
    voters: Vec<NodeId>,
    peers: Arc<PeerClients>,
    contact: Arc<LeaderContact>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut allowed = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        let leads = raft.metrics().borrow().current_leader == Some(node_id);
        let allow = !leads
            && !contact.heard_recently()
            && majority_would_vote(node_id, &voters, &peers, interval).await;
        if allowed != Some(allow) {
            tracing::info!(
                node_id,
                allow,
                "controller elections {}",
                if allow {
                    "allowed: a majority has not heard from a leader"
                } else {
                    "held: this voter leads, hears a leader, or could not win"
                }
            );
            raft.runtime_config().elect(allow);
            allowed = Some(allow);
        }
    }
}

/// Asks every other voter whether it would vote, each within `timeout`; counts this one too.
async fn majority_would_vote(
    node_id: NodeId,
    voters: &[NodeId],
    peers: &Arc<PeerClients>,
    timeout: Duration,
) -> bool {
    let mut asks = JoinSet::new();
    for &peer in voters.iter().filter(|&&voter| voter != node_id) {
        let peers = Arc::clone(peers);
        asks.spawn(async move { peers.pre_vote(peer, timeout).await.unwrap_or(false) });
    }
    let mut yes = 1;
    while let Some(answer) = asks.join_next().await {
        yes += usize::from(answer.unwrap_or(false));
    }
    yes * 2 > voters.len()
}
