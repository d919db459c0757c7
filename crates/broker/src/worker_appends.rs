//! Where a leader's append runs. A small append that only writes into the active segment runs
//! on the async worker that received it: the hand-off to tokio's blocking pool and back costs two
//! thread wake-ups, most of a small produce's latency on a 2-vCPU VM (benches/README.md, session
//! 9). Everything else (large requests, segment rolls, fsyncs, a new leader epoch, a log another
//! append holds) goes to the blocking pool.
//!
//! A buffered write can still block: the kernel throttles writers while dirty pages pile up, and
//! a throttled worker stalls the tasks queued behind it. So an append that took long on a worker
//! sends every append to the pool for a while.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests up to this size may append on a worker. A batch of this size is validated (CRC and
/// every record) and copied into the page cache in a few tens of microseconds.
pub(crate) const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// An append on a worker taking this long means the write blocked in the kernel.
const SLOW_APPEND: Duration = Duration::from_millis(1);
/// How long appends stay off the workers after a slow one.
const PAUSE_AFTER_SLOW_APPEND: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct WorkerAppendGate {
    paused_until: Mutex<Option<Instant>>,
}

impl WorkerAppendGate {
    /// Whether a request of `request_bytes` may try its append on the worker at `now`.
    pub(crate) fn admits(&self, request_bytes: usize, now: Instant) -> bool {
        request_bytes <= MAX_REQUEST_BYTES
            && self
                .paused_until
                .lock()
                .expect("worker append gate lock")
                .is_none_or(|until| now >= until)
    }

    /// Records how long an append on a worker took, pausing appends on workers after a slow one.
    pub(crate) fn record(&self, started: Instant, finished: Instant) {
        if finished.duration_since(started) >= SLOW_APPEND {
            *self.paused_until.lock().expect("worker append gate lock") =
                Some(finished + PAUSE_AFTER_SLOW_APPEND);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_requests_append_on_a_worker() {
        let gate = WorkerAppendGate::default();
        let now = Instant::now();
        assert!(gate.admits(MAX_REQUEST_BYTES, now));
        assert!(!gate.admits(MAX_REQUEST_BYTES + 1, now));
    }

    #[test]
    fn a_slow_append_keeps_appends_off_the_workers_for_a_while() {
        let gate = WorkerAppendGate::default();
        let started = Instant::now();
        gate.record(started, started + SLOW_APPEND / 2);
        assert!(gate.admits(1, started + SLOW_APPEND));

        let finished = started + SLOW_APPEND;
        gate.record(started, finished);
        assert!(!gate.admits(1, finished));
        assert!(!gate.admits(1, finished + PAUSE_AFTER_SLOW_APPEND / 2));
        assert!(gate.admits(1, finished + PAUSE_AFTER_SLOW_APPEND));
    }
}
