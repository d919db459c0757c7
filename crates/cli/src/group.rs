//! `strata group ...`: consumer-group administration (list, describe with lag, reset offsets,
//! delete).

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use strata_client::{
    Admin, ErrorCode, GroupDescription, OffsetReset, PartitionLag, TopicPartition,
};

use crate::AdminTarget;
use crate::duration::{self, DurationParser, Unit};
use crate::output::{FormatArg, OutputFormat, print_json};

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List every consumer group with its state and member count.
    #[command(after_help = "Example:\n  strata group list")]
    List(ListArgs),
    /// Show a group's members and, per partition, committed offset, log end offset and lag; for
    /// a share group, its in-flight, delivered, acknowledged and dead-lettered records.
    #[command(
        after_help = "Example:\n  strata group describe billing\n  strata group describe billing --format json"
    )]
    Describe(DescribeArgs),
    /// Move a group's committed offsets (dry run unless --execute). The group must be empty.
    #[command(
        after_help = "Example:\n  strata group reset-offsets billing --topic orders --to-earliest            # shows the plan\n  strata group reset-offsets billing --topic orders --to-timestamp 1767225600000 --execute\n  strata group reset-offsets billing --topic orders --by-duration 1h --execute"
    )]
    ResetOffsets(ResetArgs),
    /// Delete an empty group and its committed offsets.
    #[command(after_help = "Example:\n  strata group delete billing")]
    Delete(GroupArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: AdminTarget,
    #[command(flatten)]
    output: FormatArg,
}

#[derive(Debug, Args)]
pub struct GroupArgs {
    /// The group id.
    group: String,
    #[command(flatten)]
    target: AdminTarget,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The group id.
    group: String,
    #[command(flatten)]
    target: AdminTarget,
    #[command(flatten)]
    output: FormatArg,
}

#[derive(Debug, Args)]
// Not `required`: clap would list every member in the usage line, the hidden --by-duration-ms
// too, so a missing target is reported by `ResetArgs::reset` instead, and the usage written here.
#[command(group = clap::ArgGroup::new("target").multiple(false).args(["to_earliest", "to_latest", "to_offset", "to_timestamp", "by_duration"]))]
#[command(override_usage = format!("strata group reset-offsets [OPTIONS] --topic <TOPIC> {RESET_TARGETS} <GROUP>"))]
pub struct ResetArgs {
    group: String,
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    #[arg(long)]
    to_earliest: bool,
    #[arg(long)]
    to_latest: bool,
    /// Clamped into each partition's retained range.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    to_offset: Option<i64>,
    /// The first record at or after this time (ms since the Unix epoch).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(i64).range(0..))]
    to_timestamp: Option<i64>,
    /// The first record at or after this long ago (e.g. 1h, 30m, 2d).
    #[arg(long, value_name = "DURATION", value_parser = DurationParser::human())]
    by_duration: Option<Duration>,
    /// --by-duration in milliseconds, its old spelling.
    #[arg(long, hide = true, value_name = "MS", conflicts_with_all = ["to_earliest", "to_latest", "to_offset", "to_timestamp", "by_duration"], value_parser = DurationParser::human().number_of(Unit::Millis))]
    by_duration_ms: Option<Duration>,
    /// Commit the new offsets; without it only the plan is printed.
    #[arg(long)]
    execute: bool,
    #[command(flatten)]
    target: AdminTarget,
}

/// Where `group reset-offsets` may reset to, as clap writes a required choice.
const RESET_TARGETS: &str =
    "<--to-earliest|--to-latest|--to-offset <N>|--to-timestamp <MS>|--by-duration <DURATION>>";

impl ResetArgs {
    /// Where to reset to: the one target flag given (clap refuses more than one), or the
    /// usage error clap gives for a missing required argument.
    fn reset(&self) -> Result<OffsetReset, clap::Error> {
        Ok(if self.to_earliest {
            OffsetReset::ToEarliest
        } else if self.to_latest {
            OffsetReset::ToLatest
        } else if let Some(offset) = self.to_offset {
            OffsetReset::ToOffset(offset)
        } else if let Some(timestamp) = self.to_timestamp {
            OffsetReset::ToTimestamp(timestamp)
        } else if let Some(back) = duration::given(self.by_duration, self.by_duration_ms) {
            OffsetReset::ByDuration(back)
        } else {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                format!("the following required arguments were not provided:\n  {RESET_TARGETS}\n"),
            ));
        })
    }
}

async fn describe_share_group(admin: &Admin, group: &str, format: OutputFormat) -> Result<()> {
    let description = admin.describe_share_group(group).await?;
    if format == OutputFormat::Json {
        print_json(&json!({
            "share_group": description.group_id,
            "coordinator": description.coordinator_id,
            "members": description.members,
            "delivered": description.delivered,
            "acknowledged": description.acknowledged,
            "dead_lettered": description.dead_lettered,
            "partitions": description.partitions.iter().map(|partition| json!({
                "topic": partition.topic_partition.topic,
                "partition": partition.topic_partition.partition,
                "start_offset": partition.start_offset,
                "next_offset": partition.fetch_offset,
                "in_flight": partition.acquired,
                "available": partition.available,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!(
        "share group {}  coordinator {}  members {}",
        description.group_id,
        description.coordinator_id,
        description.members.len()
    );
    println!(
        "since the coordinator loaded it: delivered {}  acknowledged {}  dead-lettered {}",
        description.delivered, description.acknowledged, description.dead_lettered
    );
    println!(
        "{:<24} {:>10} {:>14} {:>14} {:>10} {:>10}",
        "TOPIC", "PARTITION", "START", "NEXT", "IN-FLIGHT", "AVAILABLE"
    );
    for partition in description.partitions {
        println!(
            "{:<24} {:>10} {:>14} {:>14} {:>10} {:>10}",
            partition.topic_partition.topic,
            partition.topic_partition.partition,
            partition.start_offset,
            partition.fetch_offset,
            partition.acquired,
            partition.available
        );
    }
    Ok(())
}

/// A consumer group's members and, per partition, its committed offset and lag.
fn group_json(description: &GroupDescription, lag: &[PartitionLag]) -> Value {
    let names = |partitions: &std::collections::BTreeSet<TopicPartition>| -> Vec<String> {
        partitions.iter().map(ToString::to_string).collect()
    };
    json!({
        "group": description.group_id,
        "state": description.state,
        "epoch": description.group_epoch,
        "assignor": description.assignor,
        "coordinator": description.coordinator_id,
        "members": description.members.iter().map(|member| json!({
            "member_id": member.member_id,
            "instance_id": member.group_instance_id,
            "epoch": member.member_epoch,
            "assignment": names(&member.assignment),
            "revoking": names(&member.revoking),
        })).collect::<Vec<_>>(),
        "partitions": lag.iter().map(|partition| json!({
            "topic": partition.topic_partition.topic,
            "partition": partition.topic_partition.partition,
            "committed": partition.committed,
            "log_end_offset": partition.log_end_offset,
            "lag": partition.lag,
            "member_id": partition.member_id,
        })).collect::<Vec<_>>(),
    })
}

fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |value| value.to_string())
}

pub async fn run(command: GroupCommand) -> Result<()> {
    match command {
        GroupCommand::List(args) => {
            let admin = args.target.connect().await?;
            let groups = admin.list_groups().await.context("cannot list groups")?;
            if args.output.format == OutputFormat::Json {
                let groups: Vec<_> = groups
                    .iter()
                    .map(|group| {
                        json!({
                            "group": group.group_id,
                            "type": group.group_type,
                            "state": group.state,
                            "members": group.members,
                        })
                    })
                    .collect();
                print_json(&json!(groups));
                return Ok(());
            }
            if groups.is_empty() {
                println!("no groups");
                return Ok(());
            }
            println!("{:<32} {:<12} MEMBERS", "GROUP", "STATE");
            for group in groups {
                println!(
                    "{:<32} {:<12} {}",
                    group.group_id, group.state, group.members
                );
            }
        }
        GroupCommand::Describe(args) => {
            let admin = args.target.connect().await?;
            let context = || format!("cannot describe group '{}'", args.group);
            let description = match admin.describe_group(&args.group).await {
                Err(error) if error.code() == Some(ErrorCode::GroupIdNotFound) => {
                    return describe_share_group(&admin, &args.group, args.output.format)
                        .await
                        .with_context(context);
                }
                other => other.with_context(context)?,
            };
            let lag = admin.group_lag(&args.group).await.with_context(context)?;
            if args.output.format == OutputFormat::Json {
                print_json(&group_json(&description, &lag));
                return Ok(());
            }
            println!(
                "group {}  state {}  epoch {}  assignor {}  coordinator {}",
                description.group_id,
                description.state,
                description.group_epoch,
                description.assignor,
                description.coordinator_id
            );
            if description.members.is_empty() {
                println!("no active members");
            } else {
                println!("members");
                for member in &description.members {
                    let partitions: Vec<String> =
                        member.assignment.iter().map(ToString::to_string).collect();
                    println!(
                        "  {}{}  epoch {}  [{}]{}",
                        member.member_id,
                        member
                            .group_instance_id
                            .as_ref()
                            .map(|id| format!(" ({id})"))
                            .unwrap_or_default(),
                        member.member_epoch,
                        partitions.join(", "),
                        if member.revoking.is_empty() {
                            String::new()
                        } else {
                            format!("  revoking {}", member.revoking.len())
                        }
                    );
                }
            }
            println!(
                "{:<24} {:>10} {:>14} {:>14} {:>10}  MEMBER",
                "TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG"
            );
            for partition in lag {
                println!(
                    "{:<24} {:>10} {:>14} {:>14} {:>10}  {}",
                    partition.topic_partition.topic,
                    partition.topic_partition.partition,
                    or_dash(partition.committed),
                    or_dash(partition.log_end_offset),
                    or_dash(partition.lag),
                    partition.member_id.unwrap_or_else(|| "-".to_string())
                );
            }
        }
        GroupCommand::ResetOffsets(args) => {
            let reset = args.reset()?;
            let admin = args.target.connect().await?;
            let plan = admin
                .reset_group_offsets(&args.group, &args.topic, reset, args.execute)
                .await
                .with_context(|| format!("cannot reset the offsets of group '{}'", args.group))?;
            println!(
                "{:<24} {:>10} {:>14} {:>14}",
                "TOPIC", "PARTITION", "CURRENT", "NEW"
            );
            for (topic_partition, current, new) in plan {
                println!(
                    "{:<24} {:>10} {:>14} {:>14}",
                    topic_partition.topic,
                    topic_partition.partition,
                    or_dash(current),
                    new
                );
            }
            if args.execute {
                eprintln!("offsets of group '{}' reset", args.group);
            } else {
                eprintln!("dry run: nothing changed; add --execute to commit these offsets");
            }
        }
        GroupCommand::Delete(args) => {
            let admin = args.target.connect().await?;
            admin
                .delete_group(&args.group)
                .await
                .with_context(|| format!("cannot delete group '{}'", args.group))?;
            eprintln!("deleted group '{}'", args.group);
        }
    }
    Ok(())
}
