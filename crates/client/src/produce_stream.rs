//! One ordered produce stream to one broker: Kafka's produce connection.
//!
//! The broker appends the requests of a `ProduceStream` in the order they were sent and answers
//! them in that order, so a producer may have several batches of a partition in flight on it
//! without one overtaking another. This module owns the stream's IO; what a response means is
//! the caller's business: each request is submitted with a token `T`, and the handler given at
//! open time is called once per token, in submission order, with the request's outcome.
//!
//! Lifetime: the stream's task connects, forwards submissions and reads responses. It ends when
//! the stream fails (every outstanding token then gets the error, in order), when the oldest
//! request outlives the request timeout (Kafka closes the connection then too), or when the
//! last [`ProduceStream`] handle is dropped and every outstanding request has been answered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::grpc::{self, ProduceRequest, ProduceResults};

/// Handle to a running stream. Submitting never waits: ordering is decided at submission.
pub(crate) struct ProduceStream<T> {
    submissions: mpsc::UnboundedSender<(ProduceRequest, T)>,
}

impl<T: Send + 'static> ProduceStream<T> {
    /// Starts the stream's task, which connects to `address` through `cluster`'s connection
    /// cache. `on_outcome` runs on that task.
    pub(crate) fn open<H>(
        cluster: Arc<Cluster>,
        address: String,
        request_timeout: Duration,
        on_outcome: H,
    ) -> ProduceStream<T>
    where
        H: FnMut(T, Result<ProduceResults>) + Send + 'static,
    {
        let (submissions, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(cluster, address, request_timeout, receiver, on_outcome));
        ProduceStream { submissions }
    }

    /// Queues `request` behind every request submitted before it. Gives both back when the
    /// stream has already ended; the caller then opens a new one.
    pub(crate) fn submit(
        &self,
        request: ProduceRequest,
        token: T,
    ) -> std::result::Result<(), (ProduceRequest, T)> {
        self.submissions
            .send((request, token))
            .map_err(|mpsc::error::SendError(returned)| returned)
    }

    /// The stream's task has ended; nothing submitted now would be sent.
    pub(crate) fn is_closed(&self) -> bool {
        self.submissions.is_closed()
    }
}

/// A request on the wire and when the client stops waiting for it.
struct Outstanding<T> {
    correlation_id: u64,
    token: T,
    deadline: Instant,
}

async fn run<T, H>(
    cluster: Arc<Cluster>,
    address: String,
    request_timeout: Duration,
    mut submissions: mpsc::UnboundedReceiver<(ProduceRequest, T)>,
    mut on_outcome: H,
) where
    H: FnMut(T, Result<ProduceResults>),
{
    let mut outstanding: VecDeque<Outstanding<T>> = VecDeque::new();
    let (outbound, outbound_receiver) = mpsc::unbounded_channel();
    let opened = async {
        let connection = cluster.connection(&address).await?;
        grpc::open_produce_stream(&connection, outbound_receiver, request_timeout).await
    };
    let mut responses = match opened.await {
        Ok(responses) => responses,
        Err(error) => {
            fail_all(&mut outstanding, &mut submissions, &mut on_outcome, &error);
            return;
        }
    };
    let mut next_correlation_id = 0u64;
    let mut accepting = true;
    // One timer for the whole stream, armed for the oldest request and not moved when that one
    // is answered: when it fires, the request that is oldest then is checked and the timer
    // re-armed for it. The runtime's timer wheel is behind a lock every worker shares, so the
    // per-request path stays off it.
    let request_timer = tokio::time::sleep(request_timeout);
    tokio::pin!(request_timer);
    let mut request_timer_armed = false;
    let error = loop {
        if !accepting && outstanding.is_empty() {
            return;
        }
        if !request_timer_armed && let Some(oldest) = outstanding.front() {
            request_timer.as_mut().reset(oldest.deadline);
            request_timer_armed = true;
        }
        tokio::select! {
            submission = submissions.recv(), if accepting => match submission {
                Some((mut request, token)) => {
                    request.set_correlation_id(next_correlation_id);
                    outstanding.push_back(Outstanding {
                        correlation_id: next_correlation_id,
                        token,
                        deadline: Instant::now() + request_timeout,
                    });
                    next_correlation_id += 1;
                    if outbound.send(request).is_err() {
                        break broken(&address, "its request side closed");
                    }
                }
                // Every handle is gone: answer what is outstanding, then end the stream.
                None => accepting = false,
            },
            response = responses.next() => match response {
                Ok(Some((correlation_id, results))) => {
                    let Some(oldest) = outstanding.pop_front() else {
                        break broken(&address, "a response to no request");
                    };
                    if correlation_id != oldest.correlation_id {
                        // Put it back so it is failed with the rest.
                        outstanding.push_front(oldest);
                        break broken(&address, "responses out of order");
                    }
                    on_outcome(oldest.token, Ok(results));
                }
                Ok(None) => break broken(&address, "the broker closed it"),
                Err(error) => break error,
            },
            () = &mut request_timer, if request_timer_armed => {
                request_timer_armed = false;
                if outstanding.front().is_some_and(|oldest| oldest.deadline <= Instant::now()) {
                    break Error::timeout(
                        format!("waiting for Produce from {address}"),
                        request_timeout,
                    );
                }
            }
        }
    };
    fail_all(&mut outstanding, &mut submissions, &mut on_outcome, &error);
}

/// The stream cannot carry on: a transport error, so its requests are retried elsewhere.
fn broken(address: &str, why: &str) -> Error {
    Error::Transport {
        address: address.to_string(),
        message: format!("produce stream broken: {why}"),
    }
}

/// Hands `error` to every outstanding token, oldest first, then to every submission not yet
/// sent, and refuses later submissions.
fn fail_all<T, H>(
    outstanding: &mut VecDeque<Outstanding<T>>,
    submissions: &mut mpsc::UnboundedReceiver<(ProduceRequest, T)>,
    on_outcome: &mut H,
    error: &Error,
) where
    H: FnMut(T, Result<ProduceResults>),
{
    submissions.close();
    for request in outstanding.drain(..) {
        on_outcome(request.token, Err(error.clone()));
    }
    while let Ok((_, token)) = submissions.try_recv() {
        on_outcome(token, Err(error.clone()));
    }
}
