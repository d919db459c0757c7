//! The gRPC edge of the broker: converts between prost messages and domain calls. Only this
//! module sees `strata_proto` types.

mod admin_service;
mod broker_service;
mod group_service;
mod record_routes;
mod replication_service;
pub mod status;

pub use admin_service::AdminService;
pub use broker_service::BrokerService;
pub use group_service::GroupService;
pub use record_routes::{Listener, RecordRoutesLayer};
pub use replication_service::ReplicationService;
