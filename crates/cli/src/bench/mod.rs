//! `strata bench`: throughput and latency of a running cluster, in the manner of Kafka's
//! `producer-perf-test` / `consumer-perf-test` / `EndToEndLatency` and iggy-bench.
//!
//! - `produce`: N records of B bytes from P producers, as fast as possible or paced by a token
//!   bucket; throughput and per-record ack latency (from `send` to its delivery resolving).
//! - `consume`: N records (default: everything below the high watermark at start) read from the
//!   beginning by C consumers with the partitions split between them; throughput.
//! - `e2e`: records at a fixed rate for a fixed time while a consumer tails the topic; each record
//!   carries its send time, so the consumer measures produce-to-consume latency.
//! - `group`: consumer-group rebalance time and the cost of offset commits to produce.
//! - `share`: share-group (work queue) throughput with per-record acks, next to a consumer
//!   group reading the same records.
//!
//! `produce` and `consume` first measure raw loopback TCP throughput in-process and quote their
//! MB/s as a ratio of it, so a result means something on any machine. Every run is bounded by a
//! record count or a duration and by idle timeouts, and stops by itself.

mod consume;
mod end_to_end;
mod group;
mod loopback;
mod precise_sleep;
mod produce;
mod progress;
mod report;
mod share;
mod token_bucket;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use strata_client::{Admin, ErrorCode, NewTopic, TopicDescription};

use crate::Bootstrap;
use crate::topic::connect_admin;
use report::Output;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce records as fast as possible (or at --rate); report throughput and ack latency.
    #[command(
        after_help = "Example:\n  strata bench produce --topic bench --records 1000000 --record-size 100\n  strata bench produce --topic bench --records 200000 --record-size 1024 --producers 4 --acks 1 --rate 50000 --json"
    )]
    Produce(produce::ProduceBenchArgs),
    /// Read a topic from the beginning as fast as possible; report throughput.
    #[command(
        after_help = "Example:\n  strata bench consume --topic bench\n  strata bench consume --topic bench --records 1000000 --consumers 3 --json"
    )]
    Consume(consume::ConsumeBenchArgs),
    /// Produce at a fixed rate while a consumer tails; report produce-to-consume latency.
    #[command(
        after_help = "Example:\n  strata bench e2e --topic latency\n  strata bench e2e --topic latency --rate 20000 --duration 30s --record-size 512 --json"
    )]
    E2e(end_to_end::EndToEndBenchArgs),
    /// Time group rebalances as a member joins and leaves, and what offset commits cost produce.
    #[command(
        after_help = "Example:\n  strata bench group --topic groups --partitions 30 --members 10\n  strata bench group --topic groups --commit-rate 10000 --duration 10s --json"
    )]
    Group(group::GroupBenchArgs),
    /// Work-queue throughput: share-group workers acknowledging every record, against a
    /// consumer group reading the same records.
    #[command(
        after_help = "Example:\n  strata bench share --topic queue --partitions 4 --records 200000 --consumers 4"
    )]
    Share(share::ShareBenchArgs),
}

impl BenchCommand {
    /// Runtime threads the command asks for; `None` leaves tokio's default (one per core).
    pub fn runtime_threads(&self) -> Option<usize> {
        match self {
            BenchCommand::E2e(args) => Some(args.client_threads.one_per(1)),
            BenchCommand::Consume(args) => Some(args.runtime_threads()),
            BenchCommand::Produce(args) => Some(args.runtime_threads()),
            BenchCommand::Group(_) | BenchCommand::Share(_) => None,
        }
    }
}

/// `--client-threads`: the runtime threads of a benchmark's client process.
#[derive(Clone, Copy, Debug, Args)]
pub struct ClientThreads {
    /// Runtime threads of this client process; default one per producer or consumer (for
    /// `e2e`, one for both). One client on one thread does its network work, encoding and
    /// decoding without wake-ups between threads, as Kafka's consumer does on the thread that
    /// polls; on a 2-vCPU VM that gave 1.2-1.35x the throughput of a multi-threaded runtime,
    /// and e2e used a third less client CPU per record (benches/README.md, "How to run").
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    client_threads: Option<u16>,
}

impl ClientThreads {
    /// The threads asked for, else one per client.
    pub fn one_per(self, clients: u64) -> usize {
        self.client_threads
            .map_or(usize::try_from(clients).unwrap_or(usize::MAX), usize::from)
    }
}

pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Produce(args) => {
            let made = TopicsMade::before(args.target()).await;
            made.after(produce::run(args).await).await
        }
        // It reads what a produce run left; it makes nothing.
        BenchCommand::Consume(args) => consume::run(args).await,
        BenchCommand::E2e(args) => {
            let made = TopicsMade::before(args.target()).await;
            made.after(end_to_end::run(args).await).await
        }
        BenchCommand::Group(args) => {
            let made = TopicsMade::before(args.target()).await;
            made.after(group::run(args).await).await
        }
        BenchCommand::Share(args) => {
            let made = TopicsMade::before(args.target()).await;
            made.after(share::run(args).await).await
        }
    }
}

/// What a benchmark works on: its cluster, its topic, and how to create it.
pub struct BenchTarget<'a> {
    bootstrap: &'a Bootstrap,
    topic: &'a str,
    creation: &'a TopicCreation,
}

impl<'a> BenchTarget<'a> {
    pub fn new(
        bootstrap: &'a Bootstrap,
        topic: &'a str,
        creation: &'a TopicCreation,
    ) -> BenchTarget<'a> {
        BenchTarget {
            bootstrap,
            topic,
            creation,
        }
    }
}

/// The topics a benchmark run makes (its topic, and a share run's dead-letter topic), deleted
/// once it ends unless `--keep`: a topic that existed before the run is never touched.
struct TopicsMade {
    admin: Option<Admin>,
    topics: Vec<String>,
}

impl TopicsMade {
    async fn before(target: BenchTarget<'_>) -> TopicsMade {
        let nothing = TopicsMade {
            admin: None,
            topics: Vec::new(),
        };
        if target.creation.keep {
            return nothing;
        }
        // A cluster that cannot be reached is the benchmark's to report, after it has checked
        // its own arguments; with nothing listed, nothing is deleted.
        let Ok(admin) = connect_admin(target.bootstrap).await else {
            return nothing;
        };
        let Ok(existing) = admin.list_topics().await else {
            return nothing;
        };
        let topics = [target.topic.to_string(), format!("{}.dlq", target.topic)]
            .into_iter()
            .filter(|topic| !existing.contains(topic))
            .collect();
        TopicsMade {
            admin: Some(admin),
            topics,
        }
    }

    /// Deletes what the run made, whether it succeeded or not; returns the run's result.
    async fn after(self, result: Result<()>) -> Result<()> {
        let Some(admin) = self.admin else {
            return result;
        };
        let existing = admin.list_topics().await.unwrap_or_default();
        for topic in self.topics.iter().filter(|topic| existing.contains(topic)) {
            match admin.delete_topic(topic).await {
                Ok(()) => eprintln!(
                    "deleted topic '{topic}', which the benchmark created (--keep keeps it)"
                ),
                Err(error) => eprintln!("warning: could not delete topic '{topic}': {error}"),
            }
        }
        result
    }
}

/// How to create the benchmark topic when it does not exist yet.
#[derive(Debug, Clone, Args)]
pub struct TopicCreation {
    /// Partitions of the topic if the benchmark creates it. Default 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Replication factor of the topic if the benchmark creates it. Default 1.
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(i32).range(1..))]
    replication_factor: Option<i32>,
    /// Keep the topics the benchmark creates (e.g. to replay them with `bench consume`); by
    /// default they are deleted when it ends.
    #[arg(long)]
    keep: bool,
}

/// Describes `topic`, creating it first when it does not exist.
async fn ensure_topic(
    admin: &Admin,
    topic: &str,
    creation: &TopicCreation,
    output: Output,
) -> Result<TopicDescription> {
    match admin.describe_topic(topic).await {
        Ok(description) => {
            if let Some(partitions) = creation.partitions
                && usize::try_from(partitions).ok() != Some(description.partitions.len())
            {
                output.note(&format!(
                    "note: topic '{topic}' already exists with {} partitions; --partitions applies only to a topic the benchmark creates",
                    description.partitions.len()
                ));
            }
            Ok(description)
        }
        Err(error) if error.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
            let new_topic = NewTopic::new(
                topic,
                creation.partitions.unwrap_or(1),
                creation.replication_factor.unwrap_or(1),
            );
            match admin.create_topic(new_topic).await {
                Ok(()) => {}
                // Another benchmark created it meanwhile: just as good.
                Err(error) if error.code() == Some(ErrorCode::TopicAlreadyExists) => {}
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot create topic '{topic}'"));
                }
            }
            admin
                .describe_topic(topic)
                .await
                .with_context(|| format!("cannot describe topic '{topic}' after creating it"))
        }
        Err(error) => Err(error).with_context(|| format!("cannot describe topic '{topic}'")),
    }
}

/// Bytes beyond one record's size in the payload pool: enough distinct starting points that
/// consecutive records differ.
const PAYLOAD_POOL_SLACK: usize = 64 << 10;

/// Record values for benchmarks: slices of one buffer of pseudo-random bytes. Each record's
/// bytes differ from its neighbours' (so nothing downstream can flatter the result by spotting
/// repetition), yet a value costs a reference count rather than an allocation and a fill.
#[derive(Clone, Debug)]
pub struct PayloadPool {
    bytes: Bytes,
    record_size: usize,
}

impl PayloadPool {
    pub fn new(record_size: usize) -> PayloadPool {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buffer = Vec::with_capacity(record_size + PAYLOAD_POOL_SLACK);
        // xorshift64*: cheap and plenty random for filler bytes.
        while buffer.len() < record_size + PAYLOAD_POOL_SLACK {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            buffer.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        buffer.truncate(record_size + PAYLOAD_POOL_SLACK);
        PayloadPool {
            bytes: Bytes::from(buffer),
            record_size,
        }
    }

    /// The value of record number `index`.
    pub fn value(&self, index: u64) -> Bytes {
        let starts = (self.bytes.len() - self.record_size + 1) as u64;
        // A prime stride spreads consecutive records over the pool.
        let start = (index.wrapping_mul(7_919) % starts) as usize;
        self.bytes.slice(start..start + self.record_size)
    }
}

/// Splits `total` into `parts` shares that differ by at most one, larger shares first.
fn split_evenly(total: u64, parts: u64) -> Vec<u64> {
    assert!(parts > 0, "at least one part");
    (0..parts)
        .map(|part| total / parts + u64::from(part < total % parts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_record_size_and_differ() {
        let pool = PayloadPool::new(100);
        let first = pool.value(0);
        let second = pool.value(1);
        assert_eq!(first.len(), 100);
        assert_eq!(second.len(), 100);
        assert_ne!(first, second);
        assert_eq!(pool.value(u64::MAX).len(), 100);
        assert_eq!(PayloadPool::new(0).value(5).len(), 0);
    }

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        assert_eq!(split_evenly(10, 3), vec![4, 3, 3]);
        assert_eq!(split_evenly(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split_evenly(7, 1), vec![7]);
        let shares = split_evenly(1_000_003, 7);
        assert_eq!(shares.iter().sum::<u64>(), 1_000_003);
    }
}
