//! `strata user`: the cluster's users (SCRAM credentials) and the flags a client command
//! authenticates with.

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::json;
use strata_client::{Credentials, ScramMechanism};

use crate::AdminTarget;
use crate::output::{FormatArg, OutputFormat, aligned, print_json};

/// Who a client command authenticates as. Each flag falls back to its environment variable,
/// then to the selected profile (`strata profile`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct CredentialArgs {
    /// The user to authenticate as, on clusters that require it (`strata server
    /// --require-auth`). Send credentials over TLS only.
    #[arg(
        id = "user",
        long = "user",
        env = "STRATA_USER",
        value_name = "NAME",
        requires = "password"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The user's password. Prefer STRATA_PASSWORD or a profile to the flag, which other users
    /// of the machine can see in the process list.
    #[arg(
        id = "password",
        long = "password",
        env = "STRATA_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD",
        requires = "user"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl CredentialArgs {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// These, or the selected profile's; `None` when neither names a user.
    pub fn credentials(&self) -> Option<Credentials> {
        let profile = crate::profile::selected_credentials();
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => Some(Credentials::new(user, password)),
            _ => match (profile.user, profile.password) {
                (Some(user), Some(password)) => Some(Credentials::new(user, password)),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user, or set a user's password (SCRAM-SHA-256 and SCRAM-SHA-512 credentials).
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$ALICE_PASSWORD\" | strata user create alice --password-stdin\n  strata user create bob --new-password hunter2"
    )]
    Create(CreateArgs),
    /// Delete a user and all its credentials.
    #[command(after_help = "Example:\n  strata user delete alice")]
    Delete {
        /// The user's name.
        name: String,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// List the users and their SCRAM mechanisms.
    #[command(after_help = "Example:\n  strata user list --format json")]
    List {
        #[command(flatten)]
        target: AdminTarget,
        #[command(flatten)]
        output: FormatArg,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The user's name.
    name: String,
    /// The new password (visible in the process list; see --password-stdin).
    #[arg(
        long,
        value_name = "PASSWORD",
        required_unless_present = "password_stdin",
        conflicts_with = "password_stdin"
    )]
    new_password: Option<String>,
    /// Read the new password from the first line of stdin.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    target: AdminTarget,
}

pub async fn run(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Create(args) => {
            let password = match args.new_password {
                Some(password) => password,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("cannot read the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if password.is_empty() {
                bail!("the password is empty");
            }
            let admin = args.target.connect().await?;
            admin
                .upsert_user(
                    &args.name,
                    &password,
                    &[ScramMechanism::ScramSha256, ScramMechanism::ScramSha512],
                )
                .await
                .with_context(|| format!("cannot set user '{}'", args.name))?;
            println!(
                "user {} has SCRAM-SHA-256 and SCRAM-SHA-512 credentials",
                args.name
            );
        }
        UserCommand::Delete { name, target } => {
            let admin = target.connect().await?;
            admin
                .delete_user(&name)
                .await
                .with_context(|| format!("cannot delete user '{name}'"))?;
            println!("deleted user {name}");
        }
        UserCommand::List { target, output } => {
            let admin = target.connect().await?;
            let users = admin.list_users().await.context("cannot list users")?;
            let mechanisms = |user: &strata_client::UserDescription| {
                user.mechanisms
                    .iter()
                    .map(|(mechanism, _)| mechanism.name())
                    .collect::<Vec<_>>()
            };
            if output.format == OutputFormat::Json {
                print_json(&json!(
                    users
                        .iter()
                        .map(|user| json!({
                            "user": user.user,
                            "mechanisms": user.mechanisms.iter().map(|(mechanism, iterations)| json!({
                                "mechanism": mechanism.name(),
                                "iterations": iterations,
                            })).collect::<Vec<_>>(),
                        }))
                        .collect::<Vec<_>>()
                ));
            } else {
                let mut rows = vec![vec!["USER".to_string(), "MECHANISMS".to_string()]];
                rows.extend(
                    users
                        .iter()
                        .map(|user| vec![user.user.clone(), mechanisms(user).join(",")]),
                );
                print!("{}", aligned(&rows));
            }
        }
    }
    Ok(())
}
