//! Strata's topic ids as Kafka's topic UUIDs.
//!
//! The controller gives each topic a 32-hex-digit id (`TopicMetadata::topic_id`), the same on
//! every broker and across restarts because it is part of the replicated metadata. Read as a
//! 128-bit number it is a Kafka UUID, so no table of its own is needed: the id a client learns
//! from Metadata is the id it names the topic by in DeleteTopics, Metadata, Fetch or a KIP-848
//! assignment, on any broker.

use strata_controller::{MetadataState, TopicMetadata};
use uuid::Uuid;

/// Kafka's UNKNOWN_TOPIC_ID: no `ErrorCode` of Strata's, since its own requests name topics.
pub(super) const UNKNOWN_TOPIC_ID: i16 = 100;

/// `topic`'s id as a Kafka UUID; the nil UUID (Kafka's "no id") for an id that is not 32 hex
/// digits, which the controller never writes.
pub(super) fn kafka_topic_id(topic: &TopicMetadata) -> Uuid {
    // `from_str_radix` alone would take a leading sign.
    if topic.topic_id.len() != 32 || !topic.topic_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Uuid::nil();
    }
    u128::from_str_radix(&topic.topic_id, 16).map_or(Uuid::nil(), Uuid::from_u128)
}

/// The topic whose Kafka id is `id`. A scan of the topics: a request names a few ids, and an
/// index would have to follow every metadata change.
pub(super) fn topic_by_id(state: &MetadataState, id: Uuid) -> Option<&TopicMetadata> {
    if id.is_nil() {
        return None;
    }
    state
        .topics
        .values()
        .find(|topic| kafka_topic_id(topic) == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(topic_id: &str) -> TopicMetadata {
        TopicMetadata {
            topic_id: topic_id.to_string(),
            name: "orders".to_string(),
            configs: Default::default(),
            partitions: Vec::new(),
        }
    }

    #[test]
    fn a_strata_id_reads_as_the_uuid_with_the_same_digits() {
        let id = kafka_topic_id(&topic("0123456789abcdef0123456789abcdef"));
        assert_eq!(id.simple().to_string(), "0123456789abcdef0123456789abcdef");
        assert!(kafka_topic_id(&topic("not hex")).is_nil());
        assert!(kafka_topic_id(&topic("+123456789abcdef0123456789abcdef")).is_nil());
    }

    #[test]
    fn ids_resolve_to_their_topic_and_the_nil_id_to_none() {
        let mut state = MetadataState::default();
        state.topics.insert(
            "orders".to_string(),
            topic("0123456789abcdef0123456789abcdef"),
        );
        let id = Uuid::from_u128(0x0123456789abcdef0123456789abcdef);
        assert_eq!(
            topic_by_id(&state, id).map(|t| t.name.as_str()),
            Some("orders")
        );
        assert!(topic_by_id(&state, Uuid::from_u128(1)).is_none());
        assert!(topic_by_id(&state, Uuid::nil()).is_none());
    }
}
