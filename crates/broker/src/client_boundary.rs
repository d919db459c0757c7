//! What a client may ask of a broker, checked where client requests enter (the client side of the
//! trust boundary; `ARCHITECTURE.md`, "Trust boundaries").
//!
//! - **Internal topics** (`__consumer_offsets`, any name starting with `__`) are the cluster's
//!   own state. Clients may read them, but may not produce to, create, delete or alter them: a
//!   record a client slipped into `__consumer_offsets` would make every group of that partition
//!   undecodable after the next load. The broker writes them through the `ReplicaManager`
//!   directly, never through these checks.
//! - **Control and transactional batches** are written by brokers (transaction markers) once
//!   transactions exist; a client batch that claims either bit is refused with `INVALID_RECORD`,
//!   since readers would skip it or fail on it.
//!
//! Inter-broker calls (replication, the controller's Raft) are not served on the client
//! listener at all; see `crate::BrokerConfig::internal_listen`.

use crate::error::PartitionError;
use bytes::Bytes;
use strata_common::{ErrorCode, is_internal_topic};
use strata_record::{BatchIter, RecordBatch};

/// What a client tried to do to a topic, for the refusal's message.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TopicAction {
    Produce,
    Create,
    Delete,
    AlterConfigs,
    CreatePartitions,
    DeleteRecords,
}

impl TopicAction {
    fn verb(self) -> &'static str {
        match self {
            TopicAction::Produce => "produce to",
            TopicAction::Create => "create",
            TopicAction::Delete => "delete",
            TopicAction::AlterConfigs => "alter the configs of",
            TopicAction::CreatePartitions => "add partitions to",
            TopicAction::DeleteRecords => "delete the records of",
        }
    }
}

/// Refuses `action` on an internal topic.
pub(crate) fn check_topic_action(topic: &str, action: TopicAction) -> Result<(), PartitionError> {
    if is_internal_topic(topic) {
        return Err(PartitionError::new(
            ErrorCode::InvalidTopicException,
            format!(
                "'{topic}' is an internal topic (its name starts with '__'); clients may not {} it",
                action.verb()
            ),
        ));
    }
    Ok(())
}

/// Everything a client's produce to `topic` must satisfy before the log sees it: a topic clients
/// may write, and batches that claim nothing only a broker may write. Walks batch headers only;
/// the log validates the records themselves.
pub(crate) fn check_produce(topic: &str, records: &Bytes) -> Result<(), PartitionError> {
    check_topic_action(topic, TopicAction::Produce)?;
    // Framing errors are left to the log's validation, which reports them in full.
    for batch in BatchIter::new(records.clone()).map_while(Result::ok) {
        check_client_batch(topic, &batch)?;
    }
    Ok(())
}

fn check_client_batch(topic: &str, batch: &RecordBatch) -> Result<(), PartitionError> {
    let claim = if batch.is_control() {
        "a control batch (attributes bit 5)"
    } else if batch.is_transactional() {
        "a transactional batch (attributes bit 4); transactions are not supported yet"
    } else {
        return Ok(());
    };
    Err(PartitionError::new(
        ErrorCode::InvalidRecord,
        format!("a client may not produce {claim} to '{topic}'"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_record::RecordBatchBuilder;

    fn batch_with_attributes(bits: i16) -> Bytes {
        let mut builder = RecordBatchBuilder::new();
        builder.push(1, Some(b"k"), Some(b"v"), &[]);
        let mut bytes = builder.build().into_bytes().to_vec();
        let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | bits;
        bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
        Bytes::from(bytes)
    }

    #[test]
    fn internal_topics_are_closed_to_every_client_action() {
        for action in [
            TopicAction::Produce,
            TopicAction::Create,
            TopicAction::Delete,
            TopicAction::AlterConfigs,
            TopicAction::CreatePartitions,
        ] {
            let error = check_topic_action("__consumer_offsets", action).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidTopicException);
            assert!(
                error.message.contains("internal topic"),
                "{}",
                error.message
            );
            assert!(check_topic_action("orders", action).is_ok());
        }
    }

    #[test]
    fn control_and_transactional_batches_are_refused_ordinary_ones_pass() {
        assert!(check_produce("orders", &batch_with_attributes(0)).is_ok());
        for bits in [0x20, 0x10, 0x30] {
            let error = check_produce("orders", &batch_with_attributes(bits)).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidRecord, "{bits:#x}");
        }
    }
}
