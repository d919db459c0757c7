//! How the record browser shows keys, values and header values: JSON pretty-printed, other
//! UTF-8 as text, anything else as hex or base64, as the user picks.

use base64::Engine;
use strata_client::ConsumerRecord;

/// How bytes that are not UTF-8 are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Binary {
    #[default]
    Hex,
    Base64,
}

impl Binary {
    pub fn name(self) -> &'static str {
        match self {
            Binary::Hex => "hex",
            Binary::Base64 => "base64",
        }
    }
}

/// Bytes as the browser shows them, and what they were taken for (a CSS class).
pub struct Shown {
    pub text: String,
    pub kind: &'static str,
}

/// Bytes of a key, value or header value shown at most; the rest is said, not shown, so one
/// large record cannot make a page megabytes long.
const SHOWN_BYTES: usize = 16 * 1024;

pub fn show(bytes: Option<&[u8]>, binary: Binary) -> Shown {
    let Some(bytes) = bytes else {
        return Shown {
            text: "null".to_string(),
            kind: "null",
        };
    };
    if bytes.len() > SHOWN_BYTES {
        // Text is cut before a character the cut would split, so it still reads as text (a
        // cut document is no longer JSON, and shows as text).
        let cut = match std::str::from_utf8(&bytes[..SHOWN_BYTES]) {
            Err(error) if error.error_len().is_none() => error.valid_up_to(),
            _ => SHOWN_BYTES,
        };
        let mut shown = show(Some(&bytes[..cut]), binary);
        shown
            .text
            .push_str(&format!("\n… {} more bytes not shown", bytes.len() - cut));
        return shown;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => match serde_json::from_str::<serde_json::Value>(text) {
            // Only documents gain from pretty-printing; a bare `42` or `"x"` stays as sent.
            Ok(json @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => Shown {
                text: serde_json::to_string_pretty(&json).unwrap_or_else(|_| text.to_string()),
                kind: "json",
            },
            _ => Shown {
                text: text.to_string(),
                kind: "text",
            },
        },
        Err(_) => Shown {
            text: match binary {
                Binary::Hex => bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
                Binary::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
            },
            kind: binary.name(),
        },
    }
}

/// One row of the record browser.
pub struct ShownRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: String,
    pub key: Shown,
    pub value: Shown,
    pub headers: Vec<(String, Shown)>,
}

impl ShownRecord {
    pub fn new(record: &ConsumerRecord, binary: Binary) -> ShownRecord {
        ShownRecord {
            partition: record.partition,
            offset: record.offset,
            timestamp: timestamp(record.timestamp),
            key: show(record.key.as_deref(), binary),
            value: show(record.value.as_deref(), binary),
            headers: record
                .headers
                .iter()
                .map(|header| (header.key.clone(), show(header.value.as_deref(), binary)))
                .collect(),
        }
    }

    /// The value of the last header named `key`, as text.
    pub fn header(&self, key: &str) -> &str {
        self.headers
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map_or("", |(_, shown)| shown.text.as_str())
    }
}

/// Milliseconds since the epoch as RFC 3339 in UTC; what is out of range, as the number.
pub fn timestamp(millis: i64) -> String {
    u64::try_from(millis)
        .ok()
        .map(|millis| std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis))
        .map_or_else(
            || millis.to_string(),
            |time| humantime::format_rfc3339_millis(time).to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_documents_are_pretty_printed_and_other_text_kept() {
        let shown = show(Some(br#"{"id":3,"item":"book"}"#), Binary::Hex);
        assert_eq!(shown.kind, "json");
        assert_eq!(shown.text, "{\n  \"id\": 3,\n  \"item\": \"book\"\n}");
        let shown = show(Some(b"42"), Binary::Hex);
        assert_eq!((shown.kind, shown.text.as_str()), ("text", "42"));
        let shown = show(Some(b"{not json"), Binary::Hex);
        assert_eq!((shown.kind, shown.text.as_str()), ("text", "{not json"));
        assert_eq!(show(None, Binary::Hex).kind, "null");
    }

    #[test]
    fn large_values_are_cut() {
        let large = vec![b'a'; SHOWN_BYTES + 10];
        let shown = show(Some(&large), Binary::Hex);
        assert_eq!(shown.kind, "text");
        assert!(shown.text.ends_with("… 10 more bytes not shown"));
        assert!(shown.text.len() < SHOWN_BYTES + 100);
        // A two-byte character across the cut stays whole text.
        let mut split = vec![b'a'; SHOWN_BYTES - 1];
        split.extend_from_slice("é and more".as_bytes());
        let shown = show(Some(&split), Binary::Hex);
        assert_eq!(shown.kind, "text");
        assert!(
            shown.text.ends_with("… 11 more bytes not shown"),
            "{}",
            &shown.text[SHOWN_BYTES - 8..]
        );
    }

    #[test]
    fn binary_is_shown_as_asked() {
        let bytes = [0xff, 0x00, 0x10];
        assert_eq!(show(Some(&bytes), Binary::Hex).text, "ff0010");
        assert_eq!(show(Some(&bytes), Binary::Base64).text, "/wAQ");
        assert_eq!(show(Some(&bytes), Binary::Base64).kind, "base64");
    }

    #[test]
    fn timestamps_read_as_utc_dates() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(-1), "-1");
    }
}
