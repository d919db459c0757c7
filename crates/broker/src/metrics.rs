//! What a node tells Prometheus: `/metrics` on the HTTP admin listener (`http_admin`), in the
//! OpenMetrics text format (prometheus-client).
//!
//! Two kinds of metric, kept apart so the hot path pays for as little as possible:
//! - **Events** are counted where they happen: requests per door and API with their latency
//!   and gRPC errors by status, produce and fetch partition errors by Kafka code, bytes in and
//!   out per topic, produce batch sizes, open Kafka
//!   connections. Each is an atomic add on a metric looked up by its labels once per request
//!   (or per partition of a request), never per record.
//! - **State** is read when Prometheus scrapes ([`StateCollector`]): every local partition's
//!   offsets, size, leadership, ISR and followers' lag; the cluster's brokers, fenced brokers, offline and
//!   under-replicated partitions from this node's applied metadata; the controller quorum as
//!   this node sees it; the process's CPU time, memory and open files. Nothing is kept up to
//!   date between scrapes, so an idle node costs nothing.
//!
//! Names follow Prometheus conventions: `strata_` prefix, base units (`_seconds`, `_bytes`),
//! counters ending in `_total`. Cluster-wide gauges are reported by every node from its own
//! applied metadata, so queries take `max()` over nodes rather than `sum()`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use strata_controller::{Controller, MetadataState};
use tokio::sync::watch;

use crate::replica_manager::ReplicaManager;

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Door {
    Grpc,
    Kafka,
}

impl prometheus_client::encoding::EncodeLabelValue for Door {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            Door::Grpc => "grpc",
            Door::Kafka => "kafka",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub door: Door,
    /// `Broker/Produce` on gRPC, `Produce` on Kafka.
    pub api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub door: Door,
    pub api: String,
    /// The gRPC status code's name, e.g. `PermissionDenied`.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DoorLabels {
    door: Door,
}

/// The event metrics, shared by every part of the node that records them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    partition_errors: Family<PartitionErrorLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    bytes_in: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    produce_batch_bytes: Histogram,
    connections: Family<DoorLabels, Gauge>,
    /// The previous exposition's length: the next is written into a buffer that size, rather
    /// than one that doubles (and copies) its way up to megabytes.
    last_exposition_bytes: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The node's metrics; `state` is read on every scrape.
    pub fn new(state: StateCollector) -> Metrics {
        let mut registry = Registry::with_prefix("strata");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests received, by door and API",
            requests.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "request_errors",
            "gRPC requests answered with a non-OK status, by door, API and status code",
            errors.clone(),
        );
        let partition_errors = Family::<PartitionErrorLabels, Counter>::default();
        registry.register(
            "partition_errors",
            "Partitions of produce and fetch requests (both doors) answered with an error, by \
             API and Kafka error code",
            partition_errors.clone(),
        );
        // 50 µs to about 13 s.
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.5, 14))
        });
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its response (to the response headers for \
             streaming gRPC calls), by door and API",
            Unit::Seconds,
            latency.clone(),
        );
        let bytes_in = Family::<TopicLabels, Counter>::default();
        registry.register_with_unit(
            "topic_produced",
            "Record batch bytes produced to this node's leader partitions, by topic",
            Unit::Bytes,
            bytes_in.clone(),
        );
        let bytes_out = Family::<TopicLabels, Counter>::default();
        registry.register_with_unit(
            "topic_fetched",
            "Record batch bytes sent to consumers, by topic",
            Unit::Bytes,
            bytes_out.clone(),
        );
        // 256 B to 64 MiB.
        let produce_batch_bytes = Histogram::new(exponential_buckets(256.0, 4.0, 10));
        registry.register_with_unit(
            "produce_batch_size",
            "Bytes of each partition's records in a produce request",
            Unit::Bytes,
            produce_batch_bytes.clone(),
        );
        let connections = Family::<DoorLabels, Gauge>::default();
        registry.register(
            "open_connections",
            "Kafka client connections open now",
            connections.clone(),
        );
        // Reported from the start, so a node without connections says 0 rather than nothing.
        connections
            .get_or_create(&DoorLabels { door: Door::Kafka })
            .set(0);
        registry.register_collector(Box::new(state));
        Metrics {
            registry,
            requests,
            errors,
            partition_errors,
            latency,
            bytes_in,
            bytes_out,
            produce_batch_bytes,
            connections,
            last_exposition_bytes: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The exposition, as `/metrics` serves it.
    pub fn encode(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.last_exposition_bytes.load(Relaxed);
        let mut text = String::with_capacity(last + last / 8);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        self.last_exposition_bytes.store(text.len(), Relaxed);
        text
    }

    /// Counts one request of `api` on `door` that took `elapsed`; `error` is the gRPC status
    /// code's name when it was not OK.
    pub fn request(&self, door: Door, api: &str, elapsed: Duration, error: Option<&str>) {
        let labels = RequestLabels {
            door,
            api: api.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(code) = error {
            self.errors
                .get_or_create(&ErrorLabels {
                    door,
                    api: labels.api,
                    code: code.to_string(),
                })
                .inc();
        }
    }

    /// A partition of a produce or fetch request answered with `code`.
    pub fn partition_error(&self, api: &'static str, code: strata_common::ErrorCode) {
        self.partition_errors
            .get_or_create(&PartitionErrorLabels {
                api,
                code: code.name(),
            })
            .inc();
    }

    /// A partition's records appended as leader.
    pub fn produced(&self, topic: &str, bytes: usize) {
        self.bytes_in
            .get_or_create(&TopicLabels {
                topic: topic.to_string(),
            })
            .inc_by(bytes as u64);
        self.produce_batch_bytes.observe(bytes as f64);
    }

    /// A partition's records sent to a consumer.
    pub fn fetched(&self, topic: &str, bytes: usize) {
        if bytes > 0 {
            self.bytes_out
                .get_or_create(&TopicLabels {
                    topic: topic.to_string(),
                })
                .inc_by(bytes as u64);
        }
    }

    /// Counts an open connection on `door` until the guard drops.
    pub fn connection(self: &Arc<Self>, door: Door) -> ConnectionGuard {
        self.connections.get_or_create(&DoorLabels { door }).inc();
        ConnectionGuard {
            metrics: self.clone(),
            door,
        }
    }
}

pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    door: Door,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics
            .connections
            .get_or_create(&DoorLabels { door: self.door })
            .dec();
    }
}

/// Reads the node's state on each scrape.
pub struct StateCollector {
    pub replicas: Arc<ReplicaManager>,
    pub(crate) groups: Arc<crate::group_coordinator::GroupCoordinator>,
    pub metadata: watch::Receiver<Arc<MetadataState>>,
    pub controller: Arc<Controller>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCollector")
    }
}

/// Writes one gauge family: `values` as (labels, value).
fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in values {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionErrorLabels {
    api: &'static str,
    /// Kafka's name of the code, e.g. `NOT_LEADER_OR_FOLLOWER`.
    code: &'static str,
}

/// A partition's labels, borrowed from the partition: a scrape of thousands of partitions
/// allocates nothing for them.
type PartitionLabels<'a> = ([(&'static str, &'a str); 1], [(&'static str, i32); 1]);

/// What a scrape reports of one partition replica on this node, read in one pass: each
/// partition's state is touched once, not once per metric, which with thousands of partitions
/// is most of what a scrape costs (each touch is a cache miss).
struct PartitionReading<'a> {
    labels: PartitionLabels<'a>,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    size: i64,
    /// Set when this node leads the partition.
    leader: Option<LeaderReading>,
}

struct LeaderReading {
    state: crate::replica_manager::LeaderMetrics,
    /// Replicas the metadata assigns the partition.
    replication_factor: usize,
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metadata = self.metadata.borrow().clone();
        let partitions = self.replicas.partitions();
        let readings: Vec<PartitionReading> = partitions
            .iter()
            .map(|partition| {
                let log = partition.log();
                let topic_partition = partition.topic_partition();
                PartitionReading {
                    labels: (
                        [("topic", topic_partition.topic.as_str())],
                        [("partition", topic_partition.partition)],
                    ),
                    log_start_offset: log.log_start_offset(),
                    log_end_offset: log.log_end_offset(),
                    high_watermark: partition.high_watermark(),
                    size: i64::try_from(log.size_in_bytes()).unwrap_or(i64::MAX),
                    leader: partition.leader_metrics().map(|state| LeaderReading {
                        state,
                        replication_factor: metadata
                            .partition(topic_partition)
                            .map_or(0, |assigned| assigned.replicas.len()),
                    }),
                }
            })
            .collect();
        let all = |value: fn(&PartitionReading) -> i64| {
            readings
                .iter()
                .map(move |reading| (reading.labels, value(reading)))
        };
        let led = || {
            readings
                .iter()
                .filter_map(|reading| Some((reading.labels, reading.leader.as_ref()?)))
        };
        let e = &mut encoder;
        gauges(
            e,
            "partition_log_start_offset",
            "The first offset of each partition replica on this node",
            None,
            all(|reading| reading.log_start_offset),
        )?;
        gauges(
            e,
            "partition_log_end_offset",
            "The offset after the last record of each partition replica on this node",
            None,
            all(|reading| reading.log_end_offset),
        )?;
        gauges(
            e,
            "partition_high_watermark",
            "The high watermark of each partition replica on this node",
            None,
            all(|reading| reading.high_watermark),
        )?;
        gauges(
            e,
            "partition_size",
            "Segment bytes of each partition replica on this node",
            Some(&Unit::Bytes),
            all(|reading| reading.size),
        )?;
        gauges(
            e,
            "partition_leader",
            "1 for each partition this node leads, 0 for those it follows",
            None,
            all(|reading| i64::from(reading.leader.is_some())),
        )?;
        gauges(
            e,
            "partition_isr_size",
            "In-sync replicas of each partition this node leads, as the leader sees them",
            None,
            led().map(|(labels, leader)| (labels, leader.state.in_sync_replicas as i64)),
        )?;
        gauges(
            e,
            "partition_under_replicated",
            "1 for each partition this node leads with fewer in-sync replicas than replicas",
            None,
            led().map(|(labels, leader)| {
                let under = leader.state.in_sync_replicas < leader.replication_factor;
                (labels, i64::from(under))
            }),
        )?;
        gauges(
            e,
            "partition_replica_lag",
            "Records each follower of a partition this node leads is behind the leader's log \
             end, as of the follower's last fetch",
            None,
            led().flat_map(|(labels, leader)| {
                leader
                    .state
                    .follower_lags
                    .iter()
                    .map(move |&(replica, lag)| ((labels, [("replica", replica)]), lag))
            }),
        )?;
        gauge(
            e,
            "log_dir_used",
            "Segment bytes of every partition replica on this node",
            Some(&Unit::Bytes),
            readings.iter().map(|reading| reading.size).sum(),
        )?;

        // The cluster as this node's applied metadata has it.
        let assigned = metadata
            .topics
            .values()
            .flat_map(|topic| topic.partitions.iter());
        let (mut offline, mut under_replicated, mut total) = (0, 0, 0);
        for partition in assigned {
            total += 1;
            if partition.leader < 0 {
                offline += 1;
            } else if partition.isr.len() < partition.replicas.len() {
                under_replicated += 1;
            }
        }
        gauge(
            e,
            "cluster_partitions",
            "Partitions in the cluster",
            None,
            total,
        )?;
        gauge(
            e,
            "cluster_offline_partitions",
            "Partitions without a leader",
            None,
            offline,
        )?;
        gauge(
            e,
            "cluster_under_replicated_partitions",
            "Partitions with a leader and fewer in-sync replicas than replicas",
            None,
            under_replicated,
        )?;
        gauge(
            e,
            "cluster_brokers",
            "Registered brokers",
            None,
            metadata.brokers.len() as i64,
        )?;
        gauge(
            e,
            "cluster_fenced_brokers",
            "Registered brokers the controller has fenced",
            None,
            metadata
                .brokers
                .values()
                .filter(|broker| broker.fenced)
                .count() as i64,
        )?;
        gauge(
            e,
            "metadata_offset",
            "Metadata commands this node has applied",
            None,
            metadata.metadata_offset,
        )?;

        let raft = self.controller.raft_status();
        gauge(
            e,
            "controller_leader",
            "1 when this node leads the controller quorum",
            None,
            i64::from(raft.is_leader),
        )?;
        gauge(
            e,
            "controller_leader_id",
            "The controller quorum's leader as this node knows it; -1 for none",
            None,
            raft.leader_id.map_or(-1, i64::from),
        )?;
        gauge(
            e,
            "controller_raft_term",
            "The controller quorum's Raft term on this node",
            None,
            i64::try_from(raft.term).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            "controller_raft_commit_index",
            "The last Raft log index this node knows committed; -1 for none",
            None,
            raft.committed
                .map_or(-1, |index| i64::try_from(index).unwrap_or(i64::MAX)),
        )?;

        self.groups(e)?;
        process(e)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupPartitionLabels {
    group: String,
    topic: String,
    partition: String,
}

impl StateCollector {
    /// Committed offsets of the groups this node coordinates, and their lag: the high watermark
    /// of this node's replica (a follower's trails its leader's by a fetch) minus the committed
    /// offset, where this node has a replica of the partition.
    fn groups(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let committed: Vec<(String, strata_common::TopicPartition, i64)> = self
            .groups
            .read_led_shards_now(|shard| {
                shard
                    .all_committed_offsets()
                    .map(|(group, partition, offset)| {
                        (group.to_string(), partition.clone(), offset)
                    })
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect();
        let labels =
            |group: &str, partition: &strata_common::TopicPartition| GroupPartitionLabels {
                group: group.to_string(),
                topic: partition.topic.clone(),
                partition: partition.partition.to_string(),
            };
        gauges(
            encoder,
            "group_committed_offset",
            "Each group's committed offset per partition, for the groups this node coordinates",
            None,
            committed
                .iter()
                .map(|(group, partition, offset)| (labels(group, partition), *offset)),
        )?;
        gauges(
            encoder,
            "group_lag",
            "Records between each group's committed offset and the partition's high watermark, \
             for the groups this node coordinates and the partitions it has a replica of",
            None,
            committed.iter().filter_map(|(group, partition, offset)| {
                let replica = self
                    .replicas
                    .partition(&partition.topic, partition.partition)
                    .ok()?;
                Some((
                    labels(group, partition),
                    (replica.high_watermark() - offset).max(0),
                ))
            }),
        )?;
        self.share_groups(encoder)
    }

    /// Each share group this node coordinates: records held by members now, records waiting,
    /// and what the group has delivered, had acknowledged and dead-lettered since its
    /// coordinator loaded it (counters, which restart when the coordinator moves).
    fn share_groups(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let described: Vec<(String, strata_coordinator::shard::ShareGroupDescription)> = self
            .groups
            .read_led_shards_now(|shard| {
                shard
                    .share_group_ids()
                    .into_iter()
                    .filter_map(|(group, _)| {
                        let description = shard.share_describe(&group)?;
                        Some((group, description))
                    })
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect();
        let per_group =
            |value: &dyn Fn(&strata_coordinator::shard::ShareGroupDescription) -> i64| {
                described
                    .iter()
                    .map(|(group, description)| {
                        (
                            GroupLabels {
                                group: group.clone(),
                            },
                            value(description),
                        )
                    })
                    .collect::<Vec<_>>()
            };
        gauges(
            encoder,
            "share_group_in_flight",
            "Records each share group's members hold unacknowledged now",
            None,
            per_group(&|group| {
                group
                    .partitions
                    .iter()
                    .map(|(_, counts)| counts.acquired as i64)
                    .sum()
            }),
        )?;
        gauges(
            encoder,
            "share_group_available",
            "Records each share group has ready to hand out now",
            None,
            per_group(&|group| {
                group
                    .partitions
                    .iter()
                    .map(|(_, counts)| counts.available as i64)
                    .sum()
            }),
        )?;
        for (name, help, value) in [
            (
                "share_group_delivered",
                "Deliveries each share group made since its coordinator loaded it",
                (|group: &strata_coordinator::shard::ShareGroupDescription| group.delivered)
                    as fn(&strata_coordinator::shard::ShareGroupDescription) -> u64,
            ),
            (
                "share_group_acknowledged",
                "Records each share group's members acknowledged since its coordinator loaded it",
                |group| group.acknowledged,
            ),
            (
                "share_group_dead_lettered",
                "Records each share group moved to its dead-letter topic since its coordinator \
                 loaded it",
                |group| group.dead_lettered,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (group, description) in &described {
                ConstCounter::new(value(description)).encode(family.encode_family(
                    &GroupLabels {
                        group: group.clone(),
                    },
                )?)?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

/// The process's CPU time, memory and open files, from /proc (Linux only; elsewhere nothing).
fn process(encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Ok(());
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
    };
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name, in
    // clock ticks: USER_HZ, which Linux fixes at 100 for user space on every architecture
    // Strata builds for (Prometheus's own process collector assumes the same).
    const TICKS_PER_SECOND: f64 = 100.0;
    if let (Some(user), Some(system)) = (field(11), field(12)) {
        let seconds = (user + system) as f64 / TICKS_PER_SECOND;
        ConstCounter::new(seconds).encode(encoder.encode_descriptor(
            "process_cpu",
            "CPU time the process has used, user and system",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?)?;
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(kib) = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<i64>()
                    .ok()
            })
    {
        gauge(
            encoder,
            "process_resident_memory",
            "Resident memory of the process",
            Some(&Unit::Bytes),
            kib * 1024,
        )?;
    }
    if let Some(open) = open_file_descriptors() {
        gauge(
            encoder,
            "process_open_fds",
            "File descriptors the process holds open",
            None,
            open,
        )?;
    }
    Ok(())
}

/// How many files the process holds open. Linux 6.2 and later give the count as the size of
/// `/proc/self/fd`, in microseconds; listing the directory, as older kernels need, took 15 to
/// 30 ms for a broker with 6,000 partitions (18,000 files) and was most of a scrape.
fn open_file_descriptors() -> Option<i64> {
    let counted = std::fs::metadata("/proc/self/fd").ok()?.len();
    if counted > 0 {
        return i64::try_from(counted).ok();
    }
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

/// Wraps the gRPC client listener's router: counts and times every call by its method, and
/// counts the calls answered with a non-OK status by that status. A method the router does not
/// know (UNIMPLEMENTED) is counted as `unknown`, so a client inventing paths cannot grow the
/// label set.
#[derive(Clone)]
pub struct RequestMetricsLayer {
    metrics: Arc<Metrics>,
}

impl RequestMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower_layer::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type Body = tonic::body::Body;

impl<S> tower_service::Service<http::Request<Body>> for RequestMetrics<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let started = std::time::Instant::now();
        // `/strata.v1.Broker/Produce` is `Broker/Produce`.
        let api = request
            .uri()
            .path()
            .trim_start_matches('/')
            .rsplit_once('.')
            .map_or("unknown", |(_, method)| method)
            .to_string();
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<i32>().ok())
                .map(tonic::Code::from_i32)
                .filter(|code| *code != tonic::Code::Ok);
            let api = if code == Some(tonic::Code::Unimplemented) {
                "unknown"
            } else {
                &api
            };
            let code = code.map(|code| format!("{code:?}"));
            metrics.request(Door::Grpc, api, started.elapsed(), code.as_deref());
            Ok(response)
        })
    }
}
