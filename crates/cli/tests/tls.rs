//! TLS from the command line: `strata certs create`, a `strata server` with --tls-*, client
//! commands that find their CA and certificate in flags, the environment or a profile, and the
//! refusal to serve plaintext beyond loopback.

mod support;

use anyhow::{Result, ensure};
use std::path::{Path, PathBuf};
use support::{Output, Server, run, strata};

/// `strata certs create` into `directory/certs`, returning that directory.
fn certificates(directory: &Path, extra: &[&str]) -> Result<PathBuf> {
    let out = directory.join("certs");
    let mut arguments = vec!["certs", "create", "--out", out.to_str().unwrap()];
    arguments.extend(extra);
    let created = run(strata(&arguments), "", support::COMMAND_TIMEOUT)?;
    ensure!(created.status.success(), "{}", created.stderr);
    Ok(out)
}

fn path(directory: &Path, file: &str) -> String {
    directory.join(file).to_str().unwrap().to_string()
}

/// A one-node server with TLS from `certs` (and `extra` flags), probed over TLS with `probe`.
fn tls_server(directory: &Path, certs: &Path, extra: &[&str], probe: &[&str]) -> Result<Server> {
    let mut arguments = vec![
        "--tls-cert".to_string(),
        path(certs, "node-1.pem"),
        "--tls-key".to_string(),
        path(certs, "node-1-key.pem"),
        "--tls-ca".to_string(),
        path(certs, "ca.pem"),
    ];
    arguments.extend(extra.iter().map(|flag| flag.to_string()));
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    support::start_server_probed(
        &directory.join("data"),
        &directory.join("server.log"),
        &arguments,
        probe,
    )
}

fn client(arguments: &[&str], stdin: &str, environment: &[(&str, String)]) -> Result<Output> {
    let mut command = strata(arguments);
    for (name, value) in environment {
        command.env(name, value);
    }
    run(command, stdin, support::COMMAND_TIMEOUT)
}

#[test]
fn certs_create_writes_a_cluster_set_and_never_overwrites_it() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let certs = certificates(directory.path(), &["--nodes", "2", "--host", "broker.test"])?;
    for file in [
        "ca.pem",
        "node-1.pem",
        "node-1-key.pem",
        "node-2.pem",
        "node-2-key.pem",
        "client.pem",
        "client-key.pem",
    ] {
        ensure!(certs.join(file).is_file(), "{file} was not written");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("node-1-key.pem"))?
            .permissions()
            .mode();
        ensure!(mode & 0o077 == 0, "a key is readable by others: {mode:o}");
    }
    let ca_before = std::fs::read(certs.join("ca.pem"))?;

    let again = run(
        strata(&["certs", "create", "--out", certs.to_str().unwrap()]),
        "",
        support::COMMAND_TIMEOUT,
    )?;
    ensure!(
        !again.status.success(),
        "existing certificates were overwritten"
    );
    ensure!(
        again.stderr.contains("exists") && again.stderr.contains("--if-missing"),
        "{}",
        again.stderr
    );
    let kept = run(
        strata(&[
            "certs",
            "create",
            "--out",
            certs.to_str().unwrap(),
            "--if-missing",
        ]),
        "",
        support::COMMAND_TIMEOUT,
    )?;
    ensure!(kept.status.success(), "{}", kept.stderr);
    ensure!(std::fs::read(certs.join("ca.pem"))? == ca_before);
    Ok(())
}

#[test]
fn a_server_listens_beyond_loopback_only_with_tls_and_authentication_or_when_told_insecure()
-> Result<()> {
    let directory = tempfile::tempdir()?;
    let data = directory.path().join("data");
    // `strata server` on every address, with `extra` flags.
    let serve_everywhere = |extra: &[&str]| {
        let mut command = strata(&[
            "server",
            "--node-id",
            "1",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        command.args(extra);
        run(command, "", support::COMMAND_TIMEOUT)
    };
    let refused = serve_everywhere(&[])?;
    ensure!(
        !refused.status.success(),
        "a plaintext node listened on 0.0.0.0"
    );
    let error = support::single_error_line(&refused)?;
    ensure!(
        error.contains("--listen 0.0.0.0:0")
            && error.contains("--tls-cert")
            && error.contains("--insecure"),
        "{error}"
    );
    ensure!(
        !data.exists(),
        "the refused node touched its data directory"
    );

    // TLS alone is not enough: anyone could still connect and read every topic.
    let certs = certificates(directory.path(), &[])?;
    let refused = serve_everywhere(&[
        "--tls-cert",
        &path(&certs, "node-1.pem"),
        "--tls-key",
        &path(&certs, "node-1-key.pem"),
        "--tls-ca",
        &path(&certs, "ca.pem"),
    ])?;
    ensure!(
        !refused.status.success(),
        "a node without authentication listened on 0.0.0.0"
    );
    let error = support::single_error_line(&refused)?;
    ensure!(
        error.contains("no authentication") && error.contains("--require-auth"),
        "{error}"
    );
    Ok(())
}

#[test]
fn client_commands_take_their_tls_from_flags_the_environment_or_a_profile() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let certs = certificates(directory.path(), &[])?;
    let ca = path(&certs, "ca.pem");
    let server = tls_server(directory.path(), &certs, &[], &["--tls-ca", &ca])?;
    let bootstrap = server.address.as_str();

    // Flags.
    let created = client(
        &[
            "topic",
            "create",
            "secured",
            "--partitions",
            "1",
            "--replication-factor",
            "1",
            "--bootstrap",
            bootstrap,
            "--tls-ca",
            &ca,
        ],
        "",
        &[],
    )?;
    ensure!(created.status.success(), "{}", created.stderr);
    // The environment.
    let tls_env = [("STRATA_TLS_CA", ca.clone())];
    let produced = client(
        &["produce", "secured", "--bootstrap", bootstrap],
        "one\ntwo\n",
        &tls_env,
    )?;
    ensure!(produced.status.success(), "{}", produced.stderr);
    // A profile.
    let config = directory.path().join("config.toml");
    let saved = client(
        &[
            "profile",
            "create",
            "secure",
            "--bootstrap",
            bootstrap,
            "--tls-ca",
            &ca,
            "--use",
        ],
        "",
        &[("STRATA_CONFIG", config.to_str().unwrap().to_string())],
    )?;
    ensure!(saved.status.success(), "{}", saved.stderr);
    let consumed = client(
        &["consume", "secured", "--from-beginning", "-e"],
        "",
        &[("STRATA_CONFIG", config.to_str().unwrap().to_string())],
    )?;
    ensure!(consumed.status.success(), "{}", consumed.stderr);
    ensure!(
        consumed.stdout == "one\ntwo\n",
        "read {:?}",
        consumed.stdout
    );

    // Without TLS the command fails, and says it could not connect.
    let plaintext = client(&["topic", "list", "--bootstrap", bootstrap], "", &[])?;
    ensure!(!plaintext.status.success(), "a plaintext client was served");
    let error = support::single_error_line(&plaintext)?;
    ensure!(error.contains(bootstrap), "{error}");
    // A CA file that is not one is named.
    let bogus = directory.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate")?;
    let bad_ca = client(
        &[
            "topic",
            "list",
            "--bootstrap",
            bootstrap,
            "--tls-ca",
            bogus.to_str().unwrap(),
        ],
        "",
        &[],
    )?;
    ensure!(!bad_ca.status.success());
    ensure!(
        support::single_error_line(&bad_ca)?.contains("bogus.pem"),
        "{}",
        bad_ca.stderr
    );
    Ok(())
}

#[test]
fn required_client_certificates_turn_away_clients_without_one() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let certs = certificates(directory.path(), &["--client-user", "alice"])?;
    let ca = path(&certs, "ca.pem");
    let with_certificate = [
        "--tls-ca".to_string(),
        ca.clone(),
        "--tls-cert".to_string(),
        path(&certs, "client.pem"),
        "--tls-key".to_string(),
        path(&certs, "client-key.pem"),
    ];
    let probe: Vec<&str> = with_certificate.iter().map(String::as_str).collect();
    let client_ca = path(&certs, "client-ca.pem");
    let server = tls_server(
        directory.path(),
        &certs,
        &[
            "--tls-client-auth",
            "required",
            "--tls-client-ca",
            &client_ca,
        ],
        &probe,
    )?;

    let mut listed = vec!["topic", "list", "--bootstrap", server.address.as_str()];
    listed.extend(&probe);
    let served = client(&listed, "", &[])?;
    ensure!(served.status.success(), "{}", served.stderr);

    let refused = client(
        &[
            "topic",
            "list",
            "--bootstrap",
            &server.address,
            "--tls-ca",
            &ca,
        ],
        "",
        &[],
    )?;
    ensure!(
        !refused.status.success(),
        "a client without a certificate was served"
    );
    Ok(())
}
