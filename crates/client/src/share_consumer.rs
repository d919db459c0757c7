//! The share consumer: a work-queue reader (Kafka's share groups, KIP-932). Any number of
//! members of a share group read the same partitions; each record is handed to one member at a
//! time, which acknowledges it when done, releases it for another delivery, or rejects it to the
//! dead-letter topic (`<topic>.dlq`). A record that is not acknowledged within the visibility
//! timeout (the member crashed or hung) is delivered again to someone; after
//! `max_delivery_attempts` deliveries it is dead-lettered instead.
//!
//! Acknowledgements are queued and sent with the next `poll` (or at once with `commit`), so a
//! worker pays no round trip per record.

use crate::credentials::Credentials;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use strata_tls::ClientTls;

use strata_common::{TopicPartition, validate_topic_name};

use crate::cluster::{Cluster, ConnectionSettings, parse_bootstrap};
use crate::consumer_record::ConsumerRecord;
use crate::coordinator::CoordinatorLocator;
use crate::decode::decode_fetched;
use crate::error::{Error, Result};
use crate::grpc::{self, ShareAckKind, ShareAckRequest, ShareSettings};

/// A record delivered to a share consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareRecord {
    pub record: ConsumerRecord,
    /// 1 on the first delivery; more when earlier deliveries were released or timed out.
    pub delivery_count: u32,
}

impl std::ops::Deref for ShareRecord {
    type Target = ConsumerRecord;

    fn deref(&self) -> &ConsumerRecord {
        &self.record
    }
}

/// Settings of a [`ShareConsumer`].
#[derive(Clone, Debug)]
pub struct ShareConsumerConfig {
    bootstrap: String,
    tls: Option<ClientTls>,
    credentials: Option<Credentials>,
    address_rewrites: std::collections::BTreeMap<String, String>,
    group_id: String,
    max_in_flight: u32,
    visibility_timeout_ms: u32,
    max_delivery_attempts: u32,
    max_poll_records: u32,
    fetch_max_wait_ms: u32,
    request_timeout_ms: u64,
}

impl ShareConsumerConfig {
    /// `group_id` names the share group; bootstrap defaults to `127.0.0.1:7070`.
    pub fn new(group_id: impl Into<String>) -> ShareConsumerConfig {
        ShareConsumerConfig {
            bootstrap: "127.0.0.1:7070".to_string(),
            tls: None,
            credentials: None,
            address_rewrites: std::collections::BTreeMap::new(),
            group_id: group_id.into(),
            max_in_flight: 500,
            visibility_timeout_ms: 30_000,
            max_delivery_attempts: 0,
            max_poll_records: 500,
            fetch_max_wait_ms: 500,
            request_timeout_ms: 30_000,
        }
    }

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

    /// Prefetch: at most this many unacknowledged records held at once (RabbitMQ's
    /// `basic.qos`); the broker hands out no more until some are settled. Default 500.
    pub fn max_in_flight(mut self, records: u32) -> Self {
        self.max_in_flight = records;
        self
    }

    /// How long a delivered record stays with this consumer before it is redelivered to
    /// another. Default 30000.
    pub fn visibility_timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.visibility_timeout_ms = timeout_ms;
        self
    }

    /// Deliveries before a record goes to the dead-letter topic. Default: the broker's (5).
    pub fn max_delivery_attempts(mut self, attempts: u32) -> Self {
        self.max_delivery_attempts = attempts;
        self
    }

    /// Default 500.
    pub fn max_poll_records(mut self, records: u32) -> Self {
        self.max_poll_records = records;
        self
    }

    /// How long the broker holds a poll when nothing is available. Default 500.
    pub fn fetch_max_wait_ms(mut self, wait_ms: u32) -> Self {
        self.fetch_max_wait_ms = wait_ms;
        self
    }

    pub fn request_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.request_timeout_ms = timeout_ms;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.group_id.is_empty() || self.group_id.len() > 255 {
            return Err(Error::Config(
                "group_id must be 1 to 255 bytes long".to_string(),
            ));
        }
        if self.max_in_flight == 0 || self.max_poll_records == 0 {
            return Err(Error::Config(
                "max_in_flight and max_poll_records must be positive".to_string(),
            ));
        }
        if !(100..=43_200_000).contains(&self.visibility_timeout_ms) {
            return Err(Error::Config(format!(
                "visibility_timeout_ms {} is outside [100, 43200000]",
                self.visibility_timeout_ms
            )));
        }
        if self.request_timeout_ms == 0 {
            return Err(Error::Config(
                "request_timeout_ms must be positive".to_string(),
            ));
        }
        Ok(())
    }
}

/// A member of a share group.
///
/// ```no_run
/// use std::time::Duration;
/// use strata_client::{ShareConsumer, ShareConsumerConfig};
///
/// # async fn example() -> strata_client::Result<()> {
/// let config = ShareConsumerConfig::new("emails").bootstrap("127.0.0.1:7070").max_in_flight(50);
/// let mut worker = ShareConsumer::connect(config).await?;
/// worker.subscribe(["jobs"])?;
/// loop {
///     for job in worker.poll(Duration::from_secs(1)).await? {
///         match std::str::from_utf8(job.value.as_deref().unwrap_or_default()) {
///             Ok(_text) => worker.ack(&job),                       // done
///             Err(_) => worker.reject(&job, "not UTF-8"),          // poison: to jobs.dlq
///         }
///     }
/// }
/// # }
/// ```
pub struct ShareConsumer {
    config: ShareConsumerConfig,
    locator: Arc<CoordinatorLocator>,
    member_id: String,
    topics: Vec<String>,
    pending: Vec<ShareAckRequest>,
    /// Delivered records not settled yet.
    held: BTreeSet<(TopicPartition, i64)>,
    /// Failed acknowledgements reported by the broker, for `take_ack_errors`.
    ack_errors: Vec<(TopicPartition, i64, Error)>,
}

impl std::fmt::Debug for ShareConsumer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ShareConsumer")
            .field("group_id", &self.config.group_id)
            .field("member_id", &self.member_id)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl ShareConsumer {
    pub async fn connect(config: ShareConsumerConfig) -> Result<ShareConsumer> {
        config.validate()?;
        let request_timeout = Duration::from_millis(config.request_timeout_ms);
        let cluster = Cluster::connect(ConnectionSettings {
            bootstrap: parse_bootstrap(&config.bootstrap)?,
            tls: config.tls.clone(),
            credentials: config.credentials.clone(),
            address_rewrites: config.address_rewrites.clone(),
            connect_timeout: Duration::from_secs(10),
            request_timeout,
        })
        .await?;
        let locator = Arc::new(CoordinatorLocator::new(
            cluster,
            &config.group_id,
            request_timeout,
        ));
        Ok(ShareConsumer {
            locator,
            member_id: format!("{:032x}", rand_u128()),
            config,
            topics: Vec::new(),
            pending: Vec::new(),
            held: BTreeSet::new(),
            ack_errors: Vec::new(),
        })
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn subscribe<I, T>(&mut self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        if topics.is_empty() {
            return Err(Error::InvalidInput(
                "subscribe needs at least one topic".to_string(),
            ));
        }
        for topic in &topics {
            validate_topic_name(topic).map_err(Error::InvalidInput)?;
        }
        self.topics = topics;
        Ok(())
    }

    fn settings(&self) -> ShareSettings {
        ShareSettings {
            visibility_timeout_ms: self.config.visibility_timeout_ms as i32,
            max_in_flight: self.config.max_in_flight as i32,
            max_delivery_attempts: self.config.max_delivery_attempts as i32,
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    /// Sends queued acknowledgements and returns newly acquired records, waiting up to
    /// `timeout` for some. Records still held count against `max_in_flight`.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ShareRecord>> {
        if self.topics.is_empty() {
            return Err(Error::InvalidInput(
                "not subscribed; call subscribe first".to_string(),
            ));
        }
        let max_wait = timeout.min(Duration::from_millis(u64::from(
            self.config.fetch_max_wait_ms,
        )));
        let acks = std::mem::take(&mut self.pending);
        let (group_id, member_id, topics) = (
            self.config.group_id.clone(),
            self.member_id.clone(),
            self.topics.clone(),
        );
        let (settings, request_timeout) = (self.settings(), self.request_timeout());
        let max_records = self.config.max_poll_records as i32;
        let answer = self
            .locator
            .call(request_timeout, |connection| {
                let (group_id, member_id, topics, acks) = (&group_id, &member_id, &topics, &acks);
                async move {
                    grpc::share_fetch(
                        &connection,
                        group_id,
                        member_id,
                        topics,
                        max_records,
                        max_wait,
                        settings,
                        acks,
                        request_timeout,
                    )
                    .await
                }
            })
            .await;
        let (partitions, outcomes) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                // Nothing was applied: keep the acknowledgements for the next attempt.
                self.pending = acks;
                return Err(error);
            }
        };
        self.record_outcomes(outcomes);
        let mut delivered = Vec::new();
        for (topic_partition, bytes, acquired) in partitions {
            let Some(first) = acquired.iter().map(|(offset, _)| *offset).min() else {
                continue;
            };
            let counts: HashMap<i64, u32> = acquired.into_iter().collect();
            let (records, _) = decode_fetched(&topic_partition, first, bytes)?;
            for record in records {
                if let Some(&delivery_count) = counts.get(&record.offset) {
                    self.held.insert((topic_partition.clone(), record.offset));
                    delivered.push(ShareRecord {
                        record,
                        delivery_count,
                    });
                }
            }
        }
        Ok(delivered)
    }

    fn record_outcomes(&mut self, outcomes: Vec<(TopicPartition, i64, Result<()>)>) {
        for (topic_partition, offset, outcome) in outcomes {
            if let Err(error) = outcome {
                self.ack_errors.push((topic_partition, offset, error));
            }
        }
    }

    fn settle(&mut self, record: &ShareRecord, kind: ShareAckKind, delay: Duration, reason: &str) {
        let topic_partition = record.topic_partition();
        self.held.remove(&(topic_partition.clone(), record.offset));
        self.pending.push(ShareAckRequest {
            topic_partition,
            offset: record.offset,
            kind,
            delay_ms: i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
            reason: reason.to_string(),
        });
    }

    /// Done: the record is never delivered again.
    pub fn ack(&mut self, record: &ShareRecord) {
        self.settle(record, ShareAckKind::Accept, Duration::ZERO, "");
    }

    /// Give the record back for another delivery now (nack).
    pub fn release(&mut self, record: &ShareRecord, reason: &str) {
        self.settle(record, ShareAckKind::Release, Duration::ZERO, reason);
    }

    /// Give the record back for another delivery after `delay` (a retry with backoff).
    pub fn release_after(&mut self, record: &ShareRecord, delay: Duration, reason: &str) {
        self.settle(record, ShareAckKind::Release, delay, reason);
    }

    /// Release after an exponential backoff by delivery count: `base * 2^(delivery_count-1)`,
    /// at most `max`.
    pub fn release_with_backoff(
        &mut self,
        record: &ShareRecord,
        base: Duration,
        max: Duration,
        reason: &str,
    ) {
        let factor = 1u32 << record.delivery_count.saturating_sub(1).min(20);
        self.release_after(record, base.saturating_mul(factor).min(max), reason);
    }

    /// Poison: straight to the dead-letter topic, with `reason` in its headers.
    pub fn reject(&mut self, record: &ShareRecord, reason: &str) {
        self.settle(record, ShareAckKind::Reject, Duration::ZERO, reason);
    }

    /// Still working on it: the lock is renewed for another visibility timeout, now.
    pub async fn extend(&mut self, record: &ShareRecord) -> Result<()> {
        let ack = ShareAckRequest {
            topic_partition: record.topic_partition(),
            offset: record.offset,
            kind: ShareAckKind::Renew,
            delay_ms: 0,
            reason: String::new(),
        };
        let outcomes = self.send_acks(vec![ack], false).await?;
        for (_, _, outcome) in outcomes {
            outcome?;
        }
        Ok(())
    }

    /// Sends queued acknowledgements now. Fails if the request fails (the acknowledgements
    /// stay queued for the next attempt), or with the first acknowledgement the broker refused
    /// (for example a record whose lock expired and went to another member); every refused
    /// one is listed by `take_ack_errors`.
    pub async fn commit(&mut self) -> Result<()> {
        let acks = std::mem::take(&mut self.pending);
        if !acks.is_empty() {
            let outcomes = match self.send_acks(acks.clone(), false).await {
                Ok(outcomes) => outcomes,
                Err(error) => {
                    self.pending = acks;
                    return Err(error);
                }
            };
            self.record_outcomes(outcomes);
        }
        match self.ack_errors.first() {
            Some((_, _, error)) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Acknowledgements the broker refused since the last call (`INVALID_RECORD_STATE`: the
    /// lock had expired, and the record was or will be delivered again).
    pub fn take_ack_errors(&mut self) -> Vec<(TopicPartition, i64, Error)> {
        std::mem::take(&mut self.ack_errors)
    }

    /// Records delivered and not settled yet.
    pub fn in_flight(&self) -> usize {
        self.held.len()
    }

    async fn send_acks(
        &self,
        acks: Vec<ShareAckRequest>,
        leave: bool,
    ) -> Result<Vec<(TopicPartition, i64, Result<()>)>> {
        let (group_id, member_id) = (self.config.group_id.clone(), self.member_id.clone());
        let (settings, timeout) = (self.settings(), self.request_timeout());
        self.locator
            .call(timeout, |connection| {
                let (group_id, member_id, acks) = (&group_id, &member_id, &acks);
                async move {
                    grpc::share_acknowledge(
                        &connection,
                        group_id,
                        member_id,
                        acks,
                        settings,
                        leave,
                        timeout,
                    )
                    .await
                }
            })
            .await
    }

    /// Sends queued acknowledgements and leaves: records still held are released to other
    /// members at once instead of after the visibility timeout.
    pub async fn close(mut self) -> Result<()> {
        let acks = std::mem::take(&mut self.pending);
        let outcomes = self.send_acks(acks, true).await?;
        self.record_outcomes(outcomes);
        match self.ack_errors.drain(..).next() {
            Some((_, _, error)) => Err(error),
            None => Ok(()),
        }
    }
}

/// 128 random bits for a member id, from the OS-seeded hasher (no extra dependency).
fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    (u128::from(half()) << 64) | u128::from(half())
}
