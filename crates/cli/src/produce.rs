//! `strata produce`: records from stdin (one per line, per `--delimiter`, or per JSON line) or
//! from whole files, with keys, headers and the producer's limits set by flags.

mod json_input;
mod split;

use crate::tls::ConnectTo;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use strata_client::{
    Acks, CompressionType, DeliveryFuture, ErrorCode, Header, Producer, ProducerConfig,
    ProducerRecord,
};

use crate::Bootstrap;
use crate::duration::{self, DurationParser, Unit};
use crate::topic::{connect_admin, describe_topic_or_suggest};
use json_input::Binary;
use split::Splitter;

#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct ProduceArgs {
    topic: String,
    /// Give every record this key (text input and --file only).
    #[arg(
        short = 'k',
        long,
        value_name = "KEY",
        conflicts_with = "key_separator"
    )]
    key: Option<String>,
    /// Add the header KEY with VALUE to every record; repeat for more. The first '=' splits,
    /// so VALUE may contain '='; KEY must not be empty.
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Split each record at the first SEP into key and value; without it records have no key.
    /// A record without SEP stops the input with an error. Text input only.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// How records are read from stdin. A malformed JSON line stops the input with its line
    /// number; the records before it are still delivered.
    #[arg(long, value_enum, default_value_t = InputFormat::Text, value_name = "FORMAT")]
    input_format: InputFormat,
    /// How JSON input writes the bytes of keys, values and header values (header keys are
    /// text), so binary data round-trips.
    #[arg(long, value_enum, default_value_t = Binary::Text, value_name = "ENCODING")]
    binary: Binary,
    /// What ends a record instead of a newline: one or more bytes, with the escapes \n \t \r \0
    /// \\ and \xHH. With the newline, a \r before it is dropped too (CRLF input).
    #[arg(long, value_name = "D", default_value = "\\n", value_parser = parse_delimiter, conflicts_with = "files")]
    delimiter: Delimiter,
    /// Send the whole file as one record instead of reading stdin; repeat for several files,
    /// sent in order.
    #[arg(long = "file", value_name = "PATH", conflicts_with_all = ["key_separator", "input_format"])]
    files: Vec<PathBuf>,
    /// Replicas that must have a record before it counts as acknowledged. With `all` the
    /// producer is idempotent (a retried batch is written once); 1 and 0 turn that off.
    #[arg(long, default_value = "all", value_name = "all|1|0", value_parser = parse_acks)]
    acks: Acks,
    /// Send every record to this partition instead of choosing by key (a JSON line's own
    /// partition wins).
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Give up on a record not acknowledged this long after it was read (Kafka's
    /// delivery.timeout.ms); meanwhile each retry is reported on stderr with its cause.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = TIMEOUT)]
    timeout: Duration,
    /// --timeout in milliseconds, its old spelling.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "timeout", value_parser = TIMEOUT.number_of(Unit::Millis))]
    timeout_ms: Option<Duration>,
    /// The largest produce request, and so the largest record, the producer sends (Kafka's
    /// max.request.size); a larger record fails and stops the input. The topic's
    /// max.message.bytes still applies.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1024..=MAX_REQUEST_SIZE))]
    max_request_size: u64,
    /// How long a record waits for others to share its batch (Kafka's linger.ms); must be
    /// shorter than --timeout.
    #[arg(long, default_value = "5ms", value_name = "DURATION", value_parser = LINGER)]
    linger: Duration,
    /// --linger in milliseconds, its old spelling.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "linger", value_parser = LINGER.number_of(Unit::Millis))]
    linger_ms: Option<Duration>,
    /// How batches of records are compressed (Kafka's compression.type). The broker stores
    /// them as sent and consumers decompress them; --max-request-size counts records before
    /// compression.
    #[arg(long, value_enum, default_value_t = Compression::None, value_name = "CODEC")]
    compression: Compression,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

/// `--timeout`: a record's delivery needs at least a round trip or two.
const TIMEOUT: DurationParser = DurationParser::human().at_least(Duration::from_millis(100));
/// `--linger`: longer would hold records back for no batching gain worth having.
const LINGER: DurationParser = DurationParser::human().at_most(Duration::from_secs(60));

const EXAMPLES: &str =
    "On exit it prints `acknowledged N records` on stdout; if any record failed, \
it also prints `error: failed M records: <the first error>` on stderr and exits 1. SIGINT or \
SIGTERM stops the reading; the records read so far are still delivered and counted.

Example:
  printf 'user-1:signed up\\nuser-2:logged in\\n' | strata produce events --key-separator :
  strata produce events -k user-1 -H source=web -H trace=a=b < events.txt
  printf '{\"key\":\"k\",\"value\":\"v\",\"headers\":{\"h\":\"1\"},\"partition\":0}\\n' \\
    | strata produce events --input-format json
  find . -print0 | strata produce paths --delimiter '\\0'
  strata produce images --file a.png --file b.png --max-request-size 8388608
  strata produce events --acks 1 --linger 50ms --timeout 10s < events.txt
  strata produce events --compression zstd < events.txt";

/// `--delimiter`'s bytes (a newtype, so clap takes them as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Delimiter(Vec<u8>);

impl Delimiter {
    fn is_newline(&self) -> bool {
        self.0 == b"\n"
    }
}

fn parse_delimiter(text: &str) -> Result<Delimiter, String> {
    split::parse_delimiter(text).map(Delimiter)
}

/// `--input-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum InputFormat {
    /// Each record's bytes as read (see --delimiter, --key-separator, --key).
    Text,
    /// One object per line, {"key", "value", "headers", "partition", "timestamp"}, every field
    /// optional: key and value are strings (see --binary) or null, headers {"k": "v"} or
    /// [["k", "v"], ...], timestamp milliseconds since the epoch; a line's partition overrides
    /// --partition.
    Json,
}

/// `--compression`: Kafka's codecs, by Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Compression {
    /// Records as they are.
    None,
    /// Read by every Kafka client; the most CPU per byte.
    Gzip,
    /// Fast, with modest compression.
    Snappy,
    /// Fast, with modest compression.
    Lz4,
    /// About as small as gzip or smaller, for a fraction of its CPU.
    Zstd,
}

impl From<Compression> for CompressionType {
    fn from(compression: Compression) -> CompressionType {
        match compression {
            Compression::None => CompressionType::None,
            Compression::Gzip => CompressionType::Gzip,
            Compression::Snappy => CompressionType::Snappy,
            Compression::Lz4 => CompressionType::Lz4,
            Compression::Zstd => CompressionType::Zstd,
        }
    }
}

/// The broker refuses requests over 128 MiB.
const MAX_REQUEST_SIZE: u64 = 128 << 20;

/// The producer's default batch size; a smaller --max-request-size caps it.
const BATCH_SIZE: u64 = 1 << 20;

pub fn parse_acks(text: &str) -> Result<Acks, String> {
    text.parse::<Acks>()
        .map_err(|_| format!("'{text}' is not one of all, 1, 0"))
}

/// Parses `-H KEY=VALUE`: the first '=' splits.
fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        None => Err(format!("'{text}' is not KEY=VALUE")),
        Some(("", _)) => Err(format!("'{text}' has an empty header key")),
        Some((key, value)) => Ok((key.to_string(), value.to_string())),
    }
}

/// Splits a record into key and value at the first `separator`.
fn split_record(record: Vec<u8>, separator: &[u8]) -> Option<(Bytes, Bytes)> {
    let at = split::find(&record, separator)?;
    let record = Bytes::from(record);
    Some((record.slice(..at), record.slice(at + separator.len()..)))
}

/// Where records come from.
enum Input {
    Stdin(Splitter<tokio::io::Stdin>),
    Files(std::vec::IntoIter<PathBuf>),
}

impl Input {
    async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        match self {
            Input::Stdin(splitter) => splitter.next().await.context("cannot read stdin"),
            Input::Files(paths) => match paths.next() {
                None => Ok(None),
                Some(path) => tokio::fs::read(&path)
                    .await
                    .map(Some)
                    .with_context(|| format!("cannot read '{}'", path.display())),
            },
        }
    }
}

impl ProduceArgs {
    /// Checks what clap cannot: combinations that depend on a flag's value.
    fn validate(&self) -> Result<()> {
        if self.key_separator.as_deref() == Some("") {
            bail!("--key-separator must not be empty");
        }
        if self.input_format == InputFormat::Json {
            if self.key.is_some() {
                bail!("--key cannot be used with --input-format json: each line has its key");
            }
            if self.key_separator.is_some() {
                bail!("--key-separator cannot be used with --input-format json");
            }
            if !self.delimiter.is_newline() {
                bail!("--delimiter cannot be used with --input-format json: it reads lines");
            }
        } else if self.binary != Binary::Text {
            bail!("--binary applies to --input-format json only");
        }
        let (linger, timeout) = (self.linger(), self.timeout());
        if linger >= timeout {
            bail!(
                "--linger ({}) must be shorter than --timeout ({})",
                duration::human(linger),
                duration::human(timeout)
            );
        }
        for path in &self.files {
            let metadata = std::fs::metadata(path)
                .with_context(|| format!("cannot read '{}'", path.display()))?;
            if !metadata.is_file() {
                bail!("cannot read '{}': not a file", path.display());
            }
        }
        Ok(())
    }

    fn timeout(&self) -> Duration {
        duration::given(self.timeout, self.timeout_ms)
    }

    fn linger(&self) -> Duration {
        duration::given(self.linger, self.linger_ms)
    }

    /// What the error of the `number`th input record calls it.
    fn describe(&self, number: usize) -> String {
        if let Some(path) = self.files.get(number.wrapping_sub(1)) {
            return format!("file '{}'", path.display());
        }
        let unit = if self.delimiter.is_newline() {
            "line"
        } else {
            "record"
        };
        format!("{unit} {number}")
    }

    /// The record for one piece of input, or why it is not one.
    fn record(&self, input: Vec<u8>) -> Result<ProducerRecord, String> {
        let topic = self.topic.as_str();
        let mut record = match self.input_format {
            InputFormat::Json => {
                let parsed = json_input::parse(&input, self.binary)?;
                let mut record = ProducerRecord::new(topic, Bytes::new());
                record.key = parsed.key;
                record.value = parsed.value;
                record.headers = parsed.headers;
                record.partition = parsed.partition;
                record.timestamp = parsed.timestamp;
                record
            }
            InputFormat::Text => match self.key_separator.as_deref() {
                Some(separator) => {
                    let (key, value) = split_record(input, separator.as_bytes())
                        .ok_or_else(|| format!("no key separator '{separator}'"))?;
                    ProducerRecord::new(topic, value).key(key)
                }
                None => ProducerRecord::new(topic, input),
            },
        };
        if let Some(key) = &self.key {
            record.key = Some(Bytes::copy_from_slice(key.as_bytes()));
        }
        record
            .headers
            .extend(self.headers.iter().map(|(key, value)| Header {
                key: key.clone(),
                value: Some(Bytes::copy_from_slice(value.as_bytes())),
            }));
        if record.partition.is_none() {
            record.partition = self.partition;
        }
        Ok(record)
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

pub async fn run(args: ProduceArgs) -> Result<()> {
    args.validate()?;
    // Fails fast on an unknown topic instead of waiting for it to appear.
    let admin = connect_admin(&args.bootstrap).await?;
    describe_topic_or_suggest(&admin, &args.topic)
        .await
        .with_context(|| format!("cannot produce to topic '{}'", args.topic))?;

    let max_request_size = usize::try_from(args.max_request_size)?;
    let config = ProducerConfig::builder()
        .connect_to(&args.bootstrap)?
        .acks(args.acks)
        // Idempotence needs acks=all; asking for 1 or 0 is asking for less.
        .enable_idempotence(args.acks == Acks::All)
        .connect_timeout_ms(5_000)
        .linger_ms(duration::millis(args.linger()))
        .compression_type(args.compression.into())
        .max_request_size(max_request_size)
        .batch_size(usize::try_from(args.max_request_size.min(BATCH_SIZE))?)
        // The buffer must hold the largest record the requests allow.
        .buffer_memory(max_request_size.max(64 << 20))
        // A record's whole life must fit its delivery timeout, lingering included.
        .request_timeout_ms(
            duration::millis(args.timeout().saturating_sub(args.linger())).min(30_000),
        )
        .delivery_timeout_ms(duration::millis(args.timeout()))
        .build()?;
    let producer = Producer::connect(config).await.map_err(|error| {
        // An idempotent producer asks the cluster for a producer id when it connects; a user
        // with no Write anywhere is refused that, not the write, so the refusal says what to
        // grant instead of blaming the connection.
        let context = match error.code() {
            Some(ErrorCode::ClusterAuthorizationFailed) => format!(
                "cannot start an idempotent producer: it needs Write on a topic (`strata acl \
                 create --operation write --topic {} ...`) or IdempotentWrite on the cluster; \
                 --acks 1 produces without idempotence",
                args.topic
            ),
            _ => format!("cannot connect to {}", args.bootstrap.bootstrap),
        };
        anyhow::Error::new(error).context(context)
    })?;

    let mut input = if args.files.is_empty() {
        Input::Stdin(Splitter::new(tokio::io::stdin(), args.delimiter.0.clone()))
    } else {
        Input::Files(args.files.clone().into_iter())
    };
    // Each sent record's delivery, with its number in the input.
    let mut deliveries: Vec<(usize, DeliveryFuture)> = Vec::new();
    let mut number = 0usize;
    // Why the input stopped before its end, if it did: a record that could not be sent counts
    // as failed; unreadable or malformed input is no record.
    let mut send_failure: Option<String> = None;
    let mut input_failure: Option<anyhow::Error> = None;
    let stop = crate::stop_requested();
    tokio::pin!(stop);
    let mut stopped_by_signal = false;
    // Ends at end of input, on SIGINT/SIGTERM or at the first record that cannot be sent; each
    // record is read once. What was sent before is still delivered and counted.
    loop {
        let next = tokio::select! {
            next = input.next() => next,
            () = &mut stop => {
                stopped_by_signal = true;
                Ok(None)
            }
        };
        let bytes = match next {
            Ok(Some(bytes)) => bytes,
            Ok(None) => break,
            Err(error) => {
                input_failure = Some(error);
                break;
            }
        };
        number += 1;
        if args.input_format == InputFormat::Json && bytes.trim_ascii().is_empty() {
            continue;
        }
        let record = match args.record(bytes) {
            Ok(record) => record,
            Err(error) => {
                input_failure = Some(anyhow::anyhow!("{}: {error}", args.describe(number)));
                break;
            }
        };
        match producer.send(record).await {
            Ok(delivery) => deliveries.push((number, delivery)),
            Err(error) => {
                send_failure = Some(format!("{}: {error}", args.describe(number)));
                break;
            }
        }
    }

    producer
        .flush()
        .await
        .context("cannot flush the producer")?;
    let sent = deliveries.len();
    let mut acknowledged = 0usize;
    let mut first_error = None;
    for (number, delivery) in deliveries {
        match delivery.await {
            Ok(_) => acknowledged += 1,
            Err(error) => {
                first_error.get_or_insert_with(|| format!("{}: {error}", args.describe(number)));
            }
        }
    }
    producer
        .close()
        .await
        .context("cannot close the producer")?;
    println!("acknowledged {acknowledged} record{}", plural(acknowledged));
    if stopped_by_signal {
        eprintln!("stopped by a signal after reading {sent} records");
    }
    let failed = sent - acknowledged + usize::from(send_failure.is_some());
    let delivery_failure = first_error
        .or(send_failure)
        .map(|first| anyhow::anyhow!("failed {failed} record{}: {first}", plural(failed)));
    match (delivery_failure, input_failure) {
        (None, None) => Ok(()),
        (Some(failure), None) | (None, Some(failure)) => Err(failure),
        (Some(delivery), Some(input)) => Err(anyhow::anyhow!("{delivery:#}; then {input:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(record: &str, separator: &str) -> Option<(String, String)> {
        let text = |bytes: Bytes| String::from_utf8(bytes.to_vec()).expect("UTF-8");
        split_record(record.as_bytes().to_vec(), separator.as_bytes())
            .map(|(key, value)| (text(key), text(value)))
    }

    #[test]
    fn records_split_at_the_first_separator() {
        let pair = |key: &str, value: &str| Some((key.to_string(), value.to_string()));
        assert_eq!(split("k:v:w", ":"), pair("k", "v:w"));
        assert_eq!(split(":v", ":"), pair("", "v"));
        assert_eq!(split("k=>v", "=>"), pair("k", "v"));
        assert_eq!(split("no separator", ":"), None);
    }

    #[test]
    fn headers_split_at_the_first_equals_sign() {
        assert_eq!(parse_header("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_header("a="), Ok(("a".into(), String::new())));
        assert!(parse_header("=b").is_err());
        assert!(parse_header("ab").is_err());
    }

    #[test]
    fn acks_accept_kafka_spellings() {
        assert_eq!(parse_acks("all"), Ok(Acks::All));
        assert_eq!(parse_acks("1"), Ok(Acks::Leader));
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert!(parse_acks("2").is_err());
    }
}
