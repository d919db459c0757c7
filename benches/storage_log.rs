//! Storage benchmarks (criterion), plus a same-run baseline comparison for appends.
//!
//! `cargo bench -p strata-storage` runs them at full size; `cargo test --all-targets` (what CI
//! runs) runs every benchmark once on small inputs so they cannot rot.
//!
//! - `append/1KiB-records-x1000`: appending 1,000-record batches of 1 KiB records.
//! - `read/sequential-warm`: reading the whole log front to back through the memory maps.
//! - `read/random-offset`: one `read` at a random offset of a large log.
//! - After criterion: the append-vs-raw-write ratio, each the median of several runs measured in
//!   this process, so a noisy machine still yields a meaningful ratio.

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_common::SystemClock;
use strata_record::RecordBatchBuilder;
use strata_storage::{Log, LogConfig};

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 1000;

/// Full size only under `cargo bench` (which passes `--bench`); `cargo test --all-targets` and
/// `-- --test` run every benchmark once on small inputs.
fn quick() -> bool {
    !std::env::args().any(|argument| argument == "--bench")
        || std::env::args().any(|argument| argument == "--test")
}

fn sample_batch() -> Bytes {
    let mut builder = RecordBatchBuilder::with_capacity(RECORDS_PER_BATCH * (RECORD_BYTES + 32));
    let value = vec![b'x'; RECORD_BYTES];
    for index in 0..RECORDS_PER_BATCH {
        let key = format!("key-{index}");
        builder.push(
            1_700_000_000_000 + index as i64,
            Some(key.as_bytes()),
            Some(&value),
            &[],
        );
    }
    builder.build().into_bytes()
}

fn bench_config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 20,
        retention_ms: None,
        segment_ms: None,
        max_message_bytes: 4 << 20,
        ..LogConfig::default()
    }
}

fn open_log(directory: &std::path::Path) -> Log {
    Log::open(directory, bench_config(), Arc::new(SystemClock))
        .expect("open bench log")
        .0
}

/// Fills a log with `bytes` of batches; returns it and its record count.
fn filled_log(directory: &std::path::Path, bytes: u64) -> Log {
    let log = open_log(directory);
    let batch = sample_batch();
    let mut written = 0;
    while written < bytes {
        log.append(batch.clone(), 0).expect("append");
        written += batch.len() as u64;
    }
    log
}

fn bench_append(criterion: &mut Criterion) {
    let batch = sample_batch();
    let mut group = criterion.benchmark_group("append");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    // What validation alone costs of an append: CRC-32C plus walking every record.
    let view = strata_record::RecordBatch::new(batch.clone()).expect("valid batch");
    group.bench_function("validate-only", |bencher| {
        bencher.iter(|| view.validate(usize::MAX).expect("valid"))
    });
    group.bench_function("crc-only", |bencher| {
        bencher.iter(|| view.verify_crc().expect("valid"))
    });
    group.bench_function("1KiB-records-x1000", |bencher| {
        bencher.iter_custom(|iterations| {
            let directory = tempfile::tempdir().expect("tempdir");
            let log = open_log(directory.path());
            let started = Instant::now();
            for _ in 0..iterations {
                log.append(batch.clone(), 0).expect("append");
            }
            started.elapsed()
        })
    });
    group.finish();
}

fn bench_reads(criterion: &mut Criterion) {
    let log_bytes: u64 = if quick() { 32 << 20 } else { 1 << 30 };
    let directory = tempfile::tempdir().expect("tempdir");
    let log = filled_log(directory.path(), log_bytes);
    let end = log.log_end_offset();
    let mut group = criterion.benchmark_group("read");
    group.throughput(Throughput::Bytes(log.size_in_bytes()));
    group.sample_size(10);
    group.bench_function("sequential-warm", |bencher| {
        bencher.iter(|| {
            let mut offset = 0;
            let mut total = 0u64;
            while offset < end {
                let read = log.read(offset, 1 << 20, None).expect("read");
                // Read every byte, as a consumer or a socket write would.
                total = read.records.chunks_exact(8).fold(total, |sum, word| {
                    sum.wrapping_add(u64::from_ne_bytes(word.try_into().expect("eight bytes")))
                });
                let last = strata_record::BatchIter::new(read.records)
                    .last()
                    .expect("a batch")
                    .expect("whole");
                offset = last.next_offset();
            }
            total
        })
    });
    group.finish();

    let mut group = criterion.benchmark_group("read");
    group.throughput(Throughput::Elements(1));
    let mut rng = StdRng::seed_from_u64(7);
    group.bench_function("random-offset", |bencher| {
        bencher.iter(|| {
            let offset = rng.random_range(0..end);
            log.read(offset, 1 << 20, None).expect("read").records.len()
        })
    });
    group.finish();
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Appends the batches through a fresh log; returns how long the appends took.
fn time_log_appends(batch: &Bytes, batches: u64) -> Duration {
    let directory = tempfile::tempdir().expect("tempdir");
    let log = open_log(directory.path());
    let started = Instant::now();
    for _ in 0..batches {
        log.append(batch.clone(), 0).expect("append");
    }
    started.elapsed()
}

/// Writes the same bytes with plain `write` calls to a new file on the same disk.
fn time_raw_writes(batch: &Bytes, batches: u64) -> Duration {
    let directory = tempfile::tempdir().expect("tempdir");
    let mut file = File::create(directory.path().join("raw")).expect("create");
    let started = Instant::now();
    for _ in 0..batches {
        file.write_all(batch).expect("write");
    }
    started.elapsed()
}

/// Appends `bytes` through the log, and writes the same bytes with plain `write` calls: the
/// baseline the issue asks the log to reach 80% of.
///
/// On a VM the first write into never-touched guest memory runs several times slower than a
/// write into page-cache pages freed by an earlier run, so an unmeasured warm-up pair goes first,
/// and the two take turns going first so neither always inherits the other's freed pages.
fn append_versus_raw_write() {
    let batch = sample_batch();
    let total: u64 = if quick() { 16 << 20 } else { 512 << 20 };
    let batches = (total / batch.len() as u64).max(1);
    let runs = if quick() { 1 } else { 7 };
    time_log_appends(&batch, batches);
    time_raw_writes(&batch, batches);
    let mut log_times = Vec::new();
    let mut raw_times = Vec::new();
    for run in 0..runs {
        if run % 2 == 0 {
            log_times.push(time_log_appends(&batch, batches));
            raw_times.push(time_raw_writes(&batch, batches));
        } else {
            raw_times.push(time_raw_writes(&batch, batches));
            log_times.push(time_log_appends(&batch, batches));
        }
    }
    let bytes = (batches * batch.len() as u64) as f64;
    let log_rate = bytes / median(log_times).as_secs_f64() / 1e9;
    let raw_rate = bytes / median(raw_times).as_secs_f64() / 1e9;
    println!(
        "append vs raw write, median of {runs} runs of {} MiB: log {log_rate:.2} GB/s, raw write {raw_rate:.2} GB/s, ratio {:.2}",
        bytes as u64 >> 20,
        log_rate / raw_rate
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    if !quick() {
        criterion = criterion.measurement_time(Duration::from_secs(5));
    }
    bench_append(&mut criterion);
    bench_reads(&mut criterion);
    criterion.final_summary();
    append_versus_raw_write();
}
