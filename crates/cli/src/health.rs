//! `strata health`: is the node at one address up and serving clients? For container health
//! checks and scripts: exit 0 and one `ok: ...` line when it is, one `error: ...` line and a
//! non-zero exit when it is not.
//!
//! A node answers `Metadata` only once it has registered with the controller quorum, is
//! unfenced and has caught up with the metadata; until then it answers `LEADER_NOT_AVAILABLE`.
//! So an answer from that address is the readiness signal. The check then looks the node up in
//! the cluster's broker list (by `--node-id`, or by the address when it is the one the node
//! advertises) and fails if the controller has fenced it since.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use strata_client::{Admin, AdminConfig, ClusterDescription};

use crate::duration::{self, DurationParser, Unit};
use crate::tls::{ClientTlsArgs, ClusterTarget, ConnectTo};

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The node to check; with several, each of them is checked in turn.
    #[arg(long, env = "STRATA_BOOTSTRAP", default_value_t = crate::profile::default_bootstrap(), value_name = "HOST:PORT[,HOST:PORT...]")]
    bootstrap: String,
    /// The node's id, to check that the cluster lists it unfenced (one node only); without it
    /// the node is found by its advertised address when that is the address given.
    #[arg(long, value_name = "N")]
    node_id: Option<i32>,
    /// Give up after this long.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = TIMEOUT)]
    timeout: Duration,
    /// --timeout in milliseconds, its old spelling.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "timeout", value_parser = TIMEOUT.number_of(Unit::Millis))]
    timeout_ms: Option<Duration>,
    #[command(flatten)]
    tls: ClientTlsArgs,
    #[command(flatten)]
    credentials: crate::user::CredentialArgs,
}

/// `--timeout`: zero would fail the check before it asks.
const TIMEOUT: DurationParser = DurationParser::human().at_least(Duration::from_millis(1));

pub async fn run(args: HealthArgs) -> Result<()> {
    crate::init_tracing_if_asked();
    let addresses: Vec<&str> = args
        .bootstrap
        .split(',')
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .collect();
    if addresses.len() > 1 && args.node_id.is_some() {
        bail!(
            "--node-id names one node, but --bootstrap (or STRATA_BOOTSTRAP) '{}' names {}",
            args.bootstrap,
            addresses.len()
        );
    }
    // Every node named must be healthy: the first that is not ends the check with its reason.
    let timeout = duration::given(args.timeout, args.timeout_ms);
    for address in addresses {
        let cluster = tokio::time::timeout(timeout, describe(address, &args, timeout))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "node at {address} did not answer within {}",
                    duration::human(timeout)
                )
            })??;
        println!("ok: {}", verdict(&cluster, address, args.node_id)?);
    }
    Ok(())
}

/// Asks the node at `address` (and only it) for metadata, then the cluster for its brokers.
async fn describe(
    address: &str,
    args: &HealthArgs,
    timeout: Duration,
) -> Result<ClusterDescription> {
    let timeout_ms = duration::millis(timeout);
    let target = ClusterTarget {
        bootstrap: address.to_string(),
        tls: args.tls.client_tls()?,
        credentials: args.credentials.credentials(),
        address_rewrites: Vec::new(),
    };
    let config = AdminConfig::builder()
        .aimed_at(&target)
        .connect_timeout_ms(timeout_ms)
        .request_timeout_ms(timeout_ms)
        .retries(0)
        .build()?;
    // The first Metadata request goes to the bootstrap address alone, so this fails unless that
    // node is serving clients.
    let admin = Admin::connect(config)
        .await
        .with_context(|| format!("node at {address} is not serving"))?;
    admin
        .describe_cluster()
        .await
        .with_context(|| format!("node at {address} answered, but the broker list did not"))
}

/// The success line, or why the node is not healthy.
fn verdict(cluster: &ClusterDescription, address: &str, node_id: Option<i32>) -> Result<String> {
    let fenced = cluster
        .brokers
        .iter()
        .filter(|broker| broker.fenced)
        .count();
    let summary = format!(
        "{} brokers, {fenced} fenced, controller {}",
        cluster.brokers.len(),
        cluster
            .controller_id
            .map_or_else(|| "being elected".to_string(), |id| id.to_string())
    );
    let node = match node_id {
        Some(id) => Some(
            cluster
                .brokers
                .iter()
                .find(|broker| broker.node_id == id)
                .with_context(|| {
                    format!("node at {address} answered, but the cluster lists no broker {id}")
                })?,
        ),
        None => {
            let mut matching = cluster
                .brokers
                .iter()
                .filter(|broker| broker.address == address);
            match (matching.next(), matching.next()) {
                (Some(broker), None) => Some(broker),
                _ => None,
            }
        }
    };
    match node {
        Some(node) if node.fenced => bail!(
            "node {} at {address} answered, but the controller has fenced it ({summary})",
            node.node_id
        ),
        Some(node) => Ok(format!(
            "node {} at {address} is serving ({summary})",
            node.node_id
        )),
        None => Ok(format!("node at {address} is serving ({summary})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_client::BrokerNode;

    fn cluster(brokers: &[(i32, &str, bool)]) -> ClusterDescription {
        ClusterDescription {
            cluster_id: "c".to_string(),
            controller_id: Some(1),
            brokers: brokers
                .iter()
                .map(|&(node_id, address, fenced)| BrokerNode {
                    node_id,
                    address: address.to_string(),
                    fenced,
                    offline_log_dirs: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_node_is_found_by_id_or_by_its_advertised_address() {
        let cluster = cluster(&[(1, "a:1", false), (2, "b:2", true)]);
        assert!(
            verdict(&cluster, "127.0.0.1:7070", Some(1))
                .unwrap()
                .starts_with("node 1 ")
        );
        assert!(verdict(&cluster, "127.0.0.1:7070", Some(2)).is_err());
        assert!(verdict(&cluster, "127.0.0.1:7070", Some(3)).is_err());
        assert!(verdict(&cluster, "b:2", None).is_err());
        assert!(
            verdict(&cluster, "127.0.0.1:7070", None)
                .unwrap()
                .starts_with("node at ")
        );
    }
}
