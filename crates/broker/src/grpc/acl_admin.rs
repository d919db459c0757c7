//! The ACL calls of both doors (Kafka's CreateAcls, DescribeAcls and DeleteAcls): check the
//! caller, change or read the bindings in the metadata, and translate the gRPC messages. The
//! Kafka door translates its own messages and calls the same three methods.

use strata_auth::{AclBinding, AclFilter, Operation};
use strata_common::ErrorCode;
use strata_controller::{CommandOutcome, MetadataCommand};
use strata_proto::v1 as proto;

use super::admin_service::APPLY_WAIT;
use crate::authorization::Caller;
use crate::broker_lifecycle::{controller_error, wait_until_applied};
use crate::error::PartitionError;
use crate::grpc::AdminService;

fn invalid(error: strata_auth::InvalidAcl) -> PartitionError {
    PartitionError::new(ErrorCode::InvalidRequest, error.0)
}

impl AdminService {
    /// Stores every valid binding of `creations`; one result per binding, in order. Managing
    /// ACLs is Alter on the cluster, as in Kafka.
    pub(crate) async fn create_acls(
        &self,
        caller: Option<&Caller>,
        creations: Vec<Result<AclBinding, PartitionError>>,
    ) -> Vec<Result<(), PartitionError>> {
        if let Err(refused) = self.state.authorizer.cluster(caller, Operation::Alter) {
            return creations.iter().map(|_| Err(refused.clone())).collect();
        }
        let valid: Vec<AclBinding> = creations
            .iter()
            .filter_map(|creation| creation.as_ref().ok().cloned())
            .collect();
        let stored = if valid.is_empty() {
            Ok(())
        } else {
            self.submit_and_wait(
                MetadataCommand::CreateAcls {
                    bindings: valid.clone(),
                },
                |state| valid.iter().all(|binding| state.acls.contains(binding)),
            )
            .await
        };
        creations
            .into_iter()
            .map(|creation| creation.and_then(|_| stored.clone()))
            .collect()
    }

    /// The bindings `filter` matches, in the metadata this broker has applied. Describe on the
    /// cluster.
    pub(crate) fn describe_acls(
        &self,
        caller: Option<&Caller>,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, PartitionError> {
        self.state.authorizer.cluster(caller, Operation::Describe)?;
        let metadata = self.state.applied_metadata.borrow().clone();
        Ok(metadata.acls.matching(filter).cloned().collect())
    }

    /// Removes what each filter matches; for each, in order, the bindings it removed. Alter on
    /// the cluster.
    pub(crate) async fn delete_acls(
        &self,
        caller: Option<&Caller>,
        filters: Vec<Result<AclFilter, PartitionError>>,
    ) -> Vec<Result<Vec<AclBinding>, PartitionError>> {
        if let Err(refused) = self.state.authorizer.cluster(caller, Operation::Alter) {
            return filters.iter().map(|_| Err(refused.clone())).collect();
        }
        let valid: Vec<AclFilter> = filters
            .iter()
            .filter_map(|filter| filter.as_ref().ok().cloned())
            .collect();
        if valid.is_empty() {
            return filters
                .into_iter()
                .map(|filter| filter.map(|_| Vec::new()))
                .collect();
        }
        let deleted = match self
            .state
            .controller
            .submit(MetadataCommand::DeleteAcls { filters: valid })
            .await
            .map_err(controller_error)
        {
            Ok(CommandOutcome::AclsDeleted { deleted }) => deleted,
            Ok(other) => {
                let unexpected = PartitionError::new(
                    ErrorCode::UnknownServerError,
                    format!("the controller answered DeleteAcls with {other:?}"),
                );
                return filters.iter().map(|_| Err(unexpected.clone())).collect();
            }
            Err(error) => return filters.iter().map(|_| Err(error.clone())).collect(),
        };
        let gone: Vec<AclBinding> = deleted.iter().flatten().cloned().collect();
        if let Err(error) = wait_until_applied(&self.state.applied_metadata, APPLY_WAIT, |state| {
            !gone.iter().any(|binding| state.acls.contains(binding))
        })
        .await
        {
            return filters.iter().map(|_| Err(error.clone())).collect();
        }
        let mut deleted = deleted.into_iter();
        filters
            .into_iter()
            .map(|filter| filter.map(|_| deleted.next().unwrap_or_default()))
            .collect()
    }
}

pub(crate) fn binding_from_proto(binding: proto::AclBinding) -> Result<AclBinding, PartitionError> {
    AclBinding::try_from(binding).map_err(invalid)
}

pub(crate) fn filter_from_proto(filter: proto::AclFilter) -> Result<AclFilter, PartitionError> {
    AclFilter::from_codes(
        filter.resource_type,
        filter.resource_name,
        filter.pattern_type,
        filter.principal,
        filter.host,
        filter.operation,
        filter.permission,
    )
    .map_err(invalid)
}
