//! `strata bench produce`: Kafka's `producer-perf-test`. P producers send N records of B bytes,
//! each its own share, as fast as the producer accepts them or paced to `--rate` by a token
//! bucket. Each record's ack latency runs from just before `send` (so time blocked on a full
//! buffer counts, as it would for an application) to its `DeliveryFuture` resolving.
//!
//! Each record is sent with a delivery callback (Kafka's perf tool does the same), so sending
//! never waits for acknowledgements beyond the producer's own backpressure (`buffer_memory`), and
//! the harness adds no task, channel or future per record to what it measures.
//!
//! Latency is timed on a uniform sample of at least 500,000 records (every record of a run under
//! a million), as Kafka's perf tool samples its percentiles. Two clock reads and a lock per record
//! were a tenth of the sending process's CPU at 100-byte records, on the core the producer
//! needs.

use crate::tls::ConnectTo;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;
use strata_client::{Acks, DeliveryCallback, Producer, ProducerConfig, ProducerRecord};

use super::loopback::{self, baseline_bytes};
use super::progress::Progress;
use super::report::{BenchSummary, LatencySummary, Output, latency_histogram, record_latency};
use super::token_bucket::TokenBucket;
use super::{ClientThreads, PayloadPool, TopicCreation, ensure_topic, split_evenly};
use crate::Bootstrap;
use crate::duration::{self, DurationParser, Unit};
use crate::produce::parse_acks;
use crate::topic::connect_admin;

#[derive(Debug, Args)]
pub struct ProduceBenchArgs {
    /// Topic to write to; created when missing (see --partitions).
    #[arg(long, value_name = "T")]
    topic: String,
    /// Records to send in total.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    /// Bytes of each record's value.
    #[arg(long, value_name = "B", value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    record_size: u64,
    /// Producers sending in parallel, each with its own connections and share of the records.
    #[arg(long, default_value_t = 1, value_name = "P", value_parser = clap::value_parser!(u64).range(1..=256))]
    producers: u64,
    /// Replicas that must have a record before it is acknowledged. With `all` the producers are
    /// idempotent unless --no-idempotence; 1 and 0 are never idempotent.
    #[arg(long, default_value = "all", value_name = "all|1|0", value_parser = parse_acks)]
    acks: Acks,
    /// Turn idempotence off with --acks all, to measure what it costs.
    #[arg(long)]
    no_idempotence: bool,
    /// Producer batch size in bytes; default the producer's (1 MiB).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: Option<u64>,
    /// How long a batch waits for more records; default the producer's (5ms).
    #[arg(long, value_name = "DURATION", value_parser = DurationParser::human())]
    linger: Option<Duration>,
    /// --linger in milliseconds, its old spelling.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "linger", value_parser = DurationParser::human().number_of(Unit::Millis))]
    linger_ms: Option<Duration>,
    /// Batches per partition in flight at once; default the producer's (2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=5))]
    max_in_flight: Option<u64>,
    /// Total send rate in records per second across all producers; default as fast as possible.
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Where the raw file write baseline writes (and then deletes) a file as large as the run's
    /// payload (64 MiB to 1 GiB); default the system temp directory. Put it on the broker's disk:
    /// the ratio means something only when the broker runs on this machine.
    #[arg(long, value_name = "DIR")]
    baseline_dir: Option<std::path::PathBuf>,
    /// Give records keys, cycling through K distinct ones; default no keys.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    keys: Option<u64>,
    #[command(flatten)]
    creation: TopicCreation,
    #[command(flatten)]
    client_threads: ClientThreads,
    /// Print one JSON object with the result instead of text; progress goes to stderr.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

impl ProduceBenchArgs {
    pub fn target(&self) -> super::BenchTarget<'_> {
        super::BenchTarget::new(&self.bootstrap, &self.topic, &self.creation)
    }
}

impl ProduceBenchArgs {
    pub fn runtime_threads(&self) -> usize {
        self.client_threads.one_per(self.producers)
    }
}

/// Runs time the ack latency of at least this many records (`latency_sampling`).
const LATENCY_SAMPLES: u64 = 500_000;

/// Every how many records one is timed, so that a run times at least `LATENCY_SAMPLES`.
fn latency_sampling(records: u64) -> u64 {
    (records / LATENCY_SAMPLES).max(1)
}

/// One producer's part of the run.
struct ProducerJob {
    topic: String,
    first_index: u64,
    count: u64,
    /// Every this many records, one has its ack latency timed.
    latency_sampling: u64,
    rate: Option<u64>,
    keys: Option<u64>,
    pool: PayloadPool,
}

/// What one producer's collector saw.
pub(super) struct AckTally {
    pub histogram: Histogram<u64>,
    pub failed: u64,
    pub first_error: Option<strata_client::Error>,
}

impl AckTally {
    fn empty() -> AckTally {
        AckTally {
            histogram: latency_histogram(),
            failed: 0,
            first_error: None,
        }
    }
}

/// What one producer's sending task ended with.
struct ProducerOutcome {
    tally: AckTally,
    /// Records `send` accepted; each was acknowledged or counted in `tally.failed`.
    sent: u64,
    /// `send` itself refused a record; the producer stopped sending then.
    send_error: Option<strata_client::Error>,
}

pub async fn run(args: ProduceBenchArgs) -> Result<()> {
    let output = Output { json: args.json };
    if let Some(rate) = args.rate {
        ensure!(
            rate >= args.producers,
            "--rate {rate} is below one record per second per producer (--producers {})",
            args.producers
        );
    }
    let idempotence = args.acks == Acks::All && !args.no_idempotence;
    let mut builder = ProducerConfig::builder()
        .connect_to(&args.bootstrap)?
        .acks(args.acks)
        .enable_idempotence(idempotence)
        .connect_timeout_ms(5_000);
    if let Some(batch_size) = args.batch_size {
        let batch_size = usize::try_from(batch_size).context("--batch-size is too large")?;
        builder = builder.batch_size(batch_size);
    }
    if let Some(linger) = duration::given(args.linger, args.linger_ms) {
        builder = builder.linger_ms(duration::millis(linger));
    }
    if let Some(max_in_flight) = args.max_in_flight {
        builder = builder.max_in_flight_per_partition(usize::try_from(max_in_flight)?);
    }
    let config = builder.build().context("invalid producer settings")?;

    let admin = connect_admin(&args.bootstrap).await?;
    let description = ensure_topic(&admin, &args.topic, &args.creation, output).await?;

    let payload_bytes = args.records.saturating_mul(args.record_size);
    let baseline = loopback::measure(baseline_bytes(payload_bytes))
        .await
        .context("cannot measure the loopback baseline")?;
    output.note(&format!(
        "loopback baseline: {:.2} GB/s ({} MiB in {:.1} ms)",
        baseline.bytes_per_second() / 1e9,
        baseline.bytes >> 20,
        baseline.elapsed.as_secs_f64() * 1e3
    ));
    let baseline_directory = args.baseline_dir.clone().unwrap_or_else(std::env::temp_dir);
    let file_write =
        loopback::measure_file_write(baseline_directory, baseline_bytes(payload_bytes))
            .await
            .context("cannot measure the file write baseline")?;
    output.note(&format!(
        "file write baseline: {:.2} GB/s ({} MiB in {:.1} ms)",
        file_write.bytes_per_second() / 1e9,
        file_write.bytes >> 20,
        file_write.elapsed.as_secs_f64() * 1e3
    ));

    let mut producers = Vec::new();
    for _ in 0..args.producers {
        producers.push(
            Producer::connect(config.clone())
                .await
                .with_context(|| format!("cannot connect to {}", args.bootstrap.bootstrap))?,
        );
    }

    let pool = PayloadPool::new(usize::try_from(args.record_size)?);
    let shares = split_evenly(args.records, args.producers);
    let rates: Vec<Option<u64>> = match args.rate {
        Some(rate) => split_evenly(rate, args.producers)
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None; shares.len()],
    };
    let latency_sampling = latency_sampling(args.records);
    let progress = Progress::start("produce", Some(args.records), output);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut first_index = 0;
    for ((producer, count), rate) in producers.iter().zip(shares).zip(rates) {
        let job = ProducerJob {
            topic: args.topic.clone(),
            first_index,
            count,
            latency_sampling,
            rate,
            keys: args.keys,
            pool: pool.clone(),
        };
        first_index += count;
        tasks.push(tokio::spawn(run_producer(
            producer.clone(),
            job,
            progress.counter(),
        )));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.context("a producer task failed")?);
    }
    let elapsed = started.elapsed();
    progress.finish().await;
    for producer in producers {
        producer.close().await.context("cannot close a producer")?;
    }

    let mut histogram = latency_histogram();
    let mut failed = 0;
    let mut acknowledged = 0;
    let mut first_error = None;
    let mut send_error = None;
    for outcome in outcomes {
        acknowledged += outcome.sent - outcome.tally.failed;
        histogram
            .add(&outcome.tally.histogram)
            .context("latency histograms have the same bounds")?;
        failed += outcome.tally.failed;
        if first_error.is_none() {
            first_error = outcome.tally.first_error;
        }
        if send_error.is_none() {
            send_error = outcome.send_error;
        }
    }
    let summary = BenchSummary {
        command: "produce",
        topic: args.topic.clone(),
        records: acknowledged,
        bytes: acknowledged * args.record_size,
        elapsed,
        latency_label: "ack latency",
        latency: LatencySummary::of(&histogram),
        ack_latency: None,
        loopback_round_trip: None,
        loopback: Some(baseline),
        file_write: Some(file_write),
        errors: failed,
        details: vec![
            ("record_size", json!(args.record_size)),
            ("producers", json!(args.producers)),
            ("acks", json!(args.acks.to_string())),
            ("idempotence", json!(idempotence)),
            ("batch_size", json!(config.batch_size())),
            ("linger_ms", json!(config.linger().as_millis() as u64)),
            ("max_in_flight", json!(config.max_in_flight_per_partition())),
            ("target_rate", json!(args.rate)),
            ("latency_sampling", json!(latency_sampling)),
            ("keys", json!(args.keys)),
            ("partitions", json!(description.partitions.len())),
            ("client_threads", json!(args.runtime_threads())),
        ],
    };
    summary.print(output);
    if let Some(error) = send_error {
        return Err(anyhow::Error::new(error).context("the producer refused a record"));
    }
    if let Some(error) = first_error {
        bail!(
            "{failed} of {} records were not acknowledged; first error: {error}",
            args.records
        );
    }
    Ok(())
}

/// Sends one producer's share and returns what its callbacks saw.
async fn run_producer(
    producer: Producer,
    job: ProducerJob,
    acknowledged: Arc<AtomicU64>,
) -> ProducerOutcome {
    let recorder = AckRecorder::new(acknowledged);
    let mut bucket = job.rate.map(|rate| TokenBucket::new(rate, Instant::now()));
    let mut send_error = None;
    let mut sent = 0;
    for index in job.first_index..job.first_index + job.count {
        if let Some(bucket) = bucket.as_mut() {
            bucket.take().await;
        }
        let mut record = ProducerRecord::new(job.topic.as_str(), job.pool.value(index));
        if let Some(keys) = job.keys {
            record = record.key(format!("key-{}", index % keys));
        }
        let sent_at = (index % job.latency_sampling == 0).then(Instant::now);
        if let Err(error) = producer
            .send_with_callback(record, recorder.callback(sent_at))
            .await
        {
            send_error = Some(error);
            break;
        }
        sent += 1;
    }
    // The last batch goes now rather than after linger. Flush returns once every record sent
    // before it is settled and its callback has run (or after the delivery timeout).
    if let Err(error) = producer.flush().await {
        send_error.get_or_insert(error);
    }
    ProducerOutcome {
        tally: recorder.take(),
        sent,
        send_error,
    }
}

/// Records each acknowledged record's latency from delivery callbacks.
///
/// Callbacks borrow the recorder for the rest of the process instead of sharing it through
/// `Arc`s: a callback is created on the sending task and dropped on the producer's IO task, so
/// every reference count would move a cache line between the two threads, twice per record.
/// One recorder per producer per run is leaked; the process ends after the run.
#[derive(Clone, Copy)]
pub(super) struct AckRecorder {
    shared: &'static AckShared,
}

struct AckShared {
    tally: Mutex<AckTally>,
    acknowledged: Arc<AtomicU64>,
}

impl AckRecorder {
    pub(super) fn new(acknowledged: Arc<AtomicU64>) -> AckRecorder {
        AckRecorder {
            shared: Box::leak(Box::new(AckShared {
                tally: Mutex::new(AckTally::empty()),
                acknowledged,
            })),
        }
    }

    /// The callback for a record: its latency is recorded when `sent_at` says when it was sent.
    /// The others only count, and touch no clock or lock unless they fail.
    pub(super) fn callback(&self, sent_at: Option<Instant>) -> DeliveryCallback {
        let recorder = *self;
        Box::new(move |outcome| {
            let latency = sent_at.map(|sent_at| sent_at.elapsed());
            match outcome {
                Ok(_) => {
                    if let Some(latency) = latency {
                        let mut tally = recorder.tally();
                        record_latency(&mut tally.histogram, latency);
                    }
                    recorder.shared.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    let mut tally = recorder.tally();
                    tally.failed += 1;
                    tally.first_error.get_or_insert(error);
                }
            }
        })
    }

    fn tally(&self) -> std::sync::MutexGuard<'static, AckTally> {
        self.shared
            .tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What the callbacks recorded so far; call after `flush`.
    pub(super) fn take(&self) -> AckTally {
        std::mem::replace(&mut *self.tally(), AckTally::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_under_a_million_records_time_every_record_and_longer_ones_at_least_half_a_million() {
        assert_eq!(latency_sampling(0), 1);
        assert_eq!(latency_sampling(2_000), 1);
        assert_eq!(latency_sampling(999_999), 1);
        assert_eq!(latency_sampling(1_000_000), 2);
        assert_eq!(latency_sampling(3_000_000), 6);
        for records in [1_000_000u64, 3_000_000, 3_999_999, 10_000_001] {
            let timed = records.div_ceil(latency_sampling(records));
            assert!(timed >= LATENCY_SAMPLES, "{records}: {timed} timed");
        }
    }
}
