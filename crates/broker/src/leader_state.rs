//! The leader's bookkeeping for one partition: where each follower is, which replicas are in
//! sync, and the high watermark (Kafka's `Partition` leader-side state). A pure core: no IO, no
//! clock; time and offsets come in as arguments, decisions come out as values.
//!
//! Invariants:
//! - the high watermark never decreases while this leader leads, never exceeds the leader's log
//!   end offset, and never exceeds the log end offset of any replica in the *maximal* ISR (the
//!   committed ISR plus replicas being added), so everything below it is on every in-sync replica;
//! - the ISR always contains the leader;
//! - at most one ISR change is in flight at a time; it takes effect only when the controller has
//!   committed it (`on_isr_committed`), as in KIP-497.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FollowerState {
    log_end_offset: i64,
    /// The last time the follower had everything the leader had (Kafka's `lastCaughtUpTimeMs`).
    last_caught_up_ms: i64,
    /// The leader's log end offset and the time of the follower's previous fetch.
    previous_fetch_leader_log_end_offset: i64,
    previous_fetch_ms: i64,
}

#[derive(Clone, Debug)]
pub struct LeaderState {
    leader_id: i32,
    leader_epoch: i32,
    /// The first offset this leader wrote in its epoch: a follower must reach it to be in sync.
    epoch_start_offset: i64,
    isr: BTreeSet<i32>,
    pending_isr: Option<BTreeSet<i32>>,
    followers: BTreeMap<i32, FollowerState>,
    high_watermark: i64,
}

impl LeaderState {
    /// Starts leading: followers are assumed to be at the high watermark until they fetch, so a
    /// new leader never moves the high watermark backwards.
    pub fn new(
        leader_id: i32,
        leader_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        leader_log_end_offset: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> LeaderState {
        let high_watermark = high_watermark.min(leader_log_end_offset);
        let followers = replicas
            .iter()
            .filter(|&&replica| replica != leader_id)
            .map(|&replica| {
                (
                    replica,
                    FollowerState {
                        log_end_offset: high_watermark,
                        last_caught_up_ms: now_ms,
                        previous_fetch_leader_log_end_offset: -1,
                        previous_fetch_ms: now_ms,
                    },
                )
            })
            .collect();
        let mut isr: BTreeSet<i32> = isr.iter().copied().collect();
        isr.insert(leader_id);
        LeaderState {
            leader_id,
            leader_epoch,
            epoch_start_offset: leader_log_end_offset,
            isr,
            pending_isr: None,
            followers,
            high_watermark,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    pub fn isr(&self) -> &BTreeSet<i32> {
        &self.isr
    }
    pub fn has_pending_isr_change(&self) -> bool {
        self.pending_isr.is_some()
    }

    fn maximal_isr(&self) -> BTreeSet<i32> {
        let mut maximal = self.isr.clone();
        if let Some(pending) = &self.pending_isr {
            maximal.extend(pending.iter().copied());
        }
        maximal
    }

    /// Recomputes the high watermark; returns whether it advanced.
    pub fn update_high_watermark(&mut self, leader_log_end_offset: i64) -> bool {
        let lowest = self
            .maximal_isr()
            .iter()
            .filter(|&&replica| replica != self.leader_id)
            .filter_map(|replica| {
                self.followers
                    .get(replica)
                    .map(|follower| follower.log_end_offset)
            })
            .fold(leader_log_end_offset, i64::min);
        if lowest > self.high_watermark {
            self.high_watermark = lowest;
            true
        } else {
            false
        }
    }

    /// Each follower and the log end offset its last fetch showed it has.
    pub fn follower_log_end_offsets(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.followers
            .iter()
            .map(|(&replica, state)| (replica, state.log_end_offset))
    }

    /// Whether `replica` is one of this partition's followers (a replica other than the leader).
    pub fn has_follower(&self, replica: i32) -> bool {
        self.followers.contains_key(&replica)
    }

    /// A follower fetched from `fetch_offset`: it has every offset below it. Returns whether the
    /// high watermark advanced. A fetch from a replica that is not assigned is ignored.
    pub fn on_follower_fetch(
        &mut self,
        follower: i32,
        fetch_offset: i64,
        leader_log_end_offset: i64,
        now_ms: i64,
    ) -> bool {
        let Some(state) = self.followers.get_mut(&follower) else {
            return false;
        };
        if fetch_offset >= leader_log_end_offset {
            state.last_caught_up_ms = now_ms;
        } else if fetch_offset >= state.previous_fetch_leader_log_end_offset
            && state.previous_fetch_leader_log_end_offset >= 0
        {
            state.last_caught_up_ms = state.last_caught_up_ms.max(state.previous_fetch_ms);
        }
        state.log_end_offset = fetch_offset.min(leader_log_end_offset);
        state.previous_fetch_leader_log_end_offset = leader_log_end_offset;
        state.previous_fetch_ms = now_ms;
        self.update_high_watermark(leader_log_end_offset)
    }

    /// Followers in the ISR that have not caught up for `replica_lag_time_max_ms`: the ISR to
    /// propose without them, if any and if no change is in flight.
    pub fn propose_shrink(
        &self,
        now_ms: i64,
        replica_lag_time_max_ms: i64,
    ) -> Option<BTreeSet<i32>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let lagging: Vec<i32> = self
            .isr
            .iter()
            .filter(|&&replica| replica != self.leader_id)
            .filter(|replica| {
                self.followers
                    .get(replica)
                    .is_some_and(|state| now_ms - state.last_caught_up_ms > replica_lag_time_max_ms)
            })
            .copied()
            .collect();
        if lagging.is_empty() {
            return None;
        }
        Some(
            self.isr
                .iter()
                .copied()
                .filter(|replica| !lagging.contains(replica))
                .collect(),
        )
    }

    /// Followers outside the ISR that have caught up to the high watermark and this leader's
    /// epoch: the ISR to propose with them.
    pub fn propose_expand(&self) -> Option<BTreeSet<i32>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let caught_up: Vec<i32> = self
            .followers
            .iter()
            .filter(|(replica, state)| {
                !self.isr.contains(replica)
                    && state.log_end_offset >= self.high_watermark
                    && state.log_end_offset >= self.epoch_start_offset
            })
            .map(|(&replica, _)| replica)
            .collect();
        if caught_up.is_empty() {
            return None;
        }
        let mut proposed = self.isr.clone();
        proposed.extend(caught_up);
        Some(proposed)
    }

    /// Records that an ISR change was sent to the controller.
    pub fn on_isr_proposed(&mut self, proposed: BTreeSet<i32>) {
        self.pending_isr = Some(proposed);
    }

    /// The controller committed (or rejected, with `None`) the pending change.
    pub fn on_isr_committed(
        &mut self,
        committed: Option<BTreeSet<i32>>,
        leader_log_end_offset: i64,
    ) -> bool {
        self.pending_isr = None;
        if let Some(mut isr) = committed {
            isr.insert(self.leader_id);
            self.isr = isr;
        }
        self.update_high_watermark(leader_log_end_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> LeaderState {
        LeaderState::new(1, 5, &[1, 2, 3], &[1, 2, 3], 100, 90, 0)
    }

    #[test]
    fn high_watermark_is_the_lowest_log_end_offset_in_the_isr() {
        let mut leader = state();
        assert_eq!(leader.high_watermark(), 90);
        assert!(
            !leader.on_follower_fetch(2, 100, 100, 10),
            "follower 3 is still at 90"
        );
        assert!(leader.on_follower_fetch(3, 95, 100, 10));
        assert_eq!(leader.high_watermark(), 95);
        assert!(leader.on_follower_fetch(3, 100, 100, 20));
        assert_eq!(leader.high_watermark(), 100);
    }

    #[test]
    fn the_high_watermark_never_goes_backwards() {
        let mut leader = state();
        leader.on_follower_fetch(2, 100, 100, 10);
        leader.on_follower_fetch(3, 100, 100, 10);
        assert_eq!(leader.high_watermark(), 100);
        // A follower that restarted and fetches from lower down does not pull it back.
        assert!(!leader.on_follower_fetch(3, 50, 120, 20));
        assert_eq!(leader.high_watermark(), 100);
    }

    #[test]
    fn a_lagging_follower_is_proposed_out_and_a_caught_up_one_back_in() {
        let mut leader = state();
        leader.on_follower_fetch(2, 100, 100, 1_000);
        leader.on_follower_fetch(3, 90, 100, 1_000);
        assert_eq!(leader.propose_shrink(20_000, 30_000), None);
        leader.on_follower_fetch(2, 100, 100, 39_000);
        let proposed = leader
            .propose_shrink(40_000, 30_000)
            .expect("3 has lagged for 40 s");
        assert_eq!(proposed, BTreeSet::from([1, 2]));
        leader.on_isr_proposed(proposed.clone());
        assert_eq!(
            leader.propose_shrink(50_000, 30_000),
            None,
            "one change at a time"
        );
        leader.on_isr_committed(Some(proposed), 100);
        // Without 3 the high watermark follows 2 alone.
        assert_eq!(leader.high_watermark(), 100);
        leader.on_follower_fetch(3, 100, 100, 60_000);
        assert_eq!(leader.propose_expand(), Some(BTreeSet::from([1, 2, 3])));
    }

    #[test]
    fn a_replica_being_added_already_holds_back_the_high_watermark() {
        let mut leader = LeaderState::new(1, 5, &[1, 2], &[1], 100, 100, 0);
        leader.on_follower_fetch(2, 100, 100, 10);
        leader.on_isr_proposed(BTreeSet::from([1, 2]));
        leader.on_follower_fetch(2, 100, 150, 20);
        assert!(!leader.update_high_watermark(150), "2 has only 100");
        assert_eq!(leader.high_watermark(), 100);
    }
}
