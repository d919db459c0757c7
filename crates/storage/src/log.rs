//! One partition's log: an ordered set of segments, the log start and end offsets, the recovery
//! point and the leader-epoch cache (Kafka's `UnifiedLog` and `LocalLog` in one type).
//!
//! Files in a log directory:
//! - `{base_offset:020}.log`, `.index`, `.timeindex`: the segments (see `segment`);
//! - `log-state-checkpoint`: recovery point, log start offset and a clean-shutdown flag;
//! - `leader-epoch-checkpoint`: epoch -> start offset (see `leader_epoch`).
//!
//! Invariants (checked by [`Log::validate`]):
//! - segments are ordered by base offset and their offsets do not overlap; only the last
//!   (active) segment is written to, and it is never deleted by retention;
//! - `log_start_offset <= recovery_point <= log_end_offset` after open, and
//!   `log_start_offset <= log_end_offset` always;
//! - everything below the recovery point was fsynced, so recovery after a crash validates only
//!   the segments from the one holding the recovery point on; a crash at any instant leaves a log
//!   that opens, keeps every fsynced batch, and serves nothing torn or corrupt.
//!
//! Thread-safety: `Log` is `Send + Sync`. Structural changes (append, roll, truncate, retention)
//! are serialised by one writer lock; reads take a snapshot of the segment list and never wait for
//! a write to finish, and see only whole, published batches.

use crate::checkpoint;
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::leader_epoch::{EpochEntry, LeaderEpochCache};
use crate::producer_state::{BatchIdentity, ProducerStateTable, SequenceCheck};
use crate::segment::{
    AppendFailure, LOG_SUFFIX, OFFSET_INDEX_SUFFIX, OpenMode, PreparedBatch, STAMPED_HEADER_BYTES,
    Segment, TIME_INDEX_SUFFIX, Truncation, file_path,
};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, TryLockError};
use strata_common::Clock;
use strata_record::{BatchIter, RecordBatch, TimestampType};
use tracing::{error, info, warn};

const STATE_FILE_NAME: &str = "log-state-checkpoint";

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_end_offset: i64,
    pub record_count: i64,
    pub max_timestamp: i64,
    /// The broker time stamped on the batches, when the log uses `LogAppendTime`.
    pub log_append_time: Option<i64>,
    /// The batch was a producer's retry of one already in the log; nothing was written and the
    /// offsets are the original ones.
    pub duplicate: bool,
}

/// The result of a read: whole batches, and the offsets bounding the log when it was read.
#[derive(Clone, Debug)]
pub struct ReadResult {
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// The first record at or after a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampOffset {
    pub offset: i64,
    pub timestamp: i64,
}

/// What opening a log found and repaired.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    pub clean_shutdown: bool,
    pub segments_recovered: usize,
    pub truncation: Option<Truncation>,
    pub segments_deleted: usize,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// What one retention pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

struct Writer {
    closed: bool,
    leader_epochs: LeaderEpochCache,
    producers: ProducerStateTable,
    /// Segments rolled since the last flush; their bytes may still be only in the page cache.
    rolled_unsynced: Vec<Arc<Segment>>,
    records_since_flush: u64,
    last_flush_ms: i64,
    /// Bumped by every truncation, so a flush that raced with one does not move the recovery
    /// point over bytes it never synced.
    truncation_generation: u64,
}

/// A state checkpoint read and not yet written; it holds the log's turn to write the file.
struct StateWrite<'a> {
    _turn: MutexGuard<'a, ()>,
    path: PathBuf,
    payload: Vec<u8>,
}

impl StateWrite<'_> {
    fn write(self) -> Result<()> {
        checkpoint::write(&self.path, &self.payload)
    }
}

/// Segments taken out of the log whose files are still on disk.
#[must_use = "the files stay on disk until `delete_files`"]
struct RemovedSegments(Vec<Arc<Segment>>);

impl RemovedSegments {
    /// Deletes the files. The last handle to a segment a reader still holds closes when that
    /// reader lets go; until then its pages stay valid.
    fn delete_files(self) -> Result<()> {
        for segment in &self.0 {
            segment.delete_files()?;
        }
        Ok(())
    }
}

/// What an append may do besides writing into the active segment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AppendWork {
    /// Wait for the writer lock, roll segments, persist leader epochs and fsync.
    Any,
    /// Refuse instead of any of those.
    ActiveSegmentOnly,
}

pub struct Log {
    directory: PathBuf,
    config: RwLock<LogConfig>,
    clock: Arc<dyn Clock>,
    segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    writer: Mutex<Writer>,
    /// Serialises writes of the state checkpoint file, so a later one (a truncation's, or
    /// `close`'s clean marker) is never overtaken by an earlier one. Taken after `writer` when
    /// both are held.
    state_file: Mutex<()>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    recovery_point: AtomicI64,
    /// Set, once, by the first disk failure whose effect on the files is unknown; from then on
    /// every write fails with [`StorageError::Offline`] and only reads are served.
    offline: OnceLock<Arc<StorageError>>,
    /// Held by every segment fsync until its outcome is recorded. Linux reports a failed
    /// writeback to one fsync only, so a second fsync racing the failing one could succeed and
    /// advance the recovery point over lost pages; serialised, it finds the log offline first.
    /// Taken after `writer` when both are held.
    sync_turn: Mutex<()>,
}

struct LogState {
    recovery_point: i64,
    log_start_offset: i64,
    clean_shutdown: bool,
}

fn read_state(directory: &Path) -> Result<LogState> {
    let fresh = LogState {
        recovery_point: 0,
        log_start_offset: 0,
        clean_shutdown: false,
    };
    match checkpoint::read(&directory.join(STATE_FILE_NAME)) {
        Ok(Some(payload)) if payload.len() == 17 => Ok(LogState {
            recovery_point: i64::from_be_bytes(payload[0..8].try_into().expect("eight bytes")),
            log_start_offset: i64::from_be_bytes(payload[8..16].try_into().expect("eight bytes")),
            clean_shutdown: payload[16] == 1,
        }),
        Ok(None) => Ok(fresh),
        Ok(Some(_)) | Err(StorageError::Corrupt { .. }) => {
            warn!(log = %directory.display(), "log state checkpoint is corrupt; recovering every segment");
            Ok(fresh)
        }
        Err(error) => Err(error),
    }
}

fn parse_base_offset(file_name: &str) -> Option<i64> {
    let stem = file_name.strip_suffix(".log")?;
    (stem.len() == 20 && stem.bytes().all(|byte| byte.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

impl Log {
    /// Opens the log in `directory`, creating it if needed, and recovers from an unclean
    /// shutdown. A directory that cannot be read is an error, never treated as empty.
    pub fn open(
        directory: &Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Log, RecoveryReport)> {
        config.validate()?;
        fs::create_dir_all(directory)
            .map_err(StorageError::io("create log directory", directory))?;
        let now_ms = clock.now_ms();
        let mut base_offsets = Vec::new();
        let entries =
            fs::read_dir(directory).map_err(StorageError::io("list log directory", directory))?;
        for entry in entries {
            let entry = entry.map_err(StorageError::io("list log directory", directory))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A checkpoint or segment rewrite that never reached its rename; the previous
                // file stands.
                fs::remove_file(entry.path())
                    .map_err(StorageError::io("remove temporary file", entry.path()))?;
            } else if let Some(base_offset) = parse_base_offset(&name) {
                base_offsets.push(base_offset);
            }
        }
        base_offsets.sort_unstable();
        // An index without its log is what a crash in the middle of deleting a segment leaves.
        for entry in fs::read_dir(directory)
            .map_err(StorageError::io("list log directory", directory))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan = [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX]
                .iter()
                .any(|suffix| {
                    name.strip_suffix(&format!(".{suffix}"))
                        .and_then(|stem| stem.parse::<i64>().ok())
                        .is_some_and(|base| !base_offsets.contains(&base))
                });
            if orphan {
                fs::remove_file(entry.path())
                    .map_err(StorageError::io("remove orphan index", entry.path()))?;
            }
        }

        let state = read_state(directory)?;
        let mut report = RecoveryReport {
            clean_shutdown: state.clean_shutdown,
            ..RecoveryReport::default()
        };
        let mut segments = BTreeMap::new();
        if base_offsets.is_empty() {
            let segment =
                Segment::create(directory, state.log_start_offset.max(0), &config, now_ms, 0)?;
            segments.insert(segment.base_offset(), Arc::new(segment));
        }
        let mut index = 0;
        while index < base_offsets.len() {
            let base_offset = base_offsets[index];
            let next_base = base_offsets.get(index + 1).copied();
            let is_last = next_base.is_none();
            let trusted =
                state.clean_shutdown || next_base.is_some_and(|next| next <= state.recovery_point);
            let mode = if trusted {
                OpenMode::Trusted
            } else {
                OpenMode::Recover
            };
            let (segment, truncation, recovered) =
                Segment::open(directory, base_offset, &config, mode, is_last, now_ms)?;
            report.segments_recovered += usize::from(recovered);
            let mut segment = segment;
            if let Some(mut truncation) = truncation {
                warn!(log = %directory.display(), ?truncation, "cut a torn or corrupt tail");
                // Everything after a cut is unreachable: offsets must stay dense and ordered.
                for &later in &base_offsets[index + 1..] {
                    let log_path = file_path(directory, later, LOG_SUFFIX);
                    truncation.bytes_discarded +=
                        fs::metadata(&log_path).map_or(0, |metadata| metadata.len());
                    report.segments_deleted += 1;
                    for suffix in [LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                        let path = file_path(directory, later, suffix);
                        match fs::remove_file(&path) {
                            Ok(()) => {}
                            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                            Err(error) => {
                                return Err(StorageError::Io {
                                    operation: "delete segment",
                                    path,
                                    source: error,
                                });
                            }
                        }
                    }
                }
                if !is_last {
                    drop(segment);
                    segment = Segment::open(
                        directory,
                        base_offset,
                        &config,
                        OpenMode::Trusted,
                        true,
                        now_ms,
                    )?
                    .0;
                }
                report.truncation = Some(truncation);
                segments.insert(base_offset, Arc::new(segment));
                break;
            }
            segments.insert(base_offset, Arc::new(segment));
            index += 1;
        }

        let first = segments
            .values()
            .next()
            .expect("a log has at least one segment");
        let last = segments
            .values()
            .next_back()
            .expect("a log has at least one segment");
        let log_end_offset = last.next_offset();
        let log_start_offset = state
            .log_start_offset
            .max(first.base_offset())
            .min(log_end_offset);
        let recovery_point = if state.clean_shutdown {
            log_end_offset
        } else {
            state.recovery_point.clamp(log_start_offset, log_end_offset)
        };
        report.log_start_offset = log_start_offset;
        report.log_end_offset = log_end_offset;

        let mut leader_epochs = match LeaderEpochCache::load(directory)? {
            Some(cache) => cache,
            None => {
                let mut cache = LeaderEpochCache::empty(directory);
                for segment in segments.values() {
                    for header in segment.headers_from(0, segment.size()) {
                        cache.assign(header.partition_leader_epoch, header.base_offset);
                    }
                }
                cache.persist()?;
                cache
            }
        };
        if leader_epochs.truncate_from_end(log_end_offset)
            | leader_epochs.truncate_from_start(log_start_offset)
        {
            leader_epochs.persist()?;
        }

        let producers = rebuild_producer_state(
            segments.values().map(|segment| segment.as_ref()),
            &config,
            now_ms,
        );

        let log = Log {
            directory: directory.to_owned(),
            config: RwLock::new(config),
            clock,
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                closed: false,
                leader_epochs,
                producers,
                rolled_unsynced: Vec::new(),
                records_since_flush: 0,
                last_flush_ms: now_ms,
                truncation_generation: 0,
            }),
            state_file: Mutex::new(()),
            log_start_offset: AtomicI64::new(log_start_offset),
            log_end_offset: AtomicI64::new(log_end_offset),
            recovery_point: AtomicI64::new(recovery_point),
            offline: OnceLock::new(),
            sync_turn: Mutex::new(()),
        };
        // From here on a crash is unclean until `close` says otherwise.
        log.write_state(false)?;
        if report.truncation.is_some() || report.segments_recovered > 0 {
            info!(log = %directory.display(), ?report, "recovered log");
        }
        Ok((log, report))
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }
    pub fn config(&self) -> LogConfig {
        self.config.read().expect("config lock").clone()
    }

    /// Whether a disk failure took the log offline: it then refuses every append, flush, roll,
    /// truncation, retention pass and checkpoint, and serves reads of what it already holds.
    /// The broker gives up the partition's replica and reports `KAFKA_STORAGE_ERROR`; reopening
    /// the directory (once the disk is sound) recovers everything that was fsynced.
    pub fn is_offline(&self) -> bool {
        self.offline.get().is_some()
    }

    /// The failure that took the log offline, if one did.
    pub fn offline_cause(&self) -> Option<Arc<StorageError>> {
        self.offline.get().cloned()
    }

    fn offline_error(&self) -> Option<StorageError> {
        self.offline.get().map(|cause| StorageError::Offline {
            directory: self.directory.clone(),
            cause: cause.clone(),
        })
    }

    /// Takes the log offline because of `cause` (the first cause stays) and returns the error
    /// to report. Nothing is retried: after a failed fsync the kernel may have dropped the dirty
    /// pages and marked them clean, so a later fsync that succeeds proves nothing.
    fn go_offline(&self, cause: StorageError) -> StorageError {
        let mut first = false;
        self.offline.get_or_init(|| {
            first = true;
            Arc::new(cause)
        });
        let error = self.offline_error().expect("just set");
        if first {
            error!(log = %self.directory.display(), %error, "log is offline");
        }
        error
    }

    /// fsyncs `segments`, taking the log offline if one fails.
    fn sync_segments(&self, segments: &[Arc<Segment>]) -> Result<()> {
        let _turn = self.sync_turn.lock().expect("sync lock");
        if let Some(error) = self.offline_error() {
            return Err(error);
        }
        for segment in segments {
            segment.sync().map_err(|error| self.go_offline(error))?;
        }
        Ok(())
    }

    /// Replaces the configuration; it applies from the next append, roll or retention pass.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        *self.config.write().expect("config lock") = config;
        Ok(())
    }

    /// Bytes of the log's segment files (records only, indexes not counted): each segment
    /// keeps its size as it grows, so this reads counters under the segments' read lock.
    pub fn size_in_bytes(&self) -> u64 {
        self.segments
            .read()
            .expect("segments lock")
            .values()
            .map(|segment| segment.size())
            .sum()
    }
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments_snapshot()
            .iter()
            .map(|segment| segment.base_offset())
            .collect()
    }

    fn segments_snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .expect("segments lock")
            .values()
            .cloned()
            .collect()
    }

    fn active_segment(&self) -> Arc<Segment> {
        self.segments
            .read()
            .expect("segments lock")
            .values()
            .next_back()
            .cloned()
            .expect("a log has at least one segment")
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>> {
        let writer = self.writer.lock().expect("writer lock");
        self.check_writable(&writer)?;
        Ok(writer)
    }

    fn check_writable(&self, writer: &Writer) -> Result<()> {
        if writer.closed {
            return Err(StorageError::Closed(self.directory.clone()));
        }
        self.offline_error().map_or(Ok(()), Err)
    }

    /// [`Log::lock_writer`] without waiting: `None` while another append, flush or truncation
    /// holds the lock.
    fn try_lock_writer(&self) -> Result<Option<MutexGuard<'_, Writer>>> {
        let writer = match self.writer.try_lock() {
            Ok(writer) => writer,
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Poisoned(_)) => panic!("writer lock poisoned"),
        };
        self.check_writable(&writer)?;
        Ok(Some(writer))
    }

    /// Appends batches from a producer as the partition leader: each batch is validated (framing,
    /// CRC, every record, `max.message.bytes`), then given the next offsets and `leader_epoch`.
    /// Either every batch of the request is appended or none is.
    pub fn append(&self, records: Bytes, leader_epoch: i32) -> Result<AppendInfo> {
        let appended = self.append_from_producer(records, leader_epoch, AppendWork::Any)?;
        Ok(appended.expect("an append that may do any work always appends"))
    }

    /// [`Log::append`] for a caller that must not block on anything but the write itself (an
    /// async runtime worker). Returns `Ok(None)`, having changed nothing, when the append would
    /// wait for another append's lock, roll a segment, persist a new leader epoch or fsync for
    /// the flush policy; the caller then runs [`Log::append`] where blocking is fine. Validation
    /// errors are returned as they are: they do not depend on where the append runs.
    pub fn try_append_to_active_segment(
        &self,
        records: Bytes,
        leader_epoch: i32,
    ) -> Result<Option<AppendInfo>> {
        self.append_from_producer(records, leader_epoch, AppendWork::ActiveSegmentOnly)
    }

    fn append_from_producer(
        &self,
        records: Bytes,
        leader_epoch: i32,
        work: AppendWork,
    ) -> Result<Option<AppendInfo>> {
        let config = self.config();
        let batches = recompress(parse_batches(records, &config, true)?, &config)?;
        let mut writer = match work {
            AppendWork::Any => self.lock_writer()?,
            AppendWork::ActiveSegmentOnly => match self.try_lock_writer()? {
                Some(writer) => writer,
                None => return Ok(None),
            },
        };
        let latest_epoch = writer.leader_epochs.latest_epoch();
        if let Some(latest) = latest_epoch
            && leader_epoch < latest
        {
            return Err(StorageError::StaleLeaderEpoch {
                requested: leader_epoch,
                latest,
            });
        }
        if let Some(duplicate) = check_sequences(&writer.producers, &batches)? {
            return Ok(Some(duplicate));
        }
        if work == AppendWork::ActiveSegmentOnly && latest_epoch != Some(leader_epoch) {
            return Ok(None);
        }
        let log_append_time = (config.message_timestamp_type == TimestampType::LogAppendTime)
            .then(|| self.clock.now_ms());
        let mut next_offset = self.log_end_offset();
        let mut prepared = Vec::with_capacity(batches.len());
        for batch in batches {
            let batch = match log_append_time {
                Some(now_ms) => {
                    let mut bytes = batch.into_bytes().to_vec();
                    RecordBatch::set_log_append_time(&mut bytes, now_ms);
                    RecordBatch::new(Bytes::from(bytes)).expect("stamping keeps the framing")
                }
                None => batch,
            };
            let mut header: [u8; STAMPED_HEADER_BYTES] = batch.as_bytes()[..STAMPED_HEADER_BYTES]
                .try_into()
                .expect("header bytes");
            RecordBatch::set_base_offset(&mut header, next_offset);
            RecordBatch::set_partition_leader_epoch(&mut header, leader_epoch);
            next_offset += i64::from(batch.last_offset_delta()) + 1;
            prepared.push(PreparedBatch { header, batch });
        }
        if work == AppendWork::ActiveSegmentOnly
            && (self.needs_roll(&prepared, &config)
                || self.flush_due(&writer, next_offset - self.log_end_offset(), &config))
        {
            return Ok(None);
        }
        let mut info = self.append_prepared(&mut writer, &prepared, &config)?;
        info.log_append_time = log_append_time;
        self.record_producers(&mut writer.producers, &prepared, &config);
        if writer.leader_epochs.assign(leader_epoch, info.base_offset) {
            writer.leader_epochs.persist()?;
        }
        // Checked above for an append kept to the active segment; should `flush.ms` have come
        // due since, the next append or the maintenance pass flushes.
        if work == AppendWork::Any {
            self.maybe_flush(writer, &config)?;
        }
        Ok(Some(info))
    }

    /// Appends batches copied from the leader as a follower: offsets and epochs are kept, and
    /// the first batch must start at this log's end offset.
    pub fn append_as_follower(&self, records: Bytes) -> Result<AppendInfo> {
        let config = self.config();
        let batches = parse_batches(records, &config, false)?;
        let mut writer = self.lock_writer()?;
        let mut expected = self.log_end_offset();
        let mut prepared = Vec::with_capacity(batches.len());
        for batch in batches {
            if batch.base_offset() < expected {
                return Err(StorageError::NonMonotonicOffsets {
                    expected,
                    found: batch.base_offset(),
                });
            }
            expected = batch.next_offset();
            let header = batch.as_bytes()[..STAMPED_HEADER_BYTES]
                .try_into()
                .expect("header bytes");
            prepared.push(PreparedBatch { header, batch });
        }
        let info = self.append_prepared(&mut writer, &prepared, &config)?;
        self.record_producers(&mut writer.producers, &prepared, &config);
        let mut epochs_changed = false;
        for prepared in &prepared {
            epochs_changed |= writer.leader_epochs.assign(
                prepared.batch.partition_leader_epoch(),
                prepared.base_offset(),
            );
        }
        if epochs_changed {
            writer.leader_epochs.persist()?;
        }
        self.maybe_flush(writer, &config)?;
        Ok(info)
    }

    fn append_prepared(
        &self,
        writer: &mut Writer,
        prepared: &[PreparedBatch],
        config: &LogConfig,
    ) -> Result<AppendInfo> {
        let total: u64 = prepared
            .iter()
            .map(|batch| batch.batch.size_in_bytes() as u64)
            .sum();
        let base_offset = prepared.first().expect("at least one batch").base_offset();
        let next_offset = prepared.last().expect("at least one batch").next_offset();
        let mut active = self.active_segment();
        if self.needs_roll(prepared, config) {
            active = self.roll(writer, base_offset, total, config)?;
        }
        active.append(prepared).map_err(|failure| match failure {
            AppendFailure::Undone(error) => error,
            AppendFailure::Dirty(error) => self.go_offline(error),
        })?;
        self.log_end_offset.store(next_offset, Ordering::Release);
        let record_count = next_offset - base_offset;
        writer.records_since_flush += record_count as u64;
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            log_end_offset: next_offset,
            record_count,
            max_timestamp: prepared
                .iter()
                .map(|batch| batch.batch.max_timestamp())
                .max()
                .unwrap_or(i64::MIN),
            log_append_time: None,
            duplicate: false,
        })
    }

    /// Whether `prepared` must go into a new segment: the active one lacks the room (bytes, index
    /// entries or relative offsets) or is older than `segment.ms`.
    fn needs_roll(&self, prepared: &[PreparedBatch], config: &LogConfig) -> bool {
        let total: u64 = prepared
            .iter()
            .map(|batch| batch.batch.size_in_bytes() as u64)
            .sum();
        let last_offset = prepared.last().expect("at least one batch").next_offset() - 1;
        let active = self.active_segment();
        let too_old = config
            .segment_ms
            .is_some_and(|segment_ms| self.clock.now_ms() - active.created_ms() >= segment_ms);
        !active.can_fit(total, last_offset, config.segment_bytes) || (too_old && !active.is_empty())
    }

    /// Starts a new active segment at `base_offset` and seals the old one. The new segment is
    /// created before the old one is sealed, so a failure to create it (a full disk) leaves the
    /// old one active and the log as it was; the next append tries the roll again.
    fn roll(
        &self,
        writer: &mut Writer,
        base_offset: i64,
        minimum_capacity: u64,
        config: &LogConfig,
    ) -> Result<Arc<Segment>> {
        let old = self.active_segment();
        let now_ms = self.clock.now_ms();
        let replaces_empty = old.is_empty();
        if replaces_empty {
            // Too small for this append and holding nothing: replace it rather than leave an
            // empty segment behind. The replacement takes the same file names, so these files go
            // first; retired, the old segment takes no append into unlinked files should the
            // create fail, and the next append rolls again.
            old.retire();
            old.delete_files()?;
        }
        let segment = Arc::new(Segment::create(
            &self.directory,
            base_offset,
            config,
            now_ms,
            minimum_capacity,
        )?);
        let mut segments = self.segments.write().expect("segments lock");
        if replaces_empty {
            segments.remove(&old.base_offset());
        } else {
            if let Err(error) = old.close_for_writes() {
                // Sealed in memory all the same; the files keep a zero tail the next open cuts.
                warn!(segment = %old.log_path().display(), %error, "could not trim a rolled segment");
            }
            writer.rolled_unsynced.push(old.clone());
        }
        segments.insert(base_offset, segment.clone());
        Ok(segment)
    }

    /// Whether the flush policy (`flush.messages`, `flush.ms`) asks for an fsync once
    /// `more_records` more are appended.
    fn flush_due(&self, writer: &Writer, more_records: i64, config: &LogConfig) -> bool {
        let by_count = config.flush_messages.is_some_and(|limit| {
            writer.records_since_flush + u64::try_from(more_records).unwrap_or(0) >= limit
        });
        let by_time = config
            .flush_ms
            .is_some_and(|limit| self.clock.now_ms() - writer.last_flush_ms >= limit);
        by_count || by_time
    }

    fn maybe_flush(&self, writer: MutexGuard<'_, Writer>, config: &LogConfig) -> Result<()> {
        let due = self.flush_due(&writer, 0, config);
        drop(writer);
        if due { self.flush() } else { Ok(()) }
    }

    /// fsyncs every byte appended so far and moves the recovery point to the log end offset.
    /// The writer lock is held only to take the list of segments, so appends continue meanwhile.
    pub fn flush(&self) -> Result<()> {
        let (segments, log_end_offset, generation) = {
            let mut writer = self.lock_writer()?;
            writer.records_since_flush = 0;
            writer.last_flush_ms = self.clock.now_ms();
            let mut segments = writer.rolled_unsynced.clone();
            segments.push(self.active_segment());
            (
                segments,
                self.log_end_offset(),
                writer.truncation_generation,
            )
        };
        self.sync_and_advance_recovery_point(&segments, generation, log_end_offset)
    }

    /// Flushes when `flush.ms` has passed since the last flush; for a background task.
    pub fn flush_if_due(&self) -> Result<()> {
        let config = self.config();
        let writer = self.lock_writer()?;
        self.maybe_flush(writer, &config)
    }

    /// fsyncs segments rolled since the last flush, moving the recovery point to the active
    /// segment, as Kafka does after a roll. For a background task: it keeps recovery after a
    /// crash bounded to about one segment even when the flush policy leaves data to the page cache.
    pub fn sync_rolled_segments(&self) -> Result<()> {
        let (segments, generation) = {
            let writer = self.lock_writer()?;
            (writer.rolled_unsynced.clone(), writer.truncation_generation)
        };
        let Some(newest) = segments.iter().map(|segment| segment.next_offset()).max() else {
            return Ok(());
        };
        self.sync_and_advance_recovery_point(&segments, generation, newest)
    }

    /// fsyncs `segments` without the writer lock, forgets them as unsynced, and moves the
    /// recovery point to `durable_up_to` unless a truncation happened since `generation` was
    /// read (then the synced bytes may no longer be the log's). A failed fsync takes the log
    /// offline and the recovery point never moves again.
    fn sync_and_advance_recovery_point(
        &self,
        segments: &[Arc<Segment>],
        generation: u64,
        durable_up_to: i64,
    ) -> Result<()> {
        self.sync_segments(segments)?;
        let mut writer = self.writer.lock().expect("writer lock");
        if let Some(error) = self.offline_error() {
            return Err(error);
        }
        writer
            .rolled_unsynced
            .retain(|unsynced| !segments.iter().any(|synced| Arc::ptr_eq(synced, unsynced)));
        if writer.truncation_generation == generation {
            self.recovery_point
                .fetch_max(durable_up_to, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Writes the recovery point and log start offset to the state checkpoint. Appends do not
    /// wait for it: the writer lock is held only while the values are read, not across the
    /// file's fsyncs, so a slow disk does not stall producers at every maintenance pass.
    pub fn checkpoint(&self) -> Result<()> {
        self.begin_checkpoint()?.write()
    }

    fn begin_checkpoint(&self) -> Result<StateWrite<'_>> {
        let _writer = self.lock_writer()?;
        Ok(self.state_write(false))
    }

    /// Writes the state checkpoint; callers that change what it records hold the writer lock.
    fn write_state(&self, clean_shutdown: bool) -> Result<()> {
        self.state_write(clean_shutdown).write()
    }

    /// The state as it is now, to be written while no later state can be written first.
    fn state_write(&self, clean_shutdown: bool) -> StateWrite<'_> {
        let turn = self.state_file.lock().expect("state file lock");
        let mut payload = Vec::with_capacity(17);
        payload.extend_from_slice(&self.recovery_point().to_be_bytes());
        payload.extend_from_slice(&self.log_start_offset().to_be_bytes());
        payload.push(u8::from(clean_shutdown));
        StateWrite {
            _turn: turn,
            path: self.directory.join(STATE_FILE_NAME),
            payload,
        }
    }

    /// Whole batches starting with the one that holds `offset`, up to `max_bytes` (but at least
    /// one batch when there is one) and ending at or before `max_offset` (the high watermark;
    /// `None` means the log end offset). Reading at the log end offset returns no records.
    pub fn read(&self, offset: i64, max_bytes: u64, max_offset: Option<i64>) -> Result<ReadResult> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        if offset < log_start_offset || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset,
                log_end_offset,
            });
        }
        let bound = max_offset.unwrap_or(log_end_offset).min(log_end_offset);
        let candidates: Vec<Arc<Segment>> = {
            let segments = self.segments.read().expect("segments lock");
            let floor = segments
                .range(..=offset)
                .next_back()
                .map_or(i64::MIN, |(&base, _)| base);
            segments
                .range(floor..)
                .map(|(_, segment)| segment.clone())
                .collect()
        };
        for segment in candidates {
            if segment.next_offset() <= offset {
                continue;
            }
            let records = segment.read(offset, max_bytes, bound);
            return Ok(ReadResult {
                records,
                log_start_offset,
                log_end_offset,
            });
        }
        Ok(ReadResult {
            records: Bytes::new(),
            log_start_offset,
            log_end_offset,
        })
    }

    /// The offset and timestamp of the first record whose timestamp is at or after `timestamp`,
    /// or `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<TimestampOffset> {
        let log_start_offset = self.log_start_offset();
        self.segments_snapshot()
            .iter()
            .filter(|segment| segment.next_offset() > log_start_offset)
            .find_map(|segment| segment.find_offset_by_timestamp(timestamp, log_start_offset))
            .map(|(offset, timestamp)| TimestampOffset { offset, timestamp })
    }

    /// The latest leader epoch that wrote to this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.writer
            .lock()
            .expect("writer lock")
            .leader_epochs
            .latest_epoch()
    }

    /// Kafka's OffsetsForLeaderEpoch answer: the largest epoch at or below `epoch` and the offset
    /// where it ended here; `None` when `epoch` is newer than any this log has seen.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let writer = self.writer.lock().expect("writer lock");
        writer
            .leader_epochs
            .end_offset_for(epoch, self.log_end_offset())
    }

    pub fn leader_epoch_entries(&self) -> Vec<EpochEntry> {
        self.writer
            .lock()
            .expect("writer lock")
            .leader_epochs
            .entries()
            .to_vec()
    }

    fn record_producers(
        &self,
        producers: &mut ProducerStateTable,
        prepared: &[PreparedBatch],
        config: &LogConfig,
    ) {
        let now_ms = self.clock.now_ms();
        for batch in prepared {
            producers.record(
                &identity(&batch.batch),
                batch.base_offset(),
                batch.next_offset() - 1,
                now_ms,
            );
        }
        producers.evict_beyond(config.max_producer_ids);
    }

    /// Forgets the state of producers idle for `producer.id.expiration.ms`; returns how many.
    /// For the maintenance thread: appends only enforce `max_producer_ids`, which is cheap.
    pub fn expire_producer_ids(&self) -> Result<usize> {
        let mut writer = self.lock_writer()?;
        let expiration_ms = self.config().producer_id_expiration_ms;
        Ok(writer.producers.expire(self.clock.now_ms(), expiration_ms))
    }

    /// How many producer ids the log keeps state for.
    pub fn producer_id_count(&self) -> usize {
        self.writer.lock().expect("writer lock").producers.len()
    }

    /// Removes every batch that holds `offset` or comes after it, as a follower does when it
    /// diverged from a new leader. The cut is made durable before this returns; a failure to
    /// make it takes the log offline, as its files may then hold batches it no longer has.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let mut writer = self.lock_writer()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        writer.truncation_generation += 1;
        let log_end_offset = self
            .cut_segments(&mut writer, offset)
            .map_err(|error| self.go_offline(error))?;
        self.log_end_offset.store(log_end_offset, Ordering::Release);
        self.log_start_offset
            .fetch_min(log_end_offset, Ordering::AcqRel);
        self.recovery_point
            .fetch_min(log_end_offset, Ordering::AcqRel);
        if writer.leader_epochs.truncate_from_end(log_end_offset) {
            writer.leader_epochs.persist()?;
        }
        writer.producers = rebuild_producer_state(
            self.segments_snapshot()
                .iter()
                .map(|segment| segment.as_ref()),
            &self.config(),
            self.clock.now_ms(),
        );
        self.write_state(false)
    }

    /// The segment work of [`Log::truncate_to`]: drops the segments after the one holding
    /// `offset`, cuts that one and fsyncs it. Returns the new log end offset.
    fn cut_segments(&self, writer: &mut Writer, offset: i64) -> Result<i64> {
        let config = self.config();
        let now_ms = self.clock.now_ms();
        let target = {
            let mut segments = self.segments.write().expect("segments lock");
            let target_base = segments.range(..=offset).next_back().map_or_else(
                || {
                    *segments
                        .keys()
                        .next()
                        .expect("a log has at least one segment")
                },
                |(&base, _)| base,
            );
            let later: Vec<i64> = segments
                .range(target_base + 1..)
                .map(|(&base, _)| base)
                .collect();
            for base in later {
                let segment = segments.remove(&base).expect("listed segment");
                segment.delete_files()?;
            }
            let mut target = segments[&target_base].clone();
            if !target.is_writable() {
                target = Arc::new(target.reopen_cut_at(offset, &config, now_ms)?);
                segments.insert(target_base, target.clone());
            }
            target
        };
        writer
            .rolled_unsynced
            .retain(|segment| segment.base_offset() < target.base_offset());
        let log_end_offset = target.truncate_to(offset)?;
        self.sync_segments(&[target])?;
        Ok(log_end_offset)
    }

    /// Empties the log and restarts it at `offset`, as a follower does when the leader's log
    /// start has moved past everything it has (Kafka's `truncateFullyAndStartAt`).
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        let mut writer = self.lock_writer()?;
        let config = self.config();
        let now_ms = self.clock.now_ms();
        writer.truncation_generation += 1;
        writer.rolled_unsynced.clear();
        {
            let mut segments = self.segments.write().expect("segments lock");
            // A crash between the two steps leaves no segment, which `open` handles by starting
            // an empty one at the checkpointed log start. A failure between them leaves a log
            // without segments, which only reopening repairs.
            let restarted = std::mem::take(&mut *segments)
                .into_values()
                .try_for_each(|segment| segment.delete_files())
                .and_then(|()| Segment::create(&self.directory, offset, &config, now_ms, 0))
                .map_err(|error| self.go_offline(error))?;
            segments.insert(offset, Arc::new(restarted));
        }
        self.log_start_offset.store(offset, Ordering::Release);
        self.log_end_offset.store(offset, Ordering::Release);
        self.recovery_point.store(offset, Ordering::Release);
        if writer.leader_epochs.truncate_from_end(0) {
            writer.leader_epochs.persist()?;
        }
        writer.producers = ProducerStateTable::default();
        self.write_state(false)
    }

    /// Moves the log start offset up to `offset` (Kafka's DeleteRecords): records below it are no
    /// longer served and the segments wholly below it are deleted. Returns the new start.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let mut writer = self.lock_writer()?;
        let log_end_offset = self.log_end_offset();
        if offset > log_end_offset || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset,
            });
        }
        if offset <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        self.log_start_offset.store(offset, Ordering::Release);
        self.recovery_point
            .fetch_max(offset.min(self.recovery_point()), Ordering::AcqRel);
        if writer.leader_epochs.truncate_from_start(offset) {
            writer.leader_epochs.persist()?;
        }
        let (_, removed) =
            self.remove_segments_while(&mut writer, |segment, _| segment.next_offset() <= offset);
        let recorded = self.write_state(false);
        drop(writer);
        removed.delete_files()?;
        recorded.map(|()| offset)
    }

    /// Deletes closed segments past `retention.ms` or beyond `retention.bytes`, oldest first, and
    /// segments wholly below the log start offset. The active segment is never deleted.
    pub fn enforce_retention(&self) -> Result<RetentionReport> {
        let mut writer = self.lock_writer()?;
        let config = self.config();
        let now_ms = self.clock.now_ms();
        let log_start_offset = self.log_start_offset();
        let mut excess_bytes = config
            .retention_bytes
            .map(|limit| self.size_in_bytes() as i64 - limit as i64);
        let (report, removed) = self.remove_segments_while(&mut writer, |segment, _| {
            let below_start = segment.next_offset() <= log_start_offset;
            let expired = config
                .retention_ms
                .is_some_and(|retention_ms| segment.max_timestamp() < now_ms - retention_ms);
            let oversized = excess_bytes.is_some_and(|excess| excess - segment.size() as i64 >= 0);
            if oversized && let Some(excess) = excess_bytes.as_mut() {
                *excess -= segment.size() as i64;
            }
            below_start || expired || oversized
        });
        let recorded = if report.segments_deleted == 0 {
            Ok(())
        } else if writer
            .leader_epochs
            .truncate_from_start(self.log_start_offset())
        {
            writer
                .leader_epochs
                .persist()
                .and_then(|()| self.write_state(false))
        } else {
            self.write_state(false)
        };
        drop(writer);
        removed.delete_files()?;
        recorded.map(|()| report)
    }

    /// Takes closed segments out of the log, from the oldest, while `should_delete` says so.
    /// Readers no longer find them; their files are deleted by [`RemovedSegments::delete_files`]
    /// once the caller has released the writer lock, because unlinking a large file (and closing
    /// its last descriptor) can take milliseconds that appends should not wait for. A crash in
    /// between leaves files wholly below the log start, which the next retention pass deletes.
    fn remove_segments_while(
        &self,
        writer: &mut Writer,
        mut should_delete: impl FnMut(&Segment, usize) -> bool,
    ) -> (RetentionReport, RemovedSegments) {
        let mut report = RetentionReport::default();
        let removed: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write().expect("segments lock");
            let closed: Vec<i64> = segments.keys().copied().take(segments.len() - 1).collect();
            let mut removed = Vec::new();
            for (position, base) in closed.into_iter().enumerate() {
                if !should_delete(&segments[&base], position) {
                    break;
                }
                removed.push(segments.remove(&base).expect("listed segment"));
            }
            if let Some(first) = segments.values().next() {
                self.log_start_offset
                    .fetch_max(first.base_offset(), Ordering::AcqRel);
                self.recovery_point.fetch_max(
                    self.log_start_offset().min(self.log_end_offset()),
                    Ordering::AcqRel,
                );
            }
            removed
        };
        for segment in &removed {
            writer
                .rolled_unsynced
                .retain(|unsynced| !Arc::ptr_eq(unsynced, segment));
            report.segments_deleted += 1;
            report.bytes_deleted += segment.size();
        }
        report.log_start_offset = self.log_start_offset();
        (report, RemovedSegments(removed))
    }

    /// Flushes everything, trims the active segment and marks the shutdown clean, so the next
    /// open trusts every segment instead of scanning. The log accepts no more writes.
    pub fn close(&self) -> Result<()> {
        let mut writer = self.lock_writer()?;
        let active = self.active_segment();
        active.close_for_writes()?;
        let mut segments = std::mem::take(&mut writer.rolled_unsynced);
        segments.push(active);
        self.sync_segments(&segments)?;
        self.recovery_point
            .store(self.log_end_offset(), Ordering::Release);
        self.write_state(true)?;
        writer.closed = true;
        Ok(())
    }

    /// Closes the log and removes its directory (topic deletion).
    pub fn delete(&self) -> Result<()> {
        let mut writer = self.writer.lock().expect("writer lock");
        writer.closed = true;
        fs::remove_dir_all(&self.directory)
            .map_err(StorageError::io("delete log directory", &self.directory))
    }

    /// Asserts the invariants listed in the module documentation. For tests; costs a scan.
    pub fn validate(&self) {
        let segments = self.segments_snapshot();
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        assert!(
            log_start_offset <= log_end_offset,
            "log start {log_start_offset} is past the end {log_end_offset}"
        );
        assert!(
            self.recovery_point() <= log_end_offset,
            "recovery point is past the log end"
        );
        let mut previous_end = i64::MIN;
        for (index, segment) in segments.iter().enumerate() {
            segment.validate();
            assert!(
                segment.base_offset() >= previous_end,
                "segment {} overlaps its predecessor",
                segment.log_path().display()
            );
            if index + 1 < segments.len() {
                assert!(!segment.is_writable(), "only the last segment is writable");
            } else {
                // An empty active segment is retired while a roll that replaces it is retried.
                assert!(
                    segment.is_writable() || segment.is_empty(),
                    "the last segment is writable"
                );
            }
            previous_end = segment.next_offset();
        }
        assert_eq!(
            previous_end, log_end_offset,
            "the last segment ends at the log end offset"
        );
        let epochs = self.leader_epoch_entries();
        assert!(
            epochs.windows(2).all(|pair| pair[0].epoch < pair[1].epoch
                && pair[0].start_offset <= pair[1].start_offset)
        );
        assert!(
            epochs
                .iter()
                .all(|entry| entry.start_offset <= log_end_offset)
        );
    }
}

fn identity(batch: &RecordBatch) -> BatchIdentity {
    BatchIdentity {
        producer_id: batch.producer_id(),
        producer_epoch: batch.producer_epoch(),
        base_sequence: batch.base_sequence(),
        record_count: batch.record_count(),
    }
}

/// Checks every batch's producer sequence against the table and against the batches before it
/// in the same request. A retried single batch that is already in the log comes back as the
/// append it duplicates.
fn check_sequences(
    producers: &ProducerStateTable,
    batches: &[RecordBatch],
) -> Result<Option<AppendInfo>> {
    for (index, batch) in batches.iter().enumerate() {
        let batch_identity = identity(batch);
        let earlier = batches[..index].iter().rev().find(|earlier| {
            earlier.producer_id() == batch.producer_id()
                && batch.producer_id() != strata_record::NO_PRODUCER_ID
        });
        let check = match earlier {
            Some(earlier) => {
                let expected = earlier.base_sequence().wrapping_add(earlier.record_count());
                if batch.base_sequence() == expected {
                    SequenceCheck::Accept
                } else {
                    SequenceCheck::OutOfOrder {
                        expected,
                        found: batch.base_sequence(),
                    }
                }
            }
            None => producers.check(&batch_identity),
        };
        match check {
            SequenceCheck::Accept => {}
            SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } if batches.len() == 1 => {
                return Ok(Some(AppendInfo {
                    base_offset,
                    last_offset,
                    log_end_offset: last_offset + 1,
                    record_count: last_offset - base_offset + 1,
                    max_timestamp: batch.max_timestamp(),
                    log_append_time: None,
                    duplicate: true,
                }));
            }
            SequenceCheck::Duplicate { .. } => {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id: batch.producer_id(),
                    expected: -1,
                    found: batch.base_sequence(),
                });
            }
            SequenceCheck::OutOfOrder { expected, found } => {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id: batch.producer_id(),
                    expected,
                    found,
                });
            }
            SequenceCheck::Fenced { current_epoch } => {
                return Err(StorageError::ProducerFenced {
                    producer_id: batch.producer_id(),
                    epoch: batch.producer_epoch(),
                    current_epoch,
                });
            }
        }
    }
    Ok(None)
}

/// Rebuilds producer state from the batch headers of the given segments, oldest first. The log
/// does not store append times, so a batch's largest timestamp (no later than now) stands in for
/// its append time, as Kafka's rebuilt state uses it.
fn rebuild_producer_state<'a>(
    segments: impl Iterator<Item = &'a Segment>,
    config: &LogConfig,
    now_ms: i64,
) -> ProducerStateTable {
    let mut producers = ProducerStateTable::default();
    for segment in segments {
        for header in segment.headers_from(0, segment.size()) {
            producers.record(
                &header.producer,
                header.base_offset,
                header.next_offset - 1,
                header.max_timestamp.min(now_ms),
            );
        }
    }
    producers.expire(now_ms, config.producer_id_expiration_ms);
    producers.evict_beyond(config.max_producer_ids);
    producers
}

/// Splits a request into batches and checks each. Producer batches (`from_producer`) get full
/// validation; replicated batches were validated by the leader and need only framing and CRC.
fn parse_batches(
    records: Bytes,
    config: &LogConfig,
    from_producer: bool,
) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for (index, batch) in BatchIter::new(records).enumerate() {
        let batch = batch.map_err(|source| StorageError::InvalidBatch { index, source })?;
        check_size(index, &batch, config)?;
        // A compressed batch's records may inflate to a multiple of max.message.bytes, no more
        // (see strata_record::decompressed_limit).
        let checked = if from_producer {
            batch.validate(config.max_message_bytes)
        } else {
            batch.verify_crc()
        };
        checked.map_err(|source| StorageError::InvalidBatch { index, source })?;
        batches.push(batch);
    }
    if batches.is_empty() {
        return Err(StorageError::EmptyAppend);
    }
    Ok(batches)
}

/// Applies the topic's `compression.type`: a batch in another codec than the one it names is
/// recompressed to it, as Kafka's leader does; under "producer" (`None`) batches stay as sent.
/// Done before the writer lock is taken, as the costliest step of such an append.
fn recompress(batches: Vec<RecordBatch>, config: &LogConfig) -> Result<Vec<RecordBatch>> {
    let Some(codec) = config.compression_type else {
        return Ok(batches);
    };
    let mut recompressed = Vec::with_capacity(batches.len());
    for (index, batch) in batches.into_iter().enumerate() {
        if batch.compression_type() == Ok(codec) {
            recompressed.push(batch);
            continue;
        }
        let batch = batch
            .recompressed(codec)
            .map_err(|source| StorageError::InvalidBatch { index, source })?;
        // The topic's codec may make a batch larger than the producer's did.
        check_size(index, &batch, config)?;
        recompressed.push(batch);
    }
    Ok(recompressed)
}

/// Refuses the `index`th batch of a request when it is over `max.message.bytes`.
fn check_size(index: usize, batch: &RecordBatch, config: &LogConfig) -> Result<()> {
    if batch.size_in_bytes() > config.max_message_bytes {
        return Err(StorageError::MessageTooLarge {
            index,
            size: batch.size_in_bytes(),
            max: config.max_message_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_common::ManualClock;
    use strata_record::RecordBatchBuilder;

    fn one_record() -> Bytes {
        let mut builder = RecordBatchBuilder::new();
        builder.push(1_700_000_000_000, None, Some(b"value"), &[]);
        builder.build().into_bytes()
    }

    #[test]
    fn appends_go_on_while_a_checkpoint_writes_the_state_file() {
        let directory = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let (log, _) = Log::open(directory.path(), LogConfig::default(), clock).unwrap();
        log.append(one_record(), 0).unwrap();

        let checkpoint = log.begin_checkpoint().unwrap();
        let appended = log.try_append_to_active_segment(one_record(), 0).unwrap();
        assert!(
            appended.is_some(),
            "the writer lock is free while the checkpoint's file is written"
        );
        checkpoint.write().unwrap();

        log.close().unwrap();
        assert!(matches!(log.checkpoint(), Err(StorageError::Closed(_))));
        let (reopened, report) = Log::open(
            directory.path(),
            LogConfig::default(),
            Arc::new(ManualClock::new(0)),
        )
        .unwrap();
        assert_eq!(reopened.log_end_offset(), 2);
        assert_eq!(report.segments_recovered, 0, "the clean marker came last");
    }
}
