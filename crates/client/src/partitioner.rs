//! Chooses the partition of a record that does not name one.
//!
//! Keyed records go where Kafka's default partitioner sends them: `murmur2(key)`, made positive,
//! modulo the partition count. Using Kafka's exact hash means a topic migrated from Kafka keeps
//! every key on the partition it was on, so per-key order survives the move.
//!
//! Records without a key are "sticky": they all go to one partition until that partition's batch
//! is closed (full or sent), then the next partition in turn takes over. Compared with
//! round-robin per record this sends a few large batches instead of many tiny ones, while still
//! spreading load over time (KIP-480).

use std::collections::BTreeMap;

pub use strata_common::{murmur2, partition_for_key};

/// The sticky choice for records without a key, per topic.
///
/// Ordered maps: a keyless record looks its topic up here, and comparing a producer's few topic
/// names costs less than hashing the name with SipHash for every record.
#[derive(Debug, Default)]
pub(crate) struct Partitioner {
    sticky: BTreeMap<String, i32>,
    /// Where each topic's rotation goes next, so successive sticky partitions cover all of them.
    next: BTreeMap<String, i32>,
}

impl Partitioner {
    /// The partition for a record of `topic`: by key hash when it has a key, else the topic's
    /// current sticky partition.
    pub(crate) fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        partition_count: i32,
    ) -> i32 {
        if let Some(key) = key {
            return partition_for_key(key, partition_count);
        }
        if let Some(&sticky) = self.sticky.get(topic)
            && sticky < partition_count
        {
            return sticky;
        }
        self.advance(topic, partition_count)
    }

    /// Called when a batch of `topic`/`partition` is closed. When it was the sticky partition,
    /// the next keyless record starts a batch on the following partition.
    pub(crate) fn on_batch_closed(&mut self, topic: &str, partition: i32) {
        if self.sticky.get(topic) == Some(&partition) {
            self.sticky.remove(topic);
        }
    }

    fn advance(&mut self, topic: &str, partition_count: i32) -> i32 {
        let next = self.next.entry(topic.to_string()).or_insert(0);
        let chosen = *next % partition_count;
        *next = (chosen + 1) % partition_count;
        self.sticky.insert(topic.to_string(), chosen);
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_map_to_the_same_partition() {
        for count in 1..=16 {
            for key in ["user-1", "user-2", "", "ключ", "a-little-bit-long-string"] {
                let first = partition_for_key(key.as_bytes(), count);
                assert!((0..count).contains(&first));
                assert_eq!(first, partition_for_key(key.as_bytes(), count));
                let mut partitioner = Partitioner::default();
                assert_eq!(
                    partitioner.partition("t", Some(key.as_bytes()), count),
                    first
                );
            }
        }
    }

    #[test]
    fn keys_spread_over_every_partition() {
        let count = 8;
        let mut hits = vec![0u32; count as usize];
        for i in 0..8_000 {
            hits[partition_for_key(format!("key-{i}").as_bytes(), count) as usize] += 1;
        }
        // A uniform hash puts about 1000 keys on each; allow a wide margin.
        for (partition, &hit) in hits.iter().enumerate() {
            assert!(
                (700..1300).contains(&hit),
                "partition {partition} got {hit} of 8000 keys"
            );
        }
    }

    #[test]
    fn keyless_records_stick_until_the_batch_closes() {
        let mut partitioner = Partitioner::default();
        let first = partitioner.partition("t", None, 3);
        assert_eq!(partitioner.partition("t", None, 3), first);
        assert_eq!(partitioner.partition("t", None, 3), first);
        // Another partition's batch closing does not move the sticky choice.
        partitioner.on_batch_closed("t", (first + 1) % 3);
        assert_eq!(partitioner.partition("t", None, 3), first);

        let mut seen = vec![first];
        for _ in 0..2 {
            partitioner.on_batch_closed("t", *seen.last().expect("one chosen"));
            seen.push(partitioner.partition("t", None, 3));
        }
        seen.sort();
        assert_eq!(
            seen,
            vec![0, 1, 2],
            "the sticky partition rotates over all partitions"
        );
    }

    #[test]
    fn sticky_choice_survives_a_shrinking_partition_count() {
        let mut partitioner = Partitioner::default();
        for _ in 0..3 {
            let partition = partitioner.partition("t", None, 4);
            partitioner.on_batch_closed("t", partition);
        }
        let partition = partitioner.partition("t", None, 4);
        assert_eq!(partition, 3);
        assert!((0..2).contains(&partitioner.partition("t", None, 2)));
    }
}
