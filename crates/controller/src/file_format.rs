//! The format version of the controller's durable JSON, and how a versioned value is spelled.
//!
//! Format: every JSON value the controller keeps on disk — each Raft log entry (a frame's
//! payload), the vote, the purge point, the committed hint and the snapshot — is written as
//! `{"version":1,"<kind>":<value>}`, the value tagged with the format version that gives its
//! fields their meaning (`kind` is `entry`, `vote`, `purged`, `committed` or `snapshot`). The
//! identity file has carried its version as `format_version` since the first release, and it is
//! the same number. One number covers the whole controller directory: a format change to any
//! file is a new version of all of them, which keeps "which build can read this directory" a
//! single question.
//!
//! The version sits in each value rather than in a file or segment header because a log
//! segment is appended to by whichever build is running: a log written across an upgrade holds
//! frames of both builds, and each frame says for itself how to read it (as each Kafka record
//! batch carries its magic byte). It costs about twenty bytes per entry.
//!
//! Invariants:
//! - a build writes [`FORMAT_VERSION`] and reads every version in [`SUPPORTED_FORMAT_VERSIONS`];
//!   any other version is refused with [`ControllerError::DataDirectoryMismatch`] naming the
//!   file, the version found and the versions supported, rather than guessed at (a newer build
//!   probably wrote it; the node must not start on a history it cannot read);
//! - within a version, new fields must be optional (`#[serde(default)]`); renaming or removing a
//!   field, or changing an enum (`MetadataCommand`, `MetadataState`, openraft's types after an
//!   upgrade), is a new version, and `tests/golden/` fails until it is one;
//! - a versioned value has exactly the two fields `version` and `kind`.
//!
//! Why reading older directories is safe: before versions were written, each file held the bare
//! value (`{"log_id":...,"payload":...}` for an entry), and deployed clusters still hold those.
//! Their content is exactly version 1's — the version was only made explicit — so a bare value
//! reads as version 1. The two are told apart by the `version` field, which no bare value has at
//! its top level. The cost is one way: once this build has written to a directory, a build from
//! before versions were written refuses it (`not a log entry: missing field log_id`), so
//! downgrading past this change is not supported.
//!
//! Not covered here: the Raft RPC payloads (`network`, `grpc_service`) are JSON too but never
//! stored, and they carry no version; see `grpc_service`'s module doc for mixed-version clusters.

use crate::error::ControllerError;
use serde::de::DeserializeOwned;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::Path;

/// The format version this build writes.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// The format versions this build reads; a bare value written before versions is version 1.
pub(crate) const SUPPORTED_FORMAT_VERSIONS: RangeInclusive<u32> = 1..=FORMAT_VERSION;

/// A value tagged with [`FORMAT_VERSION`]; the version is written first so a reader of the raw
/// bytes sees it before the value.
struct Versioned<'a, T> {
    kind: &'static str,
    value: &'a T,
}

impl<T: Serialize> Serialize for Versioned<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("version", &FORMAT_VERSION)?;
        map.serialize_entry(self.kind, self.value)?;
        map.end()
    }
}

/// `{"version":<FORMAT_VERSION>,"<kind>":<value>}`.
pub(crate) fn encode<T: Serialize>(kind: &'static str, value: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Versioned { kind, value })
}

/// Why a stored value could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Not JSON, or not a `kind` of the version it claims.
    Malformed(String),
    /// A version this build does not read.
    UnsupportedVersion { found: u64 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Malformed(reason) => formatter.write_str(reason),
            DecodeError::UnsupportedVersion { found } => write!(
                formatter,
                "format version {found} is not supported: this build reads versions {} to {} \
                 (and values written without a version as version 1); a newer Strata probably \
                 wrote it, so run that build or a newer one on this directory",
                SUPPORTED_FORMAT_VERSIONS.start(),
                SUPPORTED_FORMAT_VERSIONS.end()
            ),
        }
    }
}

impl DecodeError {
    /// The controller error for a value read from `path`; `at` says where in the file (empty
    /// for a whole file), `what` what the value should have been.
    pub(crate) fn at(self, path: &Path, at: &str, what: &str) -> ControllerError {
        match self {
            DecodeError::UnsupportedVersion { .. } => {
                ControllerError::DataDirectoryMismatch(format!("{}: {at}{self}", path.display()))
            }
            DecodeError::Malformed(reason) => ControllerError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("{at}not {what}: {reason}"),
            },
        }
    }
}

/// Checks a version read from a file against [`SUPPORTED_FORMAT_VERSIONS`].
pub(crate) fn check_version(found: u64) -> Result<(), DecodeError> {
    let supported =
        u32::try_from(found).is_ok_and(|version| SUPPORTED_FORMAT_VERSIONS.contains(&version));
    if supported {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion { found })
    }
}

/// Reads what [`encode`] wrote for `kind`, or a bare value from before versions (version 1).
pub(crate) fn decode<T: DeserializeOwned>(kind: &str, bytes: &[u8]) -> Result<T, DecodeError> {
    let malformed = |error: serde_json::Error| DecodeError::Malformed(error.to_string());
    let value: Value = serde_json::from_slice(bytes).map_err(malformed)?;
    let mut fields = match value {
        Value::Object(fields) if fields.contains_key("version") => fields,
        bare => return serde_json::from_value(bare).map_err(malformed),
    };
    let found = fields
        .remove("version")
        .and_then(|version| version.as_u64())
        .ok_or_else(|| DecodeError::Malformed("the version is not a whole number".to_string()))?;
    check_version(found)?;
    let content = fields
        .remove(kind)
        .ok_or_else(|| DecodeError::Malformed(format!("no `{kind}` next to the version")))?;
    if let Some(unexpected) = fields.keys().next() {
        return Err(DecodeError::Malformed(format!(
            "unexpected field `{unexpected}` next to the version"
        )));
    }
    serde_json::from_value(content).map_err(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_round_trips_with_its_version_first() {
        let bytes = encode("vote", &[1, 2]).expect("encode");
        assert_eq!(bytes, br#"{"version":1,"vote":[1,2]}"#);
        assert_eq!(decode::<Vec<i32>>("vote", &bytes), Ok(vec![1, 2]));
    }

    #[test]
    fn a_bare_value_from_before_versions_reads_as_version_1() {
        assert_eq!(decode::<Vec<i32>>("vote", b"[1,2]"), Ok(vec![1, 2]));
        assert_eq!(decode::<Option<i32>>("committed", b"null"), Ok(None));
    }

    #[test]
    fn unknown_versions_are_refused_before_the_value_is_read() {
        for found in [0, 2, 4_294_967_296] {
            let bytes = format!(r#"{{"version":{found},"vote":"a shape from the future"}}"#);
            assert_eq!(
                decode::<Vec<i32>>("vote", bytes.as_bytes()),
                Err(DecodeError::UnsupportedVersion { found })
            );
        }
    }

    #[test]
    fn a_versioned_value_must_hold_exactly_its_kind() {
        for bytes in [
            r#"{"version":1,"entry":[1]}"#,
            r#"{"version":1,"vote":[1],"extra":2}"#,
            r#"{"version":"1","vote":[1]}"#,
        ] {
            assert!(
                matches!(
                    decode::<Vec<i32>>("vote", bytes.as_bytes()),
                    Err(DecodeError::Malformed(_))
                ),
                "{bytes}"
            );
        }
    }
}
