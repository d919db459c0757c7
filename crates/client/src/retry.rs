//! Retrying failed requests with exponential backoff.
//!
//! Backoff grows from `initial` by doubling to `max`, with ±20% jitter (as Kafka's
//! `retry.backoff.ms` / `retry.backoff.max.ms` do) so that clients that failed together, e.g.
//! when a leader moved, do not retry in lockstep.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::error::{Error, Result};

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    pub retries: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

/// The delays between successive attempts.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
        }
    }

    /// The delay before the next attempt; each call doubles it up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = Backoff::delay_after(self.initial, self.max, self.failures);
        self.failures = self.failures.saturating_add(1);
        jittered(delay)
    }

    /// The delay after `failures` failed attempts, without jitter.
    pub(crate) fn delay_after(initial: Duration, max: Duration, failures: u32) -> Duration {
        let factor = 1u32 << failures.min(20);
        initial.saturating_mul(factor).min(max.max(initial))
    }
}

/// `delay` scaled by a random factor in [0.8, 1.2).
fn jittered(delay: Duration) -> Duration {
    // RandomState is seeded per instance from the OS, which is random enough to spread retries
    // and spares a dependency on a random number crate.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let factor = 0.8 + (random % 4_000) as f64 / 10_000.0;
    delay.mul_f64(factor)
}

/// Runs `operation` until it succeeds, fails with an error `should_retry` rejects, has failed
/// `policy.retries + 1` times, or the next attempt could not start before `deadline` (then the
/// last error is returned). `on_error` sees every failure first, to mark metadata stale.
pub(crate) async fn with_retries<T, Operation, Attempt>(
    policy: RetryPolicy,
    deadline: tokio::time::Instant,
    should_retry: impl Fn(&Error) -> bool,
    mut on_error: impl FnMut(&Error),
    mut operation: Operation,
) -> Result<T>
where
    Operation: FnMut() -> Attempt,
    Attempt: Future<Output = Result<T>>,
{
    let mut backoff = Backoff::new(policy.backoff_initial, policy.backoff_max);
    let mut attempt: u32 = 0;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                on_error(&error);
                let delay = backoff.next_delay();
                let too_late = tokio::time::Instant::now() + delay >= deadline;
                if attempt >= policy.retries || !should_retry(&error) || too_late {
                    return Err(error);
                }
                attempt += 1;
                tracing::debug!(%error, attempt, ?delay, "retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use strata_common::ErrorCode;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(1_000);
        let delays: Vec<u128> = (0..6)
            .map(|failures| Backoff::delay_after(initial, max, failures).as_millis())
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(Backoff::delay_after(initial, max, u32::MAX), max);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut backoff = Backoff::new(Duration::from_millis(1_000), Duration::from_millis(1_000));
        for _ in 0..100 {
            let delay = backoff.next_delay().as_millis();
            assert!((800..1_200).contains(&delay), "delay {delay} ms");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_retriable_errors_and_stops_after_the_budget() {
        let policy = RetryPolicy {
            retries: 2,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(10),
        };
        let attempts = Cell::new(0);
        let far = tokio::time::Instant::now() + Duration::from_secs(3_600);
        let result: Result<()> = with_retries(
            policy,
            far,
            Error::is_retriable,
            |_| {},
            || {
                attempts.set(attempts.get() + 1);
                async { Err(Error::broker(ErrorCode::NotLeaderOrFollower, "moved")) }
            },
        )
        .await;
        assert!(result.is_err());
        assert_eq!(attempts.get(), 3, "one attempt plus two retries");

        attempts.set(0);
        let result: Result<()> = with_retries(
            policy,
            far,
            Error::is_retriable,
            |_| {},
            || {
                attempts.set(attempts.get() + 1);
                async { Err(Error::broker(ErrorCode::InvalidTopicException, "bad")) }
            },
        )
        .await;
        assert!(result.is_err());
        assert_eq!(attempts.get(), 1, "a request error is not retried");

        attempts.set(0);
        let result = with_retries(
            policy,
            far,
            Error::is_retriable,
            |_| {},
            || {
                attempts.set(attempts.get() + 1);
                let attempt = attempts.get();
                async move {
                    if attempt < 2 {
                        Err(Error::Transport {
                            address: "h:1".into(),
                            message: "refused".into(),
                        })
                    } else {
                        Ok(attempt)
                    }
                }
            },
        )
        .await;
        assert_eq!(result.expect("second attempt succeeds"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_starts_after_the_deadline() {
        let policy = RetryPolicy {
            retries: 100,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(100),
        };
        let started = tokio::time::Instant::now();
        let deadline = started + Duration::from_secs(1);
        let attempts = Cell::new(0);
        let result: Result<()> = with_retries(
            policy,
            deadline,
            Error::is_retriable,
            |_| {},
            || {
                attempts.set(attempts.get() + 1);
                async { Err(Error::broker(ErrorCode::LeaderNotAvailable, "starting")) }
            },
        )
        .await;
        assert_eq!(
            result.unwrap_err().code(),
            Some(ErrorCode::LeaderNotAvailable)
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt began past the deadline"
        );
        assert!(
            attempts.get() < 100,
            "the deadline, not the count, ended the retries"
        );
    }
}
