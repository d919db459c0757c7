//! Channels from this node to other nodes: replica fetches to leaders, records forwarded to a
//! partition's leader, offset commits sent on to a group's coordinator. One place opens them so
//! that every one speaks TLS, with this node's certificate, when the cluster runs with TLS.

use std::time::Duration;

use strata_tls::ClientTls;
use tonic::transport::{Channel, Endpoint};

/// Opens channels to other nodes; plaintext unless built with the node's TLS.
#[derive(Clone, Debug, Default)]
pub struct PeerChannels {
    tls: Option<ClientTls>,
}

impl PeerChannels {
    pub fn new(tls: Option<ClientTls>) -> Self {
        Self { tls }
    }

    /// A channel to `address` (host:port) that connects on first use.
    pub(crate) fn lazy(&self, address: &str, connect_timeout: Duration) -> Result<Channel, String> {
        Ok(strata_tls::lazy_channel(
            endpoint(address, connect_timeout)?,
            self.tls.as_ref(),
        ))
    }

    /// A channel to `address`, connected before it is returned.
    pub(crate) async fn connect(
        &self,
        address: &str,
        connect_timeout: Duration,
    ) -> Result<Channel, String> {
        strata_tls::channel(endpoint(address, connect_timeout)?, self.tls.as_ref())
            .await
            .map_err(|error| error.to_string())
    }
}

fn endpoint(address: &str, connect_timeout: Duration) -> Result<Endpoint, String> {
    // With TLS the scheme stays http: the TLS is the connector's, below tonic.
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|error| format!("bad address '{address}': {error}"))?;
    Ok(strata_proto::http2::endpoint(
        endpoint.connect_timeout(connect_timeout),
    ))
}
