//! Time as the decision-making code sees it. Cores take a `Clock` instead of reading the wall
//! clock, so tests and a later simulator can drive time explicitly instead of sleeping.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        // `as_millis` divides a u128; a producer stamps every record, so this stays in u64.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| (elapsed.as_secs() * 1_000 + u64::from(elapsed.subsec_millis())) as i64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock {
            now_ms: AtomicI64::new(now_ms),
        }
    }
    pub fn advance_ms(&self, elapsed_ms: i64) {
        self.now_ms.fetch_add(elapsed_ms, Ordering::SeqCst);
    }
    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_milliseconds_since_the_epoch() {
        let millis = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
        };
        let before = millis();
        let read = SystemClock.now_ms();
        let after = millis();
        assert!(
            before <= read && read <= after,
            "{before} <= {read} <= {after}"
        );
    }
}
