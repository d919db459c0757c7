//! Real `strata server` processes on loopback for the multi-node tests.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strata_client::{Admin, AdminConfig};

pub struct Node {
    pub id: i32,
    pub address: String,
    pub child: Option<Child>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn spawn(id: i32, address: &str, voters: &str, data_dir: &Path) -> Child {
    let log = std::fs::File::create(data_dir.join(format!("node-{id}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "server",
            "--node-id",
            &id.to_string(),
            "--listen",
            address,
            "--voters",
            voters,
        ])
        .arg("--data-dir")
        .arg(data_dir.join(format!("node-{id}")))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("strata server starts")
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` until it returns `Some`, at most `limit`; the poll interval is not a guess at
/// how long anything takes, only how often to look.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn admin(bootstrap: &str) -> Admin {
    Admin::connect(
        AdminConfig::builder()
            .bootstrap(bootstrap)
            .request_timeout_ms(5_000)
            .build()
            .unwrap(),
    )
    .await
    .unwrap()
}

pub fn survivors(nodes: &[Node]) -> String {
    nodes
        .iter()
        .filter(|node| node.child.is_some())
        .map(|node| node.address.clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// Starts three `strata server` processes that name each other as voters and waits until all
/// three brokers are registered and unfenced. Returns the nodes and the `--voters` value.
pub async fn start_cluster(data_dir: &Path) -> (Vec<Node>, String) {
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| Node {
            id,
            address: format!("127.0.0.1:{}", free_port()),
            child: None,
        })
        .collect();
    let voters = nodes
        .iter()
        .map(|node| format!("{}@{}", node.id, node.address))
        .collect::<Vec<_>>()
        .join(",");
    for node in &mut nodes {
        node.child = Some(spawn(node.id, &node.address, &voters, data_dir));
    }
    let bootstrap = survivors(&nodes);
    eventually("three live brokers", Duration::from_secs(60), async || {
        let admin = Admin::connect(
            AdminConfig::builder()
                .bootstrap(&bootstrap)
                .request_timeout_ms(2_000)
                .build()
                .unwrap(),
        )
        .await
        .ok()?;
        let cluster = admin.describe_cluster().await.ok()?;
        (cluster
            .brokers
            .iter()
            .filter(|broker| !broker.fenced)
            .count()
            == 3)
            .then_some(())
    })
    .await;
    (nodes, voters)
}
