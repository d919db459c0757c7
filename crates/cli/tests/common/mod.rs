//! Helpers shared by the tests that run a real cluster (`cluster_faults.rs`, `compose.rs`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use strata_client::{Admin, AdminConfig, Consumer, ConsumerConfig, TopicPartition};

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

/// An admin client with a 5 s request timeout.
pub async fn admin(bootstrap: &str) -> strata_client::Result<Admin> {
    Admin::connect(
        AdminConfig::builder()
            .bootstrap(bootstrap)
            .request_timeout_ms(5_000)
            .build()?,
    )
    .await
}

/// Reads `partitions` partitions of `topic` from the beginning through `bootstrap` and checks
/// that every acknowledged `(key, "key:index")` record is there exactly once, that nothing is
/// there twice, and that each key's records are in the order they were sent. Gives up after
/// `limit`. Returns how many distinct records it read.
pub async fn assert_exactly_once_in_key_order(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    acknowledged: &[(String, String)],
    limit: Duration,
) -> usize {
    let mut consumer = Consumer::connect(
        ConsumerConfig::builder()
            .bootstrap(bootstrap)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let partitions: Vec<TopicPartition> = (0..partitions)
        .map(|partition| TopicPartition::new(topic, partition))
        .collect();
    consumer.assign(partitions.clone()).unwrap();
    consumer.seek_to_beginning(&partitions).await.unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut order: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let deadline = Instant::now() + limit;
    while acknowledged
        .iter()
        .any(|(_, value)| !seen.contains_key(value))
    {
        assert!(
            Instant::now() < deadline,
            "acknowledged records are missing: {} records read, {} acknowledged",
            seen.len(),
            acknowledged.len()
        );
        for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            let key = String::from_utf8(record.key.unwrap().to_vec()).unwrap();
            let index: usize = value.rsplit(':').next().unwrap().parse().unwrap();
            *seen.entry(value).or_default() += 1;
            order.entry(key).or_default().push(index);
        }
    }
    let duplicated: Vec<&String> = seen
        .iter()
        .filter(|&(_, &count)| count > 1)
        .map(|(value, _)| value)
        .take(5)
        .collect();
    assert!(
        duplicated.is_empty(),
        "an idempotent producer writes each record once, but these were read more than once: \
         {duplicated:?}"
    );
    for (key, indexes) in &order {
        assert!(
            indexes.windows(2).all(|pair| pair[0] < pair[1]),
            "records of {key} are out of order: {indexes:?}"
        );
    }
    seen.len()
}
