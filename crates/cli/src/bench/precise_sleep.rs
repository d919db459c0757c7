//! Sleeps until an instant with the kernel timer's precision (tens of microseconds), on the
//! calling task's runtime. Tokio's timer wakes on millisecond ticks: pacing 5 000 records/s with
//! it woke the sender once a millisecond to send five records back to back, so the fifth waited
//! behind the other four and `bench e2e` measured its own bursts rather than a steady rate.
//!
//! On Linux the sleep is a timerfd registered with tokio's reactor; elsewhere, or if the timerfd
//! cannot be created, it is tokio's timer.

use std::time::Instant;

#[derive(Debug)]
pub struct PreciseSleep {
    #[cfg(target_os = "linux")]
    timer: Option<timerfd::Timer>,
}

impl PreciseSleep {
    /// Must be called on a tokio runtime with I/O enabled.
    pub fn new() -> PreciseSleep {
        PreciseSleep {
            #[cfg(target_os = "linux")]
            timer: timerfd::Timer::new()
                .inspect_err(|error| {
                    tracing::warn!(%error, "no timerfd; pacing falls back to tokio's millisecond timer")
                })
                .ok(),
        }
    }

    pub async fn until(&mut self, deadline: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(timer) = &self.timer {
            match timer.sleep_until(deadline).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, "timerfd failed; pacing falls back to tokio's millisecond timer");
                    self.timer = None;
                }
            }
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

#[cfg(target_os = "linux")]
mod timerfd {
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };
    use std::io;
    use std::os::fd::OwnedFd;
    use std::time::Instant;
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    #[derive(Debug)]
    pub(super) struct Timer(AsyncFd<OwnedFd>);

    impl Timer {
        pub(super) fn new() -> io::Result<Timer> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            // SAFETY: an `OwnedFd` is an open descriptor, and the `AsyncFd` owns it until drop.
            let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
            Ok(Timer(registered?))
        }

        pub(super) async fn sleep_until(&self, deadline: Instant) -> io::Result<()> {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(());
            }
            let it_value = Timespec::try_from(remaining).map_err(io::Error::other)?;
            // Arming also zeroes the expiration count, so an expiry left unread by a cancelled
            // sleep cannot end this one early; any stale readiness it left makes the read below
            // fail with EAGAIN, which clears it.
            timerfd_settime(
                self.0.get_ref(),
                TimerfdTimerFlags::empty(),
                &Itimerspec {
                    it_interval: Timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    it_value,
                },
            )?;
            loop {
                let mut ready = self.0.readable().await?;
                let mut expirations = [0u8; 8];
                let read = ready.try_io(|fd| {
                    rustix::io::read(fd.get_ref(), &mut expirations[..]).map_err(io::Error::from)
                });
                if let Ok(result) = read {
                    // A one-shot timer that was read stays unreadable until it is armed again
                    // and expires; forgetting the readiness now spares the next sleep a read
                    // that would only fail with EAGAIN.
                    ready.clear_ready();
                    return result.map(drop);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::time::Duration;

    #[tokio::test]
    async fn a_sleep_never_ends_before_its_deadline() {
        let mut sleep = PreciseSleep::new();
        for _ in 0..20 {
            let deadline = Instant::now() + Duration::from_micros(200);
            sleep.until(deadline).await;
            assert!(Instant::now() >= deadline);
        }
    }

    #[tokio::test]
    async fn an_expiry_left_by_a_cancelled_sleep_does_not_end_the_next_one_early() {
        let mut sleep = PreciseSleep::new();
        let cancelled = sleep
            .until(Instant::now() + Duration::from_micros(50))
            .now_or_never();
        assert!(cancelled.is_none(), "armed, then dropped before its expiry");
        // Long enough for the cancelled sleep's timer to fire unread.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let deadline = Instant::now() + Duration::from_millis(5);
        sleep.until(deadline).await;
        assert!(Instant::now() >= deadline);
    }
}
