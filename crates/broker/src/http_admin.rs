//! The HTTP admin listener (`--http-listen`): what operators and their tools ask a node over
//! plain HTTP/1.1, apart from the client doors.
//! - `GET /metrics`: Prometheus's scrape (`metrics`), encoded off the runtime's worker threads,
//!   so a scrape of a node with many partitions never holds up a request.
//! - `GET /health`: the process is up and answering (Kubernetes' liveness probe).
//! - `GET /ready`: the node serves clients: registered with the controller, caught up with the
//!   metadata, and not fenced (Kubernetes' readiness probe); 503 with the reason otherwise.
//!
//! On a node with TLS the listener speaks HTTPS with the node's identity (Prometheus then
//! scrapes `https://` with the cluster's CA); otherwise plain HTTP.
//!
//! Anything else is 404, a known path with another method 405. These routes carry no client
//! data and change nothing, so they take no credentials; bind the listener where only operators
//! reach. `strata server` adds its web console beside them (`BrokerConfig::http_routes`), which
//! is a client of the cluster and asks for the cluster's credentials when it requires them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use strata_controller::MetadataState;
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tracing::warn;

use crate::metrics::Metrics;

/// The OpenMetrics text format, which Prometheus asks for first.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
pub(crate) struct AdminHttp {
    pub metrics: Arc<Metrics>,
    /// Set once the node serves clients (`Broker::start`).
    pub serving_clients: Arc<AtomicBool>,
    pub metadata: watch::Receiver<Arc<MetadataState>>,
    pub node_id: i32,
}

/// The listener's own routes, with `extra` (the CLI's web console) beside them.
pub(crate) fn router(state: AdminHttp, extra: Option<Router>) -> Router {
    let own = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: try /metrics, /health or /ready\n",
            )
        })
        .with_state(state);
    match extra {
        Some(extra) => own.merge(extra),
        None => own,
    }
}

/// Serves `listener` until `shutdown` resolves: over HTTPS with the node's client-facing TLS
/// when it has one (the console takes passwords), plain HTTP otherwise.
pub(crate) async fn serve(
    listener: strata_tls::TlsListener,
    state: AdminHttp,
    extra: Option<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let listener = match EstablishedConnections::new(listener) {
        Ok(listener) => listener,
        Err(error) => {
            warn!(%error, "the HTTP admin listener has no address");
            return;
        }
    };
    // Each request carries its connection's peer address: the console limits failed sign-ins
    // per address.
    let service = router(state, extra).into_make_service_with_connect_info::<HttpPeer>();
    if let Err(error) = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
    {
        warn!(%error, "the HTTP admin listener stopped");
    }
}

/// The address of the client a request of the HTTP admin listener came from, in the request's
/// `axum::extract::ConnectInfo`.
#[derive(Clone, Copy, Debug)]
pub struct HttpPeer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, EstablishedConnections>>
    for HttpPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, EstablishedConnections>) -> Self {
        HttpPeer(*stream.remote_addr())
    }
}

/// The listener's connections with their TLS handshakes done, each handshake in a task of its
/// own (`TlsListener::into_incoming`), so a client that stalls its handshake holds up nobody.
pub(crate) struct EstablishedConnections {
    incoming:
        std::pin::Pin<Box<dyn Stream<Item = std::io::Result<strata_tls::MaybeTlsStream>> + Send>>,
    local_addr: SocketAddr,
}

impl EstablishedConnections {
    fn new(listener: strata_tls::TlsListener) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        Ok(Self {
            incoming: Box::pin(listener.into_incoming()),
            local_addr,
        })
    }
}

impl axum::serve::Listener for EstablishedConnections {
    type Io = strata_tls::MaybeTlsStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.incoming.next().await {
                Some(Ok(stream)) => {
                    let peer = stream.peer();
                    return (stream, peer);
                }
                // Accept errors are logged and backed off where they happen.
                Some(Err(_)) => continue,
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

async fn metrics(State(state): State<AdminHttp>) -> Response {
    let metrics = state.metrics.clone();
    match tokio::task::spawn_blocking(move || metrics.encode()).await {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the metrics could not be encoded: {error}\n"),
        )
            .into_response(),
    }
}

async fn ready(State(state): State<AdminHttp>) -> (StatusCode, String) {
    if !state.serving_clients.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: registering with the controller or catching up with the metadata\n"
                .to_string(),
        );
    }
    let metadata = state.metadata.borrow().clone();
    match metadata.broker(state.node_id) {
        Some(broker) if broker.fenced => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the controller has fenced broker {} (its heartbeats are not \
                 arriving)\n",
                state.node_id
            ),
        ),
        Some(_) => (StatusCode::OK, "ready\n".to_string()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: broker {} is not registered in the metadata this node has applied\n",
                state.node_id
            ),
        ),
    }
}
