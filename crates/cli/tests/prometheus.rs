//! A real Prometheus (Debian's package, installed by `tests/prometheus/install.sh` and started
//! by the test on loopback) scrapes a three-node cluster of `strata server` processes through
//! their HTTP admin listeners, and PromQL over what it scraped tells the truth: no
//! under-replicated partition while all three run, one fenced broker and an under-replicated
//! partition once a node is stopped, how far that node's replica falls behind its leader, and
//! the lag of a group that stopped consuming.
//!
//! Without Prometheus the test prints one `SKIPPED:` line saying why and returns.

mod common;

use common::{Node, eventually, start_cluster};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use strata_client::{Acks, NewTopic, OffsetReset, Producer, ProducerConfig, ProducerRecord};

/// The prometheus binary, or `None` after printing why the test is skipped.
fn prometheus() -> Option<String> {
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prometheus-install");
    common::installed("prometheus/install.sh", &[&logs])?.remove("prometheus")
}

/// A Prometheus process, killed when dropped.
struct Prometheus {
    child: Child,
    address: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `binary` scraping `targets` every second, its data and config under `directory`.
    fn start(binary: &str, targets: &[String], directory: &Path) -> Prometheus {
        let config = directory.join("prometheus.yml");
        let targets = targets
            .iter()
            .map(|target| format!("'{target}'"))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - \
                 job_name: strata\n    static_configs:\n      - targets: [{targets}]\n"
            ),
        )
        .unwrap();
        let address = format!("127.0.0.1:{}", common::free_port());
        let log = std::fs::File::create(directory.join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                directory.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus { child, address }
    }

    /// The value of an instant PromQL query with one result, if it has one now.
    fn query(&self, promql: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let body = common::http_get(&self.address, &path)?;
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        let results = answer["data"]["result"].as_array()?;
        let [only] = results.as_slice() else {
            return None;
        };
        only["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `promql` evaluates to `expected`.
    async fn until(&self, promql: &str, expected: f64) {
        eventually(
            &format!("{promql} to be {expected}"),
            Duration::from_secs(90),
            async || (self.query(promql) == Some(expected)).then_some(()),
        )
        .await;
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_an_under_replicated_partition_and_a_stalled_groups_lag() {
    let Some(binary) = prometheus() else {
        return;
    };
    let directory = tempfile::tempdir().unwrap();
    let (mut nodes, _voters) = start_cluster(directory.path()).await;
    let bootstrap = common::survivors(&nodes);
    let admin = common::admin(&bootstrap).await;
    admin
        .create_topic(NewTopic::new("watched", 1, 3))
        .await
        .unwrap();
    eventually("a full ISR", Duration::from_secs(60), async || {
        let topic = admin.describe_topic("watched").await.ok()?;
        (topic.partitions[0].isr.len() == 3).then_some(())
    })
    .await;
    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(&bootstrap)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    for index in 0..10 {
        producer
            .send(ProducerRecord::new("watched", format!("record-{index}")))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
    // A group that read two records and stopped.
    admin
        .reset_group_offsets("stalled", "watched", OffsetReset::ToOffset(2), true)
        .await
        .unwrap();

    let targets: Vec<String> = nodes
        .iter()
        .map(|node: &Node| node.http_address.clone().unwrap())
        .collect();
    let prometheus = Prometheus::start(&binary, &targets, directory.path());
    prometheus.until("count(up == 1)", 3.0).await;
    prometheus
        .until("max(strata_cluster_under_replicated_partitions)", 0.0)
        .await;
    prometheus
        .until(
            r#"max(strata_group_lag{group="stalled",topic="watched"})"#,
            8.0,
        )
        .await;

    prometheus
        .until(r#"max(strata_partition_replica_lag{topic="watched"})"#, 0.0)
        .await;

    // A follower of the partition stops: the leader shrinks the ISR and the controller fences
    // the broker; both show in what the survivors report, and the leader counts how far the
    // stopped follower falls behind as records keep coming.
    let leader = admin.describe_topic("watched").await.unwrap().partitions[0]
        .leader
        .expect("the partition has a leader");
    let follower = nodes
        .iter_mut()
        .find(|node| node.id != leader)
        .expect("a follower");
    let stopped = follower.id;
    let mut child = follower.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let leader_only = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(common::survivors(&nodes))
            .acks(Acks::Leader)
            .enable_idempotence(false)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    for index in 0..5 {
        leader_only
            .send(ProducerRecord::new("watched", format!("late-{index}")))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    leader_only.close().await.unwrap();
    prometheus
        .until(
            &format!(r#"max(strata_partition_replica_lag{{topic="watched",replica="{stopped}"}})"#),
            5.0,
        )
        .await;
    prometheus
        .until("max(strata_cluster_fenced_brokers)", 1.0)
        .await;
    // Every partition the stopped node had a replica of counts, `__consumer_offsets`' too.
    prometheus
        .until(
            "max(strata_cluster_under_replicated_partitions) >= bool 1",
            1.0,
        )
        .await;
    prometheus
        .until(
            r#"sum(strata_partition_under_replicated{topic="watched"})"#,
            1.0,
        )
        .await;
}
