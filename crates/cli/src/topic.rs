//! `strata topic ...`: topic administration.

use crate::tls::ConnectTo;
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use strata_client::{
    Admin, AdminConfig, ErrorCode, NewTopic, PartitionLog, TopicDescription, TopicPartition,
    is_internal_topic,
};

use crate::output::{FormatArg, OutputFormat, print_json, topic_json};
use crate::{AdminTarget, Bootstrap};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    #[command(
        after_help = "Example:\n  strata topic create orders --partitions 6 --replication-factor 3 --config retention.ms=86400000"
    )]
    Create(CreateArgs),
    /// List the topics (internal ones, named `__...`, with --all).
    #[command(
        after_help = "Example:\n  strata topic list --bootstrap 127.0.0.1:7070\n  strata topic list --all --format json"
    )]
    List(ListArgs),
    /// Show a topic's partitions (leader, replicas, in-sync replicas, log start offset, high
    /// watermark, and size: the bytes of the leader's log segments, indexes not counted) and
    /// configs.
    #[command(
        after_help = "Example:\n  strata topic describe orders\n  strata topic describe orders --format json"
    )]
    Describe(DescribeArgs),
    /// Delete a topic and its records.
    #[command(after_help = "Example:\n  strata topic delete orders")]
    Delete(NameArgs),
    /// Set or reset topic configs, or add partitions.
    #[command(
        after_help = "Example:\n  strata topic alter orders --config retention.ms=3600000 --delete-config cleanup.policy\n  strata topic alter orders --partitions 12"
    )]
    Alter(AlterArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    name: String,
    #[arg(long, value_name = "N")]
    partitions: i32,
    #[arg(long, value_name = "R")]
    replication_factor: i32,
    /// A topic config; repeat for several.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
    configs: Vec<(String, String)>,
    #[command(flatten)]
    target: AdminTarget,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include internal topics (`__consumer_offsets`, ...).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    target: AdminTarget,
    #[command(flatten)]
    output: FormatArg,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The topic.
    name: String,
    #[command(flatten)]
    target: AdminTarget,
    #[command(flatten)]
    output: FormatArg,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    name: String,
    #[command(flatten)]
    target: AdminTarget,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["configs", "delete_configs", "partitions"]))]
pub struct AlterArgs {
    /// The topic.
    name: String,
    /// Grow the topic to this many partitions (never fewer). Keys that hash to other partitions
    /// over the new count go there from now on.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// A config to set; repeat for several.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
    configs: Vec<(String, String)>,
    /// A config to return to the broker default; repeat for several.
    #[arg(long = "delete-config", value_name = "KEY")]
    delete_configs: Vec<String>,
    #[command(flatten)]
    target: AdminTarget,
}

/// `KEY=VALUE`, checked while parsing arguments so a typo fails before any connection.
pub fn parse_config(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

/// How long an admin command waits for the cluster unless --timeout says otherwise (as clap
/// shows it); also what the other commands give their admin calls, as
/// [`ADMIN_CALL_TIMEOUT`].
pub(crate) const DEFAULT_ADMIN_TIMEOUT: &str = "30s";
const ADMIN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// An admin client whose calls each end within the default admin timeout.
pub async fn connect_admin(bootstrap: &Bootstrap) -> Result<Admin> {
    connect_admin_within(bootstrap, ADMIN_CALL_TIMEOUT).await
}

/// An admin client whose calls each end within `timeout`, retries included.
async fn connect_admin_within(bootstrap: &Bootstrap, timeout: Duration) -> Result<Admin> {
    let address = &bootstrap.bootstrap;
    let timeout_ms = crate::duration::millis(timeout);
    let config = AdminConfig::builder()
        .connect_to(bootstrap)?
        .connect_timeout_ms(timeout_ms.min(5_000))
        .request_timeout_ms(timeout_ms)
        .api_timeout_ms(timeout_ms)
        .build()?;
    Admin::connect(config).await.map_err(|error| {
        // Only a failure to reach the node is a failure to connect: a node that answers but
        // refuses is up, and what it lacks is said instead.
        let context = match error.code() {
            None => format!(
                "cannot connect to {address} (is the cluster running? `strata dev` starts one)"
            ),
            Some(ErrorCode::LeaderNotAvailable) => format!(
                "{address} is not serving clients yet (a node serves them once it has \
                 registered with the controller quorum, which needs a majority of the voters up)"
            ),
            Some(_) => format!("cannot read the cluster's metadata from {address}"),
        };
        anyhow::Error::new(error).context(context)
    })
}

impl AdminTarget {
    pub(crate) async fn connect(&self) -> Result<Admin> {
        connect_admin_within(&self.bootstrap, self.timeout()).await
    }
}

pub async fn run(command: TopicCommand) -> Result<()> {
    match command {
        TopicCommand::Create(args) => {
            let admin = args.target.connect().await?;
            let mut topic =
                NewTopic::new(args.name.as_str(), args.partitions, args.replication_factor);
            topic.configs = args.configs.into_iter().collect();
            admin
                .create_topic(topic)
                .await
                .with_context(|| format!("cannot create topic '{}'", args.name))?;
            println!(
                "created topic {} with {} partition{}",
                args.name,
                args.partitions,
                if args.partitions == 1 { "" } else { "s" }
            );
        }
        TopicCommand::List(args) => {
            let admin = args.target.connect().await?;
            let names: Vec<String> = admin
                .list_topics()
                .await
                .context("cannot list topics")?
                .into_iter()
                .filter(|name| args.all || !is_internal_topic(name))
                .collect();
            match args.output.format {
                OutputFormat::Json => print_json(&serde_json::json!(names)),
                OutputFormat::Table => names.iter().for_each(|name| println!("{name}")),
            }
        }
        TopicCommand::Describe(args) => describe(args).await?,
        TopicCommand::Delete(args) => {
            let admin = args.target.connect().await?;
            admin
                .delete_topic(&args.name)
                .await
                .with_context(|| format!("cannot delete topic '{}'", args.name))?;
            println!("deleted topic {}", args.name);
        }
        TopicCommand::Alter(args) => {
            let admin = args.target.connect().await?;
            if let Some(total) = args.partitions {
                admin
                    .create_partitions(&args.name, total)
                    .await
                    .with_context(|| format!("cannot add partitions to topic '{}'", args.name))?;
            }
            if !args.configs.is_empty() || !args.delete_configs.is_empty() {
                let set: BTreeMap<String, String> = args.configs.into_iter().collect();
                admin
                    .alter_configs(&args.name, &set, &args.delete_configs)
                    .await
                    .with_context(|| format!("cannot alter topic '{}'", args.name))?;
            }
            println!("altered topic {}", args.name);
        }
    }
    Ok(())
}

/// The topic's description; for a topic that does not exist, the error suggests the closest
/// existing name (a typo is the usual cause).
pub async fn describe_topic_or_suggest(admin: &Admin, name: &str) -> Result<TopicDescription> {
    match admin.describe_topic(name).await {
        Err(error) if error.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
            let suggestion = admin
                .list_topics()
                .await
                .ok()
                .and_then(|topics| {
                    closest_name(name, &topics)
                        .map(|closest| format!(" (did you mean '{closest}'?)"))
                })
                .unwrap_or_default();
            // The broker's message already says the topic does not exist; the hint follows it.
            Err(anyhow::anyhow!("{error}{suggestion}"))
        }
        other => Ok(other?),
    }
}

/// The existing name closest to `name`, if one is close enough to be a likely typo.
fn closest_name<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .filter(|candidate| !is_internal_topic(candidate))
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate.as_str()))
        .filter(|(similarity, _)| *similarity >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

async fn describe(args: DescribeArgs) -> Result<()> {
    let admin = args.target.connect().await?;
    let description = describe_topic_or_suggest(&admin, &args.name)
        .await
        .with_context(|| format!("cannot describe topic '{}'", args.name))?;
    let configs = admin
        .describe_configs(&args.name)
        .await
        .with_context(|| format!("cannot read the configs of topic '{}'", args.name))?;
    let overrides: BTreeMap<String, String> = configs
        .into_iter()
        .filter(|entry| !entry.is_default)
        .map(|entry| (entry.name, entry.value))
        .collect();
    let logs = partition_logs(&admin, &description).await?;
    if args.output.format == OutputFormat::Json {
        let mut document = topic_json(&description, &logs);
        document["configs"] = serde_json::json!(overrides);
        print_json(&document);
        return Ok(());
    }
    println!(
        "topic {}  partitions {}  configs {}",
        description.name,
        description.partitions.len(),
        if overrides.is_empty() {
            "(defaults)".to_string()
        } else {
            overrides
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    );
    println!(
        "{}",
        crate::cluster::partition_table(std::slice::from_ref(&description), Some(&logs))
    );
    Ok(())
}

/// Each partition's log start offset, high watermark and size, asked of its leader. A
/// partition without a leader is left out (its row shows `?`).
async fn partition_logs(
    admin: &Admin,
    topic: &TopicDescription,
) -> Result<BTreeMap<TopicPartition, PartitionLog>> {
    let led: Vec<TopicPartition> = topic
        .partitions
        .iter()
        .filter(|partition| partition.leader.is_some())
        .map(|partition| TopicPartition::new(topic.name.as_str(), partition.partition))
        .collect();
    admin
        .describe_partition_logs(&led)
        .await
        .with_context(|| format!("cannot read the logs of topic '{}'", topic.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_calls_default_to_the_timeout_the_admin_commands_show() {
        assert_eq!(
            crate::duration::parse_human(DEFAULT_ADMIN_TIMEOUT),
            Ok(ADMIN_CALL_TIMEOUT)
        );
    }

    #[test]
    fn configs_are_key_value_pairs() {
        assert_eq!(
            parse_config("retention.ms=1000"),
            Ok(("retention.ms".to_string(), "1000".to_string()))
        );
        assert_eq!(
            parse_config("a=b=c"),
            Ok(("a".to_string(), "b=c".to_string()))
        );
        assert_eq!(
            parse_config("empty="),
            Ok(("empty".to_string(), String::new()))
        );
        assert!(parse_config("retention.ms").is_err());
        assert!(parse_config("=1000").is_err());
    }

    #[test]
    fn a_typo_is_matched_to_the_closest_topic_and_a_stranger_to_none() {
        let topics = [
            "orders".to_string(),
            "payments".to_string(),
            "__consumer_offsets".to_string(),
        ];
        assert_eq!(closest_name("ordres", &topics), Some("orders"));
        assert_eq!(closest_name("payment", &topics), Some("payments"));
        assert_eq!(closest_name("inventory", &topics), None);
        assert_eq!(
            closest_name("__consumer_offset", &topics),
            None,
            "internal topics are not offered"
        );
    }
}
