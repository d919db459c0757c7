//! `strata consume`: print a topic's records.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use strata_client::{
    Admin, AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, OffsetSpec, ShareConsumer,
    ShareConsumerConfig, ShareRecord, TopicDescription, TopicPartition,
};

use crate::Bootstrap;
use crate::record_format::{BinaryEncoding, RecordFormat, RecordFormatParser, write_record};
use crate::topic::connect_admin;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("start").multiple(false).args(["offset", "from_beginning", "from_timestamp"]))]
pub struct ConsumeArgs {
    topic: String,
    /// Join this consumer group: its coordinator assigns partitions, and the offsets of printed
    /// records are committed, so the next run continues where this one stopped. With a group,
    /// --from-beginning applies only where the group has no committed offset.
    #[arg(long, value_name = "G", conflicts_with_all = ["partition", "offset", "from_timestamp"])]
    group: Option<String>,
    /// Read as a worker of this share group (a work queue): records are shared out one by one
    /// among all its workers, each printed record is acknowledged (--ack-mode auto), and a
    /// share group starts at the beginning of the topic.
    #[arg(long, value_name = "G", conflicts_with_all = ["group", "partition", "offset", "from_timestamp", "from_beginning"])]
    share_group: Option<String>,
    /// With --share-group: `auto` acknowledges each printed record; `manual` leaves them
    /// unacknowledged, so they are delivered again after the visibility timeout (a peek);
    /// `reject` sends each printed record to the dead-letter topic (drains a queue into it).
    #[arg(long, value_enum, default_value_t = AckMode::Auto, requires = "share_group")]
    ack_mode: AckMode,
    /// Read only this partition; default: every partition of the topic.
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Start at this offset in each partition read.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    offset: Option<i64>,
    /// Start at the first retained record.
    #[arg(long)]
    from_beginning: bool,
    /// Start at the first record at or after this time (ms since the Unix epoch).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(i64).range(0..))]
    from_timestamp: Option<i64>,
    /// Exit after printing this many records.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_messages: Option<u64>,
    /// Exit when no record arrived for this long; default: wait forever.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// How to print each record: `value`, `json`, or a format string of kcat's tokens: %t topic,
    /// %p partition, %o offset, %k key, %v value, %T timestamp (ms), %h headers (k=v,k=v), %K and
    /// %S key and value size in bytes (-1 when absent), %% a percent sign; \t, \n, \r and \\
    /// escapes. Each record's output ends with a newline unless the format string ends with \n.
    /// Example: --format '%t %p:%o\t%k\t%v'
    #[arg(long, value_name = "FORMAT", value_parser = RecordFormatParser, default_value = "value")]
    format: RecordFormat,
    /// How keys, values and header values are printed, in every format.
    #[arg(long, value_enum, value_name = "ENCODING", default_value_t = BinaryEncoding::Text)]
    binary: BinaryEncoding,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckMode {
    Auto,
    Manual,
    Reject,
}

/// How long one poll may wait when there is no idle timeout: short enough that Ctrl-C and a
/// closed stdout are noticed promptly.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(args: ConsumeArgs) -> Result<()> {
    if let Some(group) = &args.share_group {
        let worker = ShareWorker {
            worker: join_share_group(&args, group).await?,
            ack_mode: args.ack_mode,
        };
        return print_records(&args, worker).await;
    }
    let reader = PartitionReader {
        consumer: match &args.group {
            Some(group) => join_group(&args, group).await?,
            None => assign_partitions(&args).await?,
        },
        in_group: args.group.is_some(),
    };
    print_records(&args, reader).await
}

async fn join_group(args: &ConsumeArgs, group: &str) -> Result<Consumer> {
    let reset = if args.from_beginning {
        AutoOffsetReset::Earliest
    } else {
        AutoOffsetReset::Latest
    };
    describe_topic(args).await?;
    let config = ConsumerConfig::builder()
        .bootstrap(args.bootstrap.bootstrap.as_str())
        .group_id(group)
        .auto_offset_reset(reset)
        .auto_commit_interval_ms(1_000)
        .connect_timeout_ms(5_000)
        .build()?;
    let mut consumer = Consumer::connect(config)
        .await
        .with_context(|| format!("cannot connect to {}", args.bootstrap.bootstrap))?;
    consumer.subscribe([args.topic.as_str()])?;
    Ok(consumer)
}

async fn assign_partitions(args: &ConsumeArgs) -> Result<Consumer> {
    let (partitions, starts) = match args.partition {
        Some(partition) => {
            let partition = TopicPartition::new(args.topic.as_str(), partition);
            let starts = args.offset.map(|offset| vec![(partition.clone(), offset)]);
            (vec![partition], starts)
        }
        None => {
            let admin = connect_admin(&args.bootstrap).await?;
            let description = admin
                .describe_topic(&args.topic)
                .await
                .with_context(|| format!("cannot consume topic '{}'", args.topic))?;
            let partitions: Vec<TopicPartition> = description
                .partitions
                .iter()
                .map(|partition| TopicPartition::new(args.topic.as_str(), partition.partition))
                .collect();
            let starts = match args.offset {
                Some(offset) => Some(starts_in_each(&admin, &partitions, offset).await?),
                None => None,
            };
            (partitions, starts)
        }
    };

    // An offset outside the log of the one partition asked for is an error worth showing (with
    // the offsets it holds); otherwise records that age out while reading are skipped as
    // Kafka's console consumer does.
    let reset = if args.offset.is_some() && args.partition.is_some() {
        AutoOffsetReset::None
    } else {
        AutoOffsetReset::Earliest
    };
    let config = ConsumerConfig::builder()
        .bootstrap(args.bootstrap.bootstrap.as_str())
        .auto_offset_reset(reset)
        .connect_timeout_ms(5_000)
        .build()?;
    let mut consumer = Consumer::connect(config)
        .await
        .with_context(|| format!("cannot connect to {}", args.bootstrap.bootstrap))?;
    consumer.assign(partitions.clone())?;
    if let Some(starts) = starts {
        for (topic_partition, offset) in &starts {
            consumer.seek(topic_partition, *offset)?;
        }
    } else if args.from_beginning {
        consumer
            .seek_to_beginning(&partitions)
            .await
            .context("cannot find the beginning of the topic")?;
    } else if let Some(timestamp) = args.from_timestamp {
        consumer
            .seek_to_timestamp(&partitions, timestamp)
            .await
            .context("cannot find offsets for the timestamp")?;
    } else {
        consumer
            .seek_to_end(&partitions)
            .await
            .context("cannot find the end of the topic")?;
    }
    Ok(consumer)
}

/// Where `--offset N` starts in each of a topic's partitions, as kcat's `-o N` does: at N where
/// the partition holds it (or N is its end), at its first offset where N is below it, and at
/// its end where N is past it, which is said once on stderr. Partitions of different lengths
/// are normal, so one that is empty or shorter does not fail the others.
async fn starts_in_each(
    admin: &Admin,
    partitions: &[TopicPartition],
    offset: i64,
) -> Result<Vec<(TopicPartition, i64)>> {
    let mut starts = Vec::new();
    let mut past_the_end = Vec::new();
    for topic_partition in partitions {
        let bound = |spec| async move {
            admin
                .list_offsets(topic_partition, spec)
                .await
                .with_context(|| format!("cannot find the offsets of {topic_partition}"))
                .map(|found| found.map_or(0, |found| found.offset))
        };
        let first = bound(OffsetSpec::Earliest).await?;
        let end = bound(OffsetSpec::Latest).await?;
        if offset > end {
            let holds = match first < end {
                true => format!("holds offsets {first} to {}", end - 1),
                false => "empty".to_string(),
            };
            past_the_end.push(format!("{} ({holds})", topic_partition.partition));
        }
        starts.push((topic_partition.clone(), offset.clamp(first, end.max(first))));
    }
    match past_the_end.as_slice() {
        [] => {}
        [one] => {
            eprintln!("offset {offset} is past the end of partition {one}; reading it from its end")
        }
        several => eprintln!(
            "offset {offset} is past the end of partitions {}; reading them from their end",
            several.join(", ")
        ),
    }
    Ok(starts)
}

/// The topic's description; fails, naming the topic, when it does not exist, rather than
/// letting a group member wait for it forever.
async fn describe_topic(args: &ConsumeArgs) -> Result<TopicDescription> {
    let admin = connect_admin(&args.bootstrap).await?;
    admin
        .describe_topic(&args.topic)
        .await
        .with_context(|| format!("cannot consume topic '{}'", args.topic))
}

/// Joins a share group as a worker.
async fn join_share_group(args: &ConsumeArgs, group: &str) -> Result<ShareConsumer> {
    describe_topic(args).await?;
    let config = ShareConsumerConfig::new(group)
        .bootstrap(args.bootstrap.bootstrap.as_str())
        .max_in_flight(args.max_messages.map_or(500, |max| max.min(500) as u32));
    let mut worker = ShareConsumer::connect(config)
        .await
        .with_context(|| format!("cannot connect to {}", args.bootstrap.bootstrap))?;
    worker.subscribe([args.topic.as_str()])?;
    Ok(worker)
}

/// Where `strata consume` gets its records, and what happens to those it printed and those a
/// poll returned beyond --max-messages.
trait RecordSource {
    type Record;
    async fn poll(&mut self, wait: Duration) -> Result<Vec<Self::Record>>;
    fn record(record: &Self::Record) -> &ConsumerRecord;
    fn printed(&mut self, record: &Self::Record);
    fn not_printed(&mut self, rest: &[Self::Record]) -> Result<()>;
    async fn finish(self) -> Result<()>;
}

/// A consumer of assigned partitions, or a consumer-group member (`in_group`).
struct PartitionReader {
    consumer: Consumer,
    in_group: bool,
}

impl RecordSource for PartitionReader {
    type Record = ConsumerRecord;

    async fn poll(&mut self, wait: Duration) -> Result<Vec<ConsumerRecord>> {
        Ok(self.consumer.poll(wait).await?)
    }

    fn record(record: &ConsumerRecord) -> &ConsumerRecord {
        record
    }

    fn printed(&mut self, _record: &ConsumerRecord) {}

    /// Moves each partition back to its first record that was polled but not printed, so a
    /// group commits only what was printed.
    fn not_printed(&mut self, rest: &[ConsumerRecord]) -> Result<()> {
        let mut rewound = std::collections::BTreeSet::new();
        for record in rest {
            let topic_partition = record.topic_partition();
            if rewound.insert(topic_partition.clone()) {
                self.consumer.seek(&topic_partition, record.offset)?;
            }
        }
        Ok(())
    }

    async fn finish(self) -> Result<()> {
        if self.in_group {
            self.consumer
                .close()
                .await
                .context("cannot commit the group's offsets")?;
        }
        Ok(())
    }
}

/// A share-group worker that settles what it prints per --ack-mode and releases the rest.
struct ShareWorker {
    worker: ShareConsumer,
    ack_mode: AckMode,
}

impl RecordSource for ShareWorker {
    type Record = ShareRecord;

    async fn poll(&mut self, wait: Duration) -> Result<Vec<ShareRecord>> {
        Ok(self.worker.poll(wait).await?)
    }

    fn record(record: &ShareRecord) -> &ConsumerRecord {
        &record.record
    }

    fn printed(&mut self, record: &ShareRecord) {
        match self.ack_mode {
            AckMode::Auto => self.worker.ack(record),
            AckMode::Reject => self
                .worker
                .reject(record, "rejected with strata consume --ack-mode reject"),
            AckMode::Manual => {}
        }
    }

    fn not_printed(&mut self, rest: &[ShareRecord]) -> Result<()> {
        for record in rest {
            self.worker.release(record, "not printed");
        }
        Ok(())
    }

    async fn finish(self) -> Result<()> {
        self.worker
            .close()
            .await
            .context("cannot send the acknowledgements")
    }
}

async fn print_records<S: RecordSource>(args: &ConsumeArgs, mut source: S) -> Result<()> {
    let idle_timeout = args.timeout_ms.map(Duration::from_millis);
    let mut printed: u64 = 0;
    let mut last_record = Instant::now();
    let stdout = std::io::stdout();
    let mut output = Vec::new();
    // Runs until --max-messages, --timeout-ms, SIGINT/SIGTERM or a closed stdout; without the
    // first two it tails the topic, which is the point of the command. A signal ends it like the
    // others: a group member commits what it printed and leaves its group.
    let stop = crate::stop_requested();
    tokio::pin!(stop);
    'consuming: loop {
        let wait = match idle_timeout {
            Some(timeout) => {
                let idle = last_record.elapsed();
                if idle >= timeout {
                    break;
                }
                (timeout - idle).min(POLL_INTERVAL)
            }
            None => POLL_INTERVAL,
        };
        let records = tokio::select! {
            polled = source.poll(wait) => polled.with_context(|| format!("cannot read topic '{}'", args.topic))?,
            () = &mut stop => break,
        };
        if records.is_empty() {
            continue;
        }
        last_record = Instant::now();
        output.clear();
        let mut reached_limit = false;
        for (index, record) in records.iter().enumerate() {
            write_record(&mut output, S::record(record), &args.format, args.binary);
            source.printed(record);
            printed += 1;
            if args.max_messages.is_some_and(|max| printed >= max) {
                reached_limit = true;
                source.not_printed(&records[index + 1..])?;
                break;
            }
        }
        let mut locked = stdout.lock();
        if let Err(error) = locked.write_all(&output).and_then(|()| locked.flush()) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                // The reader (e.g. `head`) has what it wanted.
                break 'consuming;
            }
            return Err(error).context("cannot write to stdout");
        }
        if reached_limit {
            break;
        }
    }
    source.finish().await?;
    eprintln!(
        "consumed {printed} record{}",
        if printed == 1 { "" } else { "s" }
    );
    Ok(())
}
