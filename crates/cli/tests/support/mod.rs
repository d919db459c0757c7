//! What the CLI tests share: running the `strata` binary under a deadline, reading what it
//! printed, and a one-node `strata server` to run it against. Every child process runs under a
//! deadline and is killed if it overstays; waiting for the server is a bounded poll of `strata
//! topic list`, never a fixed sleep.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");
/// Generous for a loaded two-core CI machine; a healthy command takes milliseconds.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What a command did: its exit status and everything it printed.
pub struct Output {
    pub status: ExitStatus,
    /// Stdout as printed, for binary output.
    pub stdout_bytes: Vec<u8>,
    /// Stdout as text (invalid UTF-8 replaced).
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Stdout's lines sorted: records of different partitions may interleave in any order.
    pub fn sorted_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.stdout.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }
}

/// `strata ARGUMENTS`, with none of the environment that would change what it connects to or
/// logs: no bootstrap, no profile, no TLS files, and a config file that does not exist (so the user's own
/// profiles never redirect a test).
pub fn strata(arguments: &[&str]) -> Command {
    let mut command = Command::new(STRATA);
    command
        .args(arguments)
        .env_remove("STRATA_BOOTSTRAP")
        .env_remove("STRATA_PROFILE")
        .env_remove("STRATA_TLS_CA")
        .env_remove("STRATA_TLS_CERT")
        .env_remove("STRATA_TLS_KEY")
        .env("STRATA_CONFIG", NO_CONFIG_FILE)
        .env_remove("RUST_LOG");
    command
}

/// A config file path no test creates.
pub const NO_CONFIG_FILE: &str = "/nonexistent/strata-tests/config.toml";

/// Reads `pipe` to its end on a thread of its own.
pub fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error leaves what was read so far, which is what the assertion will show.
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// What a [`drain`] read, as text.
pub fn drained(reader: thread::JoinHandle<Vec<u8>>, what: &str) -> Result<String> {
    let bytes = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the {what} reader panicked"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Waits for `child` to exit on its own, killing it if it is still running after `timeout`.
pub fn wait_for_exit(child: &mut Child, what: &str, timeout: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            bail!("{what} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `command` with `stdin` as its input, killing it if it is still running at the deadline.
pub fn run(mut command: Command, stdin: impl AsRef<[u8]>, timeout: Duration) -> Result<Output> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning strata")?;
    let input = child.stdin.take().context("stdin is piped")?;
    let stdin = stdin.as_ref().to_vec();
    // Written from a thread, so a command that stops reading early cannot block the test.
    let writer = thread::spawn(move || {
        let mut input = input;
        // A command that stopped reading closes the pipe; that is not the test's failure.
        let _ = input.write_all(&stdin);
        // Dropping `input` closes stdin, so readers see the end.
    });
    let stdout = drain(child.stdout.take().context("stdout is piped")?);
    let stderr = drain(child.stderr.take().context("stderr is piped")?);
    let status = wait_for_exit(&mut child, &format!("{command:?}"), timeout)?;
    let _ = writer.join();
    let stdout_bytes = stdout
        .join()
        .map_err(|_| anyhow::anyhow!("the stdout reader panicked"))?;
    Ok(Output {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stdout_bytes,
        stderr: drained(stderr, "stderr")?,
    })
}

/// Runs `strata ARGUMENTS` with no input.
pub fn run_args(arguments: &[&str]) -> Result<Output> {
    run(strata(arguments), "", COMMAND_TIMEOUT)
}

/// The cells of the first row of a printed table whose first cell starts with `first_cell`.
pub fn table_row<'a>(stdout: &'a str, first_cell: &str) -> Result<Vec<&'a str>> {
    let row = stdout
        .lines()
        .find(|line| line.starts_with(first_cell))
        .with_context(|| format!("no row for {first_cell} in {stdout:?}"))?;
    Ok(row.split_whitespace().collect())
}

/// A loopback address nothing listens on: bind port 0, note the port, release it.
pub fn free_address() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// Asserts a failure printed exactly one line, `error: ...`, and returns it.
pub fn single_error_line(output: &Output) -> Result<String> {
    ensure!(
        !output.status.success(),
        "expected a failure, got success; stdout: {}",
        output.stdout
    );
    let lines: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    ensure!(
        lines.len() == 1,
        "expected one error line, got: {:?}",
        output.stderr
    );
    ensure!(
        lines[0].starts_with("error: "),
        "error line must start with 'error: ': {:?}",
        lines[0]
    );
    Ok(lines[0].to_string())
}

/// Asserts `arguments` were refused as a usage error: exit code 2 and exactly the one line
/// `expected`.
pub fn ensure_usage_error(arguments: &[&str], output: &Output, expected: &str) -> Result<()> {
    let line = single_error_line(output).with_context(|| format!("{arguments:?}"))?;
    ensure!(line == expected, "{arguments:?}: {line:?}");
    ensure!(
        output.status.code() == Some(2),
        "{arguments:?}: {}",
        output.status
    );
    Ok(())
}

/// A `strata server` child process, killed when dropped.
pub struct Server {
    child: Child,
    pub address: String,
    /// Held when the server made its own directory, which goes with it.
    _directory: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already exited is fine; anything else is best effort while a test is failing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-node server in a temporary directory of its own, once it answers clients.
pub fn start_server() -> Result<Server> {
    let directory = tempfile::tempdir()?;
    let mut server = start_server_in(
        &directory.path().join("data"),
        &directory.path().join("server.log"),
        &[],
    )?;
    server._directory = Some(directory);
    Ok(server)
}

/// A one-node server on `data_dir`, logging to `log`; `extra` are more `strata server`
/// arguments. Returns once it answers `strata topic list`.
pub fn start_server_in(data_dir: &Path, log: &Path, extra: &[&str]) -> Result<Server> {
    start_server_probed(data_dir, log, extra, &[])
}

/// [`start_server_in`], probing with `probe_extra` added to `strata topic list` (the TLS flags
/// of a server that speaks TLS).
pub fn start_server_probed(
    data_dir: &Path,
    log: &Path,
    extra: &[&str],
    probe_extra: &[&str],
) -> Result<Server> {
    let address = free_address()?;
    let log_file = std::fs::File::create(log)?;
    let child = Command::new(STRATA)
        .args([
            "server",
            "--node-id",
            "1",
            "--listen",
            &address,
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .env_remove("STRATA_BOOTSTRAP")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("spawning strata server")?;
    let mut server = Server {
        child,
        address,
        _directory: None,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait()? {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!("strata server exited with {status} before it was ready:\n{log}");
        }
        let mut probe = strata(&["topic", "list", "--bootstrap", &server.address]);
        probe.args(probe_extra);
        let probe = run(probe, "", Duration::from_secs(10))?;
        if probe.status.success() {
            return Ok(server);
        }
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!(
                "strata server not ready within 20 s; last probe: {}\nserver log:\n{log}",
                probe.stderr
            );
        }
        // Poll interval between readiness probes, not a wait for a guessed duration.
        thread::sleep(Duration::from_millis(100));
    }
}

/// Creates `topic` with `partitions` partitions of one replica.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: &str) -> Result<()> {
    let created = run_args(&[
        "topic",
        "create",
        topic,
        "--partitions",
        partitions,
        "--replication-factor",
        "1",
        "--bootstrap",
        bootstrap,
    ])?;
    ensure!(created.status.success(), "{}", created.stderr);
    Ok(())
}

/// Produces `lines` (one record each) to one partition of `topic` with `strata produce`.
pub fn produce_lines(bootstrap: &str, topic: &str, partition: &str, lines: &str) -> Result<()> {
    let produced = run(
        strata(&[
            "produce",
            topic,
            "--partition",
            partition,
            "--bootstrap",
            bootstrap,
        ]),
        lines,
        COMMAND_TIMEOUT,
    )?;
    ensure!(produced.status.success(), "{}", produced.stderr);
    Ok(())
}
