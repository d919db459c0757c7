//! The calls whose messages are mostly record bytes — a producer's `ProduceStream`, a consumer's
//! `Fetch`, a follower's `ReplicaFetch` and a share-group worker's `ShareFetch` — are served by `strata_proto::zero_copy`, ahead of
//! tonic's router: produced batches are appended as slices of the frames they arrived in, and
//! fetched batches go from the segment's memory map to the socket, skipping tonic's copies.
//! Every other call reaches the router unchanged. The handlers are the services' own, so a call
//! behaves exactly as when tonic serves it.

use crate::authorization::Caller;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};

use strata_proto::replication_v1::replication_server::Replication;
use strata_proto::v1::broker_server::Broker;
use strata_proto::v1::group_coordinator_server::GroupCoordinator;
use strata_proto::zero_copy::{paths, serve_streaming, serve_unary};
use tonic::Response;
use tonic::body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::MAX_REQUEST_BYTES;
use crate::grpc::status::{check_ready, tag_refusal};
use crate::grpc::{BrokerService, GroupService, ReplicationService};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecordRoute {
    ProduceStream,
    Fetch,
    ReplicaFetch,
    ShareFetch,
}

/// Which of a broker's two listeners a router serves; each routes only its own calls here, so
/// a client that asks the client listener for `ReplicaFetch` meets tonic's `UNIMPLEMENTED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Client,
    Internal,
}

fn record_route(path: &str, listener: Listener) -> Option<RecordRoute> {
    let route = match path {
        paths::PRODUCE_STREAM => RecordRoute::ProduceStream,
        paths::FETCH => RecordRoute::Fetch,
        paths::REPLICA_FETCH => RecordRoute::ReplicaFetch,
        paths::SHARE_FETCH => RecordRoute::ShareFetch,
        _ => return None,
    };
    let served = match route {
        RecordRoute::ReplicaFetch => listener == Listener::Internal,
        // Nodes fetch too: a group coordinator reads a partition another node leads (share
        // groups) over the internal listener, where only nodes are served.
        RecordRoute::Fetch => true,
        RecordRoute::ProduceStream | RecordRoute::ShareFetch => listener == Listener::Client,
    };
    served.then_some(route)
}

/// Wraps the server's router; see the module documentation.
#[derive(Clone)]
pub struct RecordRoutesLayer {
    listener: Listener,
    broker: Arc<BrokerService>,
    replication: Arc<ReplicationService>,
    groups: Arc<GroupService>,
    /// The broker service's readiness gate; replication answers before it opens, as through
    /// the router.
    serving_clients: Arc<AtomicBool>,
}

impl RecordRoutesLayer {
    pub fn new(
        listener: Listener,
        broker: BrokerService,
        replication: ReplicationService,
        groups: GroupService,
        serving_clients: Arc<AtomicBool>,
    ) -> RecordRoutesLayer {
        RecordRoutesLayer {
            listener,
            broker: Arc::new(broker),
            replication: Arc::new(replication),
            groups: Arc::new(groups),
            serving_clients,
        }
    }
}

impl<S> Layer<S> for RecordRoutesLayer {
    type Service = RecordRoutes<S>;

    fn layer(&self, router: S) -> RecordRoutes<S> {
        RecordRoutes {
            router,
            handlers: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RecordRoutes<S> {
    router: S,
    handlers: RecordRoutesLayer,
}

impl<S> Service<http::Request<Body>> for RecordRoutes<S>
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
        let Some(route) = record_route(request.uri().path(), self.handlers.listener) else {
            let routed = self.router.call(request);
            return Box::pin(async move {
                let mut response = routed.await?;
                tag_refusal(&mut response);
                Ok(response)
            });
        };
        let handlers = self.handlers.clone();
        Box::pin(async move {
            let ready = || check_ready(&handlers.serving_clients);
            let response = match route {
                RecordRoute::ProduceStream => {
                    serve_streaming(request, MAX_REQUEST_BYTES, |requests| async {
                        ready()?;
                        let caller = Caller::of(&requests);
                        let requests = requests.into_inner();
                        Ok(Response::new(
                            handlers.broker.serve_produce_stream(caller, requests),
                        ))
                    })
                    .await
                }
                RecordRoute::Fetch => {
                    serve_unary(request, MAX_REQUEST_BYTES, |request| async {
                        ready()?;
                        handlers.broker.fetch(request).await
                    })
                    .await
                }
                RecordRoute::ShareFetch => {
                    serve_unary(request, MAX_REQUEST_BYTES, |request| async {
                        ready()?;
                        handlers.groups.share_fetch(request).await
                    })
                    .await
                }
                RecordRoute::ReplicaFetch => {
                    serve_unary(request, MAX_REQUEST_BYTES, |request| {
                        handlers.replication.replica_fetch(request)
                    })
                    .await
                }
            };
            let mut response = response;
            tag_refusal(&mut response);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_record_carrying_calls_are_routed_here_each_on_its_own_listener() {
        let client = |path| record_route(path, Listener::Client);
        let internal = |path| record_route(path, Listener::Internal);
        assert_eq!(
            client("/strata.v1.Broker/ProduceStream"),
            Some(RecordRoute::ProduceStream)
        );
        assert_eq!(client("/strata.v1.Broker/Fetch"), Some(RecordRoute::Fetch));
        assert_eq!(
            client("/strata.v1.GroupCoordinator/ShareFetch"),
            Some(RecordRoute::ShareFetch)
        );
        assert_eq!(
            internal("/strata.replication.v1.Replication/ReplicaFetch"),
            Some(RecordRoute::ReplicaFetch)
        );
        // Nodes fetch from each other too (a group coordinator reading a partition another
        // node leads), so Fetch is routed on both listeners.
        assert_eq!(
            internal("/strata.v1.Broker/Fetch"),
            Some(RecordRoute::Fetch)
        );
        // Each listener leaves the other's calls to its router, which does not serve them.
        assert_eq!(
            client("/strata.replication.v1.Replication/ReplicaFetch"),
            None
        );
        assert_eq!(internal("/strata.v1.Broker/ProduceStream"), None);
        assert_eq!(internal("/strata.v1.GroupCoordinator/ShareFetch"), None);
        for other in [
            "/strata.v1.GroupCoordinator/ShareAcknowledge",
            "/strata.v1.Broker/FetchStream",
            "/strata.v1.Broker/Produce",
            "/strata.v1.Broker/ProduceStream/",
            "/strata.v1.Admin/Fetch",
            "/strata.v1.Broker/Fetch/extra",
            "strata.v1.Broker/Fetch",
            "/",
        ] {
            assert_eq!(client(other), None, "{other}");
            assert_eq!(internal(other), None, "{other}");
        }
    }
}
