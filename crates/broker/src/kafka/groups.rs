//! Groups and committed offsets through the Kafka door, on the same group coordinator the gRPC
//! door uses.

use super::KafkaDoor;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

/// What this module serves (see `versions`).
pub(super) const SERVED: &[(ApiKey, i16, i16)] = &[];

impl KafkaDoor {
    /// Answers a group or offset request; hands back any other request.
    pub(super) async fn handle_group_request(
        &self,
        request: RequestKind,
        version: i16,
    ) -> Result<ResponseKind, RequestKind> {
        let _ = version;
        Err(request)
    }
}
