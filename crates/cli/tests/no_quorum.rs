//! Admin commands against a cluster without a controller quorum: real `strata server` processes
//! on loopback, of which too few are up. The commands must end within their --timeout and
//! say that the quorum is what is missing, rather than wait minutes and blame the node that
//! answered.

mod common;

use common::*;
use std::time::Duration;

/// Far beyond the --timeout the commands are given; only a hung command reaches it.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `strata` with `arguments`, killed at the deadline, and returns its one stderr line
/// after checking that it failed.
async fn failure_line(arguments: &[&str]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_strata"));
    command
        .args(arguments)
        .env_remove("STRATA_BOOTSTRAP")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(COMMAND_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{arguments:?} still ran after {COMMAND_DEADLINE:?}"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "{arguments:?} succeeded: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{arguments:?}: one error line: {stderr}");
    lines[0].to_string()
}

/// `strata topic create orders` with one partition and one replica, through `address`.
fn create_topic_through(address: &str, timeout: Option<&str>) -> Vec<String> {
    let mut arguments: Vec<String> = [
        "topic",
        "create",
        "orders",
        "--partitions",
        "1",
        "--replication-factor",
        "1",
        "--bootstrap",
        address,
    ]
    .map(String::from)
    .to_vec();
    if let Some(timeout) = timeout {
        arguments.extend(["--timeout".to_string(), timeout.to_string()]);
    }
    arguments
}

#[tokio::test]
async fn a_node_that_cannot_register_says_it_is_not_serving_clients_yet() {
    let directory = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    // Its own internal port and two that nobody listens on: no majority, so it never registers.
    let voters = format!(
        "1@127.0.0.1:{},2@127.0.0.1:{},3@127.0.0.1:{}",
        free_port(),
        free_port(),
        free_port()
    );
    let _node = Node {
        id: 1,
        address: address.clone(),
        internal_address: String::new(),
        kafka_address: None,
        http_address: None,
        child: Some(spawn(1, &address, None, None, &voters, directory.path())),
    };
    let create = create_topic_through(&address, None);
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let line = eventually(
        "the node to listen for clients",
        Duration::from_secs(20),
        async || Some(failure_line(&create).await).filter(|line| !line.contains("connect")),
    )
    .await;
    let expected = format!(
        "error: {address} is not serving clients yet (a node serves them once it has registered \
         with the controller quorum, which needs a majority of the voters up): \
         LEADER_NOT_AVAILABLE (5): "
    );
    assert!(line.starts_with(&expected), "{line}");
    assert_eq!(line.matches("LEADER_NOT_AVAILABLE").count(), 1, "{line}");
    let status = failure_line(&["cluster", "status", "--bootstrap", &address]).await;
    assert!(status.starts_with(&expected), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_change_without_a_quorum_ends_at_its_timeout_and_names_the_quorum() {
    let directory = tempfile::tempdir().unwrap();
    let (mut nodes, _voters) = start_cluster(directory.path()).await;
    let controller = admin(&survivors(&nodes))
        .await
        .describe_cluster()
        .await
        .unwrap()
        .controller_id
        .expect("a registered cluster has a controller");
    // The controller stays, alone: it still answers metadata, but commits nothing.
    for node in nodes.iter_mut().filter(|node| node.id != controller) {
        let mut child = node.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let address = survivors(&nodes);
    let create = create_topic_through(&address, Some("2s"));
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let line = failure_line(&create).await;
    // The client's deadline and the broker's bound on the change (the request's timeout_ms)
    // are the same 2 s, so either may end it first; both say what is missing.
    let client_gave_up = format!(
        "error: cannot create topic 'orders': timed out after 2000 ms waiting for CreateTopics \
         from {address} to create topic 'orders': the controller quorum has not committed it \
         (are a majority of the voters up and reachable?)"
    );
    let broker_gave_up = "error: cannot create topic 'orders': REQUEST_TIMED_OUT (7): the \
         controller quorum did not commit the change within 2000 ms (are a majority of the \
         voters up and reachable?); it may still take effect";
    assert!(line == client_gave_up || line == broker_gave_up, "{line}");
}
