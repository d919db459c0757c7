//! Consumer groups through the client against a broker in this process: members share a
//! topic's partitions, rebalance when members come and go, resume from committed offsets, and
//! replay after an offset reset. Every wait is on a condition with a deadline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use strata_client::{
    Admin, AdminConfig, AutoOffsetReset, Consumer, ConsumerConfig, ErrorCode, NewTopic,
    OffsetReset, Producer, ProducerConfig, ProducerRecord, RebalanceEvent, TopicPartition,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

mod common;
use common::start_broker;

const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const PARTITIONS: i32 = 6;

async fn produce(bootstrap: &str, topic: &str, range: std::ops::Range<usize>) -> Result<()> {
    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(bootstrap)
            .linger_ms(1)
            .build()?,
    )
    .await?;
    let mut deliveries = Vec::new();
    for index in range {
        let record =
            ProducerRecord::new(topic, format!("{index}")).key(format!("key-{}", index % 17));
        deliveries.push(producer.send(record).await?);
    }
    for delivery in deliveries {
        delivery.await?;
    }
    producer.close().await?;
    Ok(())
}

fn config(bootstrap: &str, group: &str) -> ConsumerConfig {
    ConsumerConfig::builder()
        .bootstrap(bootstrap)
        .group_id(group)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .auto_commit_interval_ms(100)
        .session_timeout_ms(1_000)
        .fetch_max_wait_ms(100)
        .build()
        .unwrap()
}

/// A group member polling in its own task, as an application would, sending what it reads.
struct Member {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<Consumer>>,
}

#[derive(Debug)]
struct Delivery {
    value: usize,
}

fn spawn_member(
    id: usize,
    config: ConsumerConfig,
    topic: &str,
    sink: mpsc::UnboundedSender<Delivery>,
    assignments: mpsc::UnboundedSender<(usize, RebalanceEvent)>,
) -> Member {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let topic = topic.to_string();
    let task = tokio::spawn(async move {
        let mut consumer = Consumer::connect(config).await?;
        consumer.subscribe([topic])?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stopping.load(Ordering::Acquire) {
            ensure!(Instant::now() < deadline, "member {id} ran too long");
            for record in consumer.poll(Duration::from_millis(100)).await? {
                let value = std::str::from_utf8(record.value.as_deref().unwrap())?.parse()?;
                let _ = sink.send(Delivery { value });
            }
            for event in consumer.rebalance_events() {
                let _ = assignments.send((id, event));
            }
        }
        Ok(consumer)
    });
    Member { stop, task }
}

impl Member {
    async fn stop(self) -> Result<Consumer> {
        self.stop.store(true, Ordering::Release);
        self.task.await?
    }
}

/// Follows who owns which partition from the members' events. Members report events after
/// their poll returns, so one member's `Revoked` may arrive after another's `Assigned` for the
/// same partition; exclusive ownership itself is checked by the coordinator's own tests.
#[derive(Default)]
struct Ownership {
    owners: BTreeMap<TopicPartition, usize>,
    /// How many times a member lost its partitions without a revocation: its session expired
    /// (a stall longer than the session timeout on a loaded machine), so it left the group and
    /// its partitions were rightly handed to the others.
    lost: usize,
}

impl Ownership {
    fn apply(&mut self, member: usize, event: RebalanceEvent) {
        match event {
            RebalanceEvent::Assigned(partitions) => {
                for partition in partitions {
                    self.owners.insert(partition, member);
                }
            }
            RebalanceEvent::Revoked(partitions) => self.release(member, partitions),
            RebalanceEvent::Lost(partitions) => {
                self.lost += 1;
                self.release(member, partitions);
            }
        }
    }

    fn release(&mut self, member: usize, partitions: impl IntoIterator<Item = TopicPartition>) {
        for partition in partitions {
            if self.owners.get(&partition) == Some(&member) {
                self.owners.remove(&partition);
            }
        }
    }

    fn counts(&self) -> HashMap<usize, usize> {
        let mut counts = HashMap::new();
        for member in self.owners.values() {
            *counts.entry(*member).or_default() += 1;
        }
        counts
    }
}

async fn await_ownership(
    ownership: &mut Ownership,
    events: &mut mpsc::UnboundedReceiver<(usize, RebalanceEvent)>,
    what: &str,
    done: impl Fn(&Ownership) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !done(ownership) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, events.recv()).await {
            Ok(Some((member, event))) => ownership.apply(member, event),
            _ => anyhow::bail!(
                "timed out waiting for {what}; owners: {:?}",
                ownership.owners
            ),
        }
    }
    Ok(())
}

async fn collect_until(
    deliveries: &mut mpsc::UnboundedReceiver<Delivery>,
    seen: &mut BTreeMap<usize, usize>,
    expected: usize,
) -> Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while (0..expected).any(|value| !seen.contains_key(&value)) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, deliveries.recv()).await {
            Ok(Some(delivery)) => *seen.entry(delivery.value).or_default() += 1,
            _ => anyhow::bail!(
                "timed out: {} of {expected} records seen",
                (0..expected)
                    .filter(|value| seen.contains_key(value))
                    .count()
            ),
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_partitions_rebalance_and_never_skip_a_record() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let (broker, bootstrap) = start_broker(directory.path()).await?;
    let admin = Admin::connect(AdminConfig::builder().bootstrap(&bootstrap).build()?).await?;
    admin
        .create_topic(NewTopic::new("jobs", PARTITIONS, 1))
        .await?;
    produce(&bootstrap, "jobs", 0..600).await?;

    let (sink, mut deliveries) = mpsc::unbounded_channel();
    let (events_sink, mut events) = mpsc::unbounded_channel();
    let mut ownership = Ownership::default();
    let mut seen = BTreeMap::new();

    // Three members: each gets a disjoint share, together all partitions.
    let mut members: Vec<Member> = (0..3)
        .map(|id| {
            spawn_member(
                id,
                config(&bootstrap, "g"),
                "jobs",
                sink.clone(),
                events_sink.clone(),
            )
        })
        .collect();
    await_ownership(&mut ownership, &mut events, "three equal shares", |o| {
        o.owners.len() == PARTITIONS as usize && o.counts().values().all(|&n| n == 2)
    })
    .await?;
    collect_until(&mut deliveries, &mut seen, 600).await?;

    // A fourth joins: it takes only what it needs; nobody else gains anything.
    let before = ownership.owners.clone();
    let lost_before = ownership.lost;
    members.push(spawn_member(
        3,
        config(&bootstrap, "g"),
        "jobs",
        sink.clone(),
        events_sink.clone(),
    ));
    await_ownership(
        &mut ownership,
        &mut events,
        "the fourth member's share",
        |o| o.owners.len() == PARTITIONS as usize && o.counts().get(&3).copied().unwrap_or(0) >= 1,
    )
    .await?;
    for (partition, owner) in &ownership.owners {
        assert!(
            *owner == 3 || before[partition] == *owner || ownership.lost > lost_before,
            "{partition} moved between old members"
        );
    }
    produce(&bootstrap, "jobs", 600..900).await?;
    collect_until(&mut deliveries, &mut seen, 900).await?;

    // One leaves cleanly: its partitions go to the others, from its committed offsets.
    let leaving = members.remove(0);
    leaving.stop().await?.close().await?;
    await_ownership(
        &mut ownership,
        &mut events,
        "the leaver's partitions moving",
        |o| o.owners.len() == PARTITIONS as usize && !o.owners.values().any(|&m| m == 0),
    )
    .await?;
    produce(&bootstrap, "jobs", 900..1200).await?;
    collect_until(&mut deliveries, &mut seen, 1200).await?;

    // One dies without leaving: after its session timeout the others take over.
    let dead = members.remove(0);
    dead.task.abort();
    await_ownership(
        &mut ownership,
        &mut events,
        "the dead member's partitions moving",
        |o| o.owners.len() == PARTITIONS as usize && !o.owners.values().any(|&m| m == 1),
    )
    .await?;
    produce(&bootstrap, "jobs", 1200..1500).await?;
    collect_until(&mut deliveries, &mut seen, 1500).await?;

    let duplicates: usize = seen.values().map(|count| count - 1).sum();
    eprintln!("1500 records, {duplicates} redelivered across rebalances (at-least-once)");
    for member in members {
        member.stop().await?.close().await?;
    }
    let described = admin.describe_group("g").await?;
    assert_eq!(described.state, "Empty");
    let lag = admin.group_lag("g").await?;
    assert_eq!(lag.len(), PARTITIONS as usize);
    assert!(
        lag.iter().all(|partition| partition.lag == Some(0)),
        "{lag:?}"
    );
    broker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_each_read_everything_and_reset_replays() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let (broker, bootstrap) = start_broker(directory.path()).await?;
    let admin = Admin::connect(AdminConfig::builder().bootstrap(&bootstrap).build()?).await?;
    admin.create_topic(NewTopic::new("events", 3, 1)).await?;
    produce(&bootstrap, "events", 0..300).await?;

    for group in ["audit", "billing"] {
        let mut consumer = Consumer::connect(config(&bootstrap, group)).await?;
        consumer.subscribe(["events"])?;
        let mut values = BTreeSet::new();
        let deadline = Instant::now() + STEP_TIMEOUT;
        while values.len() < 300 {
            ensure!(
                Instant::now() < deadline,
                "{group} read only {}",
                values.len()
            );
            for record in consumer.poll(Duration::from_millis(200)).await? {
                values.insert(record.offset * 10 + i64::from(record.partition));
            }
        }
        consumer.commit().await?;
        consumer.close().await?;
    }
    let lag = admin.group_lag("audit").await?;
    assert!(
        lag.iter().all(|partition| partition.lag == Some(0)),
        "{lag:?}"
    );

    // A reset while the group is empty replays from the chosen point.
    let plan = admin
        .reset_group_offsets("audit", "events", OffsetReset::ToEarliest, false)
        .await?;
    assert!(
        plan.iter()
            .all(|(_, current, target)| current.is_some() && *target == 0)
    );
    let lag = admin.group_lag("audit").await?;
    assert!(
        lag.iter().all(|partition| partition.lag == Some(0)),
        "a dry run changes nothing"
    );
    admin
        .reset_group_offsets("audit", "events", OffsetReset::ToOffset(50), true)
        .await?;
    let lag = admin.group_lag("audit").await?;
    let total: i64 = lag.iter().filter_map(|partition| partition.lag).sum();
    let ends: i64 = lag
        .iter()
        .filter_map(|partition| partition.log_end_offset)
        .sum();
    assert_eq!(total, ends - 3 * 50);

    let mut consumer = Consumer::connect(config(&bootstrap, "audit")).await?;
    consumer.subscribe(["events"])?;
    let mut replayed = 0;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while replayed < total {
        ensure!(
            Instant::now() < deadline,
            "replayed only {replayed} of {total}"
        );
        let records = consumer.poll(Duration::from_millis(200)).await?;
        assert!(records.iter().all(|record| record.offset >= 50));
        replayed += records.len() as i64;
    }
    // Resetting a group with an active member is refused.
    let error = admin
        .reset_group_offsets("audit", "events", OffsetReset::ToLatest, true)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NonEmptyGroup));
    consumer.close().await?;

    admin.delete_group("billing").await?;
    let groups: Vec<String> = admin
        .list_groups()
        .await?
        .into_iter()
        .map(|group| group.group_id)
        .collect();
    assert_eq!(groups, vec!["audit".to_string()]);
    broker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_subscription_and_a_member_that_stops_polling() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let (broker, bootstrap) = start_broker(directory.path()).await?;
    let admin = Admin::connect(AdminConfig::builder().bootstrap(&bootstrap).build()?).await?;
    for topic in ["metrics-cpu", "metrics-disk", "logs"] {
        admin.create_topic(NewTopic::new(topic, 2, 1)).await?;
    }
    let patient = ConsumerConfig::builder()
        .bootstrap(&bootstrap)
        .group_id("metrics")
        .session_timeout_ms(5_000)
        .max_poll_interval_ms(1_000)
        .fetch_max_wait_ms(100)
        .build()?;
    let mut stalled = Consumer::connect(patient.clone()).await?;
    stalled.subscribe_pattern("metrics-.*").await?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut owned = BTreeSet::new();
    while owned.len() < 4 {
        ensure!(Instant::now() < deadline, "only {owned:?} assigned");
        stalled.poll(Duration::from_millis(100)).await?;
        for event in stalled.rebalance_events() {
            if let RebalanceEvent::Assigned(partitions) = event {
                owned.extend(partitions);
            }
        }
    }
    assert!(
        owned
            .iter()
            .all(|tp: &TopicPartition| tp.topic.starts_with("metrics-"))
    );

    // `stalled` stops polling: after max_poll_interval_ms it leaves and `active` gets everything.
    let mut active = Consumer::connect(patient).await?;
    active.subscribe_pattern("metrics-.*").await?;
    let mut taken = BTreeSet::new();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while taken.len() < 4 {
        ensure!(
            Instant::now() < deadline,
            "the stalled member kept {taken:?} from the active one"
        );
        active.poll(Duration::from_millis(100)).await?;
        for event in active.rebalance_events() {
            if let RebalanceEvent::Assigned(partitions) = event {
                taken.extend(partitions);
            }
        }
    }
    // Its next poll notices it was removed, drops its partitions, and rejoins.
    stalled.poll(Duration::from_millis(100)).await?;
    assert!(
        stalled
            .rebalance_events()
            .iter()
            .any(|event| matches!(event, RebalanceEvent::Lost(_))),
        "the stalled member learns it lost its partitions"
    );
    stalled.close().await?;
    active.close().await?;
    broker.shutdown().await;
    Ok(())
}
