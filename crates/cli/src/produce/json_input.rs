//! `strata produce --input-format json`: one JSON object per line.
//!
//! `{"key": ..., "value": ..., "headers": ..., "partition": n, "timestamp": ms}`, every field
//! optional. Key and value are strings or null (absent is null; a null value is a tombstone).
//! Headers are `{"k": "v"}`, `[["k", "v"], ...]` or `[{"key": "k", "value": "v"}, ...]` (the
//! last is what `strata consume --format json` prints); a list keeps repeated keys and their
//! order, and a header value may be null. `--binary` says how the key, the value and header
//! values are written: as text, base64 or hex; header keys are always text. `offset`, which
//! `strata consume --format json` prints, is ignored; any other field is an error, so a typo
//! does not silently drop data.

use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value};
use strata_client::Header;

/// `--binary`: how bytes are written as JSON strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Binary {
    /// The string's UTF-8 bytes.
    Text,
    /// Standard base64, padded.
    Base64,
    /// Two hex digits per byte, either case.
    Hex,
}

impl Binary {
    fn decode(self, text: &str) -> Result<Bytes, String> {
        match self {
            Binary::Text => Ok(Bytes::copy_from_slice(text.as_bytes())),
            Binary::Base64 => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Bytes::from)
                .map_err(|error| format!("is not base64 ({error})")),
            Binary::Hex => decode_hex(text).map(Bytes::from),
        }
    }
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err("is not hex (odd number of digits)".to_string());
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("is not hex ('{}')", String::from_utf8_lossy(pair)))
        })
        .collect()
}

/// A record read from one JSON line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JsonRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub partition: Option<i32>,
    pub timestamp: Option<i64>,
}

/// Parses one line; the error says what is wrong with it, without the line number.
pub fn parse(line: &[u8], binary: Binary) -> Result<JsonRecord, String> {
    let object = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err("not a JSON object".to_string()),
        Err(error) => {
            let message = error.to_string();
            let position = format!(" at line {} column {}", error.line(), error.column());
            let message = message.strip_suffix(&position).unwrap_or(&message);
            return Err(format!(
                "invalid JSON at column {}: {message}",
                error.column()
            ));
        }
    };
    let mut record = JsonRecord::default();
    for (field, value) in object {
        match field.as_str() {
            "key" => {
                record.key = bytes_field(&value, binary).map_err(|e| format!("\"key\" {e}"))?
            }
            "value" => {
                record.value = bytes_field(&value, binary).map_err(|e| format!("\"value\" {e}"))?
            }
            "headers" => record.headers = headers(value, binary)?,
            "partition" => {
                record.partition = Some(
                    non_negative(&value).ok_or("\"partition\" must be a non-negative integer")?,
                );
            }
            "timestamp" => {
                record.timestamp = Some(
                    non_negative(&value)
                        .ok_or("\"timestamp\" must be milliseconds since the epoch")?,
                );
            }
            "offset" => {}
            other => {
                return Err(format!(
                    "unknown field \"{other}\" (known: key, value, headers, partition, timestamp)"
                ));
            }
        }
    }
    Ok(record)
}

/// A JSON integer that fits `T` and is not negative.
fn non_negative<T: TryFrom<u64>>(value: &Value) -> Option<T> {
    value.as_u64().and_then(|number| T::try_from(number).ok())
}

/// A string in the `--binary` encoding, or null.
fn bytes_field(value: &Value, binary: Binary) -> Result<Option<Bytes>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => binary.decode(text).map(Some),
        _ => Err("must be a string or null".to_string()),
    }
}

fn headers(value: Value, binary: Binary) -> Result<Vec<Header>, String> {
    const SHAPE: &str = "\"headers\" must be an object of strings, a list of [key, value] pairs \
                         or a list of {\"key\", \"value\"} objects";
    let pairs: Vec<(Value, Value)> = match value {
        Value::Null => Vec::new(),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (Value::String(k), v))
            .collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(pair) if pair.len() == 2 => {
                    let mut pair = pair.into_iter();
                    Ok((
                        pair.next().unwrap_or_default(),
                        pair.next().unwrap_or_default(),
                    ))
                }
                Value::Object(mut object) if is_key_value_object(&object) => Ok((
                    object.remove("key").unwrap_or_default(),
                    object.remove("value").unwrap_or_default(),
                )),
                _ => Err(SHAPE.to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(SHAPE.to_string()),
    };
    pairs
        .into_iter()
        .map(|(key, value)| {
            let Value::String(key) = key else {
                return Err("a header key must be a string".to_string());
            };
            if key.is_empty() {
                return Err("a header key must not be empty".to_string());
            }
            let value =
                bytes_field(&value, binary).map_err(|error| format!("header \"{key}\" {error}"))?;
            Ok(Header { key, value })
        })
        .collect()
}

fn is_key_value_object(object: &Map<String, Value>) -> bool {
    object.contains_key("key") && object.keys().all(|key| key == "key" || key == "value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(key: &str, value: Option<&'static [u8]>) -> Header {
        Header {
            key: key.to_string(),
            value: value.map(Bytes::from_static),
        }
    }

    #[test]
    fn every_field_is_read() {
        let line = br#"{"key":"k","value":"v","headers":{"a":"1","b":null},"partition":2,"timestamp":1700000000000}"#;
        assert_eq!(
            parse(line, Binary::Text),
            Ok(JsonRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                headers: vec![header("a", Some(b"1")), header("b", None)],
                partition: Some(2),
                timestamp: Some(1_700_000_000_000),
            })
        );
        assert_eq!(parse(b"{}", Binary::Text), Ok(JsonRecord::default()));
    }

    #[test]
    fn header_lists_keep_order_and_repeats() {
        let pairs = br#"{"headers":[["a","1"],["a","2"]]}"#;
        let objects =
            br#"{"headers":[{"key":"a","value":"1"},{"key":"a","value":"2"}],"offset":7}"#;
        for line in [&pairs[..], &objects[..]] {
            assert_eq!(
                parse(line, Binary::Text).map(|record| record.headers),
                Ok(vec![header("a", Some(b"1")), header("a", Some(b"2"))])
            );
        }
    }

    #[test]
    fn binary_encodings_decode_keys_values_and_header_values() {
        let base64 = br#"{"key":"AP8=","value":"","headers":[["h","/w=="]]}"#;
        let hex = br#"{"key":"00fF","value":"","headers":[["h","FF"]]}"#;
        for (line, binary) in [(&base64[..], Binary::Base64), (&hex[..], Binary::Hex)] {
            let record = parse(line, binary).expect("valid");
            assert_eq!(record.key.as_deref(), Some(&[0x00, 0xff][..]));
            assert_eq!(record.value.as_deref(), Some(&b""[..]));
            assert_eq!(record.headers, vec![header("h", Some(&[0xff]))]);
        }
        assert!(parse(br#"{"key":"0"}"#, Binary::Hex).is_err());
        assert!(parse(br#"{"key":"zz"}"#, Binary::Hex).is_err());
        assert!(parse(br#"{"key":"!"}"#, Binary::Base64).is_err());
    }

    #[test]
    fn mistakes_are_named() {
        let error = |line: &[u8]| parse(line, Binary::Text).expect_err("invalid");
        assert_eq!(
            error(br#"{"key": "k", "vaule": "v"}"#),
            "unknown field \"vaule\" (known: key, value, headers, partition, timestamp)"
        );
        assert_eq!(error(b"[1]"), "not a JSON object");
        assert_eq!(
            error(b"{\"key\": }"),
            "invalid JSON at column 9: expected value"
        );
        assert_eq!(
            error(br#"{"partition": -1}"#),
            "\"partition\" must be a non-negative integer"
        );
        assert_eq!(
            error(br#"{"value": 5}"#),
            "\"value\" must be a string or null"
        );
        assert_eq!(
            error(br#"{"headers": {"": "v"}}"#),
            "a header key must not be empty"
        );
    }
}
