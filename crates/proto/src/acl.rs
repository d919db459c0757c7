//! ACL bindings between `strata_auth`'s types and the wire's: one conversion for the broker's
//! Admin service, the client and the tests. The wire carries Kafka's codes, which are
//! `strata_auth`'s, so a binding crosses unchanged; one with a code `strata_auth` does not know,
//! or one Kafka's broker would refuse, does not convert.

use strata_auth::{AclBinding, InvalidAcl};

use crate::v1;

impl From<&AclBinding> for v1::AclBinding {
    fn from(binding: &AclBinding) -> v1::AclBinding {
        v1::AclBinding {
            resource_type: binding.resource_type.code().into(),
            resource_name: binding.resource_name.clone(),
            pattern_type: binding.pattern_type.code().into(),
            principal: binding.principal.clone(),
            host: binding.host.clone(),
            operation: binding.operation.code().into(),
            permission: binding.permission.code().into(),
        }
    }
}

impl TryFrom<v1::AclBinding> for AclBinding {
    type Error = InvalidAcl;

    fn try_from(binding: v1::AclBinding) -> Result<AclBinding, InvalidAcl> {
        AclBinding::from_codes(
            binding.resource_type,
            binding.resource_name,
            binding.pattern_type,
            binding.principal,
            binding.host,
            binding.operation,
            binding.permission,
        )
    }
}
