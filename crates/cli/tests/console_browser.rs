//! The web console in a real browser: headless Chromium, driven by selenium
//! (`tests/browser/console.py`, installed by `tests/browser/install.sh`), clicks through the
//! console of a three-node cluster of `strata server` processes: the overview, a topic and its
//! partitions, creating a topic and altering its config with the forms, the record browser, a
//! group's lag, and peeking at and redriving a dead-letter topic. Each step leaves a screenshot
//! in `target/tmp/console-screenshots`, which the README's pictures are taken from.
//!
//! Without Chromium or selenium the test prints one `SKIPPED:` line saying why and returns.

mod common;

use common::{eventually, start_cluster};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use strata_client::{
    NewTopic, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let Some(tools) = common::installed(
        "browser/install.sh",
        &[
            &scratch.join("browser-install"),
            &scratch.join("browser-venv"),
        ],
    ) else {
        return;
    };
    let directory = tempfile::tempdir().unwrap();
    let (nodes, _voters) = start_cluster(directory.path()).await;
    let bootstrap = common::survivors(&nodes);
    let admin = common::admin(&bootstrap).await;

    // What console.py expects to find (its module doc).
    admin
        .create_topic(NewTopic::new("orders", 3, 3))
        .await
        .unwrap();
    admin
        .create_topic(NewTopic::new("orders.dlq", 1, 3))
        .await
        .unwrap();
    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(&bootstrap)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let mut deliveries = Vec::new();
    for index in 0..10 {
        let value = format!(r#"{{"id": {index}, "item": "book"}}"#);
        let record = ProducerRecord::new("orders", value)
            .key(format!("k{index}"))
            .partition(0);
        deliveries.push(producer.send(record).await.unwrap());
    }
    let parked = ProducerRecord::new("orders.dlq", r#"{"id": 99}"#)
        .key("bad")
        .header("dlq.source.topic", "orders")
        .header("dlq.reason", "poison");
    deliveries.push(producer.send(parked).await.unwrap());
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    producer.close().await.unwrap();
    admin
        .reset_group_offsets("billing", "orders", OffsetReset::ToOffset(4), true)
        .await
        .unwrap();

    let screenshots = scratch.join("console-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).unwrap();
    let console = nodes[0].http_address.as_ref().unwrap();
    let run = Command::new(&tools["python"])
        .arg(common::repository().join("tests/browser/console.py"))
        .args(["--url", &format!("http://{console}")])
        .args(["--chromium", &tools["chromium"]])
        .args(["--chromedriver", &tools["chromedriver"]])
        .arg("--screenshots")
        .arg(&screenshots)
        .output()
        .expect("console.py runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success() && stdout.contains("console scenario passed"),
        "the browser scenario failed ({}); screenshots and the page source are in {}\n\
         stdout:\n{stdout}\nstderr:\n{stderr}",
        run.status,
        screenshots.display()
    );
    eprintln!("console screenshots: {}", screenshots.display());

    // The redrive the browser pressed reached the source topic: the parked record is the
    // eleventh record of orders.
    eventually(
        "the redriven record in orders",
        Duration::from_secs(30),
        async || {
            let partitions: Vec<TopicPartition> = (0..3)
                .map(|partition| TopicPartition::new("orders", partition))
                .collect();
            let logs = admin.describe_partition_logs(&partitions).await.ok()?;
            (logs.values().map(|log| log.high_watermark).sum::<i64>() == 11).then_some(())
        },
    )
    .await;
}
