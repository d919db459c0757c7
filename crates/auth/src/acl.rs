//! Authorization: Kafka's ACL model, decided without IO.
//!
//! An [`AclBinding`] says that a principal, connecting from a host, may (allow) or may not (deny)
//! perform an operation on the resources a pattern names. [`AclSet::authorize`] decides one
//! request the way Kafka's `StandardAuthorizer` does, so rules written for Kafka mean the same
//! here:
//!
//! 1. a super user may do anything;
//! 2. a deny that matches the principal, host, resource and operation (or `All`) refuses;
//! 3. otherwise an allow that matches permits, where an allow of `Read`, `Write`, `Delete` or
//!    `Alter` also permits `Describe`, and an allow of `AlterConfigs` permits `DescribeConfigs`;
//! 4. otherwise the request is refused: no ACL means no access.
//!
//! A binding matches a principal when it names it or `User:*`, a host when it names it or `*`,
//! and a resource of its type when it is literal with the same name or the name `*`, or prefixed
//! with a prefix of the name.
//!
//! The codes of [`ResourceType`], [`PatternType`], [`Operation`] and [`Permission`] are Kafka's,
//! so the Kafka door and the gRPC door carry the same numbers.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Names any principal in a binding, and any resource name in a literal binding.
pub const WILDCARD: &str = "*";
/// The principal of a caller that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";
/// The one principal type Strata has, as Kafka spells it.
pub const USER_PRINCIPAL_PREFIX: &str = "User:";

/// Builds a value-to-Kafka-code mapping and its inverse for a fieldless enum.
macro_rules! kafka_codes {
    ($name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// Kafka's number for this value.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// The value Kafka numbers `code`, if Strata has it.
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// The name Kafka's tools print (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// Parses a name, in any case and with `-` or `_`, as a user types it.
            pub fn parse(text: &str) -> Option<$name> {
                let wanted = text.trim().replace('-', "_").to_ascii_uppercase();
                $name::ALL.iter().copied().find(|value| value.name() == wanted)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

kafka_codes!(ResourceType {
    Topic = 2, "TOPIC";
    Group = 3, "GROUP";
    Cluster = 4, "CLUSTER";
    TransactionalId = 5, "TRANSACTIONAL_ID";
});

/// The one resource name a cluster binding may have, as in Kafka.
pub const CLUSTER_NAME: &str = "kafka-cluster";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternType {
    Literal,
    Prefixed,
}

kafka_codes!(PatternType {
    Literal = 3, "LITERAL";
    Prefixed = 4, "PREFIXED";
});

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

kafka_codes!(Operation {
    All = 2, "ALL";
    Read = 3, "READ";
    Write = 4, "WRITE";
    Create = 5, "CREATE";
    Delete = 6, "DELETE";
    Alter = 7, "ALTER";
    Describe = 8, "DESCRIBE";
    ClusterAction = 9, "CLUSTER_ACTION";
    DescribeConfigs = 10, "DESCRIBE_CONFIGS";
    AlterConfigs = 11, "ALTER_CONFIGS";
    IdempotentWrite = 12, "IDEMPOTENT_WRITE";
});

impl Operation {
    /// Whether an allow of `self` permits `requested`.
    fn allows(self, requested: Operation) -> bool {
        self == requested
            || self == Operation::All
            || match requested {
                Operation::Describe => matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ),
                Operation::DescribeConfigs => self == Operation::AlterConfigs,
                _ => false,
            }
    }

    /// Whether a deny of `self` refuses `requested`.
    fn denies(self, requested: Operation) -> bool {
        self == requested || self == Operation::All
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Deny,
    Allow,
}

kafka_codes!(Permission {
    Deny = 2, "DENY";
    Allow = 3, "ALLOW";
});

/// One rule. Field order is the sort order [`AclSet`] lists bindings in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:<name>`, or `User:*` for every principal.
    pub principal: String,
    /// An IP address, or `*` for every host.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Kafka's code for "any value" in a filter's resource type, pattern type, operation and
/// permission.
pub const ANY_CODE: i8 = 1;
/// Kafka's pattern-type code for [`PatternFilter::Match`].
pub const MATCH_CODE: i8 = 2;

/// `code` (a wire integer) as one of `T`'s values, or the reason it is not.
fn from_wire<T>(code: i32, what: &str, parse: fn(i8) -> Option<T>) -> Result<T, InvalidAcl> {
    i8::try_from(code)
        .ok()
        .and_then(parse)
        .ok_or_else(|| InvalidAcl(format!("{code} is not a {what} code")))
}

/// Like [`from_wire`], with [`ANY_CODE`] meaning no constraint.
fn filter_from_wire<T>(
    code: i32,
    what: &str,
    parse: fn(i8) -> Option<T>,
) -> Result<Option<T>, InvalidAcl> {
    if code == i32::from(ANY_CODE) {
        Ok(None)
    } else {
        from_wire(code, what, parse).map(Some)
    }
}

/// Why a binding cannot be stored; the text is safe to send to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAcl(pub String);

impl AclBinding {
    /// A binding from the wire's Kafka codes, validated.
    #[allow(clippy::too_many_arguments)]
    pub fn from_codes(
        resource_type: i32,
        resource_name: String,
        pattern_type: i32,
        principal: String,
        host: String,
        operation: i32,
        permission: i32,
    ) -> Result<AclBinding, InvalidAcl> {
        let binding = AclBinding {
            resource_type: from_wire(resource_type, "resource type", ResourceType::from_code)?,
            resource_name,
            pattern_type: from_wire(pattern_type, "pattern type", PatternType::from_code)?,
            principal,
            host,
            operation: from_wire(operation, "operation", Operation::from_code)?,
            permission: from_wire(permission, "permission", Permission::from_code)?,
        };
        binding.validate()?;
        Ok(binding)
    }

    /// Checks what Kafka's broker checks before storing a binding.
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        let invalid = |why: String| Err(InvalidAcl(why));
        match self.principal.strip_prefix(USER_PRINCIPAL_PREFIX) {
            Some(name) if !name.is_empty() && !name.chars().any(char::is_control) => {}
            _ => {
                return invalid(format!(
                    "principal {:?} is not `User:<name>` or `User:*`",
                    self.principal
                ));
            }
        }
        if self.host != WILDCARD && self.host.parse::<std::net::IpAddr>().is_err() {
            return invalid(format!("host {:?} is not an IP address or `*`", self.host));
        }
        if self.resource_name.is_empty() {
            return invalid("the resource name is empty".to_string());
        }
        if self.resource_name.chars().any(char::is_control) {
            return invalid("the resource name holds a control character".to_string());
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == WILDCARD {
            return invalid("a prefixed binding cannot name `*`; use a literal `*`".to_string());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return invalid(format!(
                "the cluster resource is named {CLUSTER_NAME:?}, not {:?}",
                self.resource_name
            ));
        }
        if !operation_applies(self.resource_type, self.operation) {
            return invalid(format!(
                "{} does not apply to a {} resource",
                self.operation, self.resource_type
            ));
        }
        Ok(())
    }

    /// Whether this binding's pattern covers the resource `name` of `resource_type`.
    fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    fn names_caller(&self, principal: &str, host: &str) -> bool {
        let any_user = self
            .principal
            .strip_prefix(USER_PRINCIPAL_PREFIX)
            .is_some_and(|name| name == WILDCARD);
        (self.principal == principal || any_user) && (self.host == host || self.host == WILDCARD)
    }
}

impl ResourceType {
    /// The operations a binding on this type of resource may name, `All` aside.
    pub fn operations(self) -> impl Iterator<Item = Operation> {
        Operation::ALL.iter().copied().filter(move |operation| {
            *operation != Operation::All && operation_applies(self, *operation)
        })
    }
}

/// Which operations mean something on which resources, as Kafka's `AclEntry` lists them.
fn operation_applies(resource_type: ResourceType, operation: Operation) -> bool {
    use Operation::*;
    match resource_type {
        ResourceType::Topic => matches!(
            operation,
            All | Read
                | Write
                | Create
                | Delete
                | Alter
                | Describe
                | DescribeConfigs
                | AlterConfigs
        ),
        ResourceType::Group => matches!(operation, All | Read | Describe | Delete),
        ResourceType::Cluster => matches!(
            operation,
            All | Create
                | Alter
                | Describe
                | ClusterAction
                | DescribeConfigs
                | AlterConfigs
                | IdempotentWrite
        ),
        ResourceType::TransactionalId => matches!(operation, All | Write | Describe),
    }
}

/// How a filter selects bindings by pattern, as Kafka's `PatternType` filter values do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternFilter {
    /// Every pattern type.
    Any,
    /// Every binding that applies to the named resource: literal with its name or `*`, or
    /// prefixed with a prefix of it.
    Match,
    Exactly(PatternType),
}

/// Selects bindings for DescribeAcls and DeleteAcls; a `None` field matches anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl PatternFilter {
    pub fn code(self) -> i8 {
        match self {
            PatternFilter::Any => ANY_CODE,
            PatternFilter::Match => MATCH_CODE,
            PatternFilter::Exactly(pattern) => pattern.code(),
        }
    }

    pub fn from_code(code: i8) -> Option<PatternFilter> {
        match code {
            ANY_CODE => Some(PatternFilter::Any),
            MATCH_CODE => Some(PatternFilter::Match),
            other => PatternType::from_code(other).map(PatternFilter::Exactly),
        }
    }
}

impl AclFilter {
    /// A filter from the wire's Kafka codes, where [`ANY_CODE`] and a `None` name match
    /// anything.
    #[allow(clippy::too_many_arguments)]
    pub fn from_codes(
        resource_type: i32,
        resource_name: Option<String>,
        pattern_type: i32,
        principal: Option<String>,
        host: Option<String>,
        operation: i32,
        permission: i32,
    ) -> Result<AclFilter, InvalidAcl> {
        Ok(AclFilter {
            resource_type: filter_from_wire(
                resource_type,
                "resource type",
                ResourceType::from_code,
            )?,
            resource_name,
            pattern: from_wire(pattern_type, "pattern type", PatternFilter::from_code)?,
            principal,
            host,
            operation: filter_from_wire(operation, "operation", Operation::from_code)?,
            permission: filter_from_wire(permission, "permission", Permission::from_code)?,
        })
    }

    /// The filter's resource type, operation and permission as wire codes ([`ANY_CODE`] for
    /// none).
    pub fn codes(&self) -> (i8, i8, i8) {
        (
            self.resource_type.map_or(ANY_CODE, ResourceType::code),
            self.operation.map_or(ANY_CODE, Operation::code),
            self.permission.map_or(ANY_CODE, Permission::code),
        )
    }

    /// Matches every binding.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    pub fn matches(&self, binding: &AclBinding) -> bool {
        fn field<T: PartialEq>(wanted: &Option<T>, actual: &T) -> bool {
            wanted.as_ref().is_none_or(|wanted| wanted == actual)
        }
        let resource = match (self.pattern, &self.resource_name) {
            (PatternFilter::Match, Some(name)) => {
                // Kafka: a MATCH filter's resource type must be given to mean anything; without
                // one, every type's patterns are tried against the name.
                let resource_type = self.resource_type.unwrap_or(binding.resource_type);
                binding.covers(resource_type, name)
            }
            (PatternFilter::Exactly(pattern), name) => {
                binding.pattern_type == pattern && field(name, &binding.resource_name)
            }
            (PatternFilter::Any | PatternFilter::Match, name) => {
                field(name, &binding.resource_name)
            }
        };
        resource
            && field(&self.resource_type, &binding.resource_type)
            && field(&self.principal, &binding.principal)
            && field(&self.host, &binding.host)
            && field(&self.operation, &binding.operation)
            && field(&self.permission, &binding.permission)
    }
}

/// Every binding the cluster holds, ordered; kept in the Raft metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AclSet {
    bindings: BTreeSet<AclBinding>,
}

impl AclSet {
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn contains(&self, binding: &AclBinding) -> bool {
        self.bindings.contains(binding)
    }

    pub fn iter(&self) -> impl Iterator<Item = &AclBinding> {
        self.bindings.iter()
    }

    /// Adds `binding`; adding one already present changes nothing, as in Kafka.
    pub fn insert(&mut self, binding: AclBinding) {
        self.bindings.insert(binding);
    }

    /// Removes and returns the bindings `filter` matches.
    pub fn remove_matching(&mut self, filter: &AclFilter) -> Vec<AclBinding> {
        let removed: Vec<AclBinding> = self
            .bindings
            .iter()
            .filter(|binding| filter.matches(binding))
            .cloned()
            .collect();
        for binding in &removed {
            self.bindings.remove(binding);
        }
        removed
    }

    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = &'a AclBinding> {
        self.bindings
            .iter()
            .filter(move |binding| filter.matches(binding))
    }

    /// Whether `principal`, calling from `host`, may perform `operation` on the resource `name`
    /// of `resource_type` (rules 2 to 4 of the module doc; super users are the caller's to
    /// check, since they are configuration, not metadata).
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let mut allowed = false;
        for binding in self.bindings.iter().filter(|binding| {
            binding.covers(resource_type, name) && binding.names_caller(principal, host)
        }) {
            match binding.permission {
                Permission::Deny if binding.operation.denies(operation) => return false,
                Permission::Allow if binding.operation.allows(operation) => allowed = true,
                _ => {}
            }
        }
        allowed
    }

    /// Whether `principal` from `host` may perform `operation` on at least one resource of
    /// `resource_type`: Kafka's test for an idempotent producer, which needs Write on some topic.
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        self.bindings.iter().any(|binding| {
            binding.resource_type == resource_type
                && binding.permission == Permission::Allow
                && binding.operation.allows(operation)
                && binding.names_caller(principal, host)
                && self.authorize(
                    principal,
                    host,
                    operation,
                    resource_type,
                    &binding.resource_name,
                )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        pattern_type: PatternType,
        name: &str,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.to_string(),
            pattern_type,
            principal: principal.to_string(),
            host: WILDCARD.to_string(),
            operation,
            permission,
        }
    }

    fn set(bindings: impl IntoIterator<Item = AclBinding>) -> AclSet {
        let mut set = AclSet::default();
        for binding in bindings {
            binding.validate().unwrap();
            set.insert(binding);
        }
        set
    }

    const ALICE: &str = "User:alice";
    const HOST: &str = "10.0.0.1";

    fn topic(set: &AclSet, operation: Operation, name: &str) -> bool {
        set.authorize(ALICE, HOST, operation, ResourceType::Topic, name)
    }

    #[test]
    fn nothing_is_allowed_without_an_acl() {
        assert!(!topic(&AclSet::default(), Operation::Read, "a"));
    }

    #[test]
    fn literal_prefixed_and_wildcard_patterns_cover_what_they_name() {
        use {Operation::Read, PatternType::*, Permission::Allow};
        let acls = set([
            binding(Literal, "orders", ALICE, Read, Allow),
            binding(Prefixed, "logs.", ALICE, Read, Allow),
        ]);
        assert!(topic(&acls, Read, "orders"));
        assert!(!topic(&acls, Read, "orders2"));
        assert!(topic(&acls, Read, "logs.app"));
        assert!(!topic(&acls, Read, "logs"));
        let everything = set([binding(Literal, WILDCARD, ALICE, Read, Allow)]);
        assert!(topic(&everything, Read, "anything"));
        assert!(
            !everything.authorize(ALICE, HOST, Read, ResourceType::Group, "anything"),
            "a topic binding says nothing about groups"
        );
    }

    #[test]
    fn deny_wins_over_allow() {
        use {Operation::*, PatternType::*, Permission::*};
        let acls = set([
            binding(Prefixed, "", ALICE, All, Allow).with_name("a"),
            binding(Literal, "a.secret", ALICE, Read, Deny),
        ]);
        assert!(topic(&acls, Read, "a.public"));
        assert!(!topic(&acls, Read, "a.secret"));
        assert!(
            topic(&acls, Write, "a.secret"),
            "a deny of Read does not deny Write"
        );
        let all_denied = set([
            binding(Literal, "t", ALICE, Read, Allow),
            binding(Literal, "t", "User:*", All, Deny),
        ]);
        assert!(!topic(&all_denied, Read, "t"));
    }

    #[test]
    fn principals_and_hosts_must_match() {
        use {Operation::Read, PatternType::Literal, Permission::Allow};
        let mut from_host = binding(Literal, "t", ALICE, Read, Allow);
        from_host.host = "10.0.0.2".to_string();
        let acls = set([from_host, binding(Literal, "u", "User:*", Read, Allow)]);
        assert!(!topic(&acls, Read, "t"), "another host");
        assert!(acls.authorize(ALICE, "10.0.0.2", Read, ResourceType::Topic, "t"));
        assert!(acls.authorize("User:bob", HOST, Read, ResourceType::Topic, "u"));
        assert!(!acls.authorize("User:bob", "10.0.0.2", Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn read_write_delete_and_alter_imply_describe() {
        use {Operation::*, PatternType::Literal, Permission::Allow};
        for granted in [Read, Write, Delete, Alter, All] {
            let acls = set([binding(Literal, "t", ALICE, granted, Allow)]);
            assert!(topic(&acls, Describe, "t"), "{granted} implies Describe");
        }
        let acls = set([binding(Literal, "t", ALICE, Create, Allow)]);
        assert!(!topic(&acls, Describe, "t"));
        let acls = set([binding(Literal, "t", ALICE, AlterConfigs, Allow)]);
        assert!(topic(&acls, DescribeConfigs, "t"));
        assert!(!topic(&acls, Read, "t"));
    }

    #[test]
    fn authorize_any_finds_one_writable_topic() {
        use {Operation::*, PatternType::*, Permission::*};
        let acls = set([
            binding(Literal, "a", ALICE, Write, Allow),
            binding(Literal, "a", ALICE, Write, Deny),
        ]);
        assert!(!acls.authorize_any(ALICE, HOST, Write, ResourceType::Topic));
        let acls = set([binding(Prefixed, "x", ALICE, Write, Allow)]);
        assert!(acls.authorize_any(ALICE, HOST, Write, ResourceType::Topic));
        assert!(!acls.authorize_any("User:bob", HOST, Write, ResourceType::Topic));
    }

    #[test]
    fn filters_select_by_field_and_by_match() {
        use {Operation::*, PatternType::*, Permission::*};
        let mut acls = set([
            binding(Literal, "orders", ALICE, Read, Allow),
            binding(Prefixed, "ord", ALICE, Write, Allow),
            binding(Literal, WILDCARD, "User:bob", Read, Allow),
            binding(Literal, "other", ALICE, Read, Allow),
        ]);
        let mut filter = AclFilter::any();
        filter.resource_type = Some(ResourceType::Topic);
        filter.resource_name = Some("orders".to_string());
        filter.pattern = PatternFilter::Match;
        assert_eq!(acls.matching(&filter).count(), 3);
        filter.pattern = PatternFilter::Exactly(Literal);
        assert_eq!(acls.matching(&filter).count(), 1);
        let mut by_user = AclFilter::any();
        by_user.principal = Some("User:bob".to_string());
        assert_eq!(acls.remove_matching(&by_user).len(), 1);
        assert_eq!(acls.len(), 3);
        assert_eq!(acls.remove_matching(&AclFilter::any()).len(), 3);
        assert!(acls.is_empty());
    }

    #[test]
    fn invalid_bindings_are_refused_with_the_reason() {
        use {Operation::*, PatternType::*, Permission::*};
        let good = binding(Literal, "t", ALICE, Read, Allow);
        let mut cases = vec![];
        let mut bad = good.clone();
        bad.principal = "alice".to_string();
        cases.push((bad, "principal"));
        let mut bad = good.clone();
        bad.host = "example.com".to_string();
        cases.push((bad, "host"));
        cases.push((binding(Prefixed, WILDCARD, ALICE, Read, Allow), "prefixed"));
        cases.push((
            binding(Literal, "t", ALICE, ClusterAction, Allow),
            "does not apply",
        ));
        let mut bad = good.clone();
        bad.resource_type = ResourceType::Cluster;
        cases.push((bad, "cluster resource"));
        for (binding, why) in cases {
            let error = binding.validate().unwrap_err();
            assert!(error.0.contains(why), "{error} should mention {why}");
        }
    }

    #[test]
    fn wire_codes_make_bindings_and_filters_or_say_why_not() {
        let binding = AclBinding::from_codes(
            2,
            "t".to_string(),
            4,
            ALICE.to_string(),
            "*".to_string(),
            3,
            3,
        )
        .unwrap();
        assert_eq!(binding.resource_type, ResourceType::Topic);
        assert_eq!(binding.pattern_type, PatternType::Prefixed);
        let any_type = AclBinding::from_codes(1, "t".into(), 3, ALICE.into(), "*".into(), 3, 3);
        assert!(any_type.unwrap_err().0.contains("resource type"));
        let filter = AclFilter::from_codes(1, None, 2, None, None, 1, 1).unwrap();
        assert_eq!(filter.pattern, PatternFilter::Match);
        assert_eq!(filter.codes(), (ANY_CODE, ANY_CODE, ANY_CODE));
        assert!(AclFilter::from_codes(1, None, 9, None, None, 1, 1).is_err());
    }

    #[test]
    fn names_and_codes_round_trip() {
        for operation in Operation::ALL {
            assert_eq!(Operation::from_code(operation.code()), Some(*operation));
            assert_eq!(
                Operation::parse(&operation.name().to_lowercase()),
                Some(*operation)
            );
        }
        assert_eq!(
            Operation::parse("describe-configs"),
            Some(Operation::DescribeConfigs)
        );
        assert_eq!(
            ResourceType::from_code(1),
            None,
            "ANY is a filter, not a resource"
        );
    }

    impl AclBinding {
        fn with_name(mut self, name: &str) -> AclBinding {
            self.resource_name = name.to_string();
            self
        }
    }
}
