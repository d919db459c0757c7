//! The codecs of a batch's records section: gzip, snappy, lz4 and zstd, in Kafka's framings, so
//! compressed batches from Kafka clients read here and batches built here read in Kafka.
//!
//! Only the records section (the bytes after the 61-byte header) is compressed. The header stays
//! plain, so the leader stamps the base offset and epoch of a compressed batch as of any other,
//! and the CRC covers the compressed bytes as stored. Records inside carry offset and timestamp
//! *deltas*, which is why a compressed batch is stored as sent and never rewritten on append.
//!
//! Compressing goes through kafka-protocol's `Compressor`s, which write Kafka's framings
//! (xerial-framed snappy, the lz4 frame format, gzip and zstd streams). Decompressing is bounded,
//! because a few hundred bytes of a produce request can otherwise inflate to gigabytes:
//! - gzip, lz4 and zstd payloads are the codecs' standard streams, so their decoders (the crates
//!   kafka-protocol's own `Decompressor`s wrap) are read through a cap; kafka-protocol's
//!   `Decompressor`s cannot be used for these, as they buffer whatever a payload inflates to.
//!   zstd's window is capped too: a frame header alone can ask the decoder for a 128 MiB window;
//! - snappy's xerial framing is Kafka's own, so kafka-protocol's `Decompressor` reads it, but
//!   only after the uncompressed lengths its blocks declare (which is what it allocates) are
//!   summed and checked against the cap.
//!
//! Invariants:
//! - decompressing holds at most about twice the cap (the output buffer's growth), plus a zstd
//!   window of at most twice the cap or 8 MiB, whichever is larger, and never over 128 MiB;
//! - bad bytes are a [`BatchError`], never a panic: a payload that does not decode is
//!   [`BatchError::CorruptCompression`], one that inflates past the cap is
//!   [`BatchError::DecompressedTooLarge`].

use crate::error::BatchError;
use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use std::fmt;
use std::io::Read;
use std::str::FromStr;

/// How many times `max_bytes` a batch's records may inflate to when it is validated. Record data
/// typically compresses 2 to 10 times; 64 leaves room for very repetitive data while bounding
/// what one produce request can make the broker allocate: 64 MiB at the default
/// `max.message.bytes` of 1 MiB.
pub const MAX_COMPRESSION_RATIO: usize = 64;

/// The most a batch's records may inflate to, whatever `max_bytes`. It is also the cap of
/// readers ([`RecordBatch::records`](crate::RecordBatch::records)), which know no `max_bytes`:
/// every batch that validated stays readable.
pub const MAX_DECOMPRESSED_BYTES: usize = 256 << 20;

/// The most the records of a batch validated against `max_bytes` may inflate to.
pub fn decompressed_limit(max_bytes: usize) -> usize {
    max_bytes
        .saturating_mul(MAX_COMPRESSION_RATIO)
        .min(MAX_DECOMPRESSED_BYTES)
}

/// The compression codec named in a batch's attributes (bits 0-2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CompressionType {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    /// Every codec, in the order of their attribute ids.
    pub const ALL: [CompressionType; 5] = [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ];

    /// Kafka's name for the codec, as in its `compression.type` configs.
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::None => "none",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }

    /// The codec's id in a batch's attribute bits 0-2.
    pub fn id(self) -> u8 {
        match self {
            CompressionType::None => 0,
            CompressionType::Gzip => 1,
            CompressionType::Snappy => 2,
            CompressionType::Lz4 => 3,
            CompressionType::Zstd => 4,
        }
    }

    /// The codec with attribute id `id`; ids 5 to 7 name no codec.
    pub fn from_id(id: u8) -> Result<CompressionType, BatchError> {
        CompressionType::ALL
            .into_iter()
            .find(|codec| codec.id() == id)
            .ok_or(BatchError::UnsupportedCompression(id))
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A codec name that is not one of Kafka's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression type '{0}'; expected one of none, gzip, snappy, lz4, zstd")]
pub struct UnknownCompressionType(pub String);

impl FromStr for CompressionType {
    type Err = UnknownCompressionType;

    /// Accepts Kafka's names, in any case: `none`, `gzip`, `snappy`, `lz4`, `zstd`.
    fn from_str(text: &str) -> Result<CompressionType, UnknownCompressionType> {
        let name = text.trim();
        CompressionType::ALL
            .into_iter()
            .find(|codec| codec.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownCompressionType(text.to_string()))
    }
}

/// Compresses `records` with one of kafka-protocol's `Compressor`s, appending to `out`.
fn compress_with<C>(records: &[u8], out: &mut Vec<u8>) -> Result<(), String>
where
    C: Compressor<Vec<u8>, BufMut = BytesMut>,
{
    C::compress(out, |buffer| {
        buffer.extend_from_slice(records);
        Ok(())
    })
    .map_err(|error| format!("{error:#}"))
}

/// Appends `records` compressed with `codec` to `out`.
///
/// # Panics
/// When the codec fails, which writing to memory only does when memory runs out.
pub(crate) fn compress(codec: CompressionType, records: &[u8], out: &mut Vec<u8>) {
    let compressed = match codec {
        CompressionType::None => {
            out.extend_from_slice(records);
            Ok(())
        }
        CompressionType::Gzip => compress_with::<Gzip>(records, out),
        CompressionType::Snappy => compress_with::<Snappy>(records, out),
        CompressionType::Lz4 => compress_with::<Lz4>(records, out),
        CompressionType::Zstd => compress_with::<Zstd>(records, out),
    };
    if let Err(error) = compressed {
        panic!("compressing a batch with {codec} into memory failed: {error}");
    }
}

/// Decompresses a records section compressed with `codec`, refusing to produce more than
/// `limit` bytes.
pub(crate) fn decompress(
    codec: CompressionType,
    compressed: &[u8],
    limit: usize,
) -> Result<Bytes, BatchError> {
    let corrupt = |reason: String| BatchError::CorruptCompression { codec, reason };
    match codec {
        CompressionType::None => Ok(Bytes::copy_from_slice(compressed)),
        // Java's GZIPInputStream reads concatenated members too.
        CompressionType::Gzip => {
            read_capped(codec, flate2::read::MultiGzDecoder::new(compressed), limit)
        }
        CompressionType::Lz4 => {
            let mut decoder =
                lz4::Decoder::new(compressed).map_err(|error| corrupt(error.to_string()))?;
            let records = read_capped(codec, &mut decoder, limit)?;
            // The decoder reports a frame cut short only here: reading just stops early.
            decoder
                .finish()
                .1
                .map_err(|_| corrupt("the lz4 frame is cut short".to_string()))?;
            Ok(records)
        }
        CompressionType::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(compressed)
                .map_err(|error| corrupt(error.to_string()))?;
            decoder
                .window_log_max(zstd_window_log_max(limit))
                .map_err(|error| corrupt(error.to_string()))?;
            read_capped(codec, decoder, limit)
        }
        CompressionType::Snappy => {
            let declared = snappy_declared_length(compressed).map_err(corrupt)?;
            if declared > limit {
                return Err(BatchError::DecompressedTooLarge { codec, limit });
            }
            let mut input = compressed;
            Snappy::decompress(&mut input, |records| Ok(std::mem::take(records)))
                .map_err(|error| corrupt(format!("{error:#}")))
        }
    }
}

/// Reads `decoder` to its end, or fails once it yields more than `limit` bytes.
fn read_capped(
    codec: CompressionType,
    decoder: impl Read,
    limit: usize,
) -> Result<Bytes, BatchError> {
    let mut records = Vec::new();
    decoder
        .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut records)
        .map_err(|error| BatchError::CorruptCompression {
            codec,
            reason: error.to_string(),
        })?;
    if records.len() > limit {
        return Err(BatchError::DecompressedTooLarge { codec, limit });
    }
    Ok(Bytes::from(records))
}

/// The largest zstd window (as a power of two) a frame may ask for: what the cap could need,
/// but at least 8 MiB, the window zstd's levels up to 19 use when the producer streams (as
/// Kafka's does), and at most 128 MiB, zstd's own default limit.
fn zstd_window_log_max(limit: usize) -> u32 {
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    needed.clamp(23, 27)
}

/// The xerial framing's header: magic, then version 1 and compatible version 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// What kafka-protocol's snappy decoder allocates for `compressed`: the uncompressed lengths
/// its blocks declare. Walks the framing as that decoder does: a payload without the xerial
/// header is one raw snappy block, as in Java's SnappyInputStream; otherwise a 4-byte
/// big-endian length precedes each block.
fn snappy_declared_length(compressed: &[u8]) -> Result<usize, String> {
    let declared =
        |block: &[u8]| snap::raw::decompress_len(block).map_err(|error| error.to_string());
    let Some(mut blocks) = compressed.strip_prefix(XERIAL_HEADER.as_slice()) else {
        return declared(compressed);
    };
    let mut total = 0usize;
    while let Some((length, rest)) = blocks.split_first_chunk::<4>() {
        let length = u32::from_be_bytes(*length) as usize;
        let block = rest
            .get(..length)
            .ok_or_else(|| format!("a snappy block of {length} bytes is cut short"))?;
        total = total.saturating_add(declared(block)?);
        blocks = &rest[length..];
    }
    if !blocks.is_empty() {
        return Err("a snappy block length is cut short".to_string());
    }
    Ok(total)
}
