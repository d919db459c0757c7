//! `strata produce`'s flags as a user runs them against a real `strata server`: keys, headers,
//! JSON input, delimiters, whole files, the exit summary and the producer limits.
//!
//! What was produced is read back with the client crate's `Consumer` (assigned partitions, from
//! the beginning to the end offsets), so every byte, header, partition and timestamp is checked.
//! Every child process runs under a deadline; waiting for the server is a bounded poll.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use strata_client::{
    AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, Header, TopicPartition,
};

mod support;
use support::*;

/// Runs `strata produce TOPIC ARGUMENTS... --bootstrap BOOTSTRAP` with `stdin`.
fn produce(bootstrap: &str, topic: &str, arguments: &[&str], stdin: &[u8]) -> Result<Output> {
    let mut all = vec!["produce", topic];
    all.extend_from_slice(arguments);
    all.extend_from_slice(&["--bootstrap", bootstrap]);
    run(strata(&all), stdin, COMMAND_TIMEOUT)
}

/// Asserts the command succeeded and printed exactly `stdout`, and nothing on stderr.
fn ensure_success(output: &Output, stdout: &str) -> Result<()> {
    ensure!(
        output.status.success(),
        "{}: {}",
        output.status,
        output.stderr
    );
    ensure!(output.stdout == stdout, "{:?}", output.stdout);
    ensure!(output.stderr.is_empty(), "{:?}", output.stderr);
    Ok(())
}

/// Asserts the command failed with `code` after printing exactly `stdout` and the one line
/// `stderr` (without its newline).
fn ensure_failure(output: &Output, code: i32, stdout: &str, stderr: &str) -> Result<()> {
    ensure!(
        output.status.code() == Some(code),
        "expected exit code {code}, got {}: {}",
        output.status,
        output.stderr
    );
    ensure!(output.stdout == stdout, "{:?}", output.stdout);
    ensure!(
        output.stderr == format!("{stderr}\n"),
        "{:?}",
        output.stderr
    );
    Ok(())
}

/// Every record of `topic`'s `partitions` partitions, by partition and offset: read from the
/// beginning to the end offsets found first.
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Result<Vec<ConsumerRecord>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = ConsumerConfig::builder()
            .bootstrap(bootstrap)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .build()?;
        let mut consumer = Consumer::connect(config).await?;
        let assigned: Vec<TopicPartition> = (0..partitions)
            .map(|partition| TopicPartition::new(topic, partition))
            .collect();
        consumer.assign(assigned.clone())?;
        consumer.seek_to_end(&assigned).await?;
        let mut expected = 0;
        for topic_partition in &assigned {
            expected += consumer.position(topic_partition).await?;
        }
        consumer.seek_to_beginning(&assigned).await?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut records = Vec::new();
        while (records.len() as i64) < expected {
            ensure!(
                Instant::now() < deadline,
                "read {} of {expected} records of {topic}",
                records.len()
            );
            records.extend(consumer.poll(Duration::from_millis(500)).await?);
        }
        records.sort_by_key(|record| (record.partition, record.offset));
        Ok(records)
    })
}

fn header(key: &str, value: &[u8]) -> Header {
    Header {
        key: key.to_string(),
        value: Some(value.to_vec().into()),
    }
}

/// (key, value) of each record, for comparing with expectations.
/// A record's key and value, as borrowed bytes.
type KeyAndValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

fn keys_and_values(records: &[ConsumerRecord]) -> Vec<KeyAndValue<'_>> {
    records
        .iter()
        .map(|record| (record.key.as_deref(), record.value.as_deref()))
        .collect()
}

#[test]
fn keys_headers_delimiters_and_files() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();

    // -k keys every record; -H repeats, and the first '=' splits.
    create_topic(bootstrap, "keyed", "1")?;
    let produced = produce(
        bootstrap,
        "keyed",
        &[
            "-k",
            "user-1",
            "-H",
            "trace=abc",
            "--header",
            "query=a=b",
            "-H",
            "trace=",
        ],
        b"one\ntwo\n",
    )?;
    ensure_success(&produced, "acknowledged 2 records\n")?;
    let records = read_all(bootstrap, "keyed", 1)?;
    ensure!(
        keys_and_values(&records)
            == [
                (Some(&b"user-1"[..]), Some(&b"one"[..])),
                (Some(b"user-1"), Some(b"two"))
            ],
        "{records:?}"
    );
    for record in &records {
        ensure!(
            record.headers
                == [
                    header("trace", b"abc"),
                    header("query", b"a=b"),
                    header("trace", b"")
                ],
            "{record:?}"
        );
    }

    // NUL-separated input keeps newlines and carriage returns inside records; an empty record
    // between two delimiters is a record, a final delimiter ends the last one.
    create_topic(bootstrap, "nul", "1")?;
    let produced = produce(
        bootstrap,
        "nul",
        &["--delimiter", "\\0"],
        b"a\nb\0c\r\n\0\0d\0",
    )?;
    ensure_success(&produced, "acknowledged 4 records\n")?;
    let records = read_all(bootstrap, "nul", 1)?;
    ensure!(
        keys_and_values(&records)
            == [
                (None, Some(&b"a\nb"[..])),
                (None, Some(b"c\r\n")),
                (None, Some(b"")),
                (None, Some(b"d"))
            ],
        "{records:?}"
    );

    // The record separator of ASCII, with a key separator inside each record.
    create_topic(bootstrap, "rs", "1")?;
    let produced = produce(
        bootstrap,
        "rs",
        &["--delimiter", "\\x1e", "--key-separator", "="],
        b"k1=v\n1\x1ek2=v=2",
    )?;
    ensure_success(&produced, "acknowledged 2 records\n")?;
    let records = read_all(bootstrap, "rs", 1)?;
    ensure!(
        keys_and_values(&records)
            == [
                (Some(&b"k1"[..]), Some(&b"v\n1"[..])),
                (Some(b"k2"), Some(b"v=2"))
            ],
        "{records:?}"
    );

    // Whole files, binary ones included, one record each, in order; stdin is not read.
    create_topic(bootstrap, "files", "1")?;
    let directory = tempfile::tempdir()?;
    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let binary_path = directory.path().join("blob.bin");
    let text_path = directory.path().join("note.txt");
    std::fs::write(&binary_path, &binary)?;
    std::fs::write(&text_path, "line 1\nline 2\n")?;
    let produced = produce(
        bootstrap,
        "files",
        &[
            "--file",
            path_text(&binary_path)?,
            "--file",
            path_text(&text_path)?,
            "-k",
            "doc",
        ],
        b"not read\n",
    )?;
    ensure_success(&produced, "acknowledged 2 records\n")?;
    let records = read_all(bootstrap, "files", 1)?;
    ensure!(
        keys_and_values(&records)
            == [
                (Some(&b"doc"[..]), Some(&binary[..])),
                (Some(b"doc"), Some(b"line 1\nline 2\n"))
            ],
        "{records:?}"
    );

    // A missing file fails before anything is sent.
    let missing = directory.path().join("missing");
    let produced = produce(
        bootstrap,
        "files",
        &[
            "--file",
            path_text(&text_path)?,
            "--file",
            path_text(&missing)?,
        ],
        b"",
    )?;
    ensure_failure(
        &produced,
        1,
        "",
        &format!(
            "error: cannot read '{}': No such file or directory (os error 2)",
            missing.display()
        ),
    )?;
    ensure!(read_all(bootstrap, "files", 1)?.len() == 2);
    Ok(())
}

fn path_text(path: &Path) -> Result<&str> {
    path.to_str().context("temporary paths are UTF-8")
}

#[test]
fn json_lines_set_every_field_and_a_malformed_line_stops_the_input() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "json", "3")?;
    let input = concat!(
        r#"{"key":"k1","value":"v1","headers":{"h":"1"},"partition":2,"timestamp":1700000000000}"#,
        "\n",
        r#"{"value":"v2","headers":[["a","x=y"],["a","2"]],"partition":0,"timestamp":1700000000001}"#,
        "\n",
        "\n",
        r#"{"key":"gone","value":null,"partition":1}"#,
        "\n",
        r#"{"key":"k5","value": oops}"#,
        "\n",
        r#"{"value":"never sent","partition":0}"#,
        "\n",
    );
    let produced = produce(
        bootstrap,
        "json",
        &["--input-format", "json", "-H", "source=test"],
        input.as_bytes(),
    )?;
    ensure_failure(
        &produced,
        1,
        "acknowledged 3 records\n",
        "error: line 5: invalid JSON at column 22: expected value",
    )?;
    let records = read_all(bootstrap, "json", 3)?;
    ensure!(
        keys_and_values(&records)
            == [
                (None, Some(&b"v2"[..])),
                (Some(&b"gone"[..]), None),
                (Some(b"k1"), Some(b"v1"))
            ],
        "the lines before the malformed one, and nothing after it: {records:?}"
    );
    let partitions: Vec<i32> = records.iter().map(|record| record.partition).collect();
    ensure!(partitions == [0, 1, 2], "{partitions:?}");
    ensure!(
        records[0].timestamp == 1_700_000_000_001,
        "{:?}",
        records[0]
    );
    ensure!(
        records[2].timestamp == 1_700_000_000_000,
        "{:?}",
        records[2]
    );
    ensure!(
        records[0].headers
            == [
                header("a", b"x=y"),
                header("a", b"2"),
                header("source", b"test")
            ],
        "{:?}",
        records[0]
    );
    ensure!(
        records[1].headers == [header("source", b"test")],
        "{:?}",
        records[1]
    );
    ensure!(
        records[2].headers == [header("h", b"1"), header("source", b"test")],
        "{:?}",
        records[2]
    );

    // A field that does not exist is named, with the line.
    let produced = produce(
        bootstrap,
        "json",
        &["--input-format", "json"],
        b"{\"vaule\":\"v\"}\n",
    )?;
    ensure_failure(
        &produced,
        1,
        "acknowledged 0 records\n",
        "error: line 1: unknown field \"vaule\" (known: key, value, headers, partition, timestamp)",
    )?;
    Ok(())
}

#[test]
fn binary_keys_values_and_headers_round_trip_through_json() -> Result<()> {
    use base64::Engine;
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "binary", "1")?;
    let key = [0x00u8, 0xff, 0x0a, 0x22];
    let value: Vec<u8> = (0..=255u8).rev().collect();
    let header_value = [0xc3u8, 0x28, 0x00];
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02X}")).collect::<String>();
    let line = |encode: &dyn Fn(&[u8]) -> String| {
        serde_json::json!({
            "key": encode(&key),
            "value": encode(&value),
            "headers": [["raw", encode(&header_value)]],
        })
        .to_string()
            + "\n"
    };
    for (encoding, line) in [("base64", line(&base64)), ("hex", line(&hex))] {
        let produced = produce(
            bootstrap,
            "binary",
            &["--input-format", "json", "--binary", encoding],
            line.as_bytes(),
        )?;
        ensure_success(&produced, "acknowledged 1 record\n")?;
    }
    let records = read_all(bootstrap, "binary", 1)?;
    ensure!(records.len() == 2, "{records:?}");
    for record in &records {
        ensure!(record.key.as_deref() == Some(&key[..]), "{record:?}");
        ensure!(record.value.as_deref() == Some(&value[..]), "{record:?}");
        ensure!(
            record.headers == [header("raw", &header_value)],
            "{record:?}"
        );
    }

    let produced = produce(
        bootstrap,
        "binary",
        &["--input-format", "json", "--binary", "base64"],
        b"{\"value\":\"not base64!\"}\n",
    )?;
    ensure!(!produced.status.success(), "{}", produced.stdout);
    ensure!(
        produced
            .stderr
            .starts_with("error: line 1: \"value\" is not base64 ("),
        "{:?}",
        produced.stderr
    );
    Ok(())
}

#[test]
fn a_record_over_max_request_size_fails_and_is_counted() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "limits", "1")?;
    let mut input = b"small\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 2000));
    input.extend_from_slice(b"\nafter\n");
    let produced = produce(
        bootstrap,
        "limits",
        &["--max-request-size", "1024", "--linger", "0ms"],
        &input,
    )?;
    ensure_failure(
        &produced,
        1,
        "acknowledged 1 record\n",
        "error: failed 1 record: line 2: record is 2097 bytes, larger than the limit of 1024 \
         bytes (max_request_size)",
    )?;
    let records = read_all(bootstrap, "limits", 1)?;
    ensure!(
        keys_and_values(&records) == [(None, Some(&b"small"[..]))],
        "{records:?}"
    );
    Ok(())
}

#[test]
fn bad_flags_fail_before_connecting() -> Result<()> {
    // Nothing listens there: a command that tried to connect would say so instead.
    let address = free_address()?;
    let usage_errors: &[(&[&str], &str)] = &[
        (
            &["--max-request-size", "1000"],
            "invalid value '1000' for '--max-request-size <BYTES>': 1000 is not in 1024..=134217728",
        ),
        (
            &["--max-request-size", "134217729"],
            "134217729 is not in 1024..=134217728",
        ),
        (&["--max-request-size", "1MiB"], "invalid digit"),
        (
            &["--linger", "60001ms"],
            "invalid value '60001ms' for '--linger <DURATION>': '60001ms' is longer than the \
             longest allowed, 1m",
        ),
        (&["--linger", "5x"], "'5x' is not a duration"),
        (
            &["--linger", "5"],
            "invalid value '5' for '--linger <DURATION>': '5' has no unit: write 5ms, 5s or 5m",
        ),
        (
            &["--timeout", "99ms"],
            "'99ms' is shorter than the shortest allowed, 100ms",
        ),
        // The old spellings read their old unit, within the same bounds.
        (
            &["--timeout-ms", "99"],
            "'99' is shorter than the shortest allowed, 100ms",
        ),
        (
            &["--linger-ms", "5ms"],
            "'5ms' is not a whole number of milliseconds",
        ),
        (
            &["--linger", "5ms", "--linger-ms", "5"],
            "the argument '--linger <DURATION>' cannot be used with '--linger-ms <MS>'",
        ),
        (&["-H", "=v"], "'=v' has an empty header key"),
        (&["--header", "novalue"], "'novalue' is not KEY=VALUE"),
        (&["-k", "k", "--key-separator", ":"], "cannot be used with"),
        (&["--delimiter", ""], "must not be empty"),
        (&["--delimiter", "\\q"], "unknown escape '\\q'"),
        (&["--delimiter", "\\x4"], "'\\x4' needs two hex digits"),
        (&["--file", "f", "--delimiter", ","], "cannot be used with"),
        (
            &["--file", "f", "--input-format", "json"],
            "cannot be used with",
        ),
        (&["--input-format", "yaml"], "yaml"),
        (&["--binary", "base32"], "base32"),
        (
            &["--compression", "brotli"],
            "invalid value 'brotli' for '--compression <CODEC>'",
        ),
    ];
    for (arguments, expected) in usage_errors {
        let output = produce(&address, "t", arguments, b"")?;
        ensure!(
            output.status.code() == Some(2),
            "{arguments:?}: {} {}",
            output.status,
            output.stderr
        );
        let line = output.stderr.trim_end();
        ensure!(
            line.starts_with("error: ") && !line.contains('\n') && line.contains(expected),
            "{arguments:?}: {line:?}"
        );
        ensure!(
            output.stdout.is_empty(),
            "{arguments:?}: {:?}",
            output.stdout
        );
    }

    let combinations: &[(&[&str], &str)] = &[
        (
            &["--linger", "1s", "--timeout", "1000ms"],
            "error: --linger (1s) must be shorter than --timeout (1s)",
        ),
        (
            &["--linger-ms", "2000", "--timeout-ms", "1500"],
            "error: --linger (2s) must be shorter than --timeout (1s 500ms)",
        ),
        (
            &["-k", "k", "--input-format", "json"],
            "error: --key cannot be used with --input-format json: each line has its key",
        ),
        (
            &["--input-format", "json", "--delimiter", "\\0"],
            "error: --delimiter cannot be used with --input-format json: it reads lines",
        ),
        (
            &["--binary", "hex"],
            "error: --binary applies to --input-format json only",
        ),
        (
            &["--key-separator", ""],
            "error: --key-separator must not be empty",
        ),
    ];
    for (arguments, expected) in combinations {
        let output = produce(&address, "t", arguments, b"")?;
        ensure_failure(&output, 1, "", expected).with_context(|| format!("{arguments:?}"))?;
    }
    Ok(())
}

/// The segment files (`*.log`) under `directory`, at any depth.
fn segment_files(directory: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(segment_files(&path)?);
        } else if path.extension().is_some_and(|extension| extension == "log") {
            found.push(path);
        }
    }
    Ok(found)
}

#[test]
fn compression_zstd_round_trips_and_is_stored_compressed() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let data_dir = directory.path().join("data");
    let server = start_server_in(&data_dir, &directory.path().join("server.log"), &[])?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "zstd", "1")?;
    let lines: String = (0..300)
        .map(|index| format!("{{\"event\":\"page-view\",\"index\":{index}}}\n"))
        .collect();
    let produced = produce(
        bootstrap,
        "zstd",
        &["--compression", "zstd", "--linger", "100ms"],
        lines.as_bytes(),
    )?;
    ensure_success(&produced, "acknowledged 300 records\n")?;

    // `strata consume` needs nothing to read it: the client decompresses.
    let consumed = run_args(&[
        "consume",
        "zstd",
        "--from-beginning",
        "-e",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(consumed.status.success(), "{}", consumed.stderr);
    ensure!(consumed.stdout == lines, "{:?}", consumed.stdout);
    ensure!(
        consumed.stderr == "consumed 300 records\n",
        "{}",
        consumed.stderr
    );

    // On disk the batches are zstd (attributes bits 0-2 = 4), and far smaller than the text.
    let segments: Vec<_> = segment_files(&data_dir)?
        .into_iter()
        .filter(|path| {
            path.parent()
                .is_some_and(|parent| parent.ends_with("zstd-0"))
        })
        .collect();
    ensure!(segments.len() == 1, "{segments:?}");
    let stored = std::fs::read(&segments[0])?;
    // Walks the batches by their length fields; a zeroed tail (a preallocated segment) ends them.
    let mut end = 0;
    while let Some(length) = stored.get(end + 8..end + 12) {
        let length = i32::from_be_bytes(length.try_into()?);
        if length <= 0 {
            break;
        }
        ensure!(
            stored[end + 22] & 0x07 == 4,
            "the batch at {end} is not zstd"
        );
        end += 12 + usize::try_from(length)?;
    }
    ensure!(
        end > 0 && end * 3 < lines.len(),
        "{end} bytes stored for {} bytes of records",
        lines.len()
    );
    Ok(())
}

#[test]
fn help_describes_every_flag_with_its_default() -> Result<()> {
    let output = run_args(&["produce", "--help"])?;
    ensure!(output.status.success(), "{}", output.stderr);
    for expected in [
        "-k, --key <KEY>",
        "-H, --header <KEY=VALUE>",
        "--key-separator <SEP>",
        "--input-format <FORMAT>",
        "[default: text]",
        "--binary <ENCODING>",
        "- base64:",
        "- hex:",
        "- json:",
        "--delimiter <D>",
        "[default: \\n]",
        "--file <PATH>",
        "--acks <all|1|0>",
        "[default: all]",
        "--partition <P>",
        "--timeout <DURATION>",
        "[default: 30s]",
        "--max-request-size <BYTES>",
        "[default: 1048576]",
        "--linger <DURATION>",
        "[default: 5ms]",
        "--compression <CODEC>",
        "[default: none]",
        "- zstd:",
        "Example:",
    ] {
        ensure!(
            output.stdout.contains(expected),
            "--help lacks {expected:?}:\n{}",
            output.stdout
        );
    }
    // The old spellings still work but are not offered.
    for hidden in ["--timeout-ms", "--linger-ms"] {
        ensure!(
            !output.stdout.contains(hidden),
            "--help shows {hidden}:\n{}",
            output.stdout
        );
    }
    Ok(())
}

/// Sends `signal` (INT or TERM) to `child`.
fn signal(child: &Child, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .context("running kill")?;
    ensure!(status.success(), "kill -{signal} failed: {status}");
    Ok(())
}

#[test]
fn sigint_delivers_the_whole_records_read_and_reports() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "interrupted", "1")?;
    let mut producer = strata(&[
        "produce",
        "interrupted",
        "--delimiter",
        "\\x1e",
        "-H",
        "via=signal",
        "--bootstrap",
        bootstrap,
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()?;
    let mut input = producer.stdin.take().context("stdin is piped")?;
    // Two whole records and the start of a third, whose delimiter never comes.
    input.write_all(b"a\x1eb\x1epartial")?;
    input.flush()?;
    let stdout = drain(producer.stdout.take().context("stdout is piped")?);
    let stderr = drain(producer.stderr.take().context("stderr is piped")?);
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while read_all(bootstrap, "interrupted", 1)?.len() < 2 {
        ensure!(Instant::now() < deadline, "the two records never arrived");
        // Poll interval while waiting for the records to be stored.
        thread::sleep(Duration::from_millis(50));
    }
    signal(&producer, "INT")?;
    let status = wait_for_exit(&mut producer, "the interrupted producer", COMMAND_TIMEOUT)?;
    drop(input);
    let stdout = drained(stdout, "stdout")?;
    let stderr = drained(stderr, "stderr")?;
    ensure!(status.success(), "{status}: {stderr}");
    ensure!(stdout == "acknowledged 2 records\n", "{stdout:?}");
    ensure!(
        stderr == "stopped by a signal after reading 2 records\n",
        "{stderr:?}"
    );
    let records = read_all(bootstrap, "interrupted", 1)?;
    ensure!(
        keys_and_values(&records) == [(None, Some(&b"a"[..])), (None, Some(b"b"))],
        "the partial record is not sent: {records:?}"
    );
    ensure!(
        records
            .iter()
            .all(|record| record.headers == [header("via", b"signal")]),
        "{records:?}"
    );
    Ok(())
}
