//! `strata bench share`: a work queue's throughput. `--consumers` share-group workers
//! acknowledge every record one by one (manual acks, sent with the next poll); the baseline, in
//! the same run, is a classic consumer group of as many members reading the same records.

use crate::tls::ConnectTo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;
use strata_client::{
    Acks, AutoOffsetReset, Consumer, ConsumerConfig, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord, ShareConsumer, ShareConsumerConfig, TopicPartition,
};

use super::report::Output;
use super::{PayloadPool, TopicCreation, ensure_topic};
use crate::Bootstrap;
use crate::topic::connect_admin;

#[derive(Debug, Args)]
pub struct ShareBenchArgs {
    /// Topic to read; created (see --partitions) and filled with --records records when it
    /// holds fewer.
    #[arg(long, value_name = "T")]
    topic: String,
    #[arg(long, default_value_t = 200_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    #[arg(long, default_value_t = 1024, value_name = "B", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    record_size: u64,
    /// Share-group workers, and members of the baseline consumer group.
    #[arg(long, default_value_t = 4, value_name = "C", value_parser = clap::value_parser!(u64).range(1..=64))]
    consumers: u64,
    /// Unacknowledged records a worker may hold (prefetch).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    max_in_flight: u32,
    #[command(flatten)]
    creation: TopicCreation,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

impl ShareBenchArgs {
    pub fn target(&self) -> super::BenchTarget<'_> {
        super::BenchTarget::new(&self.bootstrap, &self.topic, &self.creation)
    }
}

/// Records/s of `consumers` tasks that together count `records` records.
async fn run_readers<F, Fut>(consumers: u64, records: u64, reader: F) -> Result<f64>
where
    F: Fn(Arc<AtomicU64>) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let counted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..consumers)
        .map(|_| tokio::spawn(reader(counted.clone())))
        .collect();
    let deadline = started + Duration::from_secs(600);
    while counted.load(Ordering::Relaxed) < records {
        if Instant::now() > deadline {
            bail!(
                "read only {} of {records} records in 600 s",
                counted.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    for task in tasks {
        task.abort();
    }
    Ok(records as f64 / elapsed.as_secs_f64())
}

pub async fn run(args: ShareBenchArgs) -> Result<()> {
    let output = Output { json: args.json };
    let bootstrap = args.bootstrap.clone();
    let admin = connect_admin(&args.bootstrap).await?;
    let description = ensure_topic(&admin, &args.topic, &args.creation, output).await?;
    let mut stored = 0;
    for partition in &description.partitions {
        let topic_partition = TopicPartition::new(args.topic.as_str(), partition.partition);
        let end = admin
            .list_offsets(&topic_partition, OffsetSpec::Latest)
            .await?;
        let start = admin
            .list_offsets(&topic_partition, OffsetSpec::Earliest)
            .await?;
        stored += end.map_or(0, |o| o.offset) - start.map_or(0, |o| o.offset);
    }
    if (stored as u64) < args.records {
        let missing = args.records - stored as u64;
        output.note(&format!(
            "producing {missing} records of {} bytes",
            args.record_size
        ));
        let producer = Producer::connect(
            ProducerConfig::builder()
                .connect_to(&bootstrap)?
                .acks(Acks::Leader)
                .enable_idempotence(false)
                .build()?,
        )
        .await?;
        let pool = PayloadPool::new(args.record_size as usize);
        let mut pending = std::collections::VecDeque::new();
        for index in 0..missing {
            pending.push_back(
                producer
                    .send(ProducerRecord::new(args.topic.as_str(), pool.value(index)))
                    .await?,
            );
            if pending.len() > 65_536 {
                pending.pop_front().expect("not empty").await?;
            }
        }
        for delivery in pending {
            delivery.await?;
        }
        producer.close().await?;
    }

    let run_id = std::process::id();
    let topic = args.topic.clone();
    let classic = {
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        run_readers(args.consumers, args.records, move |counted| {
            let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
            async move {
                let mut consumer = Consumer::connect(
                    ConsumerConfig::builder()
                        .connect_to(&bootstrap)?
                        .group_id(format!("bench-classic-{run_id}"))
                        .auto_offset_reset(AutoOffsetReset::Earliest)
                        .build()?,
                )
                .await?;
                consumer.subscribe([topic])?;
                loop {
                    let records = consumer.poll(Duration::from_millis(200)).await?;
                    counted.fetch_add(records.len() as u64, Ordering::Relaxed);
                }
            }
        })
        .await?
    };
    output.note(&format!("consumer group: {classic:.0} records/s"));
    let max_in_flight = args.max_in_flight;
    let shared = run_readers(args.consumers, args.records, move |counted| {
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        async move {
            let mut worker = ShareConsumer::connect(
                ShareConsumerConfig::new(format!("bench-share-{run_id}"))
                    .connect_to(&bootstrap)?
                    .max_in_flight(max_in_flight)
                    .max_poll_records(max_in_flight),
            )
            .await?;
            worker.subscribe([topic])?;
            loop {
                let records = worker.poll(Duration::from_millis(200)).await?;
                for record in &records {
                    worker.ack(record);
                }
                counted.fetch_add(records.len() as u64, Ordering::Relaxed);
            }
        }
    })
    .await?;
    output.note(&format!(
        "share group (manual acks): {shared:.0} records/s ({:.1}% of the consumer group)",
        shared / classic * 100.0
    ));
    if args.json {
        println!(
            "{}",
            json!({
                "records": args.records,
                "record_size": args.record_size,
                "consumers": args.consumers,
                "consumer_group_records_per_s": classic,
                "share_group_records_per_s": shared,
                "ratio": shared / classic,
            })
        );
    }
    Ok(())
}
