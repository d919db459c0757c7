//! Tailing over `FetchStream`: how a consumer that has caught up reads what is appended next.
//!
//! At the end of the log every new batch costs a long-polling consumer a whole `Fetch`: a
//! request to write, a response's headers and trailers to send, the broker's bookkeeping for
//! both. At a steady few thousand records a second that is most of the work on both sides
//! (benches/README.md, "End-to-end latency"). One stream per leader instead lets the broker push
//! each partition's new batches as they become readable, and the consumer only answers with
//! credit now and then.
//!
//! The streams serve the steady state only. A seek, a changed assignment, a leader that moved
//! or any error closes them, and the consumer's long polls, which handle every such case, take
//! over until a fetch reaches the end of the log again. A broker that does not offer the call
//! turns tailing off for the consumer's lifetime. So does silence: streams that bring nothing
//! for `request_timeout` hand over to a long poll, whose own timeout finds a broker that is
//! stopped or cut off; a healthy one answers it and the consumer tails again. Without that, a
//! consumer tailing a topic nobody writes to could wait on a dead connection forever.
//!
//! Flow control: a stream starts with `fetch_max_bytes` of credit and gets back what it
//! delivered once half of that was delivered, so the broker never has more than
//! `fetch_max_bytes` sent ahead of what the consumer received, and the consumer writes a grant
//! once per half window, not once per record. The consumer reads a stream only when its buffer
//! is empty, so a slow application holds one response plus the credit, as with long polls.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_common::TopicPartition;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::consumer_config::ConsumerConfig;
use crate::decode::end_of_whole_batches;
use crate::grpc::{self, FetchStream, FetchTarget, FetchedPartition};
use crate::metadata::Leader;

/// Partitions to tail, grouped by leader, each with the offset to start from.
pub(crate) type TailTargets = Vec<(Leader, Vec<FetchTarget>)>;

/// The consumer's open streams, one per leader.
pub(crate) struct Tails {
    streams: Vec<Tail>,
    /// A broker answered `FetchStream` with `UNIMPLEMENTED`.
    unsupported: bool,
    /// When a stream last opened or brought a response.
    last_heard: Instant,
    /// How long the streams may stay silent before a long poll checks on their brokers.
    silence_limit: Duration,
}

/// One leader's stream.
struct Tail {
    leader: Leader,
    /// Where the broker goes on with each partition: after the last batch it sent.
    next_offsets: BTreeMap<TopicPartition, i64>,
    stream: FetchStream,
    /// Credit the stream started with.
    window: i64,
    /// Bytes received since credit was last granted.
    ungranted: i64,
}

/// What waiting on the streams brought.
pub(crate) enum TailEvent {
    /// One response from one leader. None of its partitions carries an error.
    Fetched {
        leader: Leader,
        partitions: Vec<FetchedPartition>,
    },
    /// Nothing arrived before the deadline; the streams stay open.
    Idle,
    /// The streams are closed: a partition's error, a broken or ended stream, silence for
    /// `request_timeout`, or a response
    /// that does not fit what was asked. Nothing was taken from them that the consumer needs,
    /// so a long poll from its positions loses nothing.
    Stopped,
}

impl Tails {
    /// `silence_limit`: how long streams may bring nothing before a long poll takes over.
    pub fn new(silence_limit: Duration) -> Tails {
        Tails {
            streams: Vec::new(),
            unsupported: false,
            last_heard: Instant::now(),
            silence_limit,
        }
    }

    pub fn is_supported(&self) -> bool {
        !self.unsupported
    }

    pub fn stop(&mut self) {
        self.streams.clear();
    }

    /// Keeps each stream that is about to send exactly what `wanted` asks of its leader, closes
    /// the others and opens what is missing. `false` (with every stream closed) when one could
    /// not be opened.
    pub async fn follow(
        &mut self,
        cluster: &Cluster,
        config: &ConsumerConfig,
        wanted: TailTargets,
    ) -> bool {
        self.streams.retain(|tail| {
            wanted
                .iter()
                .any(|(leader, targets)| tail.sends_next(leader, targets))
        });
        for (leader, targets) in wanted {
            if self.streams.iter().any(|tail| tail.leader == leader) {
                continue;
            }
            let next_offsets = targets
                .iter()
                .map(|target| (target.topic_partition.clone(), target.fetch_offset))
                .collect();
            match self.open(cluster, config, &leader, targets).await {
                Some(stream) => {
                    self.last_heard = Instant::now();
                    self.streams.push(Tail {
                        leader,
                        next_offsets,
                        stream,
                        window: tail_window(config),
                        ungranted: 0,
                    });
                }
                None => {
                    self.stop();
                    return false;
                }
            }
        }
        true
    }

    async fn open(
        &mut self,
        cluster: &Cluster,
        config: &ConsumerConfig,
        leader: &Leader,
        targets: Vec<FetchTarget>,
    ) -> Option<FetchStream> {
        let opened = match cluster.connection(&leader.address).await {
            Ok(connection) => {
                grpc::open_fetch_stream(
                    &connection,
                    targets,
                    tail_window(config),
                    config.fetch_max_wait(),
                    config.request_timeout(),
                )
                .await
            }
            Err(error) => Err(error),
        };
        match opened {
            Ok(Some(stream)) => Some(stream),
            Ok(None) => {
                tracing::info!(address = %leader.address, "the broker does not offer FetchStream; tailing with long polls");
                self.unsupported = true;
                None
            }
            Err(error) => {
                // The long poll that follows meets the same problem and handles it.
                tracing::debug!(%error, address = %leader.address, "cannot open a FetchStream");
                None
            }
        }
    }

    /// Waits until `deadline` for the next response of any stream.
    pub async fn next(&mut self, deadline: Instant) -> TailEvent {
        if self.streams.is_empty() {
            return TailEvent::Stopped;
        }
        // A limit too far off to represent never ends tailing.
        let silent_too_long = self
            .last_heard
            .checked_add(self.silence_limit)
            .unwrap_or(deadline);
        let waited = {
            let waits = self
                .streams
                .iter_mut()
                .map(|tail| Box::pin(tail.stream.next()));
            tokio::time::timeout_at(
                deadline.min(silent_too_long),
                futures::future::select_all(waits),
            )
            .await
            .map(|(received, index, _others)| (received, index))
        };
        let (received, index) = match waited {
            Ok(received) => received,
            Err(_) if Instant::now() >= silent_too_long => {
                tracing::debug!(
                    "no FetchStream brought anything for a while; checking with a long poll"
                );
                self.stop();
                return TailEvent::Stopped;
            }
            Err(_) => return TailEvent::Idle,
        };
        self.last_heard = Instant::now();
        let tail = &mut self.streams[index];
        let accepted = match received {
            Ok(Some(partitions)) => tail.accept(&partitions).then_some(partitions),
            Ok(None) => None,
            Err(error) => {
                tracing::debug!(%error, address = %tail.leader.address, "a FetchStream broke");
                None
            }
        };
        match accepted {
            Some(partitions) => TailEvent::Fetched {
                leader: tail.leader.clone(),
                partitions,
            },
            None => {
                self.stop();
                TailEvent::Stopped
            }
        }
    }
}

impl Tail {
    /// Whether this stream reads from `leader` exactly the partitions of `targets`, each next
    /// at the target's offset.
    fn sends_next(&self, leader: &Leader, targets: &[FetchTarget]) -> bool {
        self.leader == *leader
            && self.next_offsets.len() == targets.len()
            && targets.iter().all(|target| {
                self.next_offsets.get(&target.topic_partition) == Some(&target.fetch_offset)
            })
    }

    /// Moves each partition past what it received and grants credit back when due. `false`
    /// when a partition is in error (the broker has dropped it from the stream) or was not
    /// asked for.
    fn accept(&mut self, partitions: &[FetchedPartition]) -> bool {
        for fetched in partitions {
            if fetched.error.is_some() {
                return false;
            }
            let Some(next_offset) = self.next_offsets.get_mut(&fetched.topic_partition) else {
                return false;
            };
            if let Some(end) = end_of_whole_batches(&fetched.records) {
                *next_offset = end;
            }
            self.ungranted += fetched.records.len() as i64;
        }
        if self.ungranted >= self.window / 2 {
            self.stream.grant(self.ungranted);
            self.ungranted = 0;
        }
        true
    }
}

fn tail_window(config: &ConsumerConfig) -> i64 {
    i64::from(config.fetch_max_bytes()).max(1)
}
