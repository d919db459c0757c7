//! A consumer group on three real `strata server` processes: SIGKILL the group coordinator's
//! node while three members consume, and check the group carries on with its committed offsets
//! intact and no record skipped (at-least-once).

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use strata_client::{
    AutoOffsetReset, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use tokio::sync::mpsc;

const PARTITIONS: i32 = 6;

async fn produce(bootstrap: &str, range: std::ops::Range<usize>) {
    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(bootstrap)
            .linger_ms(1)
            .delivery_timeout_ms(60_000)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let mut deliveries = Vec::new();
    for index in range {
        let record = ProducerRecord::new("work", index.to_string()).key(format!("k{}", index % 31));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    producer.close().await.unwrap();
}

fn spawn_member(
    bootstrap: String,
    stop: Arc<AtomicBool>,
    sink: mpsc::UnboundedSender<usize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = ConsumerConfig::builder()
            .bootstrap(&bootstrap)
            .group_id("workers")
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .auto_commit_interval_ms(200)
            .session_timeout_ms(3_000)
            .fetch_max_wait_ms(200)
            .request_timeout_ms(5_000)
            .build()
            .unwrap();
        let mut consumer = Consumer::connect(config).await.unwrap();
        consumer.subscribe(["work"]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(150);
        while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
            // Errors while the coordinator or a leader moves are retried by polling again.
            if let Ok(records) = consumer.poll(Duration::from_millis(200)).await {
                for record in records {
                    let value = std::str::from_utf8(record.value.as_deref().unwrap()).unwrap();
                    let _ = sink.send(value.parse().unwrap());
                }
            }
        }
        let _ = consumer.close().await;
    })
}

async fn await_all(
    deliveries: &mut mpsc::UnboundedReceiver<usize>,
    seen: &mut HashMap<usize, usize>,
    expected: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while (0..expected).any(|value| !seen.contains_key(&value)) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, deliveries.recv()).await {
            Ok(Some(value)) => *seen.entry(value).or_default() += 1,
            _ => panic!(
                "records were skipped: {} of {expected} seen",
                (0..expected)
                    .filter(|value| seen.contains_key(value))
                    .count()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_survives_its_coordinators_death_with_its_offsets() {
    let directory = tempfile::tempdir().unwrap();
    let (mut nodes, _voters) = start_cluster(directory.path()).await;
    let bootstrap = survivors(&nodes);
    let admin_client = admin(&bootstrap).await;
    admin_client
        .create_topic(NewTopic::new("work", PARTITIONS, 3).config("min.insync.replicas", "2"))
        .await
        .unwrap();
    produce(&bootstrap, 0..3_000).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (sink, mut deliveries) = mpsc::unbounded_channel();
    let members: Vec<_> = (0..3)
        .map(|_| spawn_member(bootstrap.clone(), stop.clone(), sink.clone()))
        .collect();
    let mut seen = HashMap::new();
    await_all(&mut deliveries, &mut seen, 3_000).await;

    // Three members, disjoint shares, every partition; and commits that cover everything read.
    let committed: BTreeMap<TopicPartition, i64> = eventually(
        "a stable group with every partition committed",
        Duration::from_secs(30),
        async || {
            let group = admin_client.describe_group("workers").await.ok()?;
            let owned: usize = group
                .members
                .iter()
                .map(|member| member.assignment.len())
                .sum();
            let lag = admin_client.group_lag("workers").await.ok()?;
            (group.members.len() == 3
                && owned == PARTITIONS as usize
                && group
                    .members
                    .iter()
                    .all(|member| member.assignment.len() == 2)
                && lag.len() == PARTITIONS as usize
                && lag.iter().all(|partition| partition.lag == Some(0)))
            .then(|| {
                lag.into_iter()
                    .map(|partition| (partition.topic_partition, partition.committed.unwrap()))
                    .collect()
            })
        },
    )
    .await;
    let coordinator = admin_client
        .describe_group("workers")
        .await
        .unwrap()
        .coordinator_id;

    let node = nodes
        .iter_mut()
        .find(|node| node.id == coordinator)
        .unwrap();
    node.child.as_mut().unwrap().kill().unwrap();
    node.child.take().unwrap().wait().unwrap();
    let started = Instant::now();
    let bootstrap = survivors(&nodes);
    let admin_after = admin(&bootstrap).await;

    // The new coordinator has the offsets the old one committed.
    let described = eventually("a new coordinator", Duration::from_secs(60), async || {
        let group = admin_after.describe_group("workers").await.ok()?;
        (group.coordinator_id != coordinator).then_some(group)
    })
    .await;
    eprintln!(
        "coordinator {coordinator} killed; node {} coordinates after {:?}",
        described.coordinator_id,
        started.elapsed()
    );
    for (partition, offset) in &committed {
        assert!(
            described.offsets[partition].offset >= *offset,
            "the committed offset of {partition} went back"
        );
    }

    // The group keeps consuming new records; nothing is skipped.
    produce(&bootstrap, 3_000..6_000).await;
    await_all(&mut deliveries, &mut seen, 6_000).await;
    let redelivered: usize = seen.values().map(|count| count - 1).sum();
    eprintln!("6000 records, {redelivered} redelivered (at-least-once)");
    stop.store(true, Ordering::Release);
    for member in members {
        member.await.unwrap();
    }
}
