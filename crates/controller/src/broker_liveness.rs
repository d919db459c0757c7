//! Which brokers the controller leader fences or unfences now, and whether an election is due.
//!
//! A pure function of the metadata and two times, so the decision is tested without a cluster or a
//! clock; the leader driver in `controller.rs` calls it every heartbeat interval and proposes the
//! commands it returns.

use crate::metadata_command::MetadataCommand;
use crate::metadata_state::MetadataState;

/// The commands that bring the brokers' fenced flags in line with their sessions, in the order to
/// propose them.
///
/// - An unfenced broker whose last heartbeat is older than `session_timeout_ms` is fenced. After a
///   controller failover the session counts from half a session timeout before `leader_since_ms`
///   at the earliest: heartbeats cannot reach a leader that does not exist yet, so a new leader
///   must give live brokers time to find it, but half a session covers two of their heartbeats
///   (they send four per session), and a full one would leave a dead broker's partitions
///   leaderless for a whole session after every election. Fencing that soon is still safe: a
///   broker leads only within its lease, three quarters of a session from the last heartbeat the
///   quorum committed, and no new Raft leader is elected within openraft's leader lease (twice
///   the election timeout, which `ControllerConfig::validate` keeps at least a quarter of a
///   session) of the last entry the old one replicated, so by `leader_since_ms` plus half a
///   session every lease granted before the failover has run out.
/// - A fenced broker whose heartbeat is fresher than half the session timeout is unfenced, unless
///   it reported a log directory offline or announced a controlled shutdown. The gap between the
///   two thresholds keeps a broker at the edge from flapping.
/// - If afterwards some leaderless partition has an eligible replica, `ElectLeaders` follows.
pub fn liveness_commands(
    state: &MetadataState,
    now_ms: i64,
    leader_since_ms: i64,
    session_timeout_ms: i64,
) -> Vec<MetadataCommand> {
    let mut commands = Vec::new();
    for broker in state.brokers.values() {
        if broker.fenced {
            if broker.offline_log_dirs.is_empty()
                && !broker.shutting_down
                && now_ms.saturating_sub(broker.last_heartbeat_ms) <= session_timeout_ms / 2
            {
                commands.push(MetadataCommand::UnfenceBroker {
                    broker_id: broker.broker_id,
                });
            }
        } else {
            let session_start_ms = broker
                .last_heartbeat_ms
                .max(leader_since_ms.saturating_sub(session_timeout_ms / 2));
            if now_ms.saturating_sub(session_start_ms) > session_timeout_ms {
                commands.push(MetadataCommand::FenceBroker {
                    broker_id: broker.broker_id,
                });
            }
        }
    }
    // Decide on the election from the state these commands will produce, so one tick both fences a
    // broker and hands its partitions on, or unfences one and gives it back what only it can lead.
    let mut next = state.clone();
    for command in &commands {
        if let Err(error) = next.apply(command.clone()) {
            // Fence and unfence of a registered broker cannot be refused.
            unreachable!("liveness command {command:?} was refused: {error}");
        }
    }
    if !next.electable_partitions().is_empty() {
        commands.push(MetadataCommand::ElectLeaders);
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata_state::NO_LEADER;
    use std::collections::BTreeMap;
    use strata_common::TopicPartition;

    const TIMEOUT_MS: i64 = 2_000;

    fn cluster(heartbeats_ms: &[(i32, i64)]) -> MetadataState {
        let mut state = MetadataState::new();
        for &(broker_id, now_ms) in heartbeats_ms {
            state
                .apply(MetadataCommand::RegisterBroker {
                    broker_id,
                    address: format!("h:{}", 9000 + broker_id),
                    incarnation: 1,
                    now_ms,
                    kafka_address: None,
                })
                .expect("registers");
        }
        state
    }

    #[test]
    fn fences_only_brokers_whose_session_expired() {
        let state = cluster(&[(1, 10_000), (2, 7_999), (3, 8_000)]);
        assert_eq!(
            liveness_commands(&state, 10_000, 0, TIMEOUT_MS),
            vec![MetadataCommand::FenceBroker { broker_id: 2 }]
        );
        assert!(liveness_commands(&state, 9_999, 0, TIMEOUT_MS).is_empty());
    }

    #[test]
    fn a_new_leader_grants_every_broker_half_a_session_to_find_it() {
        // The last heartbeat is long past, but the leader took over at 9,000.
        let state = cluster(&[(1, 1_000)]);
        assert!(liveness_commands(&state, 9_500, 9_000, TIMEOUT_MS).is_empty());
        assert!(liveness_commands(&state, 10_000, 9_000, TIMEOUT_MS).is_empty());
        assert_eq!(
            liveness_commands(&state, 10_001, 9_000, TIMEOUT_MS),
            vec![MetadataCommand::FenceBroker { broker_id: 1 }]
        );
        // A heartbeat after the failover counts in full.
        let state = cluster(&[(1, 9_800)]);
        assert!(liveness_commands(&state, 11_800, 9_000, TIMEOUT_MS).is_empty());
    }

    #[test]
    fn a_broker_that_announced_its_shutdown_stays_fenced_despite_fresh_heartbeats() {
        let mut state = cluster(&[(1, 10_000), (2, 10_000)]);
        let epoch = state.broker(1).map_or(0, |broker| broker.broker_epoch);
        state
            .apply(MetadataCommand::ControlledShutdown {
                broker_id: 1,
                broker_epoch: epoch,
            })
            .expect("applies");
        assert!(state.broker(1).is_some_and(|broker| broker.fenced));
        assert!(liveness_commands(&state, 10_100, 0, TIMEOUT_MS).is_empty());
        // Until it registers again, as the restarted process does.
        state
            .apply(MetadataCommand::RegisterBroker {
                broker_id: 1,
                address: "h:9001".to_string(),
                incarnation: 2,
                now_ms: 10_200,
                kafka_address: None,
            })
            .expect("registers");
        assert!(state.broker(1).is_some_and(|broker| !broker.fenced));
        // A shutdown announced under the old registration cannot fence the new one.
        assert!(
            state
                .apply(MetadataCommand::ControlledShutdown {
                    broker_id: 1,
                    broker_epoch: epoch,
                })
                .is_err()
        );
    }

    #[test]
    fn fencing_a_leader_elects_only_when_someone_can_lead() {
        let mut state = cluster(&[(1, 10_000), (2, 10_000)]);
        state
            .apply(MetadataCommand::CreateTopic {
                name: "t".to_string(),
                partitions: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
            })
            .expect("creates");
        let leader = state
            .partition(&TopicPartition::new("t", 0))
            .map_or(NO_LEADER, |partition| partition.leader);
        // The sole replica's session expires: fence it, and no election, since nobody else may lead.
        let commands = liveness_commands(&state, 13_000, 0, TIMEOUT_MS);
        assert_eq!(
            commands,
            vec![
                MetadataCommand::FenceBroker { broker_id: 1 },
                MetadataCommand::FenceBroker { broker_id: 2 },
            ]
        );
        for command in commands {
            state.apply(command).expect("applies");
        }
        // It heartbeats again: unfence it and elect it back in one tick.
        let epoch = state.broker(leader).map_or(0, |broker| broker.broker_epoch);
        state
            .apply(MetadataCommand::BrokerHeartbeat {
                broker_id: leader,
                broker_epoch: epoch,
                now_ms: 14_000,
                offline_log_dirs: Vec::new(),
            })
            .expect("heartbeat");
        assert_eq!(
            liveness_commands(&state, 14_500, 0, TIMEOUT_MS),
            vec![
                MetadataCommand::UnfenceBroker { broker_id: leader },
                MetadataCommand::ElectLeaders
            ]
        );
        // Not fresh enough yet: half the session timeout is the bar.
        assert!(liveness_commands(&state, 15_001, 0, TIMEOUT_MS).is_empty());
    }
}
