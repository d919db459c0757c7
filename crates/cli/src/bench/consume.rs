//! `strata bench consume`: Kafka's `consumer-perf-test`. Reads a topic from the beginning of each
//! partition with C consumers, the partitions dealt out between them, and reports throughput.
//!
//! What to read is fixed when the run starts: `--records N` in total, or by default every record
//! below each partition's high watermark at that moment, so records produced during the run do
//! not stretch it. A consumer that sees nothing new for `--timeout` gives up, which bounds a
//! run that asks for more records than the topic has.

use crate::tls::ConnectTo;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde_json::json;
use strata_client::{AutoOffsetReset, Consumer, ConsumerConfig, OffsetSpec, TopicPartition};

use super::ClientThreads;
use super::loopback::{self, baseline_bytes};
use super::progress::Progress;
use super::report::{BenchSummary, Output};
use crate::Bootstrap;
use crate::duration::{self, DurationParser, Unit};
use crate::topic::connect_admin;

#[derive(Debug, Args)]
pub struct ConsumeBenchArgs {
    /// Topic to read.
    #[arg(long, value_name = "T")]
    topic: String,
    /// Records to read in total; default every record below the high watermark at the start.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    records: Option<u64>,
    /// Consumers reading in parallel; the topic's partitions are dealt out between them (at
    /// most one consumer per partition).
    #[arg(long, default_value_t = 1, value_name = "C", value_parser = clap::value_parser!(u64).range(1..=256))]
    consumers: u64,
    /// Read from the first retained record of each partition. Always on: a benchmark reads what
    /// is already there; the flag is accepted for familiarity with Kafka's tools.
    #[arg(long)]
    from_beginning: bool,
    /// Bytes a fetch may return per partition (the consumer's `max_partition_fetch_bytes`;
    /// Kafka's consumer-perf-test calls it `--fetch-size`).
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", value_parser = clap::value_parser!(i32).range(1..))]
    fetch_size: i32,
    /// Give up when no record arrived for this long.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = DurationParser::human())]
    timeout: Duration,
    /// --timeout in milliseconds, its old spelling.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "timeout", value_parser = DurationParser::human().number_of(Unit::Millis))]
    timeout_ms: Option<Duration>,
    #[command(flatten)]
    client_threads: ClientThreads,
    /// Print one JSON object with the result instead of text; progress goes to stderr.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

impl ConsumeBenchArgs {
    pub fn runtime_threads(&self) -> usize {
        self.client_threads.one_per(self.consumers)
    }
}

/// A partition to read and where its records end for this run.
#[derive(Clone, Debug)]
struct PartitionRange {
    topic_partition: TopicPartition,
    /// The high watermark at the start.
    end: i64,
}

/// When a consumer is done.
#[derive(Clone, Debug)]
enum Goal {
    /// Every partition read up to its `end`.
    HighWatermark,
    /// This many records across all consumers, counted in the shared counter.
    Records(u64),
}

/// What one consumer read.
#[derive(Debug, Default)]
struct ReadTally {
    records: u64,
    bytes: u64,
}

/// How long one poll waits; the idle timeout is checked between polls.
const POLL_WAIT: Duration = Duration::from_millis(500);

pub async fn run(args: ConsumeBenchArgs) -> Result<()> {
    let output = Output { json: args.json };
    let admin = connect_admin(&args.bootstrap).await?;
    let description = admin
        .describe_topic(&args.topic)
        .await
        .with_context(|| format!("cannot benchmark consuming topic '{}'", args.topic))?;
    let mut ranges = Vec::new();
    let mut available = 0u64;
    for partition in &description.partitions {
        let topic_partition = TopicPartition::new(args.topic.as_str(), partition.partition);
        let offset = |spec| {
            let admin = &admin;
            let topic_partition = &topic_partition;
            async move {
                admin
                    .list_offsets(topic_partition, spec)
                    .await
                    .with_context(|| format!("cannot list offsets of {topic_partition}"))
                    .map(|found| found.map_or(0, |found| found.offset))
            }
        };
        let start = offset(OffsetSpec::Earliest).await?;
        let end = offset(OffsetSpec::Latest).await?;
        available += u64::try_from(end - start).unwrap_or(0);
        ranges.push(PartitionRange {
            topic_partition,
            end,
        });
    }
    let target = args.records.unwrap_or(available);
    ensure!(
        target > 0,
        "topic '{}' has no records to read; write some first, e.g. strata bench produce --topic {} --records 100000 --record-size 100",
        args.topic,
        args.topic
    );
    let goal = match args.records {
        Some(records) => Goal::Records(records),
        None => Goal::HighWatermark,
    };
    let consumers = usize::try_from(args.consumers)?.min(ranges.len()).max(1);
    if consumers < usize::try_from(args.consumers)? {
        output.note(&format!(
            "note: topic '{}' has {} partitions, so {consumers} consumers read it",
            args.topic,
            ranges.len()
        ));
    }
    let mut assignments: Vec<Vec<PartitionRange>> = vec![Vec::new(); consumers];
    for (index, range) in ranges.into_iter().enumerate() {
        assignments[index % consumers].push(range);
    }

    // The volume read is not known before reading, so the baseline moves its minimum; its
    // bytes per second are what the ratio needs, not a matching volume.
    let baseline = loopback::measure(baseline_bytes(0))
        .await
        .context("cannot measure the loopback baseline")?;
    output.note(&format!(
        "loopback baseline: {:.2} GB/s ({} MiB in {:.1} ms)",
        baseline.bytes_per_second() / 1e9,
        baseline.bytes >> 20,
        baseline.elapsed.as_secs_f64() * 1e3
    ));

    let config = ConsumerConfig::builder()
        .connect_to(&args.bootstrap)?
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .connect_timeout_ms(5_000)
        .max_partition_fetch_bytes(args.fetch_size)
        .build()?;
    let idle_timeout = duration::given(args.timeout, args.timeout_ms);
    let progress = Progress::start("consume", Some(target), output);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for assignment in assignments {
        tasks.push(tokio::spawn(read_partitions(
            config.clone(),
            assignment,
            goal.clone(),
            progress.counter(),
            idle_timeout,
        )));
    }
    let mut records = 0;
    let mut bytes = 0;
    let mut failure = None;
    for task in tasks {
        match task.await.context("a consumer task failed")? {
            Ok(tally) => {
                records += tally.records;
                bytes += tally.bytes;
            }
            Err(error) => {
                failure.get_or_insert(error);
            }
        }
    }
    let elapsed = started.elapsed();
    progress.finish().await;

    let summary = BenchSummary {
        command: "consume",
        topic: args.topic.clone(),
        records,
        bytes,
        elapsed,
        latency_label: "latency",
        latency: None,
        ack_latency: None,
        loopback_round_trip: None,
        loopback: Some(baseline),
        file_write: None,
        errors: 0,
        details: vec![
            ("consumers", json!(consumers)),
            ("partitions", json!(description.partitions.len())),
            ("target_records", json!(target)),
            ("fetch_size", json!(args.fetch_size)),
            ("client_threads", json!(args.runtime_threads())),
        ],
    };
    summary.print(output);
    if let Some(error) = failure {
        return Err(error.context(format!("read {records} of {target} records")));
    }
    if records < target {
        bail!("read {records} of {target} records");
    }
    Ok(())
}

/// One consumer: reads its partitions from the beginning until the goal is met.
async fn read_partitions(
    config: ConsumerConfig,
    assignment: Vec<PartitionRange>,
    goal: Goal,
    consumed: Arc<AtomicU64>,
    idle_timeout: Duration,
) -> Result<ReadTally> {
    let mut tally = ReadTally::default();
    let partitions: Vec<TopicPartition> = assignment
        .iter()
        .map(|range| range.topic_partition.clone())
        .collect();
    let mut consumer = Consumer::connect(config)
        .await
        .context("cannot connect a consumer")?;
    consumer.assign(partitions.clone())?;
    consumer
        .seek_to_beginning(&partitions)
        .await
        .context("cannot find the beginning of the partitions")?;
    // Partitions still short of their end offset; only used for the high-watermark goal.
    let mut unfinished: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for range in &assignment {
        if consumer.position(&range.topic_partition).await? < range.end {
            unfinished.insert(range.topic_partition.clone(), range.end);
        }
    }
    let mut last_record = Instant::now();
    // Bounded by the goal and, when records stop coming, by the idle timeout.
    loop {
        let done = match goal {
            Goal::HighWatermark => unfinished.is_empty(),
            Goal::Records(target) => consumed.load(Ordering::Relaxed) >= target,
        };
        if done {
            return Ok(tally);
        }
        if last_record.elapsed() >= idle_timeout {
            bail!(
                "no record arrived for {} ms (this consumer had read {} records)",
                idle_timeout.as_millis(),
                tally.records
            );
        }
        let records = consumer
            .poll(POLL_WAIT)
            .await
            .context("cannot read the topic")?;
        if records.is_empty() {
            continue;
        }
        last_record = Instant::now();
        let counted = match goal {
            Goal::HighWatermark => {
                let mut counted = 0;
                for record in &records {
                    let topic_partition = record.topic_partition();
                    let Some(&end) = unfinished.get(&topic_partition) else {
                        continue;
                    };
                    if record.offset >= end {
                        // Written after the run started.
                        continue;
                    }
                    tally.records += 1;
                    tally.bytes += record_bytes(record);
                    counted += 1;
                    if record.offset + 1 >= end {
                        unfinished.remove(&topic_partition);
                    }
                }
                consumed.fetch_add(counted, Ordering::Relaxed);
                counted
            }
            Goal::Records(target) => {
                // Claims up to this poll's records from what is left of the target, so the
                // consumers together never count more than the target.
                let wanted = records.len() as u64;
                let claimed = consumed
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| {
                        (total < target).then(|| total + wanted.min(target - total))
                    })
                    .map_or(0, |before| wanted.min(target - before));
                for record in records.iter().take(claimed as usize) {
                    tally.records += 1;
                    tally.bytes += record_bytes(record);
                }
                claimed
            }
        };
        tracing::trace!(counted, "consumer bench poll");
    }
}

fn record_bytes(record: &strata_client::ConsumerRecord) -> u64 {
    (record.key.as_ref().map_or(0, |key| key.len())
        + record.value.as_ref().map_or(0, |value| value.len())) as u64
}
