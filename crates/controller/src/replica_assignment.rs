//! Where a new topic's replicas go.
//!
//! Kafka's rack-unaware scheme: partition `p`'s first replica (its preferred leader) is broker
//! `start + p` round-robin, so leaders are spread evenly; the other replicas follow it at a shift
//! that changes every full round of brokers, so when a broker fails its partitions' leadership is
//! spread over several brokers instead of all landing on its neighbour.

/// Assigns `replication_factor` distinct brokers to each of `partitions` partitions.
///
/// # Panics
/// If `brokers` is empty, holds duplicates, or has fewer entries than `replication_factor`:
/// the caller validates those first.
pub(crate) fn assign_replicas(
    brokers: &[i32],
    partitions: i32,
    replication_factor: i32,
    start: usize,
) -> Vec<Vec<i32>> {
    let broker_count = brokers.len();
    let replication_factor = usize::try_from(replication_factor).unwrap_or(0);
    assert!(replication_factor >= 1 && replication_factor <= broker_count);
    assert!(
        brokers.windows(2).all(|pair| pair[0] < pair[1]),
        "brokers must be sorted and distinct"
    );
    let assignment: Vec<Vec<i32>> = (0..usize::try_from(partitions).unwrap_or(0))
        .map(|partition| {
            let first = (start + partition) % broker_count;
            let mut replicas = Vec::with_capacity(replication_factor);
            replicas.push(brokers[first]);
            if broker_count > 1 {
                let shift = (partition / broker_count) % (broker_count - 1);
                for follower in 1..replication_factor {
                    // Offsets 1..broker_count-1 taken `replication_factor - 1` at a time, never 0,
                    // so no follower lands on the leader or on another follower.
                    let offset = 1 + (shift + follower - 1) % (broker_count - 1);
                    replicas.push(brokers[(first + offset) % broker_count]);
                }
            }
            replicas
        })
        .collect();
    debug_assert!(assignment.iter().all(|replicas| {
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        sorted.dedup();
        sorted.len() == replicas.len()
    }));
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn counts(values: impl Iterator<Item = i32>) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for value in values {
            *counts.entry(value).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn replicas_are_distinct_and_leaders_and_replicas_balanced() {
        let brokers = [1, 2, 3, 4];
        for replication_factor in 1..=4 {
            for start in 0..4 {
                let assignment = assign_replicas(&brokers, 12, replication_factor, start);
                assert_eq!(assignment.len(), 12);
                for replicas in &assignment {
                    assert_eq!(replicas.len(), replication_factor as usize);
                    let mut sorted = replicas.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    assert_eq!(sorted.len(), replicas.len(), "{replicas:?}");
                }
                let leaders = counts(assignment.iter().map(|replicas| replicas[0]));
                assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![3; 4]);
                let all = counts(assignment.iter().flatten().copied());
                assert!(
                    all.values()
                        .all(|&count| count == 3 * replication_factor as usize),
                    "{all:?}"
                );
            }
        }
    }

    #[test]
    fn followers_of_one_leader_vary_across_rounds() {
        let assignment = assign_replicas(&[1, 2, 3], 6, 2, 0);
        // Broker 1 leads partitions 0 and 3; their followers differ, so losing broker 1 does not
        // hand both to the same broker.
        assert_eq!(assignment[0][0], 1);
        assert_eq!(assignment[3][0], 1);
        assert_ne!(assignment[0][1], assignment[3][1]);
    }

    #[test]
    fn uneven_partition_counts_keep_leaders_within_one() {
        let assignment = assign_replicas(&[1, 2, 3], 7, 3, 2);
        let leaders = counts(assignment.iter().map(|replicas| replicas[0]));
        let most = leaders.values().max().copied().unwrap_or(0);
        let least = leaders.values().min().copied().unwrap_or(0);
        assert!(most - least <= 1, "{leaders:?}");
    }
}
