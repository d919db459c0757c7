//! Topic and cluster administration through the Kafka door, through the same admin calls the
//! gRPC door makes.

use super::KafkaDoor;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

/// What this module serves (see `versions`).
pub(super) const SERVED: &[(ApiKey, i16, i16)] = &[];

impl KafkaDoor {
    /// Answers an admin request; hands back any other request.
    pub(super) async fn handle_admin_request(
        &self,
        request: RequestKind,
        version: i16,
    ) -> Result<ResponseKind, RequestKind> {
        let _ = version;
        Err(request)
    }
}
