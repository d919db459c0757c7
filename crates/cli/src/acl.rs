//! `strata acl create|list|delete`: who may do what to which topics, groups and the cluster
//! (Kafka's ACLs), modelled on Kafka's `kafka-acls.sh` with Strata's flag spellings.
//!
//! `create` adds one binding per `--operation`; `list` and `delete` select bindings with the same
//! filter flags. Bindings are checked here before anything is sent (an operation that means
//! nothing on the resource, a prefixed cluster), so a typo fails as a usage error even with no
//! cluster to reach.
//!
//! Servers enforce ACLs only when they require authentication (`strata server --require-auth`),
//! and super users pass every check. Without a matching allow, a caller is refused: so `delete`
//! with no filter, which would remove every ACL and lock out everyone but the super users,
//! needs `--all` to say it is meant.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use strata_client::acl::{
    AclBinding, AclFilter, CLUSTER_NAME, Operation, PatternFilter, PatternType, Permission,
    ResourceType, USER_PRINCIPAL_PREFIX, WILDCARD,
};

use crate::AdminTarget;
use crate::output::{FormatArg, OutputFormat, aligned, print_json};

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Allow a principal operations on a topic, a group or the cluster (or, with --deny, forbid
    /// them: a deny wins over every allow). One ACL per --operation.
    #[command(
        after_help = "Example:\n  strata acl create --principal alice --operation read --topic orders\n  strata acl create --principal alice --operation read --group billing\n  strata acl create --principal writer --operation write,describe --topic logs. --prefixed\n  strata acl create --principal '*' --operation describe --topic '*'\n  strata acl create --principal mallory --operation all --topic orders --deny\n  strata acl create --principal ops --operation create --cluster"
    )]
    Create(CreateArgs),
    /// List the ACLs, or those the filter flags select.
    #[command(
        after_help = "Example:\n  strata acl list\n  strata acl list --principal alice --format json\n  strata acl list --topic orders --match    # every ACL that applies to topic orders"
    )]
    List(ListArgs),
    /// Delete the ACLs the filter flags select, and print them.
    #[command(
        after_help = "Example:\n  strata acl delete --principal alice --topic orders\n  strata acl delete --principal writer --topic logs. --prefixed --operation write\n  strata acl delete --all"
    )]
    Delete(DeleteArgs),
}

/// The resource a new ACL names, or the one a filter selects by.
#[derive(Debug, Clone, Args)]
#[group(id = "resource", multiple = false)]
pub struct ResourceArgs {
    /// A topic; `*` is every topic.
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// A consumer group; `*` is every group.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// The cluster: creating topics, managing users and ACLs, describing configs.
    #[arg(long)]
    cluster: bool,
}

impl ResourceArgs {
    /// The resource's type and name, if a flag names one.
    fn resource(&self) -> Option<(ResourceType, String)> {
        match (&self.topic, &self.group, self.cluster) {
            (Some(topic), _, _) => Some((ResourceType::Topic, topic.clone())),
            (_, Some(group), _) => Some((ResourceType::Group, group.clone())),
            (_, _, true) => Some((ResourceType::Cluster, CLUSTER_NAME.to_string())),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
#[command(mut_group("resource", |group| group.required(true)))]
pub struct CreateArgs {
    /// Whom the ACL is for: a user NAME, User:NAME, or `*` for every user.
    #[arg(long, value_name = "PRINCIPAL", value_parser = parse_principal)]
    principal: String,
    /// What it allows: read, write, describe, create, delete, alter, describe-configs,
    /// alter-configs, idempotent-write, cluster-action or all (Kafka's names). Repeat, or
    /// separate with commas, for several.
    #[arg(long = "operation", value_name = "OPERATION", required = true, value_delimiter = ',', value_parser = parse_operation)]
    operations: Vec<Operation>,
    #[command(flatten)]
    resource: ResourceArgs,
    /// The name given is a prefix: the ACL covers every topic or group whose name starts
    /// with it.
    #[arg(long, conflicts_with = "cluster")]
    prefixed: bool,
    /// Forbid the operations instead of allowing them.
    #[arg(long)]
    deny: bool,
    /// The client address (IP) the ACL applies to; `*` is every address.
    #[arg(long, value_name = "IP", default_value = WILDCARD, value_parser = parse_host)]
    host: String,
    #[command(flatten)]
    target: AdminTarget,
}

/// Flags that select ACLs; each one given narrows the selection.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only ACLs for this principal: NAME, User:NAME, or `*` for those that name every user.
    #[arg(long, value_name = "PRINCIPAL", value_parser = parse_principal)]
    principal: Option<String>,
    #[command(flatten)]
    resource: ResourceArgs,
    /// Only prefixed ACLs (with --topic or --group: those with exactly that prefix). Without
    /// --prefixed or --match, a --topic or --group selects the literal ACLs of that name.
    #[arg(long, conflicts_with = "cluster")]
    prefixed: bool,
    /// Every ACL that applies to the --topic or --group named: literal with its name or `*`,
    /// and prefixed with a prefix of it.
    #[arg(long = "match", requires = "resource", conflicts_with = "prefixed")]
    matching: bool,
    /// Only ACLs of this operation (Kafka's names, as for `acl create`). Repeat, or separate
    /// with commas, for several.
    #[arg(long = "operation", value_name = "OPERATION", value_delimiter = ',', value_parser = parse_operation)]
    operations: Vec<Operation>,
    /// Only ACLs that deny.
    #[arg(long, conflicts_with = "allow")]
    deny: bool,
    /// Only ACLs that allow.
    #[arg(long)]
    allow: bool,
    /// Only ACLs for this client address (IP, or `*` for those that apply to every address).
    #[arg(long, value_name = "IP", value_parser = parse_host)]
    host: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    target: AdminTarget,
    #[command(flatten)]
    output: FormatArg,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Delete every ACL. Required when no filter flag is given, so that a forgotten flag does
    /// not lock every user but the super users out.
    #[arg(long, conflicts_with_all = ["principal", "resource", "prefixed", "matching", "operations", "deny", "allow", "host"])]
    all: bool,
    #[command(flatten)]
    target: AdminTarget,
    #[command(flatten)]
    output: FormatArg,
}

/// `--principal`: `alice` and `User:alice` are `User:alice`, and `*` is every user (`User:*`).
fn parse_principal(text: &str) -> Result<String, String> {
    let text = text.trim();
    let name = match text.strip_prefix(USER_PRINCIPAL_PREFIX) {
        Some(name) => name,
        // Kafka's other principal types (`Group:`, ...) mean nothing here: a typo, or rules
        // written for another cluster.
        None if text.contains(':') => {
            return Err(format!(
                "'{text}' is not NAME, User:NAME or *: Strata's principals are users"
            ));
        }
        None => text,
    };
    if name.is_empty() {
        return Err("the principal is empty; give NAME, User:NAME or *".to_string());
    }
    Ok(format!("{USER_PRINCIPAL_PREFIX}{name}"))
}

/// `--operation`, by Kafka's name in any case, with `-` or `_`.
fn parse_operation(text: &str) -> Result<Operation, String> {
    Operation::parse(text).ok_or_else(|| {
        let names: Vec<String> = Operation::ALL
            .iter()
            .map(|operation| operation.name().to_ascii_lowercase().replace('_', "-"))
            .collect();
        format!("'{text}' is not an operation; one of {}", names.join(", "))
    })
}

/// `--host`: an IP address, written as the broker writes a caller's (so `::0001` finds `::1`),
/// or `*`.
fn parse_host(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text == WILDCARD {
        return Ok(text.to_string());
    }
    text.parse::<IpAddr>()
        .map(|address| address.to_string())
        .map_err(|_| format!("'{text}' is not an IP address or *"))
}

impl CreateArgs {
    /// The ACLs to create, one per operation, each checked as the broker would check it.
    fn bindings(&self) -> Result<Vec<AclBinding>, clap::Error> {
        let (resource_type, resource_name) = self.resource.resource().ok_or_else(|| {
            // clap already requires one; this says what is missing should that ever change.
            clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                "give --topic, --group or --cluster\n",
            )
        })?;
        let mut bindings = Vec::new();
        for &operation in &self.operations {
            let binding = AclBinding {
                resource_type,
                resource_name: resource_name.clone(),
                pattern_type: match self.prefixed {
                    true => PatternType::Prefixed,
                    false => PatternType::Literal,
                },
                principal: self.principal.clone(),
                host: self.host.clone(),
                operation,
                permission: match self.deny {
                    true => Permission::Deny,
                    false => Permission::Allow,
                },
            };
            binding.validate().map_err(|invalid| {
                clap::Error::raw(clap::error::ErrorKind::ValueValidation, invalid.0)
            })?;
            if !bindings.contains(&binding) {
                bindings.push(binding);
            }
        }
        Ok(bindings)
    }
}

impl FilterArgs {
    /// Whether no flag narrows the selection: every ACL would match.
    fn is_empty(&self) -> bool {
        self.principal.is_none()
            && self.resource.resource().is_none()
            && !self.prefixed
            && !self.matching
            && self.operations.is_empty()
            && !self.deny
            && !self.allow
            && self.host.is_none()
    }

    /// One filter per --operation (one for any operation without it).
    fn filters(&self) -> Vec<AclFilter> {
        let resource = self.resource.resource();
        let pattern = match (self.prefixed, self.matching, &resource) {
            (true, _, _) => PatternFilter::Exactly(PatternType::Prefixed),
            (_, true, _) => PatternFilter::Match,
            // As in kafka-acls.sh: a named resource means its literal ACLs unless told
            // otherwise.
            (_, _, Some(_)) => PatternFilter::Exactly(PatternType::Literal),
            (_, _, None) => PatternFilter::Any,
        };
        let base = AclFilter {
            resource_type: resource.as_ref().map(|(resource_type, _)| *resource_type),
            resource_name: resource.map(|(_, name)| name),
            pattern,
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: None,
            permission: match (self.allow, self.deny) {
                (true, _) => Some(Permission::Allow),
                (_, true) => Some(Permission::Deny),
                _ => None,
            },
        };
        if self.operations.is_empty() {
            return vec![base];
        }
        self.operations
            .iter()
            .map(|&operation| AclFilter {
                operation: Some(operation),
                ..base.clone()
            })
            .collect()
    }
}

pub async fn run(command: AclCommand) -> Result<()> {
    match command {
        AclCommand::Create(args) => {
            let bindings = args.bindings()?;
            let admin = args.target.connect().await?;
            admin
                .create_acls(bindings.clone())
                .await
                .context("cannot create ACLs")?;
            print_bindings(&bindings, OutputFormat::Table, Some("created"));
        }
        AclCommand::List(args) => {
            let admin = args.target.connect().await?;
            // Several --operation flags are several filters; a binding is listed once.
            let mut bindings = BTreeSet::new();
            for filter in args.filter.filters() {
                bindings.extend(
                    admin
                        .describe_acls(filter)
                        .await
                        .context("cannot list ACLs")?,
                );
            }
            let bindings: Vec<AclBinding> = bindings.into_iter().collect();
            print_bindings(&bindings, args.output.format, None);
        }
        AclCommand::Delete(args) => {
            if args.filter.is_empty() && !args.all {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "no filter given, which would delete every ACL: select ACLs with \
                     --principal, --topic, --group, --cluster, --operation, --allow, --deny or \
                     --host, or give --all to delete them all\n",
                )
                .into());
            }
            let admin = args.target.connect().await?;
            let deleted = admin
                .delete_acls(args.filter.filters())
                .await
                .context("cannot delete ACLs")?;
            if deleted.is_empty() && args.output.format == OutputFormat::Table {
                println!("no ACL matched; nothing deleted");
            } else {
                print_bindings(&deleted, args.output.format, Some("deleted"));
            }
        }
    }
    Ok(())
}

/// `bindings` as a table (after `what happened`, when given) or as one JSON array. The names
/// are Kafka's, as `kafka-acls.sh` prints them.
fn print_bindings(bindings: &[AclBinding], format: OutputFormat, what_happened: Option<&str>) {
    if format == OutputFormat::Json {
        print_json(&Value::Array(bindings.iter().map(binding_json).collect()));
        return;
    }
    if let Some(what_happened) = what_happened {
        let plural = if bindings.len() == 1 { "" } else { "s" };
        println!("{what_happened} {} ACL{plural}:", bindings.len());
    }
    let mut rows = vec![
        [
            "PRINCIPAL",
            "HOST",
            "PERMISSION",
            "OPERATION",
            "RESOURCE",
            "PATTERN",
            "NAME",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    rows.extend(bindings.iter().map(|binding| {
        vec![
            binding.principal.clone(),
            binding.host.clone(),
            binding.permission.to_string(),
            binding.operation.to_string(),
            binding.resource_type.to_string(),
            binding.pattern_type.to_string(),
            binding.resource_name.clone(),
        ]
    }));
    println!("{}", aligned(&rows));
}

fn binding_json(binding: &AclBinding) -> Value {
    json!({
        "principal": binding.principal,
        "host": binding.host,
        "permission": binding.permission.name(),
        "operation": binding.operation.name(),
        "resource_type": binding.resource_type.name(),
        "pattern_type": binding.pattern_type.name(),
        "resource_name": binding.resource_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(subcommand)]
        acl: AclCommand,
    }

    fn parsed(arguments: &[&str]) -> Result<AclCommand, clap::Error> {
        let arguments = ["strata"].iter().chain(arguments).copied();
        Command::try_parse_from(arguments).map(|command| command.acl)
    }

    fn created(arguments: &[&str]) -> Result<Vec<AclBinding>, clap::Error> {
        match parsed(&[&["create"], arguments].concat())? {
            AclCommand::Create(args) => args.bindings(),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn filters(arguments: &[&str]) -> Vec<AclFilter> {
        match parsed(&[&["list"], arguments].concat()).unwrap() {
            AclCommand::List(args) => args.filter.filters(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn principals_are_users_however_they_are_written() {
        assert_eq!(parse_principal("alice").unwrap(), "User:alice");
        assert_eq!(parse_principal("User:alice").unwrap(), "User:alice");
        assert_eq!(parse_principal("*").unwrap(), "User:*");
        assert!(parse_principal("Group:ops").unwrap_err().contains("users"));
        assert!(parse_principal("User:").is_err());
        assert!(parse_principal("").is_err());
    }

    #[test]
    fn hosts_are_addresses_or_every_host() {
        assert_eq!(parse_host("*").unwrap(), "*");
        assert_eq!(parse_host("::0001").unwrap(), "::1");
        assert!(parse_host("example.com").is_err());
    }

    #[test]
    fn create_makes_one_acl_per_operation() {
        let bindings = created(&[
            "--principal",
            "alice",
            "--operation",
            "read",
            "--operation",
            "describe-configs,READ",
            "--topic",
            "logs.",
            "--prefixed",
            "--deny",
            "--host",
            "10.0.0.1",
        ])
        .unwrap();
        let operations: Vec<Operation> = bindings.iter().map(|binding| binding.operation).collect();
        assert_eq!(operations, [Operation::Read, Operation::DescribeConfigs]);
        let first = &bindings[0];
        assert_eq!(first.principal, "User:alice");
        assert_eq!(first.resource_type, ResourceType::Topic);
        assert_eq!(first.pattern_type, PatternType::Prefixed);
        assert_eq!(first.permission, Permission::Deny);
        assert_eq!(first.host, "10.0.0.1");
        let cluster = created(&["--principal", "*", "--operation", "create", "--cluster"]);
        assert_eq!(cluster.unwrap()[0].resource_name, CLUSTER_NAME);
    }

    #[test]
    fn create_refuses_bad_combinations_before_connecting() {
        let base = ["--principal", "alice", "--operation", "read"];
        let refused = |extra: &[&str]| created(&[&base[..], extra].concat()).unwrap_err();
        assert!(
            refused(&[]).to_string().contains("--topic"),
            "a resource is required"
        );
        assert!(
            refused(&["--topic", "a", "--group", "g"])
                .to_string()
                .contains("cannot be used with")
        );
        assert!(
            refused(&["--cluster", "--prefixed"])
                .to_string()
                .contains("cannot be used with")
        );
        assert!(
            refused(&["--cluster"])
                .to_string()
                .contains("READ does not apply to a CLUSTER resource")
        );
        assert!(
            refused(&["--topic", "*", "--prefixed"])
                .to_string()
                .contains("literal")
        );
        let unknown = created(&["--principal", "a", "--operation", "reed", "--topic", "t"]);
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("idempotent-write")
        );
    }

    #[test]
    fn filters_select_literal_names_unless_told_otherwise() {
        let every = filters(&[]);
        assert_eq!(every, [AclFilter::any()]);
        let literal = &filters(&["--topic", "a"])[0];
        assert_eq!(literal.resource_type, Some(ResourceType::Topic));
        assert_eq!(literal.resource_name.as_deref(), Some("a"));
        assert_eq!(
            literal.pattern,
            PatternFilter::Exactly(PatternType::Literal)
        );
        let matching = &filters(&["--group", "g", "--match", "--allow"])[0];
        assert_eq!(matching.pattern, PatternFilter::Match);
        assert_eq!(matching.permission, Some(Permission::Allow));
        let prefixed = filters(&["--prefixed", "--operation", "read,write"]);
        assert_eq!(prefixed.len(), 2);
        assert_eq!(prefixed[1].operation, Some(Operation::Write));
        assert_eq!(
            prefixed[1].pattern,
            PatternFilter::Exactly(PatternType::Prefixed)
        );
        assert!(
            parsed(&["list", "--match"]).is_err(),
            "--match needs a name"
        );
    }

    #[test]
    fn delete_needs_a_filter_or_all() {
        let delete = |arguments: &[&str]| match parsed(&[&["delete"], arguments].concat()) {
            Ok(AclCommand::Delete(args)) => Ok((args.filter.is_empty(), args.all)),
            Ok(other) => panic!("parsed as {other:?}"),
            Err(error) => Err(error),
        };
        assert_eq!(delete(&[]).unwrap(), (true, false));
        assert_eq!(delete(&["--all"]).unwrap(), (true, true));
        assert_eq!(delete(&["--deny"]).unwrap(), (false, false));
        assert!(delete(&["--all", "--topic", "a"]).is_err());
    }
}
