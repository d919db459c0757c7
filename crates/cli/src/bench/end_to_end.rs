//! `strata bench e2e`: Kafka's `EndToEndLatency`, at a fixed rate for a fixed time. A producer
//! sends `--rate` records a second for `--duration` while a consumer in the same process tails
//! the topic; the latency of a record runs from just before `send` to the consumer's `poll`
//! returning it.
//!
//! Each value starts with 16 bytes: this run's id (so records of an earlier run or of another
//! writer are ignored) and the send time in nanoseconds since an `Instant` both sides share.
//! Sharing one monotonic clock in one process needs no clock synchronisation between hosts.
//!
//! Before the run, the same number of loopback TCP round trips of one record's size at the same
//! rate (for at most 2 s) gives the baseline the latencies are quoted against.
//!
//! The run is bounded: sending stops after the duration, and the consumer stops once it has every
//! acknowledged record or `--drain-timeout` after sending stopped, whichever comes first.

use crate::tls::ConnectTo;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{BufMut, BytesMut};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;
use strata_client::{
    AutoOffsetReset, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use tokio::sync::watch;

use super::loopback;
use super::produce::AckRecorder;
use super::progress::Progress;
use super::report::{BenchSummary, LatencySummary, Output, latency_histogram, record_latency};
use super::token_bucket::TokenBucket;
use super::{ClientThreads, PayloadPool, TopicCreation, ensure_topic};
use crate::Bootstrap;
use crate::duration::{self, DurationParser, Unit};
use crate::topic::connect_admin;

/// Run id and send time.
const HEADER_BYTES: usize = 16;
/// The same-run loopback round-trip baseline runs for the benchmark's duration, at most this.
const ROUND_TRIP_BASELINE: Duration = Duration::from_secs(2);
/// `--duration`: a second to a day.
const DURATION: DurationParser = DurationParser::human()
    .at_least(Duration::from_secs(1))
    .at_most(Duration::from_secs(86_400));

#[derive(Debug, Args)]
pub struct EndToEndBenchArgs {
    /// Topic to write and tail; created when missing (see --partitions).
    #[arg(long, value_name = "T")]
    topic: String,
    /// Records per second to send.
    #[arg(long, default_value_t = 5_000, value_name = "R", value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// How long to send for.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = DURATION)]
    duration: Duration,
    /// --duration in seconds, its old spelling.
    #[arg(long, hide = true, value_name = "S", conflicts_with = "duration", value_parser = DURATION.number_of(Unit::Seconds))]
    duration_s: Option<Duration>,
    /// Bytes of each record's value; the first 16 carry the run id and the send time.
    #[arg(long, default_value_t = 100, value_name = "B", value_parser = clap::value_parser!(u64).range(16..=16_777_216))]
    record_size: u64,
    /// How long a batch waits for more records; the default sends at once, for the lowest
    /// latency.
    #[arg(long, default_value = "0ms", value_name = "DURATION", value_parser = DurationParser::human())]
    linger: Duration,
    /// --linger in milliseconds, its old spelling.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "linger", value_parser = DurationParser::human().number_of(Unit::Millis))]
    linger_ms: Option<Duration>,
    #[command(flatten)]
    pub client_threads: ClientThreads,
    /// How long the consumer keeps waiting for the last records after sending stopped.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = DurationParser::human())]
    drain_timeout: Duration,
    /// --drain-timeout in milliseconds, its old spelling.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "drain_timeout", value_parser = DurationParser::human().number_of(Unit::Millis))]
    drain_timeout_ms: Option<Duration>,
    #[command(flatten)]
    creation: TopicCreation,
    /// Print one JSON object with the result instead of text; progress goes to stderr.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

impl EndToEndBenchArgs {
    pub fn target(&self) -> super::BenchTarget<'_> {
        super::BenchTarget::new(&self.bootstrap, &self.topic, &self.creation)
    }
}

/// What the tailing consumer measured.
struct TailTally {
    histogram: Histogram<u64>,
    bytes: u64,
}

/// How the producing side ended: records acknowledged, and when sending stopped.
#[derive(Clone, Copy, Debug)]
struct Produced {
    acknowledged: u64,
    finished_at: Instant,
}

pub async fn run(args: EndToEndBenchArgs) -> Result<()> {
    let output = Output { json: args.json };
    let record_size = usize::try_from(args.record_size)?;
    let duration = duration::given(args.duration, args.duration_s);
    let linger = duration::given(args.linger, args.linger_ms);
    let drain_timeout = duration::given(args.drain_timeout, args.drain_timeout_ms);
    let producer_config = ProducerConfig::builder()
        .connect_to(&args.bootstrap)?
        .linger_ms(duration::millis(linger))
        .connect_timeout_ms(5_000)
        .build()
        .context("invalid producer settings")?;
    let consumer_config = ConsumerConfig::builder()
        .connect_to(&args.bootstrap)?
        .auto_offset_reset(AutoOffsetReset::Latest)
        .connect_timeout_ms(5_000)
        .build()?;

    // Measured first, while nothing else of this process runs.
    let round_trip_duration = duration.min(ROUND_TRIP_BASELINE);
    let round_trips =
        loopback::measure_round_trips(args.rate, round_trip_duration, record_size).await?;

    let admin = connect_admin(&args.bootstrap).await?;
    let description = ensure_topic(&admin, &args.topic, &args.creation, output).await?;
    let partitions: Vec<TopicPartition> = description
        .partitions
        .iter()
        .map(|partition| TopicPartition::new(args.topic.as_str(), partition.partition))
        .collect();

    // The consumer's positions are fixed at the end of the log before anything is sent, so it
    // sees every record of this run and none from before.
    let mut consumer = Consumer::connect(consumer_config)
        .await
        .with_context(|| format!("cannot connect to {}", args.bootstrap.bootstrap))?;
    consumer.assign(partitions.clone())?;
    consumer
        .seek_to_end(&partitions)
        .await
        .context("cannot find the end of the topic")?;
    for topic_partition in &partitions {
        consumer.position(topic_partition).await?;
    }
    let producer = Producer::connect(producer_config)
        .await
        .with_context(|| format!("cannot connect to {}", args.bootstrap.bootstrap))?;

    let run_id = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    // Records the run sends: `rate` a second for `duration`.
    let target = (args.rate as f64 * duration.as_secs_f64()) as u64;
    let progress = Progress::start("e2e", Some(target), output);
    let (produced_sender, produced) = watch::channel(None);
    let base = Instant::now();
    let tail = tokio::spawn(tail(
        consumer,
        run_id,
        base,
        progress.counter(),
        produced,
        drain_timeout,
    ));

    // Producing: paced by the token bucket until the duration is up.
    let recorder = AckRecorder::new(Arc::new(AtomicU64::new(0)));
    let pool = PayloadPool::new(record_size - HEADER_BYTES);
    let mut bucket = TokenBucket::new(args.rate, base);
    let end = base + duration;
    let mut send_error = None;
    let mut index = 0u64;
    // Bounded by the duration: every pass takes a token, which the bucket hands out at `rate`.
    while Instant::now() < end {
        bucket.take().await;
        if Instant::now() >= end {
            break;
        }
        let mut value = BytesMut::with_capacity(record_size);
        value.put_u64(run_id);
        let sent_at = Instant::now();
        value.put_u64(u64::try_from(sent_at.duration_since(base).as_nanos()).unwrap_or(u64::MAX));
        value.extend_from_slice(&pool.value(index));
        index += 1;
        let record = ProducerRecord::new(args.topic.as_str(), value.freeze());
        if let Err(error) = producer
            .send_with_callback(record, recorder.callback(Some(sent_at)))
            .await
        {
            send_error = Some(error);
            break;
        }
    }
    let sending_stopped = Instant::now();
    // Every callback has run once flush returns.
    if let Err(error) = producer.flush().await {
        send_error.get_or_insert(error);
    }
    let acks = recorder.take();
    let acknowledged = acks.histogram.len();
    // The tail learns how many records to expect and from when its drain timeout runs.
    let _ = produced_sender.send(Some(Produced {
        acknowledged,
        finished_at: Instant::now(),
    }));
    producer
        .close()
        .await
        .context("cannot close the producer")?;
    let tally = tail.await.context("the tailing consumer failed")??;
    progress.finish().await;

    let received = tally.histogram.len();
    let elapsed = sending_stopped.duration_since(base);
    let missing = acknowledged.saturating_sub(received);
    let summary = BenchSummary {
        command: "e2e",
        topic: args.topic.clone(),
        records: received,
        bytes: tally.bytes,
        elapsed,
        latency_label: "e2e latency",
        latency: LatencySummary::of(&tally.histogram),
        ack_latency: LatencySummary::of(&acks.histogram),
        loopback_round_trip: LatencySummary::of(&round_trips),
        loopback: None,
        file_write: None,
        errors: acks.failed + missing,
        details: vec![
            ("target_rate", json!(args.rate)),
            ("duration_s", json!(duration.as_secs_f64())),
            ("record_size", json!(args.record_size)),
            ("linger_ms", json!(duration::millis(linger))),
            ("client_threads", json!(args.client_threads.one_per(1))),
            ("records_sent", json!(index)),
            ("records_acknowledged", json!(acknowledged)),
            ("partitions", json!(partitions.len())),
        ],
    };
    summary.print(output);
    if let Some(error) = send_error {
        return Err(anyhow::Error::new(error).context("the producer refused a record"));
    }
    if let Some(error) = acks.first_error {
        bail!(
            "{} of {index} records were not acknowledged; first error: {error}",
            acks.failed
        );
    }
    if missing > 0 {
        bail!(
            "{missing} of {acknowledged} acknowledged records did not reach the consumer within {} ms after sending stopped",
            drain_timeout.as_millis()
        );
    }
    Ok(())
}

/// Tails the topic, recording the latency of every record of this run, until every
/// acknowledged record arrived or the drain timeout after sending passed.
async fn tail(
    mut consumer: Consumer,
    run_id: u64,
    base: Instant,
    received: Arc<AtomicU64>,
    produced: watch::Receiver<Option<Produced>>,
    drain_timeout: Duration,
) -> Result<TailTally> {
    let mut tally = TailTally {
        histogram: latency_histogram(),
        bytes: 0,
    };
    // Bounded: sending stops after the duration, and from then on by the drain timeout (or at
    // once if the producing side went away without saying how it ended).
    loop {
        let finished = *produced.borrow();
        match finished {
            Some(done)
                if tally.histogram.len() >= done.acknowledged
                    || done.finished_at.elapsed() >= drain_timeout =>
            {
                return Ok(tally);
            }
            None if produced.has_changed().is_err() => return Ok(tally),
            Some(_) | None => {}
        }
        // Short polls, so the loop notices the end promptly; the broker still answers as soon
        // as a record arrives, so this does not add latency.
        let records = consumer
            .poll(Duration::from_millis(100))
            .await
            .context("cannot tail the topic")?;
        let now = base.elapsed();
        for record in records {
            let Some(value) = record.value.as_deref() else {
                continue;
            };
            if value.len() < HEADER_BYTES {
                continue;
            }
            let id = u64::from_be_bytes(value[..8].try_into().expect("eight bytes"));
            if id != run_id {
                continue;
            }
            let sent_nanos = u64::from_be_bytes(value[8..16].try_into().expect("eight bytes"));
            let latency = now.saturating_sub(Duration::from_nanos(sent_nanos));
            record_latency(&mut tally.histogram, latency);
            tally.bytes += value.len() as u64;
            received.fetch_add(1, Ordering::Relaxed);
        }
    }
}
