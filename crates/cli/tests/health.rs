//! `strata health` against a real `strata server`, and against an address nothing listens on.
//! Every process runs under a deadline; waiting for the server is a bounded poll, not a sleep.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const STRATA: &str = env!("CARGO_BIN_EXE_strata");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Runs `strata health ARGS`; returns whether it exited 0, its stdout and its stderr.
fn health(arguments: &[&str]) -> (bool, String, String) {
    health_with_bootstrap_env(None, arguments)
}

/// `strata health ARGS` with `STRATA_BOOTSTRAP` set to `bootstrap` (or unset).
fn health_with_bootstrap_env(
    bootstrap: Option<&str>,
    arguments: &[&str],
) -> (bool, String, String) {
    let mut command = Command::new(STRATA);
    match bootstrap {
        Some(bootstrap) => command.env("STRATA_BOOTSTRAP", bootstrap),
        None => command.env_remove("STRATA_BOOTSTRAP"),
    };
    let mut child = command
        .arg("health")
        .args(arguments)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strata health starts");
    // Its own --timeout bounds it; this deadline only catches a hang.
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("strata health {arguments:?} did not exit within 30 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_serving_node_is_healthy_and_a_wrong_node_id_is_not() {
    let data = tempfile::tempdir().unwrap();
    let address = free_address();
    let _server = Server(
        Command::new(STRATA)
            .args(["server", "--node-id", "1", "--listen", &address])
            .arg("--data-dir")
            .arg(data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strata server starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let stdout = loop {
        let (healthy, stdout, stderr) = health(&["--bootstrap", &address, "--timeout", "2s"]);
        if healthy {
            break stdout;
        }
        assert!(
            Instant::now() < deadline,
            "the node never became healthy; last answer: {stderr}"
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert!(
        stdout.starts_with(&format!("ok: node 1 at {address} is serving")),
        "{stdout}"
    );

    let (healthy, stdout, _) = health(&["--bootstrap", &address, "--node-id", "1"]);
    assert!(healthy && stdout.starts_with("ok: node 1 "), "{stdout}");

    // STRATA_BOOTSTRAP names the node as it does for every other command.
    let (healthy, stdout, stderr) = health_with_bootstrap_env(Some(&address), &[]);
    assert!(healthy, "{stderr}");
    assert!(
        stdout.starts_with(&format!("ok: node 1 at {address} ")),
        "{stdout}"
    );
    // A list is checked node by node, and one that is down fails the check.
    let down = free_address();
    let (healthy, stdout, stderr) =
        health_with_bootstrap_env(Some(&format!("{address},{down}")), &["--timeout", "2s"]);
    assert!(!healthy);
    assert!(
        stdout.starts_with(&format!("ok: node 1 at {address} ")),
        "{stdout}"
    );
    assert!(
        stderr.starts_with(&format!("error: node at {down} is not serving")),
        "{stderr}"
    );

    let (healthy, _, stderr) = health(&["--bootstrap", &address, "--node-id", "7"]);
    assert!(!healthy);
    assert_eq!(
        stderr.trim_end(),
        format!("error: node at {address} answered, but the cluster lists no broker 7")
    );
}

#[test]
fn nothing_listening_is_unhealthy_with_one_clear_error_line() {
    let address = free_address();
    let (healthy, stdout, stderr) = health(&["--bootstrap", &address, "--timeout", "2s"]);
    assert!(!healthy, "nothing listens on {address}: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: node at {address} is not serving: ")),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");

    let (healthy, _, stderr) = health(&[
        "--bootstrap",
        "127.0.0.1:7070,127.0.0.1:7071",
        "--node-id",
        "1",
    ]);
    assert!(!healthy);
    assert!(stderr.contains("--node-id names one node"), "{stderr}");
}
