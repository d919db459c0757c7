//! Fault injection for tests: makes chosen file operations below a directory fail or stall, so
//! the storage engine's handling of a failing or slow disk (a full disk, a failed or stalled
//! fsync) can be exercised without one.
//!
//! Always compiled and inert unless a fault is armed: each hook costs one relaxed atomic load
//! while none is, next to a system call. A fault is scoped to a directory (every file below it),
//! so tests running in parallel in one process, each in a temporary directory of its own, never
//! see each other's faults. It lasts until its [`FaultGuard`] is dropped.
//!
//! Hooks sit where the engine's handling differs, not on every system call: the fsync of a
//! segment, the write of an append, the zeroing of a segment's tail, the creation of a segment.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

/// A file operation a fault can make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// The fsync of a segment (its log file and indexes count as one).
    SegmentSync,
    /// The write of an append into a segment. The stamped header of the first batch reaches the
    /// file before the error, as when a disk fills up in the middle of a write.
    AppendWrite,
    /// Zeroing bytes of a segment: undoing a failed append, or cutting a truncated tail.
    Zero,
    /// Creating a segment. Fires once the new files exist, so their cleanup runs too.
    SegmentCreate,
}

/// What to fail, from which occurrence, how often, and how.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    operation: Operation,
    effect: Effect,
    skip: u64,
    times: u64,
}

/// What a fault does to an operation it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// Fails it with this errno.
    Fail(i32),
    /// Holds it, then lets it go on, once the fault's guard is dropped: a disk that takes its
    /// time (a stalled fsync), to show what waits for it and what must not.
    Stall,
}

impl Fault {
    /// Fails every `operation` with `EIO`, the error of a failed writeback.
    pub fn io_error(operation: Operation) -> Fault {
        Fault::with_errno(operation, rustix::io::Errno::IO.raw_os_error())
    }

    /// Fails every `operation` with `ENOSPC`, a full disk.
    pub fn no_space(operation: Operation) -> Fault {
        Fault::with_errno(operation, rustix::io::Errno::NOSPC.raw_os_error())
    }

    /// Holds every `operation` until the guard is dropped, then lets it succeed.
    pub fn stall(operation: Operation) -> Fault {
        Fault {
            operation,
            effect: Effect::Stall,
            skip: 0,
            times: u64::MAX,
        }
    }

    fn with_errno(operation: Operation, errno: i32) -> Fault {
        Fault {
            operation,
            effect: Effect::Fail(errno),
            skip: 0,
            times: u64::MAX,
        }
    }

    /// Lets the first `count` occurrences succeed.
    pub fn after(self, count: u64) -> Fault {
        Fault {
            skip: count,
            ..self
        }
    }

    /// Fails only `count` occurrences, then lets the operation succeed again: a disk whose
    /// fsync fails once and then reports success, though the pages it failed to write are gone.
    pub fn times(self, count: u64) -> Fault {
        Fault {
            times: count,
            ..self
        }
    }
}

struct Armed {
    id: u64,
    directory: PathBuf,
    fault: Fault,
    seen: u64,
    failed: u64,
}

/// How many faults are armed; zero keeps every hook to one load.
static ARMED_COUNT: AtomicUsize = AtomicUsize::new(0);
static ARMED: Mutex<Vec<Armed>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// Signalled whenever a fault is disarmed, which is what a stalled operation waits for.
static DISARMED: Condvar = Condvar::new();

fn armed() -> std::sync::MutexGuard<'static, Vec<Armed>> {
    // A test that panicked while holding the lock leaves a list that is still whole.
    ARMED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Arms `fault` for every file below `directory` until the guard is dropped.
#[must_use = "the fault is disarmed when the guard is dropped"]
pub fn inject(directory: &Path, fault: Fault) -> FaultGuard {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    armed().push(Armed {
        id,
        directory: directory.to_owned(),
        fault,
        seen: 0,
        failed: 0,
    });
    ARMED_COUNT.fetch_add(1, Ordering::Release);
    FaultGuard { id }
}

/// Disarms its fault when dropped.
pub struct FaultGuard {
    id: u64,
}

impl FaultGuard {
    /// How many operations the fault has failed (or stalled) so far.
    pub fn failures(&self) -> u64 {
        armed()
            .iter()
            .find(|armed| armed.id == self.id)
            .map_or(0, |armed| armed.failed)
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        armed().retain(|armed| armed.id != self.id);
        ARMED_COUNT.fetch_sub(1, Ordering::Release);
        DISARMED.notify_all();
    }
}

/// The hook: the error an armed fault makes `operation` on `path` fail with, if any.
pub(crate) fn check(operation: Operation, path: &Path) -> io::Result<()> {
    if ARMED_COUNT.load(Ordering::Relaxed) == 0 {
        return Ok(());
    }
    let mut failure = None;
    let mut stalled_by = Vec::new();
    let mut faults = armed();
    for armed in faults.iter_mut() {
        if armed.fault.operation != operation || !path.starts_with(&armed.directory) {
            continue;
        }
        armed.seen += 1;
        if armed.seen > armed.fault.skip && armed.failed < armed.fault.times {
            armed.failed += 1;
            match armed.fault.effect {
                Effect::Fail(errno) => {
                    failure.get_or_insert(errno);
                }
                Effect::Stall => stalled_by.push(armed.id),
            }
        }
    }
    // Waiting releases the list, so other operations and guards carry on meanwhile.
    while faults.iter().any(|armed| stalled_by.contains(&armed.id)) {
        faults = DISARMED
            .wait(faults)
            .unwrap_or_else(PoisonError::into_inner);
    }
    failure.map_or(Ok(()), |errno| Err(io::Error::from_raw_os_error(errno)))
}
