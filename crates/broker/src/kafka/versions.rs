//! What the Kafka listener serves: which APIs, in which versions.
//!
//! ApiVersions answers from these tables and the frame decoder refuses everything outside them,
//! so a client can only send what it was told is served. Each handler module keeps its table
//! next to its handlers; ranges stop where Strata's semantics stop (each table says why).

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::ApiVersion;

/// `(api, lowest version, highest version)`: one row per API, every range inside what
/// `kafka-protocol` decodes. Each handler module lists its own APIs next to its handlers.
type Served = (ApiKey, i16, i16);

/// Served by this module's caller, [`super::KafkaDoor::handle`].
const DOOR: &[Served] = &[(ApiKey::ApiVersions, 0, 3)];

/// Every table, in the order ApiVersions lists them.
const TABLES: &[&[Served]] = &[
    DOOR,
    super::data::SERVED,
    super::groups::SERVED,
    super::admin::SERVED,
    super::users::SERVED,
    super::acls::SERVED,
    super::sasl::SERVED,
];

fn all() -> impl Iterator<Item = &'static Served> {
    TABLES.iter().flat_map(|table| table.iter())
}

/// The versions of `api_key` this listener serves, `None` if it does not serve the API.
pub fn served(api_key: ApiKey) -> Option<(i16, i16)> {
    all()
        .find(|(served, _, _)| *served == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// The ApiVersions answer.
pub fn api_versions() -> Vec<ApiVersion> {
    all()
        .map(|&(api_key, min, max)| {
            ApiVersion::default()
                .with_api_key(api_key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_range_is_one_the_codecs_decode_and_each_api_appears_once() {
        for &(api_key, min, max) in all() {
            let codec = api_key.valid_versions();
            assert!(
                min <= max && codec.min <= min && max <= codec.max,
                "{api_key:?} {min}..={max} is outside what kafka-protocol decodes ({codec})"
            );
            let listed = all().filter(|(other, _, _)| *other == api_key);
            assert_eq!(listed.count(), 1, "{api_key:?} is listed twice");
        }
    }
}
