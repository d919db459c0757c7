//! The baselines a benchmark is quoted against, measured in-process in the same run: raw TCP
//! throughput over loopback on this machine, and (for produce) a raw write of the same bytes to a
//! new file (TigerBeetle's and iggy-bench's habit of comparing with a
//! baseline measured alongside, rather than with a number from another day and machine).
//!
//! A reader on 127.0.0.1 reads into a 1 MiB buffer while a writer pushes the bytes in 1 MiB
//! writes, each on an OS thread of its own with blocking sockets, so the figure is the kernel's
//! and the machine's whatever runtime the benchmark itself runs on. Nothing is parsed or copied
//! beyond the socket buffers, so this is the ceiling any client-broker path over loopback can
//! reach; a benchmark's MB/s divided by it says how much of that ceiling Strata's protocol,
//! batching and storage leave.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use hdrhistogram::Histogram;

use super::report::{latency_histogram, record_latency};

const WRITE_BYTES: usize = 1 << 20;
/// Smaller transfers are dominated by task start-up and the first socket-buffer fill, which
/// would make the ratio meaningless for short benchmark runs.
const BASELINE_BYTES_MIN: u64 = 64 << 20;
/// A long benchmark's full volume adds nothing to the estimate but time.
const BASELINE_BYTES_MAX: u64 = 1 << 30;

/// A baseline measured in the same run: how long `bytes` took.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Baseline {
    pub fn bytes_per_second(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How many bytes the baseline pushes for a benchmark that moves `benchmark_bytes`: the same
/// amount, kept between 64 MiB and 1 GiB.
pub fn baseline_bytes(benchmark_bytes: u64) -> u64 {
    benchmark_bytes.clamp(BASELINE_BYTES_MIN, BASELINE_BYTES_MAX)
}

/// Both ends of a new loopback TCP connection with Nagle off: the connecting one, then the
/// accepted one (already in the listener's backlog, so accepting cannot wait).
fn loopback_connection() -> Result<(TcpStream, TcpStream)> {
    let listener =
        TcpListener::bind("127.0.0.1:0").context("cannot listen on loopback for a baseline")?;
    let client = TcpStream::connect(listener.local_addr()?)
        .context("cannot connect over loopback for a baseline")?;
    let (server, _) = listener.accept()?;
    for end in [&client, &server] {
        end.set_nodelay(true)?;
    }
    Ok((client, server))
}

/// Pushes `bytes` through a loopback TCP connection and times it from the first write to the
/// reader seeing the end of the stream.
pub async fn measure(bytes: u64) -> Result<Baseline> {
    tokio::task::spawn_blocking(move || {
        let (mut stream, mut socket) = loopback_connection()?;
        let reader = std::thread::spawn(move || -> std::io::Result<u64> {
            let mut buffer = vec![0u8; WRITE_BYTES];
            let mut received = 0u64;
            // Ends at end of stream: the writer shuts its side down after `bytes`.
            loop {
                let read = socket.read(&mut buffer)?;
                if read == 0 {
                    return Ok(received);
                }
                received += read as u64;
            }
        });
        let chunk = vec![0x5au8; WRITE_BYTES];
        let started = Instant::now();
        let mut remaining = bytes;
        while remaining > 0 {
            let length = remaining.min(WRITE_BYTES as u64) as usize;
            stream.write_all(&chunk[..length])?;
            remaining -= length as u64;
        }
        stream.shutdown(Shutdown::Write)?;
        let received = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the baseline reader panicked"))?
            .context("the baseline reader failed")?;
        let elapsed = started.elapsed();
        ensure!(
            received == bytes,
            "the baseline reader got {received} of {bytes} bytes"
        );
        Ok(Baseline { bytes, elapsed })
    })
    .await
    .context("the loopback baseline failed")?
}

/// Writes `bytes` into a new file in `directory` with plain 1 MiB `write` calls (buffered, no
/// fsync: what the broker does by default), then deletes it. The ceiling for a broker whose log
/// is on that disk; only meaningful when the broker runs on this machine (`strata dev`).
pub async fn measure_file_write(directory: std::path::PathBuf, bytes: u64) -> Result<Baseline> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let file = tempfile::NamedTempFile::with_prefix_in("strata-bench-baseline-", &directory)
            .with_context(|| format!("cannot create a baseline file in {}", directory.display()))?;
        let mut writer = file.as_file();
        let chunk = vec![0x5au8; WRITE_BYTES];
        let started = Instant::now();
        let mut remaining = bytes;
        while remaining > 0 {
            let length = remaining.min(WRITE_BYTES as u64) as usize;
            writer
                .write_all(&chunk[..length])
                .context("the baseline file write failed")?;
            remaining -= length as u64;
        }
        Ok(Baseline {
            bytes,
            elapsed: started.elapsed(),
        })
    })
    .await
    .context("the baseline file writer failed")?
}

/// Round trips of `message_bytes` over loopback TCP, `rate` a second for `duration`: the floor
/// under an end-to-end latency, whose records cross loopback at least twice (the produce, then
/// the fetch response). Two OS threads with blocking sockets echo the message, so the figure is
/// the kernel's and the machine's, not a runtime's. Bounded by `rate x duration` round trips and
/// by `duration` plus a second, for messages too large to keep the pace.
pub async fn measure_round_trips(
    rate: u64,
    duration: Duration,
    message_bytes: usize,
) -> Result<Histogram<u64>> {
    tokio::task::spawn_blocking(move || {
        let (mut stream, mut socket) = loopback_connection()?;
        let echo = std::thread::spawn(move || -> std::io::Result<()> {
            let mut message = vec![0u8; message_bytes];
            // Ends when the client closes its side.
            while socket.read_exact(&mut message).is_ok() {
                socket.write_all(&message)?;
            }
            Ok(())
        });
        let mut message = vec![0x5au8; message_bytes];
        let mut histogram = latency_histogram();
        let round_trips = rate.max(1).saturating_mul(duration.as_secs().max(1));
        let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
        let started = Instant::now();
        let give_up_at = started + duration + Duration::from_secs(1);
        for index in 0..round_trips {
            if Instant::now() >= give_up_at {
                break;
            }
            // Paced from the start, as the benchmark's token bucket is: a late round trip does
            // not push the later ones back.
            let due = started + interval.mul_f64(index as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let sent = Instant::now();
            stream
                .write_all(&message)
                .context("the round-trip baseline write failed")?;
            stream
                .read_exact(&mut message)
                .context("the round-trip baseline read failed")?;
            record_latency(&mut histogram, sent.elapsed());
        }
        drop(stream);
        echo.join()
            .map_err(|_| anyhow::anyhow!("the round-trip echo thread panicked"))?
            .context("the round-trip echo failed")?;
        Ok(histogram)
    })
    .await
    .context("the round-trip baseline failed")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_volume_follows_the_benchmark_within_bounds() {
        assert_eq!(baseline_bytes(0), 64 << 20);
        assert_eq!(baseline_bytes(200 << 20), 200 << 20);
        assert_eq!(baseline_bytes(u64::MAX), 1 << 30);
    }

    #[tokio::test]
    async fn the_baseline_moves_every_byte() -> Result<()> {
        let baseline = measure(3 * WRITE_BYTES as u64 + 17).await?;
        assert_eq!(baseline.bytes, 3 * WRITE_BYTES as u64 + 17);
        assert!(baseline.bytes_per_second() > 0.0);
        Ok(())
    }

    #[tokio::test]
    async fn the_round_trip_baseline_times_every_round_trip() -> Result<()> {
        let histogram = measure_round_trips(200, Duration::from_secs(1), 1024).await?;
        assert_eq!(histogram.len(), 200);
        assert!(histogram.min() > 0, "a round trip takes time");
        Ok(())
    }

    #[tokio::test]
    async fn a_round_trip_baseline_that_cannot_keep_the_pace_stops_after_its_time() -> Result<()> {
        // 1,000 round trips of 32 MiB each way take many seconds on any machine.
        let histogram = measure_round_trips(1_000, Duration::from_secs(1), 32 << 20).await?;
        assert!(!histogram.is_empty());
        assert!(histogram.len() < 1_000, "{} round trips", histogram.len());
        Ok(())
    }

    #[tokio::test]
    async fn the_file_baseline_writes_and_removes_its_file() -> Result<()> {
        let directory = tempfile::tempdir()?;
        let baseline =
            measure_file_write(directory.path().to_owned(), 2 * WRITE_BYTES as u64 + 5).await?;
        assert_eq!(baseline.bytes, 2 * WRITE_BYTES as u64 + 5);
        assert_eq!(
            std::fs::read_dir(directory.path())?.count(),
            0,
            "the file is gone"
        );
        Ok(())
    }
}
