//! What a caller may do: Kafka's ACLs (`strata_auth::acl`), read from the applied metadata and
//! checked on every request of both client doors.
//!
//! **Who the caller is.** A [`Caller`] is a principal (`User:<name>`) and the address it called
//! from. The gRPC client listener puts one in every request's extensions
//! (`authentication::AuthenticationLayer`); the Kafka listener keeps one per connection. The
//! internal listener puts none: only nodes reach it (mutual TLS with the cluster's CA), and a
//! node acting for a client has already checked that client on the node the client called.
//! So `None` means a node, and every check passes for it.
//!
//! **When checks apply.** Only when the broker requires authentication: without it every caller
//! is the anonymous principal and ACLs could only lock everyone out, so a cluster without
//! `--require-auth` is open, as `strata dev` is. Super users (`--super-user`, and the bootstrap
//! user) pass every check, as Kafka's `super.users` do.
//!
//! **Where checks happen.** At the first place a request names its resources, before anything is
//! read or appended: the produce and fetch paths of `BrokerState` (shared by gRPC, the zero-copy
//! routes and the Kafka door), the Admin and GroupCoordinator services, and the Kafka handlers
//! that do not go through them. A refusal is Kafka's TOPIC_, GROUP_ or
//! CLUSTER_AUTHORIZATION_FAILED for that resource; listings (metadata, groups) leave out what
//! the caller may not describe instead of refusing.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use strata_auth::acl::{ANONYMOUS, CLUSTER_NAME, USER_PRINCIPAL_PREFIX};
use strata_auth::{Operation, ResourceType};
use strata_common::ErrorCode;
use strata_controller::MetadataState;
use tokio::sync::watch;
use tracing::debug;

use crate::error::PartitionError;

/// Who made a request: a principal and the host it came from, as ACLs name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// `User:<name>`, or [`ANONYMOUS`].
    pub principal: String,
    /// The client's IP address, as text (ACL hosts are compared as text, as in Kafka).
    pub host: String,
}

impl Caller {
    pub fn user(user: &str, address: IpAddr) -> Caller {
        Caller {
            principal: format!("{USER_PRINCIPAL_PREFIX}{user}"),
            host: address.to_string(),
        }
    }

    pub fn anonymous(address: IpAddr) -> Caller {
        Caller {
            principal: ANONYMOUS.to_string(),
            host: address.to_string(),
        }
    }

    /// The caller a gRPC request carries; `None` on the internal listener, where only nodes are.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<Caller> {
        request.extensions().get::<Caller>().cloned()
    }
}

/// `user` as a principal: `alice` and `User:alice` are both `User:alice`.
pub fn principal_of(user: &str) -> String {
    if user.starts_with(USER_PRINCIPAL_PREFIX) {
        user.to_string()
    } else {
        format!("{USER_PRINCIPAL_PREFIX}{user}")
    }
}

pub struct Authorizer {
    enabled: bool,
    super_users: BTreeSet<String>,
    metadata: watch::Receiver<Arc<MetadataState>>,
}

impl Authorizer {
    /// `enabled`: whether the broker requires authentication. `super_users`: user names or
    /// principals.
    pub fn new(
        enabled: bool,
        super_users: impl IntoIterator<Item = String>,
        metadata: watch::Receiver<Arc<MetadataState>>,
    ) -> Authorizer {
        Authorizer {
            enabled,
            super_users: super_users
                .into_iter()
                .map(|user| principal_of(&user))
                .collect(),
            metadata,
        }
    }

    /// Whether checks apply at all (see the module doc).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `caller` may perform `operation` on the resource `name` of `resource_type`.
    pub fn allows(
        &self,
        caller: Option<&Caller>,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let Some(caller) = self.checked(caller) else {
            return true;
        };
        let allowed = self.metadata.borrow().acls.authorize(
            &caller.principal,
            &caller.host,
            operation,
            resource_type,
            name,
        );
        if !allowed {
            debug!(principal = %caller.principal, host = %caller.host, %operation, %resource_type, name, "authorization denied");
        }
        allowed
    }

    /// The caller whose requests are checked: `None` for a node, a super user, or when checks
    /// are off.
    fn checked<'a>(&self, caller: Option<&'a Caller>) -> Option<&'a Caller> {
        caller.filter(|caller| self.enabled && !self.super_users.contains(&caller.principal))
    }

    /// Kafka's `authorized_operations` bit field for the resource: bit `code` set for each
    /// operation `caller` may perform on it (DescribeCluster, DescribeGroups and the like).
    pub fn authorized_operations(
        &self,
        caller: Option<&Caller>,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        resource_type
            .operations()
            .filter(|operation| self.allows(caller, *operation, resource_type, name))
            .fold(0, |bits, operation| bits | 1 << operation.code())
    }

    pub fn topic(
        &self,
        caller: Option<&Caller>,
        operation: Operation,
        topic: &str,
    ) -> Result<(), PartitionError> {
        if self.allows(caller, operation, ResourceType::Topic, topic) {
            Ok(())
        } else {
            Err(PartitionError::new(
                ErrorCode::TopicAuthorizationFailed,
                format!("not authorized to {} topic '{topic}'", verb(operation)),
            ))
        }
    }

    pub fn group(
        &self,
        caller: Option<&Caller>,
        operation: Operation,
        group: &str,
    ) -> Result<(), PartitionError> {
        if self.allows(caller, operation, ResourceType::Group, group) {
            Ok(())
        } else {
            Err(PartitionError::new(
                ErrorCode::GroupAuthorizationFailed,
                format!("not authorized to {} group '{group}'", verb(operation)),
            ))
        }
    }

    pub fn cluster(
        &self,
        caller: Option<&Caller>,
        operation: Operation,
    ) -> Result<(), PartitionError> {
        if self.allows(caller, operation, ResourceType::Cluster, CLUSTER_NAME) {
            Ok(())
        } else {
            Err(PartitionError::new(
                ErrorCode::ClusterAuthorizationFailed,
                format!("not authorized to {} the cluster", verb(operation)),
            ))
        }
    }

    /// Creating a topic: Create on the cluster, or on the topic itself (Kafka's rule).
    pub fn create_topic(&self, caller: Option<&Caller>, topic: &str) -> Result<(), PartitionError> {
        if self.allows(
            caller,
            Operation::Create,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ) {
            return Ok(());
        }
        self.topic(caller, Operation::Create, topic)
    }

    /// An idempotent producer id: IdempotentWrite on the cluster, or Write on some topic
    /// (KIP-679: any producer allowed to write may be idempotent).
    pub fn idempotent_producer(&self, caller: Option<&Caller>) -> Result<(), PartitionError> {
        let Some(checked) = self.checked(caller) else {
            return Ok(());
        };
        let may_write = self.metadata.borrow().acls.authorize_any(
            &checked.principal,
            &checked.host,
            Operation::Write,
            ResourceType::Topic,
        );
        if may_write {
            Ok(())
        } else {
            self.cluster(caller, Operation::IdempotentWrite)
        }
    }
}

fn verb(operation: Operation) -> String {
    operation.name().to_ascii_lowercase().replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_auth::{AclBinding, PatternType, Permission};

    fn authorizer(enabled: bool, bindings: Vec<AclBinding>) -> Authorizer {
        let mut state = MetadataState::new();
        for binding in bindings {
            state.acls.insert(binding);
        }
        let (_, metadata) = watch::channel(Arc::new(state));
        Authorizer::new(enabled, ["root".to_string()], metadata)
    }

    fn read_a(principal: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "a".to_string(),
            pattern_type: PatternType::Literal,
            principal: principal.to_string(),
            host: "*".to_string(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn nodes_super_users_and_open_clusters_pass_every_check() {
        let host = IpAddr::from([127, 0, 0, 1]);
        let bob = Caller::user("bob", host);
        let closed = authorizer(true, vec![]);
        assert!(closed.topic(None, Operation::Write, "a").is_ok(), "a node");
        assert!(
            closed
                .topic(Some(&Caller::user("root", host)), Operation::Write, "a")
                .is_ok()
        );
        let refused = closed.topic(Some(&bob), Operation::Write, "a").unwrap_err();
        assert_eq!(refused.code, ErrorCode::TopicAuthorizationFailed);
        assert!(refused.message.contains("write topic 'a'"), "{refused}");
        let open = authorizer(false, vec![]);
        assert!(open.topic(Some(&bob), Operation::Write, "a").is_ok());
    }

    #[test]
    fn the_applied_acls_decide_for_everyone_else() {
        let host = IpAddr::from([10, 0, 0, 9]);
        let acls = authorizer(true, vec![read_a("User:bob")]);
        let bob = Caller::user("bob", host);
        assert!(acls.topic(Some(&bob), Operation::Read, "a").is_ok());
        assert!(acls.topic(Some(&bob), Operation::Describe, "a").is_ok());
        assert!(acls.topic(Some(&bob), Operation::Write, "a").is_err());
        assert!(acls.topic(Some(&bob), Operation::Read, "b").is_err());
        assert_eq!(
            acls.group(Some(&bob), Operation::Read, "g")
                .unwrap_err()
                .code,
            ErrorCode::GroupAuthorizationFailed
        );
        assert!(acls.idempotent_producer(Some(&bob)).is_err());
        assert_eq!(
            acls.authorized_operations(Some(&bob), ResourceType::Topic, "a"),
            1 << Operation::Read.code() | 1 << Operation::Describe.code()
        );
        assert_eq!(
            acls.authorized_operations(Some(&bob), ResourceType::Cluster, CLUSTER_NAME),
            0
        );
        assert!(
            acls.topic(Some(&Caller::anonymous(host)), Operation::Read, "a")
                .is_err()
        );
    }
}
