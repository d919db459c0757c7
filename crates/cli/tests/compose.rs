//! The deployment users start first: `deploy/docker-compose.yml`, three `strata` containers on
//! a compose network, driven from the host through the published ports 7070-7072 exactly as the
//! README says. An idempotent `acks=all` producer sends 100,000 keyed records while one node is
//! `docker kill`ed; every acknowledged record must then be readable exactly once and in per-key
//! order, and the node must rejoin every ISR after `docker start`. Each node's published HTTP
//! listener serves metrics, probes and a web console that reaches the whole cluster.
//!
//! The image is built offline from this test's own `strata` binary by `deploy/build-image.sh`
//! (no registry needed). Without Docker the test says `SKIPPED` on stderr and returns. Every
//! wait is a bounded poll; the compose project is torn down (`down -v`) even when the test fails.

mod common;

use common::compose::{all_healthy, docker, repository, run, run_with_input, up_healthy};
use common::{assert_exactly_once_in_key_order, eventually, try_admin};
use std::path::Path;
use std::time::{Duration, Instant};

use strata_client::{
    Acks, Admin, NewTopic, PartitionInfo, Producer, ProducerConfig, ProducerRecord,
};

const RECORDS: usize = 100_000;
const KEYS: usize = 60;
const PARTITIONS: i32 = 6;
const TOPIC: &str = "orders";
/// The Kafka listeners as the host reaches them.
const KAFKA_BOOTSTRAP: &str = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094";
const KILLED_SERVICE: &str = "strata-2";
const KILLED_NODE: i32 = 2;
/// Published ports of the nodes that stay up.
const SURVIVORS: &str = "127.0.0.1:7070,127.0.0.1:7072";
const EVERY_NODE: &str = "127.0.0.1:7070,127.0.0.1:7071,127.0.0.1:7072";

async fn every_partition(
    admin: &Admin,
    what: &str,
    limit: Duration,
    condition: impl Fn(&PartitionInfo) -> bool,
) {
    eventually(what, limit, async || {
        let topic = admin.describe_topic(TOPIC).await.ok()?;
        topic.partitions.iter().all(&condition).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_cluster_keeps_every_acknowledged_record_through_a_docker_kill() {
    let started = Instant::now();
    let Some((project, containers)) = up_healthy("strata-compose-test", "docker-compose.yml").await
    else {
        return;
    };
    let healthy_after = started.elapsed();
    eprintln!("image built and three containers healthy after {healthy_after:?}");

    // The host sees the nodes at their published ports and the advertised localhost:707x.
    let admin_all = eventually("an admin connection", Duration::from_secs(30), async || {
        try_admin(EVERY_NODE).await.ok()
    })
    .await;
    let cluster = admin_all.describe_cluster().await.unwrap();
    assert_eq!(
        cluster
            .brokers
            .iter()
            .map(|broker| (broker.node_id, broker.address.as_str(), broker.fenced))
            .collect::<Vec<_>>(),
        [
            (1, "localhost:7070", false),
            (2, "localhost:7071", false),
            (3, "localhost:7072", false)
        ]
    );
    // Each node's HTTP admin listener is published too: metrics for Prometheus and probes.
    for port in [8080, 8081, 8082] {
        let metrics = common::http_get(&format!("127.0.0.1:{port}"), "/metrics")
            .unwrap_or_else(|| panic!("no metrics on the published port {port}"));
        assert!(
            metrics
                .lines()
                .any(|line| line == "strata_cluster_brokers 3"),
            "node on {port} does not report three brokers:\n{metrics}"
        );
        assert_eq!(
            common::http_get(&format!("127.0.0.1:{port}"), "/ready").as_deref(),
            Some("ready\n")
        );
    }
    admin_all
        .create_topic(NewTopic::new(TOPIC, PARTITIONS, 3).config("min.insync.replicas", "2"))
        .await
        .unwrap();
    // Replication between containers runs over the compose names: every replica joins the ISR.
    every_partition(
        &admin_all,
        "every replica in sync",
        Duration::from_secs(60),
        |partition| partition.isr.len() == 3,
    )
    .await;
    // Each node's web console reaches the whole cluster from inside the compose network (the
    // brokers advertise the host's ports; --console-broker-addresses leads it to the nodes), so
    // a topic's page shows every partition with its offsets from every leader.
    for port in [8080, 8081, 8082] {
        let page = common::http_get(&format!("127.0.0.1:{port}"), &format!("/topics/{TOPIC}"))
            .unwrap_or_else(|| panic!("the console on port {port} does not show {TOPIC}"));
        assert_eq!(
            page.matches("<tr class=\"partition\">").count(),
            PARTITIONS as usize,
            "{page}"
        );
        assert!(!page.contains("<td>?</td>"), "an offset is unknown: {page}");
    }

    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(EVERY_NODE)
            .acks(Acks::All)
            .enable_idempotence(true)
            .delivery_timeout_ms(120_000)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let killed = project.container(KILLED_SERVICE);
    let producing = Instant::now();
    let mut deliveries = Vec::with_capacity(RECORDS);
    for index in 0..RECORDS {
        let key = format!("key-{}", index % KEYS);
        let value = format!("{key}:{index}");
        let delivery = producer
            .send(ProducerRecord::new(TOPIC, value.clone()).key(key.clone()))
            .await
            .unwrap();
        // A task per delivery, so the number settled at the kill can be counted.
        deliveries.push((key, value, tokio::spawn(delivery)));
        if index == RECORDS / 2 {
            // Mid-way, with batches in flight: the node dies without a chance to hand over.
            let settled = deliveries
                .iter()
                .filter(|(_, _, delivery)| delivery.is_finished())
                .count();
            tokio::task::block_in_place(|| docker(&["kill", &killed]));
            eprintln!(
                "killed {KILLED_SERVICE} after {index} sends ({settled} settled) at {:?}",
                producing.elapsed()
            );
        }
    }
    let mut acknowledged = Vec::with_capacity(RECORDS);
    let mut failed = Vec::new();
    for (key, value, delivery) in deliveries {
        match delivery.await.unwrap() {
            Ok(_) => acknowledged.push((key, value)),
            Err(error) => failed.push(format!("{value}: {error}")),
        }
    }
    let produced_in = producing.elapsed();
    eprintln!(
        "{} of {RECORDS} records acknowledged in {produced_in:?}; {} failed{}",
        acknowledged.len(),
        failed.len(),
        failed
            .first()
            .map(|first| format!(", the first: {first}"))
            .unwrap_or_default()
    );
    let acknowledged_after_kill = acknowledged
        .iter()
        .filter(|(_, value)| {
            value.rsplit(':').next().unwrap().parse::<usize>().unwrap() > RECORDS / 2
        })
        .count();
    assert!(
        acknowledged_after_kill >= RECORDS / 4,
        "with min.insync.replicas=2 the two remaining nodes keep acknowledging, but only \
         {acknowledged_after_kill} of the {} records sent after the kill were",
        RECORDS / 2
    );

    // While the node is down its partitions are led by the others.
    let admin_survivors = eventually("an admin connection", Duration::from_secs(30), async || {
        try_admin(SURVIVORS).await.ok()
    })
    .await;
    every_partition(
        &admin_survivors,
        "every partition led by a surviving node",
        Duration::from_secs(60),
        |partition| partition.leader.is_some_and(|leader| leader != KILLED_NODE),
    )
    .await;
    let consuming = Instant::now();
    let read = assert_exactly_once_in_key_order(
        SURVIVORS,
        TOPIC,
        PARTITIONS,
        &acknowledged,
        Duration::from_secs(180),
    )
    .await;
    eprintln!(
        "read {read} records back in {:?}: every acknowledged one once, in key order",
        consuming.elapsed()
    );

    let restarting = Instant::now();
    docker(&["start", &killed]);
    every_partition(
        &admin_survivors,
        "the restarted node in every ISR",
        Duration::from_secs(180),
        |partition| partition.isr.contains(&KILLED_NODE) && partition.leader.is_some(),
    )
    .await;
    eprintln!(
        "{KILLED_SERVICE} back in every ISR {:?} after docker start",
        restarting.elapsed()
    );
    all_healthy(&containers, Duration::from_secs(120)).await;
    produce_through_the_kafka_port(&admin_all).await;
    eprintln!("whole test {:?}", started.elapsed());
}

/// kcat, a Kafka client, produces through the published Kafka ports with acks=all, and what
/// it wrote is read back through the gRPC door: one cluster, two doors.
async fn produce_through_the_kafka_port(admin: &Admin) {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kafka-clients-venv");
    let installed = run(
        repository()
            .join("tests/kafka-clients/install.sh")
            .to_str()
            .unwrap(),
        &[venv.to_str().unwrap()],
        Duration::from_secs(600),
    )
    .unwrap();
    let Some(kcat) = installed
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("kcat="))
    else {
        eprintln!(
            "SKIPPED: the Kafka-port step, kcat is not installed: {}",
            installed.stdout.trim()
        );
        return;
    };
    admin
        .create_topic(NewTopic::new("through-kafka", 1, 3))
        .await
        .unwrap();
    let lines = "one\ntwo\nthree\n";
    let produced = run_with_input(
        kcat,
        &[
            "-b",
            KAFKA_BOOTSTRAP,
            "-P",
            "-t",
            "through-kafka",
            "-X",
            "acks=all",
        ],
        lines,
        Duration::from_secs(120),
    )
    .unwrap();
    assert!(produced.success, "kcat produce failed: {}", produced.stderr);
    let read = run(
        env!("CARGO_BIN_EXE_strata"),
        &[
            "consume",
            "through-kafka",
            "--from-beginning",
            "-e",
            "--bootstrap",
            SURVIVORS,
        ],
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(read.success, "strata consume failed: {}", read.stderr);
    assert_eq!(
        read.stdout, lines,
        "what kcat produced, read through the gRPC door"
    );
    eprintln!("kcat produced through the Kafka ports; strata consume read it back");
}
