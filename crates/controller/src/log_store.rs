//! The Raft log and vote on disk: openraft's `RaftLogStorage`.
//!
//! Layout under the controller directory (`<data_dir>/controller/`):
//!
//! | file | content |
//! |---|---|
//! | `log/{first_index:020}.log` | log entries, back to back, as frames (below) |
//! | `log/purged` | the last purged log id (a `strata_storage::checkpoint`, versioned JSON) |
//! | `vote` | the last saved vote (checkpoint, versioned JSON), fsynced before `save_vote` returns |
//! | `committed` | the last committed log id: CRC-32 then versioned JSON, replaced by rename, not fsynced |
//!
//! A frame is `payload_length u32, length_crc u32, payload_crc u32, payload`, big-endian, with
//! CRC-32s (IEEE, `crc32fast`) of the length bytes and of the payload, and the payload is one
//! openraft entry as versioned JSON, `{"version":1,"entry":{"log_id":...,"payload":...}}`. The
//! length has its own checksum so that a damaged length is recognised as damage instead of
//! looking like a frame cut short by a crash. Entry `i` of segment `b` has log index `b + i`: the
//! file name and the position give the index, and the entry's own log id must agree.
//!
//! Format versions (`file_format`): each frame carries its own, not the segment, because a
//! segment written across an upgrade holds frames of both builds — bare entries from before
//! versions, which read as version 1, followed by versioned ones. A frame of an unknown version
//! has a valid checksum, so it is not a torn tail: opening fails with
//! `ControllerError::DataDirectoryMismatch` naming the segment, the frame's byte position, the
//! version found and the versions supported. The vote, purge point and committed hint are
//! versioned the same way; an unknown version in the committed hint only makes it read as
//! absent, like any other unreadable hint.
//!
//! Crash behaviour: `append` writes whole batches and fsyncs before acknowledging, so after a
//! crash only the end of the last segment can be torn. Opening truncates a torn tail (a frame
//! whose intact length runs past the end of the file, or a bad frame with nothing but zeros or
//! nothing at all after it) and fails
//! with `Corrupt` on anything else — a bad frame followed by data, a bad frame in an earlier
//! segment, or a gap between segments — because silently dropping acknowledged entries from the
//! middle would break Raft's guarantees. `truncate` deletes later segments before shortening the
//! one that holds the cut, and `purge` records the purge point before deleting the oldest
//! segments, so a crash in between leaves a log without holes. The `committed` file is only a
//! hint that lets a restart re-apply committed entries at once; losing or tearing it just means
//! waiting for the leader, so it is not fsynced and a bad checksum reads as absent.
//!
//! Thread-safety: openraft calls the write methods one at a time (`&mut self`); the disk work runs
//! on tokio's blocking pool under a mutex. Readers (`LogReader`, used by replication tasks) read an
//! in-memory copy of the unpurged entries, which is small because snapshots let the log be purged.

use crate::error::ControllerError;
use crate::file_format;
use crate::raft_types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, RaftLogReader, StorageIOError};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use strata_storage::checkpoint;

/// Where a segment rolls over; small, so purging after a snapshot frees space soon.
pub(crate) const SEGMENT_BYTES_DEFAULT: u64 = 4 << 20;
const FRAME_HEADER_BYTES: usize = 12;
/// No sane entry is near this; a larger length field is damage, not data.
const FRAME_PAYLOAD_MAX: usize = 64 << 20;
const LOG_DIRECTORY: &str = "log";
const PURGED_FILE: &str = "purged";
const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";
/// What each file's value is called next to its format version (see `file_format`).
const ENTRY_KIND: &str = "entry";
const VOTE_KIND: &str = "vote";
const PURGED_KIND: &str = "purged";
const COMMITTED_KIND: &str = "committed";

fn storage_error(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    error: &ControllerError,
) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(error)).into()
}

fn sync_directory(directory: &Path) -> Result<(), ControllerError> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(ControllerError::io("fsync directory", directory))
}

/// Runs disk work off the async worker threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ControllerError> + Send + 'static,
) -> Result<T, ControllerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ControllerError::Raft(format!("log store task failed: {error}")))?
}

pub(crate) fn encode_frame(buffer: &mut Vec<u8>, payload: &[u8]) {
    assert!(
        payload.len() <= FRAME_PAYLOAD_MAX,
        "log entry of {} bytes",
        payload.len()
    );
    let length = (payload.len() as u32).to_be_bytes();
    buffer.extend_from_slice(&length);
    buffer.extend_from_slice(&crc32fast::hash(&length).to_be_bytes());
    buffer.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    buffer.extend_from_slice(payload);
}

/// One segment file and where each of its entries starts.
struct Segment {
    base_index: u64,
    path: PathBuf,
    file: File,
    positions: Vec<u64>,
    size: u64,
}

impl Segment {
    fn next_index(&self) -> u64 {
        self.base_index + self.positions.len() as u64
    }
}

/// What a segment file held when it was opened.
struct ScannedSegment {
    segment: Segment,
    entries: Vec<Entry>,
}

/// The segment files. Only touched on the blocking pool, under `LogStore::files`.
struct SegmentFiles {
    directory: PathBuf,
    segment_bytes_max: u64,
    segments: Vec<Segment>,
}

fn segment_path(directory: &Path, base_index: u64) -> PathBuf {
    directory.join(format!("{base_index:020}.log"))
}

fn open_segment_file(path: &Path) -> Result<File, ControllerError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(ControllerError::io("open", path))
}

/// Reads one segment. `is_last` allows a torn tail, which is cut off (and the cut fsynced).
fn scan_segment(
    path: &Path,
    base_index: u64,
    is_last: bool,
) -> Result<ScannedSegment, ControllerError> {
    let bytes = fs::read(path).map_err(ControllerError::io("read", path))?;
    let corrupt = |reason: String| ControllerError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut positions = Vec::new();
    let mut entries = Vec::new();
    let mut offset = 0usize;
    let mut torn_at = None;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        // Zeros where a frame should start are what a crash leaves when the file grew but the
        // data did not reach the disk.
        let only_zeros_follow = rest.iter().all(|&byte| byte == 0);
        if rest.len() < FRAME_HEADER_BYTES || only_zeros_follow {
            if is_last {
                torn_at = Some(offset);
                break;
            }
            return Err(corrupt(format!("incomplete frame at byte {offset}")));
        }
        let length_bytes: [u8; 4] = rest[..4].try_into().expect("four bytes");
        let length_crc = u32::from_be_bytes(rest[4..8].try_into().expect("four bytes"));
        let payload_crc = u32::from_be_bytes(rest[8..12].try_into().expect("four bytes"));
        let length = u32::from_be_bytes(length_bytes) as usize;
        if crc32fast::hash(&length_bytes) != length_crc || length == 0 || length > FRAME_PAYLOAD_MAX
        {
            return Err(corrupt(format!("damaged frame header at byte {offset}")));
        }
        let frame_end = FRAME_HEADER_BYTES + length;
        if frame_end > rest.len() {
            if is_last {
                torn_at = Some(offset);
                break;
            }
            return Err(corrupt(format!(
                "frame at byte {offset} runs past the end of the file"
            )));
        }
        let payload = &rest[FRAME_HEADER_BYTES..frame_end];
        if crc32fast::hash(payload) != payload_crc {
            let nothing_after = rest[frame_end..].iter().all(|&byte| byte == 0);
            if is_last && nothing_after {
                torn_at = Some(offset);
                break;
            }
            return Err(corrupt(format!(
                "checksum mismatch in the frame at byte {offset}, with data after it"
            )));
        }
        let entry: Entry = file_format::decode(ENTRY_KIND, payload).map_err(|error| {
            error.at(
                path,
                &format!("the frame at byte {offset}: "),
                "a log entry",
            )
        })?;
        let expected = base_index + entries.len() as u64;
        if entry.log_id.index != expected {
            return Err(corrupt(format!(
                "frame at byte {offset} holds log index {}, expected {expected}",
                entry.log_id.index
            )));
        }
        positions.push(offset as u64);
        entries.push(entry);
        offset += frame_end;
    }
    let file = open_segment_file(path)?;
    let size = match torn_at {
        Some(cut) => {
            tracing::warn!(
                path = %path.display(),
                cut,
                dropped = bytes.len() - cut,
                "truncating a torn tail left by a crash"
            );
            file.set_len(cut as u64)
                .and_then(|()| file.sync_all())
                .map_err(ControllerError::io("truncate torn tail of", path))?;
            cut as u64
        }
        None => bytes.len() as u64,
    };
    Ok(ScannedSegment {
        segment: Segment {
            base_index,
            path: path.to_path_buf(),
            file,
            positions,
            size,
        },
        entries,
    })
}

impl SegmentFiles {
    /// Opens the log directory and returns the files and the entries after `purged`.
    fn open(
        directory: &Path,
        purged: Option<&LogId>,
        segment_bytes_max: u64,
    ) -> Result<(SegmentFiles, Vec<Entry>), ControllerError> {
        fs::create_dir_all(directory).map_err(ControllerError::io("create", directory))?;
        let mut bases = Vec::new();
        for item in fs::read_dir(directory).map_err(ControllerError::io("list", directory))? {
            let item = item.map_err(ControllerError::io("list", directory))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".log") else {
                continue;
            };
            if stem.len() == 20
                && let Ok(base) = stem.parse::<u64>()
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let mut scanned = Vec::with_capacity(bases.len());
        for (position, &base) in bases.iter().enumerate() {
            let is_last = position + 1 == bases.len();
            scanned.push(scan_segment(&segment_path(directory, base), base, is_last)?);
        }

        // A crash during `purge` can leave segments the purge point already covers: finish it.
        let purged_next = purged.map_or(0, |log_id| log_id.index + 1);
        let mut removed_any = false;
        while scanned.first().is_some_and(|first| {
            first.segment.next_index() <= purged_next
                && !(first.entries.is_empty() && first.segment.base_index == purged_next)
        }) {
            let first = scanned.remove(0);
            fs::remove_file(&first.segment.path).map_err(ControllerError::io(
                "remove purged segment",
                &first.segment.path,
            ))?;
            removed_any = true;
        }
        // A crash right after rolling can leave an empty last segment that starts anywhere; it
        // holds nothing, so it goes rather than counting as a gap.
        let stray_empty_last = scanned.len() >= 2
            && scanned.last().is_some_and(|last| {
                last.entries.is_empty()
                    && last.segment.base_index != scanned[scanned.len() - 2].segment.next_index()
            });
        if stray_empty_last && let Some(last) = scanned.pop() {
            fs::remove_file(&last.segment.path).map_err(ControllerError::io(
                "remove empty segment",
                &last.segment.path,
            ))?;
            removed_any = true;
        }
        if removed_any {
            sync_directory(directory)?;
        }

        if let Some(first) = scanned.first()
            && first.segment.base_index > purged_next
        {
            return Err(ControllerError::Corrupt {
                path: first.segment.path.clone(),
                reason: format!(
                    "the log starts at index {} but everything before {purged_next} is missing",
                    first.segment.base_index
                ),
            });
        }
        for pair in scanned.windows(2) {
            if pair[1].segment.base_index != pair[0].segment.next_index() {
                return Err(ControllerError::Corrupt {
                    path: pair[1].segment.path.clone(),
                    reason: format!(
                        "gap in the log: the previous segment ends before index {}, this one starts at {}",
                        pair[0].segment.next_index(),
                        pair[1].segment.base_index
                    ),
                });
            }
        }

        let mut entries = Vec::new();
        let mut segments = Vec::with_capacity(scanned.len());
        for scanned_segment in scanned {
            entries.extend(
                scanned_segment
                    .entries
                    .into_iter()
                    .filter(|entry| entry.log_id.index >= purged_next),
            );
            segments.push(scanned_segment.segment);
        }
        Ok((
            SegmentFiles {
                directory: directory.to_path_buf(),
                segment_bytes_max,
                segments,
            },
            entries,
        ))
    }

    /// Starts a new segment whose first entry will have `base_index`.
    fn roll(&mut self, base_index: u64) -> Result<(), ControllerError> {
        if self
            .segments
            .last()
            .is_some_and(|last| last.positions.is_empty())
            && let Some(empty) = self.segments.pop()
        {
            fs::remove_file(&empty.path).map_err(ControllerError::io("remove", &empty.path))?;
        }
        let path = segment_path(&self.directory, base_index);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(ControllerError::io("create", &path))?;
        sync_directory(&self.directory)?;
        self.segments.push(Segment {
            base_index,
            path,
            file,
            positions: Vec::new(),
            size: 0,
        });
        Ok(())
    }

    /// Appends consecutive entries and fsyncs them.
    fn append(&mut self, frames: Vec<(u64, Vec<u8>)>) -> Result<(), ControllerError> {
        let Some(&(first_index, _)) = frames.first() else {
            return Ok(());
        };
        let roll = match self.segments.last() {
            None => true,
            Some(last) => last.next_index() != first_index || last.size >= self.segment_bytes_max,
        };
        if roll {
            self.roll(first_index)?;
        }
        let segment = self
            .segments
            .last_mut()
            .expect("a segment exists after rolling");
        let mut buffer = Vec::new();
        let mut positions = Vec::with_capacity(frames.len());
        for (index, payload) in &frames {
            let expected = segment.next_index() + positions.len() as u64;
            if *index != expected {
                return Err(ControllerError::Corrupt {
                    path: segment.path.clone(),
                    reason: format!(
                        "append of index {index} where {expected} comes next would leave a hole"
                    ),
                });
            }
            positions.push(segment.size + buffer.len() as u64);
            encode_frame(&mut buffer, payload);
        }
        let written = segment
            .file
            .seek(SeekFrom::Start(segment.size))
            .and_then(|_| segment.file.write_all(&buffer))
            .and_then(|()| segment.file.sync_data());
        if let Err(error) = written {
            // Cut back whatever part of the batch reached the file so later appends do not land
            // after a half-written frame; if even that fails, openraft stops the node on our error.
            let _ = segment.file.set_len(segment.size);
            return Err(ControllerError::Io {
                operation: "append to",
                path: segment.path.clone(),
                source: error,
            });
        }
        segment.size += buffer.len() as u64;
        segment.positions.extend(positions);
        Ok(())
    }

    /// Removes every entry from `index` on.
    fn truncate(&mut self, index: u64) -> Result<(), ControllerError> {
        let mut removed_any = false;
        // Newest first, so a crash part way leaves a shorter log, never one with a hole.
        while let Some(last) = self.segments.last()
            && last.base_index >= index
        {
            if let Some(last) = self.segments.pop() {
                fs::remove_file(&last.path).map_err(ControllerError::io("remove", &last.path))?;
                removed_any = true;
            }
        }
        if removed_any {
            sync_directory(&self.directory)?;
        }
        if let Some(last) = self.segments.last_mut()
            && index < last.next_index()
        {
            let keep = usize::try_from(index - last.base_index).expect("index within the segment");
            let cut = last.positions[keep];
            last.file
                .set_len(cut)
                .and_then(|()| last.file.sync_all())
                .map_err(ControllerError::io("truncate", &last.path))?;
            last.positions.truncate(keep);
            last.size = cut;
        }
        Ok(())
    }

    /// Deletes the oldest segments whose entries are all at or before `index`.
    fn remove_through(&mut self, index: u64) -> Result<(), ControllerError> {
        let mut removed_any = false;
        while self
            .segments
            .first()
            .is_some_and(|first| first.next_index() <= index + 1 && !first.positions.is_empty())
        {
            let first = self.segments.remove(0);
            fs::remove_file(&first.path).map_err(ControllerError::io("remove", &first.path))?;
            removed_any = true;
        }
        if removed_any {
            sync_directory(&self.directory)?;
        }
        Ok(())
    }
}

/// The unpurged entries, shared with readers.
#[derive(Default)]
struct LogCache {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
}

impl LogCache {
    fn read<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry> {
        self.entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect()
    }
}

fn read_cache(cache: &RwLock<LogCache>) -> std::sync::RwLockReadGuard<'_, LogCache> {
    // A panic while holding the lock cannot leave the map half-updated in a way readers care
    // about (inserts and removals are single calls), so a poisoned lock is still usable.
    cache
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_cache(cache: &RwLock<LogCache>) -> std::sync::RwLockWriteGuard<'_, LogCache> {
    cache
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The persistent Raft log store of one controller.
pub(crate) struct LogStore {
    directory: PathBuf,
    files: Arc<Mutex<SegmentFiles>>,
    cache: Arc<RwLock<LogCache>>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

/// Reads log entries for replication; cheap to create and to clone.
#[derive(Clone)]
pub(crate) struct LogReader {
    cache: Arc<RwLock<LogCache>>,
}

impl LogStore {
    /// Opens (or creates) the log under `directory`, recovering as the module docs describe.
    pub(crate) fn open(directory: &Path) -> Result<LogStore, ControllerError> {
        LogStore::open_with_segment_bytes(directory, SEGMENT_BYTES_DEFAULT)
    }

    pub(crate) fn open_with_segment_bytes(
        directory: &Path,
        segment_bytes_max: u64,
    ) -> Result<LogStore, ControllerError> {
        let log_directory = directory.join(LOG_DIRECTORY);
        fs::create_dir_all(&log_directory)
            .map_err(ControllerError::io("create", &log_directory))?;
        let purged = read_versioned_checkpoint::<LogId>(
            &log_directory.join(PURGED_FILE),
            PURGED_KIND,
            "a purged log id",
        )?;
        let vote =
            read_versioned_checkpoint::<Vote>(&directory.join(VOTE_FILE), VOTE_KIND, "a vote")?;
        let committed = read_committed(&directory.join(COMMITTED_FILE));
        let (files, entries) =
            SegmentFiles::open(&log_directory, purged.as_ref(), segment_bytes_max)?;
        let cache = LogCache {
            entries: entries
                .into_iter()
                .map(|entry| (entry.log_id.index, entry))
                .collect(),
            last_purged: purged,
        };
        Ok(LogStore {
            directory: directory.to_path_buf(),
            files: Arc::new(Mutex::new(files)),
            cache: Arc::new(RwLock::new(cache)),
            vote,
            committed,
        })
    }

    /// The index the next appended entry must have; `None` for a log that never held anything.
    ///
    /// openraft's contract lets a pristine log start at any index, and its conformance suite does
    /// so; openraft itself always starts at 0 or right after a purge, which is what `open`
    /// insists on, so that a lost first segment is never mistaken for a log that started late.
    fn next_index(&self) -> Option<u64> {
        let cache = read_cache(&self.cache);
        match cache.entries.last_key_value() {
            Some((&index, _)) => Some(index + 1),
            None => cache.last_purged.as_ref().map(|log_id| log_id.index + 1),
        }
    }

    async fn with_files<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut SegmentFiles) -> Result<T, ControllerError> + Send + 'static,
    ) -> Result<T, ControllerError> {
        let files = Arc::clone(&self.files);
        blocking(move || {
            let mut files = files
                .lock()
                .map_err(|_| ControllerError::Raft("an earlier log write panicked".to_string()))?;
            work(&mut files)
        })
        .await
    }
}

fn read_versioned_checkpoint<T: serde::de::DeserializeOwned>(
    path: &Path,
    kind: &str,
    what: &str,
) -> Result<Option<T>, ControllerError> {
    match checkpoint::read(path)? {
        None => Ok(None),
        Some(payload) => file_format::decode(kind, &payload)
            .map(Some)
            .map_err(|error| error.at(path, "", what)),
    }
}

fn read_committed(path: &Path) -> Option<LogId> {
    let bytes = fs::read(path).ok()?;
    if bytes.len() < 4 {
        return None;
    }
    let (crc, payload) = bytes.split_at(4);
    if crc32fast::hash(payload).to_be_bytes() != crc {
        tracing::warn!(path = %path.display(), "ignoring a torn committed-index hint");
        return None;
    }
    // Even a version this build does not know only costs the head start, so it is not fatal.
    file_format::decode(COMMITTED_KIND, payload)
        .inspect_err(|error| {
            tracing::warn!(path = %path.display(), %error, "ignoring the committed-index hint");
        })
        .ok()
}

fn write_committed(path: &Path, committed: &Option<LogId>) -> Result<(), ControllerError> {
    let payload = file_format::encode(COMMITTED_KIND, committed)
        .map_err(|error| ControllerError::Raft(error.to_string()))?;
    let mut bytes = crc32fast::hash(&payload).to_be_bytes().to_vec();
    bytes.extend_from_slice(&payload);
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, &bytes).map_err(ControllerError::io("write", &temporary))?;
    fs::rename(&temporary, path).map_err(ControllerError::io("rename", path))
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_cache(&self.cache).read(range))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_cache(&self.cache).read(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let cache = read_cache(&self.cache);
        let last_purged_log_id = cache.last_purged;
        let last_log_id = cache
            .entries
            .last_key_value()
            .map(|(_, entry)| entry.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            cache: Arc::clone(&self.cache),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let path = self.directory.join(VOTE_FILE);
        let payload = file_format::encode(VOTE_KIND, vote)
            .map_err(|error| StorageIOError::write_vote(AnyError::new(&error)))?;
        blocking(move || checkpoint::write(&path, &payload).map_err(ControllerError::from))
            .await
            .map_err(|error| storage_error(ErrorSubject::Vote, ErrorVerb::Write, &error))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let path = self.directory.join(COMMITTED_FILE);
        blocking(move || write_committed(&path, &committed))
            .await
            .map_err(|error| storage_error(ErrorSubject::Store, ErrorVerb::Write, &error))?;
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Entries at or before the purge point are already inside a snapshot; keeping them would
        // put them below the log start, so they are dropped (openraft's conformance suite does
        // append such entries after its startup helper purged past them).
        let purged_next = read_cache(&self.cache)
            .last_purged
            .map_or(0, |log_id| log_id.index + 1);
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|entry| entry.log_id.index >= purged_next)
            .collect();
        let Some(first) = entries.first() else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let first_expected = self.next_index().unwrap_or(first.log_id.index);
        let mut frames = Vec::with_capacity(entries.len());
        for (expected, entry) in (first_expected..).zip(&entries) {
            if entry.log_id.index != expected {
                let error = ControllerError::Raft(format!(
                    "append of log index {} where {expected} comes next would leave a hole",
                    entry.log_id.index
                ));
                callback.log_io_completed(Err(std::io::Error::other(error.to_string())));
                return Err(storage_error(ErrorSubject::Logs, ErrorVerb::Write, &error));
            }
            let payload = file_format::encode(ENTRY_KIND, entry).map_err(|error| {
                StorageIOError::write_log_entry(entry.log_id, AnyError::new(&error))
            })?;
            frames.push((entry.log_id.index, payload));
        }
        if let Err(error) = self.with_files(move |files| files.append(frames)).await {
            callback.log_io_completed(Err(std::io::Error::other(error.to_string())));
            return Err(storage_error(ErrorSubject::Logs, ErrorVerb::Write, &error));
        }
        {
            let mut cache = write_cache(&self.cache);
            for entry in entries {
                cache.entries.insert(entry.log_id.index, entry);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let index = log_id.index;
        self.with_files(move |files| files.truncate(index))
            .await
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, &error))?;
        write_cache(&self.cache).entries.split_off(&index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let path = self.directory.join(LOG_DIRECTORY).join(PURGED_FILE);
        let payload = file_format::encode(PURGED_KIND, &log_id)
            .map_err(|error| StorageIOError::write_logs(AnyError::new(&error)))?;
        // The purge point goes to disk first: from then on the entries before it are garbage
        // whether or not their files are gone yet.
        let index = log_id.index;
        self.with_files(move |files| {
            checkpoint::write(&path, &payload)?;
            files.remove_through(index)
        })
        .await
        .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, &error))?;
        let mut cache = write_cache(&self.cache);
        cache.entries = cache.entries.split_off(&(index + 1));
        cache.last_purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata_command::MetadataCommand;
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(MetadataCommand::DeleteTopic {
                name: format!("topic-{index}"),
            }),
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        read_cache(&store.cache).entries.keys().copied().collect()
    }

    async fn append(store: &mut LogStore, range: std::ops::Range<u64>) {
        store
            .blocking_append(range.map(|index| entry(1, index)))
            .await
            .expect("append");
    }

    fn segment_files(directory: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(directory.join(LOG_DIRECTORY))
            .expect("list")
            .filter_map(Result::ok)
            .map(|item| item.path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
            .collect();
        files.sort();
        files
    }

    #[tokio::test]
    async fn entries_survive_reopen_and_segments_roll() {
        let directory = tempfile::tempdir().expect("tempdir");
        {
            let mut store = LogStore::open_with_segment_bytes(directory.path(), 300).expect("open");
            append(&mut store, 0..5).await;
            append(&mut store, 5..12).await;
        }
        assert!(segment_files(directory.path()).len() >= 2);
        let mut store = LogStore::open_with_segment_bytes(directory.path(), 300).expect("reopen");
        assert_eq!(indexes(&store), (0..12).collect::<Vec<_>>());
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id.map(|log_id| log_id.index), Some(11));
    }

    #[tokio::test]
    async fn a_torn_tail_is_truncated_and_appends_continue() {
        let directory = tempfile::tempdir().expect("tempdir");
        {
            let mut store = LogStore::open(directory.path()).expect("open");
            append(&mut store, 0..4).await;
        }
        let segment = segment_files(directory.path()).pop().expect("a segment");
        let full = fs::read(&segment).expect("read");
        // A crash in the middle of the last frame.
        fs::write(&segment, &full[..full.len() - 5]).expect("tear");
        let mut store = LogStore::open(directory.path()).expect("reopen after a torn write");
        assert_eq!(indexes(&store), vec![0, 1, 2]);
        append(&mut store, 3..6).await;
        drop(store);
        // Zeros after the last good frame (a file extended but not written) are torn too.
        let mut bytes = fs::read(&segment).expect("read");
        bytes.extend_from_slice(&[0; 64]);
        fs::write(&segment, &bytes).expect("extend");
        let store = LogStore::open(directory.path()).expect("reopen after zero fill");
        assert_eq!(indexes(&store), (0..6).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_segment_begun_before_format_versions_reads_on_and_takes_versioned_entries() {
        let directory = tempfile::tempdir().expect("tempdir");
        let log_directory = directory.path().join(LOG_DIRECTORY);
        fs::create_dir_all(&log_directory).expect("create");
        // What a build from before format versions appended: the bare entry.
        let mut bytes = Vec::new();
        encode_frame(
            &mut bytes,
            &serde_json::to_vec(&entry(1, 0)).expect("encode"),
        );
        fs::write(segment_path(&log_directory, 0), &bytes).expect("write");
        {
            let mut store = LogStore::open(directory.path()).expect("open an unversioned log");
            assert_eq!(indexes(&store), vec![0]);
            append(&mut store, 1..3).await;
        }
        let segments = segment_files(directory.path());
        assert_eq!(segments.len(), 1, "the upgrade appends to the same segment");
        let written = fs::read(&segments[0]).expect("read");
        assert!(written.starts_with(&bytes));
        assert!(
            written[bytes.len() + FRAME_HEADER_BYTES..].starts_with(br#"{"version":1,"entry":"#)
        );
        let mut store = LogStore::open(directory.path()).expect("reopen a mixed segment");
        assert_eq!(
            store.try_get_log_entries(..).await.expect("entries"),
            vec![entry(1, 0), entry(1, 1), entry(1, 2)]
        );
    }

    #[tokio::test]
    async fn corruption_in_the_middle_fails_fast() {
        let directory = tempfile::tempdir().expect("tempdir");
        {
            let mut store = LogStore::open(directory.path()).expect("open");
            append(&mut store, 0..4).await;
        }
        let segment = segment_files(directory.path()).pop().expect("a segment");
        let mut bytes = fs::read(&segment).expect("read");
        bytes[FRAME_HEADER_BYTES + 3] ^= 0x40;
        fs::write(&segment, &bytes).expect("corrupt");
        match LogStore::open(directory.path()) {
            Err(ControllerError::Corrupt { path, reason }) => {
                assert_eq!(path, segment);
                assert!(reason.contains("checksum"), "{reason}");
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a corrupt entry in the middle must not open"),
        }
        // A damaged length in the last segment is damage, not a torn tail, even though it now
        // points past the end of the file.
        bytes[FRAME_HEADER_BYTES + 3] ^= 0x40;
        let second_frame = usize::try_from(u32::from_be_bytes(
            bytes[..4].try_into().expect("four bytes"),
        ))
        .expect("small")
            + FRAME_HEADER_BYTES;
        bytes[second_frame] = 0x7f;
        fs::write(&segment, &bytes).expect("corrupt");
        match LogStore::open(directory.path()) {
            Err(ControllerError::Corrupt { reason, .. }) => {
                assert!(reason.contains("header"), "{reason}")
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a damaged length must not open"),
        }
    }

    #[tokio::test]
    async fn a_gap_between_segments_fails_fast() {
        let directory = tempfile::tempdir().expect("tempdir");
        {
            let mut store = LogStore::open_with_segment_bytes(directory.path(), 1).expect("open");
            for index in 0..3 {
                append(&mut store, index..index + 1).await;
            }
        }
        let files = segment_files(directory.path());
        assert_eq!(files.len(), 3);
        fs::remove_file(&files[1]).expect("remove the middle segment");
        match LogStore::open(directory.path()) {
            Err(ControllerError::Corrupt { reason, .. }) => {
                assert!(reason.contains("gap"), "{reason}")
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a log with a hole must not open"),
        }
    }

    #[tokio::test]
    async fn truncate_and_purge_persist_without_holes() {
        let directory = tempfile::tempdir().expect("tempdir");
        {
            let mut store = LogStore::open_with_segment_bytes(directory.path(), 200).expect("open");
            append(&mut store, 0..20).await;
            store
                .truncate(LogId::new(CommittedLeaderId::new(1, 1), 15))
                .await
                .expect("truncate");
            append(&mut store, 15..17).await;
            store
                .purge(LogId::new(CommittedLeaderId::new(1, 1), 9))
                .await
                .expect("purge");
            assert_eq!(indexes(&store), (10..17).collect::<Vec<_>>());
        }
        let mut store = LogStore::open_with_segment_bytes(directory.path(), 200).expect("reopen");
        assert_eq!(indexes(&store), (10..17).collect::<Vec<_>>());
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id.map(|log_id| log_id.index), Some(9));
        assert_eq!(state.last_log_id.map(|log_id| log_id.index), Some(16));
        // Purging past the end (after installing a snapshot) empties the log; appends resume after it.
        store
            .purge(LogId::new(CommittedLeaderId::new(2, 1), 30))
            .await
            .expect("purge all");
        append(&mut store, 31..33).await;
        drop(store);
        let store = LogStore::open_with_segment_bytes(directory.path(), 200).expect("reopen");
        assert_eq!(indexes(&store), vec![31, 32]);
    }

    #[tokio::test]
    async fn vote_and_committed_survive_reopen() {
        let directory = tempfile::tempdir().expect("tempdir");
        let vote = Vote::new_committed(3, 2);
        let committed = Some(LogId::new(CommittedLeaderId::new(3, 2), 7));
        {
            let mut store = LogStore::open(directory.path()).expect("open");
            store.save_vote(&vote).await.expect("save vote");
            store
                .save_committed(committed)
                .await
                .expect("save committed");
        }
        let mut store = LogStore::open(directory.path()).expect("reopen");
        assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
        assert_eq!(store.read_committed().await.expect("committed"), committed);
        drop(store);
        // A torn committed hint reads as absent rather than failing the start.
        fs::write(directory.path().join(COMMITTED_FILE), b"xx").expect("tear");
        let mut store = LogStore::open(directory.path()).expect("reopen");
        assert_eq!(store.read_committed().await.expect("committed"), None);
    }
}
