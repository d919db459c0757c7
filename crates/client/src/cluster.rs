//! Connections to the cluster and the cached metadata that says which broker to use.
//!
//! Every client type owns one `Cluster`. It starts from the bootstrap addresses, learns the
//! brokers and partition leaders from `Metadata`, and keeps one gRPC channel per broker address
//! (HTTP/2 multiplexes every request to a broker over it). When a request fails because the view
//! is stale (the leader moved, a connection broke), the caller marks the metadata stale and the
//! next leader lookup fetches it again.
//!
//! Thread-safety: shared behind an `Arc`; the locks are held only to read or swap a map entry,
//! never across an await.

use crate::credentials::Credentials;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;
use strata_tls::ClientTls;

use strata_common::{ErrorCode, TopicPartition};

use crate::error::{Error, Result};
use crate::grpc::{self, Connection, ListedOffset};
use crate::metadata::{Leader, MetadataSnapshot};
use crate::retry::{Backoff, RetryPolicy};

/// How to reach the cluster; shared by every client type's configuration.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionSettings {
    pub bootstrap: Vec<String>,
    pub tls: Option<ClientTls>,
    pub credentials: Option<Credentials>,
    /// Broker addresses to dial instead of the ones the cluster advertises.
    pub address_rewrites: std::collections::BTreeMap<String, String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

/// Splits `host:port[,host:port...]` and checks each entry, so a typo fails at configuration
/// time rather than as a connection error later.
pub(crate) fn parse_bootstrap(text: &str) -> Result<Vec<String>> {
    let mut addresses = Vec::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        if let Some((scheme, rest)) = entry.split_once("://") {
            return Err(Error::Config(format!(
                "bootstrap address '{entry}' has a '{scheme}://' scheme; give host:port, as in \
                 '{rest}'"
            )));
        }
        let Some((host, port)) = entry.rsplit_once(':') else {
            return Err(Error::Config(format!(
                "bootstrap address '{entry}' is not host:port"
            )));
        };
        if host.is_empty() {
            return Err(Error::Config(format!(
                "bootstrap address '{entry}' has no host"
            )));
        }
        if port.parse::<u16>().map_or(true, |port| port == 0) {
            return Err(Error::Config(format!(
                "bootstrap address '{entry}' has port '{port}'; expected 1 to 65535"
            )));
        }
        addresses.push(entry.to_string());
    }
    if addresses.is_empty() {
        return Err(Error::Config(
            "no bootstrap address given; expected host:port".to_string(),
        ));
    }
    Ok(addresses)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-written (every
    // critical section is a single insert, remove or clone), so the data is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
pub(crate) struct Cluster {
    settings: ConnectionSettings,
    connections: Mutex<HashMap<String, Connection>>,
    metadata: RwLock<Arc<MetadataSnapshot>>,
    /// Everything must be fetched again (the brokers themselves may have changed).
    stale_all: AtomicBool,
    /// Topics whose leaders must be fetched again.
    stale_topics: Mutex<HashSet<String>>,
    /// Whether `stale_topics` has any, written under its lock: a producer asks once per record,
    /// and an atomic load is cheaper than the lock.
    any_stale_topic: AtomicBool,
    /// Metadata refreshes started, which rotates the broker asked first.
    refreshes: AtomicUsize,
    /// Brokers whose connection broke or went silent, and when: asked for metadata after the
    /// others for a while, since such a broker is likely still gone (killed, paused, cut off)
    /// and asking it first would cost a timeout on every refresh.
    failed_at: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long a broker whose connection failed is asked for metadata last.
const FAILED_BROKER_PENALTY: Duration = Duration::from_secs(10);

/// How long a broker whose connection failed gets no requests as leader while the metadata
/// still names it: a broker that stopped answering (paused, cut off, dead) is fenced, and its
/// partitions get new leaders, within a broker session (2.5 s) of its last heartbeat, and the
/// client notices the silence about 2 s into it, so waiting for the metadata to change costs
/// less than another request lost to the same silence. A broker that only blipped waits this
/// long for this client's requests.
const FAILED_LEADER_HOLD: Duration = Duration::from_secs(2);

impl Cluster {
    /// Connects to the bootstrap brokers and fetches the first metadata, so an unreachable
    /// cluster is reported at once.
    pub(crate) async fn connect(settings: ConnectionSettings) -> Result<Arc<Cluster>> {
        let cluster = Arc::new(Cluster::new(settings));
        cluster.refresh(&[]).await?;
        Ok(cluster)
    }

    /// A cluster that knows nothing yet but its bootstrap addresses.
    fn new(settings: ConnectionSettings) -> Cluster {
        Cluster {
            settings,
            connections: Mutex::new(HashMap::new()),
            metadata: RwLock::new(Arc::new(MetadataSnapshot::default())),
            stale_all: AtomicBool::new(true),
            stale_topics: Mutex::new(HashSet::new()),
            any_stale_topic: AtomicBool::new(false),
            refreshes: AtomicUsize::new(0),
            failed_at: Mutex::new(HashMap::new()),
        }
    }

    /// The cached channel to `address`, opening it on first use.
    pub(crate) async fn connection(&self, address: &str) -> Result<Connection> {
        if let Some(connection) = lock(&self.connections).get(address) {
            return Ok(connection.clone());
        }
        let dialed = self
            .settings
            .address_rewrites
            .get(address)
            .map_or(address, String::as_str);
        let connection = grpc::connect(
            dialed,
            self.settings.connect_timeout,
            self.settings.tls.as_ref(),
            self.settings.credentials.as_ref(),
        )
        .await?;
        // Two tasks may have connected at once; keep the first so everyone shares one channel.
        Ok(lock(&self.connections)
            .entry(address.to_string())
            .or_insert(connection)
            .clone())
    }

    /// Drops the channel to `address` after a transport failure, so the next request opens a
    /// fresh one instead of reusing a connection that may be wedged.
    pub(crate) fn forget_connection(&self, address: &str) {
        lock(&self.connections).remove(address);
        lock(&self.failed_at).insert(address.to_string(), std::time::Instant::now());
    }

    /// Reacts to a failed request to `address` about `topics`: stale metadata is marked for
    /// refresh and a broken or silent connection is dropped.
    pub(crate) fn on_error<'a>(
        &self,
        error: &Error,
        address: &str,
        topics: impl IntoIterator<Item = &'a str>,
    ) {
        if error.condemns_connection() {
            // The broker may be gone for good; its partitions may have new leaders elsewhere.
            self.forget_connection(address);
            self.mark_stale();
        } else if error.invalidates_metadata() {
            let mut stale_topics = lock(&self.stale_topics);
            stale_topics.extend(topics.into_iter().map(str::to_string));
            self.any_stale_topic
                .store(!stale_topics.is_empty(), Ordering::SeqCst);
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<MetadataSnapshot> {
        self.metadata
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Marks all metadata for refresh.
    pub(crate) fn mark_stale(&self) {
        self.stale_all.store(true, Ordering::SeqCst);
    }

    /// Whether the cached metadata of `topic` can be trusted.
    pub(crate) fn is_fresh(&self, topic: &str) -> bool {
        if self.stale_all.load(Ordering::SeqCst) {
            return false;
        }
        if !self.any_stale_topic.load(Ordering::SeqCst) {
            return true;
        }
        !lock(&self.stale_topics).contains(topic)
    }

    /// Addresses to ask for metadata: brokers metadata already knows (they reflect the current
    /// cluster), then the bootstrap list (the only thing known at startup, and the fallback when
    /// every known broker moved). Each refresh starts one broker further along: a broker cut off
    /// from the controller still answers, with the metadata it had, and a client that always
    /// asked it first would keep sending to a leader that no longer leads. Brokers whose
    /// connection failed lately come last.
    fn metadata_candidates(&self) -> Vec<String> {
        let mut candidates = self.known_then_bootstrap();
        if !candidates.is_empty() {
            let start = self.refreshes.fetch_add(1, Ordering::Relaxed) % candidates.len();
            candidates.rotate_left(start);
        }
        let mut failed_at = lock(&self.failed_at);
        failed_at.retain(|_, at| at.elapsed() < FAILED_BROKER_PENALTY);
        // Stable, so the rotation still orders each group.
        candidates.sort_by_key(|address| failed_at.contains_key(address));
        candidates
    }

    fn known_then_bootstrap(&self) -> Vec<String> {
        let snapshot = self.snapshot();
        let mut candidates: Vec<String> = Vec::new();
        let known = snapshot
            .brokers
            .values()
            .filter(|broker| !broker.fenced)
            .map(|broker| &broker.address);
        for address in known.chain(self.settings.bootstrap.iter()) {
            if !candidates.contains(address) {
                candidates.push(address.clone());
            }
        }
        candidates
    }

    /// Fetches metadata for `topics` (every topic when empty, or when everything is stale) from
    /// the first broker that answers, merges it into the cache and returns the new snapshot.
    pub(crate) async fn refresh(&self, topics: &[String]) -> Result<Arc<MetadataSnapshot>> {
        let all_topics = topics.is_empty() || self.stale_all.load(Ordering::SeqCst);
        let topics = if all_topics { &[][..] } else { topics };
        let mut last_error = None;
        for address in self.metadata_candidates() {
            let connection = match self.connection(&address).await {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::debug!(%address, %error, "cannot connect for metadata");
                    last_error = Some(error);
                    continue;
                }
            };
            match grpc::metadata(&connection, topics, self.settings.request_timeout).await {
                Ok(response) => {
                    let mut current = self
                        .metadata
                        .write()
                        .unwrap_or_else(PoisonError::into_inner);
                    let merged = Arc::new(current.merged(response, all_topics));
                    *current = merged.clone();
                    drop(current);
                    let mut stale_topics = lock(&self.stale_topics);
                    if all_topics {
                        stale_topics.clear();
                        self.stale_all.store(false, Ordering::SeqCst);
                    } else {
                        for topic in topics {
                            stale_topics.remove(topic);
                        }
                    }
                    self.any_stale_topic
                        .store(!stale_topics.is_empty(), Ordering::SeqCst);
                    return Ok(merged);
                }
                Err(error) => {
                    tracing::debug!(%address, %error, "metadata request failed");
                    if error.condemns_connection() {
                        self.forget_connection(&address);
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Config("no bootstrap address given".to_string())))
    }

    /// The leader of `topic_partition`, from the cache when it is fresh, else from a new
    /// Metadata request. A topic that the fresh metadata does not list does not exist.
    pub(crate) async fn leader(&self, topic_partition: &TopicPartition) -> Result<Leader> {
        if self.is_fresh(&topic_partition.topic)
            && let Some(Ok(leader)) = self.snapshot().leader(topic_partition)
        {
            return Ok(leader);
        }
        let snapshot = self
            .refresh(std::slice::from_ref(&topic_partition.topic))
            .await?;
        snapshot
            .leader(topic_partition)
            .unwrap_or_else(|| Err(unknown_topic(&topic_partition.topic)))
    }

    /// The leader from the cache only; `None` when it is unknown, the cache is stale, or the
    /// leader's connection failed within [`FAILED_LEADER_HOLD`] (then the caller refreshes
    /// metadata until it names another leader or the hold ends).
    pub(crate) fn cached_leader(&self, topic_partition: &TopicPartition) -> Option<Leader> {
        if !self.is_fresh(&topic_partition.topic) {
            return None;
        }
        let leader = self
            .snapshot()
            .leader(topic_partition)
            .and_then(Result::ok)?;
        let failed_lately = lock(&self.failed_at)
            .get(&leader.address)
            .is_some_and(|at| at.elapsed() < FAILED_LEADER_HOLD);
        (!failed_lately).then_some(leader)
    }

    /// The partition count of `topic` from the cache only; `None` when it is unknown or stale.
    pub(crate) fn cached_partition_count(&self, topic: &str) -> Option<i32> {
        if !self.is_fresh(topic) {
            return None;
        }
        // Looked up under the read lock rather than through `snapshot`, which would clone and
        // drop the `Arc` (two more atomic operations per record).
        self.metadata
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .partition_count(topic)
            .and_then(Result::ok)
    }

    /// The partition count of `topic`, refreshing metadata when the cache does not know it.
    pub(crate) async fn partition_count(&self, topic: &str) -> Result<i32> {
        if let Some(count) = self.cached_partition_count(topic) {
            return Ok(count);
        }
        let snapshot = self.refresh(&[topic.to_string()]).await?;
        snapshot
            .partition_count(topic)
            .unwrap_or_else(|| Err(unknown_topic(topic)))
    }

    /// A broker for requests any broker can serve (admin operations, metadata): the controller
    /// when it is a known broker, since it decides topic changes, then the others.
    pub(crate) async fn any_connection(&self) -> Result<Connection> {
        let snapshot = self.snapshot();
        let mut candidates: Vec<String> = Vec::new();
        if let Some(controller) = snapshot
            .controller_id
            .and_then(|id| snapshot.brokers.get(&id))
        {
            candidates.push(controller.address.clone());
        }
        for address in self.metadata_candidates() {
            if !candidates.contains(&address) {
                candidates.push(address);
            }
        }
        let mut last_error = None;
        for address in candidates {
            match self.connection(&address).await {
                Ok(connection) => return Ok(connection),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Config("no bootstrap address given".to_string())))
    }
}

impl Cluster {
    /// Runs `ListOffsets` for every `(partition, query)` against the partitions' leaders, one
    /// request per leader, retrying the partitions that failed retriably.
    pub(crate) async fn list_offsets(
        &self,
        queries: Vec<(TopicPartition, i64)>,
        policy: RetryPolicy,
    ) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
        let mut pending: BTreeMap<TopicPartition, i64> = queries.into_iter().collect();
        let mut found = BTreeMap::new();
        let mut backoff = Backoff::new(policy.backoff_initial, policy.backoff_max);
        for attempt in 0..=policy.retries {
            let mut last_error: Option<Error> = None;
            let mut by_leader: Vec<(Leader, Vec<(TopicPartition, i64)>)> = Vec::new();
            for (topic_partition, &query) in &pending {
                match self.leader(topic_partition).await {
                    Ok(leader) => match by_leader
                        .iter_mut()
                        .find(|(known, _)| known.node_id == leader.node_id)
                    {
                        Some((_, queries)) => queries.push((topic_partition.clone(), query)),
                        None => by_leader.push((leader, vec![(topic_partition.clone(), query)])),
                    },
                    // Fresh metadata does not list the partition: retrying will not create it.
                    Err(error) if error.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
                        return Err(error);
                    }
                    Err(error) if error.is_retriable() => last_error = Some(error),
                    Err(error) => return Err(error),
                }
            }
            let requests = by_leader.into_iter().map(|(leader, queries)| async move {
                let topics: Vec<String> = queries
                    .iter()
                    .map(|(topic_partition, _)| topic_partition.topic.clone())
                    .collect();
                let response = match self.connection(&leader.address).await {
                    Ok(connection) => {
                        grpc::list_offsets(&connection, queries, self.settings.request_timeout)
                            .await
                    }
                    Err(error) => Err(error),
                };
                (leader, topics, response)
            });
            for (leader, topics, response) in futures::future::join_all(requests).await {
                match response {
                    Ok(partitions) => {
                        for (topic_partition, result) in partitions {
                            match result {
                                Ok(listed) => {
                                    pending.remove(&topic_partition);
                                    found.insert(topic_partition, listed);
                                }
                                Err(error) if error.is_retriable() => {
                                    self.on_error(
                                        &error,
                                        &leader.address,
                                        [topic_partition.topic.as_str()],
                                    );
                                    last_error = Some(error);
                                }
                                Err(error) => return Err(error),
                            }
                        }
                    }
                    Err(error) => {
                        self.on_error(&error, &leader.address, topics.iter().map(String::as_str));
                        if !error.is_retriable() {
                            return Err(error);
                        }
                        last_error = Some(error);
                    }
                }
            }
            if pending.is_empty() {
                return Ok(found);
            }
            if attempt == policy.retries {
                return Err(last_error.unwrap_or_else(|| {
                    let missing: Vec<String> = pending.keys().map(ToString::to_string).collect();
                    Error::broker(
                        ErrorCode::UnknownServerError,
                        format!(
                            "the broker did not answer ListOffsets for {}",
                            missing.join(", ")
                        ),
                    )
                }));
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        unreachable!("the last attempt returns")
    }
}

pub(crate) fn unknown_topic(topic: &str) -> Error {
    Error::broker(
        ErrorCode::UnknownTopicOrPartition,
        format!("topic '{topic}' does not exist"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(bootstrap: &str) -> ConnectionSettings {
        ConnectionSettings {
            bootstrap: parse_bootstrap(bootstrap).expect("valid"),
            tls: None,
            credentials: None,
            address_rewrites: BTreeMap::new(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_leader_whose_connection_just_failed_gets_no_requests_for_a_moment() {
        let cluster = Cluster::new(settings("h1:1"));
        *cluster.metadata.write().expect("unpoisoned") =
            Arc::new(crate::metadata::tests::snapshot("t", 1, Some(1)));
        cluster.stale_all.store(false, Ordering::SeqCst);
        let partition = TopicPartition::new("t", 0);
        assert_eq!(
            cluster
                .cached_leader(&partition)
                .map(|leader| leader.node_id),
            Some(1)
        );
        cluster.forget_connection("h1:1");
        assert_eq!(cluster.cached_leader(&partition), None);
    }

    #[test]
    fn metadata_is_asked_of_each_broker_in_turn_and_of_failed_ones_last() {
        use std::collections::BTreeSet;
        let cluster = Cluster::new(settings("a:1,b:2,c:3"));
        let firsts: Vec<String> = (0..4)
            .map(|_| cluster.metadata_candidates()[0].clone())
            .collect();
        assert_eq!(firsts, ["a:1", "b:2", "c:3", "a:1"]);
        cluster.forget_connection("b:2");
        let mut firsts = BTreeSet::new();
        for _ in 0..3 {
            let candidates = cluster.metadata_candidates();
            assert_eq!(candidates.last().map(String::as_str), Some("b:2"));
            firsts.insert(candidates[0].clone());
        }
        assert_eq!(
            firsts,
            BTreeSet::from(["a:1".to_string(), "c:3".to_string()])
        );
    }

    #[test]
    fn bootstrap_lists_are_checked() {
        assert_eq!(
            parse_bootstrap("a:1, b:2,").expect("valid"),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert_eq!(
            parse_bootstrap("[::1]:7070").expect("valid IPv6"),
            vec!["[::1]:7070".to_string()]
        );
        assert!(matches!(parse_bootstrap(""), Err(Error::Config(_))));
        assert!(matches!(
            parse_bootstrap("localhost"),
            Err(Error::Config(_))
        ));
        assert!(matches!(parse_bootstrap(":7070"), Err(Error::Config(_))));
        assert!(matches!(parse_bootstrap("h:0"), Err(Error::Config(_))));
        assert!(matches!(parse_bootstrap("h:http"), Err(Error::Config(_))));
        let Err(Error::Config(message)) = parse_bootstrap("http://h:7070") else {
            panic!("a URL is not a bootstrap address");
        };
        assert!(
            message.contains("give host:port, as in 'h:7070'"),
            "{message}"
        );
    }
}
