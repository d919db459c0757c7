//! The calls whose responses are mostly record bytes — a consumer's `Fetch` and a follower's
//! `ReplicaFetch` — are served by `strata_proto::zero_copy`, ahead of tonic's router, so the
//! batches go from the segment's memory map to the socket without tonic's encode copy. Every
//! other call reaches the router unchanged. The handlers are the services' own trait methods, so
//! a fetch behaves exactly as when tonic serves it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};

use strata_proto::replication_v1::replication_server::Replication;
use strata_proto::v1::broker_server::Broker;
use strata_proto::zero_copy::{paths, serve_unary};
use tonic::body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::MAX_REQUEST_BYTES;
use crate::grpc::status::check_ready;
use crate::grpc::{BrokerService, ReplicationService};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FetchRoute {
    Fetch,
    ReplicaFetch,
}

fn fetch_route(path: &str) -> Option<FetchRoute> {
    match path {
        paths::FETCH => Some(FetchRoute::Fetch),
        paths::REPLICA_FETCH => Some(FetchRoute::ReplicaFetch),
        _ => None,
    }
}

/// Wraps the server's router; see the module documentation.
#[derive(Clone)]
pub struct FetchRoutesLayer {
    broker: Arc<BrokerService>,
    replication: Arc<ReplicationService>,
    /// The broker service's readiness gate; replication answers before it opens, as through
    /// the router.
    serving_clients: Arc<AtomicBool>,
}

impl FetchRoutesLayer {
    pub fn new(
        broker: BrokerService,
        replication: ReplicationService,
        serving_clients: Arc<AtomicBool>,
    ) -> FetchRoutesLayer {
        FetchRoutesLayer {
            broker: Arc::new(broker),
            replication: Arc::new(replication),
            serving_clients,
        }
    }
}

impl<S> Layer<S> for FetchRoutesLayer {
    type Service = FetchRoutes<S>;

    fn layer(&self, router: S) -> FetchRoutes<S> {
        FetchRoutes {
            router,
            handlers: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct FetchRoutes<S> {
    router: S,
    handlers: FetchRoutesLayer,
}

impl<S> Service<http::Request<Body>> for FetchRoutes<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.router.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match fetch_route(request.uri().path()) {
            None => Box::pin(self.router.call(request)),
            Some(FetchRoute::Fetch) => {
                let broker = self.handlers.broker.clone();
                let serving_clients = self.handlers.serving_clients.clone();
                Box::pin(async move {
                    Ok(
                        serve_unary(request, MAX_REQUEST_BYTES, |request| async move {
                            check_ready(&serving_clients)?;
                            broker.fetch(request).await
                        })
                        .await,
                    )
                })
            }
            Some(FetchRoute::ReplicaFetch) => {
                let replication = self.handlers.replication.clone();
                Box::pin(async move {
                    Ok(
                        serve_unary(request, MAX_REQUEST_BYTES, |request| async move {
                            replication.replica_fetch(request).await
                        })
                        .await,
                    )
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_fetch_calls_are_routed_here() {
        assert_eq!(
            fetch_route("/strata.v1.Broker/Fetch"),
            Some(FetchRoute::Fetch)
        );
        assert_eq!(
            fetch_route("/strata.replication.v1.Replication/ReplicaFetch"),
            Some(FetchRoute::ReplicaFetch)
        );
        for other in [
            "/strata.v1.Broker/FetchStream",
            "/strata.v1.Broker/Produce",
            "/strata.v1.Admin/Fetch",
            "/strata.v1.Broker/Fetch/extra",
            "strata.v1.Broker/Fetch",
            "/",
        ] {
            assert_eq!(fetch_route(other), None, "{other}");
        }
    }
}
