use crate::error::BatchError;
use crate::varint;
use bytes::Bytes;
use std::ops::Range;

/// One header of a record. Kafka header keys are strings; values are bytes or null.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// One record, decoded from a batch, with its absolute offset and timestamp resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// Where one record's fields sit inside a batch's records section. Parsing it checks every
/// length and varint but copies and allocates nothing, which is what makes validating a batch of
/// a thousand records cheap.
pub(crate) struct RecordLayout {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    headers: Range<usize>,
    header_count: usize,
}

/// One record decoded into shared slices of the batch.
pub(crate) struct RawRecord {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

fn invalid(index: i64, reason: impl Into<String>) -> BatchError {
    BatchError::InvalidRecord {
        index,
        reason: reason.into(),
    }
}

/// Reads a length-prefixed byte field ending by `end`; -1 means null.
///
/// Always inlined: returned through the stack, its result stalled the record walk on a
/// store-to-load forwarding miss twice per record (key and value), a third of the walk's time.
#[inline(always)]
fn read_nullable_range(
    records: &[u8],
    position: &mut usize,
    end: usize,
    index: i64,
    what: &str,
) -> Result<Option<Range<usize>>, BatchError> {
    let length = varint::read_i32(&records[..end], position)
        .ok_or_else(|| invalid(index, format!("{what} length is not a valid varint")))?;
    if length == -1 {
        return Ok(None);
    }
    let length = usize::try_from(length)
        .map_err(|_| invalid(index, format!("{what} length {length} is negative")))?;
    let field_end = position
        .checked_add(length)
        .filter(|&field_end| field_end <= end)
        .ok_or_else(|| {
            invalid(
                index,
                format!("{what} of {length} bytes overruns the record"),
            )
        })?;
    let range = *position..field_end;
    *position = field_end;
    Ok(Some(range))
}

/// Walks the record starting at `position`, advancing `position` past it. Inlined into the
/// batch walk for the same reason as `read_nullable_range`.
#[inline(always)]
pub(crate) fn parse_record(
    records: &[u8],
    position: &mut usize,
    index: i64,
) -> Result<RecordLayout, BatchError> {
    let length = varint::read_i32(records, position)
        .ok_or_else(|| invalid(index, "length is not a valid varint"))?;
    let length = usize::try_from(length)
        .map_err(|_| invalid(index, format!("length {length} is negative")))?;
    let end = position
        .checked_add(length)
        .filter(|&end| end <= records.len())
        .ok_or_else(|| invalid(index, format!("length {length} overruns the batch")))?;
    let body = &records[..end];
    if *position >= end {
        return Err(invalid(index, "record is empty"));
    }
    *position += 1; // Record attributes: unused in v2, as in Kafka.
    let timestamp_delta = varint::read_i64(body, position)
        .ok_or_else(|| invalid(index, "timestamp delta is not a valid varint"))?;
    let offset_delta = varint::read_i32(body, position)
        .ok_or_else(|| invalid(index, "offset delta is not a valid varint"))?;
    let key = read_nullable_range(records, position, end, index, "key")?;
    let value = read_nullable_range(records, position, end, index, "value")?;
    let header_count = varint::read_i32(body, position)
        .ok_or_else(|| invalid(index, "header count is not a valid varint"))?;
    let header_count = usize::try_from(header_count)
        .map_err(|_| invalid(index, format!("header count {header_count} is negative")))?;
    let headers_start = *position;
    for _ in 0..header_count {
        let key = read_nullable_range(records, position, end, index, "header key")?
            .ok_or_else(|| invalid(index, "header key is null"))?;
        std::str::from_utf8(&records[key])
            .map_err(|_| invalid(index, "header key is not UTF-8"))?;
        read_nullable_range(records, position, end, index, "header value")?;
    }
    if *position != end {
        return Err(invalid(
            index,
            format!(
                "{} bytes left over after the record's fields",
                end - *position
            ),
        ));
    }
    Ok(RecordLayout {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers: headers_start..end,
        header_count,
    })
}

/// Decodes the record starting at `position` into slices sharing `records`' storage.
pub(crate) fn decode_record(
    records: &Bytes,
    position: &mut usize,
    index: i64,
) -> Result<RawRecord, BatchError> {
    let layout = parse_record(records, position, index)?;
    let mut headers = Vec::with_capacity(layout.header_count);
    let mut header_position = layout.headers.start;
    for _ in 0..layout.header_count {
        // Already checked by `parse_record`; these cannot fail.
        let key = read_nullable_range(
            records,
            &mut header_position,
            layout.headers.end,
            index,
            "header key",
        )?
        .ok_or_else(|| invalid(index, "header key is null"))?;
        let value = read_nullable_range(
            records,
            &mut header_position,
            layout.headers.end,
            index,
            "header value",
        )?;
        let key = String::from_utf8(records[key].to_vec())
            .map_err(|_| invalid(index, "header key is not UTF-8"))?;
        headers.push(Header {
            key,
            value: value.map(|range| records.slice(range)),
        });
    }
    Ok(RawRecord {
        offset_delta: layout.offset_delta,
        timestamp_delta: layout.timestamp_delta,
        key: layout.key.map(|range| records.slice(range)),
        value: layout.value.map(|range| records.slice(range)),
        headers,
    })
}

fn nullable_size(field: Option<&[u8]>) -> usize {
    match field {
        None => varint::size_i64(-1),
        Some(bytes) => varint::size_i64(bytes.len() as i64) + bytes.len(),
    }
}

fn write_nullable(buffer: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => varint::write_i64(buffer, -1),
        Some(bytes) => {
            varint::write_i64(buffer, bytes.len() as i64);
            buffer.extend_from_slice(bytes);
        }
    }
}

/// Appends one encoded record to `buffer`.
pub(crate) fn encode_record(
    buffer: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) {
    let mut body_length = 1
        + varint::size_i64(timestamp_delta)
        + varint::size_i64(offset_delta.into())
        + nullable_size(key)
        + nullable_size(value)
        + varint::size_i64(headers.len() as i64);
    for header in headers {
        body_length +=
            nullable_size(Some(header.key.as_bytes())) + nullable_size(header.value.as_deref());
    }
    buffer.reserve(body_length + 5);
    varint::write_i64(buffer, body_length as i64);
    buffer.push(0);
    varint::write_i64(buffer, timestamp_delta);
    varint::write_i64(buffer, offset_delta.into());
    write_nullable(buffer, key);
    write_nullable(buffer, value);
    varint::write_i64(buffer, headers.len() as i64);
    for header in headers {
        write_nullable(buffer, Some(header.key.as_bytes()));
        write_nullable(buffer, header.value.as_deref());
    }
}
