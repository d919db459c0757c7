//! `strata profile`: connection settings kept in a config file, and the order in which a client
//! command picks its bootstrap (flag, STRATA_BOOTSTRAP, STRATA_PROFILE, current profile).

mod support;

use anyhow::{Result, ensure};
use std::path::Path;
use support::{Output, run, start_server, strata};

/// `strata ARGUMENTS` with `config` as its config file, and optionally `STRATA_PROFILE`.
fn with_config(config: &Path, profile: Option<&str>, arguments: &[&str]) -> Result<Output> {
    let mut command = strata(arguments);
    command.env("STRATA_CONFIG", config);
    if let Some(profile) = profile {
        command.env("STRATA_PROFILE", profile);
    }
    run(command, "", support::COMMAND_TIMEOUT)
}

fn succeeded(output: Output, what: &str) -> Result<Output> {
    ensure!(
        output.status.success(),
        "{what} failed: {}{}",
        output.stdout,
        output.stderr
    );
    Ok(output)
}

#[test]
fn profiles_are_created_listed_made_current_and_deleted() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let config = directory.path().join("nested/config.toml");
    succeeded(
        with_config(
            &config,
            None,
            &[
                "profile",
                "create",
                "prod",
                "--bootstrap",
                "b1:7070,b2:7070",
            ],
        )?,
        "create prod",
    )?;
    succeeded(
        with_config(
            &config,
            None,
            &[
                "profile",
                "create",
                "local",
                "--bootstrap",
                "127.0.0.1:7070",
                "--use",
            ],
        )?,
        "create local",
    )?;
    let listed = succeeded(with_config(&config, None, &["profile", "list"])?, "list")?;
    let lines: Vec<&str> = listed.stdout.lines().map(str::trim_end).collect();
    ensure!(lines.len() == 3, "{lines:?}");
    ensure!(
        lines[1].trim_start().starts_with('*') && lines[1].contains("local"),
        "the current profile is marked: {lines:?}"
    );
    succeeded(
        with_config(&config, None, &["profile", "use", "prod"])?,
        "use",
    )?;
    let json = succeeded(
        with_config(&config, None, &["profile", "list", "--format", "json"])?,
        "list json",
    )?;
    let profiles: serde_json::Value = serde_json::from_str(&json.stdout)?;
    ensure!(
        profiles
            == serde_json::json!([
                {"name": "local", "bootstrap": "127.0.0.1:7070", "current": false},
                {"name": "prod", "bootstrap": "b1:7070,b2:7070", "current": true},
            ]),
        "{profiles}"
    );
    succeeded(
        with_config(&config, None, &["profile", "delete", "prod"])?,
        "delete",
    )?;
    let text = std::fs::read_to_string(&config)?;
    ensure!(
        !text.contains("prod") && !text.contains("current"),
        "deleting the current profile leaves none current: {text}"
    );

    let missing = with_config(&config, None, &["profile", "use", "nowhere"])?;
    ensure!(!missing.status.success());
    ensure!(
        support::single_error_line(&missing)?.contains("profile 'nowhere' does not exist"),
        "{}",
        missing.stderr
    );
    let url = with_config(
        &config,
        None,
        &["profile", "create", "web", "--bootstrap", "http://b1:7070"],
    )?;
    ensure!(!url.status.success());
    ensure!(
        support::single_error_line(&url)?.contains("use 'b1:7070'"),
        "{}",
        url.stderr
    );
    Ok(())
}

#[test]
fn a_client_command_takes_the_flag_then_the_environment_then_the_profile() -> Result<()> {
    let server = start_server()?;
    let directory = tempfile::tempdir()?;
    let config = directory.path().join("config.toml");
    let unreachable = support::free_address()?;
    succeeded(
        with_config(
            &config,
            None,
            &[
                "profile",
                "create",
                "here",
                "--bootstrap",
                &server.address,
                "--use",
            ],
        )?,
        "create here",
    )?;
    succeeded(
        with_config(
            &config,
            None,
            &["profile", "create", "nowhere", "--bootstrap", &unreachable],
        )?,
        "create nowhere",
    )?;
    let topics = ["topic", "list", "--timeout", "3s"];

    succeeded(with_config(&config, None, &topics)?, "the current profile")?;
    let help = succeeded(
        with_config(&config, None, &["topic", "list", "--help"])?,
        "help",
    )?;
    ensure!(
        help.stdout
            .contains(&format!("[default: {}]", server.address)),
        "--help shows the profile's bootstrap as the default: {}",
        help.stdout
    );
    let elsewhere = with_config(&config, Some("nowhere"), &topics)?;
    ensure!(
        !elsewhere.status.success(),
        "STRATA_PROFILE picks the other profile, whose cluster is not there"
    );
    let mut flagged: Vec<&str> = topics.to_vec();
    flagged.extend(["--bootstrap", &server.address]);
    succeeded(
        with_config(&config, Some("nowhere"), &flagged)?,
        "--bootstrap over STRATA_PROFILE",
    )?;
    let mut command = strata(&topics);
    command
        .env("STRATA_CONFIG", &config)
        .env("STRATA_PROFILE", "nowhere")
        .env("STRATA_BOOTSTRAP", &server.address);
    succeeded(
        run(command, "", support::COMMAND_TIMEOUT)?,
        "STRATA_BOOTSTRAP over STRATA_PROFILE",
    )?;
    let unknown = with_config(&config, Some("typo"), &topics)?;
    ensure!(
        unknown.stderr.contains("profile 'typo' does not exist"),
        "a profile that does not exist is named: {}",
        unknown.stderr
    );
    Ok(())
}

#[test]
fn a_broken_config_file_is_reported_and_does_not_stop_a_command_given_its_bootstrap() -> Result<()>
{
    let server = start_server()?;
    let directory = tempfile::tempdir()?;
    let config = directory.path().join("config.toml");
    std::fs::write(&config, "current = [unclosed\n")?;
    let listed = with_config(
        &config,
        None,
        &["topic", "list", "--bootstrap", &server.address],
    )?;
    ensure!(listed.status.success(), "{}", listed.stderr);
    ensure!(
        listed.stderr.contains("is not a valid Strata config file"),
        "{}",
        listed.stderr
    );
    let profiles = with_config(&config, None, &["profile", "list"])?;
    ensure!(!profiles.status.success());
    ensure!(
        support::single_error_line(&profiles)?.contains("fix or delete it"),
        "{}",
        profiles.stderr
    );
    Ok(())
}
