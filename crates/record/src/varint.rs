//! Zigzag varints as Kafka's record format uses them (protobuf's `sint32` / `sint64`).

use integer_encoding::VarInt;

/// Reads a zigzag varint that must fit in `i32`, advancing `position`.
#[inline(always)]
pub(crate) fn read_i32(buffer: &[u8], position: &mut usize) -> Option<i32> {
    if let Some(value) = read_short(buffer, position) {
        return Some(value as i32);
    }
    let (value, length) = i32::decode_var(buffer.get(*position..)?)?;
    *position += length;
    Some(value)
}

/// Reads a zigzag varint up to `i64`, advancing `position`.
#[inline(always)]
pub(crate) fn read_i64(buffer: &[u8], position: &mut usize) -> Option<i64> {
    if let Some(value) = read_short(buffer, position) {
        return Some(value);
    }
    let (value, length) = i64::decode_var(buffer.get(*position..)?)?;
    *position += length;
    Some(value)
}

/// Decodes a varint of one or two bytes inline, or returns `None` (and leaves `position`) for
/// the library to decode. Most lengths, deltas and counts fit two bytes (a 1 KiB value's length
/// does); the library call is not inlined, and every produced batch is walked record by record.
#[inline(always)]
fn read_short(buffer: &[u8], position: &mut usize) -> Option<i64> {
    match *buffer.get(*position..)? {
        [first, ..] if first < 0x80 => {
            *position += 1;
            Some(zigzag(u64::from(first)))
        }
        [first, second, ..] if second < 0x80 => {
            *position += 2;
            Some(zigzag(u64::from(first & 0x7f) | u64::from(second) << 7))
        }
        _ => None,
    }
}

#[inline]
fn zigzag(encoded: u64) -> i64 {
    ((encoded >> 1) as i64) ^ -((encoded & 1) as i64)
}

/// Appends `value` as a zigzag varint. Pushed byte by byte and inlined: a producer encodes
/// several varints per record, and the copy through a scratch array called `memcpy` for each.
#[inline(always)]
pub(crate) fn write_i64(buffer: &mut Vec<u8>, value: i64) {
    let mut rest = ((value << 1) ^ (value >> 63)) as u64;
    while rest >= 0x80 {
        buffer.push(rest as u8 | 0x80);
        rest >>= 7;
    }
    buffer.push(rest as u8);
}

pub(crate) fn size_i64(value: i64) -> usize {
    value.required_space()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_matches_kafka_encoding() {
        // Kafka's ByteUtils: -1 encodes as 0x01, 1 as 0x02, 300 as 0xd8 0x04.
        let mut buffer = Vec::new();
        write_i64(&mut buffer, -1);
        write_i64(&mut buffer, 1);
        write_i64(&mut buffer, 300);
        assert_eq!(buffer, [0x01, 0x02, 0xd8, 0x04]);
        let mut position = 0;
        assert_eq!(read_i32(&buffer, &mut position), Some(-1));
        assert_eq!(read_i32(&buffer, &mut position), Some(1));
        assert_eq!(read_i64(&buffer, &mut position), Some(300));
        assert_eq!(read_i64(&buffer, &mut position), None);
    }

    #[test]
    fn the_short_fast_paths_agree_with_the_library() {
        // One and two bytes, with and without bytes after them.
        for value in -9000i32..9000 {
            let mut buffer = Vec::new();
            write_i64(&mut buffer, value.into());
            let width = buffer.len();
            for trailing in [0, 3] {
                let mut padded = buffer.clone();
                padded.extend(std::iter::repeat_n(0xff, trailing));
                let mut position = 0;
                assert_eq!(read_i32(&padded, &mut position), Some(value));
                assert_eq!(position, width);
                let mut position = 0;
                assert_eq!(read_i64(&padded, &mut position), Some(value.into()));
                assert_eq!(position, width);
            }
        }
    }

    #[test]
    fn writing_agrees_with_the_library_at_every_width() {
        let mut values = vec![0, -1, 1, 63, -64, 64, -65, i64::MAX, i64::MIN];
        for shift in 0..63 {
            values.extend([1i64 << shift, (1i64 << shift) - 1, -(1i64 << shift)]);
        }
        for value in values {
            let mut written = Vec::new();
            write_i64(&mut written, value);
            let mut expected = [0u8; 10];
            let length = value.encode_var(&mut expected);
            assert_eq!(written, expected[..length], "value {value}");
            assert_eq!(written.len(), size_i64(value), "value {value}");
        }
    }

    #[test]
    fn a_cut_varint_is_refused() {
        let mut position = 0;
        assert_eq!(read_i32(&[0x80], &mut position), None);
        assert_eq!(read_i32(&[0x80, 0x80], &mut position), None);
        assert_eq!(read_i64(&[0xff], &mut position), None);
        assert_eq!(position, 0);
    }
}
