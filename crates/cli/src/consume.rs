//! `strata consume`: print the records of one or more topics.

mod start;

use crate::tls::ConnectTo;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Args;
use strata_client::{
    Admin, AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, OffsetSpec, ShareConsumer,
    ShareConsumerConfig, ShareRecord, TopicPartition,
};

use crate::Bootstrap;
use crate::duration::{self, DurationParser, Unit};
use crate::record_format::{BinaryEncoding, RecordFormat, RecordFormatParser, write_record};
use crate::topic::{connect_admin, describe_topic_or_suggest};
use start::{StartOffset, StartTime};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("start").multiple(false).args(["offset", "from_beginning", "from_timestamp", "from"]))]
pub struct ConsumeArgs {
    /// The topics to read (one or more).
    #[arg(value_name = "TOPIC", required_unless_present = "regex")]
    topics: Vec<String>,
    /// Also read every topic whose whole name matches this regular expression, e.g.
    /// 'orders\..*' (internal topics, `__...`, never match). Without a group the topics are
    /// matched once at start; a group's subscription also takes matching topics created later.
    #[arg(long, value_name = "PATTERN", value_parser = TopicPattern::parse)]
    regex: Option<TopicPattern>,
    /// Join this consumer group: its coordinator assigns partitions, and the offsets of printed
    /// records are committed, so the next run continues where this one stopped. With a group,
    /// --from-beginning applies only where the group has no committed offset.
    #[arg(long, value_name = "G", conflicts_with_all = ["partition", "offset", "from_timestamp", "from", "exit_at_end"])]
    group: Option<String>,
    /// Read as a worker of this share group (a work queue): records are shared out one by one
    /// among all its workers, each printed record is acknowledged (--ack-mode auto), and a
    /// share group starts at the beginning of the topic.
    #[arg(long, value_name = "G", conflicts_with_all = ["group", "partition", "offset", "from_timestamp", "from", "from_beginning", "exit_at_end"])]
    share_group: Option<String>,
    /// With --share-group: `auto` acknowledges each printed record; `manual` leaves them
    /// unacknowledged, so they are delivered again after the visibility timeout (a peek);
    /// `reject` sends each printed record to the dead-letter topic (drains a queue into it).
    #[arg(long, value_enum, default_value_t = AckMode::Auto, requires = "share_group")]
    ack_mode: AckMode,
    /// Read only this partition of each topic; default: every partition.
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Where to start in each partition read: N (that offset), -N (N records before the end, or
    /// the first record where the partition holds fewer), earliest or latest. Default: latest.
    #[arg(long, value_name = "N|-N|earliest|latest", allow_hyphen_values = true, value_parser = StartOffset::parse)]
    offset: Option<StartOffset>,
    /// Start at the first retained record (the same as --offset earliest).
    #[arg(long)]
    from_beginning: bool,
    /// Start at the first record at or after this time (ms since the Unix epoch).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(i64).range(0..))]
    from_timestamp: Option<i64>,
    /// Start at the first record at or after this time: ms since the Unix epoch, an RFC 3339
    /// time (2024-05-01T12:00:00Z, 2024-05-01T14:00:00+02:00, or a date, 2024-05-01, for
    /// midnight UTC), or a duration meaning that long ago (90s, 10m, 2h, 1d, 1h30m; the units
    /// of every duration flag).
    #[arg(long, value_name = "TIME", value_parser = StartTime::parse)]
    from: Option<StartTime>,
    /// Exit once every partition read has been printed up to the end it had at start (its high
    /// watermark then), like kcat -e; records produced later are not waited for. Not with
    /// --group or --share-group.
    #[arg(short = 'e', long)]
    exit_at_end: bool,
    /// Exit after printing this many records.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_messages: Option<u64>,
    /// Exit when no record arrived for this long; default: wait forever.
    #[arg(long, value_name = "DURATION", value_parser = DurationParser::human())]
    timeout: Option<Duration>,
    /// --timeout in milliseconds, its old spelling.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "timeout", value_parser = DurationParser::human().number_of(Unit::Millis))]
    timeout_ms: Option<Duration>,
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

/// `--regex`: as given, and compiled to match a whole topic name.
#[derive(Debug, Clone)]
pub struct TopicPattern {
    text: String,
    whole_name: regex::Regex,
}

impl TopicPattern {
    fn parse(text: &str) -> Result<TopicPattern, String> {
        let whole_name = regex::Regex::new(&format!("^(?:{text})$"))
            .map_err(|error| format!("not a valid regular expression: {}", one_line(&error)))?;
        Ok(TopicPattern {
            text: text.to_string(),
            whole_name,
        })
    }

    fn matches(&self, topic: &str) -> bool {
        !topic.starts_with("__") && self.whole_name.is_match(topic)
    }

    /// A pattern for a group subscription: this one, or any of `topics`.
    fn or_any_of(&self, topics: &[String]) -> String {
        let mut alternatives = vec![format!("(?:{})", self.text)];
        alternatives.extend(topics.iter().map(|topic| regex::escape(topic)));
        alternatives.join("|")
    }
}

fn one_line(error: &dyn std::fmt::Display) -> String {
    error
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// How long one poll may wait when there is no idle timeout: short enough that Ctrl-C and a
/// closed stdout are noticed promptly.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(args: ConsumeArgs) -> Result<()> {
    let topics = resolve_topics(&args).await?;
    let label = match topics.as_slice() {
        [one] => format!("topic '{one}'"),
        several => format!(
            "topics {}",
            several
                .iter()
                .map(|topic| format!("'{topic}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if let Some(group) = &args.share_group {
        let worker = ShareWorker {
            worker: join_share_group(&args, group, &topics).await?,
            ack_mode: args.ack_mode,
        };
        return print_records(&args, &label, worker).await;
    }
    let reader = match &args.group {
        Some(group) => PartitionReader {
            consumer: join_group(&args, group, &topics).await?,
            in_group: true,
            ends: None,
        },
        None => assign_partitions(&args, &topics).await?,
    };
    print_records(&args, &label, reader).await
}

/// The topics named, then those --regex matches (in name order), each once. A pattern that
/// matches no topic is an error rather than a wait for nothing.
async fn resolve_topics(args: &ConsumeArgs) -> Result<Vec<String>> {
    let mut topics: Vec<String> = Vec::new();
    for topic in &args.topics {
        if !topics.contains(topic) {
            topics.push(topic.clone());
        }
    }
    if let Some(pattern) = &args.regex {
        let admin = connect_admin(&args.bootstrap).await?;
        let mut listed = admin
            .list_topics()
            .await
            .context("cannot list the topics")?;
        listed.sort();
        let matched: Vec<String> = listed
            .into_iter()
            .filter(|topic| pattern.matches(topic))
            .collect();
        if matched.is_empty() {
            bail!("no topic matches --regex '{}'", pattern.text);
        }
        for topic in matched {
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
    }
    Ok(topics)
}

async fn join_group(args: &ConsumeArgs, group: &str, topics: &[String]) -> Result<Consumer> {
    let reset = if args.from_beginning {
        AutoOffsetReset::Earliest
    } else {
        AutoOffsetReset::Latest
    };
    describe_topics(args).await?;
    let config = ConsumerConfig::builder()
        .connect_to(&args.bootstrap)?
        .group_id(group)
        .auto_offset_reset(reset)
        .auto_commit_interval_ms(1_000)
        .connect_timeout_ms(5_000)
        .build()?;
    let mut consumer = Consumer::connect(config)
        .await
        .with_context(|| format!("cannot connect to {}", args.bootstrap.bootstrap))?;
    match &args.regex {
        Some(pattern) => consumer
            .subscribe_pattern(&pattern.or_any_of(&args.topics))
            .await
            .context("cannot subscribe to the topics")?,
        None => consumer.subscribe(topics)?,
    }
    Ok(consumer)
}

/// Where reading starts, from --offset, --from-beginning, --from-timestamp or --from.
#[derive(Debug, Clone, Copy)]
enum Start {
    Offset(StartOffset),
    Timestamp(i64),
}

impl ConsumeArgs {
    fn start(&self) -> Start {
        if let Some(offset) = self.offset {
            Start::Offset(offset)
        } else if self.from_beginning {
            Start::Offset(StartOffset::Earliest)
        } else if let Some(timestamp) = self.from_timestamp {
            Start::Timestamp(timestamp)
        } else if let Some(time) = self.from {
            Start::Timestamp(time.timestamp_ms(SystemTime::now()))
        } else {
            Start::Offset(StartOffset::Latest)
        }
    }
}

async fn assign_partitions(args: &ConsumeArgs, topics: &[String]) -> Result<PartitionReader> {
    let start = args.start();
    // The first offset and the end of each partition, where the start or --exit-at-end need
    // them; taken before reading, so the end is the one observed at start.
    let needs_bounds = args.exit_at_end
        || matches!(start, Start::Offset(StartOffset::BeforeEnd(_)))
        || (args.partition.is_none() && matches!(start, Start::Offset(StartOffset::At(_))));
    let admin = match needs_bounds || args.partition.is_none() {
        true => Some(connect_admin(&args.bootstrap).await?),
        false => None,
    };
    let partitions: Vec<TopicPartition> = match (args.partition, &admin) {
        (Some(partition), _) => topics
            .iter()
            .map(|topic| TopicPartition::new(topic.as_str(), partition))
            .collect(),
        (None, Some(admin)) => {
            let mut partitions = Vec::new();
            for topic in topics {
                let description = describe_topic_or_suggest(admin, topic)
                    .await
                    .with_context(|| format!("cannot consume topic '{topic}'"))?;
                partitions.extend(
                    description
                        .partitions
                        .iter()
                        .map(|partition| TopicPartition::new(topic.as_str(), partition.partition)),
                );
            }
            partitions
        }
        (None, None) => unreachable!("an admin client is connected to list the partitions"),
    };
    let bounds = match (&admin, needs_bounds) {
        (Some(admin), true) => Some(log_bounds(admin, &partitions).await?),
        _ => None,
    };

    // An offset outside the log of the one partition asked for is an error worth showing (with
    // the offsets it holds); otherwise records that age out while reading are skipped as
    // Kafka's console consumer does.
    let reset = match (start, args.partition) {
        (Start::Offset(StartOffset::At(_)), Some(_)) => AutoOffsetReset::None,
        _ => AutoOffsetReset::Earliest,
    };
    let config = ConsumerConfig::builder()
        .connect_to(&args.bootstrap)?
        .auto_offset_reset(reset)
        .connect_timeout_ms(5_000)
        .build()?;
    let mut consumer = Consumer::connect(config)
        .await
        .with_context(|| format!("cannot connect to {}", args.bootstrap.bootstrap))?;
    consumer.assign(partitions.clone())?;
    let several_topics = topics.len() > 1;
    match (start, &bounds) {
        (Start::Offset(StartOffset::At(offset)), Some(bounds)) if args.partition.is_none() => {
            for (topic_partition, offset) in starts_in_each(bounds, offset, several_topics) {
                consumer.seek(&topic_partition, offset)?;
            }
        }
        (Start::Offset(StartOffset::At(offset)), _) => {
            for topic_partition in &partitions {
                consumer.seek(topic_partition, offset)?;
            }
        }
        (Start::Offset(StartOffset::BeforeEnd(count)), Some(bounds)) => {
            for (topic_partition, (first, end)) in bounds {
                consumer.seek(topic_partition, end.saturating_sub(count).max(*first))?;
            }
        }
        (Start::Offset(StartOffset::BeforeEnd(_)), None) => {
            unreachable!("the bounds are looked up for -N")
        }
        (Start::Offset(StartOffset::Earliest), _) => consumer
            .seek_to_beginning(&partitions)
            .await
            .context("cannot find the beginning of the topic")?,
        (Start::Offset(StartOffset::Latest), _) => consumer
            .seek_to_end(&partitions)
            .await
            .context("cannot find the end of the topic")?,
        (Start::Timestamp(timestamp), _) => consumer
            .seek_to_timestamp(&partitions, timestamp)
            .await
            .context("cannot find offsets for the timestamp")?,
    }
    Ok(PartitionReader {
        consumer,
        in_group: false,
        ends: bounds.filter(|_| args.exit_at_end).map(|bounds| {
            bounds
                .into_iter()
                .map(|(topic_partition, (first, end))| match (start, reset) {
                    // An offset outside the one partition asked for is never its end: the
                    // poll reports it, as it does without --exit-at-end.
                    (Start::Offset(StartOffset::At(offset)), AutoOffsetReset::None)
                        if !(first..=end).contains(&offset) =>
                    {
                        (topic_partition, i64::MAX)
                    }
                    _ => (topic_partition, end),
                })
                .collect()
        }),
    })
}

/// The first offset and the end (the offset the next record gets) of each partition.
async fn log_bounds(
    admin: &Admin,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, (i64, i64)>> {
    let mut bounds = BTreeMap::new();
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
        bounds.insert(topic_partition.clone(), (first, end));
    }
    Ok(bounds)
}

/// Where `--offset N` starts in each partition, as kcat's `-o N` does: at N where the partition
/// holds it (or N is its end), at its first offset where N is below it, and at its end where N
/// is past it, which is said once on stderr. Partitions of different lengths are normal, so one
/// that is empty or shorter does not fail the others.
fn starts_in_each(
    bounds: &BTreeMap<TopicPartition, (i64, i64)>,
    offset: i64,
    several_topics: bool,
) -> Vec<(TopicPartition, i64)> {
    let mut starts = Vec::new();
    let mut past_the_end = Vec::new();
    for (topic_partition, &(first, end)) in bounds {
        if offset > end {
            let holds = match first < end {
                true => format!("holds offsets {first} to {}", end - 1),
                false => "empty".to_string(),
            };
            let name = match several_topics {
                true => topic_partition.to_string(),
                false => topic_partition.partition.to_string(),
            };
            past_the_end.push(format!("{name} ({holds})"));
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
    starts
}

/// Fails, naming the topic, when one of the topics named does not exist, rather than letting a
/// group member wait for it forever.
async fn describe_topics(args: &ConsumeArgs) -> Result<()> {
    if args.topics.is_empty() {
        return Ok(());
    }
    let admin = connect_admin(&args.bootstrap).await?;
    for topic in &args.topics {
        describe_topic_or_suggest(&admin, topic)
            .await
            .with_context(|| format!("cannot consume topic '{topic}'"))?;
    }
    Ok(())
}

/// Joins a share group as a worker.
async fn join_share_group(
    args: &ConsumeArgs,
    group: &str,
    topics: &[String],
) -> Result<ShareConsumer> {
    describe_topics(args).await?;
    let config = ShareConsumerConfig::new(group)
        .connect_to(&args.bootstrap)?
        .max_in_flight(args.max_messages.map_or(500, |max| max.min(500) as u32));
    let mut worker = ShareConsumer::connect(config)
        .await
        .with_context(|| format!("cannot connect to {}", args.bootstrap.bootstrap))?;
    worker.subscribe(topics)?;
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
    /// Whether everything --exit-at-end asked for has been read.
    async fn at_end(&mut self) -> Result<bool>;
    async fn finish(self) -> Result<()>;
}

/// A consumer of assigned partitions, or a consumer-group member (`in_group`).
struct PartitionReader {
    consumer: Consumer,
    in_group: bool,
    /// With --exit-at-end: the partitions not read to their end yet, and that end (observed at
    /// start). Records at or past it are not printed.
    ends: Option<BTreeMap<TopicPartition, i64>>,
}

impl RecordSource for PartitionReader {
    type Record = ConsumerRecord;

    async fn poll(&mut self, wait: Duration) -> Result<Vec<ConsumerRecord>> {
        let mut records = self.consumer.poll(wait).await?;
        if let Some(ends) = &self.ends {
            records.retain(|record| {
                ends.get(&record.topic_partition())
                    .is_some_and(|end| record.offset < *end)
            });
        }
        Ok(records)
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

    /// True once the position of every partition reached its end; a partition that did is
    /// dropped from `ends`, so later records of it are not printed.
    async fn at_end(&mut self) -> Result<bool> {
        let Some(ends) = &mut self.ends else {
            return Ok(false);
        };
        let mut done = Vec::new();
        for (topic_partition, end) in ends.iter() {
            let position = self
                .consumer
                .position(topic_partition)
                .await
                .with_context(|| format!("cannot find the position in {topic_partition}"))?;
            if position >= *end {
                done.push(topic_partition.clone());
            }
        }
        for topic_partition in done {
            ends.remove(&topic_partition);
        }
        Ok(ends.is_empty())
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

    async fn at_end(&mut self) -> Result<bool> {
        Ok(false)
    }

    async fn finish(self) -> Result<()> {
        self.worker
            .close()
            .await
            .context("cannot send the acknowledgements")
    }
}

async fn print_records<S: RecordSource>(
    args: &ConsumeArgs,
    label: &str,
    mut source: S,
) -> Result<()> {
    let idle_timeout = duration::given(args.timeout, args.timeout_ms);
    let mut printed: u64 = 0;
    let mut last_record = Instant::now();
    let stdout = std::io::stdout();
    let mut output = Vec::new();
    // Runs until --max-messages, --timeout, --exit-at-end, SIGINT/SIGTERM or a closed stdout;
    // without the first three it tails the topics, which is the point of the command. A signal ends it like the
    // others: a group member commits what it printed and leaves its group.
    let stop = crate::stop_requested();
    tokio::pin!(stop);
    'consuming: loop {
        if source.at_end().await? {
            break;
        }
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
            polled = source.poll(wait) => polled.with_context(|| format!("cannot read {label}"))?,
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
