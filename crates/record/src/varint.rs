//! Zigzag varints as Kafka's record format uses them (protobuf's `sint32` / `sint64`).

use integer_encoding::VarInt;

/// Reads a zigzag varint that must fit in `i32`, advancing `position`.
#[inline]
pub(crate) fn read_i32(buffer: &[u8], position: &mut usize) -> Option<i32> {
    // Most lengths, deltas and counts fit one byte; decode those inline, the rest in the library.
    let first = *buffer.get(*position)?;
    if first < 0x80 {
        *position += 1;
        return Some(((first >> 1) as i32) ^ -((first & 1) as i32));
    }
    let (value, length) = i32::decode_var(buffer.get(*position..)?)?;
    *position += length;
    Some(value)
}

/// Reads a zigzag varint up to `i64`, advancing `position`.
#[inline]
pub(crate) fn read_i64(buffer: &[u8], position: &mut usize) -> Option<i64> {
    let (value, length) = i64::decode_var(buffer.get(*position..)?)?;
    *position += length;
    Some(value)
}

pub(crate) fn write_i64(buffer: &mut Vec<u8>, value: i64) {
    let mut scratch = [0u8; 10];
    let length = value.encode_var(&mut scratch);
    buffer.extend_from_slice(&scratch[..length]);
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
    fn the_one_byte_fast_path_agrees_with_the_library() {
        for value in -64i32..64 {
            let mut buffer = Vec::new();
            write_i64(&mut buffer, value.into());
            assert_eq!(buffer.len(), 1);
            let mut position = 0;
            assert_eq!(read_i32(&buffer, &mut position), Some(value));
            assert_eq!(position, 1);
        }
    }
}
