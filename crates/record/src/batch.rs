use crate::compression::{self, CompressionType, MAX_DECOMPRESSED_BYTES, decompressed_limit};
use crate::error::BatchError;
use crate::record::{Record, decode_record, parse_record};
use bytes::Bytes;

/// CRC-32C (Castagnoli, Kafka's batch checksum), the one place batches are hashed.
///
/// `crc-fast` folds with carry-less multiplication (VPCLMULQDQ on AVX-512 machines) where the
/// `crc32c` crate chains the SSE 4.2 `crc32` instruction; the batch CRC is the largest cost of
/// validating a produced batch, so this is the library that decides append throughput.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// Bytes before the first record.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes up to and including `batch_length`; `batch_length` counts the bytes after this point.
pub const LENGTH_FIELD_END: usize = 12;
/// The only batch format Strata reads and writes.
pub const MAGIC_V2: i8 = 2;
/// `producer_id` of a batch from a producer that is not idempotent.
pub const NO_PRODUCER_ID: i64 = -1;
/// `base_sequence` of a batch from a producer that is not idempotent.
pub const NO_SEQUENCE: i32 = -1;

const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
/// The CRC covers everything from the attributes on, so the leader can stamp the base offset
/// and partition leader epoch without recomputing it.
const CRC_COVERED_FROM: usize = 21;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORD_COUNT_OFFSET: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_MASK: i16 = 0x10;
const CONTROL_MASK: i16 = 0x20;

/// Whether record timestamps were set by the producer or by the broker on append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// A view of one complete RecordBatch v2. Construction checks only the framing (length and
/// magic); [`RecordBatch::validate`] checks everything else. Cloning is cheap: the bytes are
/// shared, so a batch read from a memory-mapped segment stays a view of the map.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(bytes[at..at + 2].try_into().expect("two bytes"))
}
fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}
fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

impl RecordBatch {
    /// The total size of the batch that starts at `bytes[0]`, read from its length field, or
    /// `None` when fewer than [`LENGTH_FIELD_END`] bytes are present. A length that cannot be a
    /// batch (shorter than a header) is an error: it is how a torn or zeroed tail shows itself.
    pub fn peek_size(bytes: &[u8]) -> Option<Result<usize, BatchError>> {
        if bytes.len() < LENGTH_FIELD_END {
            return None;
        }
        let batch_length = read_i32(bytes, 8);
        let minimum = (BATCH_HEADER_BYTES - LENGTH_FIELD_END) as i32;
        if batch_length < minimum {
            return Some(Err(BatchError::LengthMismatch {
                declared: batch_length.into(),
                available: bytes.len() - LENGTH_FIELD_END,
            }));
        }
        Some(Ok(LENGTH_FIELD_END + batch_length as usize))
    }

    /// Wraps exactly one batch. Fails when the length field disagrees with the bytes given or the
    /// magic is not 2; does not check the CRC or the records.
    pub fn new(bytes: Bytes) -> Result<RecordBatch, BatchError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::TooShort {
                needed: BATCH_HEADER_BYTES,
                actual: bytes.len(),
            });
        }
        let declared = read_i32(&bytes, 8);
        if i64::from(declared) != (bytes.len() - LENGTH_FIELD_END) as i64 {
            return Err(BatchError::LengthMismatch {
                declared: declared.into(),
                available: bytes.len() - LENGTH_FIELD_END,
            });
        }
        let magic = bytes[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::InvalidMagic(magic));
        }
        Ok(RecordBatch { bytes })
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
    pub fn size_in_bytes(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> i64 {
        read_i64(&self.bytes, 0)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        read_i32(&self.bytes, PARTITION_LEADER_EPOCH_OFFSET)
    }
    pub fn stored_crc(&self) -> u32 {
        read_i32(&self.bytes, CRC_OFFSET) as u32
    }
    pub fn attributes(&self) -> i16 {
        read_i16(&self.bytes, ATTRIBUTES_OFFSET)
    }
    pub fn compression_type(&self) -> Result<CompressionType, BatchError> {
        CompressionType::from_id((self.attributes() & COMPRESSION_MASK) as u8)
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_MASK == 0 {
            TimestampType::CreateTime
        } else {
            TimestampType::LogAppendTime
        }
    }
    /// The batch belongs to a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_MASK != 0
    }
    /// The batch holds a control record (a transaction marker; attribute bit 5), which only a
    /// broker writes.
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_MASK != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        read_i32(&self.bytes, LAST_OFFSET_DELTA_OFFSET)
    }
    pub fn base_timestamp(&self) -> i64 {
        read_i64(&self.bytes, BASE_TIMESTAMP_OFFSET)
    }
    pub fn max_timestamp(&self) -> i64 {
        read_i64(&self.bytes, MAX_TIMESTAMP_OFFSET)
    }
    pub fn producer_id(&self) -> i64 {
        read_i64(&self.bytes, PRODUCER_ID_OFFSET)
    }
    pub fn producer_epoch(&self) -> i16 {
        read_i16(&self.bytes, PRODUCER_EPOCH_OFFSET)
    }
    pub fn base_sequence(&self) -> i32 {
        read_i32(&self.bytes, BASE_SEQUENCE_OFFSET)
    }
    pub fn record_count(&self) -> i32 {
        read_i32(&self.bytes, RECORD_COUNT_OFFSET)
    }
    /// How many records to make room for: the header's count, but never more than the batch's
    /// bytes could hold, so a corrupt count cannot make a reader allocate without bound.
    pub fn record_count_hint(&self) -> usize {
        /// A record's length, attributes, timestamp delta, offset delta, key length, value
        /// length and header count: one byte each at the least.
        const MIN_RECORD_BYTES: usize = 7;
        let room = (self.bytes.len() - BATCH_HEADER_BYTES) / MIN_RECORD_BYTES;
        usize::try_from(self.record_count()).map_or(0, |count| count.min(room))
    }
    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    /// The offset the record after this batch will get.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// The CRC-32C the batch's contents hash to.
    pub fn compute_crc(&self) -> u32 {
        crc32c(&self.bytes[CRC_COVERED_FROM..])
    }

    /// Checks the CRC only: what a reader of stored or fetched bytes needs to trust them.
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let computed = self.compute_crc();
        if computed != self.stored_crc() {
            return Err(BatchError::CorruptCrc {
                stored: self.stored_crc(),
                computed,
            });
        }
        Ok(())
    }

    /// Full validation of a batch arriving from a producer: size limit, CRC, codec, and every
    /// record decoded and checked against the header (count, offset deltas, timestamps).
    ///
    /// A compressed batch is checked as Kafka's broker checks one it stores as sent: the CRC
    /// over the stored (compressed) bytes, then the records decompressed and checked like
    /// uncompressed ones. They may inflate to at most [`decompressed_limit`]`(max_bytes)`.
    pub fn validate(&self, max_bytes: usize) -> Result<(), BatchError> {
        if self.size_in_bytes() > max_bytes {
            return Err(BatchError::TooLarge {
                size: self.size_in_bytes(),
                max: max_bytes,
            });
        }
        self.verify_crc()?;
        let compression = self.compression_type()?;
        let declared = self.record_count();
        if declared <= 0 {
            return Err(BatchError::Empty);
        }
        if i64::from(self.last_offset_delta()) != i64::from(declared) - 1 {
            return Err(BatchError::InvalidLastOffsetDelta {
                last_offset_delta: self.last_offset_delta(),
                record_count: declared,
            });
        }
        // Decompressed only after the cheap header checks, so a bad header costs nothing.
        let decompressed;
        let records = match compression {
            CompressionType::None => &self.bytes[BATCH_HEADER_BYTES..],
            codec => {
                decompressed = compression::decompress(
                    codec,
                    &self.bytes[BATCH_HEADER_BYTES..],
                    decompressed_limit(max_bytes),
                )?;
                &decompressed[..]
            }
        };
        self.check_records(records, declared)
    }

    /// Walks an (uncompressed) records section, checking each record against the header.
    fn check_records(&self, records: &[u8], declared: i32) -> Result<(), BatchError> {
        let mut position = 0;
        let mut index: i64 = 0;
        while position < records.len() {
            if index >= i64::from(declared) {
                return Err(BatchError::RecordCountMismatch {
                    declared,
                    found: index + 1,
                });
            }
            let record = parse_record(records, &mut position, index)?;
            if i64::from(record.offset_delta) != index {
                return Err(BatchError::InvalidRecord {
                    index,
                    reason: format!("offset delta is {}, expected {index}", record.offset_delta),
                });
            }
            if self.timestamp_type() == TimestampType::CreateTime {
                let timestamp = self.base_timestamp().wrapping_add(record.timestamp_delta);
                if timestamp > self.max_timestamp() {
                    return Err(BatchError::InvalidMaxTimestamp {
                        max_timestamp: self.max_timestamp(),
                        record_timestamp: timestamp,
                    });
                }
            }
            index += 1;
        }
        if index != i64::from(declared) {
            return Err(BatchError::RecordCountMismatch {
                declared,
                found: index,
            });
        }
        Ok(())
    }

    /// The records section, decompressed if the batch is compressed (inflating to at most
    /// [`MAX_DECOMPRESSED_BYTES`]); an uncompressed one is shared, not copied.
    fn records_section(&self) -> Result<Bytes, BatchError> {
        let section = self.bytes.slice(BATCH_HEADER_BYTES..);
        match self.compression_type()? {
            CompressionType::None => Ok(section),
            codec => compression::decompress(codec, &section, MAX_DECOMPRESSED_BYTES),
        }
    }

    /// Decodes the records, decompressing them first if the batch is compressed. Keys, values
    /// and header values share the batch's bytes, or the one decompressed buffer. A batch
    /// whose records cannot be decompressed yields that error alone.
    pub fn records(&self) -> impl Iterator<Item = Result<Record, BatchError>> + '_ {
        let (records, mut section_error) = match self.records_section() {
            Ok(records) => (records, None),
            Err(error) => (Bytes::new(), Some(error)),
        };
        let base_offset = self.base_offset();
        let base_timestamp = self.base_timestamp();
        let log_append_time = match self.timestamp_type() {
            TimestampType::LogAppendTime => Some(self.max_timestamp()),
            TimestampType::CreateTime => None,
        };
        let mut position = 0;
        let mut index: i64 = 0;
        let mut failed = false;
        std::iter::from_fn(move || {
            if let Some(error) = section_error.take() {
                failed = true;
                return Some(Err(error));
            }
            if failed || position >= records.len() {
                return None;
            }
            let result = decode_record(&records, &mut position, index).map(|raw| Record {
                offset: base_offset + i64::from(raw.offset_delta),
                timestamp: log_append_time
                    .unwrap_or_else(|| base_timestamp.wrapping_add(raw.timestamp_delta)),
                key: raw.key,
                value: raw.value,
                headers: raw.headers,
            });
            failed = result.is_err();
            index += 1;
            Some(result)
        })
    }

    /// The batch with its records compressed with `codec` instead, for a topic whose
    /// `compression.type` names a codec: every other field is kept, and the length, the codec
    /// bits and the CRC are rewritten. The records are not re-encoded (their offset and timestamp
    /// deltas stay valid), so this is the one rewrite of a batch the leader does besides its
    /// stamps. Its records may inflate to at most [`MAX_DECOMPRESSED_BYTES`].
    pub fn recompressed(&self, codec: CompressionType) -> Result<RecordBatch, BatchError> {
        let records = self.records_section()?;
        let mut bytes = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
        bytes.extend_from_slice(&self.bytes[..BATCH_HEADER_BYTES]);
        compression::compress(codec, &records, &mut bytes);
        let batch_length =
            i32::try_from(bytes.len() - LENGTH_FIELD_END).map_err(|_| BatchError::TooLarge {
                size: bytes.len(),
                max: i32::MAX as usize,
            })?;
        bytes[8..LENGTH_FIELD_END].copy_from_slice(&batch_length.to_be_bytes());
        let attributes = (self.attributes() & !COMPRESSION_MASK) | i16::from(codec.id());
        bytes[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c(&bytes[CRC_COVERED_FROM..]);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        RecordBatch::new(Bytes::from(bytes))
    }

    /// Writes `base_offset` into a batch's bytes (outside the CRC).
    pub fn set_base_offset(bytes: &mut [u8], base_offset: i64) {
        bytes[0..8].copy_from_slice(&base_offset.to_be_bytes());
    }

    /// Writes `partition_leader_epoch` into a batch's bytes (outside the CRC).
    pub fn set_partition_leader_epoch(bytes: &mut [u8], epoch: i32) {
        bytes[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
            .copy_from_slice(&epoch.to_be_bytes());
    }

    /// Marks a batch's timestamps as the broker's append time and recomputes its CRC, for topics
    /// with `message.timestamp.type=LogAppendTime`.
    pub fn set_log_append_time(bytes: &mut [u8], timestamp: i64) {
        let attributes = read_i16(bytes, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_MASK;
        bytes[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        bytes[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&timestamp.to_be_bytes());
        let crc = crc32c(&bytes[CRC_COVERED_FROM..]);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

impl std::fmt::Debug for RecordBatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("record_count", &self.record_count())
            .field("size_in_bytes", &self.size_in_bytes())
            .field("partition_leader_epoch", &self.partition_leader_epoch())
            .field("max_timestamp", &self.max_timestamp())
            .finish()
    }
}

/// Splits concatenated batches (a fetch response, a produce request) into single batches.
/// Yields an error, then stops, at the first batch whose framing is wrong or that is cut short.
pub struct BatchIter {
    remaining: Bytes,
    failed: bool,
}

impl BatchIter {
    pub fn new(bytes: Bytes) -> BatchIter {
        BatchIter {
            remaining: bytes,
            failed: false,
        }
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.remaining.is_empty() {
            return None;
        }
        let result = match RecordBatch::peek_size(&self.remaining) {
            None => Err(BatchError::TooShort {
                needed: LENGTH_FIELD_END,
                actual: self.remaining.len(),
            }),
            Some(Err(error)) => Err(error),
            Some(Ok(size)) if size > self.remaining.len() => Err(BatchError::TooShort {
                needed: size,
                actual: self.remaining.len(),
            }),
            Some(Ok(size)) => RecordBatch::new(self.remaining.split_to(size)),
        };
        self.failed = result.is_err();
        Some(result)
    }
}
