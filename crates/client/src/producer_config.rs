//! The producer's settings, named after Kafka's producer configs.

use crate::credentials::Credentials;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use strata_tls::ClientTls;

use strata_record::{BATCH_HEADER_BYTES, CompressionType};

use crate::cluster::{ConnectionSettings, parse_bootstrap};
use crate::error::{Error, Result};
use crate::record_accumulator::MAX_IN_FLIGHT_PER_PARTITION;

/// How many replicas must have a batch before the broker acknowledges it (Kafka's `acks`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Acks {
    /// `acks=0`: the producer does not wait for the broker at all; offsets are reported as -1
    /// and a lost request goes unnoticed.
    None,
    /// `acks=1`: the leader has appended the batch.
    Leader,
    /// `acks=all` (-1): every in-sync replica has the batch. The safe default.
    #[default]
    All,
}

impl Acks {
    /// The value on the wire: 0, 1 or -1.
    pub fn as_i32(self) -> i32 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = Error;

    /// Accepts Kafka's spellings: `0`, `1`, `all` or `-1`.
    fn from_str(text: &str) -> Result<Acks> {
        match text.trim().to_ascii_lowercase().as_str() {
            "0" | "none" => Ok(Acks::None),
            "1" | "leader" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(Error::Config(format!(
                "acks '{other}' is not one of 0, 1, all"
            ))),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        })
    }
}

/// Validated producer settings. Build one with [`ProducerConfig::builder`].
///
/// ```
/// use strata_client::{Acks, ProducerConfig};
///
/// let config = ProducerConfig::builder()
///     .bootstrap("127.0.0.1:7070,127.0.0.1:7071")
///     .linger_ms(10)
///     .build()?;
/// assert!(config.enable_idempotence());
/// assert_eq!(config.acks(), Acks::All);
/// assert_eq!(config.batch_size(), 1 << 20);
///
/// // acks=1 gives up the guarantee that a retried batch is written once, so it needs
/// // idempotence turned off explicitly, as in Kafka.
/// assert!(ProducerConfig::builder().acks(Acks::Leader).build().is_err());
/// let relaxed = ProducerConfig::builder()
///     .acks(Acks::Leader)
///     .enable_idempotence(false)
///     .build()?;
/// assert_eq!(relaxed.acks(), Acks::Leader);
/// # Ok::<(), strata_client::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    bootstrap: Vec<String>,
    tls: Option<ClientTls>,
    credentials: Option<Credentials>,
    address_rewrites: std::collections::BTreeMap<String, String>,
    acks: Acks,
    enable_idempotence: bool,
    linger: Duration,
    batch_size: usize,
    buffer_memory: usize,
    max_block: Duration,
    retries: u32,
    retry_backoff: Duration,
    retry_backoff_max: Duration,
    request_timeout: Duration,
    delivery_timeout: Duration,
    connect_timeout: Duration,
    max_request_size: usize,
    max_in_flight_per_partition: usize,
    compression_type: CompressionType,
}

impl ProducerConfig {
    pub fn builder() -> ProducerConfigBuilder {
        ProducerConfigBuilder::default()
    }

    pub fn bootstrap(&self) -> &[String] {
        &self.bootstrap
    }
    pub fn acks(&self) -> Acks {
        self.acks
    }
    pub fn enable_idempotence(&self) -> bool {
        self.enable_idempotence
    }
    pub fn max_in_flight_per_partition(&self) -> usize {
        self.max_in_flight_per_partition
    }
    pub fn linger(&self) -> Duration {
        self.linger
    }
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
    pub fn buffer_memory(&self) -> usize {
        self.buffer_memory
    }
    pub fn max_block(&self) -> Duration {
        self.max_block
    }
    pub fn retries(&self) -> u32 {
        self.retries
    }
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }
    pub fn retry_backoff_max(&self) -> Duration {
        self.retry_backoff_max
    }
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    pub fn max_request_size(&self) -> usize {
        self.max_request_size
    }
    pub fn compression_type(&self) -> CompressionType {
        self.compression_type
    }

    pub(crate) fn connection_settings(&self) -> ConnectionSettings {
        ConnectionSettings {
            bootstrap: self.bootstrap.clone(),
            tls: self.tls.clone(),
            credentials: self.credentials.clone(),
            address_rewrites: self.address_rewrites.clone(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
        }
    }
}

/// Builds a [`ProducerConfig`]; every setting has Kafka's default unless noted.
#[derive(Clone, Debug)]
pub struct ProducerConfigBuilder {
    bootstrap: String,
    tls: Option<ClientTls>,
    credentials: Option<Credentials>,
    address_rewrites: std::collections::BTreeMap<String, String>,
    acks: Acks,
    enable_idempotence: bool,
    linger_ms: u64,
    batch_size: usize,
    buffer_memory: usize,
    max_block_ms: u64,
    retries: u32,
    retry_backoff_ms: u64,
    retry_backoff_max_ms: u64,
    request_timeout_ms: u64,
    delivery_timeout_ms: u64,
    connect_timeout_ms: u64,
    max_request_size: usize,
    max_in_flight_per_partition: usize,
    compression_type: CompressionType,
}

impl Default for ProducerConfigBuilder {
    fn default() -> Self {
        ProducerConfigBuilder {
            bootstrap: "127.0.0.1:7070".to_string(),
            tls: None,
            credentials: None,
            address_rewrites: std::collections::BTreeMap::new(),
            acks: Acks::All,
            // Kafka 3.x's default: a retry after a lost response must not write a batch twice.
            enable_idempotence: true,
            linger_ms: 5,
            // Larger than Kafka's 16 KiB: gRPC's per-request cost is higher than Kafka's framing,
            // so fewer, larger requests pay off.
            batch_size: 1 << 20,
            buffer_memory: 64 << 20,
            max_block_ms: 60_000,
            // As Kafka: retry until the delivery timeout, which is what bounds a record's life.
            retries: u32::MAX,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
            request_timeout_ms: 30_000,
            delivery_timeout_ms: 120_000,
            connect_timeout_ms: 10_000,
            max_request_size: 1 << 20,
            // Kafka's 5 is for 16 KiB batches; two 1 MiB batches already keep the link busy,
            // and five cost a fifth of the throughput with three brokers on two cores
            // (benches/README.md).
            max_in_flight_per_partition: 2,
            compression_type: CompressionType::None,
        }
    }
}

impl ProducerConfigBuilder {
    /// `host:port[,host:port...]` of brokers to learn the cluster from. Default `127.0.0.1:7070`.
    pub fn bootstrap(mut self, addresses: impl Into<String>) -> Self {
        self.bootstrap = addresses.into();
        self
    }
    /// Speak TLS to the brokers, trusting servers signed by the CA in `tls` and presenting its
    /// client certificate, if it has one, to listeners that ask. Default: plaintext.
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }
    /// Dial `reachable` wherever the cluster names the broker address `advertised`: for a
    /// client on a network where the brokers' advertised addresses do not lead to them (the
    /// web console inside the compose cluster, whose brokers advertise the host's ports).
    pub fn rewrite_address(
        mut self,
        advertised: impl Into<String>,
        reachable: impl Into<String>,
    ) -> Self {
        self.address_rewrites
            .insert(advertised.into(), reachable.into());
        self
    }

    /// Authenticate as this user on brokers that require it. Send credentials over TLS only.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }
    /// Default [`Acks::All`].
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }
    /// Stamps every batch with a producer id, epoch and per-partition sequence (obtained with
    /// `InitProducerId` on connect), so the leader writes a retried batch once and answers the
    /// retry with the original offset. Requires [`Acks::All`]. Default true, as in Kafka 3.x.
    pub fn enable_idempotence(mut self, enable: bool) -> Self {
        self.enable_idempotence = enable;
        self
    }
    /// How long a batch waits for more records before it is sent. Default 5 ms.
    pub fn linger_ms(mut self, linger_ms: u64) -> Self {
        self.linger_ms = linger_ms;
        self
    }
    /// A batch is sent once it reaches this many bytes. Default 1 MiB.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }
    /// Bytes of records the producer buffers before `send` waits. Default 64 MiB.
    pub fn buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }
    /// How long `send` waits for buffer memory or for topic metadata. Default 60 s.
    pub fn max_block_ms(mut self, max_block_ms: u64) -> Self {
        self.max_block_ms = max_block_ms;
        self
    }
    /// How often a batch is resent after a retriable error. Default unlimited: the delivery
    /// timeout bounds retries.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
    /// The first wait before a retry; it doubles up to `retry_backoff_max_ms`. Default 100 ms.
    pub fn retry_backoff_ms(mut self, retry_backoff_ms: u64) -> Self {
        self.retry_backoff_ms = retry_backoff_ms;
        self
    }
    /// Default 1 s.
    pub fn retry_backoff_max_ms(mut self, retry_backoff_max_ms: u64) -> Self {
        self.retry_backoff_max_ms = retry_backoff_max_ms;
        self
    }
    /// How long to wait for one request's response. Default 30 s.
    pub fn request_timeout_ms(mut self, request_timeout_ms: u64) -> Self {
        self.request_timeout_ms = request_timeout_ms;
        self
    }
    /// The longest a record may take from `send` to its acknowledgement, retries included; it
    /// must be at least `linger_ms + request_timeout_ms`. Default 120 s.
    pub fn delivery_timeout_ms(mut self, delivery_timeout_ms: u64) -> Self {
        self.delivery_timeout_ms = delivery_timeout_ms;
        self
    }
    /// How long to wait for a connection to a broker. Default 10 s.
    pub fn connect_timeout_ms(mut self, connect_timeout_ms: u64) -> Self {
        self.connect_timeout_ms = connect_timeout_ms;
        self
    }
    /// The largest request the producer sends; also the largest record it accepts. Default 1 MiB.
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// How many batches of one partition may await their acknowledgement at once (Kafka's
    /// `max.in.flight.requests.per.connection`; Strata's requests carry one batch per partition,
    /// so it is counted per partition). Default 2. At most 5: the leader remembers the last five
    /// batches of an idempotent producer, so it can recognise a retry of any of them.
    ///
    /// With idempotence, records of a partition are stored in `send` order even across retries.
    /// Without it, as in Kafka, a retried batch can land behind a newer batch that succeeded;
    /// set 1 to keep the order then, at the cost of one round trip per batch.
    pub fn max_in_flight_per_partition(mut self, batches: usize) -> Self {
        self.max_in_flight_per_partition = batches;
        self
    }

    /// The codec every batch's records are compressed with (Kafka's `compression.type`):
    /// none, gzip, snappy, lz4 or zstd. Parse Kafka's names with `"zstd".parse()`, or with
    /// [`compression_type_name`](Self::compression_type_name). `batch_size` and
    /// `max_request_size` count records before compression. Default none.
    pub fn compression_type(mut self, codec: CompressionType) -> Self {
        self.compression_type = codec;
        self
    }

    /// [`compression_type`](Self::compression_type) by Kafka's name for the codec (`"zstd"`),
    /// as in a properties file; an unknown name is a configuration error.
    pub fn compression_type_name(self, name: &str) -> Result<Self> {
        let codec = name
            .parse::<CompressionType>()
            .map_err(|error| Error::Config(error.to_string()))?;
        Ok(self.compression_type(codec))
    }

    pub fn build(self) -> Result<ProducerConfig> {
        let bootstrap = parse_bootstrap(&self.bootstrap)?;
        // Kafka's rule: with acks=1 a leader can acknowledge a batch and lose it on failover, and
        // with acks=0 no answer comes back at all, so sequence numbers could no longer tell a
        // retry from a new batch. Refused rather than silently downgraded.
        if self.enable_idempotence && self.acks != Acks::All {
            return Err(Error::Config(format!(
                "acks must be all when enable_idempotence is true (acks is {}); \
                 set enable_idempotence(false) to use acks 0 or 1",
                self.acks
            )));
        }
        if self.max_request_size <= BATCH_HEADER_BYTES {
            return Err(Error::Config(format!(
                "max_request_size {} leaves no room for a record after the {BATCH_HEADER_BYTES}-byte batch header",
                self.max_request_size
            )));
        }
        if self.buffer_memory == 0 {
            return Err(Error::Config("buffer_memory must be positive".to_string()));
        }
        if !(1..=MAX_IN_FLIGHT_PER_PARTITION).contains(&self.max_in_flight_per_partition) {
            return Err(Error::Config(format!(
                "max_in_flight_per_partition must be between 1 and {MAX_IN_FLIGHT_PER_PARTITION}, got {}",
                self.max_in_flight_per_partition
            )));
        }
        if u32::try_from(self.buffer_memory).is_err() {
            return Err(Error::Config(format!(
                "buffer_memory {} exceeds 4 GiB",
                self.buffer_memory
            )));
        }
        for (name, value) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
        ] {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be positive")));
            }
        }
        // Kafka's rule: a record must be allowed to linger and then wait for one response.
        if self.delivery_timeout_ms < self.linger_ms.saturating_add(self.request_timeout_ms) {
            return Err(Error::Config(format!(
                "delivery_timeout_ms ({}) must be at least linger_ms + request_timeout_ms ({})",
                self.delivery_timeout_ms,
                self.linger_ms.saturating_add(self.request_timeout_ms)
            )));
        }
        Ok(ProducerConfig {
            bootstrap,
            tls: self.tls,
            credentials: self.credentials,
            address_rewrites: self.address_rewrites,
            acks: self.acks,
            enable_idempotence: self.enable_idempotence,
            linger: Duration::from_millis(self.linger_ms),
            batch_size: self.batch_size,
            buffer_memory: self.buffer_memory,
            max_block: Duration::from_millis(self.max_block_ms),
            retries: self.retries,
            retry_backoff: Duration::from_millis(self.retry_backoff_ms),
            retry_backoff_max: Duration::from_millis(
                self.retry_backoff_max_ms.max(self.retry_backoff_ms),
            ),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            delivery_timeout: Duration::from_millis(self.delivery_timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            max_request_size: self.max_request_size,
            max_in_flight_per_partition: self.max_in_flight_per_partition,
            compression_type: self.compression_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_documentation() {
        let config = ProducerConfig::builder()
            .build()
            .expect("defaults are valid");
        assert_eq!(config.acks(), Acks::All);
        assert!(config.enable_idempotence());
        assert_eq!(config.linger(), Duration::from_millis(5));
        assert_eq!(config.batch_size(), 1 << 20);
        assert_eq!(config.buffer_memory(), 64 << 20);
        assert_eq!(config.max_block(), Duration::from_secs(60));
        assert_eq!(config.max_in_flight_per_partition(), 2);
        assert_eq!(config.bootstrap(), ["127.0.0.1:7070".to_string()]);
        assert_eq!(config.compression_type(), CompressionType::None);
    }

    #[test]
    fn compression_type_takes_kafkas_names() {
        for (name, codec) in [
            ("none", CompressionType::None),
            ("gzip", CompressionType::Gzip),
            ("snappy", CompressionType::Snappy),
            ("lz4", CompressionType::Lz4),
            ("ZSTD", CompressionType::Zstd),
        ] {
            let config = ProducerConfig::builder()
                .compression_type_name(name)
                .expect("a known codec")
                .build()
                .expect("valid");
            assert_eq!(config.compression_type(), codec);
        }
        match ProducerConfig::builder().compression_type_name("brotli") {
            Err(Error::Config(message)) => assert_eq!(
                message,
                "unknown compression type 'brotli'; expected one of none, gzip, snappy, lz4, zstd"
            ),
            other => panic!("brotli was accepted: {other:?}"),
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(matches!(
            ProducerConfig::builder().bootstrap("nohost").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            ProducerConfig::builder().max_request_size(10).build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            ProducerConfig::builder().buffer_memory(0).build(),
            Err(Error::Config(_))
        ));
        for batches in [0, 6] {
            assert!(matches!(
                ProducerConfig::builder()
                    .max_in_flight_per_partition(batches)
                    .build(),
                Err(Error::Config(_))
            ));
        }
        assert!(matches!(
            ProducerConfig::builder()
                .delivery_timeout_ms(1_000)
                .request_timeout_ms(5_000)
                .build(),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn idempotence_requires_acks_all_unless_turned_off() {
        for acks in [Acks::None, Acks::Leader] {
            match ProducerConfig::builder().acks(acks).build() {
                Err(Error::Config(message)) => {
                    assert!(message.contains("acks must be all"), "{message}");
                    assert!(message.contains("enable_idempotence(false)"), "{message}");
                }
                other => panic!("acks={acks} with idempotence was accepted: {other:?}"),
            }
            let config = ProducerConfig::builder()
                .acks(acks)
                .enable_idempotence(false)
                .build()
                .expect("acks 0 and 1 are fine without idempotence");
            assert_eq!(config.acks(), acks);
            assert!(!config.enable_idempotence());
        }
    }

    #[test]
    fn acks_parse_kafka_spellings() {
        assert_eq!("all".parse::<Acks>().expect("all"), Acks::All);
        assert_eq!("-1".parse::<Acks>().expect("-1"), Acks::All);
        assert_eq!("1".parse::<Acks>().expect("1"), Acks::Leader);
        assert_eq!("0".parse::<Acks>().expect("0"), Acks::None);
        assert!("2".parse::<Acks>().is_err());
        assert_eq!(Acks::All.as_i32(), -1);
        assert_eq!(Acks::None.to_string(), "0");
    }
}
