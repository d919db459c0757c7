//! An async Rust client for Strata, a Kafka-style distributed commit log.
//!
//! Three entry points, named after Kafka's clients:
//! - [`Producer`]: batches records per partition and sends them to each partition's leader;
//!   `send` returns a [`DeliveryFuture`] that resolves to the record's offset.
//! - [`Consumer`]: reads assigned partitions with long-polling fetches, as `poll` batches or as
//!   a `Stream`.
//! - [`ShareConsumer`]: a work-queue member of a share group; each record is acknowledged,
//!   released or rejected (to the dead-letter topic) on its own.
//! - [`Admin`]: creates, deletes, describes and configures topics; describes the cluster;
//!   lists, describes, resets and deletes groups; manages users and ACLs ([`acl`]).
//!
//! Each starts from a list of bootstrap brokers (`host:port`), learns the cluster's brokers and
//! partition leaders from `Metadata`, and talks to each leader directly over one cached gRPC
//! channel per broker. When a leader moves or a broker goes away, the client refreshes metadata
//! and retries with backoff.
//!
//! Errors are one [`Error`] type: the broker's [`ErrorCode`] and message where the broker
//! reported the failure, else transport, timeout, configuration or input errors;
//! [`Error::is_retriable`] tells them apart.
//!
//! ```no_run
//! use std::time::Duration;
//! use strata_client::*;
//!
//! # async fn example() -> Result<()> {
//! let bootstrap = "127.0.0.1:7070";
//! let admin = Admin::connect(AdminConfig::builder().bootstrap(bootstrap).build()?).await?;
//! admin.create_topic(NewTopic::new("greetings", 1, 1)).await?;
//!
//! let producer = Producer::connect(ProducerConfig::builder().bootstrap(bootstrap).build()?).await?;
//! let delivery = producer.send(ProducerRecord::new("greetings", "hello").key("en")).await?;
//! let stored = delivery.await?;
//!
//! let config = ConsumerConfig::builder().bootstrap(bootstrap).build()?;
//! let mut consumer = Consumer::connect(config).await?;
//! consumer.assign(vec![TopicPartition::new("greetings", stored.partition)])?;
//! consumer.seek(&TopicPartition::new("greetings", stored.partition), stored.offset)?;
//! let records = consumer.poll(Duration::from_secs(5)).await?;
//! assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! Architecture invariant: only the private `grpc` module sees the generated prost types; the
//! public API is domain types.
//!
//! Layering, from the bottom up: a module imports only from its own layer or lower ones, so the
//! modules' imports form no cycle (`tests/tests/architecture.rs` checks that).
//! 1. Values: `error`, `descriptions` (cluster, topic, config and group descriptions),
//!    `consumer_record`, `producer_record`.
//! 2. Pure logic, no IO: `retry`, `partitioner`, `decode` (fetched batches to records),
//!    `metadata` (the cluster snapshot), `record_accumulator`.
//! 3. The transport: `grpc`.
//! 4. Reaching brokers: `cluster` (connections, metadata, leaders), `coordinator` (a group's
//!    coordinator), `produce_stream`.
//! 5. Configuration: `consumer_config`, `producer_config`.
//! 6. What the clients drive: `group` (the KIP-848 heartbeat), `tailing` (fetch streams).
//! 7. The clients: `admin`, `consumer` (its API, `fetch` pipeline and `group` side),
//!    `share_consumer`, `producer`.

mod admin;
mod cluster;
mod consumer;
mod consumer_config;
mod consumer_record;
mod coordinator;
mod credentials;
mod decode;
mod descriptions;
mod error;
mod group;
mod grpc;
mod metadata;
mod partitioner;
mod produce_stream;
mod producer;
mod producer_config;
mod producer_record;
mod record_accumulator;
mod retry;
mod share_consumer;
mod tailing;

pub use admin::{
    Admin, AdminConfig, AdminConfigBuilder, OffsetAndTimestamp, OffsetReset, OffsetSpec,
    PartitionLag, PartitionLog,
};
pub use consumer::Consumer;
pub use consumer_config::{AutoOffsetReset, ConsumerConfig, ConsumerConfigBuilder};
pub use consumer_record::ConsumerRecord;
pub use credentials::Credentials;
pub use descriptions::{
    BrokerNode, ClusterDescription, ConfigEntry, GroupDescription, GroupListing, MemberDescription,
    NewTopic, OffsetAndMetadata, PartitionInfo, ShareGroupDescription, SharePartitionDescription,
    TopicDescription, UserDescription,
};
pub use error::{Error, Result};
pub use group::RebalanceEvent;
pub use grpc::ERROR_CODE_METADATA_KEY;
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{DeliveryCallback, DeliveryFuture, Producer};
pub use producer_config::{Acks, ProducerConfig, ProducerConfigBuilder};
pub use producer_record::{ProducerRecord, RecordMetadata};
pub use share_consumer::{ShareConsumer, ShareConsumerConfig, ShareRecord};
/// Kafka's ACL model, as [`Admin::create_acls`], [`Admin::describe_acls`] and
/// [`Admin::delete_acls`] take and return it: the codes and names are Kafka's, so a binding means
/// here what it means to Kafka's tools.
pub mod acl {
    pub use strata_auth::acl::{
        AclBinding, AclFilter, CLUSTER_NAME, InvalidAcl, Operation, PatternFilter, PatternType,
        Permission, ResourceType, USER_PRINCIPAL_PREFIX, WILDCARD,
    };
}
pub use acl::{AclBinding, AclFilter};
/// SCRAM mechanisms, as `Admin::upsert_user` takes them.
pub use strata_auth::Mechanism as ScramMechanism;
pub use strata_common::{ErrorCode, TopicPartition, is_internal_topic};
pub use strata_record::{CompressionType, Header};
/// TLS settings for every client type's `tls(...)`: the CA to trust and an optional client
/// certificate.
pub use strata_tls::{ClientTls, IdentityFiles, TlsError};

/// The README's Rust examples, compiled by `cargo test --doc` so they cannot go stale.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeExamples;
