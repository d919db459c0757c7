//! Kafka's ACL APIs, so Kafka's own tools (`kafka-acls.sh`, an AdminClient's `createAcls`,
//! `describeAcls`, `deleteAcls`) manage Strata's ACLs: CreateAcls, DescribeAcls and DeleteAcls,
//! translated into the Admin service's calls the gRPC door makes for the same thing. Those calls
//! check the caller (Alter on the cluster to change ACLs, Describe to read them, as in Kafka) and
//! change the bindings in the Raft metadata, so the two doors cannot disagree about either; this
//! module only moves fields between Kafka's messages and `strata_auth`'s bindings and filters.
//!
//! Kafka's codes for resource types, pattern types, operations and permissions are
//! `strata_auth`'s, so they pass through as numbers. A binding or filter Strata cannot hold (a
//! code it does not know, such as version 3's USER resource type, or a binding Kafka's broker
//! would refuse) is refused alone with INVALID_REQUEST and its reason; the others in the same
//! request are still served, as Kafka serves them.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use strata_auth::{AclBinding, AclFilter, InvalidAcl};
use strata_common::ErrorCode;

use super::KafkaDoor;
use super::data::partition_error_code;
use crate::error::PartitionError;

/// Versions 1 to 3 of each: every version `kafka-protocol` decodes, and every version Kafka 4
/// serves. Version 0, from before prefixed patterns (KIP-290), is not served: Kafka 4 removed
/// it (KIP-896) and the codec does not decode it. librdkafka, kafka-python and Java's
/// AdminClient all speak version 1 or later, where every binding and filter names its pattern
/// type, so nothing here has to guess one.
pub(super) const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

impl KafkaDoor {
    pub(super) async fn handle_acl_request(
        &self,
        request: RequestKind,
    ) -> Result<ResponseKind, RequestKind> {
        Ok(match request {
            RequestKind::CreateAcls(body) => ResponseKind::CreateAcls(self.create_acls(body).await),
            RequestKind::DescribeAcls(body) => ResponseKind::DescribeAcls(self.describe_acls(body)),
            RequestKind::DeleteAcls(body) => ResponseKind::DeleteAcls(self.delete_acls(body).await),
            other => return Err(other),
        })
    }

    async fn create_acls(&self, request: CreateAclsRequest) -> CreateAclsResponse {
        let creations = request.creations.into_iter().map(binding).collect();
        let results = self
            .admin()
            .create_acls(self.caller(), creations)
            .await
            .iter()
            .map(|result| {
                let (code, message) = error_fields(result);
                AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        CreateAclsResponse::default().with_results(results)
    }

    fn describe_acls(&self, request: DescribeAclsRequest) -> DescribeAclsResponse {
        let filter = AclFilter::from_codes(
            request.resource_type_filter.into(),
            request.resource_name_filter.map(|text| text.to_string()),
            request.pattern_type_filter.into(),
            request.principal_filter.map(|text| text.to_string()),
            request.host_filter.map(|text| text.to_string()),
            request.operation.into(),
            request.permission_type.into(),
        )
        .map_err(invalid);
        // One filter, so one error: Kafka puts it at the top level, refusals included.
        match filter.and_then(|filter| self.admin().describe_acls(self.caller(), &filter)) {
            Ok(bindings) => DescribeAclsResponse::default().with_resources(by_resource(bindings)),
            Err(error) => DescribeAclsResponse::default()
                .with_error_code(partition_error_code(&error))
                .with_error_message(Some(StrBytes::from_string(error.message))),
        }
    }

    async fn delete_acls(&self, request: DeleteAclsRequest) -> DeleteAclsResponse {
        let filters = request.filters.into_iter().map(filter).collect();
        let results = self
            .admin()
            .delete_acls(self.caller(), filters)
            .await
            .into_iter()
            .map(|result| {
                let (code, message) = error_fields(&result);
                DeleteAclsFilterResult::default()
                    .with_error_code(code)
                    .with_error_message(message)
                    .with_matching_acls(
                        result
                            .unwrap_or_default()
                            .into_iter()
                            .map(matching_acl)
                            .collect(),
                    )
            })
            .collect();
        DeleteAclsResponse::default().with_filter_results(results)
    }
}

fn invalid(error: InvalidAcl) -> PartitionError {
    PartitionError::new(ErrorCode::InvalidRequest, error.0)
}

/// An outcome's error code and message as Kafka's responses carry them: no message on success.
fn error_fields<T>(outcome: &Result<T, PartitionError>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(_) => (0, None),
        Err(error) => (
            partition_error_code(error),
            Some(StrBytes::from_string(error.message.clone())),
        ),
    }
}

fn binding(creation: AclCreation) -> Result<AclBinding, PartitionError> {
    AclBinding::from_codes(
        creation.resource_type.into(),
        creation.resource_name.to_string(),
        creation.resource_pattern_type.into(),
        creation.principal.to_string(),
        creation.host.to_string(),
        creation.operation.into(),
        creation.permission_type.into(),
    )
    .map_err(invalid)
}

fn filter(filter: DeleteAclsFilter) -> Result<AclFilter, PartitionError> {
    AclFilter::from_codes(
        filter.resource_type_filter.into(),
        filter.resource_name_filter.map(|text| text.to_string()),
        filter.pattern_type_filter.into(),
        filter.principal_filter.map(|text| text.to_string()),
        filter.host_filter.map(|text| text.to_string()),
        filter.operation.into(),
        filter.permission_type.into(),
    )
    .map_err(invalid)
}

/// DescribeAcls's shape: one entry per resource pattern, with the rules on it.
fn by_resource(bindings: Vec<AclBinding>) -> Vec<DescribeAclsResource> {
    let mut resources: BTreeMap<_, Vec<AclDescription>> = BTreeMap::new();
    for binding in bindings {
        resources
            .entry((
                binding.resource_type,
                binding.resource_name,
                binding.pattern_type,
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(binding.principal))
                    .with_host(StrBytes::from_string(binding.host))
                    .with_operation(binding.operation.code())
                    .with_permission_type(binding.permission.code()),
            );
    }
    resources
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type.code())
                .with_resource_name(StrBytes::from_string(name))
                .with_pattern_type(pattern_type.code())
                .with_acls(acls)
        })
        .collect()
}

fn matching_acl(binding: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(binding.resource_type.code())
        .with_resource_name(StrBytes::from_string(binding.resource_name))
        .with_pattern_type(binding.pattern_type.code())
        .with_principal(StrBytes::from_string(binding.principal))
        .with_host(StrBytes::from_string(binding.host))
        .with_operation(binding.operation.code())
        .with_permission_type(binding.permission.code())
}
