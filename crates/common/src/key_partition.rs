//! Kafka's default partitioner for keyed records: the one place Strata computes it, so the
//! client's producer and the broker's record-level produce (which partitions for callers that
//! do not) put a key on the same partition, and on the partition Kafka would.

/// The seed Kafka's `Utils.murmur2` uses.
const MURMUR2_SEED: u32 = 0x9747_b28c;

/// MurmurHash2 (32-bit) exactly as Kafka's `org.apache.kafka.common.utils.Utils.murmur2`
/// computes it, returned as Java's signed `int`.
///
/// Kafka reads the input as little-endian 4-byte words and mixes the 1–3 trailing bytes in the
/// order 3rd, 2nd, 1st; any deviation would move keys to different partitions than Kafka's.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut hash: u32 = MURMUR2_SEED ^ length;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M);
        hash ^= k;
    }
    let tail = words.remainder();
    if tail.len() >= 3 {
        hash ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        hash ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        hash ^= u32::from(tail[0]);
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    hash as i32
}

/// The partition Kafka's default partitioner picks for a key.
///
/// # Panics
/// When `partition_count` is not positive: callers look the count up in metadata first, and a
/// topic always has at least one partition.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    assert!(partition_count > 0, "a topic has at least one partition");
    // Kafka's `Utils.toPositive`: clear the sign bit rather than take the absolute value, so
    // i32::MIN maps somewhere valid.
    (murmur2(key) & 0x7fff_ffff) % partition_count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Expected values from Kafka's UtilsTest and librdkafka's rdmurmur2 tests.
        let cases: &[(&str, i32)] = &[
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
            ("1", -1_993_445_489),
            ("12", 126_087_238),
            ("123", -267_702_483),
            ("1234", -1_614_185_708),
            ("12345", -1_188_365_604),
        ];
        for &(input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "murmur2({input:?})");
        }
    }
}
