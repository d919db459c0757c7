//! The README's Python gRPC example (`tests/grpc-python/example.py`) against a running server:
//! stubs generated from `proto/strata.proto` by grpcio-tools, installed by
//! `tests/grpc-python/install.sh` into a venv under Cargo's target directory. Without PyPI the
//! test prints one `SKIPPED:` line and returns.

mod support;

use anyhow::{Result, ensure};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{create_topic, run, start_server};

#[test]
fn the_python_grpc_example_produces_and_consumes_records() -> Result<()> {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("grpc-python-venv");
    let installed = Command::new(repository.join("tests/grpc-python/install.sh"))
        .arg(&venv)
        .output()?;
    let stdout = String::from_utf8_lossy(&installed.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name).map(str::to_string))
    };
    let (Some(python), Some(stubs)) = (field("python="), field("stubs=")) else {
        eprintln!(
            "SKIPPED: the Python gRPC example needs grpcio: {}",
            stdout.trim()
        );
        return Ok(());
    };
    let server = start_server()?;
    create_topic(&server.address, "orders", "3")?;
    let mut command = Command::new(python);
    command
        .arg(repository.join("tests/grpc-python/example.py"))
        .args([&server.address, "orders"])
        .env("PYTHONPATH", stubs);
    let output = run(command, "", Duration::from_secs(60))?;
    ensure!(
        output.status.success(),
        "example.py failed: {}{}",
        output.stdout,
        output.stderr
    );
    let lines: Vec<&str> = output.stdout.lines().collect();
    ensure!(
        lines
            .iter()
            .filter(|line| line.starts_with("written"))
            .count()
            == 3,
        "{lines:#?}"
    );
    let read: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| line.starts_with("read alice"))
        .collect();
    ensure!(
        read == [
            "read alice=book at offset 0 {'source': 'web'}",
            "read alice=lamp at offset 1 {}"
        ],
        "alice's records, in order, with the header: {lines:#?}"
    );
    Ok(())
}
