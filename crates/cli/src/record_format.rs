//! How `strata consume` prints a record: `--format` and `--binary`.

use std::ffi::OsStr;
use std::fmt::Write as _;

use base64::Engine;
use clap::builder::{PossibleValue, PossibleValuesParser, StringValueParser, TypedValueParser};
use serde_json::{Value, json};
use strata_client::ConsumerRecord;

/// `--format`: a named format, or a format string of kcat's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFormat {
    /// The value's bytes, one record per line; `null` for a record without a value.
    Value,
    /// One JSON object per line: topic, partition, offset, timestamp, key, value, headers.
    Json,
    /// A format string (`%k\t%v`), parsed.
    Template(Vec<Token>),
}

/// One piece of a `--format` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    /// `%t`
    Topic,
    /// `%p`
    Partition,
    /// `%o`
    Offset,
    /// `%k`: empty when the record has no key.
    Key,
    /// `%v`: empty when the record has no value.
    Value,
    /// `%T`: ms since the Unix epoch.
    Timestamp,
    /// `%h`: `key=value` pairs separated by commas; a header without a value is its key alone.
    Headers,
    /// `%K`: the key's size in bytes, -1 without a key.
    KeySize,
    /// `%S`: the value's size in bytes, -1 without a value.
    ValueSize,
}

/// What `--format` accepts besides its named formats, for errors.
const TOKENS: &str = "%t %p %o %k %v %T %h %K %S %%";

/// Parses a `--format` string: `%` tokens, `\t`, `\n`, `\r` and `\\` escapes, anything else as
/// it is.
pub fn parse_template(template: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut characters = template.chars();
    while let Some(character) = characters.next() {
        let token = match character {
            '%' => match characters.next() {
                Some('t') => Token::Topic,
                Some('p') => Token::Partition,
                Some('o') => Token::Offset,
                Some('k') => Token::Key,
                Some('v') => Token::Value,
                Some('T') => Token::Timestamp,
                Some('h') => Token::Headers,
                Some('K') => Token::KeySize,
                Some('S') => Token::ValueSize,
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some(other) => {
                    return Err(format!("unknown token '%{other}' (tokens: {TOKENS})"));
                }
                None => return Err(format!("a lone '%' at the end (tokens: {TOKENS})")),
            },
            '\\' => {
                match characters.next() {
                    Some('t') => literal.push('\t'),
                    Some('n') => literal.push('\n'),
                    Some('r') => literal.push('\r'),
                    Some('\\') => literal.push('\\'),
                    Some(other) => {
                        return Err(format!(
                            "unknown escape '\\{other}' (escapes: \\t \\n \\r \\\\)"
                        ));
                    }
                    None => {
                        return Err(
                            "a lone '\\' at the end (escapes: \\t \\n \\r \\\\)".to_string()
                        );
                    }
                }
                continue;
            }
            other => {
                literal.push(other);
                continue;
            }
        };
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(&mut literal)));
        }
        tokens.push(token);
    }
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    Ok(tokens)
}

/// Parses `--format`: `value`, `json`, or a format string, which is told apart by its `%`.
/// Anything else fails as a value outside `[possible values: value, json]` would.
#[derive(Debug, Clone, Copy)]
pub struct RecordFormatParser;

impl TypedValueParser for RecordFormatParser {
    type Value = RecordFormat;

    fn parse_ref(
        &self,
        command: &clap::Command,
        argument: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<RecordFormat, clap::Error> {
        match value.to_str() {
            Some("value") => Ok(RecordFormat::Value),
            Some("json") => Ok(RecordFormat::Json),
            Some(template) if template.contains('%') => StringValueParser::new()
                .try_map(|template| parse_template(&template).map(RecordFormat::Template))
                .parse_ref(command, argument, value),
            _ => PossibleValuesParser::new(["value", "json"])
                .parse_ref(command, argument, value)
                .map(|_| RecordFormat::Value),
        }
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            [
                PossibleValue::new("value").help(
                    "The value's bytes, one record per line; `null` for a record without a value",
                ),
                PossibleValue::new("json").help(
                    "One JSON object per line: topic, partition, offset, timestamp, key, value, \
                     headers",
                ),
            ]
            .into_iter(),
        ))
    }
}

/// `--binary`: how keys, values and header values are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BinaryEncoding {
    /// The bytes as they are; in JSON a string when they are UTF-8, else {"base64": "..."}
    Text,
    /// Standard base64 (in JSON, a string)
    Base64,
    /// Lowercase hex, two digits a byte (in JSON, a string)
    Hex,
}

impl BinaryEncoding {
    /// Appends `bytes` as this encoding says.
    fn write(self, output: &mut Vec<u8>, bytes: &[u8]) {
        match self {
            BinaryEncoding::Text => output.extend_from_slice(bytes),
            BinaryEncoding::Base64 => output.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .as_bytes(),
            ),
            BinaryEncoding::Hex => output.extend_from_slice(hex(bytes).as_bytes()),
        }
    }

    /// Bytes as JSON: `null` when absent; with `text` a string when they are UTF-8 and
    /// `{"base64": "..."}` otherwise, so binary keys and values survive the trip without being
    /// mistaken for text; with `base64` or `hex` always the encoded string.
    fn json(self, bytes: Option<&[u8]>) -> Value {
        let Some(bytes) = bytes else {
            return Value::Null;
        };
        let base64 = || base64::engine::general_purpose::STANDARD.encode(bytes);
        match self {
            BinaryEncoding::Text => match std::str::from_utf8(bytes) {
                Ok(text) => Value::String(text.to_string()),
                Err(_) => json!({ "base64": base64() }),
            },
            BinaryEncoding::Base64 => Value::String(base64()),
            BinaryEncoding::Hex => Value::String(hex(bytes)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// The JSON object of `--format json`. Headers are a list of `{"key", "value"}` objects because
/// Kafka headers may repeat a key and their order is meaningful.
pub fn to_json(record: &ConsumerRecord, binary: BinaryEncoding) -> Value {
    let headers: Vec<Value> = record
        .headers
        .iter()
        .map(|header| json!({ "key": header.key, "value": binary.json(header.value.as_deref()) }))
        .collect();
    json!({
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": binary.json(record.key.as_deref()),
        "value": binary.json(record.value.as_deref()),
        "headers": headers,
    })
}

/// Appends the record's line to `output`. Every format ends a record with a newline, except a
/// format string that ends with its own `\n`.
pub fn write_record(
    output: &mut Vec<u8>,
    record: &ConsumerRecord,
    format: &RecordFormat,
    binary: BinaryEncoding,
) {
    match format {
        RecordFormat::Value => match &record.value {
            Some(value) => binary.write(output, value),
            None => output.extend_from_slice(b"null"),
        },
        RecordFormat::Json => {
            output.extend_from_slice(to_json(record, binary).to_string().as_bytes())
        }
        RecordFormat::Template(tokens) => {
            for token in tokens {
                write_token(output, record, token, binary);
            }
            if let Some(Token::Literal(last)) = tokens.last()
                && last.ends_with('\n')
            {
                return;
            }
        }
    }
    output.push(b'\n');
}

fn write_token(
    output: &mut Vec<u8>,
    record: &ConsumerRecord,
    token: &Token,
    binary: BinaryEncoding,
) {
    let size = |bytes: &Option<bytes::Bytes>| bytes.as_ref().map_or(-1, |bytes| bytes.len() as i64);
    match token {
        Token::Literal(text) => output.extend_from_slice(text.as_bytes()),
        Token::Topic => output.extend_from_slice(record.topic.as_bytes()),
        Token::Partition => output.extend_from_slice(record.partition.to_string().as_bytes()),
        Token::Offset => output.extend_from_slice(record.offset.to_string().as_bytes()),
        Token::Key => binary.write(output, record.key.as_deref().unwrap_or_default()),
        Token::Value => binary.write(output, record.value.as_deref().unwrap_or_default()),
        Token::Timestamp => output.extend_from_slice(record.timestamp.to_string().as_bytes()),
        Token::KeySize => output.extend_from_slice(size(&record.key).to_string().as_bytes()),
        Token::ValueSize => output.extend_from_slice(size(&record.value).to_string().as_bytes()),
        Token::Headers => {
            for (index, header) in record.headers.iter().enumerate() {
                if index > 0 {
                    output.push(b',');
                }
                output.extend_from_slice(header.key.as_bytes());
                if let Some(value) = &header.value {
                    output.push(b'=');
                    binary.write(output, value);
                }
            }
        }
    }
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

    fn line(record: &ConsumerRecord, format: &RecordFormat, binary: BinaryEncoding) -> Vec<u8> {
        let mut output = Vec::new();
        write_record(&mut output, record, format, binary);
        output
    }

    fn template(text: &str) -> RecordFormat {
        RecordFormat::Template(parse_template(text).expect("a valid format string"))
    }

    #[test]
    fn json_lines_carry_every_field() {
        let output = line(&record(), &RecordFormat::Json, BinaryEncoding::Text);
        let text = String::from_utf8(output).expect("JSON is UTF-8");
        assert!(text.ends_with('\n') && text.lines().count() == 1);
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({
                "topic": "t",
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
    fn json_with_an_encoding_holds_encoded_strings() {
        let hex = to_json(&record(), BinaryEncoding::Hex);
        assert_eq!(hex["key"], "757365722d31");
        assert_eq!(hex["value"], "ff00");
        assert_eq!(hex["headers"][0]["value"], "616263");
        assert_eq!(hex["headers"][1]["value"], Value::Null);
        let base64 = to_json(&record(), BinaryEncoding::Base64);
        assert_eq!(base64["key"], "dXNlci0x");
        assert_eq!(base64["value"], "/wA=");
    }

    #[test]
    fn absent_keys_and_values_are_null() {
        let mut empty = record();
        empty.key = None;
        empty.value = None;
        assert_eq!(to_json(&empty, BinaryEncoding::Text)["key"], Value::Null);
        assert_eq!(to_json(&empty, BinaryEncoding::Text)["value"], Value::Null);
        assert_eq!(
            line(&empty, &RecordFormat::Value, BinaryEncoding::Text),
            b"null\n"
        );
        assert_eq!(
            line(&empty, &RecordFormat::Value, BinaryEncoding::Hex),
            b"null\n"
        );
        assert_eq!(
            line(&empty, &template("[%k][%v] %K %S"), BinaryEncoding::Text),
            b"[][] -1 -1\n"
        );
    }

    #[test]
    fn values_print_in_the_encoding_asked_for() {
        let value = |binary| line(&record(), &RecordFormat::Value, binary);
        assert_eq!(value(BinaryEncoding::Text), b"\xff\x00\n");
        assert_eq!(value(BinaryEncoding::Base64), b"/wA=\n");
        assert_eq!(value(BinaryEncoding::Hex), b"ff00\n");
    }

    #[test]
    fn format_strings_expand_every_token() {
        let mut text_record = record();
        text_record.value = Some(Bytes::from_static(b"book"));
        let all = template(r"%t %p %o %k %v %T %h %K %S 100%% a\tb\\");
        assert_eq!(
            String::from_utf8(line(&text_record, &all, BinaryEncoding::Text)).unwrap(),
            "t 2 7 user-1 book 1700000000000 trace=abc,trace 6 4 100% a\tb\\\n"
        );
        // Sizes are of the bytes, not of their encoding.
        assert_eq!(
            String::from_utf8(line(
                &record(),
                &template("%k:%v:%h %K %S"),
                BinaryEncoding::Hex
            ))
            .unwrap(),
            "757365722d31:ff00:trace=616263,trace 6 2\n"
        );
        // A format string that ends its record itself gets no second newline.
        assert_eq!(
            line(&text_record, &template(r"%v\n"), BinaryEncoding::Text),
            b"book\n"
        );
        assert_eq!(
            line(&text_record, &template(r"%v\n\n"), BinaryEncoding::Text),
            b"book\n\n"
        );
    }

    #[test]
    fn bad_format_strings_say_what_is_wrong() {
        assert_eq!(
            parse_template("%k %x"),
            Err(format!("unknown token '%x' (tokens: {TOKENS})"))
        );
        assert_eq!(
            parse_template("%v %"),
            Err(format!("a lone '%' at the end (tokens: {TOKENS})"))
        );
        assert_eq!(
            parse_template(r"%v\q"),
            Err(r"unknown escape '\q' (escapes: \t \n \r \\)".to_string())
        );
    }
}
