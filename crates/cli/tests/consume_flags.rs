//! `strata consume`'s flags for where to start and stop, which topics to read and how to print
//! them, run as a user runs them against a real `strata server` on loopback.
//!
//! Every child process runs under a deadline and is killed if it overstays; waiting for the
//! server is a bounded poll of `strata topic list`. Reads end with `--exit-at-end`, so no test
//! waits for an idle timeout, and output is compared exactly (sorted where several partitions
//! interleave).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use strata_client::{Producer, ProducerConfig, ProducerRecord};

mod support;
use support::*;

/// Runs `strata consume` with `arguments` against `bootstrap` and checks it succeeded.
fn consume(bootstrap: &str, arguments: &[&str]) -> Result<Output> {
    let mut all = vec!["consume"];
    all.extend_from_slice(arguments);
    all.extend_from_slice(&["--bootstrap", bootstrap]);
    let output = run_args(&all)?;
    ensure!(output.status.success(), "{all:?} failed: {}", output.stderr);
    Ok(output)
}

/// Runs `strata consume` and checks its exact output: `stdout`, and on stderr only the closing
/// "consumed N records" line.
fn expect_consumed(
    bootstrap: &str,
    arguments: &[&str],
    stdout: &[u8],
    records: usize,
) -> Result<()> {
    let output = consume(bootstrap, arguments)?;
    ensure!(
        output.stdout_bytes == stdout,
        "{arguments:?}: {:?}",
        output.stdout.clone()
    );
    let closing = format!(
        "consumed {records} record{}\n",
        if records == 1 { "" } else { "s" }
    );
    ensure!(
        output.stderr == closing,
        "{arguments:?}: {:?}",
        output.stderr
    );
    Ok(())
}

/// As `expect_consumed`, for records of several partitions, which may interleave in any order:
/// stdout's lines, sorted, are `lines`.
fn expect_consumed_lines(bootstrap: &str, arguments: &[&str], lines: &[&str]) -> Result<()> {
    let output = consume(bootstrap, arguments)?;
    ensure!(
        output.sorted_lines() == lines,
        "{arguments:?}: {:?}",
        output.stdout.clone()
    );
    let closing = format!(
        "consumed {} record{}\n",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" }
    );
    ensure!(
        output.stderr == closing,
        "{arguments:?}: {:?}",
        output.stderr
    );
    Ok(())
}

/// Sends `records` with the client crate, for what `strata produce` cannot write: binary
/// values, headers, timestamps.
fn produce_records(bootstrap: &str, records: Vec<ProducerRecord>) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let config = ProducerConfig::builder().bootstrap(bootstrap).build()?;
        let producer = Producer::connect(config).await?;
        for record in records {
            let delivery = producer.send(record).await?;
            tokio::time::timeout(COMMAND_TIMEOUT, delivery)
                .await
                .context("the record was not acknowledged in time")??;
        }
        producer.close().await?;
        Ok(())
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_millis() as i64
}

#[test]
fn bad_flag_values_fail_with_one_line_before_connecting() -> Result<()> {
    // A bootstrap nothing listens on: if any of these tried to connect, the error would say so.
    let address = free_address()?;
    let cases: &[(&[&str], &str)] = &[
        (
            &["t", "--from", "10x"],
            "error: invalid value '10x' for '--from <TIME>': '10x' is not a time: use ms since \
             the epoch, an RFC 3339 time (2024-05-01T12:00:00Z) or a duration (90s, 10m, 2h, \
             1d, 1h30m) (see --help)",
        ),
        (
            &["t", "--from", "2024-02-30T00:00:00Z"],
            "error: invalid value '2024-02-30T00:00:00Z' for '--from <TIME>': \
             '2024-02-30T00:00:00Z' is not an RFC 3339 time like 2024-05-01T12:00:00Z (see --help)",
        ),
        (
            &["t", "--format", "%k %x"],
            "error: invalid value '%k %x' for '--format <FORMAT>': unknown token '%x' (tokens: \
             %t %p %o %k %v %T %h %K %S %%) (see --help)",
        ),
        (
            &["t", "--format", "xml"],
            "error: invalid value 'xml' for '--format <FORMAT>' [possible values: value, json] \
             (see --help)",
        ),
        (
            &["t", "--offset", "-x"],
            "error: invalid value '-x' for '--offset <N|-N|earliest|latest>': '-x' is not an \
             offset: use N, -N, earliest or latest (see --help)",
        ),
        (
            &["t", "--binary", "octal"],
            "error: invalid value 'octal' for '--binary <ENCODING>' [possible values: text, \
             base64, hex] (see --help)",
        ),
        (
            &["t", "-e", "--group", "g"],
            "error: the argument '--exit-at-end' cannot be used with '--group <G>' (see --help)",
        ),
        (
            &["t", "--share-group", "g", "--exit-at-end"],
            "error: the argument '--share-group <G>' cannot be used with '--exit-at-end' (see \
             --help)",
        ),
        (
            &["t", "--from", "1h", "--offset", "-3"],
            "error: the argument '--from <TIME>' cannot be used with '--offset \
             <N|-N|earliest|latest>' (see --help)",
        ),
        (
            &["--regex", "orders("],
            "error: invalid value 'orders(' for '--regex <PATTERN>': not a valid regular \
             expression: regex parse error: ^(?:orders()$ ^ error: unclosed group (see --help)",
        ),
    ];
    for (arguments, expected) in cases {
        let mut all = vec!["consume"];
        all.extend_from_slice(arguments);
        all.extend_from_slice(&["--bootstrap", &address]);
        ensure_usage_error(arguments, &run_args(&all)?, expected)?;
    }
    Ok(())
}

#[test]
fn every_new_flag_is_described_in_the_help() -> Result<()> {
    let help = run_args(&["consume", "--help"])?;
    ensure!(help.status.success(), "{}", help.stderr);
    let text = help.stdout.clone();
    for flag in [
        "[TOPIC]...",
        "--regex <PATTERN>",
        "--offset <N|-N|earliest|latest>",
        "--from <TIME>",
        "-e, --exit-at-end",
        "--format <FORMAT>",
        "[default: value]",
        "--binary <ENCODING>",
        "[default: text]",
        "%h headers",
    ] {
        ensure!(text.contains(flag), "--help lacks {flag:?}:\n{text}");
    }
    Ok(())
}

#[test]
fn offsets_count_from_either_end_and_exit_at_end_stops_at_the_end() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "ends", "2")?;
    // Partition 0 holds a to d at offsets 0 to 3; partition 1 holds x at offset 0.
    produce_lines(bootstrap, "ends", "0", "a\nb\nc\nd\n")?;
    produce_lines(bootstrap, "ends", "1", "x\n")?;

    expect_consumed(
        bootstrap,
        &["ends", "--partition", "0", "--from-beginning", "-e"],
        b"a\nb\nc\nd\n",
        4,
    )?;
    expect_consumed(
        bootstrap,
        &["ends", "--partition", "0", "--offset", "-2", "-e"],
        b"c\nd\n",
        2,
    )?;
    // -N applies to each partition and stops at the log start of a shorter one.
    let numbered = ["--format", "%p:%o %v"];
    expect_consumed_lines(
        bootstrap,
        &[&["ends", "--offset", "-2", "--exit-at-end"][..], &numbered].concat(),
        &["0:2 c", "0:3 d", "1:0 x"],
    )?;
    expect_consumed_lines(
        bootstrap,
        &[&["ends", "--offset", "earliest", "-e"][..], &numbered].concat(),
        &["0:0 a", "0:1 b", "0:2 c", "0:3 d", "1:0 x"],
    )?;
    expect_consumed(bootstrap, &["ends", "--offset", "latest", "-e"], b"", 0)?;
    // The existing spelling still reads from an offset on, and -e ends it at the end.
    expect_consumed(
        bootstrap,
        &["ends", "--partition", "0", "--offset", "1", "-e"],
        b"b\nc\nd\n",
        3,
    )?;

    // An offset outside the one partition asked for is still an error with -e.
    let out_of_range = run_args(&[
        "consume",
        "ends",
        "--partition",
        "0",
        "--offset",
        "99",
        "-e",
        "--bootstrap",
        bootstrap,
    ])?;
    let line = single_error_line(&out_of_range)?;
    ensure!(
        line == "error: cannot read topic 'ends': OFFSET_OUT_OF_RANGE (1): offset 99 is out of \
                 range for ends-0: it holds offsets 0 to 3",
        "{line}"
    );

    // An empty topic ends at once.
    create_topic(bootstrap, "empty", "3")?;
    expect_consumed(bootstrap, &["empty", "--from-beginning", "-e"], b"", 0)?;
    Ok(())
}

#[test]
fn several_topics_a_regex_and_json_with_the_topic() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    for topic in ["orders.eu", "orders.us", "payments"] {
        create_topic(bootstrap, topic, "1")?;
    }
    produce_lines(bootstrap, "orders.eu", "0", "book\n")?;
    produce_lines(bootstrap, "orders.us", "0", "pen\nlamp\n")?;
    produce_lines(bootstrap, "payments", "0", "paid\n")?;

    let by_topic = ["--format", "%t:%v"];
    expect_consumed_lines(
        bootstrap,
        &[
            &["orders.eu", "payments", "--from-beginning", "-e"][..],
            &by_topic,
        ]
        .concat(),
        &["orders.eu:book", "payments:paid"],
    )?;
    expect_consumed_lines(
        bootstrap,
        &[
            "--regex",
            r"orders\..*",
            "--from-beginning",
            "-e",
            "--format",
            "%t %p:%o %v",
        ],
        &[
            "orders.eu 0:0 book",
            "orders.us 0:0 pen",
            "orders.us 0:1 lamp",
        ],
    )?;
    // A topic named and a pattern together, each topic read once.
    expect_consumed_lines(
        bootstrap,
        &[
            &[
                "payments",
                "orders.eu",
                "--regex",
                r"orders\.e.",
                "--offset",
                "-1",
                "-e",
            ][..],
            &by_topic,
        ]
        .concat(),
        &["orders.eu:book", "payments:paid"],
    )?;

    // The pattern must match a whole name, and one that matches nothing is an error.
    let none = run_args(&["consume", "--regex", "orders.e", "--bootstrap", bootstrap])?;
    let line = single_error_line(&none)?;
    ensure!(
        line == "error: no topic matches --regex 'orders.e'",
        "{line}"
    );

    // A group subscribes to every topic named or matched.
    let group = [
        "payments",
        "--regex",
        r"orders\.us",
        "--group",
        "everything",
        "--from-beginning",
        "--max-messages",
        "3",
        "--timeout",
        "20s",
    ];
    expect_consumed_lines(
        bootstrap,
        &[&group[..], &by_topic].concat(),
        &["orders.us:lamp", "orders.us:pen", "payments:paid"],
    )?;

    let json_lines = consume(
        bootstrap,
        &["orders.us", "--from-beginning", "-e", "--format", "json"],
    )?;
    let records: Vec<Value> = json_lines
        .stdout
        .clone()
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("one JSON object per line")?;
    ensure!(records.len() == 2, "{:?}", json_lines.stdout.clone());
    for (offset, (record, value)) in records.iter().zip(["pen", "lamp"]).enumerate() {
        ensure!(record["topic"] == "orders.us", "{record}");
        ensure!(record["partition"] == 0, "{record}");
        ensure!(record["offset"] == offset, "{record}");
        ensure!(record["value"] == value, "{record}");
        ensure!(record["key"] == Value::Null, "{record}");
    }
    Ok(())
}

#[test]
fn format_strings_and_binary_values_print_exactly() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "bytes", "1")?;
    produce_records(
        bootstrap,
        vec![
            ProducerRecord::new("bytes", "book")
                .key("alice")
                .partition(0)
                .timestamp(1_700_000_000_000)
                .header("trace", "abc")
                .header("source", "web"),
            ProducerRecord::new("bytes", vec![0xff, 0x00, 0x41])
                .key(vec![0xfe])
                .partition(0)
                .timestamp(1_700_000_000_001),
        ],
    )?;

    let everything = ["bytes", "--from-beginning", "-e"];
    let with = |more: &[&'static str]| [&everything[..], more].concat();
    expect_consumed(
        bootstrap,
        &with(&["--format", r"%k\t%v\t%p:%o %T %h"]),
        b"alice\tbook\t0:0 1700000000000 trace=abc,source=web\n\
          \xfe\t\xff\x00\x41\t0:1 1700000000001 \n",
        2,
    )?;
    expect_consumed(
        bootstrap,
        &with(&["--format", r"%t %K %S 100%%\n"]),
        b"bytes 5 4 100%\nbytes 1 3 100%\n",
        2,
    )?;
    expect_consumed(
        bootstrap,
        &with(&["--binary", "base64"]),
        b"Ym9vaw==\n/wBB\n",
        2,
    )?;
    expect_consumed(
        bootstrap,
        &with(&["--binary", "hex", "--format", "%k %v %h"]),
        b"616c696365 626f6f6b trace=616263,source=776562\nfe ff0041 \n",
        2,
    )?;

    let json_lines = |binary: &'static str| -> Result<Vec<Value>> {
        let output = consume(bootstrap, &with(&["--format", "json", "--binary", binary]))?;
        output
            .stdout
            .clone()
            .lines()
            .map(|line| serde_json::from_str(line).context("one JSON object per line"))
            .collect()
    };
    let text = json_lines("text")?;
    ensure!(
        text[1]
            == json!({
                "topic": "bytes",
                "partition": 0,
                "offset": 1,
                "timestamp": 1_700_000_000_001i64,
                "key": { "base64": "/g==" },
                "value": { "base64": "/wBB" },
                "headers": [],
            }),
        "{}",
        text[1]
    );
    let hex = json_lines("hex")?;
    ensure!(
        hex[0]["value"] == "626f6f6b" && hex[1]["value"] == "ff0041" && hex[1]["key"] == "fe",
        "{hex:?}"
    );
    ensure!(
        hex[0]["headers"]
            == json!([{ "key": "trace", "value": "616263" }, { "key": "source", "value": "776562" }]),
        "{}",
        hex[0]
    );
    let base64 = json_lines("base64")?;
    ensure!(
        base64[0]["topic"] == "bytes" && base64[1]["value"] == "/wBB",
        "{base64:?}"
    );
    Ok(())
}

#[test]
fn from_reads_records_since_a_duration_ago_or_a_point_in_time() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "recent", "1")?;
    let now = now_ms();
    let record = |value: &str, timestamp: i64| {
        ProducerRecord::new("recent", value.to_string())
            .partition(0)
            .timestamp(timestamp)
    };
    produce_records(
        bootstrap,
        vec![
            record("three hours ago", now - 3 * 3_600_000),
            record("two hours ago", now - 2 * 3_600_000),
            record("half an hour ago", now - 1_800_000),
            record("now", now),
        ],
    )?;

    expect_consumed(
        bootstrap,
        &["recent", "--from", "1h", "-e"],
        b"half an hour ago\nnow\n",
        2,
    )?;
    expect_consumed(
        bootstrap,
        &["recent", "--from", "2h30m", "-e"],
        b"two hours ago\nhalf an hour ago\nnow\n",
        3,
    )?;
    // Milliseconds since the epoch, as --from-timestamp takes them.
    let since = (now - 2 * 3_600_000).to_string();
    expect_consumed(
        bootstrap,
        &["recent", "--from", &since, "-e"],
        b"two hours ago\nhalf an hour ago\nnow\n",
        3,
    )?;
    Ok(())
}
