//! `strata bench group`: what consumer groups cost.
//!
//! - Rebalance time: with `--members` consumers in a group, one more joins and later leaves;
//!   each is timed from the change until the coordinator reports the group `Stable` again
//!   (every member at the new assignment, every partition owned). Repeated `--rounds` times;
//!   medians reported.
//! - Commit load: produce at `--produce-rate` for `--duration`, then again while committers
//!   send `--commit-rate` offset commits per second; the produce rate and ack latency of the
//!   two phases, measured in the same run, show what commits cost the data path.

use crate::tls::ConnectTo;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use strata_client::{
    Acks, Admin, AutoOffsetReset, Consumer, ConsumerConfig, OffsetAndMetadata, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};

use super::report::{LatencySummary, Output, latency_histogram, record_latency};
use super::{PayloadPool, TopicCreation, ensure_topic};
use crate::Bootstrap;
use crate::duration::{self, DurationParser, Unit};
use crate::topic::connect_admin;

#[derive(Debug, Args)]
pub struct GroupBenchArgs {
    /// Topic the group consumes; created when missing (see --partitions).
    #[arg(long, value_name = "T")]
    topic: String,
    /// Members in the group before one joins and leaves.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100))]
    members: u64,
    /// Join-and-leave rounds; the medians are reported.
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=50))]
    rounds: u64,
    /// Offset commits per second during the commit-load phase; 0 skips that phase.
    #[arg(long, default_value_t = 10_000, value_name = "R")]
    commit_rate: u64,
    /// Records of 1 KiB per second the producer sends in both phases.
    #[arg(long, default_value_t = 20_000, value_name = "R", value_parser = clap::value_parser!(u64).range(1..))]
    produce_rate: u64,
    /// Length of each produce phase of the commit-load measurement.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = PHASE_DURATION)]
    duration: Duration,
    /// --duration in seconds, its old spelling.
    #[arg(long, hide = true, value_name = "S", conflicts_with = "duration", value_parser = PHASE_DURATION.number_of(Unit::Seconds))]
    duration_s: Option<Duration>,
    #[command(flatten)]
    creation: TopicCreation,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

/// `--duration`: a second to ten minutes.
const PHASE_DURATION: DurationParser = DurationParser::human()
    .at_least(Duration::from_secs(1))
    .at_most(Duration::from_secs(600));

impl GroupBenchArgs {
    pub fn target(&self) -> super::BenchTarget<'_> {
        super::BenchTarget::new(&self.bootstrap, &self.topic, &self.creation)
    }
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// A member that polls until told to stop, then leaves the group.
struct Member {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

fn spawn_member(bootstrap: &Bootstrap, group: &str, topic: &str) -> Result<Member> {
    let config = ConsumerConfig::builder()
        .connect_to(bootstrap)?
        .group_id(group)
        .auto_offset_reset(AutoOffsetReset::Latest)
        .fetch_max_wait_ms(100)
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let topic = topic.to_string();
    let task = tokio::spawn(async move {
        let mut consumer = Consumer::connect(config).await?;
        consumer.subscribe([topic])?;
        let deadline = Instant::now() + Duration::from_secs(3_600);
        while !stopping.load(Ordering::Acquire) && Instant::now() < deadline {
            consumer.poll(Duration::from_millis(100)).await?;
        }
        consumer.close().await?;
        Ok(())
    });
    Ok(Member { stop, task })
}

impl Member {
    async fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        self.task.await?
    }
}

/// Waits until the group is Stable with `members` members owning all `partitions`.
async fn await_stable(admin: &Admin, group: &str, members: usize, partitions: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(description) = admin.describe_group(group).await {
            let owned: usize = description
                .members
                .iter()
                .map(|member| member.assignment.len())
                .sum();
            if description.state == "Stable"
                && description.members.len() == members
                && owned == partitions
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("group '{group}' did not settle with {members} members within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn measure_rebalances(
    args: &GroupBenchArgs,
    admin: &Admin,
    partitions: usize,
    output: Output,
) -> Result<(Duration, Duration)> {
    let group = format!("bench-rebalance-{}", std::process::id());
    let bootstrap = &args.bootstrap;
    let mut members = Vec::new();
    for _ in 0..args.members {
        members.push(spawn_member(bootstrap, &group, &args.topic)?);
    }
    await_stable(admin, &group, members.len(), partitions).await?;
    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let started = Instant::now();
        let joining = spawn_member(bootstrap, &group, &args.topic)?;
        await_stable(admin, &group, members.len() + 1, partitions).await?;
        joins.push(started.elapsed());
        let started = Instant::now();
        joining.stop().await?;
        await_stable(admin, &group, members.len(), partitions).await?;
        leaves.push(started.elapsed());
        output.note(&format!(
            "round {round}: join {} ms, leave {} ms",
            joins.last().unwrap().as_millis(),
            leaves.last().unwrap().as_millis()
        ));
    }
    for member in members {
        member.stop().await?;
    }
    let _ = admin.delete_group(&group).await;
    Ok((median(&mut joins), median(&mut leaves)))
}

/// What one produce phase achieved.
struct ProducePhase {
    records_per_second: f64,
    latency: Option<LatencySummary>,
}

/// Produces 1 KiB records at `rate` per second for `duration` (acks=1), measuring each
/// record's acknowledgement latency. A paced load, not a saturating one: the question is
/// whether commits slow a producer that the cluster can keep up with.
async fn produce_for(
    bootstrap: &Bootstrap,
    topic: &str,
    rate: u64,
    duration: Duration,
) -> Result<ProducePhase> {
    let producer = Producer::connect(
        ProducerConfig::builder()
            .connect_to(bootstrap)?
            .acks(Acks::Leader)
            .enable_idempotence(false)
            .linger_ms(2)
            .build()?,
    )
    .await?;
    let pool = PayloadPool::new(1024);
    let (sink, mut latencies) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let collector = tokio::spawn(async move {
        let mut histogram = latency_histogram();
        while let Some(latency) = latencies.recv().await {
            record_latency(&mut histogram, latency);
        }
        histogram
    });
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut next = tokio::time::Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration {
        tokio::time::sleep_until(next).await;
        // Catch up in bursts when the timer is late rather than losing rate.
        while next <= tokio::time::Instant::now() && started.elapsed() < duration {
            next += interval;
            let sent_at = Instant::now();
            let delivery = producer
                .send(ProducerRecord::new(topic, pool.value(sent)))
                .await?;
            let sink = sink.clone();
            tokio::spawn(async move {
                if delivery.await.is_ok() {
                    let _ = sink.send(sent_at.elapsed());
                }
            });
            sent += 1;
        }
    }
    producer.flush().await?;
    let records_per_second = sent as f64 / started.elapsed().as_secs_f64();
    producer.close().await?;
    drop(sink);
    let histogram = collector.await?;
    Ok(ProducePhase {
        records_per_second,
        latency: LatencySummary::of(&histogram),
    })
}

struct CommitLoad {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Result<hdrhistogram::Histogram<u64>>>>,
}

/// Committers sharing `rate` commits per second, each committing every partition of `topic`
/// one at a time as an empty group's standalone consumers do.
async fn start_commit_load(
    bootstrap: &Bootstrap,
    topic: &str,
    partitions: usize,
    rate: u64,
) -> Result<CommitLoad> {
    // Twenty consumers of twenty groups, each with ten commits in flight at a time, as the
    // members of busy groups would have.
    const COMMITTERS: u64 = 20;
    const IN_FLIGHT: u64 = 10;
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for committer in 0..COMMITTERS {
        let config = ConsumerConfig::builder()
            .connect_to(bootstrap)?
            .group_id(format!("bench-commits-{}-{committer}", std::process::id()))
            .enable_auto_commit(false)
            .build()?;
        let consumer = Arc::new(Consumer::connect(config).await?);
        for lane in 0..IN_FLIGHT {
            let (stop, commits, topic) = (stop.clone(), commits.clone(), topic.to_string());
            let consumer = consumer.clone();
            let interval =
                Duration::from_secs_f64((COMMITTERS * IN_FLIGHT) as f64 / rate.max(1) as f64);
            tasks.push(tokio::spawn(async move {
                let mut histogram = latency_histogram();
                let mut next = tokio::time::Instant::now();
                let mut round = lane as usize;
                let deadline = Instant::now() + Duration::from_secs(3_600);
                while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                    tokio::time::sleep_until(next).await;
                    next += interval;
                    let partition =
                        TopicPartition::new(topic.as_str(), (round % partitions) as i32);
                    round += IN_FLIGHT as usize;
                    let started = Instant::now();
                    // Offset 0 is always at or below the high watermark.
                    consumer
                        .commit_offsets(BTreeMap::from([(partition, OffsetAndMetadata::new(0))]))
                        .await?;
                    record_latency(&mut histogram, started.elapsed());
                    commits.fetch_add(1, Ordering::Relaxed);
                }
                Ok(histogram)
            }));
        }
    }
    Ok(CommitLoad {
        stop,
        commits,
        tasks,
    })
}

pub async fn run(args: GroupBenchArgs) -> Result<()> {
    let output = Output { json: args.json };
    let admin = connect_admin(&args.bootstrap).await?;
    let description = ensure_topic(&admin, &args.topic, &args.creation, output).await?;
    let partitions = description.partitions.len();
    output.note(&format!(
        "{} members on '{}' ({partitions} partitions); {} join/leave rounds",
        args.members, args.topic, args.rounds
    ));
    let (join, leave) = measure_rebalances(&args, &admin, partitions, output)
        .await
        .context("rebalance measurement failed")?;

    let mut commit_result = serde_json::Value::Null;
    if args.commit_rate > 0 {
        let duration = duration::given(args.duration, args.duration_s);
        let bootstrap = &args.bootstrap;
        let baseline = produce_for(bootstrap, &args.topic, args.produce_rate, duration).await?;
        let load = start_commit_load(bootstrap, &args.topic, partitions, args.commit_rate).await?;
        let started = Instant::now();
        let loaded = produce_for(bootstrap, &args.topic, args.produce_rate, duration).await?;
        let commits = load.commits.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        load.stop.store(true, Ordering::Release);
        let mut latencies = latency_histogram();
        for task in load.tasks {
            latencies.add(task.await??)?;
        }
        let commit_latency = LatencySummary::of(&latencies);
        let p99 = |phase: &ProducePhase| phase.latency.map_or(0.0, |latency| latency.p99_ms);
        output.note(&format!(
            "produce at {} records/s alone: {:.0} records/s, ack p99 {:.2} ms; with {commits:.0} commits/s: {:.0} records/s ({:.1}%), ack p99 {:.2} ms; commit latency p50 {:.2} ms p99 {:.2} ms",
            args.produce_rate,
            baseline.records_per_second,
            p99(&baseline),
            loaded.records_per_second,
            loaded.records_per_second / baseline.records_per_second * 100.0,
            p99(&loaded),
            commit_latency.map_or(0.0, |l| l.p50_ms),
            commit_latency.map_or(0.0, |l| l.p99_ms),
        ));
        commit_result = json!({
            "produce_rate": args.produce_rate,
            "produce_alone_records_per_s": baseline.records_per_second,
            "produce_alone_ack_p99_ms": p99(&baseline),
            "produce_with_commits_records_per_s": loaded.records_per_second,
            "produce_with_commits_ack_p99_ms": p99(&loaded),
            "commits_per_s": commits,
            "commit_latency_p50_ms": commit_latency.map(|l| l.p50_ms),
            "commit_latency_p99_ms": commit_latency.map(|l| l.p99_ms),
        });
    }
    if args.json {
        println!(
            "{}",
            json!({
                "members": args.members,
                "partitions": partitions,
                "rounds": args.rounds,
                "join_median_ms": join.as_secs_f64() * 1e3,
                "leave_median_ms": leave.as_secs_f64() * 1e3,
                "commit_load": commit_result,
            })
        );
    } else {
        println!(
            "rebalance with {} members: join median {} ms, leave median {} ms",
            args.members,
            join.as_millis(),
            leave.as_millis()
        );
    }
    Ok(())
}
