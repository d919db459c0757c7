//! The producer: `send` buffers records per partition, a background sender task ships them in
//! batches to each partition's leader.
//!
//! Data flow: [`Producer::send`] picks the partition, reserves buffer memory (waiting up to
//! `max_block_ms` when the buffer is full: that is the producer's backpressure) and appends the
//! record to the [`RecordAccumulator`]. The sender task wakes when a batch is full, when `linger`
//! passes, on `flush` and on close; it groups ready partitions by leader and submits one
//! `ProduceRequest` per leader to that leader's [`ProduceStream`], on which the broker appends
//! requests in the order sent. The stream's task hands each response back here in that order;
//! it resolves every record's [`DeliveryFuture`] with `base_offset + index`.
//!
//! Ordering: up to `max_in_flight_per_partition` batches of a partition are in flight, all on
//! one stream, so they are appended in `send` order. A retried batch goes back into its queue
//! ahead of every newer batch and is sent alone; with idempotence the newer batches behind it
//! are refused as out of sequence and retried after it, so records of a partition are stored in
//! `send` order even across retries (see [`RecordAccumulator`] for the case without). Outcomes
//! are reported in offset order: a batch acknowledged while an older one of its partition is
//! unsettled (a rare case across a leader change) is parked until the older one settles.
//!
//! Idempotence (on by default, as in Kafka 3.x): a request that timed out or whose response was
//! lost may still have been appended, so its retry could store the records twice. With
//! `enable_idempotence` the producer gets a producer id and epoch from `InitProducerId` when it
//! connects and stamps each batch with them and a per-partition sequence (see
//! [`RecordAccumulator`]); a retry resends the same bytes, and the leader answers a batch it
//! already has with the original offset instead of appending it again. When a stamped batch
//! fails for good (a sequence error, the delivery timeout, a refused batch) the id is retired
//! and the sender task fetches a new one before stamping more batches, because the old id's
//! sequence now has a gap the leader would refuse forever.
//!
//! Lifetime: the sender task runs until the producer is closed, explicitly with
//! [`Producer::close`] or by dropping the last clone; either way it sends what is buffered first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_common::{Clock, ErrorCode, SystemClock, TopicPartition, validate_topic_name};
use tokio::sync::{Notify, Semaphore, TryAcquireError, oneshot};
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::descriptions::ProducerIdAndEpoch;
use crate::error::{Error, Result};
use crate::grpc;
use crate::metadata::Leader;
use crate::partitioner::Partitioner;
use crate::produce_stream::ProduceStream;
use crate::producer_config::{Acks, ProducerConfig};
use crate::producer_record::{ProducerRecord, RecordMetadata};
use crate::record_accumulator::{
    ProducerBatch, RecordAccumulator, RecordFields, record_size_upper_bound,
    single_record_batch_size,
};
use crate::retry::Backoff;

/// How often a retry after the leader moved or went away doubles its backoff: 100, then 200 ms
/// with the defaults, however long the failover takes.
const LEADER_CHANGE_DOUBLINGS_MAX: u32 = 1;

/// Sends records to Strata in batches. Cheap to clone: clones share one buffer and sender task.
///
/// ```no_run
/// use strata_client::{Producer, ProducerConfig, ProducerRecord};
///
/// # async fn example() -> strata_client::Result<()> {
/// let producer = Producer::connect(ProducerConfig::builder().bootstrap("127.0.0.1:7070").build()?).await?;
/// // `send` returns once the record is buffered; the future resolves when the broker has it.
/// let delivery = producer.send(ProducerRecord::new("orders", "42 widgets").key("customer-7")).await?;
/// let metadata = delivery.await?;
/// println!("stored at {}-{} offset {}", metadata.topic, metadata.partition, metadata.offset);
/// producer.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Producer {
    shared: Arc<ProducerShared>,
    /// Dropped with the last clone, which closes the producer.
    _close_on_drop: Arc<CloseOnDrop>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Producer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Resolves to a record's [`RecordMetadata`] once the broker acknowledged it, or to the error
/// that made the producer give up on it.
#[derive(Debug)]
#[must_use = "a record's delivery is only known by awaiting its DeliveryFuture"]
pub struct DeliveryFuture {
    receiver: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(context)
            .map(|received| received.unwrap_or(Err(Error::ProducerClosed)))
    }
}

/// Called once with a record's outcome, like the callback of Kafka's `send(record, callback)`.
/// Runs on the producer's IO task: keep it short, and never block in it.
pub type DeliveryCallback = Box<dyn FnOnce(Result<RecordMetadata>) + Send + 'static>;

/// Where a record's outcome goes.
enum Reply {
    Future(oneshot::Sender<Result<RecordMetadata>>),
    Callback(DeliveryCallback),
}

/// The record's completion: where its outcome goes and what the metadata needs.
struct Completion {
    reply: Reply,
    timestamp: i64,
}

/// A request on a produce stream: the batches it carries and where it went.
struct InFlight {
    leader: Leader,
    batches: Vec<ProducerBatch<Completion>>,
}

/// A batch acknowledged at `(base_offset, log_append_time)` while an older batch of its
/// partition was still unsettled.
type Parked = (ProducerBatch<Completion>, (i64, Option<i64>));

struct ProducerState {
    accumulator: RecordAccumulator<Completion>,
    /// Acknowledged batches waiting for older ones, by batch id (creation order).
    parked: BTreeMap<u64, Parked>,
    partitioner: Partitioner,
    /// Topics this producer writes to, for metadata refreshes.
    topics: BTreeSet<String>,
    /// Ids of batches not yet acknowledged or failed; `flush` waits on the smallest.
    incomplete: BTreeSet<u64>,
    in_flight_requests: usize,
    closed: bool,
    /// Callbacks of settled records, run outside this lock (a callback may call `send`).
    callbacks_due: Vec<(DeliveryCallback, Result<RecordMetadata>)>,
    /// Someone is running `callbacks_due`; others leave theirs to that caller, which keeps
    /// callbacks in settlement order.
    running_callbacks: bool,
}

struct ProducerShared {
    config: ProducerConfig,
    cluster: Arc<Cluster>,
    state: Mutex<ProducerState>,
    /// Wakes the sender task: a batch to send, a request finished, a flush, a close.
    wake_sender: Notify,
    /// Wakes `flush` callers when batches complete.
    batches_completed: Notify,
    /// Free buffer memory in bytes. Closed when the producer closes, which fails waiting sends.
    buffer: Arc<Semaphore>,
    sender_task: Mutex<Option<JoinHandle<()>>>,
    /// One ordered produce stream per leader address, opened on first use and replaced when it
    /// ends. Cleared when the sender task stops, which lets the streams' tasks (and their
    /// references to this producer) end.
    streams: Mutex<HashMap<String, ProduceStream<InFlight>>>,
}

struct CloseOnDrop(Arc<ProducerShared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.begin_close();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent before anything that can panic, so a
    // poisoned lock still guards usable data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Producer {
    /// Validates the configuration, fetches metadata from the bootstrap brokers, obtains a
    /// producer id when idempotence is on (waiting up to `max_block_ms` for a broker to give
    /// one) and starts the sender task. Must be called inside a Tokio runtime.
    pub async fn connect(config: ProducerConfig) -> Result<Producer> {
        let cluster = Cluster::connect(config.connection_settings()).await?;
        let accumulator = if config.enable_idempotence() {
            let producer = init_producer_id(&cluster, &config).await?;
            tracing::debug!(?producer, "idempotent producer initialised");
            let mut accumulator =
                RecordAccumulator::idempotent(config.batch_size(), config.linger())
                    .with_max_in_flight(config.max_in_flight_per_partition())
                    .with_compression(config.compression_type());
            accumulator.set_producer(producer);
            accumulator
        } else {
            RecordAccumulator::new(config.batch_size(), config.linger())
                .with_max_in_flight(config.max_in_flight_per_partition())
                .with_compression(config.compression_type())
        };
        let shared = Arc::new(ProducerShared {
            cluster,
            state: Mutex::new(ProducerState {
                accumulator,
                parked: BTreeMap::new(),
                partitioner: Partitioner::default(),
                topics: BTreeSet::new(),
                incomplete: BTreeSet::new(),
                in_flight_requests: 0,
                closed: false,
                callbacks_due: Vec::new(),
                running_callbacks: false,
            }),
            wake_sender: Notify::new(),
            batches_completed: Notify::new(),
            buffer: Arc::new(Semaphore::new(config.buffer_memory())),
            sender_task: Mutex::new(None),
            streams: Mutex::new(HashMap::new()),
            config,
        });
        let task = tokio::spawn(run_sender(shared.clone()));
        *lock(&shared.sender_task) = Some(task);
        Ok(Producer {
            _close_on_drop: Arc::new(CloseOnDrop(shared.clone())),
            shared,
        })
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    /// Buffers `record` for sending and returns a future for its acknowledgement.
    ///
    /// Waits up to `max_block_ms` for topic metadata and for buffer memory. Fails at once for a
    /// record that can never be sent (bad topic name, partition out of range, too large).
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let (sender, receiver) = oneshot::channel();
        self.enqueue(record, Reply::Future(sender)).await?;
        Ok(DeliveryFuture { receiver })
    }

    /// Buffers `record` like [`Producer::send`], and calls `callback` with its outcome instead of
    /// returning a future (Kafka's `send(record, callback)`).
    ///
    /// Callbacks run on the producer's IO task, outside its locks, one at a time and in the
    /// order the records were settled, so the records of one partition are reported in offset
    /// order. A callback that panics is logged and the others still run. A callback must not
    /// call [`Producer::flush`] or [`Producer::close`], which wait for callbacks to finish.
    /// Cheaper than awaiting a [`DeliveryFuture`] per record when an application sends many
    /// small records.
    ///
    /// ```no_run
    /// use strata_client::{Producer, ProducerConfig, ProducerRecord};
    ///
    /// # async fn example(producer: Producer) -> strata_client::Result<()> {
    /// producer
    ///     .send_with_callback(
    ///         ProducerRecord::new("orders", "order-1 created"),
    ///         Box::new(|outcome| match outcome {
    ///             Ok(metadata) => println!("stored at offset {}", metadata.offset),
    ///             Err(error) => eprintln!("not stored: {error}"),
    ///         }),
    ///     )
    ///     .await?;
    /// producer.flush().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_with_callback(
        &self,
        record: ProducerRecord,
        callback: DeliveryCallback,
    ) -> Result<()> {
        self.enqueue(record, Reply::Callback(callback)).await
    }

    /// What `send` and `send_with_callback` share. On an error `reply` is dropped unused: the
    /// caller learns the error from the return value.
    async fn enqueue(&self, mut record: ProducerRecord, reply: Reply) -> Result<()> {
        let shared = &self.shared;
        let config = &shared.config;
        // The clock is read only where it is needed: to start the `max_block_ms` deadline when
        // this call has to wait, and to date a new batch. Most records need neither, and on this
        // path every nanosecond is paid once per record.
        let mut waiting_since: Option<Instant> = None;
        let mut deadline = || {
            tokio::time::Instant::from_std(*waiting_since.get_or_insert_with(Instant::now))
                + config.max_block()
        };
        if let Some(partition) = record.partition
            && partition < 0
        {
            return Err(Error::InvalidInput(format!(
                "partition {partition} is negative"
            )));
        }
        let size = record_size_upper_bound(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
        if single_record_batch_size(size) > config.max_request_size() {
            return Err(Error::RecordTooLarge {
                size: single_record_batch_size(size),
                max: config.max_request_size(),
                limit: "max_request_size",
            });
        }
        if size > config.buffer_memory() {
            return Err(Error::RecordTooLarge {
                size,
                max: config.buffer_memory(),
                limit: "buffer_memory",
            });
        }

        // The cache answers almost every record; only a miss pays for the timed wait. A topic
        // in the cache exists, so its name is valid; a miss checks the name before asking.
        let partition_count = match shared.cluster.cached_partition_count(&record.topic) {
            Some(count) if count > 0 => count,
            _ => {
                if lock(&shared.state).closed {
                    return Err(Error::ProducerClosed);
                }
                validate_topic_name(&record.topic).map_err(Error::InvalidInput)?;
                self.wait_for_partition_count(&record.topic, deadline())
                    .await?
            }
        };
        if let Some(partition) = record.partition
            && partition >= partition_count
        {
            return Err(Error::InvalidInput(format!(
                "partition {partition} does not exist: topic '{}' has {partition_count} partitions",
                record.topic
            )));
        }

        // The bound was checked against buffer_memory, which fits in u32 (see the builder).
        let permits =
            u32::try_from(size).expect("record size is below buffer_memory, which fits u32");
        match shared.buffer.try_acquire_many(permits) {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::Closed) => return Err(Error::ProducerClosed),
            Err(TryAcquireError::NoPermits) => {
                let waited_from = Instant::now();
                match tokio::time::timeout_at(
                    deadline(),
                    shared.buffer.clone().acquire_many_owned(permits),
                )
                .await
                {
                    Ok(Ok(permit)) => permit.forget(),
                    Ok(Err(_closed)) => return Err(Error::ProducerClosed),
                    Err(_) => {
                        return Err(Error::timeout(
                            format!(
                                "waiting for {size} bytes of buffer memory (buffer_memory is {} bytes; the broker is not keeping up)",
                                config.buffer_memory()
                            ),
                            waited_from.elapsed(),
                        ));
                    }
                }
            }
        }

        let timestamp = record.timestamp.unwrap_or_else(|| SystemClock.now_ms());
        let appended = {
            let mut state = lock(&shared.state);
            if state.closed {
                drop(state);
                shared.buffer.add_permits(size);
                return Err(Error::ProducerClosed);
            }
            let partition = match record.partition {
                Some(partition) => partition,
                None => state.partitioner.partition(
                    &record.topic,
                    record.key.as_deref(),
                    partition_count,
                ),
            };
            let topic_partition = TopicPartition::new(std::mem::take(&mut record.topic), partition);
            let fields = RecordFields {
                timestamp,
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: &record.headers,
            };
            let completion = Completion { reply, timestamp };
            let appended =
                state
                    .accumulator
                    .append(&topic_partition, Instant::now, fields, size, completion);
            if appended.batch_closed {
                state
                    .partitioner
                    .on_batch_closed(&topic_partition.topic, partition);
            }
            // A topic's first record always starts a batch, so only new batches need a look.
            if appended.new_batch {
                state.incomplete.insert(appended.batch_id);
                if !state.topics.contains(&topic_partition.topic) {
                    state.topics.insert(topic_partition.topic);
                }
            }
            appended
        };
        // Appending to an open batch changes nothing the sender is waiting for.
        if appended.new_batch || appended.batch_closed {
            shared.wake_sender.notify_one();
        }
        Ok(())
    }

    /// Waits until every record passed to `send` before this call is acknowledged or failed.
    /// Sends buffered batches at once rather than after `linger_ms`.
    ///
    /// Errors only if that takes longer than `delivery_timeout_ms + request_timeout_ms`, which
    /// means the sender task is stuck; each record's own outcome is in its [`DeliveryFuture`].
    pub async fn flush(&self) -> Result<()> {
        let shared = &self.shared;
        let mark = {
            let mut state = lock(&shared.state);
            state.accumulator.begin_flush();
            state.accumulator.next_batch_id()
        };
        let _flushing = FlushGuard(shared);
        shared.wake_sender.notify_one();
        let limit = shared.config.delivery_timeout() + shared.config.request_timeout();
        let waiting = async {
            // Every batch completes within the delivery timeout, so this ends.
            loop {
                let completed = shared.batches_completed.notified();
                tokio::pin!(completed);
                completed.as_mut().enable();
                let done = {
                    let state = lock(&shared.state);
                    let callbacks_ran = !state.running_callbacks && state.callbacks_due.is_empty();
                    callbacks_ran
                        && state
                            .incomplete
                            .first()
                            .is_none_or(|&oldest| oldest >= mark)
                };
                if done {
                    return;
                }
                completed.await;
            }
        };
        tokio::time::timeout(limit, waiting)
            .await
            .map_err(|_| Error::timeout("waiting for buffered records to be acknowledged", limit))
    }

    /// Stops accepting records, sends everything buffered and waits for the acknowledgements,
    /// then stops the sender task. Affects every clone of this producer.
    pub async fn close(&self) -> Result<()> {
        self.shared.begin_close();
        let task = lock(&self.shared.sender_task).take();
        let Some(task) = task else { return Ok(()) };
        let limit = self.shared.config.delivery_timeout() + self.shared.config.request_timeout();
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(join_error)) => Err(Error::broker(
                ErrorCode::UnknownServerError,
                format!("the producer's sender task failed: {join_error}"),
            )),
            Err(_) => {
                // The sender task is stuck; fail what it still holds so no future hangs.
                let error = Error::timeout("closing the producer", limit);
                let mut state = lock(&self.shared.state);
                for batch in state.accumulator.drain_all() {
                    self.shared
                        .finish_batch(&mut state, batch, Err(error.clone()));
                }
                // Acknowledged, only waiting for older batches that are now failed.
                for (_, (batch, outcome)) in std::mem::take(&mut state.parked) {
                    self.shared.finish_batch(&mut state, batch, Ok(outcome));
                }
                self.shared.unlock_and_run_callbacks(state);
                Err(error)
            }
        }
    }

    /// Looks the topic up, retrying while metadata says it does not exist (it may be being
    /// created) or the cluster is unreachable, until `deadline`.
    async fn wait_for_partition_count(
        &self,
        topic: &str,
        deadline: tokio::time::Instant,
    ) -> Result<i32> {
        let config = &self.shared.config;
        let started = Instant::now();
        let mut backoff = Backoff::new(config.retry_backoff(), config.retry_backoff_max());
        loop {
            let attempt =
                tokio::time::timeout_at(deadline, self.shared.cluster.partition_count(topic)).await;
            let error = match attempt {
                Ok(Ok(count)) if count > 0 => return Ok(count),
                Ok(Ok(_)) => Error::broker(
                    ErrorCode::LeaderNotAvailable,
                    format!("topic '{topic}' has no partitions yet"),
                ),
                Ok(Err(error)) if error.is_retriable() => error,
                Ok(Err(error)) => return Err(error),
                Err(_) => Error::timeout(
                    format!("waiting for metadata of topic '{topic}'"),
                    started.elapsed(),
                ),
            };
            let delay = backoff.next_delay();
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(match error.code() {
                    Some(ErrorCode::UnknownTopicOrPartition) => Error::broker(
                        ErrorCode::UnknownTopicOrPartition,
                        format!(
                            "topic '{topic}' not present in metadata after {} ms",
                            started.elapsed().as_millis()
                        ),
                    ),
                    _ => error,
                });
            }
            tokio::time::sleep(delay).await;
        }
    }
}

struct FlushGuard<'a>(&'a ProducerShared);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).accumulator.end_flush();
    }
}

impl ProducerShared {
    /// Releases the state lock, then runs the callbacks settled so far, unless another caller
    /// is already running them (it picks these up too, in order). Every section that settles
    /// records ends here, and the caller that runs the callbacks wakes `flush` afterwards: the
    /// one place batch completions are announced.
    fn unlock_and_run_callbacks<'a>(&'a self, mut state: MutexGuard<'a, ProducerState>) {
        if state.running_callbacks {
            return;
        }
        state.running_callbacks = true;
        loop {
            let due = std::mem::take(&mut state.callbacks_due);
            if due.is_empty() {
                state.running_callbacks = false;
                drop(state);
                // `flush` returns only once the callbacks of what it waited for have run.
                self.batches_completed.notify_waiters();
                return;
            }
            drop(state);
            for (callback, outcome) in due {
                // Kafka's producer also catches what a callback throws: one bad callback must
                // not stop the IO task or strand the callbacks queued behind it.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    callback(outcome)
                }));
                if ran.is_err() {
                    tracing::error!("a delivery callback panicked; the producer carries on");
                }
            }
            state = lock(&self.state);
        }
    }

    fn begin_close(&self) {
        {
            let mut state = lock(&self.state);
            state.closed = true;
            state.accumulator.close();
        }
        // Sends waiting for memory fail now instead of after max_block_ms.
        self.buffer.close();
        self.wake_sender.notify_one();
    }

    /// Resolves a batch's records and returns its resources. The caller has already told the
    /// accumulator the partition is free (or the batch never left it).
    fn finish_batch(
        &self,
        state: &mut ProducerState,
        batch: ProducerBatch<Completion>,
        outcome: Result<(i64, Option<i64>)>,
    ) {
        self.settle(
            state,
            batch.id,
            &batch.topic_partition,
            batch.completions,
            batch.reserved_bytes,
            outcome,
        );
    }

    /// Resolves `completions` with offsets from `base_offset` on, or with the error, and frees
    /// their buffer memory. `outcome` is `(base_offset, log_append_time)`.
    fn settle(
        &self,
        state: &mut ProducerState,
        batch_id: u64,
        topic_partition: &TopicPartition,
        completions: Vec<Completion>,
        reserved_bytes: usize,
        outcome: Result<(i64, Option<i64>)>,
    ) {
        match outcome {
            Ok((base_offset, log_append_time)) => {
                for (index, completion) in completions.into_iter().enumerate() {
                    let offset = if base_offset < 0 {
                        -1
                    } else {
                        base_offset + index as i64
                    };
                    let metadata = RecordMetadata {
                        topic: topic_partition.topic.clone(),
                        partition: topic_partition.partition,
                        offset,
                        timestamp: log_append_time.unwrap_or(completion.timestamp),
                    };
                    reply(state, completion.reply, Ok(metadata));
                }
            }
            Err(error) => {
                tracing::debug!(%topic_partition, %error, records = completions.len(), "batch failed");
                for completion in completions {
                    reply(state, completion.reply, Err(error.clone()));
                }
            }
        }
        state.incomplete.remove(&batch_id);
        self.buffer.add_permits(reserved_bytes);
    }
}

/// Hands a settled record's outcome to its future, or queues its callback for
/// [`ProducerShared::unlock_and_run_callbacks`].
fn reply(state: &mut ProducerState, reply: Reply, outcome: Result<RecordMetadata>) {
    match reply {
        // The caller may have dropped the future; nobody is left to tell then.
        Reply::Future(sender) => {
            let _ = sender.send(outcome);
        }
        Reply::Callback(callback) => state.callbacks_due.push((callback, outcome)),
    }
}

/// The sender task: routes ready batches to leaders until the producer is closed and empty.
async fn run_sender(shared: Arc<ProducerShared>) {
    let config = shared.config.clone();
    let mut last_refresh: Option<Instant> = None;
    // Why the metadata could not be refreshed, while that lasts: the cause of the wait of
    // partitions whose leader is unknown then.
    let mut refresh_error: Option<Error> = None;
    let mut leaderless_warned_at: HashMap<TopicPartition, Instant> = HashMap::new();
    let mut producer_id_backoff = Backoff::new(config.retry_backoff(), config.retry_backoff_max());
    let mut producer_id_not_before: Option<Instant> = None;
    loop {
        // Registered before the state is read, so a wake-up between the two is not lost.
        let woken = shared.wake_sender.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();

        let now = Instant::now();
        let (readiness, next_expiry, topics, finished) = {
            let mut state = lock(&shared.state);
            let expired = state.accumulator.expire(now, config.delivery_timeout());
            for batch in expired {
                let error = Error::timeout(
                    format!(
                        "delivering {} records to {} ({})",
                        batch.record_count(),
                        batch.topic_partition,
                        batch.why_undelivered()
                    ),
                    now.saturating_duration_since(batch.created),
                );
                state.accumulator.on_batch_failed(&batch);
                shared.finish_batch(&mut state, batch, Err(error));
            }
            shared.release_parked(&mut state);
            let finished =
                state.closed && state.accumulator.is_empty() && state.in_flight_requests == 0;
            let looked = (
                state.accumulator.ready(now),
                state.accumulator.next_expiry(config.delivery_timeout()),
                state.topics.iter().cloned().collect::<Vec<_>>(),
                finished,
            );
            shared.unlock_and_run_callbacks(state);
            looked
        };
        if finished {
            break;
        }

        // A retired producer id is replaced before anything new is stamped. Batches already
        // stamped (retries) are in `readiness` and keep flowing meanwhile.
        let needs_producer_id = lock(&shared.state).accumulator.needs_producer_id();
        let mut producer_id_retry_at = None;
        if needs_producer_id {
            if producer_id_not_before.is_none_or(|at| at <= now) {
                match fetch_producer_id(&shared.cluster, config.request_timeout()).await {
                    Ok(producer) => {
                        tracing::info!(?producer, "idempotent producer got a new producer id");
                        lock(&shared.state).accumulator.set_producer(producer);
                        producer_id_backoff =
                            Backoff::new(config.retry_backoff(), config.retry_backoff_max());
                        producer_id_not_before = None;
                        // New batches are stampable now: look again at once.
                        continue;
                    }
                    Err(error) => {
                        let at = Instant::now() + producer_id_backoff.next_delay();
                        tracing::debug!(%error, "InitProducerId failed; retrying");
                        producer_id_not_before = Some(at);
                    }
                }
            }
            producer_id_retry_at = producer_id_not_before;
        }

        // Route each ready partition to its leader; partitions with no known leader wait for
        // fresh metadata.
        let mut by_leader: Vec<(Leader, Vec<TopicPartition>)> = Vec::new();
        let mut leaderless = Vec::new();
        for topic_partition in readiness.ready {
            match shared.cluster.cached_leader(&topic_partition) {
                Some(leader) => match by_leader
                    .iter_mut()
                    .find(|(known, _)| known.node_id == leader.node_id)
                {
                    Some((_, partitions)) => partitions.push(topic_partition),
                    None => by_leader.push((leader, vec![topic_partition])),
                },
                None => leaderless.push(topic_partition),
            }
        }
        let mut wake_at = [readiness.next_check, next_expiry, producer_id_retry_at]
            .into_iter()
            .flatten()
            .min();
        if !leaderless.is_empty() {
            shared.hold_back_leaderless(
                &leaderless,
                refresh_error.as_ref(),
                &mut leaderless_warned_at,
                now,
            );
            let refresh_allowed_at = last_refresh.map(|at| at + config.retry_backoff());
            if refresh_allowed_at.is_none_or(|at| at <= now) {
                last_refresh = Some(now);
                refresh_error = match shared.cluster.refresh(&topics).await {
                    Ok(_) => None,
                    Err(error) => {
                        tracing::debug!(%error, "producer metadata refresh failed");
                        Some(error)
                    }
                };
                // Route again with what was learned.
                continue;
            }
            wake_at = [wake_at, refresh_allowed_at].into_iter().flatten().min();
        }

        let mut submitted = false;
        for (leader, partitions) in by_leader {
            let batches = {
                let mut state = lock(&shared.state);
                let mut batches = Vec::new();
                let mut request_size = 0;
                for topic_partition in partitions {
                    let Some(size) = state.accumulator.oldest_size(&topic_partition) else {
                        continue;
                    };
                    // Always send at least one batch, so an oversized one cannot stall forever.
                    if !batches.is_empty() && request_size + size > config.max_request_size() {
                        continue;
                    }
                    if let Some(batch) = state.accumulator.drain(&topic_partition) {
                        request_size += size;
                        state
                            .partitioner
                            .on_batch_closed(&topic_partition.topic, topic_partition.partition);
                        batches.push(batch);
                    }
                }
                if !batches.is_empty() {
                    state.in_flight_requests += 1;
                }
                batches
            };
            if !batches.is_empty() {
                shared.submit(leader, batches);
                submitted = true;
            }
        }
        if submitted {
            // Partitions skipped for size, or with room for another batch in flight, are still
            // ready: look again right away, after letting the stream tasks run. Not through a
            // timer due now: registering a timer earlier than the runtime's next one wakes a
            // parked worker thread for nothing, once per request at `linger.ms` 0.
            tokio::task::yield_now().await;
            continue;
        }

        match wake_at {
            Some(at) => {
                tokio::select! {
                    () = &mut woken => {}
                    () = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => woken.await,
        }
    }
    // Nothing is in flight any more; the streams' tasks end once their handles are gone.
    lock(&shared.streams).clear();
    tracing::debug!("producer sender task stopped");
}

/// How long the sender stays quiet about a partition it has warned has no leader. Its batches
/// are looked at again every retry backoff while they wait, which must not log each time.
const LEADERLESS_WARNING_INTERVAL: Duration = Duration::from_secs(5);

/// Why `topic_partition`, which has no leader in the cache, cannot be sent to; `None` while
/// that is not known yet because the metadata is stale and about to be refreshed.
fn leaderless_cause(
    cluster: &Cluster,
    topic_partition: &TopicPartition,
    refresh_error: Option<&Error>,
) -> Option<String> {
    if !cluster.is_fresh(&topic_partition.topic) {
        return refresh_error.map(|error| {
            format!("no leader known for {topic_partition}: the cluster metadata cannot be refreshed: {error}")
        });
    }
    match cluster.snapshot().leader(topic_partition) {
        // Elected since the cache was read (the next pass sends), or a leader whose connection
        // just failed, held back until the metadata names another or the hold ends.
        Some(Ok(_)) => None,
        Some(Err(error)) if error.code() == Some(ErrorCode::LeaderNotAvailable) => Some(format!(
            "no leader for {topic_partition} in the cluster metadata"
        )),
        // The topic or partition is gone, or the topic's metadata is an error.
        Some(Err(error)) => Some(error.to_string()),
        None => Some(format!(
            "no leader for {topic_partition}: topic '{}' is not in the cluster metadata",
            topic_partition.topic
        )),
    }
}

impl ProducerShared {
    /// Notes on the queued batches of `partitions`, which have no known leader, why they wait,
    /// and warns about each partition at most once every [`LEADERLESS_WARNING_INTERVAL`]: no
    /// request fails for them, so otherwise nothing would say why records are not delivered.
    fn hold_back_leaderless(
        &self,
        partitions: &[TopicPartition],
        refresh_error: Option<&Error>,
        warned_at: &mut HashMap<TopicPartition, Instant>,
        now: Instant,
    ) {
        warned_at.retain(|_, at| now.saturating_duration_since(*at) < LEADERLESS_WARNING_INTERVAL);
        let causes: Vec<(&TopicPartition, String)> = partitions
            .iter()
            .filter_map(|topic_partition| {
                leaderless_cause(&self.cluster, topic_partition, refresh_error)
                    .map(|cause| (topic_partition, cause))
            })
            .collect();
        if causes.is_empty() {
            return;
        }
        {
            let mut state = lock(&self.state);
            for (topic_partition, cause) in &causes {
                state.accumulator.hold_back(topic_partition, cause);
            }
        }
        for (topic_partition, cause) in causes {
            if !warned_at.contains_key(topic_partition) {
                tracing::warn!(
                    %topic_partition,
                    %cause,
                    "records wait for a partition leader until the delivery timeout"
                );
                warned_at.insert(topic_partition.clone(), now);
            }
        }
    }

    /// Sends `batches` to `leader` behind everything sent to it before, on its produce stream.
    fn submit(self: &Arc<Self>, leader: Leader, mut batches: Vec<ProducerBatch<Completion>>) {
        let config = &self.config;
        let acks = config.acks();
        let payload: Vec<(TopicPartition, Bytes)> = batches
            .iter()
            .map(|batch| (batch.topic_partition.clone(), batch.bytes()))
            .collect();
        let mut request =
            grpc::ProduceRequest::new(acks.as_i32(), config.request_timeout(), payload);

        if acks == Acks::None {
            // acks=0: the records count as delivered once sent; nobody waits for the response.
            let mut state = lock(&self.state);
            for batch in &mut batches {
                let completions = std::mem::take(&mut batch.completions);
                let reserved_bytes = std::mem::take(&mut batch.reserved_bytes);
                self.settle(
                    &mut state,
                    batch.id,
                    &batch.topic_partition,
                    completions,
                    reserved_bytes,
                    Ok((-1, None)),
                );
            }
            self.unlock_and_run_callbacks(state);
        }

        let address = leader.address.clone();
        let mut in_flight = InFlight { leader, batches };
        let mut streams = lock(&self.streams);
        // A stream that ended is replaced; a new one accepts at once, so this runs at most twice.
        loop {
            let stream = streams
                .entry(address.clone())
                .or_insert_with(|| self.open_stream(&address));
            if stream.is_closed() {
                *stream = self.open_stream(&address);
            }
            match stream.submit(request, in_flight) {
                Ok(()) => return,
                Err(returned) => {
                    (request, in_flight) = returned;
                    streams.remove(&address);
                }
            }
        }
    }

    fn open_stream(self: &Arc<Self>, address: &str) -> ProduceStream<InFlight> {
        let shared = self.clone();
        ProduceStream::open(
            self.cluster.clone(),
            address.to_string(),
            self.config.request_timeout(),
            move |in_flight, outcome| shared.complete_request(in_flight, outcome),
        )
    }

    /// Settles each batch of a finished request: acknowledged, retried or failed. Called by the
    /// stream's task in the order the requests were sent.
    fn complete_request(&self, in_flight: InFlight, result: Result<grpc::ProduceResults>) {
        let InFlight { leader, batches } = in_flight;
        let config = &self.config;
        let acks = config.acks();
        if let Err(error) = &result {
            let topics = batches
                .iter()
                .map(|batch| batch.topic_partition.topic.as_str());
            self.cluster.on_error(error, &leader.address, topics);
        }

        let now = Instant::now();
        let mut state = lock(&self.state);
        state.in_flight_requests -= 1;
        for batch in batches {
            let topic_partition = batch.topic_partition.clone();
            let outcome = match &result {
                Err(error) => Err(error.clone()),
                Ok(partitions) => partitions
                    .iter()
                    .find(|(answered, _)| *answered == topic_partition)
                    .map(|(_, outcome)| outcome.clone())
                    .unwrap_or_else(|| {
                        Err(Error::broker(
                            ErrorCode::UnknownServerError,
                            format!("the produce response does not mention {topic_partition}"),
                        ))
                    }),
            };
            if let Err(error) = &outcome
                && result.is_ok()
            {
                self.cluster
                    .on_error(error, &leader.address, [topic_partition.topic.as_str()]);
            }
            if acks == Acks::None {
                // Already settled when sent; the response only frees the partition.
                if let Err(error) = &outcome {
                    tracing::debug!(%topic_partition, %error, "acks=0 produce failed");
                }
                state.accumulator.complete(&batch);
                continue;
            }
            let behind_unsettled = state
                .accumulator
                .has_older_unsettled(&topic_partition, batch.id);
            match outcome {
                Ok(produced) => {
                    state.accumulator.complete(&batch);
                    state.accumulator.on_batch_acknowledged(&batch);
                    let outcome = (produced.base_offset, produced.log_append_time);
                    if behind_unsettled {
                        state.parked.insert(batch.id, (batch, outcome));
                    } else {
                        self.finish_batch(&mut state, batch, Ok(outcome));
                    }
                }
                // OUT_OF_ORDER_SEQUENCE_NUMBER behind an unsettled batch means the leader has
                // not stored that older batch (yet): this one goes again after it. Anywhere
                // else it is final, since resending the same sequence cannot succeed.
                Err(error)
                    if (error.is_retriable()
                        || (behind_unsettled
                            && error.code() == Some(ErrorCode::OutOfOrderSequenceNumber)))
                        && batch.attempts <= config.retries()
                        && now < batch.created + config.delivery_timeout() =>
                {
                    // A leader that moved or went away is found again by the metadata refresh
                    // this error triggers (itself paced by the retry backoff), typically within
                    // seconds: a backoff doubled up to the maximum would add up to the maximum on
                    // top of the failover, so such errors stop doubling early.
                    let failures = batch.attempts.saturating_sub(1);
                    let failures = if error.invalidates_metadata() {
                        failures.min(LEADER_CHANGE_DOUBLINGS_MAX)
                    } else {
                        failures
                    };
                    let delay = Backoff::delay_after(
                        config.retry_backoff(),
                        config.retry_backoff_max(),
                        failures,
                    );
                    // Kafka's producer warns on every retry: a retry means the cluster is not
                    // taking writes as asked, which whoever runs the producer wants to see.
                    tracing::warn!(%topic_partition, %error, attempts = batch.attempts, ?delay, "retrying batch");
                    let mut batch = batch;
                    batch.last_error = Some(error.to_string());
                    state.accumulator.reenqueue(batch, now + delay);
                }
                Err(error) => {
                    state.accumulator.complete(&batch);
                    // INVALID_PRODUCER_EPOCH lands here too.
                    if state.accumulator.on_batch_failed(&batch) {
                        tracing::info!(%topic_partition, %error, "a stamped batch failed; retiring the producer id");
                    }
                    self.finish_batch(&mut state, batch, Err(error));
                }
            }
        }
        self.release_parked(&mut state);
        self.unlock_and_run_callbacks(state);
        self.wake_sender.notify_one();
    }

    /// Settles parked batches whose older batches have all settled, oldest first.
    fn release_parked(&self, state: &mut ProducerState) {
        if state.parked.is_empty() {
            return;
        }
        let releasable: Vec<u64> = state
            .parked
            .iter()
            .filter(|(id, (batch, _))| {
                !state
                    .accumulator
                    .has_older_unsettled(&batch.topic_partition, **id)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in releasable {
            let (batch, outcome) = state.parked.remove(&id).expect("listed just now");
            self.finish_batch(state, batch, Ok(outcome));
        }
    }
}

/// Asks any broker for a producer id, once.
async fn fetch_producer_id(
    cluster: &Cluster,
    timeout: std::time::Duration,
) -> Result<ProducerIdAndEpoch> {
    let connection = cluster.any_connection().await?;
    let result = grpc::init_producer_id(&connection, timeout).await;
    if let Err(error) = &result {
        cluster.on_error(error, &connection.address, std::iter::empty());
    }
    result
}

/// The producer id for a new producer: retried with backoff on retriable errors until
/// `max_block_ms` has passed, so a cluster that is still starting up does not fail `connect`.
async fn init_producer_id(
    cluster: &Cluster,
    config: &ProducerConfig,
) -> Result<ProducerIdAndEpoch> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + config.max_block();
    let mut backoff = Backoff::new(config.retry_backoff(), config.retry_backoff_max());
    // Bounded by the deadline: every pass either returns or sleeps towards it.
    loop {
        let error = match tokio::time::timeout_at(
            deadline,
            fetch_producer_id(cluster, config.request_timeout()),
        )
        .await
        {
            Ok(Ok(producer)) => return Ok(producer),
            Ok(Err(error)) if error.is_retriable() => error,
            Ok(Err(error)) => return Err(error),
            Err(_) => Error::timeout(
                "waiting for a producer id (InitProducerId)",
                started.elapsed(),
            ),
        };
        let delay = backoff.next_delay();
        if tokio::time::Instant::now() + delay >= deadline {
            return Err(error);
        }
        tracing::debug!(%error, ?delay, "InitProducerId failed; retrying");
        tokio::time::sleep(delay).await;
    }
}
