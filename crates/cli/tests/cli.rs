//! The `strata` binary as a user runs it: help texts, error output, and a whole session against a
//! real `strata server`.
//!
//! Every child process runs under a deadline and is killed if it overstays; waiting for the
//! server is a bounded poll of `strata topic list`, never a fixed sleep.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

mod support;
use support::*;

/// The lines of `pipe` as they arrive, for waiting on a line with a deadline.
fn lines_of(pipe: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (lines_sink, lines) = std::sync::mpsc::channel();
    thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if lines_sink.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

#[test]
fn every_command_help_shows_an_example() -> Result<()> {
    let commands: &[&[&str]] = &[
        &[],
        &["server"],
        &["dev"],
        &["topic", "create"],
        &["topic", "list"],
        &["topic", "describe"],
        &["topic", "delete"],
        &["topic", "alter"],
        &["produce"],
        &["consume"],
        &["cluster", "status"],
        &["group", "list"],
        &["group", "describe"],
        &["group", "reset-offsets"],
        &["group", "delete"],
        &["dlq", "list"],
        &["dlq", "peek"],
        &["dlq", "redrive"],
        &["bench"],
        &["bench", "produce"],
        &["bench", "consume"],
        &["bench", "e2e"],
        &["bench", "group"],
        &["bench", "share"],
    ];
    for path in commands {
        let mut arguments = path.to_vec();
        arguments.push("--help");
        let output = run_args(&arguments)?;
        ensure!(
            output.status.success(),
            "{arguments:?} failed: {}",
            output.stderr
        );
        ensure!(
            output.stdout.contains("Example:"),
            "{arguments:?} --help has no example:\n{}",
            output.stdout
        );
        ensure!(
            output.stdout.contains("strata "),
            "{arguments:?} example does not show a command"
        );
    }
    Ok(())
}

#[test]
fn client_commands_document_the_bootstrap_flag_and_its_environment_variable() -> Result<()> {
    for path in [
        &["topic", "list"][..],
        &["produce"],
        &["consume"],
        &["cluster", "status"],
        &["bench", "produce"],
        &["bench", "consume"],
        &["bench", "e2e"],
        &["bench", "group"],
    ] {
        let mut arguments = path.to_vec();
        arguments.push("--help");
        let output = run_args(&arguments)?;
        ensure!(output.stdout.contains("--bootstrap"), "{arguments:?}");
        ensure!(output.stdout.contains("STRATA_BOOTSTRAP"), "{arguments:?}");
        ensure!(output.stdout.contains("127.0.0.1:7070"), "{arguments:?}");
    }
    Ok(())
}

#[test]
fn an_unreachable_bootstrap_fails_with_one_line() -> Result<()> {
    let address = free_address()?;
    let output = run_args(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "0",
        "--replication-factor",
        "1",
        "--bootstrap",
        &address,
    ])?;
    let line = single_error_line(&output)?;
    ensure!(
        line.contains(&address),
        "the error names the address: {line}"
    );
    ensure!(
        line.contains("is the cluster running? `strata dev` starts one"),
        "the error says what to try: {line}"
    );
    // A URL where host:port belongs is caught before any connection, with the fix.
    let url = run_args(&["topic", "list", "--bootstrap", "http://127.0.0.1:7070"])?;
    let line = single_error_line(&url)?;
    ensure!(
        line.contains("has a 'http://' scheme; give host:port, as in '127.0.0.1:7070'"),
        "{line}"
    );
    Ok(())
}

#[test]
fn the_bootstrap_comes_from_the_environment() -> Result<()> {
    let address = free_address()?;
    let mut command = strata(&["topic", "list"]);
    command.env("STRATA_BOOTSTRAP", &address);
    let output = run(command, "", COMMAND_TIMEOUT)?;
    let line = single_error_line(&output)?;
    ensure!(line.contains(&address), "{line}");
    Ok(())
}

#[test]
fn bad_arguments_fail_before_connecting() -> Result<()> {
    // A bootstrap nothing listens on: if any of these tried to connect, the error would say so.
    let address = free_address()?;
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "topic",
                "create",
                "t",
                "--partitions",
                "1",
                "--replication-factor",
                "1",
                "--config",
                "retention.ms",
            ],
            "KEY=VALUE",
        ),
        (&["topic", "alter", "t"], "required"),
        (
            &[
                "topic",
                "create",
                "t",
                "--partitions",
                "many",
                "--replication-factor",
                "1",
            ],
            "many",
        ),
        (&["produce", "t", "--acks", "2"], "all, 1, 0"),
        (&["produce", "t", "--partition", "-1"], "-1"),
        (
            &["consume", "t", "--group", "g", "--offset", "1"],
            "cannot be used with",
        ),
        (
            &["group", "reset-offsets", "g", "--topic", "t"],
            "--to-earliest",
        ),
        (
            &["consume", "t", "--offset", "1", "--from-beginning"],
            "cannot be used with",
        ),
        (&["consume", "t", "--format", "xml"], "xml"),
        (&["dev", "--nodes", "0"], "0"),
        (
            &[
                "server",
                "--node-id",
                "1",
                "--data-dir",
                "d",
                "--listen",
                "127.0.0.1:0",
                "--worker-threads",
                "0",
            ],
            "0",
        ),
        (
            &[
                "server",
                "--node-id",
                "1",
                "--data-dir",
                "d",
                "--listen",
                "127.0.0.1:0",
                "--voters",
                "1@nowhere",
            ],
            "HOST:PORT",
        ),
        (
            &["topic", "list", "--bootstrap", "no-port-here"],
            "host:port",
        ),
        (&["no-such-command"], "no-such-command"),
        (
            &[
                "bench",
                "produce",
                "--topic",
                "t",
                "--records",
                "0",
                "--record-size",
                "1",
            ],
            "0",
        ),
        (
            &[
                "bench",
                "produce",
                "--topic",
                "t",
                "--records",
                "1",
                "--record-size",
                "1",
                "--acks",
                "2",
            ],
            "all, 1, 0",
        ),
        (
            &[
                "bench",
                "produce",
                "--topic",
                "t",
                "--records",
                "1",
                "--record-size",
                "1",
                "--producers",
                "4",
                "--rate",
                "2",
            ],
            "--rate 2",
        ),
        (&["bench", "produce", "--topic", "t"], "required"),
        (&["bench", "e2e", "--topic", "t", "--record-size", "8"], "8"),
        (
            &["bench", "consume", "--topic", "t", "--consumers", "0"],
            "0",
        ),
    ];
    for (arguments, expected) in cases {
        let mut arguments = arguments.to_vec();
        let takes_bootstrap = !matches!(
            arguments.first(),
            Some(&"dev" | &"server" | &"no-such-command")
        ) && !arguments.contains(&"--bootstrap");
        if takes_bootstrap {
            arguments.extend(["--bootstrap", address.as_str()]);
        }
        let output = run_args(&arguments)?;
        let line = single_error_line(&output).with_context(|| format!("{arguments:?}"))?;
        ensure!(
            line.contains(expected),
            "{arguments:?}: expected '{expected}' in {line:?}"
        );
        ensure!(
            !line.contains("cannot connect"),
            "{arguments:?} connected before checking: {line}"
        );
    }
    Ok(())
}

#[test]
fn usage_errors_keep_clap_hints_on_their_one_line() -> Result<()> {
    let cases: &[(&[&str], &str)] = &[
        (
            &["consme"],
            "error: unrecognized subcommand 'consme'; tip: a similar subcommand exists: \
             'consume' (see --help)",
        ),
        (
            &["consume", "t", "--format", "xml"],
            "error: invalid value 'xml' for '--format <FORMAT>' [possible values: value, json] \
             (see --help)",
        ),
        (
            &["topic", "create", "t"],
            "error: the following required arguments were not provided: --partitions <N>, \
             --replication-factor <R> (see --help)",
        ),
    ];
    for (arguments, expected) in cases {
        ensure_usage_error(arguments, &run_args(arguments)?, expected)?;
    }
    Ok(())
}

#[test]
fn create_produce_and_consume_through_the_cli() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();

    let output = run_args(&[
        "topic",
        "create",
        "cli-events",
        "--partitions",
        "1",
        "--replication-factor",
        "1",
        "--config",
        "retention.ms=3600000",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(
        output.status.success(),
        "topic create failed: {}",
        output.stderr
    );
    ensure!(
        output.stdout.contains("created topic cli-events"),
        "{}",
        output.stdout
    );

    let listed = run_args(&["topic", "list", "--bootstrap", bootstrap])?;
    ensure!(
        listed.stdout.lines().any(|line| line == "cli-events"),
        "{}",
        listed.stdout
    );

    let produced = run(
        strata(&[
            "produce",
            "cli-events",
            "--key-separator",
            ":",
            "--bootstrap",
            bootstrap,
        ]),
        "user-1:signed up\nuser-2:logged in\nuser-1:bought: two things\n",
        COMMAND_TIMEOUT,
    )?;
    ensure!(
        produced.status.success(),
        "produce failed: {}",
        produced.stderr
    );
    ensure!(
        produced.stdout.trim() == "acknowledged 3 records",
        "{:?}",
        produced.stdout
    );

    let consumed = run_args(&[
        "consume",
        "cli-events",
        "--from-beginning",
        "--max-messages",
        "3",
        "--format",
        "json",
        "--timeout",
        "20s",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(
        consumed.status.success(),
        "consume failed: {}",
        consumed.stderr
    );
    let records: Vec<Value> = consumed
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("one JSON object per line")?;
    ensure!(records.len() == 3, "{}", consumed.stdout);
    let expected = [
        ("user-1", "signed up"),
        ("user-2", "logged in"),
        ("user-1", "bought: two things"),
    ];
    for (index, (record, (key, value))) in records.iter().zip(expected).enumerate() {
        ensure!(record["partition"] == 0, "{record}");
        ensure!(record["offset"] == index as i64, "{record}");
        ensure!(record["key"] == key, "{record}");
        ensure!(record["value"] == value, "{record}");
        ensure!(
            record["timestamp"]
                .as_i64()
                .is_some_and(|timestamp| timestamp > 0),
            "{record}"
        );
        ensure!(record["headers"] == serde_json::json!([]), "{record}");
    }

    // Plain values, from an offset, and an idle timeout that ends a tail with nothing new.
    let tail = run_args(&[
        "consume",
        "cli-events",
        "--partition",
        "0",
        "--offset",
        "1",
        "--timeout",
        "1s",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(tail.status.success(), "{}", tail.stderr);
    ensure!(
        tail.stdout == "logged in\nbought: two things\n",
        "{:?}",
        tail.stdout
    );

    let out_of_range = run_args(&[
        "consume",
        "cli-events",
        "--partition",
        "0",
        "--offset",
        "99",
        "--timeout",
        "5s",
        "--bootstrap",
        bootstrap,
    ])?;
    let line = single_error_line(&out_of_range)?;
    ensure!(
        line == "error: cannot read topic 'cli-events': OFFSET_OUT_OF_RANGE (1): offset 99 is out \
                 of range for cli-events-0: it holds offsets 0 to 2",
        "the first and last stored offsets are named: {line}"
    );

    let described = run_args(&["topic", "describe", "cli-events", "--bootstrap", bootstrap])?;
    ensure!(described.status.success(), "{}", described.stderr);
    ensure!(
        described.stdout.contains("retention.ms=3600000"),
        "{}",
        described.stdout
    );
    ensure!(
        described.stdout.contains("cli-events"),
        "{}",
        described.stdout
    );

    let status = run_args(&["cluster", "status", "--bootstrap", bootstrap])?;
    ensure!(status.status.success(), "{}", status.stderr);
    ensure!(status.stdout.contains(bootstrap), "{}", status.stdout);
    ensure!(status.stdout.contains("cli-events"), "{}", status.stdout);

    let unknown = run_args(&["produce", "no-such-topic", "--bootstrap", bootstrap])?;
    let line = single_error_line(&unknown)?;
    ensure!(line.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{line}");

    let zero = run_args(&[
        "topic",
        "create",
        "zero",
        "--partitions",
        "0",
        "--replication-factor",
        "1",
        "--bootstrap",
        bootstrap,
    ])?;
    let line = single_error_line(&zero)?;
    ensure!(line.contains("INVALID_PARTITIONS"), "{line}");

    // A group reads part of the topic, and the next run continues from its committed offset.
    let consume_group = |max: &str| {
        run_args(&[
            "consume",
            "cli-events",
            "--group",
            "tour",
            "--from-beginning",
            "--max-messages",
            max,
            "--timeout",
            "20s",
            "--bootstrap",
            bootstrap,
        ])
    };
    let first = consume_group("2")?;
    ensure!(first.status.success(), "{}", first.stderr);
    ensure!(
        first.stdout == "signed up\nlogged in\n",
        "{:?}",
        first.stdout
    );
    let rest = consume_group("1")?;
    ensure!(rest.status.success(), "{}", rest.stderr);
    ensure!(rest.stdout == "bought: two things\n", "{:?}", rest.stdout);

    let groups = run_args(&["group", "list", "--bootstrap", bootstrap])?;
    ensure!(groups.status.success(), "{}", groups.stderr);
    ensure!(groups.stdout.contains("tour"), "{}", groups.stdout);
    let described = run_args(&["group", "describe", "tour", "--bootstrap", bootstrap])?;
    ensure!(described.status.success(), "{}", described.stderr);
    let columns = table_row(&described.stdout, "cli-events")?;
    ensure!(
        columns[1..5] == ["0", "3", "3", "0"],
        "partition, committed, end, lag: {columns:?}"
    );

    let plan = run_args(&[
        "group",
        "reset-offsets",
        "tour",
        "--topic",
        "cli-events",
        "--to-offset",
        "1",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(plan.status.success(), "{}", plan.stderr);
    ensure!(plan.stderr.contains("dry run"), "{}", plan.stderr);
    let executed = run_args(&[
        "group",
        "reset-offsets",
        "tour",
        "--topic",
        "cli-events",
        "--to-offset",
        "1",
        "--execute",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(executed.status.success(), "{}", executed.stderr);
    let replayed = consume_group("2")?;
    ensure!(
        replayed.stdout == "logged in\nbought: two things\n",
        "{:?}",
        replayed.stdout
    );
    let deleted_group = run_args(&["group", "delete", "tour", "--bootstrap", bootstrap])?;
    ensure!(deleted_group.status.success(), "{}", deleted_group.stderr);
    let missing = run_args(&["group", "describe", "tour", "--bootstrap", bootstrap])?;
    let line = single_error_line(&missing)?;
    ensure!(line.contains("GROUP_ID_NOT_FOUND"), "{line}");

    // A work queue: a share group takes the records, then a drain into the dead-letter topic,
    // a look inside it, and a redrive back.
    let queue = |ack_mode: &str| {
        run_args(&[
            "consume",
            "cli-events",
            "--share-group",
            "workers",
            "--ack-mode",
            ack_mode,
            "--max-messages",
            "3",
            "--timeout",
            "3s",
            "--bootstrap",
            bootstrap,
        ])
    };
    let rejected = queue("reject")?;
    ensure!(rejected.status.success(), "{}", rejected.stderr);
    ensure!(
        rejected.stdout.lines().count() == 3,
        "{:?}",
        rejected.stdout
    );
    let empty = queue("auto")?;
    ensure!(
        empty.stdout.is_empty(),
        "rejected records are not redelivered: {:?}",
        empty.stdout
    );
    let listed = run_args(&["dlq", "list", "--bootstrap", bootstrap])?;
    ensure!(
        listed.stdout.contains("cli-events.dlq") && listed.stdout.contains("3 records"),
        "{}",
        listed.stdout
    );
    let peeked = run_args(&["dlq", "peek", "cli-events.dlq", "--bootstrap", bootstrap])?;
    ensure!(peeked.status.success(), "{}", peeked.stderr);
    ensure!(
        peeked.stdout.contains("from cli-events-0@0"),
        "{}",
        peeked.stdout
    );
    ensure!(
        peeked.stdout.contains("--ack-mode reject"),
        "the reason is shown: {}",
        peeked.stdout
    );
    let share = run_args(&["group", "describe", "workers", "--bootstrap", bootstrap])?;
    ensure!(share.stdout.contains("dead-lettered 3"), "{}", share.stdout);
    let redriven = run_args(&["dlq", "redrive", "cli-events.dlq", "--bootstrap", bootstrap])?;
    ensure!(
        redriven.stderr.contains("redrove 3 record"),
        "{}",
        redriven.stderr
    );
    let again = run_args(&["dlq", "redrive", "cli-events.dlq", "--bootstrap", bootstrap])?;
    ensure!(
        again.stderr.contains("redrove 0 record"),
        "a record is redriven once: {}",
        again.stderr
    );
    let back = queue("auto")?;
    ensure!(
        back.stdout == "signed up\nlogged in\nbought: two things\n",
        "redriven records are back in the queue: {:?}",
        back.stdout
    );

    let deleted = run_args(&["topic", "delete", "cli-events", "--bootstrap", bootstrap])?;
    ensure!(deleted.status.success(), "{}", deleted.stderr);
    drop(server);
    Ok(())
}

/// Runs a `--json` bench command and returns its one JSON object.
fn bench_json(arguments: &[&str]) -> Result<Value> {
    let output = run(strata(arguments), "", Duration::from_secs(60))?;
    ensure!(
        output.status.success(),
        "{arguments:?} failed: {}",
        output.stderr
    );
    let lines: Vec<&str> = output.stdout.lines().collect();
    ensure!(
        lines.len() == 1,
        "{arguments:?}: stdout must be one JSON object, got {:?}",
        output.stdout
    );
    serde_json::from_str(lines[0]).with_context(|| format!("{arguments:?}: {}", lines[0]))
}

fn number(value: &Value, key: &str) -> Result<f64> {
    value[key]
        .as_f64()
        .with_context(|| format!("'{key}' is not a number in {value}"))
}

/// The latency percentiles are positive and ordered.
fn check_latency(result: &Value) -> Result<()> {
    let latency = &result["latency_ms"];
    let values: Vec<f64> = ["p50", "p99", "p99_9", "max"]
        .iter()
        .map(|key| number(latency, key))
        .collect::<Result<_>>()?;
    ensure!(values[0] > 0.0, "{latency}");
    ensure!(
        values.windows(2).all(|pair| pair[0] <= pair[1]),
        "percentiles out of order: {latency}"
    );
    Ok(())
}

#[test]
fn bench_produce_consume_and_e2e_report_sane_results() -> Result<()> {
    let directory = tempfile::tempdir()?;
    // One worker, as benches/README.md runs the broker beside its client.
    let server = start_server_in(
        &directory.path().join("data"),
        &directory.path().join("server.log"),
        &["--worker-threads", "1"],
    )?;
    let bootstrap = server.address.as_str();

    // The topic does not exist: the benchmark creates it, and keeps it for the replay below.
    let produced = bench_json(&[
        "bench",
        "produce",
        "--topic",
        "bench",
        "--records",
        "2000",
        "--record-size",
        "100",
        "--keep",
        "--json",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(produced["command"] == "produce", "{produced}");
    ensure!(produced["records"] == 2000, "{produced}");
    ensure!(produced["bytes"] == 200_000, "{produced}");
    ensure!(produced["errors"] == 0, "{produced}");
    ensure!(produced["acks"] == "all", "{produced}");
    ensure!(produced["idempotence"] == true, "{produced}");
    ensure!(produced["partitions"] == 1, "{produced}");
    ensure!(
        produced["latency_sampling"] == 1,
        "every record of a short run is timed: {produced}"
    );
    ensure!(number(&produced, "records_per_sec")? > 0.0, "{produced}");
    ensure!(number(&produced, "mb_per_sec")? > 0.0, "{produced}");
    ensure!(number(&produced, "elapsed_s")? > 0.0, "{produced}");
    check_latency(&produced)?;
    ensure!(
        number(&produced["loopback"], "gb_per_sec")? > 0.0,
        "{produced}"
    );
    let ratio = number(&produced, "ratio_of_loopback")?;
    ensure!(ratio > 0.0 && ratio < 1.0, "{produced}");
    ensure!(
        produced["client_threads"] == 1,
        "one producer, one runtime thread: {produced}"
    );

    let consumed = bench_json(&[
        "bench",
        "consume",
        "--topic",
        "bench",
        "--records",
        "2000",
        "--json",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(consumed["command"] == "consume", "{consumed}");
    ensure!(consumed["records"] == 2000, "{consumed}");
    ensure!(consumed["bytes"] == 200_000, "{consumed}");
    ensure!(number(&consumed, "records_per_sec")? > 0.0, "{consumed}");
    ensure!(consumed["latency_ms"].is_null(), "{consumed}");
    ensure!(number(&consumed, "ratio_of_loopback")? > 0.0, "{consumed}");
    ensure!(
        consumed["client_threads"] == 1,
        "one consumer, one runtime thread: {consumed}"
    );

    // Without --records it reads up to the high watermark found at the start.
    let everything = bench_json(&[
        "bench",
        "consume",
        "--topic",
        "bench",
        "--consumers",
        "2",
        "--json",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(everything["records"] == 2000, "{everything}");
    ensure!(
        everything["consumers"] == 1,
        "one partition, one consumer: {everything}"
    );
    ensure!(
        everything["client_threads"] == 2,
        "a runtime thread per consumer asked for: {everything}"
    );

    // On one runtime thread (the default) and on a multi-threaded client runtime.
    for (client_threads, flag) in [(1, None), (2, Some("2"))] {
        let mut args = vec![
            "bench",
            "e2e",
            "--topic",
            "latency",
            "--duration",
            "1s",
            "--rate",
            "500",
            "--json",
            "--bootstrap",
            bootstrap,
        ];
        if let Some(threads) = flag {
            args.extend(["--client-threads", threads]);
        }
        let e2e = bench_json(&args)?;
        ensure!(e2e["command"] == "e2e", "{e2e}");
        let received = number(&e2e, "records")?;
        ensure!(
            (1.0..=510.0).contains(&received),
            "about 500 records in one second at 500/s: {e2e}"
        );
        ensure!(e2e["records"] == e2e["records_acknowledged"], "{e2e}");
        ensure!(e2e["errors"] == 0, "{e2e}");
        ensure!(e2e["client_threads"] == client_threads, "{e2e}");
        ensure!(
            e2e["loopback_round_trip_ms"]["p50"]
                .as_f64()
                .is_some_and(|p50| p50 > 0.0),
            "a same-run loopback round-trip baseline: {e2e}"
        );
        check_latency(&e2e)?;
    }

    // The text output carries the same numbers for a reader.
    let text = run(
        strata(&[
            "bench",
            "produce",
            "--topic",
            "bench",
            "--records",
            "500",
            "--record-size",
            "10",
            "--acks",
            "1",
            "--keys",
            "3",
            "--bootstrap",
            bootstrap,
        ]),
        "",
        Duration::from_secs(60),
    )?;
    ensure!(text.status.success(), "{}", text.stderr);
    for expected in [
        "loopback baseline:",
        "records/s",
        "% of loopback",
        "ack latency:",
        "p99.9",
        "idempotence=false",
    ] {
        ensure!(
            text.stdout.contains(expected),
            "{expected:?} missing:\n{}",
            text.stdout
        );
    }
    // Without --keep a benchmark deletes the topics it made, and never one it did not make.
    let listed = run_args(&["topic", "list", "--bootstrap", bootstrap])?;
    ensure!(listed.stdout == "bench\n", "{:?}", listed.stdout);
    drop(server);
    Ok(())
}

/// Sends SIGTERM, what docker, systemd and Kubernetes send, to `child`.
fn terminate(child: &Child) -> Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .context("running kill")?;
    ensure!(status.success(), "kill -TERM failed: {status}");
    Ok(())
}

#[test]
fn sigterm_ends_consumers_and_producers_as_ctrl_c_does() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "signalled", "1")?;
    let produced = run(
        strata(&["produce", "signalled", "--bootstrap", bootstrap]),
        "a\nb\nc\n",
        COMMAND_TIMEOUT,
    )?;
    ensure!(produced.status.success(), "{}", produced.stderr);

    // A group member tails the topic; once it printed everything, SIGTERM stops it.
    let mut consumer = strata(&[
        "consume",
        "signalled",
        "--group",
        "terminated",
        "--from-beginning",
        "--bootstrap",
        bootstrap,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()?;
    let lines = lines_of(consumer.stdout.take().context("stdout is piped")?);
    let stderr = drain(consumer.stderr.take().context("stderr is piped")?);
    for expected in ["a", "b", "c"] {
        let line = lines
            .recv_timeout(COMMAND_TIMEOUT)
            .context("the group member prints every record")?;
        ensure!(line == expected, "{line:?}");
    }
    terminate(&consumer)?;
    let status = wait_for_exit(&mut consumer, "the terminated consumer", COMMAND_TIMEOUT)?;
    let stderr = drained(stderr, "stderr")?;
    ensure!(status.success(), "{status}: {stderr}");
    ensure!(stderr.contains("consumed 3 records"), "{stderr}");
    // It committed and left its group, so the group can be reset at once instead of after its
    // session timeout.
    let reset = run_args(&[
        "group",
        "reset-offsets",
        "terminated",
        "--topic",
        "signalled",
        "--to-earliest",
        "--execute",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(
        reset.status.success(),
        "the member did not leave: {}",
        reset.stderr
    );

    // A producer whose input is still open: SIGTERM delivers what it read and says so.
    let mut producer = strata(&["produce", "signalled", "--bootstrap", bootstrap])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut input = producer.stdin.take().context("stdin is piped")?;
    input.write_all(b"d\ne\n")?;
    input.flush()?;
    let producer_stdout = drain(producer.stdout.take().context("stdout is piped")?);
    let producer_stderr = drain(producer.stderr.take().context("stderr is piped")?);
    // Both records are in the log once a reader from offset 3 finds two.
    let arrived = run_args(&[
        "consume",
        "signalled",
        "--partition",
        "0",
        "--offset",
        "3",
        "--max-messages",
        "2",
        "--timeout",
        "20s",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(
        arrived.stdout == "d\ne\n",
        "{:?} {}",
        arrived.stdout,
        arrived.stderr
    );
    terminate(&producer)?;
    let status = wait_for_exit(&mut producer, "the terminated producer", COMMAND_TIMEOUT)?;
    drop(input);
    let stdout = drained(producer_stdout, "stdout")?;
    let stderr = drained(producer_stderr, "stderr")?;
    ensure!(status.success(), "{status}: {stderr}");
    ensure!(stdout.trim() == "acknowledged 2 records", "{stdout:?}");
    ensure!(
        stderr.contains("stopped by a signal after reading 2 records"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn group_consumers_of_a_missing_topic_are_told_so() -> Result<()> {
    let server = start_server()?;
    for group_flag in ["--group", "--share-group"] {
        let output = run_args(&[
            "consume",
            "nowhere",
            group_flag,
            "g",
            "--bootstrap",
            &server.address,
        ])?;
        let line = single_error_line(&output)?;
        ensure!(
            line.contains("cannot consume topic 'nowhere'")
                && line.contains("UNKNOWN_TOPIC_OR_PARTITION"),
            "{group_flag}: {line}"
        );
    }
    Ok(())
}

#[test]
fn strata_dev_shows_its_banner_without_openraft_info_lines() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let address = free_address()?;
    let port = address.rsplit_once(':').context("host:port")?.1;
    let kafka_address = free_address()?;
    let kafka_port = kafka_address.rsplit_once(':').context("host:port")?.1;
    let http_address = free_address()?;
    let http_port = http_address.rsplit_once(':').context("host:port")?.1;
    let mut dev = strata(&["dev", "--nodes", "1", "--port", port, "--data-dir"])
        .arg(directory.path())
        .args(["--kafka-port", kafka_port, "--http-port", http_port])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let lines = lines_of(dev.stdout.take().context("stdout is piped")?);
    let stderr = drain(dev.stderr.take().context("stderr is piped")?);
    let mut banner = Vec::new();
    while banner
        .last()
        .is_none_or(|line| line != "Press Ctrl-C to stop.")
    {
        match lines.recv_timeout(COMMAND_TIMEOUT) {
            Ok(line) => banner.push(line),
            Err(error) => {
                dev.kill()?;
                dev.wait()?;
                bail!("no whole banner ({error}): {banner:#?}");
            }
        }
    }
    terminate(&dev)?;
    let status = wait_for_exit(&mut dev, "strata dev after SIGTERM", COMMAND_TIMEOUT)?;
    let stderr = drained(stderr, "stderr")?;
    ensure!(status.success(), "{status}: {stderr}");
    ensure!(
        banner[0]
            == format!(
                "strata dev: 1 node listening on {address}, data in {}",
                directory.path().display()
            ),
        "{banner:#?}"
    );
    ensure!(
        banner.contains(&format!(
            "Kafka clients (kcat, librdkafka, Java): bootstrap.servers={kafka_address}"
        )),
        "the banner names the Kafka listener: {banner:#?}"
    );
    ensure!(
        banner.contains(&format!(
            "Prometheus metrics: http://{http_address}/metrics"
        )),
        "the banner names the metrics URL: {banner:#?}"
    );
    ensure!(
        !stderr.contains('\u{1b}'),
        "logs written to a pipe carry no colour codes: {stderr:?}"
    );
    ensure!(
        stderr.contains("broker started"),
        "Strata's own info lines still show: {stderr}"
    );
    let openraft_info: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("INFO") && line.contains("openraft"))
        .collect();
    ensure!(
        openraft_info.is_empty(),
        "openraft's info lines bury the banner: {openraft_info:#?}"
    );
    Ok(())
}

#[test]
fn an_offset_applies_to_each_partition_and_one_past_its_end_reads_from_the_end() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "uneven", "2")?;
    // Partition 0 holds offsets 0 to 2; partition 1 stays empty.
    produce_lines(
        bootstrap, "uneven", "0", "a
b
c
",
    )?;

    let consumed = run_args(&[
        "consume",
        "uneven",
        "--offset",
        "2",
        "--timeout",
        "1s",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(consumed.status.success(), "{}", consumed.stderr);
    ensure!(consumed.stdout == "c\n", "{:?}", consumed.stdout);
    ensure!(
        consumed.stderr
            == "offset 2 is past the end of partition 1 (empty); reading it from its end\n\
                consumed 1 record\n",
        "{:?}",
        consumed.stderr
    );

    let explicit = run_args(&[
        "consume",
        "uneven",
        "--partition",
        "1",
        "--offset",
        "2",
        "--timeout",
        "5s",
        "--bootstrap",
        bootstrap,
    ])?;
    let line = single_error_line(&explicit)?;
    ensure!(
        line == "error: cannot read topic 'uneven': OFFSET_OUT_OF_RANGE (1): offset 2 is out of \
                 range for uneven-1: the partition is empty (the next record gets offset 0)",
        "{line}"
    );
    Ok(())
}

#[test]
fn durations_take_a_unit_and_the_old_flags_keep_theirs() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "aged", "1")?;
    // Two records stamped two hours and thirty minutes ago: how far back a reset lands tells
    // which unit a duration was read in, with no clock race (the gaps are hours wide).
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let input = format!(
        "{{\"value\":\"two hours ago\",\"timestamp\":{}}}\n\
         {{\"value\":\"half an hour ago\",\"timestamp\":{}}}\n",
        now_ms - 2 * 3_600_000,
        now_ms - 1_800_000
    );
    let produced = run(
        strata(&[
            "produce",
            "aged",
            "--input-format",
            "json",
            "--linger",
            "0ms",
            "--timeout",
            "20s",
            "--bootstrap",
            bootstrap,
        ]),
        input,
        COMMAND_TIMEOUT,
    )?;
    ensure!(produced.status.success(), "{}", produced.stderr);

    // The offset a dry-run reset to that long ago plans for partition 0.
    let planned = |flag: &str, value: &str| -> Result<String> {
        let plan = run_args(&[
            "group",
            "reset-offsets",
            "never-joined",
            "--topic",
            "aged",
            flag,
            value,
            "--bootstrap",
            bootstrap,
        ])?;
        ensure!(plan.status.success(), "{flag} {value}: {}", plan.stderr);
        let columns = table_row(&plan.stdout, "aged")?;
        Ok(columns.last().copied().unwrap_or_default().to_string())
    };
    ensure!(planned("--by-duration", "3h")? == "0");
    ensure!(planned("--by-duration", "1h")? == "1");
    ensure!(planned("--by-duration", "1h 30m")? == "1");
    // The old spelling's bare number is milliseconds: an hour, then 3.6 seconds (past both).
    ensure!(planned("--by-duration-ms", "3600000")? == "1");
    ensure!(planned("--by-duration-ms", "3600")? == "2");

    // The same convention for every duration flag: a unit is needed, and an old spelling
    // cannot be given beside its new one.
    let refused: &[(&[&str], &str)] = &[
        (
            &[
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "aged",
                "--by-duration",
                "3600",
            ],
            "error: invalid value '3600' for '--by-duration <DURATION>': '3600' has no unit: \
             write 3600ms, 3600s or 3600m (see --help)",
        ),
        (
            &[
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "aged",
                "--by-duration",
                "1h",
                "--by-duration-ms",
                "3600000",
            ],
            "error: the argument '--by-duration <DURATION>' cannot be used with \
             '--by-duration-ms <MS>' (see --help)",
        ),
        (
            &["consume", "aged", "--timeout", "5"],
            "error: invalid value '5' for '--timeout <DURATION>': '5' has no unit: write 5ms, \
             5s or 5m (see --help)",
        ),
        (
            &["topic", "list", "--timeout", "1s", "--timeout-ms", "1000"],
            "error: the argument '--timeout <DURATION>' cannot be used with '--timeout-ms <MS>' \
             (see --help)",
        ),
        (
            &["bench", "e2e", "--topic", "aged", "--duration", "500ms"],
            "error: invalid value '500ms' for '--duration <DURATION>': '500ms' is shorter than \
             the shortest allowed, 1s (see --help)",
        ),
        (
            &["health", "--timeout", "2"],
            "error: invalid value '2' for '--timeout <DURATION>': '2' has no unit: write 2ms, 2s \
             or 2m (see --help)",
        ),
    ];
    for (arguments, expected) in refused {
        let arguments = [arguments, &["--bootstrap", bootstrap][..]].concat();
        ensure_usage_error(&arguments, &run_args(&arguments)?, expected)?;
    }

    // Old spellings in their old units still run: an admin call and an idle consumer.
    let listed = run_args(&[
        "topic",
        "list",
        "--timeout-ms",
        "20000",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(
        listed.stdout == "aged\n",
        "{:?} {}",
        listed.stdout,
        listed.stderr
    );
    let tail = run_args(&[
        "consume",
        "aged",
        "--offset",
        "1",
        "--timeout-ms",
        "1000",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(tail.status.success(), "{}", tail.stderr);
    ensure!(tail.stdout == "half an hour ago\n", "{:?}", tail.stdout);
    Ok(())
}

#[test]
fn duration_flags_show_human_defaults_and_not_their_old_spellings() -> Result<()> {
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["topic", "list"],
            &["--timeout <DURATION>", "[default: 30s]"],
            &["--timeout-ms"],
        ),
        (
            &["consume"],
            &["--timeout <DURATION>", "--from <TIME>"],
            &["--timeout-ms"],
        ),
        (
            &["health"],
            &["--timeout <DURATION>", "[default: 5s]"],
            &["--timeout-ms"],
        ),
        (
            &["group", "reset-offsets"],
            &["--by-duration <DURATION>", "--by-duration 1h"],
            &["--by-duration-ms"],
        ),
        (
            &["bench", "e2e"],
            &[
                "--duration <DURATION>",
                "[default: 10s]",
                "--linger <DURATION>",
                "[default: 0ms]",
                "--drain-timeout <DURATION>",
            ],
            &["--duration-s", "--linger-ms", "--drain-timeout-ms"],
        ),
        (
            &["bench", "group"],
            &["--duration <DURATION>", "[default: 10s]"],
            &["--duration-s"],
        ),
        (
            &["bench", "consume"],
            &["--timeout <DURATION>", "[default: 10s]"],
            &["--timeout-ms"],
        ),
        (
            &["bench", "produce"],
            &["--linger <DURATION>"],
            &["--linger-ms"],
        ),
        (
            &["server"],
            &["--offsets-retention <DURATION>", "[default: 7d]"],
            &["--offsets-retention-minutes"],
        ),
    ];
    for (command, shown, hidden) in cases {
        let help = run_args(&[command, &["--help"][..]].concat())?;
        ensure!(help.status.success(), "{command:?}: {}", help.stderr);
        for expected in *shown {
            ensure!(
                help.stdout.contains(expected),
                "{command:?} --help lacks {expected:?}:\n{}",
                help.stdout
            );
        }
        for old in *hidden {
            ensure!(
                !help.stdout.contains(old),
                "{command:?} --help shows {old:?}:\n{}",
                help.stdout
            );
        }
    }
    Ok(())
}

/// Runs `strata ARGUMENTS` and parses its stdout as one JSON document.
fn json_of(arguments: &[&str]) -> Result<Value> {
    let output = run_args(arguments)?;
    ensure!(
        output.status.success(),
        "{arguments:?} failed: {}",
        output.stderr
    );
    serde_json::from_str(output.stdout.trim())
        .with_context(|| format!("{arguments:?} printed no JSON: {:?}", output.stdout))
}

#[test]
fn topic_describe_shows_each_partitions_size_and_it_grows_with_its_log() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "sized", "2")?;
    produce_lines(bootstrap, "sized", "1", "one\ntwo\nthree\n")?;
    let size_of = |described: &Value, partition: usize| {
        described["partitions"][partition]["size_bytes"]
            .as_u64()
            .with_context(|| format!("no size_bytes for partition {partition}: {described}"))
    };
    let describe = || {
        json_of(&[
            "topic",
            "describe",
            "sized",
            "--format",
            "json",
            "--bootstrap",
            bootstrap,
        ])
    };

    let before = describe()?;
    ensure!(size_of(&before, 0)? == 0, "an empty log: {before}");
    let first = size_of(&before, 1)?;
    // The batch's header comes on top of the values.
    ensure!(first > "onetwothree".len() as u64, "{before}");

    let large = format!("{}\n", "x".repeat(2_000));
    produce_lines(bootstrap, "sized", "1", &large)?;
    let after = describe()?;
    let second = size_of(&after, 1)?;
    ensure!(second >= first + 2_000, "{first} then {after}");
    ensure!(after["partitions"][1]["high_watermark"] == 4, "{after}");
    ensure!(size_of(&after, 0)? == 0, "{after}");

    // A person reads binary units.
    let table = run_args(&["topic", "describe", "sized", "--bootstrap", bootstrap])?;
    ensure!(table.status.success(), "{}", table.stderr);
    let rows: Vec<&str> = table.stdout.lines().skip(1).collect();
    ensure!(
        rows.len() == 3 && rows[0].contains("HIGH-WATERMARK  SIZE"),
        "{}",
        table.stdout
    );
    ensure!(rows[1].ends_with("0 B"), "{}", table.stdout);
    let shown = format!("{:.2} KiB", second as f64 / 1024.0);
    ensure!(rows[2].ends_with(&shown), "{shown}: {}", table.stdout);
    let help = run_args(&["topic", "--help"])?;
    ensure!(
        help.stdout
            .contains("size: the bytes of the leader's log segments"),
        "{}",
        help.stdout
    );
    Ok(())
}

#[test]
fn admin_commands_print_json_for_scripts_and_hide_internal_topics() -> Result<()> {
    let server = start_server()?;
    let bootstrap = server.address.as_str();
    create_topic(bootstrap, "inventory", "2")?;
    produce_lines(
        bootstrap,
        "inventory",
        "1",
        "a
b
c
",
    )?;
    // A group member that commits makes the broker create `__consumer_offsets`.
    let consumed = run_args(&[
        "consume",
        "inventory",
        "--group",
        "stock",
        "--from-beginning",
        "--max-messages",
        "3",
        "--timeout",
        "20s",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(consumed.status.success(), "{}", consumed.stderr);

    let listed = run_args(&["topic", "list", "--bootstrap", bootstrap])?;
    ensure!(listed.stdout == "inventory\n", "{:?}", listed.stdout);
    let typo = run_args(&["topic", "describe", "inventroy", "--bootstrap", bootstrap])?;
    let line = single_error_line(&typo)?;
    ensure!(
        line.ends_with(
            "UNKNOWN_TOPIC_OR_PARTITION (3): topic 'inventroy' does not exist (did you mean \
             'inventory'?)"
        ),
        "{line}"
    );
    let everything = json_of(&[
        "topic",
        "list",
        "--all",
        "--format",
        "json",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(
        everything == serde_json::json!(["__consumer_offsets", "inventory"]),
        "{everything}"
    );

    let described = json_of(&[
        "topic",
        "describe",
        "inventory",
        "--format",
        "json",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(described["topic"] == "inventory", "{described}");
    let second = &described["partitions"][1];
    ensure!(
        second["partition"] == 1
            && second["leader"] == 1
            && second["log_start_offset"] == 0
            && second["high_watermark"] == 3,
        "{described}"
    );
    ensure!(
        described["partitions"][0]["high_watermark"] == 0,
        "{described}"
    );
    let table = run_args(&["topic", "describe", "inventory", "--bootstrap", bootstrap])?;
    let header = table.stdout.lines().nth(1).unwrap_or_default();
    ensure!(
        header.contains("LOG-START") && header.contains("HIGH-WATERMARK"),
        "{}",
        table.stdout
    );

    let cluster = json_of(&[
        "cluster",
        "status",
        "--format",
        "json",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(
        cluster["controller_id"] == 1 && cluster["brokers"][0]["node_id"] == 1,
        "{cluster}"
    );
    let groups = json_of(&[
        "group",
        "list",
        "--format",
        "json",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(
        groups
            == serde_json::json!([{"group": "stock", "type": "consumer", "state": "Empty", "members": 0}]),
        "{groups}"
    );
    let group = json_of(&[
        "group",
        "describe",
        "stock",
        "--format",
        "json",
        "--bootstrap",
        bootstrap,
    ])?;
    let committed: Vec<(i64, i64)> = group["partitions"]
        .as_array()
        .context("partitions")?
        .iter()
        .map(|partition| {
            (
                partition["partition"].as_i64().unwrap_or(-1),
                partition["committed"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    ensure!(committed.contains(&(1, 3)), "{group}");
    let dead_letters = json_of(&["dlq", "list", "--format", "json", "--bootstrap", bootstrap])?;
    ensure!(dead_letters == serde_json::json!([]), "{dead_letters}");

    // Topics grow, keeping their records; they never shrink, and internal ones are closed.
    let grown = run_args(&[
        "topic",
        "alter",
        "inventory",
        "--partitions",
        "4",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(grown.status.success(), "{}", grown.stderr);
    let described = json_of(&[
        "topic",
        "describe",
        "inventory",
        "--format",
        "json",
        "--bootstrap",
        bootstrap,
    ])?;
    let partitions = described["partitions"].as_array().context("partitions")?;
    ensure!(partitions.len() == 4, "{described}");
    ensure!(partitions[1]["high_watermark"] == 3, "{described}");
    let into_new = run(
        strata(&[
            "produce",
            "inventory",
            "--partition",
            "3",
            "--bootstrap",
            bootstrap,
        ]),
        "fresh\n",
        COMMAND_TIMEOUT,
    )?;
    ensure!(
        into_new.stdout.trim() == "acknowledged 1 record",
        "{}",
        into_new.stderr
    );
    let shrink = run_args(&[
        "topic",
        "alter",
        "inventory",
        "--partitions",
        "2",
        "--bootstrap",
        bootstrap,
    ])?;
    let line = single_error_line(&shrink)?;
    ensure!(
        line.contains(
            "INVALID_PARTITIONS (37): topic 'inventory' has 4 partitions; a topic can only grow"
        ),
        "{line}"
    );
    let internal = run_args(&[
        "topic",
        "alter",
        "__consumer_offsets",
        "--partitions",
        "20",
        "--bootstrap",
        bootstrap,
    ])?;
    let line = single_error_line(&internal)?;
    ensure!(line.contains("INVALID_TOPIC_EXCEPTION (17)"), "{line}");
    Ok(())
}

#[test]
fn completion_scripts_are_generated_for_each_shell_and_bash_loads_its_own() -> Result<()> {
    let bash = run_args(&["completion", "bash"])?;
    ensure!(bash.status.success(), "{}", bash.stderr);
    let directory = tempfile::tempdir()?;
    let script = directory.path().join("strata.bash");
    std::fs::write(&script, &bash.stdout)?;
    // Bash parses it and registers the completion function for `strata`.
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p strata",
            script.display()
        ))
        .output()
        .context("running bash")?;
    let registered = String::from_utf8_lossy(&loaded.stdout);
    ensure!(
        loaded.status.success()
            && registered.contains("_strata")
            && registered.ends_with("strata\n"),
        "{registered} {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let zsh = run_args(&["completion", "zsh"])?;
    ensure!(zsh.stdout.starts_with("#compdef strata"), "{}", zsh.stdout);
    let fish = run_args(&["completion", "fish"])?;
    ensure!(
        fish.stdout.contains("complete -c strata"),
        "{}",
        fish.stdout
    );
    // Subcommands and their flags are in the scripts.
    ensure!(
        bash.stdout.contains("--from-beginning"),
        "the consume flags are completed"
    );
    Ok(())
}

#[test]
fn strata_dev_names_a_taken_kafka_port_and_how_to_move_it() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let address = free_address()?;
    let port = address.rsplit_once(':').context("host:port")?.1;
    // Held for the whole test, as a Kafka broker already on the machine would hold 9092.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let kafka_port = taken.local_addr()?.port().to_string();
    let mut command = strata(&[
        "dev",
        "--port",
        port,
        "--kafka-port",
        &kafka_port,
        "--http-port",
        "0",
    ]);
    command.arg("--data-dir").arg(directory.path());
    let output = run(command, "", COMMAND_TIMEOUT)?;
    ensure!(!output.status.success(), "{}", output.stdout);
    let line = single_error_line(&output)?;
    ensure!(
        line.contains(&format!("127.0.0.1:{kafka_port} for Kafka clients"))
            && line.contains("--kafka-port 0"),
        "{line}"
    );
    Ok(())
}

#[test]
fn a_server_logs_one_json_object_per_line_when_asked() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let log = directory.path().join("server.log");
    let server = support::start_server_in(
        &directory.path().join("data"),
        &log,
        &["--log-format", "json"],
    )?;
    drop(server);
    let logged = std::fs::read_to_string(&log)?;
    let events: Vec<Value> = logged
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("a log line is not JSON:\n{logged}"))?;
    let started = events
        .iter()
        .find(|event| event["message"] == "broker started")
        .with_context(|| format!("no `broker started` event:\n{logged}"))?;
    // The event's fields are fields of the object, not text inside the message.
    ensure!(started["node_id"] == 1, "{started}");
    ensure!(started["level"] == "INFO", "{started}");
    Ok(())
}

/// The soft and hard "Max open files" of process `pid`, from /proc.
fn open_file_limits(pid: u32) -> Result<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .context("no open-file limit in /proc")?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().context("soft limit")?.to_string();
    let hard = fields.next().context("hard limit")?.to_string();
    Ok((soft, hard))
}

#[test]
fn a_server_raises_its_open_file_limit_to_the_hard_limit() -> Result<()> {
    // A shell's usual soft limit, below the hard one, as on most machines.
    let (_, hard) = open_file_limits(std::process::id())?;
    if hard == "unlimited" || hard.parse::<u64>()? <= 256 {
        eprintln!("SKIPPED: the hard open-file limit ({hard}) leaves nothing to raise");
        return Ok(());
    }
    let directory = tempfile::tempdir()?;
    let address = free_address()?;
    let strata = env!("CARGO_BIN_EXE_strata");
    let mut server = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && exec {strata} server --node-id 1 --listen {address} --data-dir {}",
            directory.path().display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // The limit is raised before the broker starts, so once it answers the limit is set.
    let deadline = std::time::Instant::now() + COMMAND_TIMEOUT;
    while !run_args(&["topic", "list", "--bootstrap", &address])?
        .status
        .success()
    {
        ensure!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let limits = open_file_limits(server.id());
    server.kill()?;
    server.wait()?;
    let (soft, server_hard) = limits?;
    ensure!(soft == server_hard, "soft {soft}, hard {server_hard}");
    ensure!(soft == hard, "soft {soft}, the shell's hard limit {hard}");
    Ok(())
}
