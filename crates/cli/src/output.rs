//! How admin commands print: aligned tables for people, JSON for scripts (`--format json`, one
//! document on stdout). The JSON shapes are part of the CLI's interface, like flag spellings.

use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use strata_client::{BrokerNode, PartitionInfo, PartitionLog, TopicDescription, TopicPartition};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct FormatArg {
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// Prints `document` as one line of JSON.
pub fn print_json(document: &Value) {
    println!("{document}");
}

/// A partition, with its log's offsets and size (`size_bytes`, raw bytes) where they are known.
pub fn partition_json(partition: &PartitionInfo, log: Option<&PartitionLog>) -> Value {
    let mut object = json!({
        "partition": partition.partition,
        "leader": partition.leader,
        "leader_epoch": partition.leader_epoch,
        "replicas": partition.replicas,
        "isr": partition.isr,
    });
    if let Some(log) = log {
        object["log_start_offset"] = json!(log.log_start_offset);
        object["high_watermark"] = json!(log.high_watermark);
        object["size_bytes"] = json!(log.size_bytes);
    }
    object
}

pub fn topic_json(
    topic: &TopicDescription,
    logs: &BTreeMap<TopicPartition, PartitionLog>,
) -> Value {
    json!({
        "topic": topic.name,
        "partitions": topic
            .partitions
            .iter()
            .map(|partition| {
                let topic_partition = TopicPartition::new(topic.name.as_str(), partition.partition);
                partition_json(partition, logs.get(&topic_partition))
            })
            .collect::<Vec<_>>(),
    })
}

pub fn broker_json(broker: &BrokerNode) -> Value {
    json!({
        "node_id": broker.node_id,
        "address": broker.address,
        "fenced": broker.fenced,
        "offline_log_dirs": broker.offline_log_dirs,
    })
}

/// Rows of cells as aligned columns, two spaces of indent and between columns.
pub fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .map(|row| row.get(column).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
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
