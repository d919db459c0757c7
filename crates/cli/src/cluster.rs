//! `strata cluster status`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use strata_client::TopicDescription;

use crate::AdminTarget;

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
        println!("{}", partition_table(&topics));
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
/// partitions missing replicas from the ISR marked.
pub fn partition_table(topics: &[TopicDescription]) -> String {
    let mut rows = vec![[
        "TOPIC".to_string(),
        "PARTITION".to_string(),
        "LEADER".to_string(),
        "REPLICAS".to_string(),
        "ISR".to_string(),
        String::new(),
    ]];
    for topic in topics {
        for partition in &topic.partitions {
            let note = if partition.leader.is_none() {
                "offline"
            } else if partition.isr.len() < partition.replicas.len() {
                "under-replicated"
            } else {
                ""
            };
            rows.push([
                topic.name.clone(),
                partition.partition.to_string(),
                partition
                    .leader
                    .map_or_else(|| "none".to_string(), |leader| leader.to_string()),
                join(&partition.replicas),
                join(&partition.isr),
                note.to_string(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("  {}", cells.join("  ").trim_end())
        })
        .collect::<Vec<_>>()
        .join("\n")
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
        let table = partition_table(&[topic]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].trim_start().starts_with("TOPIC"));
        assert!(lines[1].contains("orders") && lines[1].ends_with("1,2"));
        assert!(lines[2].ends_with("under-replicated"));
        assert!(lines[3].contains("none") && lines[3].ends_with("offline"));
    }
}
