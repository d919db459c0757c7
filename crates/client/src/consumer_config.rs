//! The consumer's settings, named after Kafka's consumer configs.

use crate::credentials::Credentials;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use strata_tls::ClientTls;

use crate::cluster::{ConnectionSettings, parse_bootstrap};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// Where to start when a partition has no position, or its position is out of range (Kafka's
/// `auto.offset.reset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AutoOffsetReset {
    /// The log start offset: read everything still retained.
    Earliest,
    /// The high watermark: read only records produced from now on.
    #[default]
    Latest,
    /// Fail with the error instead of moving.
    None,
}

impl FromStr for AutoOffsetReset {
    type Err = Error;

    fn from_str(text: &str) -> Result<AutoOffsetReset> {
        match text.trim().to_ascii_lowercase().as_str() {
            "earliest" => Ok(AutoOffsetReset::Earliest),
            "latest" => Ok(AutoOffsetReset::Latest),
            "none" => Ok(AutoOffsetReset::None),
            other => Err(Error::Config(format!(
                "auto_offset_reset '{other}' is not one of earliest, latest, none"
            ))),
        }
    }
}

impl fmt::Display for AutoOffsetReset {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            AutoOffsetReset::Earliest => "earliest",
            AutoOffsetReset::Latest => "latest",
            AutoOffsetReset::None => "none",
        })
    }
}

/// Validated consumer settings. Build one with [`ConsumerConfig::builder`].
///
/// ```
/// use strata_client::{AutoOffsetReset, ConsumerConfig};
///
/// let config = ConsumerConfig::builder()
///     .bootstrap("127.0.0.1:7070")
///     .auto_offset_reset(AutoOffsetReset::Earliest)
///     .max_poll_records(100)
///     .build()?;
/// assert_eq!(config.max_poll_records(), 100);
/// # Ok::<(), strata_client::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    bootstrap: Vec<String>,
    tls: Option<ClientTls>,
    credentials: Option<Credentials>,
    address_rewrites: std::collections::BTreeMap<String, String>,
    max_poll_records: usize,
    fetch_min_bytes: i32,
    fetch_max_bytes: i32,
    fetch_max_wait: Duration,
    max_partition_fetch_bytes: i32,
    auto_offset_reset: AutoOffsetReset,
    request_timeout: Duration,
    connect_timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    retry_backoff_max: Duration,
    group: GroupSettings,
}

/// Consumer-group settings (Kafka's `group.id`, `group.instance.id`, `enable.auto.commit`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupSettings {
    pub group_id: Option<String>,
    pub group_instance_id: Option<String>,
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub session_timeout: Duration,
    pub max_poll_interval: Duration,
    pub assignor: Option<String>,
}

impl ConsumerConfig {
    pub fn builder() -> ConsumerConfigBuilder {
        ConsumerConfigBuilder::default()
    }

    pub fn bootstrap(&self) -> &[String] {
        &self.bootstrap
    }
    pub fn max_poll_records(&self) -> usize {
        self.max_poll_records
    }
    pub fn fetch_min_bytes(&self) -> i32 {
        self.fetch_min_bytes
    }
    pub fn fetch_max_bytes(&self) -> i32 {
        self.fetch_max_bytes
    }
    pub fn fetch_max_wait(&self) -> Duration {
        self.fetch_max_wait
    }
    pub fn max_partition_fetch_bytes(&self) -> i32 {
        self.max_partition_fetch_bytes
    }
    pub fn auto_offset_reset(&self) -> AutoOffsetReset {
        self.auto_offset_reset
    }
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    pub fn retries(&self) -> u32 {
        self.retries
    }
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }

    /// The consumer group this consumer commits to and, after `subscribe`, joins.
    pub fn group_id(&self) -> Option<&str> {
        self.group.group_id.as_deref()
    }
    pub fn enable_auto_commit(&self) -> bool {
        self.group.enable_auto_commit
    }
    pub(crate) fn group(&self) -> &GroupSettings {
        &self.group
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

    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            backoff_initial: self.retry_backoff,
            backoff_max: self.retry_backoff_max,
        }
    }
}

/// Builds a [`ConsumerConfig`]; every setting has Kafka's default unless noted.
#[derive(Clone, Debug)]
pub struct ConsumerConfigBuilder {
    bootstrap: String,
    tls: Option<ClientTls>,
    credentials: Option<Credentials>,
    address_rewrites: std::collections::BTreeMap<String, String>,
    max_poll_records: usize,
    fetch_min_bytes: i32,
    fetch_max_bytes: i32,
    fetch_max_wait_ms: u64,
    max_partition_fetch_bytes: i32,
    auto_offset_reset: AutoOffsetReset,
    request_timeout_ms: u64,
    connect_timeout_ms: u64,
    retries: u32,
    retry_backoff_ms: u64,
    retry_backoff_max_ms: u64,
    group_id: Option<String>,
    group_instance_id: Option<String>,
    enable_auto_commit: bool,
    auto_commit_interval_ms: u64,
    session_timeout_ms: u64,
    max_poll_interval_ms: u64,
    group_remote_assignor: Option<String>,
}

impl Default for ConsumerConfigBuilder {
    fn default() -> Self {
        ConsumerConfigBuilder {
            bootstrap: "127.0.0.1:7070".to_string(),
            tls: None,
            credentials: None,
            address_rewrites: std::collections::BTreeMap::new(),
            max_poll_records: 500,
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 << 20,
            fetch_max_wait_ms: 500,
            max_partition_fetch_bytes: 1 << 20,
            auto_offset_reset: AutoOffsetReset::Latest,
            request_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            retries: 5,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
            group_id: None,
            group_instance_id: None,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5_000,
            session_timeout_ms: 10_000,
            max_poll_interval_ms: 300_000,
            group_remote_assignor: None,
        }
    }
}

impl ConsumerConfigBuilder {
    /// The consumer group to join with `subscribe`, or to commit to from `assign`. Default none.
    pub fn group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// Static membership: a consumer restarted with the same instance id gets its partitions
    /// back without a rebalance, if it returns within the session timeout.
    pub fn group_instance_id(mut self, instance_id: impl Into<String>) -> Self {
        self.group_instance_id = Some(instance_id.into());
        self
    }

    /// Commit the positions of returned records every `auto_commit_interval_ms`, before a
    /// partition is revoked, and on `close` (at-least-once when records are processed before
    /// the next poll). Default true. Turn it off to commit yourself with `commit`.
    pub fn enable_auto_commit(mut self, enable: bool) -> Self {
        self.enable_auto_commit = enable;
        self
    }

    /// Default 5000.
    pub fn auto_commit_interval_ms(mut self, interval_ms: u64) -> Self {
        self.auto_commit_interval_ms = interval_ms;
        self
    }

    /// A member that does not heartbeat for this long is removed from the group and its
    /// partitions go to others. Default 10000.
    pub fn session_timeout_ms(mut self, session_timeout_ms: u64) -> Self {
        self.session_timeout_ms = session_timeout_ms;
        self
    }

    /// A member whose application does not call `poll` for this long leaves the group (it is
    /// stuck), and rejoins at its next poll. Default 300000.
    pub fn max_poll_interval_ms(mut self, max_poll_interval_ms: u64) -> Self {
        self.max_poll_interval_ms = max_poll_interval_ms;
        self
    }

    /// The coordinator's assignor for the group: `uniform` (sticky, the default) or `range`.
    pub fn group_remote_assignor(mut self, assignor: impl Into<String>) -> Self {
        self.group_remote_assignor = Some(assignor.into());
        self
    }

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
    /// The most records one `poll` returns; the rest stay buffered. Default 500.
    pub fn max_poll_records(mut self, records: usize) -> Self {
        self.max_poll_records = records;
        self
    }
    /// The broker answers a fetch once it has this many bytes (or `fetch_max_wait_ms` passed).
    /// Default 1.
    pub fn fetch_min_bytes(mut self, bytes: i32) -> Self {
        self.fetch_min_bytes = bytes;
        self
    }
    /// Upper bound of one fetch response (at least one batch is always returned). Default 50 MiB.
    pub fn fetch_max_bytes(mut self, bytes: i32) -> Self {
        self.fetch_max_bytes = bytes;
        self
    }
    /// How long the broker holds a fetch waiting for `fetch_min_bytes`. Default 500 ms.
    pub fn fetch_max_wait_ms(mut self, fetch_max_wait_ms: u64) -> Self {
        self.fetch_max_wait_ms = fetch_max_wait_ms;
        self
    }
    /// Upper bound of one partition's share of a fetch response. Default 1 MiB.
    pub fn max_partition_fetch_bytes(mut self, bytes: i32) -> Self {
        self.max_partition_fetch_bytes = bytes;
        self
    }
    /// Default [`AutoOffsetReset::Latest`].
    pub fn auto_offset_reset(mut self, reset: AutoOffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }
    /// How long to wait for a response beyond the fetch's own wait. Default 30 s.
    pub fn request_timeout_ms(mut self, request_timeout_ms: u64) -> Self {
        self.request_timeout_ms = request_timeout_ms;
        self
    }
    /// Default 10 s.
    pub fn connect_timeout_ms(mut self, connect_timeout_ms: u64) -> Self {
        self.connect_timeout_ms = connect_timeout_ms;
        self
    }
    /// How often offset lookups are retried after a retriable error. Default 5.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
    /// Default 100 ms, doubling up to `retry_backoff_max_ms`.
    pub fn retry_backoff_ms(mut self, retry_backoff_ms: u64) -> Self {
        self.retry_backoff_ms = retry_backoff_ms;
        self
    }
    /// Default 1 s.
    pub fn retry_backoff_max_ms(mut self, retry_backoff_max_ms: u64) -> Self {
        self.retry_backoff_max_ms = retry_backoff_max_ms;
        self
    }

    pub fn build(self) -> Result<ConsumerConfig> {
        let bootstrap = parse_bootstrap(&self.bootstrap)?;
        if self.max_poll_records == 0 {
            return Err(Error::Config(
                "max_poll_records must be positive".to_string(),
            ));
        }
        for (name, value) in [
            ("fetch_max_bytes", self.fetch_max_bytes),
            ("max_partition_fetch_bytes", self.max_partition_fetch_bytes),
        ] {
            if value <= 0 {
                return Err(Error::Config(format!(
                    "{name} must be positive, not {value}"
                )));
            }
        }
        if self.fetch_min_bytes < 0 {
            return Err(Error::Config(format!(
                "fetch_min_bytes must not be negative, not {}",
                self.fetch_min_bytes
            )));
        }
        if i32::try_from(self.fetch_max_wait_ms).is_err() {
            return Err(Error::Config(format!(
                "fetch_max_wait_ms {} is too large",
                self.fetch_max_wait_ms
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
        if let Some(group_id) = &self.group_id
            && (group_id.is_empty() || group_id.len() > 255)
        {
            return Err(Error::Config(
                "group_id must be 1 to 255 bytes long".to_string(),
            ));
        }
        for (name, value) in [
            ("auto_commit_interval_ms", self.auto_commit_interval_ms),
            ("session_timeout_ms", self.session_timeout_ms),
            ("max_poll_interval_ms", self.max_poll_interval_ms),
        ] {
            if value == 0 || i32::try_from(value).is_err() {
                return Err(Error::Config(format!(
                    "{name} must be between 1 and {}, not {value}",
                    i32::MAX
                )));
            }
        }
        if let Some(assignor) = &self.group_remote_assignor
            && !["uniform", "range"].contains(&assignor.as_str())
        {
            return Err(Error::Config(format!(
                "group_remote_assignor '{assignor}' is not one of uniform, range"
            )));
        }
        Ok(ConsumerConfig {
            tls: self.tls,
            credentials: self.credentials,
            address_rewrites: self.address_rewrites,
            group: GroupSettings {
                group_id: self.group_id,
                group_instance_id: self.group_instance_id,
                enable_auto_commit: self.enable_auto_commit,
                auto_commit_interval: Duration::from_millis(self.auto_commit_interval_ms),
                session_timeout: Duration::from_millis(self.session_timeout_ms),
                max_poll_interval: Duration::from_millis(self.max_poll_interval_ms),
                assignor: self.group_remote_assignor,
            },
            bootstrap,
            max_poll_records: self.max_poll_records,
            fetch_min_bytes: self.fetch_min_bytes,
            fetch_max_bytes: self.fetch_max_bytes,
            fetch_max_wait: Duration::from_millis(self.fetch_max_wait_ms),
            max_partition_fetch_bytes: self.max_partition_fetch_bytes,
            auto_offset_reset: self.auto_offset_reset,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            retries: self.retries,
            retry_backoff: Duration::from_millis(self.retry_backoff_ms),
            retry_backoff_max: Duration::from_millis(
                self.retry_backoff_max_ms.max(self.retry_backoff_ms),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_documentation() {
        let config = ConsumerConfig::builder()
            .build()
            .expect("defaults are valid");
        assert_eq!(config.max_poll_records(), 500);
        assert_eq!(config.fetch_max_wait(), Duration::from_millis(500));
        assert_eq!(config.fetch_min_bytes(), 1);
        assert_eq!(config.auto_offset_reset(), AutoOffsetReset::Latest);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(
            ConsumerConfig::builder()
                .max_poll_records(0)
                .build()
                .is_err()
        );
        assert!(
            ConsumerConfig::builder()
                .fetch_max_bytes(0)
                .build()
                .is_err()
        );
        assert!(ConsumerConfig::builder().bootstrap("").build().is_err());
        assert!("sometimes".parse::<AutoOffsetReset>().is_err());
        assert_eq!(
            "Earliest".parse::<AutoOffsetReset>().expect("parses"),
            AutoOffsetReset::Earliest
        );
    }
}
