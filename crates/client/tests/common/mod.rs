//! What the client's integration tests against a real broker share.

use std::path::Path;

use anyhow::{Context, Result};
use strata_broker::{Broker, BrokerConfig, BrokerHandle};

/// A broker in this process on a free loopback port; returns it and its address.
pub async fn start_broker(data_dir: &Path) -> Result<(BrokerHandle, String)> {
    let config = BrokerConfig {
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        ..Default::default()
    };
    let handle = Broker::start(config).await.context("starting the broker")?;
    let address = handle.local_addr().to_string();
    Ok((handle, address))
}
