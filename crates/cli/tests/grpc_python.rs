//! The README's Python gRPC example (`tests/grpc-python/example.py`) against a running server:
//! stubs generated from `proto/strata.proto` by grpcio-tools, installed by
//! `tests/grpc-python/install.sh` into a venv under Cargo's target directory. And a generic gRPC
//! client (`tests/grpc-python/generic_client.py`, no stubs) that finds the API by server
//! reflection and checks the standard health service. Without PyPI each test prints one
//! `SKIPPED:` line and returns.

mod support;

use anyhow::{Result, ensure};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{create_topic, run, start_server, start_server_probed};

fn repository() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of a venv (named `venv`, under Cargo's target directory) that
/// `tests/grpc-python/install.sh` made, and the stubs it generated; `None` after printing why
/// the test is skipped.
fn installed(venv: &str) -> Result<Option<(String, String)>> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(venv);
    let installed = Command::new(repository().join("tests/grpc-python/install.sh"))
        .arg(&venv)
        .output()?;
    let stdout = String::from_utf8_lossy(&installed.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name).map(str::to_string))
    };
    match (field("python="), field("stubs=")) {
        (Some(python), Some(stubs)) => Ok(Some((python, stubs))),
        _ => {
            eprintln!(
                "SKIPPED: the Python gRPC tests need grpcio: {}",
                stdout.trim()
            );
            Ok(None)
        }
    }
}

#[test]
fn the_python_grpc_example_produces_and_consumes_records() -> Result<()> {
    let repository = repository();
    let Some((python, stubs)) = installed("grpc-python-venv")? else {
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

/// A generic gRPC client, as grpcurl or Postman would be (`tests/grpc-python/generic_client.py`:
/// grpcio with grpcio-reflection and grpcio-health-checking, no stubs): health says SERVING,
/// reflection lists the services, and `strata.v1.Broker/Metadata` built from the reflected
/// descriptors names the broker. On a server that requires authentication, health and reflection
/// still answer without credentials and Metadata is refused as UNAUTHENTICATED.
#[test]
fn generic_grpc_tools_find_the_services_by_reflection_and_health() -> Result<()> {
    let repository = repository();
    // A venv of its own: the tests run in parallel, and two installs into one venv would race.
    let Some((python, _stubs)) = installed("grpc-python-generic-venv")? else {
        return Ok(());
    };
    let generic_client = |address: &str, extra: &[&str]| -> Result<()> {
        let mut command = Command::new(&python);
        command
            .arg(repository.join("tests/grpc-python/generic_client.py"))
            .arg(address)
            .args(extra);
        let output = run(command, "", Duration::from_secs(60))?;
        ensure!(
            output.status.success(),
            "generic_client.py {extra:?} failed: {}{}",
            output.stdout,
            output.stderr
        );
        let lines: Vec<&str> = output.stdout.lines().collect();
        ensure!(lines.contains(&"health SERVING"), "{lines:#?}");
        ensure!(lines.contains(&"generic client ok"), "{lines:#?}");
        Ok(())
    };

    let open = start_server()?;
    generic_client(&open.address, &[])?;
    drop(open);

    let directory = tempfile::tempdir()?;
    let secured = start_server_probed(
        &directory.path().join("data"),
        &directory.path().join("server.log"),
        &["--require-auth", "--bootstrap-user", "admin:admin-secret"],
        &["--user", "admin", "--password", "admin-secret"],
    )?;
    generic_client(&secured.address, &["--expect-unauthenticated"])?;
    Ok(())
}
