//! `strata profile`: named connection settings in a config file, as `rpk profile` keeps them.
//!
//! The file is TOML, at `$STRATA_CONFIG`, else `$XDG_CONFIG_HOME/strata/config.toml`, else
//! `~/.config/strata/config.toml`:
//!
//! ```toml
//! current = "prod"
//!
//! [profiles.prod]
//! bootstrap = "broker1:7070,broker2:7070"
//!
//! [profiles.prod.tls]
//! ca = "/etc/strata/ca.pem"
//! ```
//!
//! Where a client command finds the cluster, first match wins: `--bootstrap`, then
//! `STRATA_BOOTSTRAP`, then the profile `STRATA_PROFILE` names, then the file's current
//! profile, then `127.0.0.1:7070`. The profile is read before the command line is parsed, so
//! `--help` shows the bootstrap a command would use. Its TLS files (`ca`, `cert`, `key`, as
//! `--tls-ca`, `--tls-cert` and `--tls-key` take them) apply where the command line and the
//! environment name none.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::output::{OutputFormat, aligned, print_json};
use crate::tls::ClientTlsArgs;
use crate::user::CredentialArgs;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when `STRATA_PROFILE` names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Brokers to contact first, as `--bootstrap` takes them.
    pub bootstrap: String,
    /// TLS files, used where the command line and the environment name none.
    #[serde(default, skip_serializing_if = "ClientTlsArgs::is_empty")]
    pub tls: ClientTlsArgs,
    /// The user to authenticate as, likewise. The password is kept in this file as given: make
    /// the file readable by its owner only.
    #[serde(default, skip_serializing_if = "CredentialArgs::is_empty")]
    pub credentials: CredentialArgs,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Save connection settings under a name.
    #[command(
        after_help = "Example:\n  strata profile create prod --bootstrap broker1:7070,broker2:7070 --use\n  strata profile create local --bootstrap 127.0.0.1:7070"
    )]
    Create {
        /// The profile's name.
        name: String,
        /// Brokers to contact first.
        #[arg(long, value_name = "HOST:PORT[,HOST:PORT...]")]
        bootstrap: String,
        #[command(flatten)]
        tls: ClientTlsArgs,
        #[command(flatten)]
        credentials: CredentialArgs,
        /// Make it the current profile too.
        #[arg(long = "use")]
        make_current: bool,
    },
    /// Make a profile the one client commands use.
    Use {
        /// The profile's name.
        name: String,
    },
    /// List the profiles; `*` marks the current one.
    List {
        /// How to print the result.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Delete a profile.
    Delete {
        /// The profile's name.
        name: String,
    },
}

/// Where the config file is.
pub fn config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STRATA_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config_home.join("strata").join("config.toml"))
}

/// The config file's content; an absent file is an empty one.
pub fn load() -> Result<ConfigFile> {
    let Some(path) = config_path() else {
        return Ok(ConfigFile::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ConfigFile::default());
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    toml::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid Strata config file (fix or delete it)",
            path.display()
        )
    })
}

fn save(config: &ConfigFile) -> Result<PathBuf> {
    let path = config_path().context("no config file location: set STRATA_CONFIG or HOME")?;
    if let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("cannot create {}", directory.display()))?;
    }
    let text = toml::to_string(config).context("cannot encode the config file")?;
    // Written aside and renamed, so an interrupted write never leaves half a file.
    let temporary = path.with_extension("toml.tmp");
    std::fs::write(&temporary, text)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(path)
}

/// The profile client commands use: `STRATA_PROFILE`'s, else the current one.
fn selected(config: &ConfigFile) -> Result<Option<(String, Profile)>> {
    let name = match std::env::var("STRATA_PROFILE") {
        Ok(name) if !name.is_empty() => name,
        _ => match &config.current {
            Some(name) => name.clone(),
            None => return Ok(None),
        },
    };
    match config.profiles.get(&name) {
        Some(profile) => Ok(Some((name, profile.clone()))),
        None => bail!(
            "profile '{name}' does not exist (`strata profile list` shows the profiles{})",
            match config_path() {
                Some(path) => format!(", kept in {}", path.display()),
                None => String::new(),
            }
        ),
    }
}

static DEFAULT_BOOTSTRAP: OnceLock<String> = OnceLock::new();
static SELECTED_TLS: OnceLock<ClientTlsArgs> = OnceLock::new();
static SELECTED_CREDENTIALS: OnceLock<CredentialArgs> = OnceLock::new();

/// Reads the selected profile once, before the command line is parsed; see
/// [`default_bootstrap`].
pub fn select_default_bootstrap() -> Result<()> {
    let (bootstrap, tls, credentials) = match selected(&load()?)? {
        Some((_, profile)) => (profile.bootstrap, profile.tls, profile.credentials),
        None => (
            crate::DEFAULT_BOOTSTRAP.to_string(),
            ClientTlsArgs::default(),
            CredentialArgs::default(),
        ),
    };
    let _ = DEFAULT_BOOTSTRAP.set(bootstrap);
    let _ = SELECTED_TLS.set(tls);
    let _ = SELECTED_CREDENTIALS.set(credentials);
    Ok(())
}

/// The selected profile's user and password; none when no profile is selected.
pub fn selected_credentials() -> CredentialArgs {
    SELECTED_CREDENTIALS.get().cloned().unwrap_or_default()
}

/// The selected profile's TLS files; none when no profile is selected.
pub fn selected_tls() -> ClientTlsArgs {
    SELECTED_TLS.get().cloned().unwrap_or_default()
}

/// The bootstrap a client command uses without `--bootstrap` or `STRATA_BOOTSTRAP`.
pub fn default_bootstrap() -> String {
    DEFAULT_BOOTSTRAP
        .get()
        .cloned()
        .unwrap_or_else(|| crate::DEFAULT_BOOTSTRAP.to_string())
}

pub fn run(command: ProfileCommand) -> Result<()> {
    let mut config = load()?;
    match command {
        ProfileCommand::Create {
            name,
            bootstrap,
            tls,
            credentials,
            make_current,
        } => {
            // Kept absolute: the profile is used from whatever directory a command runs in.
            let tls = tls.absolute()?;
            if name.trim().is_empty() {
                bail!("a profile needs a name");
            }
            if bootstrap.contains("://") {
                bail!(
                    "--bootstrap takes HOST:PORT, not a URL: use '{}'",
                    bootstrap.rsplit("://").next().unwrap_or(&bootstrap)
                );
            }
            let replaced = config
                .profiles
                .insert(
                    name.clone(),
                    Profile {
                        bootstrap,
                        tls,
                        credentials,
                    },
                )
                .is_some();
            if make_current {
                config.current = Some(name.clone());
            }
            let path = save(&config)?;
            println!(
                "{} profile {name} in {}{}",
                if replaced { "updated" } else { "created" },
                path.display(),
                if make_current {
                    "; it is now current"
                } else {
                    ""
                }
            );
        }
        ProfileCommand::Use { name } => {
            if !config.profiles.contains_key(&name) {
                bail!(
                    "profile '{name}' does not exist; `strata profile create {name} --bootstrap HOST:PORT` makes it"
                );
            }
            config.current = Some(name.clone());
            save(&config)?;
            println!("profile {name} is now current");
        }
        ProfileCommand::List { format } => match format {
            OutputFormat::Json => print_json(&json!(
                config
                    .profiles
                    .iter()
                    .map(|(name, profile)| {
                        let mut listed = json!({
                            "name": name,
                            "bootstrap": profile.bootstrap,
                            "current": config.current.as_deref() == Some(name.as_str()),
                        });
                        // As in the file: only what the profile sets, and never its password.
                        if !profile.tls.is_empty() {
                            listed["tls"] = json!(profile.tls);
                        }
                        if let Some(user) = &profile.credentials.user {
                            listed["user"] = json!(user);
                        }
                        listed
                    })
                    .collect::<Vec<_>>()
            )),
            OutputFormat::Table => {
                let mut rows = vec![vec![
                    String::new(),
                    "NAME".to_string(),
                    "BOOTSTRAP".to_string(),
                    "TLS CA".to_string(),
                ]];
                rows.extend(config.profiles.iter().map(|(name, profile)| {
                    let current = config.current.as_deref() == Some(name.as_str());
                    vec![
                        if current { "*" } else { "" }.to_string(),
                        name.clone(),
                        profile.bootstrap.clone(),
                        profile
                            .tls
                            .ca
                            .as_ref()
                            .map_or("-".to_string(), |ca| ca.display().to_string()),
                    ]
                }));
                print!("{}", aligned(&rows));
            }
        },
        ProfileCommand::Delete { name } => {
            if config.profiles.remove(&name).is_none() {
                bail!("profile '{name}' does not exist");
            }
            if config.current.as_deref() == Some(name.as_str()) {
                config.current = None;
            }
            save(&config)?;
            println!("deleted profile {name}");
        }
    }
    Ok(())
}
