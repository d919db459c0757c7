//! Finding a group's coordinator: the broker that leads the group's offsets partition answers
//! its membership, commit and offset requests. Consumers, share consumers and the admin client
//! all reach a group through a [`CoordinatorLocator`].

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use strata_common::ErrorCode;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::grpc::{self, Connection};
use crate::retry::Backoff;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Finds and remembers a group's coordinator, and retries requests that reach the wrong one.
pub(crate) struct CoordinatorLocator {
    cluster: Arc<Cluster>,
    group_id: String,
    request_timeout: Duration,
    address: Mutex<Option<String>>,
}

/// Errors after which the coordinator must be looked up again.
fn coordinator_moved(error: &Error) -> bool {
    matches!(error, Error::Transport { .. } | Error::Timeout { .. })
        || matches!(
            error.code(),
            Some(
                ErrorCode::NotCoordinator
                    | ErrorCode::CoordinatorNotAvailable
                    | ErrorCode::CoordinatorLoadInProgress
            )
        )
}

impl CoordinatorLocator {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        group_id: &str,
        request_timeout: Duration,
    ) -> CoordinatorLocator {
        CoordinatorLocator {
            cluster,
            group_id: group_id.to_string(),
            request_timeout,
            address: Mutex::new(None),
        }
    }

    pub(crate) fn group_id(&self) -> &str {
        &self.group_id
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    async fn connection(&self) -> Result<Connection> {
        let known = lock(&self.address).clone();
        let address = match known {
            Some(address) => address,
            None => {
                let any = self.cluster.any_connection().await?;
                let (_, address) =
                    grpc::find_coordinator(&any, &self.group_id, self.request_timeout).await?;
                *lock(&self.address) = Some(address.clone());
                address
            }
        };
        self.cluster.connection(&address).await
    }

    fn forget(&self, error: &Error) {
        if let Some(address) = lock(&self.address).take()
            && error.condemns_connection()
        {
            self.cluster.forget_connection(&address);
        }
    }

    /// Sends one request to the coordinator, finding it again on errors that say it moved.
    pub(crate) async fn once<T, F, Fut>(&self, send: F) -> Result<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let result = match self.connection().await {
            Ok(connection) => send(connection).await,
            Err(error) => Err(error),
        };
        if let Err(error) = &result
            && coordinator_moved(error)
        {
            self.forget(error);
        }
        result
    }

    /// Like `once`, retrying retriable failures with backoff until `deadline`.
    pub(crate) async fn call<T, F, Fut>(&self, deadline: Duration, send: F) -> Result<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let give_up = Instant::now() + deadline;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            match self.once(&send).await {
                Ok(answer) => return Ok(answer),
                Err(error) if error.is_retriable() && Instant::now() < give_up => {
                    tracing::debug!(%error, group = %self.group_id, "group request failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}
