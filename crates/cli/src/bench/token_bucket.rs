//! Paces sends at a fixed rate: a token bucket, as Kafka's perf tools throttle `--throughput`.
//!
//! The bucket holds at most `capacity` tokens (10 ms of sends, at least one) and refills
//! continuously at `rate` per second. It starts with one token, not full, so a run of S seconds
//! at R records/s sends R x S records rather than R x S plus a burst. Taking a token when none is
//! left says when the next one arrives, and the caller sleeps until then (with
//! [`PreciseSleep`], so sends are spaced evenly) instead of spinning. The small capacity lets a
//! sender catch up after a late wake-up without allowing long bursts.
//!
//! The core ([`TokenBucket::try_take`]) takes the time as an argument, so it is tested without a
//! clock.

use super::precise_sleep::PreciseSleep;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TokenBucket {
    rate_per_second: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
    /// Made by the first [`TokenBucket::take`], which runs on the runtime it registers with.
    sleep: Option<PreciseSleep>,
}

impl TokenBucket {
    /// A bucket for `rate_per_second` (at least 1) tokens a second, holding one token.
    pub fn new(rate_per_second: u64, now: Instant) -> TokenBucket {
        let rate_per_second = rate_per_second.max(1) as f64;
        let capacity = (rate_per_second / 100.0).max(1.0);
        TokenBucket {
            rate_per_second,
            capacity,
            tokens: 1.0,
            refilled_at: now,
            sleep: None,
        }
    }

    /// Takes one token at `now`, or returns when one will be available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() * self.rate_per_second).min(self.capacity);
        self.refilled_at = self.refilled_at.max(now);
        // The epsilon absorbs rounding, so that waking at the promised instant always finds the
        // token there.
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        let wait_nanos = (missing / self.rate_per_second * 1e9).ceil() as u64;
        Err(now + Duration::from_nanos(wait_nanos.max(1)))
    }

    /// Waits for a token.
    pub async fn take(&mut self) {
        // Sleeping until the promised instant refills at least one token, so this returns on
        // the second pass; the bound only guards against floating-point rounding.
        for _ in 0..8 {
            match self.try_take(Instant::now()) {
                Ok(()) => return,
                Err(at) => {
                    self.sleep
                        .get_or_insert_with(PreciseSleep::new)
                        .until(at)
                        .await
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_starts_with_one_token_and_banks_at_most_its_capacity() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000, start);
        assert_eq!(bucket.try_take(start), Ok(()));
        assert!(bucket.try_take(start).is_err(), "no initial burst");
        let later = start + Duration::from_secs(1);
        for _ in 0..10 {
            assert_eq!(bucket.try_take(later), Ok(()), "10 ms worth of catching up");
        }
        let next = bucket.try_take(later).expect_err("the bucket is empty");
        let start = later;
        let wait = next - start;
        assert!(
            wait >= Duration::from_millis(1) && wait <= Duration::from_micros(1_001),
            "{wait:?}"
        );
        assert_eq!(bucket.try_take(next), Ok(()));
    }

    #[test]
    fn the_long_run_rate_is_the_configured_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5_000, start);
        let mut now = start;
        let mut taken = 0u64;
        // A sender whose timer wakes in whole milliseconds, as tokio's does.
        while now < start + Duration::from_secs(1) {
            match bucket.try_take(now) {
                Ok(()) => taken += 1,
                Err(at) => {
                    let wait = at - now;
                    now += Duration::from_millis(wait.as_millis() as u64 + 1);
                }
            }
        }
        // 5 000 in the second plus the first token, less what the last wake-up (up to 2 ms
        // late, so up to 10 tokens at this rate) pushed past the end of the second.
        assert!(
            (4_990..=5_001).contains(&taken),
            "{taken} tokens in one second"
        );
    }

    #[test]
    fn idle_time_does_not_bank_more_than_the_capacity() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100, start);
        let later = start + Duration::from_secs(60);
        assert_eq!(bucket.try_take(later), Ok(()));
        assert!(
            bucket.try_take(later).is_err(),
            "capacity is one token at 100/s"
        );
    }

    #[test]
    fn a_clock_that_goes_backwards_takes_nothing_extra() {
        let start = Instant::now() + Duration::from_secs(1);
        let mut bucket = TokenBucket::new(1, start);
        assert_eq!(bucket.try_take(start), Ok(()));
        let earlier = start - Duration::from_millis(500);
        assert!(bucket.try_take(earlier).is_err());
    }
}
