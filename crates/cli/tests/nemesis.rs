//! The nemesis: three `strata server` processes on loopback take faults on a seeded schedule
//! while an idempotent `acks=all` producer writes every partition and a consumer tails them.
//!
//! Every link between the nodes, and between the test's clients and each node, runs through a
//! [`Link`] the test can cut, so it partitions the network without privileges. The faults:
//! - a partition leader isolated from its peers but not from clients;
//! - a node isolated completely;
//! - a node paused (SIGSTOP, then SIGCONT);
//! - a node killed (SIGKILL, then restarted on its data);
//! - a partial partition: two nodes cannot reach each other, both reach the third;
//! - a clean shutdown (SIGTERM, then restarted).
//!
//! Each fault lasts `STRATA_NEMESIS_HOLD_MS` (default 6,000 ms, longer than the five seconds in
//! which writes should resume), then heals, and the next starts once every broker is back in
//! every ISR. At the end the test checks safety, which must hold whatever the timings:
//! - every acknowledged record is read back, at the offset its acknowledgement gave;
//! - no record is read twice, and each partition's records are in the order they were sent;
//! - a consumer that tailed the topic through every fault read each acknowledged record once,
//!   in order;
//! - all three replicas of every partition hold the same batches, byte for byte.
//!
//! It also reports availability, which it does not assert (timings live in benchmarks, not in
//! tests): for every fault, the longest time some partition acknowledged nothing between the
//! fault and the start of the next one, and per fault kind the median and worst. The default
//! schedule is each kind once in a seeded order (about two minutes); a soak run sets
//! `STRATA_NEMESIS_FAULTS` (say 180, thirty of each kind) and may set `STRATA_NEMESIS_SEED` to
//! replay a schedule and `STRATA_NEMESIS_REPORT` to a file for the report (README.md, "The
//! nemesis").

mod common;

use common::{KeyedReads, consumer_from_beginning, eventually, free_port, spawn_tailing_consumer};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_client::{Admin, AdminConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strata_tests::link::Link;
use tokio::sync::watch;

const TOPIC: &str = "nemesis";
const PARTITIONS: i32 = 3;
const NODES: [i32; 3] = [1, 2, 3];
/// How often each partition's producer sends one record (it waits for each acknowledgement, so
/// a gap in acknowledgements is a gap in availability, not a queue draining).
const SEND_INTERVAL: Duration = Duration::from_millis(2);
/// How long the cluster may take to get every broker back into every ISR after a heal.
const RECOVERY_LIMIT: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FaultKind {
    LeaderIsolatedFromPeers,
    NodeIsolated,
    NodePaused,
    NodeKilled,
    PartialPartition,
    CleanShutdown,
}

impl FaultKind {
    const ALL: [FaultKind; 6] = [
        FaultKind::LeaderIsolatedFromPeers,
        FaultKind::NodeIsolated,
        FaultKind::NodePaused,
        FaultKind::NodeKilled,
        FaultKind::PartialPartition,
        FaultKind::CleanShutdown,
    ];

    /// The short name `STRATA_NEMESIS_KINDS` takes.
    fn key(self) -> &'static str {
        match self {
            FaultKind::LeaderIsolatedFromPeers => "leader-isolated",
            FaultKind::NodeIsolated => "isolated",
            FaultKind::NodePaused => "paused",
            FaultKind::NodeKilled => "killed",
            FaultKind::PartialPartition => "partial",
            FaultKind::CleanShutdown => "shutdown",
        }
    }

    fn name(self) -> &'static str {
        match self {
            FaultKind::LeaderIsolatedFromPeers => "leader isolated from peers",
            FaultKind::NodeIsolated => "node isolated",
            FaultKind::NodePaused => "node paused",
            FaultKind::NodeKilled => "node killed",
            FaultKind::PartialPartition => "partial partition",
            FaultKind::CleanShutdown => "clean shutdown",
        }
    }

    /// Issue #26's target for the longest unavailability, reported beside the measurement.
    fn target(self) -> Duration {
        match self {
            FaultKind::PartialPartition => Duration::from_secs(10),
            FaultKind::CleanShutdown => Duration::from_secs(1),
            _ => Duration::from_secs(5),
        }
    }
}

struct Settings {
    seed: u64,
    kinds: Vec<FaultKind>,
    faults: usize,
    hold: Duration,
    report: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> Settings {
        let number = |name: &str| {
            std::env::var(name).ok().map(|value| {
                value
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name}={value} is not a whole number"))
            })
        };
        let kinds: Vec<FaultKind> = match std::env::var("STRATA_NEMESIS_KINDS") {
            Ok(keys) => keys
                .split(',')
                .map(|key| {
                    FaultKind::ALL
                        .into_iter()
                        .find(|kind| kind.key() == key.trim())
                        .unwrap_or_else(|| {
                            panic!(
                                "STRATA_NEMESIS_KINDS names '{key}'; the kinds are {:?}",
                                FaultKind::ALL.map(FaultKind::key)
                            )
                        })
                })
                .collect(),
            Err(_) => FaultKind::ALL.to_vec(),
        };
        Settings {
            seed: number("STRATA_NEMESIS_SEED").unwrap_or_else(rand::random),
            faults: number("STRATA_NEMESIS_FAULTS").map_or(kinds.len(), |faults| {
                usize::try_from(faults).expect("a fault count that fits in memory")
            }),
            hold: Duration::from_millis(number("STRATA_NEMESIS_HOLD_MS").unwrap_or(6_000)),
            report: std::env::var_os("STRATA_NEMESIS_REPORT").map(PathBuf::from),
            kinds,
        }
    }

    /// The faults in order: rounds of every kind, each round shuffled, so each kind comes up
    /// equally often.
    fn schedule(&self, rng: &mut StdRng) -> Vec<FaultKind> {
        let mut schedule = Vec::with_capacity(self.faults);
        while schedule.len() < self.faults {
            let mut round = self.kinds.clone();
            round.shuffle(rng);
            schedule.extend(round.into_iter().take(self.faults - schedule.len()));
        }
        schedule
    }
}

struct Node {
    id: i32,
    listen: SocketAddr,
    internal: SocketAddr,
    /// The node's own view of the voters: itself at its internal listener, each peer through
    /// the link from this node to that peer.
    voters: String,
    /// The link clients reach this node through, which it advertises.
    client_link: Link,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the node's log");
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["server", "--node-id", &self.id.to_string()])
            .args(["--listen", &self.listen.to_string()])
            .args(["--advertise", self.client_link.address()])
            .args(["--internal-listen", &self.internal.to_string()])
            .args(["--voters", &self.voters])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env(
                "RUST_LOG",
                std::env::var("STRATA_NEMESIS_LOG").unwrap_or_else(|_| "warn".to_string()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("strata server starts");
        self.child = Some(child);
    }

    fn signal(&self, signal: &str) {
        common::send_signal(self.child.as_ref().expect("node is running"), signal);
    }

    /// Waits for the process to exit after a signal, at most `limit`.
    fn wait_for_exit(&mut self, limit: Duration) {
        let child = self.child.as_mut().expect("node is running");
        let deadline = Instant::now() + limit;
        while child.try_wait().expect("wait on the node").is_none() {
            assert!(
                Instant::now() < deadline,
                "node {} did not exit within {limit:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = None;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused process must be continued before it can be killed and reaped everywhere.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Cluster {
    nodes: Vec<Node>,
    /// The link carrying connections from the first node to the second.
    peer_links: BTreeMap<(i32, i32), Link>,
}

impl Cluster {
    async fn start(directory: &Path) -> Cluster {
        let listen: BTreeMap<i32, SocketAddr> = NODES
            .iter()
            .map(|&id| (id, loopback(free_port())))
            .collect();
        let internal: BTreeMap<i32, SocketAddr> = NODES
            .iter()
            .map(|&id| (id, loopback(free_port())))
            .collect();
        let mut peer_links = BTreeMap::new();
        for from in NODES {
            for to in NODES.into_iter().filter(|&to| to != from) {
                peer_links.insert((from, to), Link::to(internal[&to]).await);
            }
        }
        let mut nodes = Vec::new();
        for id in NODES {
            let voters = NODES
                .iter()
                .map(|&voter| {
                    if voter == id {
                        format!("{voter}@{}", internal[&voter])
                    } else {
                        format!("{voter}@{}", peer_links[&(id, voter)].address())
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
            nodes.push(Node {
                id,
                listen: listen[&id],
                internal: internal[&id],
                voters,
                client_link: Link::to(listen[&id]).await,
                data_dir: directory.join(format!("node-{id}")),
                log: directory.join(format!("node-{id}.log")),
                child: None,
            });
        }
        for node in &mut nodes {
            node.start();
        }
        Cluster { nodes, peer_links }
    }

    fn node(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|node| node.id == id)
            .expect("a node of the cluster")
    }

    /// Every node's client link, as clients bootstrap.
    fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|node| node.client_link.address().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Cuts (or heals) both directions between `a` and `b`.
    fn set_connected(&self, a: i32, b: i32, connected: bool) {
        for key in [(a, b), (b, a)] {
            let link = &self.peer_links[&key];
            if connected { link.heal() } else { link.cut() }
        }
    }

    fn set_peers_connected(&self, id: i32, connected: bool) {
        for peer in NODES.into_iter().filter(|&peer| peer != id) {
            self.set_connected(id, peer, connected);
        }
    }

    fn node_logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| node.log.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn admin(bootstrap: &str) -> Option<Admin> {
    Admin::connect(
        AdminConfig::builder()
            .bootstrap(bootstrap)
            .request_timeout_ms(2_000)
            .build()
            .unwrap(),
    )
    .await
    .ok()
}

/// Waits until all three brokers are unfenced and every partition has a leader and all three
/// replicas in its ISR.
async fn wait_until_healthy(bootstrap: &str, what: &str) {
    eventually(what, RECOVERY_LIMIT, async || {
        let admin = admin(bootstrap).await?;
        let cluster = admin.describe_cluster().await.ok()?;
        if cluster
            .brokers
            .iter()
            .filter(|broker| !broker.fenced)
            .count()
            != NODES.len()
        {
            return None;
        }
        let topic = admin.describe_topic(TOPIC).await.ok()?;
        topic
            .partitions
            .iter()
            .all(|partition| partition.leader.is_some() && partition.isr.len() == NODES.len())
            .then_some(())
    })
    .await;
}

/// One acknowledged record.
#[derive(Clone, Copy, Debug)]
struct Ack {
    at: Instant,
    sequence: u64,
    offset: i64,
}

/// What one partition's producer saw.
#[derive(Default)]
struct PartitionProduced {
    acks: Vec<Ack>,
    failed: u64,
    last_error: Option<String>,
}

/// Sends `p{partition}:{sequence}` records to `partition` one at a time until `stop`, or until
/// `limit` records, whichever comes first.
async fn produce_partition(
    producer: Arc<Producer>,
    partition: i32,
    mut stop: watch::Receiver<bool>,
    limit: u64,
    produced: Arc<Mutex<PartitionProduced>>,
) {
    let key = format!("p{partition}");
    let mut pace = tokio::time::interval(SEND_INTERVAL);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for sequence in 0..limit {
        if *stop.borrow_and_update() {
            return;
        }
        let record = ProducerRecord::new(TOPIC, format!("{key}:{sequence}"))
            .key(key.clone())
            .partition(partition);
        let delivered = match producer.send(record).await {
            Ok(delivery) => delivery.await,
            Err(error) => Err(error),
        };
        {
            let mut produced = produced.lock().unwrap();
            match delivered {
                Ok(metadata) => produced.acks.push(Ack {
                    at: Instant::now(),
                    sequence,
                    offset: metadata.offset,
                }),
                Err(error) => {
                    produced.failed += 1;
                    produced.last_error = Some(error.to_string());
                }
            }
        }
        tokio::select! {
            _ = pace.tick() => {}
            _ = stop.changed() => return,
        }
    }
}

/// One fault as it happened.
struct Injected {
    kind: FaultKind,
    node: String,
    at: Instant,
    healed: Instant,
}

async fn inject(
    cluster: &mut Cluster,
    kind: FaultKind,
    rng: &mut StdRng,
    hold: Duration,
) -> Injected {
    let victim = NODES[rng.random_range(0..NODES.len())];
    let controller = match admin(&cluster.bootstrap()).await {
        Some(admin) => admin
            .describe_cluster()
            .await
            .ok()
            .and_then(|cluster| cluster.controller_id),
        None => None,
    };
    let mut node = victim.to_string();
    let at;
    match kind {
        FaultKind::LeaderIsolatedFromPeers => {
            let partition = rng.random_range(0..PARTITIONS);
            let leader = admin(&cluster.bootstrap())
                .await
                .expect("an admin client while the cluster is healthy")
                .describe_topic(TOPIC)
                .await
                .expect("the topic")
                .partitions[partition as usize]
                .leader
                .expect("a healthy partition has a leader");
            node = format!("{leader} (leads {TOPIC}-{partition})");
            at = Instant::now();
            cluster.set_peers_connected(leader, false);
            tokio::time::sleep(hold).await;
            cluster.set_peers_connected(leader, true);
        }
        FaultKind::NodeIsolated => {
            at = Instant::now();
            cluster.set_peers_connected(victim, false);
            cluster.node(victim).client_link.cut();
            tokio::time::sleep(hold).await;
            cluster.node(victim).client_link.heal();
            cluster.set_peers_connected(victim, true);
        }
        FaultKind::NodePaused => {
            at = Instant::now();
            cluster.node(victim).signal("-STOP");
            tokio::time::sleep(hold).await;
            cluster.node(victim).signal("-CONT");
        }
        FaultKind::NodeKilled => {
            at = Instant::now();
            let process = cluster.node(victim);
            process.signal("-KILL");
            process.wait_for_exit(Duration::from_secs(10));
            tokio::time::sleep(hold).await;
            cluster.node(victim).start();
        }
        FaultKind::PartialPartition => {
            let others: Vec<i32> = NODES.into_iter().filter(|&id| id != victim).collect();
            node = format!("{} x {}", others[0], others[1]);
            at = Instant::now();
            cluster.set_connected(others[0], others[1], false);
            tokio::time::sleep(hold).await;
            cluster.set_connected(others[0], others[1], true);
        }
        FaultKind::CleanShutdown => {
            at = Instant::now();
            let process = cluster.node(victim);
            process.signal("-TERM");
            // Bounded by the broker's own shutdown limits; a hang here is a bug the test reports.
            process.wait_for_exit(Duration::from_secs(30));
            tokio::time::sleep(hold).await;
            cluster.node(victim).start();
        }
    }
    if let Some(controller) = controller {
        node = format!("{node}; controller {controller}");
    }
    Injected {
        kind,
        node,
        at,
        healed: Instant::now(),
    }
}

/// The longest stretch in `[from, to]` in which some partition acknowledged nothing: the
/// partition, and how long after `from` the stretch began. A stretch that began before `from`
/// counts from `from`, since it belongs to the fault before.
fn longest_gap(produced: &[Vec<Ack>], from: Instant, to: Instant) -> (Duration, i32, Duration) {
    let mut worst = (Duration::ZERO, 0, Duration::ZERO);
    for (partition, acks) in produced.iter().enumerate() {
        let times = std::iter::once(from)
            .chain(
                acks.iter()
                    .map(|ack| ack.at)
                    .skip_while(|&at| at <= from)
                    .take_while(|&at| at <= to),
            )
            .chain(std::iter::once(to))
            .collect::<Vec<_>>();
        for pair in times.windows(2) {
            let gap = pair[1].saturating_duration_since(pair[0]);
            if gap > worst.0 {
                worst = (gap, partition as i32, pair[0].duration_since(from));
            }
        }
    }
    worst
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn report(
    settings: &Settings,
    faults: &[Injected],
    produced: &[Vec<Ack>],
    ended: Instant,
) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "nemesis: seed {} ({} faults of {} ms each; replay with STRATA_NEMESIS_SEED={} \
         STRATA_NEMESIS_FAULTS={})\n",
        settings.seed,
        faults.len(),
        settings.hold.as_millis(),
        settings.seed,
        settings.faults
    );
    let _ = writeln!(
        text,
        "| # | fault | node | longest unavailability | partition | began after fault |"
    );
    let _ = writeln!(text, "|---|---|---|---|---|---|");
    let mut by_kind: BTreeMap<FaultKind, Vec<Duration>> = BTreeMap::new();
    for (index, fault) in faults.iter().enumerate() {
        let window_end = faults.get(index + 1).map_or(ended, |next| next.at);
        let (gap, partition, began) = longest_gap(produced, fault.at, window_end);
        by_kind.entry(fault.kind).or_default().push(gap);
        let _ = writeln!(
            text,
            "| {} | {} | {} | {:.2} s | {partition} | {:.2} s |",
            index + 1,
            fault.kind.name(),
            fault.node,
            gap.as_secs_f64(),
            began.as_secs_f64()
        );
    }
    let _ = writeln!(text, "\n| fault | faults | median | worst | target |");
    let _ = writeln!(text, "|---|---|---|---|---|");
    for (kind, mut gaps) in by_kind {
        gaps.sort();
        let _ = writeln!(
            text,
            "| {} | {} | {:.2} s | {:.2} s | {} s |",
            kind.name(),
            gaps.len(),
            median(&gaps).as_secs_f64(),
            gaps.last().expect("one per fault").as_secs_f64(),
            kind.target().as_secs()
        );
    }
    let _ = fault_heal_note(&mut text, faults);
    text
}

fn fault_heal_note(text: &mut String, faults: &[Injected]) -> std::fmt::Result {
    let held: Vec<f64> = faults
        .iter()
        .map(|fault| fault.healed.duration_since(fault.at).as_secs_f64())
        .collect();
    writeln!(
        text,
        "\nEach fault was held {:.1}-{:.1} s (a kill or shutdown includes the process's exit).",
        held.iter().copied().fold(f64::INFINITY, f64::min),
        held.iter().copied().fold(0.0, f64::max),
    )
}

/// What a replica's log of one partition holds: the number of batches, the offset after the
/// last, and a hash of their bytes.
#[derive(Debug, PartialEq, Eq)]
struct LogSummary {
    batches: usize,
    next_offset: i64,
    hash: u64,
}

/// Reads the partition's segments in `data_dir` as the broker left them: whole batches up to
/// the first zeroed or incomplete one (the active segment is preallocated with zeros).
fn summarise_log(data_dir: &Path, partition: i32) -> LogSummary {
    let directory = data_dir.join("logs").join(format!("{TOPIC}-{partition}"));
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("read {}: {error}", directory.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    segments.sort();
    let mut summary = LogSummary {
        batches: 0,
        next_offset: 0,
        hash: 0,
    };
    let mut hasher = DefaultHasher::new();
    for segment in segments {
        let bytes = std::fs::read(&segment).expect("read a segment");
        let mut position = 0;
        while position + 12 <= bytes.len() {
            let base_offset = i64::from_be_bytes(bytes[position..position + 8].try_into().unwrap());
            let length = i32::from_be_bytes(bytes[position + 8..position + 12].try_into().unwrap());
            let Some(end) = usize::try_from(length)
                .ok()
                .filter(|&length| length > 0)
                .map(|length| position + 12 + length)
                .filter(|&end| end <= bytes.len())
            else {
                break;
            };
            // RecordBatch v2: the last offset delta sits after the base offset, length, leader
            // epoch, magic, CRC and attributes.
            let last_offset_delta =
                i32::from_be_bytes(bytes[position + 23..position + 27].try_into().unwrap());
            hasher.write(&bytes[position..end]);
            summary.batches += 1;
            summary.next_offset = base_offset + i64::from(last_offset_delta) + 1;
            position = end;
        }
    }
    summary.hash = hasher.finish();
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_a_fault_schedule_and_writes_resume_after_each_fault() {
    let settings = Settings::from_env();
    // STRATA_NEMESIS_CLIENT_LOG logs the test's own clients (e.g. `strata_client=debug`).
    if let Ok(filter) = std::env::var("STRATA_NEMESIS_CLIENT_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let schedule = settings.schedule(&mut rng);
    eprintln!(
        "nemesis: seed {} (replay with STRATA_NEMESIS_SEED={}), schedule {:?}",
        settings.seed,
        settings.seed,
        schedule.iter().map(|kind| kind.name()).collect::<Vec<_>>()
    );
    // STRATA_NEMESIS_DIR keeps the nodes' data and logs for a look after the run.
    let directory = match std::env::var_os("STRATA_NEMESIS_DIR") {
        Some(kept) => tempfile::Builder::new()
            .prefix("nemesis-")
            .disable_cleanup(true)
            .tempdir_in(kept)
            .unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    eprintln!(
        "nemesis: nodes' data and logs in {}",
        directory.path().display()
    );
    let mut cluster = Cluster::start(directory.path()).await;
    let bootstrap = cluster.bootstrap();
    let admin = eventually("three live brokers", RECOVERY_LIMIT, async || {
        let admin = admin(&bootstrap).await?;
        let cluster = admin.describe_cluster().await.ok()?;
        let live = cluster
            .brokers
            .iter()
            .filter(|broker| !broker.fenced)
            .count();
        (live == NODES.len()).then_some(admin)
    })
    .await;
    admin
        .create_topic(NewTopic::new(TOPIC, PARTITIONS, 3).config("min.insync.replicas", "2"))
        .await
        .unwrap();
    wait_until_healthy(&bootstrap, "three brokers in every ISR").await;

    let producer = Arc::new(
        Producer::connect(
            ProducerConfig::builder()
                .bootstrap(&bootstrap)
                .linger_ms(0)
                .build()
                .unwrap(),
        )
        .await
        .unwrap(),
    );
    let (stop, stopped) = watch::channel(false);
    // Bounded: at most one record per send interval for as long as the schedule could last.
    let limit = (settings.faults as u64 + 1) * (settings.hold + RECOVERY_LIMIT).as_millis() as u64
        / SEND_INTERVAL.as_millis() as u64;
    let produced: Vec<Arc<Mutex<PartitionProduced>>> = (0..PARTITIONS)
        .map(|_| Arc::new(Mutex::new(PartitionProduced::default())))
        .collect();
    let producing: Vec<_> = (0..PARTITIONS)
        .map(|partition| {
            tokio::spawn(produce_partition(
                producer.clone(),
                partition,
                stopped.clone(),
                limit,
                produced[partition as usize].clone(),
            ))
        })
        .collect();
    let (acknowledged_sender, acknowledged_receiver) = watch::channel(None);
    let tailing = spawn_tailing_consumer(
        bootstrap.clone(),
        TOPIC,
        PARTITIONS,
        acknowledged_receiver,
        Duration::from_secs(120),
    );
    eventually(
        "the first acknowledgement of every partition",
        RECOVERY_LIMIT,
        async || {
            produced
                .iter()
                .all(|produced| !produced.lock().unwrap().acks.is_empty())
                .then_some(())
        },
    )
    .await;

    let mut faults = Vec::new();
    for (index, &kind) in schedule.iter().enumerate() {
        let fault = inject(&mut cluster, kind, &mut rng, settings.hold).await;
        eprintln!(
            "nemesis: fault {}/{}: {} on {} healed after {:.1} s",
            index + 1,
            schedule.len(),
            kind.name(),
            fault.node,
            fault.healed.duration_since(fault.at).as_secs_f64()
        );
        faults.push(fault);
        wait_until_healthy(
            &bootstrap,
            &format!(
                "every broker back in every ISR after fault {} ({}); node logs: {}",
                index + 1,
                kind.name(),
                cluster.node_logs()
            ),
        )
        .await;
    }
    // Writes resumed after the last fault too.
    let resumed_after = Instant::now();
    eventually(
        "acknowledgements after the last fault",
        RECOVERY_LIMIT,
        async || {
            produced
                .iter()
                .all(|produced| {
                    produced
                        .lock()
                        .unwrap()
                        .acks
                        .last()
                        .is_some_and(|ack| ack.at > resumed_after)
                })
                .then_some(())
        },
    )
    .await;
    let ended = Instant::now();
    stop.send_replace(true);
    for task in producing {
        task.await.unwrap();
    }

    let produced: Vec<PartitionProduced> = produced
        .into_iter()
        .map(|produced| std::mem::take(&mut *produced.lock().unwrap()))
        .collect();
    for (partition, produced) in produced.iter().enumerate() {
        eprintln!(
            "nemesis: partition {partition}: {} acknowledged, {} failed (last error: {:?})",
            produced.acks.len(),
            produced.failed,
            produced.last_error
        );
    }
    let acks: Vec<Vec<Ack>> = produced
        .iter()
        .map(|produced| produced.acks.clone())
        .collect();
    let text = report(&settings, &faults, &acks, ended);
    eprintln!("{text}");
    if let Some(path) = &settings.report {
        std::fs::write(path, &text).expect("write the report");
    }

    // Safety: every acknowledged record at the offset its acknowledgement named, once, in order.
    let acknowledged: Vec<(String, String)> = acks
        .iter()
        .enumerate()
        .flat_map(|(partition, acks)| {
            acks.iter().map(move |ack| {
                (
                    format!("p{partition}"),
                    format!("p{partition}:{}", ack.sequence),
                )
            })
        })
        .collect();
    let read = read_every_partition(&bootstrap, &acks).await;
    read.assert_once_each_in_key_order();
    acknowledged_sender.send_replace(Some(acknowledged));
    tailing.await.unwrap().assert_once_each_in_key_order();

    // Every replica holds the same log once the followers have caught up.
    wait_until_healthy(&bootstrap, "three brokers in every ISR at the end").await;
    let data_dirs: Vec<PathBuf> = cluster
        .nodes
        .iter()
        .map(|node| node.data_dir.clone())
        .collect();
    eventually(
        "every replica's log the same",
        Duration::from_secs(60),
        async || {
            (0..PARTITIONS)
                .all(|partition| {
                    let summaries: Vec<LogSummary> = data_dirs
                        .iter()
                        .map(|data_dir| summarise_log(data_dir, partition))
                        .collect();
                    let same = summaries.windows(2).all(|pair| pair[0] == pair[1]);
                    if !same {
                        eprintln!("nemesis: partition {partition} replicas differ: {summaries:?}");
                    }
                    same
                })
                .then_some(())
        },
    )
    .await;
}

/// Reads every partition from the beginning up to its last acknowledged offset, and checks each
/// acknowledged record sits at the offset it was acknowledged with.
async fn read_every_partition(bootstrap: &str, acks: &[Vec<Ack>]) -> KeyedReads {
    let mut consumer = consumer_from_beginning(bootstrap, TOPIC, PARTITIONS).await;
    let last_acknowledged: Vec<i64> = acks
        .iter()
        .map(|acks| acks.last().map_or(-1, |ack| ack.offset))
        .collect();
    let mut at_offset: Vec<BTreeMap<i64, String>> = vec![BTreeMap::new(); PARTITIONS as usize];
    let mut read = KeyedReads::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    let caught_up = |at_offset: &[BTreeMap<i64, String>]| {
        at_offset
            .iter()
            .zip(&last_acknowledged)
            .all(|(read, &last)| read.last_key_value().map_or(-1, |(&offset, _)| offset) >= last)
    };
    while !caught_up(&at_offset) {
        assert!(
            Instant::now() < deadline,
            "reading back: {} records read, last acknowledged offsets {last_acknowledged:?}",
            read.distinct()
        );
        for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            read.add(&record);
            let value = String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap();
            at_offset[record.partition as usize].insert(record.offset, value);
        }
    }
    for (partition, acks) in acks.iter().enumerate() {
        for ack in acks {
            let expected = format!("p{partition}:{}", ack.sequence);
            assert_eq!(
                at_offset[partition].get(&ack.offset),
                Some(&expected),
                "partition {partition}: the record acknowledged at offset {} is not there",
                ack.offset
            );
        }
    }
    read
}
