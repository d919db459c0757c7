//! Cutting `strata produce`'s input into records: `--delimiter` and its escapes.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Parses `--delimiter`: one or more bytes, with `\n`, `\t`, `\r`, `\0`, `\\` and `\xHH`
/// understood; any other character stands for its UTF-8 bytes.
pub fn parse_delimiter(text: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buffer = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            continue;
        }
        let byte = match chars.next() {
            Some('n') => b'\n',
            Some('t') => b'\t',
            Some('r') => b'\r',
            Some('0') => 0,
            Some('\\') => b'\\',
            Some('x') => {
                let digits: String = chars.by_ref().take(2).collect();
                if digits.len() != 2 {
                    return Err(format!("'\\x{digits}' needs two hex digits"));
                }
                u8::from_str_radix(&digits, 16)
                    .map_err(|_| format!("'\\x{digits}' needs two hex digits"))?
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape '\\{other}' (known: \\n \\t \\r \\0 \\\\ \\xHH)"
                ));
            }
            None => return Err("ends with a lone '\\' (write '\\\\' for a backslash)".into()),
        };
        bytes.push(byte);
    }
    if bytes.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(bytes)
}

/// Reads records separated by a delimiter of one or more bytes. Input ending with the
/// delimiter has no empty record after it, as with lines. With the newline delimiter a `\r`
/// before it is dropped too, so CRLF input reads as lines.
pub struct Splitter<R> {
    reader: BufReader<R>,
    delimiter: Vec<u8>,
    strip_carriage_return: bool,
    /// The record being read. Kept here, so a read cut short (by a signal) loses nothing that a
    /// later call would need.
    pending: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Splitter<R> {
    pub fn new(reader: R, delimiter: Vec<u8>) -> Splitter<R> {
        Splitter {
            reader: BufReader::with_capacity(64 * 1024, reader),
            strip_carriage_return: delimiter == b"\n",
            delimiter,
            pending: Vec::new(),
        }
    }

    /// The next record, or `None` at the end of the input.
    pub async fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let last = *self.delimiter.last().expect("a delimiter is never empty");
        loop {
            let read = self.reader.read_until(last, &mut self.pending).await?;
            if read == 0 {
                return Ok((!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending)));
            }
            if self.pending.ends_with(&self.delimiter) {
                let mut record = std::mem::take(&mut self.pending);
                record.truncate(record.len() - self.delimiter.len());
                if self.strip_carriage_return && record.last() == Some(&b'\r') {
                    record.pop();
                }
                return Ok(Some(record));
            }
        }
    }
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_understand_escapes() {
        assert_eq!(parse_delimiter("\\n"), Ok(b"\n".to_vec()));
        assert_eq!(parse_delimiter("\\0"), Ok(vec![0]));
        assert_eq!(parse_delimiter("\\x1e"), Ok(vec![0x1e]));
        assert_eq!(parse_delimiter("\\xFF"), Ok(vec![0xff]));
        assert_eq!(parse_delimiter("\\r\\n"), Ok(b"\r\n".to_vec()));
        assert_eq!(parse_delimiter("\\t|\\\\"), Ok(b"\t|\\".to_vec()));
        assert_eq!(parse_delimiter("--"), Ok(b"--".to_vec()));
        assert_eq!(parse_delimiter("§"), Ok("§".as_bytes().to_vec()));
        assert!(parse_delimiter("").is_err());
        assert!(parse_delimiter("\\").is_err());
        assert!(parse_delimiter("\\q").is_err());
        assert!(parse_delimiter("\\x1").is_err());
        assert!(parse_delimiter("\\xzz").is_err());
    }

    async fn split(input: &[u8], delimiter: &[u8]) -> Vec<Vec<u8>> {
        let mut splitter = Splitter::new(input, delimiter.to_vec());
        let mut records = Vec::new();
        while let Some(record) = splitter.next().await.expect("reading a slice") {
            records.push(record);
        }
        records
    }

    #[tokio::test]
    async fn input_splits_at_every_delimiter() {
        assert_eq!(
            split(b"a\nb\r\n\nc", b"\n").await,
            [&b"a"[..], b"b", b"", b"c"]
        );
        assert_eq!(split(b"a\nb\n", b"\n").await, [b"a", b"b"]);
        assert_eq!(split(b"", b"\n").await, Vec::<Vec<u8>>::new());
        assert_eq!(split(b"a\r\0b\0", b"\0").await, [&b"a\r"[..], b"b"]);
        assert_eq!(split(b"xaab", b"ab").await, [b"xa"]);
        assert_eq!(split(b"aaa", b"aa").await, [&b""[..], b"a"]);
        assert_eq!(split(b"1--2-3--", b"--").await, [&b"1"[..], b"2-3"]);
    }

    #[test]
    fn find_locates_the_first_occurrence() {
        assert_eq!(find(b"k=>v=>w", b"=>"), Some(1));
        assert_eq!(find(b"kv", b":"), None);
    }
}
