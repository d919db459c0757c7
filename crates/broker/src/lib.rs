//! A Strata node: a broker serving produce, fetch, offsets, metadata, topic admin and
//! replication over gRPC (and, to Kafka clients, over Kafka's protocol) on top of the storage
//! crate, next to a Raft controller voter.
//!
//! Request flow: `grpc` decodes a request and calls the `ReplicaManager` (data path) or submits
//! a command to the `Controller` (admin path); `broker_lifecycle` applies the replicated metadata
//! to the replicas. Errors come back per partition as `PartitionError` and become wire codes in
//! `grpc::status`, the one place that maps them.
//!
//! Architecture invariants: decisions made from the time read it through a `Clock` (the
//! storage layer gets one too); plain monotonic `Instant`s only bound waits. Prost types are
//! built and read in `grpc`; in `kafka`, which translates Kafka's messages into the gRPC
//! door's calls; and where the broker itself is a client of another node: the follower's
//! `replica_fetcher` and the group coordinator's queries to partition leaders.

pub mod authentication;
pub mod authorization;
mod broker_lifecycle;
mod client_boundary;
pub mod error;
mod group_coordinator;
mod grpc;
mod http_admin;
mod kafka;
pub mod leader_state;
pub mod metadata;
pub mod metrics;
pub mod peer_channels;
mod replica_fetcher;
pub mod replica_manager;
mod request_budget;
pub mod topic_config;
mod worker_appends;

pub use error::{BrokerError, PartitionError};
pub use grpc::status::ERROR_CODE_METADATA;
pub use http_admin::HttpPeer;

use futures::FutureExt;
pub use group_coordinator::GroupCoordinatorConfig;
use metadata::NodeState;
use replica_manager::ReplicaManager;
pub use replica_manager::ReplicationConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use strata_common::{Clock, SystemClock};
use strata_controller::{Controller, ControllerConfig, MetadataCommand};
use strata_proto::replication_v1::replication_server::ReplicationServer;
use strata_proto::v1::admin_server::AdminServer;
use strata_proto::v1::broker_server::BrokerServer;
use strata_proto::v1::group_coordinator_server::GroupCoordinatorServer;
use strata_proto::v1::records_server::RecordsServer;
use strata_storage::LogManager;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tracing::{info, warn};

/// Requests up to this size are accepted (a produce of many batches, for instance); single
/// batches are bounded by each topic's `max.message.bytes`.
pub const MAX_REQUEST_BYTES: usize = 128 * 1024 * 1024;

/// Two of the largest requests at once: enough to keep appends busy while the next request
/// arrives, and a bound on produce memory a 1 GiB container can afford.
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: usize = 2 * MAX_REQUEST_BYTES;

/// How often every partition's high watermark is written to disk (Kafka checkpoints every 5 s).
const HIGH_WATERMARK_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// How long shutdown waits for open connections to finish. Partitions are closed by then, so
/// their requests end at once; a connection still open after this belongs to a peer that
/// stopped answering (HTTP/2's graceful close waits for a PING ack it will never send).
const CONNECTION_DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long each step of a controlled shutdown (moving partition leadership away, then the
/// controller quorum's) may take before the broker stops without it.
const CONTROLLED_SHUTDOWN_LIMIT: Duration = Duration::from_secs(3);

/// The standard health service's name, which reflection lists beside the client services.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Everything a broker needs to start. `Default` gives a one-node cluster on 127.0.0.1:7070.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub data_dir: PathBuf,
    /// Address to bind; port 0 picks a free port (see [`BrokerHandle::local_addr`]).
    pub listen: SocketAddr,
    /// host:port clients are told to connect to; defaults to the bound address.
    pub advertise: Option<String>,
    /// Address of the internal listener, which serves only other brokers: replication and the
    /// controller quorum's Raft traffic. `None` binds the IP of `listen` at the port this
    /// node's own `voters` entry names; a single-node cluster, which has no peers, binds an
    /// ephemeral loopback port. Keep it on a network clients cannot reach (see ARCHITECTURE.md,
    /// "Trust boundaries").
    pub internal_listen: Option<SocketAddr>,
    /// Address of the Kafka listener (Kafka's wire protocol, for Kafka clients and tools);
    /// `None` opens none. Port 0 picks a free port (see [`BrokerHandle::kafka_addr`]).
    pub kafka_listen: Option<SocketAddr>,
    /// host:port Kafka clients are told to connect to; defaults to the bound Kafka address.
    pub kafka_advertise: Option<String>,
    /// Address of the HTTP admin listener (`/metrics`, `/health`, `/ready`; see
    /// `http_admin`); `None` opens none. Port 0 picks a free port (see
    /// [`BrokerHandle::http_addr`]).
    pub http_listen: Option<SocketAddr>,
    /// More pages for the HTTP admin listener, served beside its own: the CLI's web console,
    /// which is a client of the cluster and so cannot live in this crate.
    pub http_routes: Option<axum::Router>,
    /// Controller voters as (node_id, host:port of the node's internal listener); empty means a
    /// single-node cluster.
    pub voters: Vec<(i32, String)>,
    /// How often retention, time-based flushes and checkpoints run.
    pub log_maintenance_interval: Duration,
    pub replication: ReplicationConfig,
    /// A broker whose heartbeats stop for this long is fenced and loses its leaderships. It
    /// heartbeats four times per session and stops acting as a leader by itself three quarters
    /// of a session after its last answered heartbeat (its lease). The default, 2.5 s, is what a
    /// dead, paused or cut-off broker costs its partitions before they move (plus a controller
    /// tick and the client's retry): Kafka's 9 s default is safer on a congested network,
    /// while shorter would fence live brokers whose heartbeats a loaded machine delays (a
    /// heartbeat is a Raft commit). See `benches/README.md`, "Availability through faults".
    pub broker_session_timeout_ms: i64,
    /// Bytes of produce requests being appended at once, across all connections (Kafka's
    /// `queued.max.request.bytes`); see `request_budget`.
    pub queued_max_request_bytes: usize,
    pub groups: GroupCoordinatorConfig,
    /// TLS on every listener and on every connection to another node; `None` is plaintext.
    pub tls: Option<TlsConfig>,
    /// Whether clients of the client and Kafka listeners must prove a user (SASL on Kafka's,
    /// `authorization: Basic` on gRPC's); see `authentication`.
    pub require_authentication: bool,
    /// A user (name, password) this node creates if the cluster does not have it yet, so a
    /// cluster that requires authentication has a first user (Redpanda's RP_BOOTSTRAP_USER).
    pub bootstrap_user: Option<(String, String)>,
    /// Users every authorization check lets through (Kafka's `super.users`); the bootstrap user
    /// is one too. See `authorization`.
    pub super_users: Vec<String>,
}

/// A node's TLS: one identity served on all three listeners and presented to other nodes.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// This node's certificate chain and key (PEM), re-read when the files change.
    pub identity: strata_tls::IdentityFiles,
    /// The CA bundle (PEM) that signs node certificates, and client certificates when clients
    /// are asked for one. Nodes verify each other against it both ways.
    pub ca: PathBuf,
    /// Whether clients of the client and Kafka listeners present a certificate. The internal
    /// listener always requires one signed by `ca`: it serves nodes only.
    pub client_auth: strata_tls::ClientAuth,
    /// The CA bundle that signs clients' certificates, when not `ca`. Keeping clients' CA apart
    /// from the nodes' means no client certificate is accepted on the internal listener.
    pub client_ca: Option<PathBuf>,
}

/// What a node's TLS configuration becomes once its files are loaded.
struct NodeTls {
    /// For the client and Kafka listeners.
    clients: strata_tls::ServerTls,
    /// For the internal listener: mutual TLS, nodes only.
    internal: strata_tls::ServerTls,
    /// For connections this node opens to other nodes.
    peers: strata_tls::ClientTls,
}

impl NodeTls {
    fn load(config: &TlsConfig) -> Result<Self, BrokerError> {
        let startup = |error: strata_tls::TlsError| BrokerError::Startup(format!("TLS: {error}"));
        Ok(Self {
            clients: strata_tls::ServerTls::new(
                &config.identity,
                Some(config.client_ca.as_ref().unwrap_or(&config.ca)),
                config.client_auth,
            )
            .map_err(startup)?,
            internal: strata_tls::ServerTls::new(
                &config.identity,
                Some(&config.ca),
                strata_tls::ClientAuth::Required,
            )
            .map_err(startup)?,
            peers: strata_tls::ClientTls::new(&config.ca, Some(&config.identity))
                .map_err(startup)?,
        })
    }
}

impl BrokerConfig {
    /// Where the internal listener binds; see [`BrokerConfig::internal_listen`].
    fn internal_listen_address(&self) -> Result<SocketAddr, BrokerError> {
        let own_voter = self
            .voters
            .iter()
            .find(|(id, _)| *id == self.node_id)
            .map(|(_, address)| address.as_str());
        let address = match (self.internal_listen, own_voter) {
            (Some(address), _) => address,
            (None, Some(voter)) if self.voters.len() > 1 => {
                let port = voter
                    .rsplit_once(':')
                    .and_then(|(_, port)| port.parse::<u16>().ok())
                    .ok_or_else(|| {
                        BrokerError::Startup(format!(
                            "this node's voter address '{voter}' has no port to listen on"
                        ))
                    })?;
                SocketAddr::new(self.listen.ip(), port)
            }
            _ => SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        if self.voters.len() > 1 && address.port() == 0 {
            return Err(BrokerError::Startup(
                "the internal listener needs a fixed port, the one --voters names for this node"
                    .to_string(),
            ));
        }
        if address.port() != 0 && address.port() == self.listen.port() {
            return Err(BrokerError::Startup(format!(
                "the internal listener ({address}, where --voters points other nodes) and the \
                 client listener ({}) must use different ports: replication and Raft are not \
                 served to clients",
                self.listen
            )));
        }
        Ok(address)
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            data_dir: PathBuf::from("strata-data"),
            listen: "127.0.0.1:7070".parse().expect("valid literal address"),
            advertise: None,
            internal_listen: None,
            kafka_listen: None,
            kafka_advertise: None,
            voters: Vec::new(),
            log_maintenance_interval: Duration::from_secs(10),
            replication: ReplicationConfig::default(),
            broker_session_timeout_ms: 2_500,
            queued_max_request_bytes: DEFAULT_QUEUED_MAX_REQUEST_BYTES,
            groups: GroupCoordinatorConfig::default(),
            tls: None,
            require_authentication: false,
            bootstrap_user: None,
            http_listen: None,
            http_routes: None,
            super_users: Vec::new(),
        }
    }
}

/// What the request handlers share.
pub(crate) struct BrokerState {
    pub(crate) node: NodeState,
    pub(crate) controller: Arc<Controller>,
    /// The metadata state the local replicas last caught up with.
    pub(crate) applied_metadata:
        tokio::sync::watch::Receiver<Arc<strata_controller::MetadataState>>,
    pub(crate) replicas: Arc<ReplicaManager>,
    pub(crate) groups: Arc<group_coordinator::GroupCoordinator>,
    pub(crate) request_budget: request_budget::RequestBytesBudget,
    pub(crate) authenticator: Arc<authentication::Authenticator>,
    pub(crate) authorizer: authorization::Authorizer,
    pub(crate) metrics: Arc<metrics::Metrics>,
}

/// A running broker.
pub struct BrokerHandle {
    local_addr: SocketAddr,
    internal_addr: SocketAddr,
    kafka_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    replicas: Arc<ReplicaManager>,
    controller: Arc<Controller>,
    /// The metadata the local replicas last caught up with.
    applied_metadata: tokio::sync::watch::Receiver<Arc<strata_controller::MetadataState>>,
    single_node: bool,
    background: Vec<JoinHandle<()>>,
    data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    logs: Arc<LogManager>,
}

impl BrokerHandle {
    /// The address the client listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the internal listener (replication, Raft) is bound to.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal_addr
    }

    /// The address the Kafka listener is bound to, if the broker opened one.
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.kafka_addr
    }

    /// The address the HTTP admin listener is bound to, if the broker opened one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The partitions this broker hosts; for the controller integration and tests.
    pub fn replica_manager(&self) -> &Arc<ReplicaManager> {
        &self.replicas
    }

    /// Stops serving, flushes every log and returns when the data directory is closed cleanly.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        if !self.single_node {
            // Controlled shutdown: hand leadership to other in-sync replicas before going away,
            // instead of leaving clients to wait out the session timeout. The controller keeps
            // this broker fenced until it registers again, though its heartbeats were fresh.
            let shutting_down = MetadataCommand::ControlledShutdown {
                broker_id: self.replicas.node_id(),
                broker_epoch: self.replicas.broker_epoch(),
            };
            match tokio::time::timeout(
                CONTROLLED_SHUTDOWN_LIMIT,
                self.controller.submit(shutting_down),
            )
            .await
            {
                Ok(Ok(_)) => {
                    // Until this node has applied the change itself, its partitions still act
                    // as leaders and its Metadata answers still name it: requests sent here
                    // meanwhile would go unanswered until the connections close.
                    let node_id = self.replicas.node_id();
                    let applied = broker_lifecycle::wait_until_applied(
                        &self.applied_metadata,
                        CONTROLLED_SHUTDOWN_LIMIT,
                        |state| state.broker(node_id).is_some_and(|broker| broker.fenced),
                    )
                    .await;
                    match applied {
                        Ok(()) => info!("leadership moved away for a controlled shutdown"),
                        Err(error) => {
                            warn!(%error, "controlled shutdown moved leadership, but this node has not applied it")
                        }
                    }
                }
                Ok(Err(error)) => warn!(%error, "controlled shutdown could not move leadership"),
                Err(_) => {
                    warn!("controlled shutdown timed out; the session timeout will move leadership")
                }
            }
            // Then the controller quorum's leadership, if this node holds it, while this node can
            // still vote for its successor.
            if !self
                .controller
                .hand_off_leadership(CONTROLLED_SHUTDOWN_LIMIT)
                .await
            {
                warn!(
                    "controller leadership was not handed over; the quorum will elect a leader once its election timeout passes"
                );
            }
            // This node's voter stops now rather than after the connections drain: a leader
            // that could not hand over would otherwise lead on for seconds while its listener
            // refuses the brokers' heartbeats, and fence every one of them.
            self.controller.shutdown().await;
        }
        for task in self.background.drain(..) {
            task.abort();
        }
        if let Err(error) = self
            .replicas
            .write_high_watermark_checkpoint(&self.data_dir)
        {
            warn!(%error, "could not checkpoint high watermarks at shutdown");
        }
        for partition in self.replicas.partitions() {
            let _ = self
                .replicas
                .remove_partition(partition.topic_partition(), false);
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(mut server) = self.server.take() {
            match tokio::time::timeout(CONNECTION_DRAIN_LIMIT, &mut server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => warn!(%error, "gRPC server stopped with an error"),
                Ok(Err(error)) => warn!(%error, "gRPC server task failed"),
                Err(_) => {
                    warn!(
                        limit = ?CONNECTION_DRAIN_LIMIT,
                        "a peer's connection did not close in time; shutting down without it"
                    );
                    server.abort();
                }
            }
        }
        self.controller.shutdown().await;
        let logs = self.logs.clone();
        match tokio::task::spawn_blocking(move || logs.close_all()).await {
            Ok(Ok(())) => info!("logs closed cleanly"),
            Ok(Err(error)) => {
                warn!(%error, "logs did not close cleanly; the next start will recover them")
            }
            Err(error) => warn!(%error, "closing logs failed"),
        }
    }

    /// Runs until the process receives SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(mut self) {
        let interrupted = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut terminate =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(terminate) => terminate,
                    Err(error) => {
                        warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the broker");
                        let _ = interrupted.await;
                        self.stop().await;
                        return;
                    }
                };
            let server = self
                .server
                .as_mut()
                .expect("a running broker has a server task");
            tokio::select! {
                _ = interrupted => info!("received SIGINT; shutting down"),
                _ = terminate.recv() => info!("received SIGTERM; shutting down"),
                result = server => {
                    warn!(?result, "gRPC server exited on its own");
                    self.server = None;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = interrupted.await;
        self.stop().await;
    }
}

pub struct Broker;

/// Binds `address`; returns the listener and the address it got (port 0 picks one).
async fn bind(
    operation: &'static str,
    address: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), BrokerError> {
    let failed = |source| BrokerError::Io {
        operation,
        path: PathBuf::from(address.to_string()),
        source,
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    Ok((listener, bound))
}

/// `listener`, serving TLS with `tls` (offering `alpn`) or plaintext.
fn listening(
    listener: tokio::net::TcpListener,
    tls: Option<&strata_tls::ServerTls>,
    alpn: &[&[u8]],
) -> Result<strata_tls::TlsListener, BrokerError> {
    strata_tls::TlsListener::new(listener, tls, alpn)
        .map_err(|error| BrokerError::Startup(format!("TLS: {error}")))
}

impl Broker {
    /// Opens the data directory (recovering logs if the last stop was unclean), binds the listen
    /// address and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<BrokerHandle, BrokerError> {
        Broker::start_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<BrokerHandle, BrokerError> {
        config
            .replication
            .validate()
            .map_err(BrokerError::Startup)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| BrokerError::Io {
            operation: "create data directory",
            path: config.data_dir.clone(),
            source,
        })?;
        // Loaded before anything else starts, so a bad path or a key that does not match its
        // certificate stops the node with the file named.
        let tls = config.tls.as_ref().map(NodeTls::load).transpose()?;
        let node = NodeState::open(&config.data_dir, config.node_id)?;
        let logs = LogManager::new(&config.data_dir.join("logs"), clock.clone())?;
        let replicas = Arc::new(ReplicaManager::new(
            config.node_id,
            logs.clone(),
            clock.clone(),
            config.replication.clone(),
            ReplicaManager::read_high_watermark_checkpoint(&config.data_dir),
            peer_channels::PeerChannels::new(tls.as_ref().map(|tls| tls.peers.clone())),
        ));
        logs.start_maintenance(config.log_maintenance_interval);

        let (listener, local_addr) = bind("bind the client listener", config.listen).await?;
        let (internal_listener, internal_addr) = bind(
            "bind the internal listener",
            config.internal_listen_address()?,
        )
        .await?;
        let kafka_listener = match config.kafka_listen {
            Some(address) => Some(bind("bind the Kafka listener", address).await?),
            None => None,
        };
        let kafka_addr = kafka_listener.as_ref().map(|(_, address)| *address);
        let http_listener = match config.http_listen {
            Some(address) => Some(bind("bind the HTTP admin listener", address).await?),
            None => None,
        };
        let http_addr = http_listener.as_ref().map(|(_, address)| *address);
        let advertised = broker_lifecycle::AdvertisedAddresses {
            grpc: config
                .advertise
                .clone()
                .unwrap_or_else(|| local_addr.to_string()),
            kafka: kafka_addr.map(|bound| {
                config
                    .kafka_advertise
                    .clone()
                    .unwrap_or_else(|| bound.to_string())
            }),
        };
        // Every node runs a controller voter next to its broker (KRaft's combined mode); with no
        // --voters the node is a quorum of one.
        let voters = if config.voters.is_empty() {
            vec![(config.node_id, internal_addr.to_string())]
        } else {
            config.voters.clone()
        };
        let single_node = voters.len() == 1;
        let controller_config = ControllerConfig {
            broker_session_timeout_ms: config.broker_session_timeout_ms,
            peer_tls: tls.as_ref().map(|tls| tls.peers.clone()),
            ..ControllerConfig::new(config.node_id, voters, config.data_dir.clone())
        };
        let controller = Arc::new(
            Controller::start(controller_config, clock.clone())
                .await
                .map_err(|error| BrokerError::Startup(format!("controller: {error}")))?,
        );
        broker_lifecycle::connect_replicas(&replicas, &controller, &config.voters);
        let (applied_sender, applied_metadata) =
            tokio::sync::watch::channel(Arc::new(strata_controller::MetadataState::new()));
        let groups = Arc::new(group_coordinator::GroupCoordinator::new(
            config.groups.clone(),
            replicas.clone(),
            controller.clone(),
            applied_metadata.clone(),
            clock.clone(),
        ));
        let authenticator = Arc::new(authentication::Authenticator::new(
            config.require_authentication,
            applied_metadata.clone(),
        ));
        let authorizer = authorization::Authorizer::new(
            config.require_authentication,
            config
                .super_users
                .iter()
                .cloned()
                .chain(config.bootstrap_user.iter().map(|(user, _)| user.clone())),
            applied_metadata.clone(),
        );
        let metrics = Arc::new(metrics::Metrics::new(metrics::StateCollector {
            replicas: replicas.clone(),
            groups: groups.clone(),
            metadata: applied_metadata.clone(),
            controller: controller.clone(),
        }));
        let state = Arc::new(BrokerState {
            applied_metadata,
            node,
            controller: controller.clone(),
            replicas,
            groups,
            request_budget: request_budget::RequestBytesBudget::new(
                config.queued_max_request_bytes,
            ),
            authenticator,
            authorizer,
            metrics,
        });

        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let shutdown_signal = shutdown_signal.shared();
        let kafka_shutdown = shutdown_signal.clone();
        let broker_service = BrokerServer::new(grpc::BrokerService::new(state.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(usize::MAX);
        let admin_service = AdminServer::new(grpc::AdminService::new(state.clone()));
        // Clients are turned away with a retriable error until this node has registered and
        // caught up with the metadata; the internal listener must answer before that, since
        // getting there needs the controller and replication.
        let serving_clients = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Opened at once, so probes get answers while the node is still starting (`/ready`
        // says why it is not ready yet).
        let http_listener = http_listener
            .map(|(listener, _)| {
                // No ALPN: HTTP/1.1 needs none, and offering only `http/1.1` would refuse
                // clients that offer only `h2` rather than let them fall back.
                listening(listener, tls.as_ref().map(|tls| &tls.clients), &[])
            })
            .transpose()?;
        let http_server = http_listener.map(|listener| {
            tokio::spawn(http_admin::serve(
                listener,
                http_admin::AdminHttp {
                    metrics: state.metrics.clone(),
                    serving_clients: serving_clients.clone(),
                    metadata: state.applied_metadata.clone(),
                    node_id: config.node_id,
                },
                config.http_routes.clone(),
                std::future::pending(),
            ))
        });
        let broker_service = tonic::service::interceptor::InterceptedService::new(
            broker_service,
            grpc::status::ready_interceptor(serving_clients.clone()),
        );
        let admin_service = tonic::service::interceptor::InterceptedService::new(
            admin_service,
            grpc::status::ready_interceptor(serving_clients.clone()),
        );
        let group_service = tonic::service::interceptor::InterceptedService::new(
            GroupCoordinatorServer::new(grpc::GroupService::new(state.clone())),
            grpc::status::ready_interceptor(serving_clients.clone()),
        );
        // One service for both listeners: clients call it on the client listener, and brokers
        // forward their callers' records to partition leaders on the internal one.
        let records_service = RecordsServer::new(grpc::RecordsService::new(state.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES);
        let client_records_service = tonic::service::interceptor::InterceptedService::new(
            records_service.clone(),
            grpc::status::ready_interceptor(serving_clients.clone()),
        );
        let replication_service =
            ReplicationServer::new(grpc::ReplicationService::new(state.clone()))
                .max_encoding_message_size(usize::MAX);
        let record_routes = |listener| {
            grpc::RecordRoutesLayer::new(
                listener,
                grpc::BrokerService::new(state.clone()),
                grpc::ReplicationService::new(state.clone()),
                grpc::GroupService::new(state.clone()),
                serving_clients.clone(),
            )
        };
        // Two listeners, two routers: a call is served only where it belongs, so no client can
        // reach replication or Raft whatever it sends (ARCHITECTURE.md, "Trust boundaries").
        // The standard gRPC health service (grpc.health.v1), for load balancers and Kubernetes'
        // gRPC probes: NOT_SERVING until the node serves clients, like `/ready`. And server
        // reflection, so generic tools (grpcurl, Postman) can call the API without the .proto
        // files. Both answer without credentials (`authentication`).
        let (health, health_service) = tonic_health::server::health_reporter();
        for service in std::iter::once("").chain(strata_proto::CLIENT_SERVICES.iter().copied()) {
            health
                .set_service_status(service, tonic_health::ServingStatus::NotServing)
                .await;
        }
        // The health service is listed too, so a generic tool finds it as it finds the API.
        let reflection_service = strata_proto::CLIENT_SERVICES
            .iter()
            .fold(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                    .with_service_name(HEALTH_SERVICE),
                |builder, service| builder.with_service_name(*service),
            )
            .build_v1()
            .map_err(|error| BrokerError::Startup(format!("gRPC reflection: {error}")))?;
        let client_server = strata_proto::http2::server(Server::builder())
            .layer(metrics::RequestMetricsLayer::new(state.metrics.clone()))
            .layer(authentication::AuthenticationLayer::new(
                state.authenticator.clone(),
            ))
            .layer(record_routes(grpc::Listener::Client))
            .add_service(broker_service)
            .add_service(admin_service)
            .add_service(group_service)
            .add_service(client_records_service)
            .add_service(health_service)
            .add_service(reflection_service)
            .serve_with_incoming_shutdown(
                listening(
                    listener,
                    tls.as_ref().map(|tls| &tls.clients),
                    &[strata_tls::ALPN_H2],
                )?
                .into_incoming(),
                shutdown_signal.clone().map(drop),
            );
        // Nodes call `Broker` on each other too (a group coordinator reading or writing a
        // partition another node leads), so the internal listener serves it as well.
        let internal_broker_service = tonic::service::interceptor::InterceptedService::new(
            BrokerServer::new(grpc::BrokerService::new(state.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES)
                .max_encoding_message_size(usize::MAX),
            grpc::status::ready_interceptor(serving_clients.clone()),
        );
        let internal_server = strata_proto::http2::server(Server::builder())
            .layer(record_routes(grpc::Listener::Internal))
            .add_service(internal_broker_service)
            .add_service(replication_service)
            .add_service(records_service)
            .add_service(controller.service())
            .serve_with_incoming_shutdown(
                listening(
                    internal_listener,
                    tls.as_ref().map(|tls| &tls.internal),
                    &[strata_tls::ALPN_H2],
                )?
                .into_incoming(),
                shutdown_signal.map(drop),
            );
        let server = tokio::spawn(async move {
            let (client, internal) = tokio::join!(client_server, internal_server);
            client.and(internal)
        });
        // A tenth of the lag limit: a follower that stopped fetching leaves the ISR (and acks=all
        // writes resume) at most that much after the limit.
        let isr_interval =
            Duration::from_millis((config.replication.replica_lag_time_max_ms / 10).max(50) as u64);
        let isr_maintenance = {
            let replicas = state.replicas.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(isr_interval);
                loop {
                    ticks.tick().await;
                    replicas.maintain_isr().await;
                }
            })
        };
        let member_expiry = {
            let groups = state.groups.clone();
            let interval = Duration::from_millis(
                config.groups.coordinator.reconcile_interval_ms.max(10) as u64,
            );
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    groups.expire_members().await;
                }
            })
        };
        let high_watermark_checkpoints = {
            let replicas = state.replicas.clone();
            let data_dir = config.data_dir.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(HIGH_WATERMARK_CHECKPOINT_INTERVAL);
                loop {
                    ticks.tick().await;
                    let (replicas, data_dir) = (replicas.clone(), data_dir.clone());
                    match tokio::task::spawn_blocking(move || {
                        replicas.write_high_watermark_checkpoint(&data_dir)
                    })
                    .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            warn!(%error, "could not checkpoint high watermarks; will retry")
                        }
                        Err(error) => warn!(%error, "high-watermark checkpoint task failed"),
                    }
                }
            })
        };
        let publisher = tokio::spawn(broker_lifecycle::publish_metadata(
            state.replicas.clone(),
            controller.metadata(),
            applied_sender,
        ));
        let incarnation = broker_lifecycle::new_incarnation();
        // Registration needs a quorum; in a fresh multi-node cluster the other voters may still be
        // starting, so wait for them for a while before giving up.
        let registration_wait = if single_node {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(120)
        };
        let registering_ms = clock.now_ms();
        let broker_epoch = match broker_lifecycle::register(
            &controller,
            config.node_id,
            &advertised,
            incarnation,
            &clock,
            registration_wait,
        )
        .await
        {
            Ok(epoch) => epoch,
            Err(error) => {
                publisher.abort();
                let _ = shutdown.send(());
                controller.shutdown().await;
                return Err(BrokerError::Startup(format!(
                    "could not register with the controller quorum: {error}"
                )));
            }
        };
        // Serve nothing stale: the replicas catch up with everything the quorum had committed
        // when this broker registered before start returns.
        state.replicas.set_broker_epoch(broker_epoch);
        // The controller fences a broker a session timeout after its last heartbeat was sent;
        // the lease ends a quarter earlier, which leaves room for the fencing tick and for clocks
        // that run at slightly different rates.
        let session_lease = Duration::from_millis(
            u64::try_from(config.broker_session_timeout_ms.saturating_mul(3) / 4).unwrap_or(0),
        );
        let lease_ms = i64::try_from(session_lease.as_millis()).unwrap_or(i64::MAX);
        state
            .replicas
            .enforce_session_lease(registering_ms.saturating_add(lease_ms));
        let heartbeats = tokio::spawn(broker_lifecycle::heartbeat_loop(
            controller.clone(),
            state.replicas.clone(),
            config.node_id,
            advertised,
            incarnation,
            broker_epoch,
            clock.clone(),
            Duration::from_millis((config.broker_session_timeout_ms / 4).max(50) as u64),
            session_lease,
        ));
        // A restarted broker is fenced until the controller sees it heartbeat, and partitions
        // only it could lead are leaderless until the controller re-elects: wait for both, so a
        // broker that says it is up serves what it hosts.
        let registered_at = controller.metadata().borrow().metadata_offset;
        let node_id = config.node_id;
        let ready = move |applied: &strata_controller::MetadataState| {
            applied.metadata_offset >= registered_at
                && applied.broker(node_id).is_some_and(|broker| !broker.fenced)
                && applied
                    .topics
                    .values()
                    .flat_map(|topic| &topic.partitions)
                    .all(|partition| partition.leader >= 0 || !partition.isr.contains(&node_id))
        };
        if let Err(error) =
            broker_lifecycle::wait_until_applied(&state.applied_metadata, registration_wait, ready)
                .await
        {
            warn!(%error, "replicas have not caught up with the metadata yet; continuing");
        }
        info!(node_id = config.node_id, %local_addr, %internal_addr, kafka_addr = ?kafka_addr, http_addr = ?http_addr, data_dir = %config.data_dir.display(), "broker started");
        if let Some((user, password)) = &config.bootstrap_user {
            broker_lifecycle::create_bootstrap_user(&state, user, password).await;
        }
        serving_clients.store(true, std::sync::atomic::Ordering::Release);
        for service in std::iter::once("").chain(strata_proto::CLIENT_SERVICES.iter().copied()) {
            health
                .set_service_status(service, tonic_health::ServingStatus::Serving)
                .await;
        }
        // Opened once the broker serves clients, so a Kafka client never meets a node that is
        // still catching up (the gRPC door says so with an error; Kafka has no such answer for
        // every API).
        let kafka_listener = kafka_listener
            .map(|(listener, _)| listening(listener, tls.as_ref().map(|tls| &tls.clients), &[]))
            .transpose()?;
        let kafka_server = kafka_listener.map(|listener| {
            tokio::spawn(kafka::serve(
                listener,
                state.clone(),
                kafka_shutdown.map(drop),
            ))
        });
        Ok(BrokerHandle {
            local_addr,
            internal_addr,
            kafka_addr,
            http_addr,
            replicas: state.replicas.clone(),
            applied_metadata: state.applied_metadata.clone(),
            background: [
                isr_maintenance,
                member_expiry,
                high_watermark_checkpoints,
                publisher,
                heartbeats,
            ]
            .into_iter()
            .chain(kafka_server)
            .chain(http_server)
            .collect(),
            controller,
            single_node,
            data_dir: config.data_dir.clone(),
            shutdown: Some(shutdown),
            server: Some(server),
            logs,
        })
    }
}
