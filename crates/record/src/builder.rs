use crate::batch::{
    BATCH_HEADER_BYTES, LENGTH_FIELD_END, MAGIC_V2, NO_PRODUCER_ID, NO_SEQUENCE, RecordBatch,
};
use crate::compression::{self, CompressionType};
use crate::record::{Header, encode_record};
use bytes::Bytes;

/// Builds one RecordBatch v2 from records, as a producer does. The base offset is left at 0 and
/// the partition leader epoch at -1: the leader stamps both on append. Records are encoded as
/// they are pushed; with a [`compression`](Self::compression) codec the records section is
/// compressed as a whole when the batch is built.
#[derive(Debug)]
pub struct RecordBatchBuilder {
    buffer: Vec<u8>,
    compression: CompressionType,
    record_count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        RecordBatchBuilder::new()
    }
}

impl RecordBatchBuilder {
    pub fn new() -> RecordBatchBuilder {
        RecordBatchBuilder::with_capacity(1024)
    }

    pub fn with_capacity(bytes: usize) -> RecordBatchBuilder {
        let mut buffer = Vec::with_capacity(bytes.max(BATCH_HEADER_BYTES));
        buffer.resize(BATCH_HEADER_BYTES, 0);
        RecordBatchBuilder {
            buffer,
            compression: CompressionType::None,
            record_count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: NO_SEQUENCE,
        }
    }

    /// Marks the batch as coming from an idempotent producer.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn set_producer(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
    }

    /// Compresses the batch's records with `codec` when it is built. Default none.
    pub fn compression(mut self, codec: CompressionType) -> Self {
        self.compression = codec;
        self
    }

    /// [`compression`](Self::compression) for a builder held by reference.
    pub fn set_compression(&mut self, codec: CompressionType) {
        self.compression = codec;
    }

    /// Appends a record. The first record's timestamp becomes the batch's base timestamp.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) {
        if self.record_count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let offset_delta = self.record_count;
        encode_record(
            &mut self.buffer,
            offset_delta,
            timestamp.wrapping_sub(self.base_timestamp),
            key,
            value,
            headers,
        );
        self.record_count += 1;
    }

    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// The size the batch will have when built, uncompressed. A compressed batch is usually
    /// smaller, but may be a few bytes larger (the codec's framing) when its records do not
    /// compress.
    pub fn size_in_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Finishes the batch: compresses the records if asked to, then fills in the header and the
    /// CRC, which covers the records as stored, compressed.
    ///
    /// # Panics
    /// When no record was pushed: an empty batch is a caller bug, not a wire condition. Also
    /// when the codec fails, which compressing into memory does only when memory runs out.
    pub fn build(mut self) -> RecordBatch {
        assert!(
            self.record_count > 0,
            "a record batch needs at least one record"
        );
        if self.compression != CompressionType::None {
            let records = &self.buffer[BATCH_HEADER_BYTES..];
            let mut compressed = Vec::with_capacity(BATCH_HEADER_BYTES + records.len() / 2);
            compressed.resize(BATCH_HEADER_BYTES, 0);
            compression::compress(self.compression, records, &mut compressed);
            self.buffer = compressed;
        }
        let batch_length = (self.buffer.len() - LENGTH_FIELD_END) as i32;
        let header = &mut self.buffer[..BATCH_HEADER_BYTES];
        header[0..8].copy_from_slice(&0i64.to_be_bytes());
        header[8..12].copy_from_slice(&batch_length.to_be_bytes());
        header[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        header[16] = MAGIC_V2 as u8;
        // Attributes: the codec in bits 0-2; create-time timestamps, not transactional.
        header[21..23].copy_from_slice(&i16::from(self.compression.id()).to_be_bytes());
        header[23..27].copy_from_slice(&(self.record_count - 1).to_be_bytes());
        header[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        header[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        header[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        header[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        header[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        header[57..61].copy_from_slice(&self.record_count.to_be_bytes());
        let crc = crate::batch::crc32c(&self.buffer[21..]);
        self.buffer[17..21].copy_from_slice(&crc.to_be_bytes());
        RecordBatch::new(Bytes::from(self.buffer)).expect("the builder writes a well-framed batch")
    }
}
