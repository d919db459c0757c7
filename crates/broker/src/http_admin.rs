//! The HTTP admin listener (`--http-listen`): what operators and their tools ask a node over
//! plain HTTP/1.1, apart from the client doors.
//! - `GET /metrics`: Prometheus's scrape (`metrics`), encoded off the runtime's worker threads,
//!   so a scrape of a node with many partitions never holds up a request.
//! - `GET /health`: the process is up and answering (Kubernetes' liveness probe).
//! - `GET /ready`: the node serves clients: registered with the controller, caught up with the
//!   metadata, and not fenced (Kubernetes' readiness probe); 503 with the reason otherwise.
//!
//! Anything else is 404, a known path with another method 405. The listener carries no client
//! data and changes nothing, so it takes no credentials; bind it where only operators reach.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use strata_controller::MetadataState;
use tokio::sync::watch;
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

pub(crate) fn router(state: AdminHttp) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: try /metrics, /health or /ready\n",
            )
        })
        .with_state(state)
}

/// Serves `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminHttp,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(error) = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
    {
        warn!(%error, "the HTTP admin listener stopped");
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
