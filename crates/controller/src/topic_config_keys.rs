//! Which topic config keys the controller accepts.
//!
//! The list is a copy of `KEYS` in `crates/broker/src/topic_config.rs`, taken while the broker
//! still owns topic configuration; when the broker moves onto this controller, one of the two
//! copies goes (the broker should then read the list from here). The controller checks keys and
//! the one value it interprets itself (`unclean.leader.election.enable`); the broker checks the
//! other values, because it owns what they mean.

use crate::error::CommandRejected;
use std::collections::BTreeMap;
use strata_common::ErrorCode;

/// Every supported topic config key, as the broker lists them.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.ms",
    UNCLEAN_LEADER_ELECTION,
];

/// Lets a replica outside the ISR become leader when no ISR member can (and lose what it lacks).
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

pub(crate) fn check_key(key: &str) -> Result<(), CommandRejected> {
    if TOPIC_CONFIG_KEYS.contains(&key) {
        return Ok(());
    }
    Err(CommandRejected::new(
        ErrorCode::InvalidConfig,
        format!(
            "unknown topic config '{key}'; supported: {}",
            TOPIC_CONFIG_KEYS.join(", ")
        ),
    ))
}

/// Checks the keys of a set of overrides and the values the controller interprets.
pub(crate) fn check_overrides(overrides: &BTreeMap<String, String>) -> Result<(), CommandRejected> {
    for (key, value) in overrides {
        check_key(key)?;
        if key == UNCLEAN_LEADER_ELECTION && value != "true" && value != "false" {
            return Err(CommandRejected::new(
                ErrorCode::InvalidConfig,
                format!("{UNCLEAN_LEADER_ELECTION} must be true or false, got '{value}'"),
            ));
        }
    }
    Ok(())
}

/// Whether the overrides enable unclean leader election; off unless set to `true`, as in Kafka.
pub(crate) fn unclean_leader_election(overrides: &BTreeMap<String, String>) -> bool {
    overrides
        .get(UNCLEAN_LEADER_ELECTION)
        .is_some_and(|value| value == "true")
}
