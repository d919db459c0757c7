//! `strata cluster status`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use strata_client::{PartitionLog, TopicDescription, TopicPartition};

use crate::AdminTarget;
use crate::output::{FormatArg, OutputFormat, aligned, broker_json, print_json, topic_json};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the brokers, the controller, and every partition's leader and in-sync replicas.
    #[command(
        after_help = "Example:\n  strata cluster status --bootstrap 127.0.0.1:7070,127.0.0.1:7071"
    )]
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: AdminTarget,
    #[command(flatten)]
    output: FormatArg,
}

pub async fn run(command: ClusterCommand) -> Result<()> {
    let ClusterCommand::Status(args) = command;
    let admin = args.target.connect().await?;
    let cluster = admin
        .describe_cluster()
        .await
        .context("cannot describe the cluster")?;
    let topics = admin
        .describe_topics()
        .await
        .context("cannot describe the topics")?;
    if args.output.format == OutputFormat::Json {
        let no_logs = BTreeMap::new();
        print_json(&serde_json::json!({
            "cluster_id": cluster.cluster_id,
            "controller_id": cluster.controller_id,
            "brokers": cluster.brokers.iter().map(broker_json).collect::<Vec<_>>(),
            "topics": topics.iter().map(|topic| topic_json(topic, &no_logs)).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!("cluster     {}", cluster.cluster_id);
    println!(
        "controller  {}",
        cluster.controller_id.map_or_else(
            || "none (election in progress)".to_string(),
            |id| id.to_string()
        )
    );
    println!("brokers");
    for broker in &cluster.brokers {
        let offline = if broker.offline_log_dirs.is_empty() {
            String::new()
        } else {
            format!(
                "  (log directory offline: {}; restart it once the disk is sound)",
                broker.offline_log_dirs.join(", ")
            )
        };
        println!(
            "  {:<4} {}{}{offline}",
            broker.node_id,
            broker.address,
            if broker.fenced { "  (fenced)" } else { "" }
        );
    }
    if topics.is_empty() {
        println!("no topics");
    } else {
        println!("partitions");
        println!("{}", partition_table(&topics, None));
    }
    Ok(())
}

fn join(ids: &[i32]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// One aligned row per partition: topic, partition, leader, replicas, in-sync replicas, with
/// partitions missing replicas from the ISR marked; with `logs`, also each partition's log
/// start offset, high watermark and size (binary units: KiB, MiB, ...).
pub fn partition_table(
    topics: &[TopicDescription],
    logs: Option<&BTreeMap<TopicPartition, PartitionLog>>,
) -> String {
    let mut header: Vec<String> = ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"]
        .map(String::from)
        .to_vec();
    if logs.is_some() {
        header.extend(["LOG-START", "HIGH-WATERMARK", "SIZE"].map(String::from));
    }
    header.push(String::new());
    let mut rows = vec![header];
    for topic in topics {
        for partition in &topic.partitions {
            let note = if partition.leader.is_none() {
                "offline"
            } else if partition.isr.len() < partition.replicas.len() {
                "under-replicated"
            } else {
                ""
            };
            let mut row = vec![
                topic.name.clone(),
                partition.partition.to_string(),
                partition
                    .leader
                    .map_or_else(|| "none".to_string(), |leader| leader.to_string()),
                join(&partition.replicas),
                join(&partition.isr),
            ];
            if let Some(logs) = logs {
                let log = logs.get(&TopicPartition::new(
                    topic.name.as_str(),
                    partition.partition,
                ));
                let shown = |value: Option<String>| value.unwrap_or_else(|| "?".to_string());
                row.push(shown(log.map(|log| log.log_start_offset.to_string())));
                row.push(shown(log.map(|log| log.high_watermark.to_string())));
                row.push(shown(
                    log.and_then(|log| log.size_bytes)
                        .map(|size| indicatif::BinaryBytes(size).to_string()),
                ));
            }
            row.push(note.to_string());
            rows.push(row);
        }
    }
    aligned(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_client::PartitionInfo;

    #[test]
    fn the_partition_table_marks_unhealthy_partitions() {
        let topic = TopicDescription {
            name: "orders".to_string(),
            partitions: vec![
                PartitionInfo {
                    partition: 0,
                    leader: Some(1),
                    leader_epoch: 0,
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                },
                PartitionInfo {
                    partition: 1,
                    leader: Some(2),
                    leader_epoch: 0,
                    replicas: vec![2, 1],
                    isr: vec![2],
                },
                PartitionInfo {
                    partition: 2,
                    leader: None,
                    leader_epoch: 0,
                    replicas: vec![1],
                    isr: vec![],
                },
            ],
        };
        let table = partition_table(&[topic], None);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].trim_start().starts_with("TOPIC"));
        assert!(lines[1].contains("orders") && lines[1].ends_with("1,2"));
        assert!(lines[2].ends_with("under-replicated"));
        assert!(lines[3].contains("none") && lines[3].ends_with("offline"));
    }
}
