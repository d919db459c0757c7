//! `strata dlq ...`: dead-letter topics of share groups — list them, look inside, and send
//! parked records back to where they came from once the problem is fixed.

use crate::tls::{ClusterTarget, ConnectTo};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use strata_client::{
    Admin, AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, Header, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};

use crate::Bootstrap;
use crate::output::{FormatArg, OutputFormat, print_json};
use crate::topic::connect_admin;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead-letter topics (`<topic>.dlq`) and how many records each holds.
    #[command(after_help = "Example:\n  strata dlq list")]
    List(ListArgs),
    /// Print parked records with where they came from and why they were parked.
    #[command(after_help = "Example:\n  strata dlq peek orders.dlq --max-messages 10")]
    Peek(PeekArgs),
    /// Re-publish parked records to their source topic (or --to), once each.
    #[command(
        after_help = "Example:\n  strata dlq redrive orders.dlq\n  strata dlq redrive orders.dlq --to orders-retry --max-messages 100"
    )]
    Redrive(RedriveArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    #[command(flatten)]
    output: FormatArg,
}

#[derive(Debug, Args)]
pub struct PeekArgs {
    topic: String,
    #[arg(long, default_value_t = 20, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_messages: u64,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    topic: String,
    /// Publish here instead of each record's source topic.
    #[arg(long, value_name = "TOPIC")]
    to: Option<String>,
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_messages: Option<u64>,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

/// The consumer group that remembers how far each dead-letter topic was redriven, so a record
/// is redriven once however often the command runs.
fn redrive_group(topic: &str) -> String {
    format!("strata-dlq-redrive.{topic}")
}

pub fn header<'a>(record: &'a ConsumerRecord, key: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .rev()
        .find(|header| header.key == key)
        .and_then(|header| header.value.as_deref())
        .and_then(|value| std::str::from_utf8(value).ok())
}

fn text(bytes: Option<&Bytes>) -> String {
    bytes.map_or_else(
        || "null".to_string(),
        |bytes| String::from_utf8_lossy(bytes).into_owned(),
    )
}

/// Reads `topic` from `start` (per partition) up to the end offsets at the time of the call, or
/// `max` records.
async fn read_to_end(
    consumer: &mut Consumer,
    ends: &BTreeMap<TopicPartition, i64>,
    max: Option<u64>,
) -> Result<Vec<ConsumerRecord>> {
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut caught_up = true;
        for (partition, end) in ends {
            if consumer.position(partition).await? < *end {
                caught_up = false;
            }
        }
        if caught_up || max.is_some_and(|max| records.len() as u64 >= max) {
            break;
        }
        if Instant::now() > deadline {
            bail!("reading the dead-letter topic took longer than 60 s");
        }
        for record in consumer.poll(Duration::from_millis(500)).await? {
            let end = ends
                .get(&record.topic_partition())
                .copied()
                .unwrap_or(i64::MAX);
            if record.offset < end && max.is_none_or(|max| (records.len() as u64) < max) {
                records.push(record);
            }
        }
    }
    Ok(records)
}

async fn end_offsets(admin: &Admin, topic: &str) -> Result<BTreeMap<TopicPartition, i64>> {
    let description = admin
        .describe_topic(topic)
        .await
        .with_context(|| format!("cannot read dead-letter topic '{topic}'"))?;
    let mut ends = BTreeMap::new();
    for partition in &description.partitions {
        let topic_partition = TopicPartition::new(topic, partition.partition);
        let end = admin
            .list_offsets(&topic_partition, OffsetSpec::Latest)
            .await?
            .map_or(0, |found| found.offset);
        ends.insert(topic_partition, end);
    }
    Ok(ends)
}

/// A dead-letter topic and how many records it holds now.
pub struct DeadLetterTopic {
    pub topic: String,
    pub records: i64,
}

/// Every dead-letter topic (`<topic>.dlq`) the caller may describe.
pub async fn list(admin: &Admin) -> Result<Vec<DeadLetterTopic>> {
    let mut listed = Vec::new();
    for topic in admin.list_topics().await? {
        if !topic.ends_with(".dlq") {
            continue;
        }
        let mut records = 0;
        for partition in &admin.describe_topic(&topic).await?.partitions {
            let topic_partition = TopicPartition::new(topic.as_str(), partition.partition);
            let start = admin
                .list_offsets(&topic_partition, OffsetSpec::Earliest)
                .await?
                .map_or(0, |found| found.offset);
            let end = admin
                .list_offsets(&topic_partition, OffsetSpec::Latest)
                .await?
                .map_or(0, |found| found.offset);
            records += end - start;
        }
        listed.push(DeadLetterTopic { topic, records });
    }
    Ok(listed)
}

/// Up to `max` parked records of `topic`, oldest first, without consuming them.
pub async fn peek(
    admin: &Admin,
    target: &ClusterTarget,
    topic: &str,
    max: u64,
) -> Result<Vec<ConsumerRecord>> {
    let ends = end_offsets(admin, topic).await?;
    let mut consumer = Consumer::connect(
        ConsumerConfig::builder()
            .aimed_at(target)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .build()?,
    )
    .await?;
    consumer.assign(ends.keys().cloned().collect())?;
    read_to_end(&mut consumer, &ends, Some(max)).await
}

/// Re-publishes the records of `topic` not redriven before (at most `max`) to their source
/// topic or `to`, and returns how many it sent.
pub async fn redrive(
    admin: &Admin,
    target: &ClusterTarget,
    topic: &str,
    to: Option<&str>,
    max: Option<u64>,
) -> Result<usize> {
    let ends = end_offsets(admin, topic).await?;
    let mut consumer = Consumer::connect(
        ConsumerConfig::builder()
            .aimed_at(target)
            .group_id(redrive_group(topic))
            .enable_auto_commit(false)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .build()?,
    )
    .await?;
    let partitions: Vec<TopicPartition> = ends.keys().cloned().collect();
    consumer.assign(partitions.clone())?;
    let committed = consumer.committed(&partitions).await?;
    for (partition, offset) in committed {
        if let Some(offset) = offset {
            consumer.seek(&partition, offset.offset)?;
        }
    }
    let records = read_to_end(&mut consumer, &ends, max).await?;
    let producer = Producer::connect(ProducerConfig::builder().aimed_at(target).build()?).await?;
    let mut deliveries = Vec::with_capacity(records.len());
    for record in &records {
        let target_topic = match (to, header(record, "dlq.source.topic")) {
            (Some(to), _) => to.to_string(),
            (None, Some(source)) => source.to_string(),
            (None, None) => bail!(
                "record {}@{} of '{topic}' has no dlq.source.topic header; say which topic to \
                 redrive it to (--to)",
                record.partition,
                record.offset,
            ),
        };
        let mut out = ProducerRecord::new(target_topic, record.value.clone().unwrap_or_default());
        if let Some(key) = &record.key {
            out = out.key(key.clone());
        }
        let mut headers: Vec<Header> = record
            .headers
            .iter()
            .filter(|header| !header.key.starts_with("dlq."))
            .cloned()
            .collect();
        headers.push(Header {
            key: "dlq.redriven.from".to_string(),
            value: Some(Bytes::from(format!(
                "{topic}-{}@{}",
                record.partition, record.offset
            ))),
        });
        out = out.headers(headers);
        deliveries.push(producer.send(out).await?);
    }
    for delivery in deliveries {
        delivery.await.context("cannot republish a parked record")?;
    }
    producer.close().await?;
    // Committed only after every record is acknowledged: a failure redrives again rather than
    // losing a record.
    let mut next: BTreeMap<TopicPartition, strata_client::OffsetAndMetadata> = BTreeMap::new();
    for record in &records {
        next.insert(
            record.topic_partition(),
            strata_client::OffsetAndMetadata::new(record.offset + 1),
        );
    }
    if !next.is_empty() {
        consumer.commit_offsets(next).await?;
    }
    Ok(records.len())
}

pub async fn run(command: DlqCommand) -> Result<()> {
    match command {
        DlqCommand::List(args) => {
            let admin = connect_admin(&args.bootstrap).await?;
            let listed = list(&admin).await?;
            match args.output.format {
                OutputFormat::Json => print_json(&serde_json::json!(
                    listed
                        .iter()
                        .map(|dlq| serde_json::json!({"topic": dlq.topic, "records": dlq.records}))
                        .collect::<Vec<_>>()
                )),
                OutputFormat::Table if listed.is_empty() => println!("no dead-letter topics"),
                OutputFormat::Table => {
                    for dlq in &listed {
                        println!("{:<40} {} records", dlq.topic, dlq.records);
                    }
                }
            }
        }
        DlqCommand::Peek(args) => {
            let admin = connect_admin(&args.bootstrap).await?;
            let target = args.bootstrap.cluster_target()?;
            let records = peek(&admin, &target, &args.topic, args.max_messages).await?;
            for record in &records {
                println!(
                    "{}@{}  from {}-{}@{}  deliveries {}  reason: {}\n  key {}  value {}",
                    record.partition,
                    record.offset,
                    header(record, "dlq.source.topic").unwrap_or("?"),
                    header(record, "dlq.source.partition").unwrap_or("?"),
                    header(record, "dlq.source.offset").unwrap_or("?"),
                    header(record, "dlq.delivery.count").unwrap_or("?"),
                    header(record, "dlq.reason").unwrap_or("?"),
                    text(record.key.as_ref()),
                    text(record.value.as_ref()),
                );
            }
            eprintln!("{} parked record(s) shown", records.len());
        }
        DlqCommand::Redrive(args) => {
            let admin = connect_admin(&args.bootstrap).await?;
            let target = args.bootstrap.cluster_target()?;
            let redriven = redrive(
                &admin,
                &target,
                &args.topic,
                args.to.as_deref(),
                args.max_messages,
            )
            .await?;
            eprintln!("redrove {redriven} record(s) from '{}'", args.topic);
        }
    }
    Ok(())
}
