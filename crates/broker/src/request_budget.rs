//! A broker-wide bound on the bytes of produce requests being appended at once (Kafka's
//! `queued.max.request.bytes`).
//!
//! Each produce request holds its size in permits from the moment its records are decoded until
//! its appends are done. Once the budget is spent, new requests wait: a `ProduceStream` then
//! reads no further message, so HTTP/2 flow control pushes back on its producer, and the bytes
//! the broker holds for requests stay near the budget however many producers send at once. (A
//! unary `Produce` is decoded by tonic before it can wait, so it holds its bytes while it waits;
//! streams are what producers use.) A request larger than the whole budget is admitted alone,
//! never refused for it: `MAX_REQUEST_BYTES` is what refuses oversized requests.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) struct RequestBytesBudget {
    permits: Arc<Semaphore>,
    limit: usize,
}

/// Held while a request's bytes count against the budget; dropping it gives them back.
pub(crate) struct BudgetShare {
    _permit: OwnedSemaphorePermit,
}

impl RequestBytesBudget {
    /// A budget of `limit` bytes (at least 1).
    pub(crate) fn new(limit: usize) -> RequestBytesBudget {
        // Permits are taken in `u32` amounts.
        let limit = limit.clamp(1, u32::MAX as usize);
        RequestBytesBudget {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Waits until `bytes` (at most the whole budget) fit, and takes them.
    pub(crate) async fn acquire(&self, bytes: usize) -> BudgetShare {
        let wanted = u32::try_from(bytes.clamp(1, self.limit)).expect("the limit fits a u32");
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(wanted)
            .await
            .expect("the budget's semaphore is never closed");
        BudgetShare { _permit: permit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Polls `future` once: whether it completes without waiting.
    fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
        futures::FutureExt::now_or_never(future)
    }

    #[tokio::test]
    async fn requests_wait_while_the_budget_is_spent_and_go_once_bytes_come_back() {
        let budget = RequestBytesBudget::new(100);
        let first = ready_now(budget.acquire(60)).expect("fits");
        let second = ready_now(budget.acquire(40)).expect("fits exactly");
        assert!(
            ready_now(budget.acquire(1)).is_none(),
            "the budget is spent"
        );
        drop(first);
        let third = ready_now(budget.acquire(60)).expect("the first's bytes came back");
        drop((second, third));
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_goes_alone() {
        let budget = RequestBytesBudget::new(100);
        let huge = ready_now(budget.acquire(10_000)).expect("admitted, as the whole budget");
        let waiting = tokio::spawn(async move {
            let _small = budget.acquire(1).await;
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "nothing else fits beside it");
        drop(huge);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the small request goes once the huge one is done")
            .unwrap();
    }
}
