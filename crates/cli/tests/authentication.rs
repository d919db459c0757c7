//! Users from the command line: a server that requires authentication, its bootstrap user,
//! `strata user create|list|delete`, and client commands that authenticate from flags, the
//! environment or a profile (`acl.rs` tests what the users may do).

mod support;

use anyhow::{Result, ensure};
use support::{Output, run, strata};

const ADMIN: [&str; 4] = ["--user", "admin", "--password", "admin-secret"];

fn command(arguments: &[&str], environment: &[(&str, &str)]) -> Result<Output> {
    let mut command = strata(arguments);
    for (name, value) in environment {
        command.env(name, value);
    }
    run(command, "", support::COMMAND_TIMEOUT)
}

fn with(base: &[&str], extra: &[&str]) -> Vec<String> {
    base.iter()
        .chain(extra)
        .map(|argument| argument.to_string())
        .collect()
}

fn succeeds(arguments: &[String], environment: &[(&str, &str)]) -> Result<Output> {
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let output = command(&arguments, environment)?;
    ensure!(
        output.status.success(),
        "strata {arguments:?} failed: {}",
        output.stderr
    );
    Ok(output)
}

#[test]
fn users_are_managed_and_every_client_command_authenticates() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let server = support::start_server_probed(
        &directory.path().join("data"),
        &directory.path().join("server.log"),
        &["--require-auth", "--bootstrap-user", "admin:admin-secret"],
        &ADMIN,
    )?;
    let bootstrap = ["--bootstrap", server.address.as_str()];

    // Without credentials, or with a wrong password, a command says why it was refused.
    let anonymous = command(
        &with(&["topic", "list"], &bootstrap)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[],
    )?;
    ensure!(
        !anonymous.status.success(),
        "an anonymous client was served"
    );
    ensure!(
        anonymous.stderr.contains("authentication required"),
        "{}",
        anonymous.stderr
    );
    let wrong = command(
        &[
            "topic",
            "list",
            "--bootstrap",
            &server.address,
            "--user",
            "admin",
            "--password",
            "guess",
        ],
        &[],
    )?;
    ensure!(!wrong.status.success());
    ensure!(
        wrong.stderr.contains("invalid user name or password") && !wrong.stderr.contains("guess"),
        "{}",
        wrong.stderr
    );

    // The bootstrap user makes another; the password comes from stdin.
    let mut create = strata(&[
        "user",
        "create",
        "alice",
        "--password-stdin",
        "--bootstrap",
        &server.address,
    ]);
    create.args(ADMIN);
    let created = run(create, "alice-secret\n", support::COMMAND_TIMEOUT)?;
    ensure!(created.status.success(), "{}", created.stderr);
    let listed = succeeds(
        &with(
            &["user", "list", "--format", "json"],
            &[&bootstrap[..], &ADMIN[..]].concat(),
        ),
        &[],
    )?;
    let users: serde_json::Value = serde_json::from_str(&listed.stdout)?;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["user"].as_str().unwrap())
        .collect();
    ensure!(names == ["admin", "alice"], "{names:?}");
    // A cluster that requires authentication also checks ACLs, which only the bootstrap user
    // passes without: alice gets the topic she works with (ACLs have tests of their own).
    succeeds(
        &with(
            &[
                "acl",
                "create",
                "--principal",
                "alice",
                "--operation",
                "all",
                "--topic",
                "guarded",
            ],
            &[&bootstrap[..], &ADMIN[..]].concat(),
        ),
        &[],
    )?;

    // Alice works from the environment...
    let alice = [
        ("STRATA_USER", "alice"),
        ("STRATA_PASSWORD", "alice-secret"),
    ];
    succeeds(
        &with(
            &[
                "topic",
                "create",
                "guarded",
                "--partitions",
                "1",
                "--replication-factor",
                "1",
            ],
            &bootstrap,
        ),
        &alice,
    )?;
    let mut produce = strata(&["produce", "guarded", "--bootstrap", &server.address]);
    produce.envs(alice);
    let produced = run(produce, "one\ntwo\n", support::COMMAND_TIMEOUT)?;
    ensure!(produced.status.success(), "{}", produced.stderr);
    // ... and from a profile.
    let config = directory.path().join("config.toml");
    let config = config.to_str().unwrap();
    succeeds(
        &with(
            &[
                "profile",
                "create",
                "alice",
                "--bootstrap",
                &server.address,
                "--user",
                "alice",
                "--password",
                "alice-secret",
                "--use",
            ],
            &[],
        ),
        &[("STRATA_CONFIG", config)],
    )?;
    let consumed = succeeds(
        &with(&["consume", "guarded", "--from-beginning", "-e"], &[]),
        &[("STRATA_CONFIG", config)],
    )?;
    ensure!(consumed.stdout == "one\ntwo\n", "{:?}", consumed.stdout);
    let health = succeeds(&with(&["health"], &bootstrap), &alice)?;
    ensure!(health.stdout.starts_with("ok"), "{}", health.stdout);

    // Once deleted, alice is refused like any stranger.
    succeeds(
        &with(
            &["user", "delete", "alice"],
            &[&bootstrap[..], &ADMIN[..]].concat(),
        ),
        &[],
    )?;
    let refused = command(&["topic", "list", "--bootstrap", &server.address], &alice)?;
    ensure!(!refused.status.success(), "a deleted user was served");
    Ok(())
}
