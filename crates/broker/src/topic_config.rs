//! Topic configuration: Kafka's config keys, their defaults, validation, and how they map onto
//! the storage crate's `LogConfig`.

use std::collections::BTreeMap;
use strata_common::ErrorCode;
use strata_record::{CompressionType, TimestampType};
use strata_storage::LogConfig;

use crate::error::PartitionError;

/// Kafka's "no limit" for flush settings.
const NEVER: &str = "9223372036854775807";

/// Every supported key with its default, in the order `describe` lists them.
const KEYS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("flush.messages", NEVER),
    ("flush.ms", NEVER),
    ("index.interval.bytes", "4096"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("min.insync.replicas", "1"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.index.bytes", "10485760"),
    ("segment.ms", "604800000"),
    ("unclean.leader.election.enable", "false"),
];

/// A topic's configuration resolved into the settings each layer uses.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicConfig {
    pub log: LogConfig,
    pub min_insync_replicas: i32,
    pub unclean_leader_election: bool,
}

fn invalid(message: String) -> PartitionError {
    PartitionError::new(ErrorCode::InvalidConfig, message)
}

fn parse_i64(key: &str, value: &str) -> Result<i64, PartitionError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| invalid(format!("{key} must be an integer, got '{value}'")))
}

/// `-1` (or Kafka's `Long.MAX_VALUE` for flush settings) means "no limit".
fn parse_limit(key: &str, value: &str) -> Result<Option<i64>, PartitionError> {
    match parse_i64(key, value)? {
        -1 | i64::MAX => Ok(None),
        limit if limit > 0 => Ok(Some(limit)),
        limit => Err(invalid(format!(
            "{key} must be positive or -1, got {limit}"
        ))),
    }
}

fn parse_positive(key: &str, value: &str) -> Result<i64, PartitionError> {
    match parse_i64(key, value)? {
        positive if positive > 0 => Ok(positive),
        other => Err(invalid(format!("{key} must be positive, got {other}"))),
    }
}

impl TopicConfig {
    /// Checks that every key is known; values are checked by `resolve`.
    pub fn check_keys(overrides: &BTreeMap<String, String>) -> Result<(), PartitionError> {
        for key in overrides.keys() {
            if !KEYS.iter().any(|(known, _)| known == key) {
                let known: Vec<&str> = KEYS.iter().map(|(known, _)| *known).collect();
                return Err(invalid(format!(
                    "unknown topic config '{key}'; supported: {}",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Resolves a topic's overrides over the defaults.
    pub fn resolve(overrides: &BTreeMap<String, String>) -> Result<TopicConfig, PartitionError> {
        TopicConfig::check_keys(overrides)?;
        let value = |key: &str| -> String {
            overrides.get(key).cloned().unwrap_or_else(|| {
                KEYS.iter()
                    .find(|(known, _)| *known == key)
                    .expect("known key")
                    .1
                    .to_string()
            })
        };
        let cleanup_policy = value("cleanup.policy");
        if cleanup_policy != "delete" {
            return Err(invalid(format!(
                "cleanup.policy '{cleanup_policy}' is not supported; only 'delete' is"
            )));
        }
        let message_timestamp_type = match value("message.timestamp.type").as_str() {
            "CreateTime" => TimestampType::CreateTime,
            "LogAppendTime" => TimestampType::LogAppendTime,
            other => {
                return Err(invalid(format!(
                    "message.timestamp.type must be CreateTime or LogAppendTime, got '{other}'"
                )));
            }
        };
        let compression_type = match value("compression.type").as_str() {
            "producer" => None,
            // Kafka's topic-config name for no compression; "none", the producer's, works too.
            "uncompressed" => Some(CompressionType::None),
            other => Some(other.parse::<CompressionType>().map_err(|_| {
                invalid(format!(
                    "compression.type must be producer, uncompressed, gzip, snappy, lz4 or \
                     zstd, got '{other}'"
                ))
            })?),
        };
        let unclean_leader_election = match value("unclean.leader.election.enable").as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(invalid(format!(
                    "unclean.leader.election.enable must be true or false, got '{other}'"
                )));
            }
        };
        let min_insync_replicas =
            parse_positive("min.insync.replicas", &value("min.insync.replicas"))?;
        let log = LogConfig {
            segment_bytes: parse_positive("segment.bytes", &value("segment.bytes"))? as u64,
            segment_ms: parse_limit("segment.ms", &value("segment.ms"))?,
            retention_ms: parse_limit("retention.ms", &value("retention.ms"))?,
            retention_bytes: parse_limit("retention.bytes", &value("retention.bytes"))?
                .map(|bytes| bytes as u64),
            max_message_bytes: parse_positive("max.message.bytes", &value("max.message.bytes"))?
                as usize,
            index_interval_bytes: parse_positive(
                "index.interval.bytes",
                &value("index.interval.bytes"),
            )? as u64,
            segment_index_bytes: parse_positive(
                "segment.index.bytes",
                &value("segment.index.bytes"),
            )? as u64,
            flush_messages: parse_limit("flush.messages", &value("flush.messages"))?
                .map(|messages| messages as u64),
            flush_ms: parse_limit("flush.ms", &value("flush.ms"))?,
            message_timestamp_type,
            compression_type,
            // Broker-wide in Kafka (producer.id.expiration.ms), not topic configs.
            ..LogConfig::default()
        };
        log.validate().map_err(|error| invalid(error.to_string()))?;
        Ok(TopicConfig {
            log,
            min_insync_replicas: i32::try_from(min_insync_replicas).unwrap_or(i32::MAX),
            unclean_leader_election,
        })
    }

    /// Every key with its effective value and whether that value is the default.
    pub fn describe(overrides: &BTreeMap<String, String>) -> Vec<(String, String, bool)> {
        KEYS.iter()
            .map(|(key, default)| match overrides.get(*key) {
                Some(value) => (key.to_string(), value.clone(), false),
                None => (key.to_string(), default.to_string(), true),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_kafka() {
        let config = TopicConfig::resolve(&BTreeMap::new()).unwrap();
        assert_eq!(config.log.retention_ms, Some(604_800_000));
        assert_eq!(config.log.retention_bytes, None);
        assert_eq!(config.log.flush_messages, None);
        assert_eq!(config.log.max_message_bytes, 1_048_588);
        assert_eq!(config.min_insync_replicas, 1);
        assert_eq!(config.log.compression_type, None, "producer");
    }

    #[test]
    fn compression_type_takes_kafkas_values() {
        for (value, codec) in [
            ("producer", None),
            ("uncompressed", Some(CompressionType::None)),
            ("none", Some(CompressionType::None)),
            ("gzip", Some(CompressionType::Gzip)),
            ("snappy", Some(CompressionType::Snappy)),
            ("lz4", Some(CompressionType::Lz4)),
            ("zstd", Some(CompressionType::Zstd)),
        ] {
            let config = TopicConfig::resolve(&overrides(&[("compression.type", value)])).unwrap();
            assert_eq!(config.log.compression_type, codec, "{value}");
        }
    }

    #[test]
    fn overrides_apply_and_bad_values_are_refused() {
        let config = TopicConfig::resolve(&overrides(&[
            ("retention.ms", "-1"),
            ("flush.messages", "1"),
            ("segment.bytes", "1048576"),
        ]))
        .unwrap();
        assert_eq!(config.log.retention_ms, None);
        assert_eq!(config.log.flush_messages, Some(1));
        assert_eq!(config.log.segment_bytes, 1 << 20);
        for bad in [
            ("retention.ms", "soon"),
            ("segment.bytes", "0"),
            ("cleanup.policy", "compact"),
            ("no.such.key", "1"),
            ("message.timestamp.type", "Later"),
            ("compression.type", "brotli"),
        ] {
            let error = TopicConfig::resolve(&overrides(&[bad])).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidConfig, "{bad:?}");
            assert!(error.message.contains(bad.0), "{}", error.message);
        }
    }
}
