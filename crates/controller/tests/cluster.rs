//! Real controllers on loopback: three nodes, each serving its controller service on its own port,
//! as a broker would. Every wait polls a condition under a deadline; nothing sleeps to synchronise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_common::{Clock, ErrorCode, ManualClock, TopicPartition};
use strata_controller::{
    CommandOutcome, Controller, ControllerConfig, ControllerError, MetadataCommand, MetadataState,
    NO_LEADER,
};
use strata_tests::link::Link;
use strata_tests::relay::SilencingRelay;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(10);

/// Logs to the test's output when `RUST_LOG` asks for it (e.g. `RUST_LOG=strata_controller=info`).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// One controller and the tonic server it is mounted on.
struct Node {
    id: i32,
    address: String,
    data_dir: PathBuf,
    controller: Option<Controller>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Node {
    fn controller(&self) -> &Controller {
        self.controller.as_ref().expect("node is running")
    }

    fn is_running(&self) -> bool {
        self.controller.is_some()
    }

    async fn kill(&mut self) {
        if let Some(controller) = self.controller.take() {
            controller.shutdown().await;
        }
        if let Some((stop, server)) = self.server.take() {
            let _ = stop.send(());
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

fn config(id: i32, voters: &[(i32, String)], data_dir: PathBuf) -> ControllerConfig {
    let mut config = ControllerConfig::new(id, voters.to_vec(), data_dir);
    // Small, so the restart test sees snapshots taken, the log purged and a snapshot installed.
    config.snapshot_interval_entries = 10;
    // Fast elections keep the failover tests short; these in-process quorums carry no data
    // load, which is what the longer defaults guard against.
    config.election_timeout_ms = 300;
    config.heartbeat_interval_ms = 100;
    config
}

fn serve(controller: &Controller, listener: TcpListener) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let service = controller.service();
    let server = tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await;
        if let Err(error) = result {
            eprintln!("controller server failed: {error}");
        }
    });
    (stop, server)
}

struct Cluster {
    nodes: Vec<Node>,
    voters: Vec<(i32, String)>,
    /// With `start_behind_relays`, what the voters reach node `i + 1` through.
    relays: Vec<SilencingRelay>,
    /// With `start_with_links`, the link carrying the first node's calls to the second.
    links: BTreeMap<(i32, i32), Link>,
    clock: Arc<ManualClock>,
    _directory: tempfile::TempDir,
}

impl Cluster {
    async fn start(size: i32) -> Cluster {
        Cluster::start_with(size, false).await
    }

    /// Every voter reaches every other through a relay in front of it, which a test can silence.
    async fn start_behind_relays(size: i32) -> Cluster {
        Cluster::start_with(size, true).await
    }

    /// Binds every listener first, since each controller needs all voters' ports up front.
    async fn start_with(size: i32, behind_relays: bool) -> Cluster {
        init_logging();
        let directory = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut listeners = Vec::new();
        for _ in 0..size {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let addresses: Vec<String> = listeners
            .iter()
            .map(|listener| listener.local_addr().expect("address").to_string())
            .collect();
        let mut relays = Vec::new();
        if behind_relays {
            for listener in &listeners {
                let mut relay = SilencingRelay::bind().await;
                relay.forward_to(listener.local_addr().expect("address"));
                relays.push(relay);
            }
        }
        let voters: Vec<(i32, String)> = (1..)
            .zip(&addresses)
            .map(|(id, address)| match relays.get(id as usize - 1) {
                Some(relay) => (id, relay.address().to_string()),
                None => (id, address.clone()),
            })
            .collect();
        let nodes = start_nodes(&directory, &clock, listeners, |_| voters.clone()).await;
        Cluster {
            nodes,
            voters,
            relays,
            links: BTreeMap::new(),
            clock,
            _directory: directory,
        }
    }

    /// Every voter reaches each other one through its own link, so a test can cut any voter off.
    async fn start_with_links(size: i32) -> Cluster {
        init_logging();
        let directory = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut listeners = Vec::new();
        for _ in 0..size {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let ids: Vec<i32> = (1..=size).collect();
        let mut links = BTreeMap::new();
        for &from in &ids {
            for (&to, listener) in ids.iter().zip(&listeners) {
                if from != to {
                    let endpoint = listener.local_addr().expect("address");
                    links.insert((from, to), Link::to(endpoint).await);
                }
            }
        }
        let addresses: Vec<String> = listeners
            .iter()
            .map(|listener| listener.local_addr().expect("address").to_string())
            .collect();
        let nodes = start_nodes(&directory, &clock, listeners, |id| {
            ids.iter()
                .zip(&addresses)
                .map(|(&voter, address)| match links.get(&(id, voter)) {
                    Some(link) => (voter, link.address().to_string()),
                    None => (voter, address.clone()),
                })
                .collect()
        })
        .await;
        Cluster {
            nodes,
            voters: Vec::new(),
            relays: Vec::new(),
            links,
            clock,
            _directory: directory,
        }
    }

    /// Cuts (or heals) every link to and from `id`.
    fn set_links_of(&self, id: i32, connected: bool) {
        for (&(from, to), link) in &self.links {
            if from == id || to == id {
                if connected {
                    link.heal();
                } else {
                    link.cut();
                }
            }
        }
    }

    fn node(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|node| node.id == id)
            .expect("node exists")
    }

    fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|node| node.is_running())
    }

    /// Waits until every running node names the same leader, and returns it.
    async fn agreed_leader(&self) -> i32 {
        poll("the running controllers to agree on a leader", || {
            let mut leaders = self.running().map(|node| node.controller().leader_id());
            let first = leaders.next()??;
            let running: Vec<i32> = self.running().map(|node| node.id).collect();
            (running.contains(&first) && leaders.all(|leader| leader == Some(first)))
                .then_some(first)
        })
        .await
    }

    fn follower_of(&self, leader: i32) -> &Controller {
        self.running()
            .find(|node| node.id != leader)
            .expect("a follower runs")
            .controller()
    }

    async fn restart(&mut self, id: i32) {
        let voters = self.voters.clone();
        let clock = self.clock.clone();
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.id == id)
            .expect("node exists");
        let listener = TcpListener::bind(&node.address)
            .await
            .expect("rebind the node's port");
        let controller = Controller::start(
            config(id, &voters, node.data_dir.clone()),
            clock as Arc<dyn Clock>,
        )
        .await
        .expect("controller restarts");
        node.server = Some(serve(&controller, listener));
        node.controller = Some(controller);
    }

    async fn shutdown(mut self) {
        for node in &mut self.nodes {
            node.kill().await;
        }
    }
}

/// Starts node `i + 1` on `listeners[i]`, each with the voter list `voters_of` gives it.
async fn start_nodes(
    directory: &tempfile::TempDir,
    clock: &Arc<ManualClock>,
    listeners: Vec<TcpListener>,
    voters_of: impl Fn(i32) -> Vec<(i32, String)>,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (id, listener) in (1..).zip(listeners) {
        let address = listener.local_addr().expect("address").to_string();
        let data_dir = directory.path().join(format!("node-{id}"));
        let controller = Controller::start(
            config(id, &voters_of(id), data_dir.clone()),
            clock.clone() as Arc<dyn Clock>,
        )
        .await
        .expect("controller starts");
        let server = serve(&controller, listener);
        nodes.push(Node {
            id,
            address,
            data_dir,
            controller: Some(controller),
            server: Some(server),
        });
    }
    nodes
}

/// Polls `probe` until it returns `Some`, failing the test after `WAIT`.
async fn poll<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `controller`'s applied metadata satisfies `condition`.
async fn metadata_where(
    controller: &Controller,
    what: &str,
    condition: impl Fn(&MetadataState) -> bool,
) -> Arc<MetadataState> {
    let mut metadata = controller.metadata();
    let result = tokio::time::timeout(WAIT, metadata.wait_for(|state| condition(state))).await;
    match result {
        Ok(Ok(state)) => Arc::clone(&state),
        Ok(Err(_)) => panic!(
            "controller {} stopped while waiting for {what}",
            controller.node_id()
        ),
        Err(_) => panic!(
            "timed out after {WAIT:?} waiting on controller {} for {what}",
            controller.node_id()
        ),
    }
}

fn create_topic(name: &str, partitions: i32, replication_factor: i32) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.to_string(),
        partitions,
        replication_factor,
        configs: BTreeMap::new(),
    }
}

async fn register_brokers(
    controller: &Controller,
    clock: &ManualClock,
    count: i32,
) -> BTreeMap<i32, i64> {
    let mut epochs = BTreeMap::new();
    for broker_id in 1..=count {
        let outcome = controller
            .submit(MetadataCommand::RegisterBroker {
                broker_id,
                address: format!("127.0.0.1:{}", 19_000 + broker_id),
                incarnation: 1,
                now_ms: clock.now_ms(),
                kafka_address: None,
            })
            .await
            .expect("broker registers");
        let CommandOutcome::BrokerRegistered { broker_epoch, .. } = outcome else {
            panic!("unexpected {outcome:?}");
        };
        epochs.insert(broker_id, broker_epoch);
    }
    epochs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_survives_leader_failure_and_a_restarted_node_catches_up() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.agreed_leader().await;
    for node in cluster.running() {
        metadata_where(node.controller(), "a cluster id", |state| {
            !state.cluster_id.is_empty()
        })
        .await;
    }

    // Through a follower, so the command is forwarded to the leader.
    let follower = cluster.follower_of(leader);
    register_brokers(follower, &cluster.clock, 3).await;
    let created = follower
        .submit(create_topic("orders", 3, 3))
        .await
        .expect("topic created");
    let CommandOutcome::TopicCreated { topic } = created else {
        panic!("unexpected {created:?}");
    };
    for node in cluster.running() {
        let state = metadata_where(node.controller(), "topic orders", |state| {
            state.topic("orders").is_some()
        })
        .await;
        assert_eq!(
            state.topic("orders"),
            Some(&topic),
            "controller {} disagrees",
            node.id
        );
    }
    let refused = follower
        .submit(create_topic("orders", 1, 1))
        .await
        .expect_err("duplicate topic");
    assert_eq!(refused.code(), ErrorCode::TopicAlreadyExists);
    assert!(matches!(refused, ControllerError::Rejected(_)));

    // Kill the leader: another is elected and topic creation continues.
    let killed_at = Instant::now();
    let old_leader = leader;
    if let Some(node) = cluster.nodes.iter_mut().find(|node| node.id == old_leader) {
        node.kill().await;
    }
    let killed_in = killed_at.elapsed();
    let new_leader = cluster.agreed_leader().await;
    let failover = killed_at.elapsed();
    eprintln!(
        "failover: controller {old_leader} killed (stopping took {} ms), controller {new_leader} leads {} ms after the kill began",
        killed_in.as_millis(),
        failover.as_millis()
    );
    assert_ne!(new_leader, old_leader);
    assert!(
        failover < Duration::from_secs(3),
        "failover took {failover:?}"
    );

    let survivor = cluster.node(new_leader).controller();
    survivor
        .submit(create_topic("payments", 2, 2))
        .await
        .expect("topic created after failover");
    // Enough commands for snapshots to be taken and the log purged past what the dead node has.
    for index in 0..25 {
        cluster
            .follower_of(new_leader)
            .submit(create_topic(&format!("filler-{index}"), 1, 1))
            .await
            .expect("filler topic");
    }
    let leader_state = metadata_where(survivor, "the filler topics", |state| {
        state.topic("filler-24").is_some()
    })
    .await;

    // Restart the killed node from its data directory: it rejoins and catches up.
    cluster.restart(old_leader).await;
    let rejoined = cluster.node(old_leader).controller();
    let caught_up = metadata_where(rejoined, "catching up", |state| {
        state.metadata_offset >= leader_state.metadata_offset
    })
    .await;
    assert!(caught_up.topic("payments").is_some() && caught_up.topic("filler-24").is_some());
    assert_eq!(caught_up.topic("orders"), Some(&topic));
    assert_eq!(
        cluster.agreed_leader().await,
        new_leader,
        "a returning node does not disturb the leader"
    );

    // And it takes part: a command submitted on it reaches everyone.
    rejoined
        .submit(create_topic("after-restart", 1, 3))
        .await
        .expect("topic created via the rejoined node");
    for node in cluster.running() {
        metadata_where(node.controller(), "topic after-restart", |state| {
            state.topic("after-restart").is_some()
        })
        .await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_that_stop_heartbeating_are_fenced_and_their_partitions_move_within_the_isr() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.agreed_leader().await;
    let controller = cluster.follower_of(leader);
    metadata_where(controller, "a cluster id", |state| {
        !state.cluster_id.is_empty()
    })
    .await;
    let epochs = register_brokers(controller, &cluster.clock, 3).await;
    controller
        .submit(create_topic("events", 3, 3))
        .await
        .expect("topic created");
    let before = metadata_where(controller, "topic events", |state| {
        state.topic("events").is_some()
    })
    .await;
    let partition = |state: &MetadataState, index: i32| {
        state
            .partition(&TopicPartition::new("events", index))
            .cloned()
            .expect("partition exists")
    };
    assert!(
        (0..3).any(|index| partition(&before, index).leader == 3),
        "broker 3 leads a partition"
    );

    // Brokers 1 and 2 keep heartbeating while the clock runs past broker 3's session timeout.
    let heartbeat_started = cluster.clock.now_ms();
    let (cluster_ref, epochs_ref) = (&cluster, &epochs);
    let fenced = poll_async(move || async move {
        let (cluster, epochs) = (cluster_ref, epochs_ref);
        if cluster.clock.now_ms() - heartbeat_started < 4 * 2_000 {
            cluster.clock.advance_ms(250);
        }
        for broker_id in [1, 2] {
            controller
                .submit(MetadataCommand::BrokerHeartbeat {
                    broker_id,
                    broker_epoch: epochs[&broker_id],
                    now_ms: cluster.clock.now_ms(),
                    offline_log_dirs: Vec::new(),
                })
                .await
                .expect("heartbeat accepted");
        }
        let state = Arc::clone(&controller.metadata().borrow());
        state
            .broker(3)
            .is_some_and(|broker| broker.fenced)
            .then_some(state)
    })
    .await;
    assert!(fenced.broker(1).is_some_and(|broker| !broker.fenced));
    assert!(fenced.broker(2).is_some_and(|broker| !broker.fenced));
    for index in 0..3 {
        let (old, new) = (partition(&before, index), partition(&fenced, index));
        assert_ne!(new.leader, 3);
        assert_ne!(new.leader, NO_LEADER, "another ISR member can lead");
        assert!(
            old.isr.contains(&new.leader),
            "the new leader {} comes from the ISR {:?}",
            new.leader,
            old.isr
        );
        assert!(!new.isr.contains(&3));
        assert!(new.partition_epoch > old.partition_epoch);
        if old.leader == 3 {
            assert_eq!(
                new.leader_epoch,
                old.leader_epoch + 1,
                "a leadership change bumps the epoch"
            );
        } else {
            assert_eq!(
                (new.leader, new.leader_epoch),
                (old.leader, old.leader_epoch)
            );
        }
    }
    for node in cluster.running() {
        let state = metadata_where(node.controller(), "the fencing", |state| {
            state.metadata_offset >= fenced.metadata_offset
        })
        .await;
        assert!(
            state.broker(3).is_some_and(|broker| broker.fenced),
            "controller {} disagrees",
            node.id
        );
    }

    // Broker 3 heartbeats again: the leader's driver unfences it.
    controller
        .submit(MetadataCommand::BrokerHeartbeat {
            broker_id: 3,
            broker_epoch: epochs[&3],
            now_ms: cluster.clock.now_ms(),
            offline_log_dirs: Vec::new(),
        })
        .await
        .expect("heartbeat accepted");
    metadata_where(controller, "broker 3 unfenced", |state| {
        state.broker(3).is_some_and(|broker| !broker.fenced)
    })
    .await;
    cluster.shutdown().await;
}

/// `poll` for a probe that has to await.
async fn poll_async<T, F: std::future::Future<Output = Option<T>>>(
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {WAIT:?}");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_is_refused_to_another_node_or_cluster() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data_dir = directory.path().join("node");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));

    let single_voter = |node_id: i32| {
        let mut config =
            ControllerConfig::new(node_id, vec![(node_id, address.clone())], &data_dir);
        config.snapshot_interval_entries = 5;
        config
    };

    // A single-voter quorum names its cluster by itself.
    let controller = Controller::start(single_voter(1), clock.clone())
        .await
        .expect("starts");
    let (stop, server) = serve(&controller, listener);
    let state = metadata_where(&controller, "a cluster id", |state| {
        !state.cluster_id.is_empty()
    })
    .await;
    let cluster_id = state.cluster_id.clone();
    register_brokers(&controller, &ManualClock::new(0), 1).await;
    for index in 0..12 {
        controller
            .submit(create_topic(&format!("t{index}"), 1, 1))
            .await
            .expect("topic created");
    }
    // An oversized command is refused before it reaches the log.
    let oversized = controller
        .submit(create_topic(&"x".repeat(2 << 20), 1, 1))
        .await
        .expect_err("oversized command");
    assert_eq!(oversized.code(), ErrorCode::InvalidRequest, "{oversized}");
    let before_restart = Arc::clone(&controller.metadata().borrow());
    controller.shutdown().await;
    let _ = stop.send(());
    let _ = server.await;

    assert!(
        data_dir.join("controller").join("snapshot").exists(),
        "a snapshot was taken"
    );
    match Controller::start(single_voter(2), clock.clone()).await {
        Err(ControllerError::DataDirectoryMismatch(message)) => {
            assert!(
                message.contains("belongs to node 1, not node 2"),
                "{message}"
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("node 2 must not start on node 1's data directory"),
    }
    let mut other_cluster = single_voter(1);
    other_cluster.cluster_id = Some("another-cluster".to_string());
    match Controller::start(other_cluster, clock.clone()).await {
        Err(ControllerError::DataDirectoryMismatch(message)) => {
            assert!(
                message.contains(&cluster_id) && message.contains("another-cluster"),
                "{message}"
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a directory of another cluster must be refused"),
    }
    // The right node id and cluster id still start, and rebuild the state from the snapshot and
    // the log after it.
    let mut same = single_voter(1);
    same.cluster_id = Some(cluster_id.clone());
    let controller = Controller::start(same, clock).await.expect("restarts");
    let rebuilt = metadata_where(&controller, "the state from before the restart", |state| {
        state.metadata_offset >= before_restart.metadata_offset
    })
    .await;
    assert_eq!(*rebuilt, *before_restart);
    controller.shutdown().await;
}

/// A voter whose connections from the leader go silent (its host vanished without a reset and
/// came back, or a NAT forgot them) must be reached again over new connections, not left behind
/// for good on the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_behind_connections_gone_silent_is_reached_again_and_catches_up() {
    let cluster = Cluster::start_behind_relays(3).await;
    let leader = cluster.agreed_leader().await;
    register_brokers(cluster.node(leader).controller(), &cluster.clock, 1).await;
    let silenced = cluster
        .running()
        .map(|node| node.id)
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.relays[silenced as usize - 1].silence_existing_connections();

    cluster
        .node(leader)
        .controller()
        .submit(create_topic("after-silence", 1, 1))
        .await
        .expect("the leader and the other voter are a quorum");
    metadata_where(
        cluster.node(silenced).controller(),
        "the silenced voter to learn of the new topic",
        |state| state.topic("after-silence").is_some(),
    )
    .await;
    cluster.shutdown().await;
}

/// A leader about to stop hands over (Raft's leadership transfer): another voter leads when the
/// call returns, without waiting out an election timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_hands_its_leadership_over_before_it_stops() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.agreed_leader().await;
    // openraft's leader grants no vote during its own lease, twice the election timeout (600 ms
    // here) from its election, and nothing observable marks the lease's end; a leader that stops
    // has usually led far longer.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        cluster
            .node(leader)
            .controller()
            .hand_off_leadership(WAIT)
            .await,
        "the leader did not hand over"
    );
    let successor = cluster.agreed_leader().await;
    assert_ne!(successor, leader);
    // A follower hands nothing over and says another node leads.
    assert!(
        cluster
            .node(leader)
            .controller()
            .hand_off_leadership(Duration::from_secs(1))
            .await
    );
    cluster.shutdown().await;
}

/// Pre-vote: a voter cut off from the others neither campaigns nor raises its term, so when the
/// network heals it follows the leader it lost, which still leads in the same term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_cut_off_and_healed_does_not_depose_the_leader() {
    let cluster = Cluster::start_with_links(3).await;
    let leader = cluster.agreed_leader().await;
    let term = cluster.node(leader).controller().raft_status().term;
    let cut_off = cluster
        .running()
        .map(|node| node.id)
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.set_links_of(cut_off, false);
    // What is tested is that nothing happens, so there is no condition to await: ten election
    // timeouts (300 ms here) is several campaigns for a voter without pre-vote.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        cluster.node(cut_off).controller().raft_status().term,
        term,
        "the cut-off voter campaigned"
    );

    cluster.set_links_of(cut_off, true);
    cluster
        .node(leader)
        .controller()
        .submit(create_topic("after-the-cut", 1, 1))
        .await
        .expect_err("no broker is registered, so the topic is refused, but the command commits");
    // The command is in the leader's log after the heal, so a voter that has it heard from the
    // leader since.
    let committed = cluster.node(leader).controller().raft_status().committed;
    poll("the healed voter to catch up with the leader", || {
        (cluster.node(cut_off).controller().raft_status().committed >= committed).then_some(())
    })
    .await;
    let status = cluster.node(leader).controller().raft_status();
    assert!(status.is_leader, "the leader was deposed");
    assert_eq!(status.term, term);
    assert_eq!(cluster.node(cut_off).controller().raft_status().term, term);
    cluster.shutdown().await;
}

/// A leader cut off from the other voters: they elect another, and the old one, which openraft
/// lets believe it still leads, refuses to propose rather than wait for a commit that cannot
/// come. Healed, it follows the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_quorum_refuses_commands_while_the_others_elect() {
    let cluster = Cluster::start_with_links(3).await;
    let leader = cluster.agreed_leader().await;
    cluster.set_links_of(leader, false);
    let others: Vec<i32> = cluster
        .running()
        .map(|node| node.id)
        .filter(|&id| id != leader)
        .collect();
    let successor = poll("the other voters to elect a leader", || {
        let status = cluster.node(others[0]).controller().raft_status();
        status.leader_id.filter(|&id| id != leader)
    })
    .await;
    let refused = tokio::time::timeout(
        WAIT,
        cluster
            .node(leader)
            .controller()
            .submit(create_topic("cut-off", 1, 1)),
    )
    .await
    .expect("a leader without a quorum answers within the submit timeout");
    let Err(ControllerError::LeaderNotAvailable { reason, .. }) = refused else {
        panic!("expected LEADER_NOT_AVAILABLE, got {refused:?}");
    };
    assert!(reason.contains("no majority of voters"), "{reason}");

    cluster.set_links_of(leader, true);
    poll("the old leader to follow the new one", || {
        (cluster.node(leader).controller().leader_id() == Some(successor)).then_some(())
    })
    .await;
    cluster.shutdown().await;
}
