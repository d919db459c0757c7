//! `strata server` and `strata dev`: brokers in this process.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use strata_broker::{Broker, BrokerConfig};

use crate::console::Console;
use crate::duration::{self, DurationParser, Unit};

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// This broker's id, unique in the cluster.
    #[arg(long, value_name = "N")]
    node_id: i32,
    /// Where the broker keeps its logs.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Address to bind; port 0 picks a free one.
    #[arg(long, value_name = "HOST:PORT")]
    listen: String,
    /// Address clients are told to use; defaults to the bound address.
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Address of the internal listener, which serves only other nodes (replication and the
    /// controller quorum), never clients; keep it off networks clients reach
    /// [default: the --listen host at the port --voters gives this node].
    #[arg(long, value_name = "HOST:PORT")]
    internal_listen: Option<String>,
    /// Address of the Kafka listener, which speaks Kafka's wire protocol to Kafka clients and
    /// tools (kcat, librdkafka, the Java client); port 0 picks a free one [default: none].
    #[arg(long, value_name = "HOST:PORT")]
    kafka_listen: Option<String>,
    /// Address Kafka clients are told to use; defaults to the bound Kafka address.
    #[arg(long, value_name = "HOST:PORT", requires = "kafka_listen")]
    kafka_advertise: Option<String>,
    /// Address of the HTTP admin listener (HTTPS with --tls-cert): the web console at /,
    /// Prometheus metrics at /metrics, and /health and /ready for probes. Metrics and probes
    /// take no credentials and the console asks for the cluster's own: bind it where only
    /// operators and their monitoring reach [default: none].
    #[arg(long, value_name = "HOST:PORT")]
    http_listen: Option<String>,
    /// Where the web console on --http-listen dials brokers whose advertised addresses do not
    /// lead to them from this node, as ADVERTISED=REACHABLE pairs: for a node in a container
    /// network whose brokers advertise the host's ports (as deploy/docker-compose.yml does)
    /// [default: the advertised addresses].
    #[arg(long, value_name = "ADVERTISED=REACHABLE,...", value_delimiter = ',', value_parser = parse_address_rewrite, requires = "http_listen")]
    console_broker_addresses: Vec<(String, String)>,
    /// Every controller voter as id@host:port of its internal listener, comma-separated; omit
    /// for a single-node cluster.
    #[arg(long, value_name = "ID@HOST:PORT,...", value_parser = parse_voters)]
    voters: Option<Voters>,
    #[command(flatten)]
    security: crate::tls::ServerSecurityArgs,
    /// Kafka's offsets.retention.minutes: a group's committed offsets are deleted once it has
    /// had no members, and the offset no commit, for this long [default: 7d].
    #[arg(long, value_name = "DURATION", value_parser = OFFSETS_RETENTION)]
    offsets_retention: Option<Duration>,
    /// --offsets-retention in minutes, its old spelling.
    #[arg(long, hide = true, value_name = "MIN", conflicts_with = "offsets_retention", value_parser = OFFSETS_RETENTION.number_of(Unit::Minutes))]
    offsets_retention_minutes: Option<Duration>,
    /// Bytes of produce requests the broker appends at once across all connections; past it,
    /// producers wait (Kafka's queued.max.request.bytes) [default: 268435456, two of the largest
    /// requests].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    queued_max_request_bytes: Option<u64>,
    /// Async worker threads, which serve the network, handle requests and make small appends
    /// (large appends and fsyncs run on a separate blocking pool) [default: one per CPU].
    /// Consider 1 when clients share a small machine with the broker: on a 2-vCPU VM running the
    /// benchmark client too, one worker produced and replayed faster, because waking the
    /// second worker cost more than it added (benches/README.md, "Broker worker threads").
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
    #[command(flatten)]
    log: LogArgs,
}

/// How a node writes its log (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// How the log is written: `text` for people, `json` (one object per line) for log
    /// collectors. RUST_LOG chooses what is logged.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "STRATA_LOG_FORMAT")]
    log_format: LogFormat,
}

/// `--offsets-retention`: Kafka's least, a minute.
const OFFSETS_RETENTION: DurationParser = DurationParser::human().at_least(Duration::from_secs(60));

impl ServerArgs {
    pub fn worker_threads(&self) -> Option<usize> {
        self.worker_threads.map(usize::from)
    }

    pub fn log_format(&self) -> LogFormat {
        self.log.log_format
    }
}

impl DevArgs {
    pub fn log_format(&self) -> LogFormat {
        self.log.log_format
    }
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// How many brokers to run.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
    /// Where the brokers keep their logs, one directory per node.
    #[arg(long, default_value = "./strata-dev-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Port of node 1; node i listens on port + i - 1 for clients, and on port + 100 + i - 1
    /// for the other nodes (replication and the controller quorum).
    #[arg(long, default_value_t = 7070, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Kafka listener port of node 1; node i listens on port + i - 1 for Kafka clients. 0 opens
    /// no Kafka listener.
    #[arg(long, default_value_t = 9092, value_name = "P")]
    kafka_port: u16,
    /// HTTP admin port of node 1 (web console, metrics, health); node i listens on port + i - 1.
    /// 0 opens no HTTP admin listener.
    #[arg(long, default_value_t = 8080, value_name = "P")]
    http_port: u16,
    #[command(flatten)]
    log: LogArgs,
}

/// How far above a `strata dev` node's client port its internal listener is.
const DEV_INTERNAL_PORT_OFFSET: u32 = 100;

/// `127.0.0.1` at `base + offset + node - 1`: where `strata dev` puts node `node`'s listener.
fn node_address(base: u16, node: i32, offset: u32) -> Result<String> {
    let port = u32::from(base) + offset + node as u32 - 1;
    let port = u16::try_from(port)
        .ok()
        .with_context(|| format!("node {node} would need port {port}, above 65535"))?;
    Ok(format!("127.0.0.1:{port}"))
}

/// `--voters` parsed: (node id, host:port) pairs.
#[derive(Debug, Clone)]
pub struct Voters(Vec<(i32, String)>);

fn parse_voters(text: &str) -> Result<Voters, String> {
    let mut voters: Vec<(i32, String)> = Vec::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| format!("voter '{entry}' is not ID@HOST:PORT"))?;
        let id: i32 = id
            .parse()
            .map_err(|_| format!("voter '{entry}' has a node id that is not a number"))?;
        let valid_address = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0)
        });
        if !valid_address {
            return Err(format!(
                "voter '{entry}' has an address that is not HOST:PORT"
            ));
        }
        if voters.iter().any(|(known, _)| *known == id) {
            return Err(format!("voter id {id} appears twice"));
        }
        voters.push((id, address.to_string()));
    }
    if voters.is_empty() {
        return Err("no voters given; expected ID@HOST:PORT[,ID@HOST:PORT...]".to_string());
    }
    Ok(Voters(voters))
}

fn resolve_listen(flag: &str, listen: &str) -> Result<SocketAddr> {
    listen
        .to_socket_addrs()
        .with_context(|| format!("{flag} '{listen}' is not a HOST:PORT this machine can bind"))?
        .next()
        .with_context(|| format!("{flag} '{listen}' resolves to no address"))
}

fn server_config(args: ServerArgs) -> Result<BrokerConfig> {
    let voters = args.voters.map(|voters| voters.0).unwrap_or_default();
    if !voters.is_empty() && !voters.iter().any(|(id, _)| *id == args.node_id) {
        bail!("--voters does not list this node's id {}", args.node_id);
    }
    let mut config = BrokerConfig {
        node_id: args.node_id,
        data_dir: args.data_dir,
        listen: resolve_listen("--listen", &args.listen)?,
        advertise: args.advertise,
        internal_listen: args
            .internal_listen
            .as_deref()
            .map(|address| resolve_listen("--internal-listen", address))
            .transpose()?,
        kafka_listen: args
            .kafka_listen
            .as_deref()
            .map(|address| resolve_listen("--kafka-listen", address))
            .transpose()?,
        kafka_advertise: args.kafka_advertise,
        http_listen: args
            .http_listen
            .as_deref()
            .map(|address| resolve_listen("--http-listen", address))
            .transpose()?,
        voters,
        ..BrokerConfig::default()
    };
    // The internal listener binds --listen's IP unless --internal-listen says otherwise, so
    // these are every address the node listens on.
    let mut listeners = vec![("--listen", config.listen)];
    listeners.extend(
        config
            .internal_listen
            .map(|address| ("--internal-listen", address)),
    );
    listeners.extend(
        config
            .kafka_listen
            .map(|address| ("--kafka-listen", address)),
    );
    config.tls = args.security.tls_config(&listeners)?;
    config.require_authentication = args.security.require_auth;
    config.bootstrap_user = args.security.bootstrap_user;
    config.super_users = args.security.super_users;
    if let Some(bytes) = args.queued_max_request_bytes {
        config.queued_max_request_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    }
    if let Some(retention) = duration::given(args.offsets_retention, args.offsets_retention_minutes)
    {
        config.groups.coordinator.offsets_retention_ms =
            i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    }
    Ok(config)
}

/// Raises this process's soft limit on open files to its hard limit, as Kafka's and Redpanda's
/// operators are told to: every partition keeps its segment and index files open, so a node
/// with thousands of partitions needs far more than the 1024 most shells start with, and one
/// that runs out fails whatever opens the next file (the controller's Raft store included).
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(current), Some(maximum)) = (limit.current, limit.maximum) else {
        return; // unlimited: nothing to raise
    };
    if current >= maximum {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: Some(maximum),
        maximum: Some(maximum),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(from = current, to = maximum, "raised the open file limit"),
        Err(error) => {
            tracing::warn!(%error, limit = current, "could not raise the open file limit")
        }
    }
}

/// The web console of the node `config` describes, added to its HTTP admin listener if it has
/// one. It reaches the cluster as its users do: through the client listener, over the cluster's
/// TLS, and with each user's credentials when the cluster requires them.
fn add_console(
    config: &mut BrokerConfig,
    address_rewrites: Vec<(String, String)>,
) -> Result<Option<Console>> {
    if config.http_listen.is_none() {
        return Ok(None);
    }
    let tls = match &config.tls {
        None => None,
        Some(tls) => {
            if tls.client_auth == strata_tls::ClientAuth::Required {
                // The console presents no certificate of its own: a node's certificate would
                // make it act as that node rather than as the signed-in user.
                tracing::warn!(
                    "the web console cannot reach a client listener that requires client \
                     certificates (--tls-client-auth required); its pages will show the \
                     refused connection"
                );
            }
            Some(
                strata_client::ClientTls::new(&tls.ca, None)
                    .context("cannot load the CA for the web console")?,
            )
        }
    };
    let console = Console::new(tls, address_rewrites, config.require_authentication);
    config.http_routes = Some(console.router());
    Ok(Some(console))
}

/// `ADVERTISED=REACHABLE` of --console-broker-addresses.
fn parse_address_rewrite(text: &str) -> Result<(String, String), String> {
    let is_address = |address: &str| {
        address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    };
    match text.split_once('=') {
        Some((advertised, reachable)) if is_address(advertised) && is_address(reachable) => {
            Ok((advertised.to_string(), reachable.to_string()))
        }
        _ => Err(format!(
            "'{text}' is not ADVERTISED=REACHABLE with both host:port, as in \
             localhost:7071=strata-2:7070"
        )),
    }
}

pub async fn run_server(mut args: ServerArgs) -> Result<()> {
    raise_open_file_limit();
    let address_rewrites = std::mem::take(&mut args.console_broker_addresses);
    let mut config = server_config(args)?;
    let console = add_console(&mut config, address_rewrites)?;
    let node_id = config.node_id;
    let advertise = config.advertise.clone();
    let tls = config.tls.is_some();
    let handle = Broker::start(config)
        .await
        .with_context(|| format!("cannot start broker {node_id}"))?;
    tracing::info!(node_id, address = %handle.local_addr(), "broker started");
    if let Some(console) = console {
        console.serve_from(advertise.unwrap_or_else(|| handle.local_addr().to_string()));
        if let Some(http) = handle.http_addr() {
            let scheme = if tls { "https" } else { "http" };
            tracing::info!(url = %format!("{scheme}://{http}/"), "web console");
        }
    }
    handle.run_until_signal().await;
    Ok(())
}

pub async fn run_dev(args: DevArgs) -> Result<()> {
    raise_open_file_limit();
    let nodes = i32::from(args.nodes);
    let address_at =
        |node: i32, offset: u32| -> Result<String> { node_address(args.port, node, offset) };
    // An optional listener at `base + node - 1`; none when `base` is 0.
    let optional_address_of = |base: u16, node: i32| -> Result<Option<SocketAddr>> {
        if base == 0 {
            return Ok(None);
        }
        let address = node_address(base, node, 0)?;
        Ok(Some(address.parse().with_context(|| {
            format!("'{address}' is not a socket address")
        })?))
    };
    let address_of = |node: i32| address_at(node, 0);
    let voters: Vec<(i32, String)> = if nodes > 1 {
        (1..=nodes)
            .map(|node| Ok((node, address_at(node, DEV_INTERNAL_PORT_OFFSET)?)))
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let mut configs = Vec::new();
    let mut consoles = Vec::new();
    for node in 1..=nodes {
        let address = address_of(node)?;
        let mut config = BrokerConfig {
            node_id: node,
            data_dir: args.data_dir.join(format!("node-{node}")),
            listen: address
                .parse()
                .with_context(|| format!("'{address}' is not a socket address"))?,
            advertise: None,
            kafka_listen: optional_address_of(args.kafka_port, node)?,
            http_listen: optional_address_of(args.http_port, node)?,
            voters: voters.clone(),
            ..BrokerConfig::default()
        };
        consoles.push(add_console(&mut config, Vec::new())?);
        configs.push(config);
    }
    // All nodes start together: each waits for a controller quorum before it is up, so starting
    // them one after another would wait forever for the ones not started yet.
    let started = futures::future::join_all(configs.into_iter().map(|config| async move {
        let (node, address) = (config.node_id, config.listen);
        let kafka = config
            .kafka_listen
            .map(|kafka| format!(", {kafka} for Kafka clients"))
            .unwrap_or_default();
        let http = config
            .http_listen
            .map(|http| format!(", {http} for HTTP"))
            .unwrap_or_default();
        Broker::start(config).await.with_context(|| {
            // A Kafka broker already on the machine holds 9092 more often than not.
            format!(
                "cannot start node {node} on {address}{kafka}{http} (is a port in use? --port, \
                 --kafka-port and --http-port move them; --kafka-port 0 or --http-port 0 opens \
                 no such listener)"
            )
        })
    }))
    .await;
    let mut handles = Vec::new();
    let mut addresses = Vec::new();
    let mut kafka_addresses = Vec::new();
    let mut http_addresses = Vec::new();
    for (handle, console) in started.into_iter().zip(&consoles) {
        let handle = handle?;
        if let Some(console) = console {
            console.serve_from(handle.local_addr().to_string());
        }
        addresses.push(handle.local_addr().to_string());
        kafka_addresses.extend(handle.kafka_addr().map(|address| address.to_string()));
        http_addresses.extend(handle.http_addr());
        handles.push(handle);
    }

    let bootstrap = addresses.join(",");
    let flag = if bootstrap == crate::DEFAULT_BOOTSTRAP {
        String::new()
    } else {
        format!(" --bootstrap {bootstrap}")
    };
    let replication = nodes.min(3);
    println!(
        "strata dev: {nodes} node{} listening on {bootstrap}, data in {}",
        if nodes == 1 { "" } else { "s" },
        args.data_dir.display()
    );
    if !kafka_addresses.is_empty() {
        println!(
            "Kafka clients (kcat, librdkafka, Java): bootstrap.servers={}",
            kafka_addresses.join(",")
        );
    }
    if !http_addresses.is_empty() {
        let urls: Vec<String> = http_addresses
            .iter()
            .map(|address| format!("http://{address}/metrics"))
            .collect();
        println!("Prometheus metrics: {}", urls.join(" "));
        println!("Web console: http://{}/", http_addresses[0]);
    }
    println!(
        "Open to anyone on this machine: plaintext, loopback only (`strata server` with --tls-cert \
         secures a cluster; see the README)."
    );
    println!("Try, in another terminal:");
    println!("  strata topic create demo --partitions 3 --replication-factor {replication}{flag}");
    println!("  printf 'k1:hello\\nk2:world\\n' | strata produce demo --key-separator :{flag}");
    println!("  strata consume demo --from-beginning --max-messages 2 --format json{flag}");
    println!("  strata cluster status{flag}");
    println!("Press Ctrl-C to stop.");

    futures::future::join_all(handles.into_iter().map(|handle| handle.run_until_signal())).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        server: ServerArgs,
    }

    /// `strata server` arguments: a minimal node's, then `extra`.
    fn arguments(extra: &[&str]) -> Result<ServerArgs, clap::Error> {
        let base = [
            "strata",
            "--node-id",
            "1",
            "--data-dir",
            "d",
            "--listen",
            "127.0.0.1:0",
        ];
        let args = base.iter().chain(extra).copied();
        Ok(Command::try_parse_from(args)?.server)
    }

    fn parsed(extra: &[&str]) -> Result<BrokerConfig> {
        server_config(arguments(extra)?)
    }

    #[test]
    fn offsets_retention_defaults_to_kafkas_seven_days_and_is_settable() {
        let retention = |config: BrokerConfig| config.groups.coordinator.offsets_retention_ms;
        assert_eq!(retention(parsed(&[]).unwrap()), 7 * 24 * 60 * 60 * 1_000);
        let hour = parsed(&["--offsets-retention", "1h"]).unwrap();
        assert_eq!(retention(hour), 60 * 60 * 1_000);
        let old_hour = parsed(&["--offsets-retention-minutes", "60"]).unwrap();
        assert_eq!(retention(old_hour), 60 * 60 * 1_000);
        assert!(parsed(&["--offsets-retention", "30s"]).is_err());
        assert!(parsed(&["--offsets-retention", "60"]).is_err());
        assert!(parsed(&["--offsets-retention-minutes", "0"]).is_err());
        let both = [
            "--offsets-retention",
            "1h",
            "--offsets-retention-minutes",
            "60",
        ];
        assert!(parsed(&both).is_err());
    }

    #[test]
    fn the_request_byte_budget_defaults_to_two_of_the_largest_requests_and_is_settable() {
        let budget = |config: BrokerConfig| config.queued_max_request_bytes;
        assert_eq!(
            budget(parsed(&[]).unwrap()),
            strata_broker::DEFAULT_QUEUED_MAX_REQUEST_BYTES
        );
        assert_eq!(
            budget(parsed(&["--queued-max-request-bytes", "1000"]).unwrap()),
            1000
        );
        assert!(parsed(&["--queued-max-request-bytes", "0"]).is_err());
    }

    #[test]
    fn super_users_repeat_split_on_commas_and_need_authentication() {
        let auth = ["--require-auth", "--bootstrap-user", "admin:secret"];
        let super_users =
            |extra: &[&str]| parsed(&[&auth[..], extra].concat()).map(|config| config.super_users);
        assert_eq!(super_users(&[]).unwrap(), Vec::<String>::new());
        assert_eq!(
            super_users(&["--super-user", "alice", "--super-user", "User:bob, carol"]).unwrap(),
            ["alice", "User:bob", "carol"]
        );
        for refused in ["", "a,", "User:", "*"] {
            assert!(
                super_users(&["--super-user", refused]).is_err(),
                "{refused:?} is not a user"
            );
        }
        let without_auth = parsed(&["--super-user", "alice"]).unwrap_err();
        assert!(
            without_auth.to_string().contains("--require-auth"),
            "{without_auth}"
        );
    }

    #[test]
    fn console_broker_addresses_pair_advertised_with_reachable_addresses() {
        let rewrites =
            |extra: &[&str]| arguments(extra).map(|server| server.console_broker_addresses);
        let http = ["--http-listen", "127.0.0.1:0", "--console-broker-addresses"];
        assert_eq!(
            rewrites(
                &[
                    &http[..],
                    &["localhost:7071=strata-2:7070,localhost:7072=strata-3:7070"]
                ]
                .concat()
            )
            .unwrap(),
            [
                ("localhost:7071".to_string(), "strata-2:7070".to_string()),
                ("localhost:7072".to_string(), "strata-3:7070".to_string())
            ]
        );
        for refused in [
            "strata-2:7070",
            "localhost:7071=",
            "=strata-2:7070",
            "a:1=b",
        ] {
            assert!(
                rewrites(&[&http[..], &[refused]].concat()).is_err(),
                "{refused:?} is not a pair of addresses"
            );
        }
        // Only a node with an HTTP admin listener has a console.
        assert!(rewrites(&["--console-broker-addresses", "a:1=b:2"]).is_err());
    }

    #[test]
    fn voters_parse_and_reject_typos() {
        let voters = parse_voters("1@a:7070, 2@b:7071").expect("valid voters");
        assert_eq!(
            voters.0,
            vec![(1, "a:7070".to_string()), (2, "b:7071".to_string())]
        );
        assert!(parse_voters("a:7070").is_err());
        assert!(parse_voters("x@a:7070").is_err());
        assert!(parse_voters("1@a").is_err());
        assert!(parse_voters("1@a:1,1@b:2").is_err());
        assert!(parse_voters("").is_err());
    }
}
