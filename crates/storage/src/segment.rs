//! One segment of a partition log: `{base_offset:020}.log` with its `.index` and `.timeindex`.
//!
//! The `.log` file is a plain concatenation of RecordBatch v2 batches, exactly as produced and as
//! fetched. Batches are appended with vectored positional writes (the leader's base offset and
//! epoch are spliced in front of the producer's bytes, so nothing is copied) and read through a
//! shared memory map handed out as zero-copy `Bytes` slices.
//!
//! Invariants:
//! - bytes below `size` are whole, CRC-valid batches with strictly increasing offsets; `size` is
//!   published (release) only after the bytes are written, so readers never see half a batch;
//! - in the writable (active) segment, bytes between `size` and the end of the file are zero,
//!   except transiently during an append; a failed append zeroes what it may have written, and
//!   `truncate_to` zeroes what it cuts, so recovery can never mistake stale bytes for batches;
//! - a file is never shrunk below any size it ever published, nor an index file truncated, while
//!   a reader may map it, so a held slice can never fault (no SIGBUS): truncating the active
//!   segment zeroes in place and its trim at close stops at the old end (`trim_floor`); cutting
//!   a closed segment (a follower's truncation, or recovery) writes a new file with the kept
//!   prefix and renames it over the old one, and recovery builds new indexes the same way, so
//!   old mappings keep their inode and every byte of it. A closed segment is otherwise trimmed
//!   to exactly `size`.
//!
//! Thread-safety: one writer (serialised by the owning `Log`) and any number of readers.

use crate::checkpoint;
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::fault::{self, Operation};
use crate::offset_index::OffsetIndex;
use crate::producer_state::BatchIdentity;
use crate::time_index::TimeIndex;
use bytes::Bytes;
use memmap2::MmapOptions;
use std::fs::{self, File, OpenOptions};
use std::io::{IoSlice, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use strata_record::{LENGTH_FIELD_END, RecordBatch};
use tracing::warn;

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const OFFSET_INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// Bytes of a batch the leader may rewrite: base offset, length and partition leader epoch, and
/// the magic byte that follows, so the spliced header is one aligned slice.
pub(crate) const STAMPED_HEADER_BYTES: usize = 17;

pub(crate) fn file_path(directory: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    directory.join(format!("{base_offset:020}.{suffix}"))
}

/// A batch ready to be written: its stamped header and the producer's bytes after it.
pub(crate) struct PreparedBatch {
    pub(crate) header: [u8; STAMPED_HEADER_BYTES],
    pub(crate) batch: RecordBatch,
}

impl PreparedBatch {
    pub(crate) fn base_offset(&self) -> i64 {
        i64::from_be_bytes(self.header[0..8].try_into().expect("eight bytes"))
    }
    pub(crate) fn next_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.batch.last_offset_delta()) + 1
    }
}

/// What a header scan learns about one stored batch, without touching its records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchHeader {
    pub(crate) position: u64,
    pub(crate) size: u64,
    pub(crate) base_offset: i64,
    pub(crate) next_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) partition_leader_epoch: i32,
    pub(crate) producer: BatchIdentity,
}

/// Where recovery cut a segment, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub segment_base_offset: i64,
    pub position: u64,
    pub log_end_offset: i64,
    pub bytes_discarded: u64,
    pub reason: String,
}

/// Why an append to a segment failed.
pub(crate) enum AppendFailure {
    /// Nothing of the append is left: the segment is as it was, and a later append may succeed.
    Undone(StorageError),
    /// The write failed and so did zeroing what it may have written (this is that error): bytes
    /// past `size` may no longer be zero, and recovery could take them for batches.
    Dirty(StorageError),
}

pub(crate) enum OpenMode {
    /// The segment was flushed (or closed cleanly): trust its length and check only its indexes.
    Trusted,
    /// The segment may hold a torn or corrupt tail: validate every batch and rebuild the indexes.
    Recover,
}

pub(crate) struct Segment {
    base_offset: i64,
    directory: PathBuf,
    log_path: PathBuf,
    file: File,
    data: Bytes,
    capacity: u64,
    /// Cleared when the segment is rolled; only the active segment takes appends.
    writable: AtomicBool,
    size: AtomicU64,
    next_offset: AtomicI64,
    max_timestamp: AtomicI64,
    bytes_since_index_entry: AtomicU64,
    index_interval_bytes: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    created_ms: i64,
    /// The file is never trimmed shorter than this when the segment is closed: the end of bytes
    /// that readers may hold slices of though they are no longer below `size` (cut by a
    /// truncation, or by recovery of a file an earlier open of the log served).
    trim_floor: AtomicU64,
}

fn map_file(file: &File, path: &Path, length: u64) -> Result<Bytes> {
    if length == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only; Strata writes the file only with positional writes beyond
    // the published size (or zeroes bytes nobody may read any more), and never shrinks it below a
    // published size while mapped. Another process modifying the file is outside the contract.
    let map = unsafe { MmapOptions::new().len(length as usize).map(file) }
        .map_err(StorageError::io("mmap log", path))?;
    Ok(Bytes::from_owner(map))
}

/// A block of zeros: written over cut bytes, and compared against to check a preallocated tail.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Whether `bytes` are all zero. Compares whole blocks (memcmp), which matters for the up to
/// 1 GiB preallocated tail that recovery checks: a byte-by-byte loop took seconds per segment
/// in debug builds.
fn is_all_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(ZEROS.len())
        .all(|chunk| chunk == &ZEROS[..chunk.len()])
}

/// Overwrites bytes `from..to` of a segment's log file with zeros.
fn zero_range(file: &File, path: &Path, from: u64, to: u64) -> Result<()> {
    fault::check(Operation::Zero, path).map_err(StorageError::io("zero segment", path))?;
    let mut position = from;
    while position < to {
        let length = (to - position).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..length], position)
            .map_err(StorageError::io("zero segment", path))?;
        position += length as u64;
    }
    Ok(())
}

/// Where a segment file is rebuilt before it is renamed over the original. The `.tmp` suffix
/// makes the next open delete one that a crash left behind.
fn replacement_path(directory: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    file_path(directory, base_offset, &format!("{suffix}.tmp"))
}

/// Replaces a segment's log file with a new file holding its first `length` bytes, made
/// durable, and returns it open. Mappings of the old file keep its inode and every byte of it.
fn replace_with_prefix(directory: &Path, base_offset: i64, length: u64) -> Result<File> {
    let log_path = file_path(directory, base_offset, LOG_SUFFIX);
    let temporary = replacement_path(directory, base_offset, LOG_SUFFIX);
    let mut source = File::open(&log_path)
        .map_err(StorageError::io("open segment", &log_path))?
        .take(length);
    let mut replacement = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(StorageError::io("create segment", &temporary))?;
    std::io::copy(&mut source, &mut replacement)
        .map_err(StorageError::io("copy segment", &temporary))?;
    replacement
        .sync_all()
        .map_err(StorageError::io("fsync segment", &temporary))?;
    fs::rename(&temporary, &log_path).map_err(StorageError::io("replace segment", &log_path))?;
    checkpoint::sync_directory(directory)?;
    Ok(replacement)
}

impl Segment {
    /// Creates an empty, writable segment with room for at least `minimum_capacity` bytes.
    pub(crate) fn create(
        directory: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        minimum_capacity: u64,
    ) -> Result<Segment> {
        let created = Segment::create_files(directory, base_offset).and_then(|file| {
            Segment::assemble(
                directory,
                base_offset,
                file,
                config,
                true,
                0,
                now_ms,
                minimum_capacity,
                0,
                0,
            )
        });
        if created.is_err() {
            // A stray empty segment above the log end would be taken for part of the log by the
            // next open, and could overlap offsets appended to the old segment meanwhile.
            for suffix in [LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                let path = file_path(directory, base_offset, suffix);
                if let Err(error) = fs::remove_file(&path)
                    && error.kind() != std::io::ErrorKind::NotFound
                {
                    warn!(path = %path.display(), %error, "could not remove a segment file whose creation failed");
                }
            }
        }
        created
    }

    fn create_files(directory: &Path, base_offset: i64) -> Result<File> {
        let log_path = file_path(directory, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(StorageError::io("create segment", &log_path))?;
        for suffix in [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = file_path(directory, base_offset, suffix);
            File::create(&path).map_err(StorageError::io("create index", &path))?;
        }
        fault::check(Operation::SegmentCreate, &log_path)
            .map_err(StorageError::io("create segment", &log_path))?;
        Ok(file)
    }

    /// Builds the in-memory segment around an open log file whose first `size` bytes are valid
    /// and whose indexes hold `offset_entries` and `time_entries` valid entries.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        directory: &Path,
        base_offset: i64,
        file: File,
        config: &LogConfig,
        writable: bool,
        size: u64,
        created_ms: i64,
        minimum_capacity: u64,
        offset_entries: usize,
        time_entries: usize,
    ) -> Result<Segment> {
        let log_path = file_path(directory, base_offset, LOG_SUFFIX);
        let capacity = if writable {
            // Never shorter than the file already is: an earlier open may still map it.
            let file_length = file
                .metadata()
                .map_err(StorageError::io("stat segment", &log_path))?
                .len();
            let capacity = config
                .segment_bytes
                .max(minimum_capacity)
                .max(size)
                .max(file_length);
            file.set_len(capacity)
                .map_err(StorageError::io("extend segment", &log_path))?;
            capacity
        } else {
            size
        };
        let data = map_file(&file, &log_path, capacity)?;
        let index_capacity = writable.then_some(config.segment_index_bytes);
        let offset_index = OffsetIndex::open(
            &file_path(directory, base_offset, OFFSET_INDEX_SUFFIX),
            base_offset,
            offset_entries,
            index_capacity,
        )?;
        let time_index = TimeIndex::open(
            &file_path(directory, base_offset, TIME_INDEX_SUFFIX),
            base_offset,
            time_entries,
            index_capacity,
        )?;
        let segment = Segment {
            base_offset,
            directory: directory.to_owned(),
            log_path,
            file,
            data,
            capacity,
            writable: AtomicBool::new(writable),
            size: AtomicU64::new(size),
            next_offset: AtomicI64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            bytes_since_index_entry: AtomicU64::new(0),
            index_interval_bytes: config.index_interval_bytes,
            offset_index,
            time_index,
            created_ms,
            trim_floor: AtomicU64::new(size),
        };
        // Learn the last offset, the largest timestamp and the index cadence from the batches
        // after the last offset index entry; everything before it is summarised by the indexes.
        let (_, tail_position) = segment.offset_index.lookup(i64::MAX);
        let mut max_timestamp = segment.time_index.last_timestamp().unwrap_or(i64::MIN);
        let mut next_offset = base_offset;
        let mut bytes_since_index_entry = 0;
        for header in segment.headers_from(u64::from(tail_position), size) {
            max_timestamp = max_timestamp.max(header.max_timestamp);
            next_offset = header.next_offset;
            bytes_since_index_entry = if header.position == u64::from(tail_position) {
                0
            } else {
                bytes_since_index_entry
            } + header.size;
        }
        segment.next_offset.store(next_offset, Ordering::Release);
        segment
            .max_timestamp
            .store(max_timestamp, Ordering::Release);
        segment
            .bytes_since_index_entry
            .store(bytes_since_index_entry, Ordering::Relaxed);
        Ok(segment)
    }

    /// Opens an existing segment. In `Recover` mode (or when a trusted segment's indexes fail
    /// their sanity check) every batch is validated, the indexes are rebuilt, and a torn or
    /// corrupt tail is cut; the returned `Truncation` says where and why.
    pub(crate) fn open(
        directory: &Path,
        base_offset: i64,
        config: &LogConfig,
        mode: OpenMode,
        writable: bool,
        now_ms: i64,
    ) -> Result<(Segment, Option<Truncation>, bool)> {
        let log_path = file_path(directory, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(StorageError::io("open segment", &log_path))?;
        let file_length = file
            .metadata()
            .map_err(StorageError::io("stat segment", &log_path))?
            .len();
        if let OpenMode::Trusted = mode {
            let offset_check = OffsetIndex::sanity_check(
                &file_path(directory, base_offset, OFFSET_INDEX_SUFFIX),
                base_offset,
                file_length,
            )?;
            if let Ok(offset_entries) = offset_check {
                let segment = Segment::assemble(
                    directory,
                    base_offset,
                    file.try_clone()
                        .map_err(StorageError::io("open segment", &log_path))?,
                    config,
                    false,
                    file_length,
                    now_ms,
                    0,
                    offset_entries,
                    0,
                )?;
                let next_offset = segment.next_offset();
                let time_check = TimeIndex::sanity_check(
                    &file_path(directory, base_offset, TIME_INDEX_SUFFIX),
                    base_offset,
                    next_offset,
                )?;
                if let (Ok(time_entries), true) = (time_check, segment.tail_is_valid(file_length)) {
                    drop(segment);
                    let segment = Segment::assemble(
                        directory,
                        base_offset,
                        file,
                        config,
                        writable,
                        file_length,
                        now_ms,
                        0,
                        offset_entries,
                        time_entries,
                    )?;
                    return Ok((segment, None, false));
                }
            }
            warn!(segment = %log_path.display(), "indexes or tail failed their sanity check; recovering the segment");
        }
        let (segment, truncation) = Segment::recover(
            directory,
            base_offset,
            file,
            file_length,
            config,
            writable,
            now_ms,
        )?;
        Ok((segment, truncation, true))
    }

    /// Whether the batches after the last offset index entry are whole and CRC-valid: the only
    /// part of a trusted segment that a sanity check of the index cannot vouch for.
    fn tail_is_valid(&self, size: u64) -> bool {
        let (mut expected_offset, tail_position) = self.offset_index.lookup(i64::MAX);
        let mut position = u64::from(tail_position);
        while position < size {
            match self.validated_batch_at(position, size, expected_offset) {
                Ok(batch) => {
                    position += batch.size_in_bytes() as u64;
                    expected_offset = batch.next_offset();
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Parses and CRC-checks the batch at `position`, which must start at `expected_offset`
    /// (unless that is `i64::MIN`) and end by `limit`.
    fn validated_batch_at(
        &self,
        position: u64,
        limit: u64,
        expected_offset: i64,
    ) -> std::result::Result<RecordBatch, String> {
        let remaining = &self.data[position as usize..limit as usize];
        let size = match RecordBatch::peek_size(remaining) {
            None => {
                return Err(format!(
                    "{} trailing bytes are too few for a batch header",
                    remaining.len()
                ));
            }
            Some(Err(error)) => return Err(error.to_string()),
            Some(Ok(size)) => size,
        };
        if size > remaining.len() {
            return Err(format!(
                "batch of {size} bytes overruns the {} bytes left in the file",
                remaining.len()
            ));
        }
        let batch = RecordBatch::new(self.data.slice(position as usize..position as usize + size))
            .map_err(|error| error.to_string())?;
        batch.verify_crc().map_err(|error| error.to_string())?;
        if batch.last_offset_delta() < 0 || batch.record_count() <= 0 {
            return Err(format!(
                "batch at offset {} has no records",
                batch.base_offset()
            ));
        }
        // The base offset is outside the CRC, so density is what detects damage to it.
        if expected_offset != i64::MIN && batch.base_offset() != expected_offset {
            return Err(format!(
                "batch offset {} does not follow offset {}",
                batch.base_offset(),
                expected_offset - 1
            ));
        }
        Ok(batch)
    }

    fn recover(
        directory: &Path,
        base_offset: i64,
        file: File,
        file_length: u64,
        config: &LogConfig,
        writable: bool,
        now_ms: i64,
    ) -> Result<(Segment, Option<Truncation>)> {
        let log_path = file_path(directory, base_offset, LOG_SUFFIX);
        // Start from empty indexes and a segment that believes it holds nothing, then re-append
        // every batch that validates, as the original appends did. The indexes are built in new
        // files renamed over the old ones afterwards: a reader of an earlier open of this log
        // may still have the old ones mapped, and truncating them would fault its reads.
        for suffix in [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = replacement_path(directory, base_offset, suffix);
            File::create(&path).map_err(StorageError::io("create index", &path))?;
        }
        let scanner = Segment {
            base_offset,
            directory: directory.to_owned(),
            log_path: log_path.clone(),
            file: file
                .try_clone()
                .map_err(StorageError::io("open segment", &log_path))?,
            data: map_file(&file, &log_path, file_length)?,
            capacity: file_length,
            writable: AtomicBool::new(false),
            size: AtomicU64::new(0),
            next_offset: AtomicI64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            bytes_since_index_entry: AtomicU64::new(0),
            index_interval_bytes: config.index_interval_bytes,
            offset_index: OffsetIndex::open(
                &replacement_path(directory, base_offset, OFFSET_INDEX_SUFFIX),
                base_offset,
                0,
                Some(config.segment_index_bytes),
            )?,
            time_index: TimeIndex::open(
                &replacement_path(directory, base_offset, TIME_INDEX_SUFFIX),
                base_offset,
                0,
                Some(config.segment_index_bytes),
            )?,
            created_ms: now_ms,
            trim_floor: AtomicU64::new(0),
        };

        let mut position = 0u64;
        let mut expected_offset = base_offset;
        let mut previous_epoch = i32::MIN;
        let mut truncation_reason = None;
        while position < file_length {
            if scanner.data[position as usize..]
                .iter()
                .take(LENGTH_FIELD_END)
                .all(|&byte| byte == 0)
            {
                // A zero length field: the preallocated, never-written end of the file. A real
                // batch always declares a length of at least its header.
                if !is_all_zero(&scanner.data[position as usize..]) {
                    truncation_reason = Some("zeroed bytes followed by stray data".to_string());
                }
                break;
            }
            match scanner.validated_batch_at(position, file_length, expected_offset) {
                Ok(batch) if batch.partition_leader_epoch() < previous_epoch => {
                    // Also outside the CRC; epochs never go backwards within a log.
                    truncation_reason = Some(format!(
                        "leader epoch {} follows epoch {previous_epoch}",
                        batch.partition_leader_epoch()
                    ));
                    break;
                }
                Ok(batch) => {
                    previous_epoch = batch.partition_leader_epoch();
                    scanner.index_batch(
                        position,
                        batch.base_offset(),
                        batch.max_timestamp(),
                        batch.size_in_bytes() as u64,
                    )?;
                    position += batch.size_in_bytes() as u64;
                    expected_offset = batch.next_offset();
                    scanner
                        .next_offset
                        .store(expected_offset, Ordering::Release);
                    scanner
                        .max_timestamp
                        .fetch_max(batch.max_timestamp(), Ordering::AcqRel);
                }
                Err(reason) => {
                    truncation_reason = Some(reason);
                    break;
                }
            }
        }
        let truncation = match truncation_reason {
            Some(reason) => {
                let last_nonzero = scanner.data[position as usize..]
                    .iter()
                    .rposition(|&byte| byte != 0);
                let bytes_discarded = last_nonzero.map_or(0, |index| index as u64 + 1);
                Some(Truncation {
                    segment_base_offset: base_offset,
                    position,
                    log_end_offset: expected_offset,
                    bytes_discarded,
                    reason,
                })
            }
            None => None,
        };
        let offset_entries = scanner.offset_index.file().len();
        let time_entries = scanner.time_index.file().len();
        drop(scanner);
        for suffix in [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = file_path(directory, base_offset, suffix);
            fs::rename(replacement_path(directory, base_offset, suffix), &path)
                .map_err(StorageError::io("replace index", &path))?;
        }
        // Drop torn or stale bytes for good, so they cannot reappear after the next append. The
        // file is never shrunk in place: a reader of an earlier open of this log may still hold
        // slices of it, which would fault (SIGBUS) past a shorter end.
        let mut trim_floor = position;
        let file = match &truncation {
            Some(truncation) if writable => {
                // The active segment keeps its length and zeroes the cut bytes, its invariant
                // past `size` anyway; it is trimmed no shorter than before when it is closed.
                let end = position + truncation.bytes_discarded;
                zero_range(&file, &log_path, position, end)?;
                file.sync_data()
                    .map_err(StorageError::io("fsync segment", &log_path))?;
                trim_floor = file_length;
                file
            }
            // A closed segment is exactly as long as its batches; it gets a new, shorter file,
            // and readers of the old one keep its inode and all of its bytes.
            _ if !writable && file_length != position => {
                replace_with_prefix(directory, base_offset, position)?
            }
            _ => file,
        };
        let segment = Segment::assemble(
            directory,
            base_offset,
            file,
            config,
            writable,
            position,
            now_ms,
            0,
            offset_entries,
            time_entries,
        )?;
        segment.trim_floor.store(trim_floor, Ordering::Relaxed);
        if !writable {
            segment.trim_indexes()?;
        }
        Ok((segment, truncation))
    }

    /// Adds index entries for a batch just made part of the segment, at the configured interval.
    fn index_batch(
        &self,
        position: u64,
        base_offset: i64,
        max_timestamp: i64,
        size: u64,
    ) -> Result<()> {
        let since = self.bytes_since_index_entry.load(Ordering::Relaxed);
        let running_max = self
            .max_timestamp
            .load(Ordering::Acquire)
            .max(max_timestamp);
        if (position == 0 || since >= self.index_interval_bytes)
            && !self.offset_index.file().is_full()
            && !self.time_index.file().is_full()
        {
            self.offset_index.append(base_offset, position as u32)?;
            self.time_index.maybe_append(running_max, base_offset)?;
            self.bytes_since_index_entry.store(size, Ordering::Relaxed);
        } else {
            self.bytes_since_index_entry
                .store(since + size, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.size() == 0
    }
    pub(crate) fn created_ms(&self) -> i64 {
        self.created_ms
    }
    pub(crate) fn is_writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether `bytes` more, ending at offset `last_offset`, still fit this segment.
    pub(crate) fn can_fit(&self, bytes: u64, last_offset: i64, segment_bytes: u64) -> bool {
        let size = self.size();
        let within_size =
            size + bytes <= self.capacity && (size == 0 || size + bytes <= segment_bytes);
        let within_offsets = last_offset - self.base_offset <= i64::from(i32::MAX);
        self.is_writable()
            && within_size
            && within_offsets
            && !self.offset_index.file().is_full()
            && !self.time_index.file().is_full()
    }

    /// Writes prepared batches at the end of the segment and publishes them.
    pub(crate) fn append(&self, batches: &[PreparedBatch]) -> Result<(), AppendFailure> {
        let position = self.size();
        let total: u64 = batches
            .iter()
            .map(|prepared| prepared.batch.size_in_bytes() as u64)
            .sum();
        // The log rolls before either could happen (`can_fit`); an error rather than a panic
        // keeps a mistake there from poisoning the log's writer lock.
        if !self.is_writable() || position + total > self.capacity {
            return Err(AppendFailure::Undone(StorageError::Io {
                operation: "append to segment",
                path: self.log_path.clone(),
                source: std::io::Error::other(format!(
                    "{total} bytes do not fit (writable: {}, size {position}, capacity {})",
                    self.is_writable(),
                    self.capacity
                )),
            }));
        }
        if let Err(error) = self.write_at(position, batches) {
            // Leave the invariant "zero beyond size" intact for recovery; on a full disk this
            // overwrite needs no new blocks for bytes that were written.
            return Err(match self.zero(position, position + total) {
                Ok(()) => AppendFailure::Undone(error),
                Err(zero_error) => {
                    warn!(segment = %self.log_path.display(), %error, "an append failed and could not be undone");
                    AppendFailure::Dirty(zero_error)
                }
            });
        }
        // Publish the bytes first, then index them, so an index entry never points past `size`.
        self.size.store(position + total, Ordering::Release);
        let mut batch_position = position;
        for prepared in batches {
            let size = prepared.batch.size_in_bytes() as u64;
            if let Err(error) = self.index_batch(
                batch_position,
                prepared.base_offset(),
                prepared.batch.max_timestamp(),
                size,
            ) {
                // The indexes are sparse accelerators; a missing entry only lengthens a scan.
                warn!(segment = %self.log_path.display(), %error, "skipped an index entry");
            }
            self.max_timestamp
                .fetch_max(prepared.batch.max_timestamp(), Ordering::AcqRel);
            self.next_offset
                .store(prepared.next_offset(), Ordering::Release);
            batch_position += size;
        }
        Ok(())
    }

    fn write_at(&self, position: u64, batches: &[PreparedBatch]) -> Result<()> {
        let mut slices = Vec::with_capacity(batches.len() * 2);
        for prepared in batches {
            slices.push(IoSlice::new(&prepared.header));
            slices.push(IoSlice::new(
                &prepared.batch.as_bytes()[STAMPED_HEADER_BYTES..],
            ));
        }
        let mut remaining: &mut [IoSlice<'_>] = &mut slices;
        let mut offset = position;
        if let Err(error) = fault::check(Operation::AppendWrite, &self.log_path) {
            // Some bytes reach the file before the error, as on a disk that fills up mid-write.
            let _ = self.file.write_all_at(&batches[0].header, position);
            return Err(StorageError::io("write segment", &self.log_path)(error));
        }
        // IOV_MAX is 1024 on Linux; write in chunks of at most that many slices.
        while !remaining.is_empty() {
            let chunk = remaining.len().min(1024);
            // Positioned, so an append is one system call and never depends on the file cursor.
            let written = rustix::io::pwritev(&self.file, &remaining[..chunk], offset)
                .map_err(std::io::Error::from)
                .map_err(StorageError::io("write segment", &self.log_path))?;
            if written == 0 {
                return Err(StorageError::Io {
                    operation: "write segment",
                    path: self.log_path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "the disk accepted no bytes",
                    ),
                });
            }
            offset += written as u64;
            IoSlice::advance_slices(&mut remaining, written);
        }
        Ok(())
    }

    fn zero(&self, from: u64, to: u64) -> Result<()> {
        zero_range(&self.file, &self.log_path, from, to)
    }

    /// Iterates over the headers of the batches stored between `from` and `limit`. Only for
    /// bytes already validated (published, or checked by recovery).
    pub(crate) fn headers_from(
        &self,
        from: u64,
        limit: u64,
    ) -> impl Iterator<Item = BatchHeader> + '_ {
        let mut position = from;
        std::iter::from_fn(move || {
            if position >= limit {
                return None;
            }
            let bytes = &self.data[position as usize..limit as usize];
            let size = match RecordBatch::peek_size(bytes) {
                Some(Ok(size))
                    if size <= bytes.len() && size >= strata_record::BATCH_HEADER_BYTES =>
                {
                    size
                }
                _ => return None,
            };
            let read_i64 =
                |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
            let read_i32 =
                |at: usize| i32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"));
            let base_offset = read_i64(0);
            let header = BatchHeader {
                position,
                size: size as u64,
                base_offset,
                next_offset: base_offset + i64::from(read_i32(23)) + 1,
                max_timestamp: read_i64(35),
                partition_leader_epoch: read_i32(12),
                producer: BatchIdentity {
                    producer_id: read_i64(43),
                    producer_epoch: i16::from_be_bytes(
                        bytes[51..53].try_into().expect("two bytes"),
                    ),
                    base_sequence: read_i32(53),
                    record_count: read_i32(57),
                },
            };
            position += size as u64;
            Some(header)
        })
    }

    /// The header of the first batch that holds `offset` or comes after it.
    pub(crate) fn find_batch(&self, offset: i64) -> Option<BatchHeader> {
        let size = self.size();
        let (_, position) = self.offset_index.lookup(offset);
        self.headers_from(u64::from(position), size)
            .find(|header| header.next_offset > offset)
    }

    /// Whole batches starting with the one that holds `offset`: at most `max_bytes` of them
    /// (but always the first, so a consumer can make progress past a large batch), each ending
    /// at or before `max_offset`. Empty when nothing qualifies.
    pub(crate) fn read(&self, offset: i64, max_bytes: u64, max_offset: i64) -> Bytes {
        let size = self.size();
        let Some(first) = self.find_batch(offset) else {
            return Bytes::new();
        };
        let mut end = first.position;
        for header in self.headers_from(first.position, size) {
            let taken = end - first.position;
            if header.next_offset > max_offset || (taken > 0 && taken + header.size > max_bytes) {
                break;
            }
            end += header.size;
        }
        self.data.slice(first.position as usize..end as usize)
    }

    /// The first record at or after `timestamp` in this segment, with its timestamp.
    pub(crate) fn find_offset_by_timestamp(
        &self,
        timestamp: i64,
        minimum_offset: i64,
    ) -> Option<(i64, i64)> {
        if self.max_timestamp() < timestamp {
            return None;
        }
        let start_offset = self.time_index.lookup(timestamp).max(minimum_offset);
        let size = self.size();
        let (_, position) = self.offset_index.lookup(start_offset);
        for header in self.headers_from(u64::from(position), size) {
            if header.next_offset <= start_offset || header.max_timestamp < timestamp {
                continue;
            }
            let Ok(batch) = RecordBatch::new(
                self.data
                    .slice(header.position as usize..(header.position + header.size) as usize),
            ) else {
                continue;
            };
            let found = batch
                .records()
                .flatten()
                .find(|record| record.offset >= minimum_offset && record.timestamp >= timestamp);
            if let Some(record) = found {
                return Some((record.offset, record.timestamp));
            }
        }
        None
    }

    /// A closed segment cut before the batch that holds `offset`, as the new active segment.
    /// The cut goes to a new file (see `replace_with_prefix`) rather than into this one: readers
    /// may hold slices of any of it, and the new indexes are built beside the old ones too.
    pub(crate) fn reopen_cut_at(
        &self,
        offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Segment> {
        let cut = self
            .find_batch(offset)
            .map_or(self.size(), |header| header.position);
        replace_with_prefix(&self.directory, self.base_offset, cut)?;
        let (segment, ..) = Segment::open(
            &self.directory,
            self.base_offset,
            config,
            OpenMode::Recover,
            true,
            now_ms,
        )?;
        Ok(segment)
    }

    /// Drops every batch of the active segment that holds `offset` or comes after it, zeroing
    /// them in place; returns the new next offset.
    pub(crate) fn truncate_to(&self, offset: i64) -> Result<i64> {
        if !self.is_writable() {
            return Err(StorageError::Io {
                operation: "truncate segment",
                path: self.log_path.clone(),
                source: std::io::Error::other("the segment is closed; it is cut by reopen_cut_at"),
            });
        }
        let old_size = self.size();
        let Some(first_dropped) = self.find_batch(offset) else {
            return Ok(self.next_offset());
        };
        let new_size = first_dropped.position;
        self.trim_floor.fetch_max(old_size, Ordering::Relaxed);
        self.offset_index
            .truncate_to_offset(first_dropped.base_offset);
        self.time_index
            .truncate_to_offset(first_dropped.base_offset);
        self.size.store(new_size, Ordering::Release);
        self.zero(new_size, old_size)?;
        let mut max_timestamp = i64::MIN;
        for header in self.headers_from(0, new_size) {
            max_timestamp = max_timestamp.max(header.max_timestamp);
        }
        self.max_timestamp.store(max_timestamp, Ordering::Release);
        self.next_offset.store(
            first_dropped.base_offset.min(self.next_offset()),
            Ordering::Release,
        );
        let (_, last_entry_position) = self.offset_index.lookup(i64::MAX);
        let since = if new_size == 0 {
            0
        } else {
            new_size - u64::from(last_entry_position)
        };
        self.bytes_since_index_entry.store(since, Ordering::Relaxed);
        Ok(self.next_offset())
    }

    /// fsyncs the log file and its indexes.
    pub(crate) fn sync(&self) -> Result<()> {
        fault::check(Operation::SegmentSync, &self.log_path)
            .and_then(|()| self.file.sync_data())
            .map_err(StorageError::io("fsync segment", &self.log_path))?;
        self.offset_index.file().sync()?;
        self.time_index.file().sync()
    }

    fn trim_indexes(&self) -> Result<()> {
        self.offset_index.file().trim()?;
        self.time_index.file().trim()
    }

    /// Takes no more appends, without touching the files: for an empty segment about to be
    /// replaced, whose files go before the replacement exists.
    pub(crate) fn retire(&self) {
        self.writable.store(false, Ordering::Release);
    }

    /// Makes the segment read-only: no more appends, then on disk the final time index entry and
    /// the files trimmed to their contents. The segment is sealed even when the disk work fails:
    /// that only leaves a longer file, with a zero tail, that the next open repairs. It does not
    /// fsync (a roll must not stall appends on a segment's worth of dirty pages); the log syncs
    /// rolled segments in `flush` or from its maintenance thread. The in-memory map stays valid
    /// for the published bytes.
    pub(crate) fn close_for_writes(&self) -> Result<()> {
        self.writable.store(false, Ordering::Release);
        if !self.is_empty() && !self.time_index.file().is_full() {
            // So the time index alone knows the segment's largest timestamp after a restart.
            let last_offset = self
                .headers_from(0, self.size())
                .last()
                .map_or(self.base_offset, |header| header.base_offset);
            self.time_index
                .maybe_append(self.max_timestamp(), last_offset)?;
        }
        let length = self.size().max(self.trim_floor.load(Ordering::Relaxed));
        self.file
            .set_len(length)
            .map_err(StorageError::io("trim segment", &self.log_path))?;
        self.trim_indexes()
    }

    /// Removes the segment's files. Readers holding slices keep the unlinked pages alive.
    pub(crate) fn delete_files(&self) -> Result<()> {
        for suffix in [LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = file_path(&self.directory, self.base_offset, suffix);
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
        Ok(())
    }

    /// For tests and `validate()`: recheck the invariants that cost a scan.
    pub(crate) fn validate(&self) {
        let size = self.size();
        let mut expected = self.base_offset;
        let mut end = 0;
        for header in self.headers_from(0, size) {
            assert!(
                header.base_offset >= expected,
                "offsets go backwards in {}",
                self.log_path.display()
            );
            expected = header.next_offset;
            end = header.position + header.size;
        }
        assert_eq!(
            end,
            size,
            "{} has bytes below its size that are not whole batches",
            self.log_path.display()
        );
        assert_eq!(
            expected,
            self.next_offset(),
            "{} next offset disagrees with its batches",
            self.log_path.display()
        );
    }
}
