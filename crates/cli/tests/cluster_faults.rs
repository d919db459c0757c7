//! Three real `strata server` processes on loopback forming one cluster (Raft controller quorum
//! plus brokers): SIGKILL the leader of a partition while an idempotent `acks=all` producer runs,
//! then check that every acknowledged record is readable exactly once and in per-key order, that
//! leadership moved, and that the killed node rejoins every ISR after a restart. A second leader
//! failure after the first node rejoined (KIP-279's case) must lose nothing either. A consumer
//! tails the topic throughout, so its fetch streams break with each killed leader, and it must
//! still read every acknowledged record exactly once.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;
use strata_client::{Admin, NewTopic, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::watch;

const KEYS: usize = 12;
/// Records sent through the first leader kill (the 50,000) and through the second.
const RECORDS: usize = 50_000;
const RECORDS_SECOND_FAILURE: usize = 5_000;

/// Sends `count` keyed records starting at `first`, SIGKILLs the leader of partition 0 after a
/// third of them, and returns the acknowledged `(key, value)` pairs and the killed node.
async fn produce_through_a_leader_kill(
    producer: &Producer,
    admin: &Admin,
    nodes: &mut [Node],
    first: usize,
    count: usize,
) -> (Vec<(String, String)>, i32) {
    let mut deliveries = Vec::with_capacity(count);
    let mut killed = None;
    for index in first..first + count {
        let key = format!("key-{}", index % KEYS);
        let value = format!("{key}:{index}");
        deliveries.push((
            key.clone(),
            value.clone(),
            producer
                .send(ProducerRecord::new("orders", value).key(key))
                .await
                .unwrap(),
        ));
        if index == first + count / 3 {
            producer.flush().await.unwrap();
            let leader = admin.describe_topic("orders").await.unwrap().partitions[0]
                .leader
                .expect("partition 0 has a leader");
            let node = nodes.iter_mut().find(|node| node.id == leader).unwrap();
            node.child.as_mut().unwrap().kill().unwrap();
            node.child.take().unwrap().wait().unwrap();
            killed = Some(leader);
        }
    }
    let mut acknowledged = Vec::new();
    let mut failed = 0;
    for (key, value, delivery) in deliveries {
        match delivery.await {
            Ok(_) => acknowledged.push((key, value)),
            Err(_) => failed += 1,
        }
    }
    eprintln!(
        "acknowledged {} records, {failed} failed",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= count / 3,
        "the records before the kill were acknowledged"
    );
    (acknowledged, killed.unwrap())
}

/// Reads the whole topic through `bootstrap` and checks every acknowledged record is there
/// exactly once and every key's records are in the order they were sent.
async fn exactly_once_in_key_order(bootstrap: &str, acknowledged: &[(String, String)]) {
    common::assert_exactly_once_in_key_order(
        bootstrap,
        "orders",
        3,
        acknowledged,
        Duration::from_secs(60),
    )
    .await;
}

async fn restart_and_rejoin(nodes: &mut [Node], killed: i32, voters: &str, data_dir: &Path) {
    let node = nodes.iter_mut().find(|node| node.id == killed).unwrap();
    node.start(voters, data_dir);
    let admin = admin(&survivors(nodes)).await;
    eventually(
        "the restarted node in every ISR",
        Duration::from_secs(60),
        async || {
            let topic = admin.describe_topic("orders").await.ok()?;
            topic
                .partitions
                .iter()
                .all(|partition| partition.isr.contains(&killed) && partition.leader.is_some())
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_two_leader_kills_exactly_once_and_in_key_order() {
    let directory = tempfile::tempdir().unwrap();
    let (mut nodes, voters) = start_cluster(directory.path()).await;
    let bootstrap = survivors(&nodes);
    admin(&bootstrap)
        .await
        .create_topic(NewTopic::new("orders", 3, 3).config("min.insync.replicas", "2"))
        .await
        .unwrap();
    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(&bootstrap)
            .linger_ms(1)
            .delivery_timeout_ms(60_000)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let (acknowledged_sender, acknowledged_receiver) = watch::channel(None);
    let tailing = spawn_tailing_consumer(
        bootstrap.clone(),
        "orders",
        3,
        acknowledged_receiver,
        Duration::from_secs(60),
    );

    // First failure.
    let admin_before = admin(&bootstrap).await;
    let (mut acknowledged, first_killed) =
        produce_through_a_leader_kill(&producer, &admin_before, &mut nodes, 0, RECORDS).await;
    let admin_after = admin(&survivors(&nodes)).await;
    eventually(
        "a new leader for partition 0",
        Duration::from_secs(30),
        async || {
            let leader = admin_after.describe_topic("orders").await.ok()?.partitions[0].leader?;
            (leader != first_killed).then_some(())
        },
    )
    .await;
    exactly_once_in_key_order(&survivors(&nodes), &acknowledged).await;
    restart_and_rejoin(&mut nodes, first_killed, &voters, directory.path()).await;

    // Second failure, of whichever node leads now, after the first one rejoined.
    let (more, second_killed) = produce_through_a_leader_kill(
        &producer,
        &admin(&survivors(&nodes)).await,
        &mut nodes,
        RECORDS,
        RECORDS_SECOND_FAILURE,
    )
    .await;
    acknowledged.extend(more);
    exactly_once_in_key_order(&survivors(&nodes), &acknowledged).await;
    acknowledged_sender.send_replace(Some(acknowledged));
    tailing.await.unwrap().assert_once_each_in_key_order();
    restart_and_rejoin(&mut nodes, second_killed, &voters, directory.path()).await;
}

fn signal(node: &Node, signal: &str) {
    send_signal(node.child.as_ref().expect("node is running"), signal);
}

/// A follower cut off (SIGSTOP) leaves the ISR; with `min.insync.replicas=3` every `acks=all`
/// produce then fails with NOT_ENOUGH_REPLICAS instead of being acknowledged with two copies.
/// (Three voters keep their quorum with one node paused, so the controller can shrink the ISR;
/// pausing two nodes would stop the quorum itself.) After SIGCONT it rejoins and writes succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_follower_leaves_the_isr_and_acks_all_is_refused_not_acknowledged() {
    let directory = tempfile::tempdir().unwrap();
    let (nodes, _voters) = start_cluster(directory.path()).await;
    let bootstrap = survivors(&nodes);
    let admin = admin(&bootstrap).await;
    admin
        .create_topic(NewTopic::new("orders", 1, 3).config("min.insync.replicas", "3"))
        .await
        .unwrap();
    let partition = admin.describe_topic("orders").await.unwrap().partitions[0].clone();
    let leader = partition.leader.unwrap();
    let follower = *partition
        .replicas
        .iter()
        .find(|&&replica| replica != leader)
        .unwrap();
    eprintln!(
        "leader {leader}, pausing {follower}; nodes {:?}",
        nodes
            .iter()
            .map(|node| (node.id, node.address.clone()))
            .collect::<Vec<_>>()
    );
    // The producer talks to the leader only, so the paused node cannot stall its metadata.
    let leader_address = nodes
        .iter()
        .find(|node| node.id == leader)
        .unwrap()
        .address
        .clone();
    let leader_admin = self::admin(&leader_address).await;
    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(&leader_address)
            .linger_ms(0)
            .request_timeout_ms(10_000)
            .delivery_timeout_ms(10_000)
            .retries(0)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    producer
        .send(ProducerRecord::new("orders", "before").key("k"))
        .await
        .unwrap()
        .await
        .expect("all three in sync");

    signal(
        nodes.iter().find(|node| node.id == follower).unwrap(),
        "-STOP",
    );
    eventually(
        "the paused follower out of the ISR",
        Duration::from_secs(30),
        async || {
            let isr = leader_admin.describe_topic("orders").await.ok()?.partitions[0]
                .isr
                .clone();
            (!isr.contains(&follower)).then_some(())
        },
    )
    .await;
    let refused = producer
        .send(ProducerRecord::new("orders", "during").key("k"))
        .await
        .unwrap()
        .await
        .expect_err("two copies are fewer than min.insync.replicas");
    assert_eq!(
        refused.code(),
        Some(strata_client::ErrorCode::NotEnoughReplicas),
        "{refused}"
    );

    signal(
        nodes.iter().find(|node| node.id == follower).unwrap(),
        "-CONT",
    );
    eventually(
        "the follower back in the ISR",
        Duration::from_secs(60),
        async || {
            let isr = leader_admin.describe_topic("orders").await.ok()?.partitions[0]
                .isr
                .clone();
            isr.contains(&follower).then_some(())
        },
    )
    .await;
    producer
        .send(ProducerRecord::new("orders", "after").key("k"))
        .await
        .unwrap()
        .await
        .expect("acks=all works again");
}
