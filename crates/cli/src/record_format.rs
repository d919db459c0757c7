//! How `strata consume` prints a record.

use base64::Engine;
use serde_json::{Value, json};
use strata_client::ConsumerRecord;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordFormat {
    /// The value's bytes as they are, one record per line; `null` for a record without a value.
    Value,
    /// One JSON object per line: partition, offset, timestamp, key, value, headers.
    Json,
}

/// Bytes as JSON: a string when they are UTF-8, `{"base64": "..."}` otherwise, `null` when
/// absent. Binary keys and values survive the trip without being mistaken for text.
fn bytes_to_json(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::String(text.to_string()),
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
        },
    }
}

/// The JSON object of `--format json`. Headers are a list of `{"key", "value"}` objects because
/// Kafka headers may repeat a key and their order is meaningful.
pub fn to_json(record: &ConsumerRecord) -> Value {
    let headers: Vec<Value> = record
        .headers
        .iter()
        .map(|header| json!({ "key": header.key, "value": bytes_to_json(header.value.as_deref()) }))
        .collect();
    json!({
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": bytes_to_json(record.key.as_deref()),
        "value": bytes_to_json(record.value.as_deref()),
        "headers": headers,
    })
}

/// Appends the record's line, newline included, to `output`.
pub fn write_record(output: &mut Vec<u8>, record: &ConsumerRecord, format: RecordFormat) {
    match format {
        RecordFormat::Value => match &record.value {
            Some(value) => output.extend_from_slice(value),
            None => output.extend_from_slice(b"null"),
        },
        RecordFormat::Json => output.extend_from_slice(to_json(record).to_string().as_bytes()),
    }
    output.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use strata_client::Header;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"user-1")),
            value: Some(Bytes::from_static(&[0xff, 0x00])),
            headers: vec![
                Header {
                    key: "trace".to_string(),
                    value: Some(Bytes::from_static(b"abc")),
                },
                Header {
                    key: "trace".to_string(),
                    value: None,
                },
            ],
        }
    }

    #[test]
    fn json_lines_carry_every_field() {
        let mut output = Vec::new();
        write_record(&mut output, &record(), RecordFormat::Json);
        let text = String::from_utf8(output).expect("JSON is UTF-8");
        assert!(text.ends_with('\n') && text.lines().count() == 1);
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({
                "partition": 2,
                "offset": 7,
                "timestamp": 1_700_000_000_000i64,
                "key": "user-1",
                "value": { "base64": "/wA=" },
                "headers": [{ "key": "trace", "value": "abc" }, { "key": "trace", "value": null }],
            })
        );
    }

    #[test]
    fn absent_keys_and_values_are_null() {
        let mut empty = record();
        empty.key = None;
        empty.value = None;
        assert_eq!(to_json(&empty)["key"], Value::Null);
        assert_eq!(to_json(&empty)["value"], Value::Null);
        let mut output = Vec::new();
        write_record(&mut output, &empty, RecordFormat::Value);
        assert_eq!(output, b"null\n");
    }
}
