//! TLS on the command line: a server's certificate flags and the plaintext guard, a client's
//! trust and certificate flags, and `strata certs create`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use strata_broker::TlsConfig;
use strata_client::{ClientTls, IdentityFiles};

/// How a server speaks TLS and whom it lets in.
#[derive(Debug, Clone, Args)]
pub struct ServerSecurityArgs {
    /// This node's certificate chain (PEM). With --tls-key and --tls-ca, every listener (client,
    /// internal, Kafka) speaks TLS and nodes verify each other's certificates both ways. The
    /// files are re-read when they change, so a renewed certificate needs no restart.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The CA bundle (PEM) that signs the nodes' certificates, and the clients' when
    /// --tls-client-auth asks for them.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// Whether clients of the client and Kafka listeners present a certificate signed by
    /// --tls-client-ca. The internal listener always requires one signed by --tls-ca: it serves
    /// other nodes only.
    #[arg(long, value_enum, default_value_t = ClientAuthArg::None, requires = "tls_cert")]
    pub tls_client_auth: ClientAuthArg,
    /// The CA bundle (PEM) that signs clients' certificates [default: --tls-ca]. A CA of their
    /// own keeps client certificates off the internal listener, which accepts any certificate
    /// --tls-ca signed as a node.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Clients of the client and Kafka listeners must prove a user: SASL (SCRAM-SHA-256,
    /// SCRAM-SHA-512, or PLAIN over TLS) on the Kafka listener, `authorization: Basic` on every
    /// gRPC call. Users are made with `strata user create` or --bootstrap-user. It also turns
    /// on ACLs (`strata acl`): a user may then do only what an ACL allows, unless a super user.
    #[arg(long)]
    pub require_auth: bool,
    /// A first user, NAME:PASSWORD, created if the cluster does not have it yet (so a cluster
    /// that requires authentication can be reached at all). Give it by environment, not on the
    /// command line, where other users of the machine can read it.
    #[arg(long, env = "STRATA_BOOTSTRAP_USER", hide_env_values = true, value_name = "NAME:PASSWORD", value_parser = parse_bootstrap_user)]
    pub bootstrap_user: Option<(String, String)>,
    /// A user every authorization check lets through, as NAME or User:NAME (Kafka's
    /// super.users); repeat, or separate with commas, for several. The bootstrap user is always
    /// one. ACLs (`strata acl`) are enforced only with --require-auth: without it every client
    /// may do everything.
    #[arg(long = "super-user", env = "STRATA_SUPER_USERS", value_name = "NAME", value_delimiter = ',', value_parser = parse_super_user, requires = "require_auth")]
    pub super_users: Vec<String>,
    /// Serve even on an address other machines can reach without TLS and --require-auth.
    /// Without them anyone who reaches a port reads and writes every topic; by default such a
    /// node listens on loopback only.
    #[arg(long)]
    pub insecure: bool,
}

fn parse_bootstrap_user(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok((user.to_string(), password.to_string()))
        }
        _ => Err("expected NAME:PASSWORD, both non-empty".to_string()),
    }
}

/// A `--super-user` name, with surrounding spaces (`a, b`) dropped.
fn parse_super_user(text: &str) -> Result<String, String> {
    let name = text.trim();
    match name
        .strip_prefix(strata_client::acl::USER_PRINCIPAL_PREFIX)
        .unwrap_or(name)
    {
        "" => Err("expected a user NAME or User:NAME".to_string()),
        // Super users are matched by name: `*` would be a user called `*`, not everyone.
        strata_client::acl::WILDCARD => Err(
            "`*` is not a user; a cluster open to everyone is one without --require-auth"
                .to_string(),
        ),
        _ => Ok(name.to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientAuthArg {
    /// Clients need no certificate.
    None,
    /// A certificate is verified (against --tls-client-ca) if a client sends one, and logs the
    /// client in as the user its CN names.
    Optional,
    /// Clients without a certificate signed by --tls-client-ca are refused.
    Required,
}

impl ServerSecurityArgs {
    /// The broker's TLS configuration, after refusing an open node on a reachable address
    /// unless --insecure says so. `listeners` names each bound address by its flag.
    pub fn tls_config(&self, listeners: &[(&str, SocketAddr)]) -> Result<Option<TlsConfig>> {
        let tls = matches!(
            (&self.tls_cert, &self.tls_key, &self.tls_ca),
            (Some(_), Some(_), Some(_))
        );
        if !self.insecure
            && (!tls || !self.require_auth)
            && let Some((flag, address)) = listeners
                .iter()
                .find(|(_, address)| !address.ip().is_loopback())
        {
            let missing = match (tls, self.require_auth) {
                (false, false) => "no TLS and no authentication",
                (false, true) => "no TLS",
                _ => "no authentication",
            };
            bail!(
                "{flag} {address} can be reached from other machines, and this node has \
                 {missing}: give --tls-cert, --tls-key and --tls-ca (`strata certs create` makes \
                 a development set) and --require-auth, or --insecure to serve it open anyway"
            );
        }
        let (Some(certificate), Some(key), Some(ca)) =
            (&self.tls_cert, &self.tls_key, &self.tls_ca)
        else {
            return Ok(None);
        };
        Ok(Some(TlsConfig {
            identity: IdentityFiles {
                certificate: certificate.clone(),
                key: key.clone(),
            },
            ca: ca.clone(),
            client_auth: match self.tls_client_auth {
                ClientAuthArg::None => strata_tls::ClientAuth::None,
                ClientAuthArg::Optional => strata_tls::ClientAuth::Optional,
                ClientAuthArg::Required => strata_tls::ClientAuth::Required,
            },
            client_ca: self.tls_client_ca.clone(),
        }))
    }
}

/// How a client command speaks TLS to the cluster. Each flag falls back to its environment
/// variable, then to the selected profile (`strata profile`), where the same three are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsArgs {
    /// Speak TLS, trusting brokers whose certificates this CA bundle (PEM) signed.
    #[arg(
        id = "tls_ca",
        long = "tls-ca",
        env = "STRATA_TLS_CA",
        value_name = "FILE"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM) for brokers that ask for one (their --tls-client-auth).
    #[arg(
        id = "tls_cert",
        long = "tls-cert",
        env = "STRATA_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        id = "tls_key",
        long = "tls-key",
        env = "STRATA_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

impl ClientTlsArgs {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The same files named by absolute paths.
    pub fn absolute(self) -> Result<Self> {
        let absolute = |path: Option<PathBuf>| {
            path.map(|path| {
                std::path::absolute(&path)
                    .with_context(|| format!("cannot resolve {}", path.display()))
            })
            .transpose()
        };
        Ok(Self {
            ca: absolute(self.ca)?,
            cert: absolute(self.cert)?,
            key: absolute(self.key)?,
        })
    }

    /// `None` means plaintext.
    pub fn client_tls(&self) -> Result<Option<ClientTls>> {
        let profile = crate::profile::selected_tls();
        let ca = self.ca.clone().or(profile.ca);
        let (certificate, key) = match (&self.cert, &self.key) {
            (Some(certificate), Some(key)) => (Some(certificate.clone()), Some(key.clone())),
            _ => (profile.cert, profile.key),
        };
        let identity = match (certificate, key) {
            (Some(certificate), Some(key)) => Some(IdentityFiles { certificate, key }),
            _ => None,
        };
        let Some(ca) = ca else {
            if identity.is_some() {
                bail!("a client certificate is sent over TLS only: give --tls-ca too");
            }
            return Ok(None);
        };
        ClientTls::new(&ca, identity.as_ref())
            .map(Some)
            .context("cannot set up TLS")
    }
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a development CA and a certificate for each node, and a clients' CA with one client
    /// certificate.
    #[command(
        after_help = "Example:\n  strata certs create --out certs --nodes 3\n  strata server --node-id 1 ... --tls-cert certs/node-1.pem --tls-key certs/node-1-key.pem --tls-ca certs/ca.pem --tls-client-auth optional --tls-client-ca certs/client-ca.pem\n  strata topic list --tls-ca certs/ca.pem --tls-cert certs/client.pem --tls-key certs/client-key.pem"
    )]
    Create {
        /// Directory to write the files into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// How many node certificates: node-1.pem to node-N.pem.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        nodes: u32,
        /// Another host name or IP address every node certificate is valid for (repeatable).
        /// localhost, 127.0.0.1, ::1 and strata-<i> are always included.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// The user named in the client certificate (client.pem).
        #[arg(long, default_value = "client", value_name = "NAME")]
        client_user: String,
        /// Do nothing if DIR already holds a ca.pem (for a container that makes its cluster's
        /// certificates on first start only). Without it, existing files are refused.
        #[arg(long)]
        if_missing: bool,
    },
}

pub fn run_certs(command: CertsCommand) -> Result<()> {
    match command {
        CertsCommand::Create {
            out,
            nodes,
            hosts,
            client_user,
            if_missing,
        } => {
            let existing = out.join("ca.pem");
            if existing.exists() {
                if if_missing {
                    println!("{} exists; nothing written", existing.display());
                    return Ok(());
                }
                bail!(
                    "{} exists; certificates are not overwritten (remove them, or pass \
                     --if-missing to keep them)",
                    existing.display()
                );
            }
            let files = strata_tls::dev_certs::write_cluster(&out, nodes, &hosts, &client_user)
                .with_context(|| format!("cannot write certificates to {}", out.display()))?;
            println!("CA:     {}", files.ca.display());
            for (index, node) in files.nodes.iter().enumerate() {
                println!(
                    "node {}: {} {}",
                    index + 1,
                    node.certificate.display(),
                    node.key.display()
                );
            }
            println!(
                "client CA: {} (the servers' --tls-client-ca)",
                files.client_ca.display()
            );
            println!(
                "client: {} {} (user {client_user})",
                files.client.certificate.display(),
                files.client.key.display()
            );
            println!(
                "These are for development: the keys are unencrypted and the CA's key is not kept."
            );
            Ok(())
        }
    }
}

/// The client builders a command points at the cluster: its bootstrap and its TLS, set in one
/// place so that no command forgets the TLS.
pub trait ConnectTo: Sized {
    fn with_bootstrap(self, bootstrap: &str) -> Self;
    fn with_tls(self, tls: ClientTls) -> Self;
    fn with_credentials(self, credentials: strata_client::Credentials) -> Self;
    fn with_address_rewrite(self, advertised: &str, reachable: &str) -> Self;

    /// `target`'s bootstrap, TLS and credentials.
    fn connect_to(self, target: &crate::Bootstrap) -> Result<Self> {
        Ok(self.aimed_at(&target.cluster_target()?))
    }

    /// `target`'s bootstrap, TLS and credentials, already resolved.
    fn aimed_at(self, target: &ClusterTarget) -> Self {
        let mut builder = self.with_bootstrap(&target.bootstrap);
        if let Some(tls) = &target.tls {
            builder = builder.with_tls(tls.clone());
        }
        if let Some(credentials) = &target.credentials {
            builder = builder.with_credentials(credentials.clone());
        }
        for (advertised, reachable) in &target.address_rewrites {
            builder = builder.with_address_rewrite(advertised, reachable);
        }
        builder
    }
}

/// Where a client finds the cluster and how it proves itself: what a command's flags (and the
/// profile behind them) say, or what the web console's signed-in user gave.
#[derive(Clone, Debug)]
pub struct ClusterTarget {
    pub bootstrap: String,
    /// `None` speaks plaintext.
    pub tls: Option<ClientTls>,
    /// `None` connects as no one, which a cluster that requires authentication refuses.
    pub credentials: Option<strata_client::Credentials>,
    /// Broker addresses to dial instead of the advertised ones (advertised, reachable).
    pub address_rewrites: Vec<(String, String)>,
}

macro_rules! connect_to {
    ($($builder:ty),*) => {$(
        impl ConnectTo for $builder {
            fn with_bootstrap(self, bootstrap: &str) -> Self {
                self.bootstrap(bootstrap)
            }
            fn with_tls(self, tls: ClientTls) -> Self {
                self.tls(tls)
            }
            fn with_credentials(self, credentials: strata_client::Credentials) -> Self {
                self.credentials(credentials)
            }
            fn with_address_rewrite(self, advertised: &str, reachable: &str) -> Self {
                self.rewrite_address(advertised, reachable)
            }
        }
    )*};
}

connect_to!(
    strata_client::ProducerConfigBuilder,
    strata_client::ConsumerConfigBuilder,
    strata_client::AdminConfigBuilder,
    strata_client::ShareConsumerConfig
);
