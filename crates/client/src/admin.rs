//! Topic, consumer-group and cluster administration.

use crate::credentials::Credentials;
use std::collections::BTreeMap;
use std::time::Duration;
use strata_auth::{AclBinding, AclFilter};
use strata_tls::ClientTls;

use strata_common::{ErrorCode, TopicPartition};

use crate::cluster::{Cluster, ConnectionSettings, parse_bootstrap, unknown_topic};
use crate::coordinator::CoordinatorLocator;
use crate::descriptions::{
    ClusterDescription, ConfigEntry, GroupDescription, GroupListing, NewTopic, OffsetAndMetadata,
    ShareGroupDescription, TopicDescription, UserDescription,
};
use crate::error::{Error, Result};
use crate::grpc::{self, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::retry::{Backoff, RetryPolicy, with_retries};

/// What [`Admin::list_offsets`] looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset: the first record still retained.
    Earliest,
    /// The high watermark: the offset the next record will get.
    Latest,
    /// The first record whose timestamp (ms since the Unix epoch) is at or after this one.
    Timestamp(i64),
}

/// Where [`Admin::reset_group_offsets`] moves a group (Kafka's `--reset-offsets` options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    ToEarliest,
    ToLatest,
    /// Clamped into the partition's retained range.
    ToOffset(i64),
    /// The first record at or after this time (ms since the Unix epoch), or the end.
    ToTimestamp(i64),
    /// As `ToTimestamp`, this long before now.
    ByDuration(Duration),
}

/// One partition's position in a group, from [`Admin::group_lag`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic_partition: TopicPartition,
    pub committed: Option<i64>,
    pub log_end_offset: Option<i64>,
    /// Records the group has not consumed yet (the whole log when it never committed).
    pub lag: Option<i64>,
    pub member_id: Option<String>,
}

/// A partition's log as its leader reports it, from [`Admin::describe_partition_logs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionLog {
    /// The first offset still stored.
    pub log_start_offset: i64,
    /// Where consumers read up to: every record below it is on every in-sync replica.
    pub high_watermark: i64,
    /// Bytes of the leader's log: the records in its segment files, indexes not counted (what
    /// Kafka's DescribeLogDirs reports). `None` from a broker too old to say.
    pub size_bytes: Option<u64>,
}

/// An offset found by [`Admin::list_offsets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    pub offset: i64,
    /// The record's timestamp, for [`OffsetSpec::Timestamp`] queries.
    pub timestamp: Option<i64>,
}

/// Validated admin client settings. Build one with [`AdminConfig::builder`].
#[derive(Clone, Debug)]
pub struct AdminConfig {
    settings: ConnectionSettings,
    retry_policy: RetryPolicy,
    api_timeout: Duration,
}

impl AdminConfig {
    pub fn builder() -> AdminConfigBuilder {
        AdminConfigBuilder::default()
    }

    pub fn bootstrap(&self) -> &[String] {
        &self.settings.bootstrap
    }

    pub fn request_timeout(&self) -> Duration {
        self.settings.request_timeout
    }

    pub fn api_timeout(&self) -> Duration {
        self.api_timeout
    }
}

/// Builds an [`AdminConfig`].
///
/// ```
/// use strata_client::AdminConfig;
///
/// let config = AdminConfig::builder().bootstrap("127.0.0.1:7070").request_timeout_ms(5_000).build()?;
/// assert_eq!(config.bootstrap(), ["127.0.0.1:7070".to_string()]);
/// # Ok::<(), strata_client::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AdminConfigBuilder {
    bootstrap: String,
    tls: Option<ClientTls>,
    credentials: Option<Credentials>,
    address_rewrites: std::collections::BTreeMap<String, String>,
    request_timeout_ms: u64,
    api_timeout_ms: u64,
    connect_timeout_ms: u64,
    retries: u32,
    retry_backoff_ms: u64,
    retry_backoff_max_ms: u64,
}

impl Default for AdminConfigBuilder {
    fn default() -> Self {
        AdminConfigBuilder {
            bootstrap: "127.0.0.1:7070".to_string(),
            tls: None,
            credentials: None,
            address_rewrites: std::collections::BTreeMap::new(),
            request_timeout_ms: 30_000,
            api_timeout_ms: 60_000,
            connect_timeout_ms: 10_000,
            retries: 5,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
        }
    }
}

impl AdminConfigBuilder {
    /// `host:port[,host:port...]`. Default `127.0.0.1:7070`.
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
    /// Default 30 s.
    pub fn request_timeout_ms(mut self, request_timeout_ms: u64) -> Self {
        self.request_timeout_ms = request_timeout_ms;
        self
    }
    /// How long one admin call may take in all, retries included (Kafka's
    /// `default.api.timeout.ms`): no attempt starts after it and none runs past it, so a cluster
    /// that keeps failing or never answers is reported then, with the last error. Default 60 s.
    pub fn api_timeout_ms(mut self, api_timeout_ms: u64) -> Self {
        self.api_timeout_ms = api_timeout_ms;
        self
    }
    /// Default 10 s.
    pub fn connect_timeout_ms(mut self, connect_timeout_ms: u64) -> Self {
        self.connect_timeout_ms = connect_timeout_ms;
        self
    }
    /// How often a request is retried after a retriable error. Default 5.
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

    pub fn build(self) -> Result<AdminConfig> {
        let bootstrap = parse_bootstrap(&self.bootstrap)?;
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 || self.api_timeout_ms == 0
        {
            return Err(Error::Config(
                "request_timeout_ms, api_timeout_ms and connect_timeout_ms must be positive"
                    .to_string(),
            ));
        }
        Ok(AdminConfig {
            settings: ConnectionSettings {
                bootstrap,
                tls: self.tls,
                credentials: self.credentials,
                address_rewrites: self.address_rewrites,
                connect_timeout: Duration::from_millis(self.connect_timeout_ms),
                request_timeout: Duration::from_millis(self.request_timeout_ms),
            },
            retry_policy: RetryPolicy {
                retries: self.retries,
                backoff_initial: Duration::from_millis(self.retry_backoff_ms),
                backoff_max: Duration::from_millis(
                    self.retry_backoff_max_ms.max(self.retry_backoff_ms),
                ),
            },
            api_timeout: Duration::from_millis(self.api_timeout_ms),
        })
    }
}

/// Manages topics and inspects the cluster.
///
/// ```no_run
/// use strata_client::{Admin, AdminConfig, NewTopic};
///
/// # async fn example() -> strata_client::Result<()> {
/// let admin = Admin::connect(AdminConfig::builder().bootstrap("127.0.0.1:7070").build()?).await?;
/// admin.create_topic(NewTopic::new("orders", 3, 1)).await?;
/// let topic = admin.describe_topic("orders").await?;
/// for partition in &topic.partitions {
///     println!("partition {} led by {:?}, in sync: {:?}", partition.partition, partition.leader, partition.isr);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    config: AdminConfig,
    cluster: std::sync::Arc<Cluster>,
}

/// Admin requests are retried on transport errors and leadership changes, but not when the
/// topic does not exist: that answer is final for an admin request.
fn admin_should_retry(error: &Error) -> bool {
    error.is_retriable() && error.code() != Some(ErrorCode::UnknownTopicOrPartition)
}

/// A change (create, delete, alter) is committed by the controller quorum before the broker
/// answers, and without a majority of the voters it waits until the deadline: a timeout then
/// says so, rather than leave the node that answered everything else to take the blame.
fn awaiting_the_quorum(error: Error, change: &str) -> Error {
    match error {
        Error::Timeout { operation, elapsed } => Error::Timeout {
            operation: format!(
                "{operation} to {change}: the controller quorum has not committed it (are a \
                 majority of the voters up and reachable?)"
            ),
            elapsed,
        },
        other => other,
    }
}

impl Admin {
    /// Fetches metadata from the bootstrap brokers, so an unreachable cluster fails here.
    pub async fn connect(config: AdminConfig) -> Result<Admin> {
        let cluster = Cluster::connect(config.settings.clone()).await?;
        Ok(Admin { config, cluster })
    }

    /// When a call starting now must have finished.
    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.config.api_timeout
    }

    /// Runs an admin RPC against the controller (or any broker), with retries until the API
    /// timeout; each attempt gets the request timeout or what is left, whichever is shorter.
    async fn on_any_broker<T, Call, Attempt>(&self, call: Call) -> Result<T>
    where
        Call: Fn(grpc::Connection, Duration) -> Attempt,
        Attempt: std::future::Future<Output = Result<T>>,
    {
        let deadline = self.deadline();
        let cluster = &self.cluster;
        let last_address = std::sync::Mutex::new(String::new());
        let first_attempt = std::sync::atomic::AtomicBool::new(true);
        with_retries(
            self.config.retry_policy,
            deadline,
            admin_should_retry,
            |error| {
                let address = last_address
                    .lock()
                    .map(|address| address.clone())
                    .unwrap_or_default();
                cluster.on_error(error, &address, std::iter::empty());
            },
            || async {
                let connection = cluster.any_connection().await?;
                if let Ok(mut address) = last_address.lock() {
                    address.clone_from(&connection.address);
                }
                // The first attempt gets the whole timeout: what little went into connecting
                // does not shave milliseconds off the number the timeout error reports.
                let left = match first_attempt.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    true => self.config.api_timeout,
                    false => deadline.saturating_duration_since(tokio::time::Instant::now()),
                };
                call(connection, self.config.settings.request_timeout.min(left)).await
            },
        )
        .await
    }

    /// Creates a topic, then waits (up to the request timeout) until metadata shows a leader
    /// for every partition, so producers and consumers can use it right away.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<()> {
        let topic_ref = &topic;
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let created = self
            .on_any_broker(|connection, timeout| {
                attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move { grpc::create_topic(&connection, topic_ref, timeout).await }
            })
            .await;
        let retried = attempts.load(std::sync::atomic::Ordering::Relaxed) > 1;
        match created {
            // An attempt that failed retriably (a timeout, a controller leader change) may still
            // have created the topic; its retry then finds it. The topic this call asked for is
            // there, so the call succeeded, unless the one found is not that topic.
            Err(error)
                if retried
                    && error.code() == Some(strata_common::ErrorCode::TopicAlreadyExists)
                    && self.describe_topic(&topic.name).await.is_ok_and(|found| {
                        found.partitions.len() == usize::try_from(topic.partitions).unwrap_or(0)
                    }) => {}
            created => created.map_err(|error| {
                awaiting_the_quorum(error, &format!("create topic '{}'", topic.name))
            })?,
        }
        self.wait_for_leaders(&topic.name).await;
        Ok(())
    }

    async fn wait_for_leaders(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + self.config.settings.request_timeout;
        let policy = self.config.retry_policy;
        let mut backoff = Backoff::new(policy.backoff_initial, policy.backoff_max);
        // Bounded by the deadline.
        loop {
            if let Ok(snapshot) = self.cluster.refresh(&[name.to_string()]).await
                && let Some(Ok(description)) = snapshot.topic(name)
                && !description.partitions.is_empty()
                && description
                    .partitions
                    .iter()
                    .all(|partition| partition.leader.is_some())
            {
                return;
            }
            let delay = backoff.next_delay();
            if tokio::time::Instant::now() + delay >= deadline {
                tracing::debug!(
                    topic = name,
                    "created, but not every partition has a leader yet"
                );
                return;
            }
            tokio::time::sleep(delay).await;
        }
    }

    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.on_any_broker(|connection, timeout| async move {
            grpc::delete_topic(&connection, name, timeout).await
        })
        .await
        .map_err(|error| awaiting_the_quorum(error, &format!("delete topic '{name}'")))?;
        self.cluster.mark_stale();
        Ok(())
    }

    /// The names of every topic, sorted.
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let snapshot = self.refresh_with_retries(&[]).await?;
        Ok(snapshot
            .topics
            .iter()
            .filter(|(_, description)| description.is_ok())
            .map(|(name, _)| name.clone())
            .collect())
    }

    /// Every topic with its partitions, sorted by name, from one Metadata request.
    pub async fn describe_topics(&self) -> Result<Vec<TopicDescription>> {
        let snapshot = self.refresh_with_retries(&[]).await?;
        Ok(snapshot
            .topics
            .values()
            .filter_map(|description| description.as_ref().ok().cloned())
            .collect())
    }

    /// A topic's partitions with their leader, replicas and in-sync replicas.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let snapshot = self.refresh_with_retries(&[name.to_string()]).await?;
        match snapshot.topic(name) {
            Some(description) => description.clone(),
            None => Err(unknown_topic(name)),
        }
    }

    /// The topic's configs, sorted by name, defaults included.
    pub async fn describe_configs(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        self.on_any_broker(|connection, timeout| async move {
            grpc::describe_configs(&connection, name, timeout).await
        })
        .await
    }

    /// Sets the configs in `set` and returns those in `delete` to the broker default.
    pub async fn alter_configs(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<()> {
        self.on_any_broker(|connection, timeout| async move {
            grpc::alter_configs(&connection, name, set, delete, timeout).await
        })
        .await
        .map_err(|error| awaiting_the_quorum(error, &format!("alter topic '{name}'")))
    }

    /// Creates `user`, or changes its password, with a credential for each of `mechanisms`. The
    /// password is salted and iterated here ([`strata_auth::MIN_ITERATIONS`] rounds, as Kafka's
    /// tools default to 4096); only the result travels.
    pub async fn upsert_user(
        &self,
        user: &str,
        password: &str,
        mechanisms: &[strata_auth::Mechanism],
    ) -> Result<()> {
        let mut upsertions = Vec::new();
        for &mechanism in mechanisms {
            let (salt, salted) =
                strata_auth::salt_password(mechanism, password, strata_auth::MIN_ITERATIONS)
                    .map_err(|error| Error::Config(error.to_string()))?;
            upsertions.push((mechanism, strata_auth::MIN_ITERATIONS, salt, salted));
        }
        self.on_any_broker(|connection, timeout| {
            let upsertions = upsertions.clone();
            async move {
                grpc::alter_user(&connection, user, upsertions, Vec::new(), timeout).await
            }
        })
        .await
        .map_err(|error| awaiting_the_quorum(error, &format!("set user '{user}'")))
    }

    /// Deletes `user`: every credential it has.
    pub async fn delete_user(&self, user: &str) -> Result<()> {
        let described = self
            .on_any_broker(|connection, timeout| async move {
                grpc::describe_users(&connection, vec![user.to_string()], timeout).await
            })
            .await?;
        let mechanisms: Vec<strata_auth::Mechanism> = described
            .into_iter()
            .flat_map(|user| user.mechanisms.into_iter().map(|(mechanism, _)| mechanism))
            .collect();
        self.on_any_broker(|connection, timeout| {
            let mechanisms = mechanisms.clone();
            async move { grpc::alter_user(&connection, user, Vec::new(), mechanisms, timeout).await }
        })
        .await
        .map_err(|error| awaiting_the_quorum(error, &format!("delete user '{user}'")))
    }

    /// Every user, with its mechanisms.
    pub async fn list_users(&self) -> Result<Vec<UserDescription>> {
        self.on_any_broker(|connection, timeout| async move {
            grpc::describe_users(&connection, Vec::new(), timeout).await
        })
        .await
    }

    /// Adds ACL bindings (Kafka's `createAcls`); adding one that exists changes nothing. Each
    /// is checked here first, so an invalid binding fails the call before anything is sent.
    /// The broker stores the bindings it accepts even when it refuses another, and the first
    /// refusal is the error, naming its binding: `CLUSTER_AUTHORIZATION_FAILED` when the caller
    /// may not manage ACLs (Alter on the cluster).
    pub async fn create_acls(&self, bindings: Vec<AclBinding>) -> Result<()> {
        for binding in &bindings {
            binding
                .validate()
                .map_err(|invalid| Error::InvalidInput(invalid.0))?;
        }
        let bindings = &bindings;
        self.on_any_broker(|connection, timeout| async move {
            grpc::create_acls(&connection, bindings, timeout).await
        })
        .await
        .map_err(|error| awaiting_the_quorum(error, "create ACLs"))
    }

    /// The bindings `filter` matches (Kafka's `describeAcls`), as the answering broker has
    /// applied them; [`AclFilter::any`] lists every one. Needs Describe on the cluster.
    pub async fn describe_acls(&self, filter: AclFilter) -> Result<Vec<AclBinding>> {
        let filter = &filter;
        self.on_any_broker(|connection, timeout| async move {
            grpc::describe_acls(&connection, filter, timeout).await
        })
        .await
    }

    /// Removes every binding one of `filters` matches and returns those removed (Kafka's
    /// `deleteAcls`). A filter with every field unset matches every binding. Needs Alter on the
    /// cluster. When an attempt's answer is lost and the call is retried, what the lost attempt
    /// removed is gone but not reported.
    pub async fn delete_acls(&self, filters: Vec<AclFilter>) -> Result<Vec<AclBinding>> {
        let filters = &filters;
        self.on_any_broker(|connection, timeout| async move {
            grpc::delete_acls(&connection, filters, timeout).await
        })
        .await
        .map_err(|error| awaiting_the_quorum(error, "delete ACLs"))
    }

    /// Grows topic `name` to `total` partitions (Kafka's CreatePartitions). Existing partitions
    /// keep their records; keys that hash differently over the new count go to other
    /// partitions from now on, so per-key order holds only from the change on.
    pub async fn create_partitions(&self, name: &str, total: i32) -> Result<()> {
        self.on_any_broker(|connection, timeout| async move {
            grpc::create_partitions(&connection, name, total, timeout).await
        })
        .await
        .map_err(|error| awaiting_the_quorum(error, &format!("add partitions to topic '{name}'")))
    }

    /// Looks an offset up on the partition's leader. `None` only for a timestamp query that
    /// found no record at or after the timestamp.
    pub async fn list_offsets(
        &self,
        topic_partition: &TopicPartition,
        spec: OffsetSpec,
    ) -> Result<Option<OffsetAndTimestamp>> {
        let query = match spec {
            OffsetSpec::Earliest => EARLIEST_TIMESTAMP,
            OffsetSpec::Latest => LATEST_TIMESTAMP,
            OffsetSpec::Timestamp(timestamp) if timestamp < 0 => {
                return Err(Error::InvalidInput(format!(
                    "timestamp {timestamp} is negative"
                )));
            }
            OffsetSpec::Timestamp(timestamp) => timestamp,
        };
        let found = self
            .cluster
            .list_offsets(
                vec![(topic_partition.clone(), query)],
                self.config.retry_policy,
            )
            .await?;
        Ok(found.get(topic_partition).and_then(|listed| {
            listed.offset.map(|offset| OffsetAndTimestamp {
                offset,
                timestamp: listed.timestamp,
            })
        }))
    }

    /// Each partition's log start offset, high watermark and size, from its leader: one
    /// `ListOffsets` for the starts and one for the ends per leader, however many partitions.
    pub async fn describe_partition_logs(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, PartitionLog>> {
        let query = |spec: i64| -> Vec<(TopicPartition, i64)> {
            partitions.iter().map(|tp| (tp.clone(), spec)).collect()
        };
        let policy = self.config.retry_policy;
        let starts = self
            .cluster
            .list_offsets(query(EARLIEST_TIMESTAMP), policy)
            .await?;
        // Asked second, so the size is at least as new as both offsets.
        let ends = self
            .cluster
            .list_offsets(query(LATEST_TIMESTAMP), policy)
            .await?;
        // `list_offsets` answers for every partition or fails, and ends and starts always carry
        // an offset.
        Ok(partitions
            .iter()
            .filter_map(|tp| {
                let (start, end) = (starts.get(tp)?, ends.get(tp)?);
                let log = PartitionLog {
                    log_start_offset: start.offset?,
                    high_watermark: end.offset?,
                    size_bytes: end.size_bytes,
                };
                Some((tp.clone(), log))
            })
            .collect())
    }

    fn coordinator(&self, group_id: &str) -> Result<CoordinatorLocator> {
        if group_id.is_empty() {
            return Err(Error::InvalidInput("group id is empty".to_string()));
        }
        Ok(CoordinatorLocator::new(
            self.cluster.clone(),
            group_id,
            self.config.settings.request_timeout,
        ))
    }

    /// Every consumer group in the cluster. Each broker lists the groups it coordinates, so
    /// every broker is asked; a broker that does not answer makes the whole call fail rather
    /// than return a partial list.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let snapshot = self.refresh_with_retries(&[]).await?;
        let timeout = self.config.settings.request_timeout;
        let mut groups = Vec::new();
        for broker in snapshot.brokers.values().filter(|broker| !broker.fenced) {
            let connection = self.cluster.connection(&broker.address).await?;
            groups.extend(grpc::list_groups(&connection, timeout).await?);
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(groups)
    }

    /// A group's members, their assignments and its committed offsets.
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription> {
        let locator = self.coordinator(group_id)?;
        let timeout = self.config.settings.request_timeout;
        locator
            .call(timeout, |connection| async move {
                grpc::describe_group(&connection, group_id, timeout).await
            })
            .await
    }

    /// A share group's members, in-flight windows and counters.
    pub async fn describe_share_group(&self, group_id: &str) -> Result<ShareGroupDescription> {
        let locator = self.coordinator(group_id)?;
        let timeout = self.config.settings.request_timeout;
        locator
            .call(timeout, |connection| async move {
                grpc::describe_share_group(&connection, group_id, timeout).await
            })
            .await
    }

    /// Deletes a group with no members, and its committed offsets.
    pub async fn delete_group(&self, group_id: &str) -> Result<()> {
        let locator = self.coordinator(group_id)?;
        let timeout = self.config.settings.request_timeout;
        locator
            .call(timeout, |connection| async move {
                grpc::delete_group(&connection, group_id, timeout).await
            })
            .await
    }

    /// Per partition of the group's topics: committed offset, log end offset (high watermark)
    /// and lag, with the member consuming it.
    pub async fn group_lag(&self, group_id: &str) -> Result<Vec<PartitionLag>> {
        let description = self.describe_group(group_id).await?;
        let mut partitions: BTreeMap<TopicPartition, Option<String>> = description
            .offsets
            .keys()
            .map(|topic_partition| (topic_partition.clone(), None))
            .collect();
        for member in &description.members {
            for topic_partition in member.assignment.iter().chain(&member.revoking) {
                partitions.insert(topic_partition.clone(), Some(member.member_id.clone()));
            }
        }
        let ends = self
            .cluster
            .list_offsets(
                partitions
                    .keys()
                    .map(|topic_partition| (topic_partition.clone(), LATEST_TIMESTAMP))
                    .collect(),
                self.config.retry_policy,
            )
            .await?;
        Ok(partitions
            .into_iter()
            .map(|(topic_partition, member_id)| {
                let committed = description
                    .offsets
                    .get(&topic_partition)
                    .map(|offset| offset.offset);
                let log_end_offset = ends.get(&topic_partition).and_then(|listed| listed.offset);
                let lag = match (committed, log_end_offset) {
                    (Some(committed), Some(end)) => Some((end - committed).max(0)),
                    (None, Some(end)) => Some(end),
                    _ => None,
                };
                PartitionLag {
                    topic_partition,
                    committed,
                    log_end_offset,
                    lag,
                    member_id,
                }
            })
            .collect())
    }

    /// Where `reset` would move the group's offsets for every partition of `topic`, as
    /// (partition, current committed offset, new offset). With `execute` the new offsets are
    /// committed; that needs the group to have no active members (`NON_EMPTY_GROUP`).
    pub async fn reset_group_offsets(
        &self,
        group_id: &str,
        topic: &str,
        reset: OffsetReset,
        execute: bool,
    ) -> Result<Vec<(TopicPartition, Option<i64>, i64)>> {
        let locator = self.coordinator(group_id)?;
        let partitions = self.describe_topic(topic).await?.partitions.len() as i32;
        let partitions: Vec<TopicPartition> = (0..partitions)
            .map(|partition| TopicPartition::new(topic, partition))
            .collect();
        let timeout = self.config.settings.request_timeout;
        let current = locator
            .call(timeout, |connection| {
                let partitions = &partitions;
                async move { grpc::offset_fetch(&connection, group_id, partitions, timeout).await }
            })
            .await?;
        let logs = self.describe_partition_logs(&partitions).await?;
        let by_time = match reset {
            OffsetReset::ToTimestamp(timestamp) => Some(timestamp),
            OffsetReset::ByDuration(back) => Some(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |now| now.saturating_sub(back).as_millis() as i64),
            ),
            _ => None,
        };
        if by_time.is_some_and(|timestamp| timestamp < 0) {
            return Err(Error::InvalidInput("the timestamp is negative".to_string()));
        }
        let found = match by_time {
            Some(timestamp) => {
                let query = partitions
                    .iter()
                    .map(|tp| (tp.clone(), timestamp))
                    .collect();
                let policy = self.config.retry_policy;
                Some(self.cluster.list_offsets(query, policy).await?)
            }
            None => None,
        };
        let mut plan = Vec::new();
        for topic_partition in &partitions {
            let offset_of = |listed: &BTreeMap<TopicPartition, crate::grpc::ListedOffset>| {
                listed.get(topic_partition).and_then(|listed| listed.offset)
            };
            let log = logs.get(topic_partition);
            let low = log.map_or(0, |log| log.log_start_offset);
            let high = log.map_or(low, |log| log.high_watermark);
            let target = match reset {
                OffsetReset::ToEarliest => low,
                OffsetReset::ToLatest => high,
                // Kafka clamps an offset outside the log into it.
                OffsetReset::ToOffset(offset) => offset.clamp(low, high),
                OffsetReset::ToTimestamp(_) | OffsetReset::ByDuration(_) => {
                    found.as_ref().and_then(offset_of).unwrap_or(high)
                }
            };
            let committed = current
                .get(topic_partition)
                .cloned()
                .flatten()
                .map(|offset| offset.offset);
            plan.push((topic_partition.clone(), committed, target));
        }
        if execute {
            let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = plan
                .iter()
                .map(|(tp, _, target)| (tp.clone(), OffsetAndMetadata::new(*target)))
                .collect();
            let answers = locator
                .call(timeout, |connection| {
                    let offsets = &offsets;
                    async move {
                        grpc::offset_commit(&connection, group_id, None, offsets, timeout).await
                    }
                })
                .await?;
            for (_, answer) in answers {
                answer?;
            }
        }
        Ok(plan)
    }

    /// The cluster id, the controller and the brokers.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        Ok(self.refresh_with_retries(&[]).await?.description())
    }

    async fn refresh_with_retries(
        &self,
        topics: &[String],
    ) -> Result<std::sync::Arc<crate::metadata::MetadataSnapshot>> {
        with_retries(
            self.config.retry_policy,
            self.deadline(),
            admin_should_retry,
            |_| {},
            || self.cluster.refresh(topics),
        )
        .await
    }
}
