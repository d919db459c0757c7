//! The gRPC edge of the broker: converts between prost messages and domain calls. The services
//! the broker serves see `strata_proto` types only here; outside it, only the broker's own calls
//! to other nodes build them (`replica_fetcher`, and the group coordinator asking partition
//! leaders for offsets).

mod acl_admin;
mod admin_service;
mod broker_service;
mod group_service;
mod record_routes;
mod records_service;
mod replication_service;
pub mod status;

pub use admin_service::AdminService;
pub(crate) use admin_service::change_timeout;
pub use broker_service::BrokerService;
pub use group_service::GroupService;
pub(crate) use group_service::new_member_id;
pub use record_routes::{Listener, RecordRoutesLayer};
pub use records_service::RecordsService;
pub use replication_service::ReplicationService;
