//! Share groups (work queues) through the client against a broker in this process: jobs are
//! spread over competing workers, each acknowledged once, a crashed worker's jobs go to the
//! others, prefetch is bounded, and a poison job ends in the dead-letter topic with its story in
//! the headers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use strata_client::{
    Admin, AdminConfig, AutoOffsetReset, Consumer, ConsumerConfig, ErrorCode, NewTopic, Producer,
    ProducerConfig, ProducerRecord, ShareConsumer, ShareConsumerConfig, TopicPartition,
};

mod common;
use common::start_broker;

const STEP_TIMEOUT: Duration = Duration::from_secs(60);

async fn produce_jobs(bootstrap: &str, topic: &str, jobs: &[String]) -> Result<()> {
    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(bootstrap)
            .linger_ms(1)
            .build()?,
    )
    .await?;
    let mut deliveries = Vec::new();
    for job in jobs {
        deliveries.push(
            producer
                .send(ProducerRecord::new(topic, job.clone()).key(job.clone()))
                .await?,
        );
    }
    for delivery in deliveries {
        delivery.await?;
    }
    producer.close().await?;
    Ok(())
}

fn worker_config(bootstrap: &str, group: &str) -> ShareConsumerConfig {
    ShareConsumerConfig::new(group)
        .bootstrap(bootstrap)
        .max_in_flight(50)
        .visibility_timeout_ms(1_000)
        .fetch_max_wait_ms(100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_jobs_and_a_crashed_workers_jobs_go_to_the_others() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let (broker, bootstrap) = start_broker(directory.path()).await?;
    let admin = Admin::connect(AdminConfig::builder().bootstrap(&bootstrap).build()?).await?;
    admin.create_topic(NewTopic::new("jobs", 4, 1)).await?;
    let jobs: Vec<String> = (0..2_000).map(|index| format!("job-{index}")).collect();
    produce_jobs(&bootstrap, "jobs", &jobs).await?;

    // A worker that takes jobs and dies without acknowledging them.
    let mut doomed = ShareConsumer::connect(worker_config(&bootstrap, "workers")).await?;
    doomed.subscribe(["jobs"])?;
    let mut taken = Vec::new();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while taken.is_empty() {
        ensure!(Instant::now() < deadline, "the doomed worker got nothing");
        taken = doomed.poll(Duration::from_millis(200)).await?;
    }
    ensure!(
        taken.len() <= 50,
        "prefetch bounds what one worker holds: {}",
        taken.len()
    );
    let more = doomed.poll(Duration::from_millis(200)).await?;
    ensure!(
        more.is_empty(),
        "no more until it acknowledges: got {}",
        more.len()
    );
    drop(doomed);

    // Three workers acknowledge everything; the doomed worker's jobs come back to them.
    let mut workers = Vec::new();
    for _ in 0..3 {
        let mut worker = ShareConsumer::connect(worker_config(&bootstrap, "workers")).await?;
        worker.subscribe(["jobs"])?;
        workers.push(worker);
    }
    let mut acknowledged: BTreeMap<String, usize> = BTreeMap::new();
    let mut redelivered = 0;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while acknowledged.len() < jobs.len() {
        ensure!(
            Instant::now() < deadline,
            "only {} of {} jobs acknowledged",
            acknowledged.len(),
            jobs.len()
        );
        for worker in &mut workers {
            for job in worker.poll(Duration::from_millis(50)).await? {
                if job.delivery_count > 1 {
                    redelivered += 1;
                }
                let value = String::from_utf8(job.value.clone().unwrap().to_vec())?;
                worker.ack(&job);
                worker.commit().await?;
                *acknowledged.entry(value).or_default() += 1;
            }
        }
    }
    ensure!(
        acknowledged.values().all(|&count| count == 1),
        "every job acknowledged exactly once"
    );
    ensure!(
        redelivered >= taken.len(),
        "the crashed worker's {} jobs were redelivered",
        taken.len()
    );

    // An acknowledgement for a record nobody holds is refused and changes nothing.
    let mut late = ShareConsumer::connect(worker_config(&bootstrap, "workers")).await?;
    late.subscribe(["jobs"])?;
    late.ack(&taken[0]);
    let error = late.commit().await.unwrap_err();
    ensure!(
        error.code() == Some(ErrorCode::InvalidRecordState),
        "{error}"
    );

    let description = admin.describe_share_group("workers").await?;
    ensure!(
        description
            .partitions
            .iter()
            .all(|partition| partition.acquired == 0
                && partition.start_offset == partition.fetch_offset),
        "nothing in flight: {description:?}"
    );
    for worker in workers {
        worker.close().await?;
    }
    broker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_job_ends_in_the_dead_letter_topic_and_the_queue_keeps_flowing() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let (broker, bootstrap) = start_broker(directory.path()).await?;
    let admin = Admin::connect(AdminConfig::builder().bootstrap(&bootstrap).build()?).await?;
    admin.create_topic(NewTopic::new("orders", 1, 1)).await?;
    let jobs: Vec<String> = ["ok-1", "poison", "ok-2", "ok-3"]
        .map(String::from)
        .to_vec();
    produce_jobs(&bootstrap, "orders", &jobs).await?;

    let mut worker =
        ShareConsumer::connect(worker_config(&bootstrap, "billing").max_delivery_attempts(3))
            .await?;
    worker.subscribe(["orders"])?;
    let mut done = BTreeSet::new();
    let mut poison_deliveries = 0;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while done.len() < 3 || poison_deliveries < 3 {
        ensure!(
            Instant::now() < deadline,
            "done {done:?}, poison delivered {poison_deliveries} times"
        );
        for job in worker.poll(Duration::from_millis(100)).await? {
            let value = String::from_utf8(job.value.clone().unwrap().to_vec())?;
            if value == "poison" {
                poison_deliveries += 1;
                assert_eq!(job.delivery_count, poison_deliveries);
                worker.release(&job, "could not parse the order");
            } else {
                worker.ack(&job);
                done.insert(value);
            }
        }
        worker.commit().await?;
    }

    let mut dlq = Consumer::connect(
        ConsumerConfig::builder()
            .bootstrap(&bootstrap)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .build()?,
    )
    .await?;
    dlq.assign(vec![TopicPartition::new("orders.dlq", 0)])?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let parked = loop {
        ensure!(Instant::now() < deadline, "nothing arrived in orders.dlq");
        if let Some(record) = dlq
            .poll(Duration::from_millis(200))
            .await?
            .into_iter()
            .next()
        {
            break record;
        }
    };
    assert_eq!(parked.value.as_deref(), Some(&b"poison"[..]));
    assert_eq!(parked.key.as_deref(), Some(&b"poison"[..]));
    let header = |key: &str| {
        parked
            .headers
            .iter()
            .find(|header| header.key == key)
            .and_then(|header| header.value.clone())
            .map(|value| String::from_utf8(value.to_vec()).unwrap())
    };
    assert_eq!(header("dlq.source.topic").as_deref(), Some("orders"));
    assert_eq!(header("dlq.source.partition").as_deref(), Some("0"));
    assert_eq!(header("dlq.source.offset").as_deref(), Some("1"));
    assert_eq!(header("dlq.delivery.count").as_deref(), Some("3"));
    assert_eq!(
        header("dlq.reason").as_deref(),
        Some("could not parse the order")
    );
    assert_eq!(header("dlq.group").as_deref(), Some("billing"));
    assert!(header("dlq.dead.lettered.at").is_some());

    let description = admin.describe_share_group("billing").await?;
    assert_eq!(description.dead_lettered, 1);
    assert_eq!(description.acknowledged, 3);
    worker.close().await?;
    broker.shutdown().await;
    Ok(())
}
