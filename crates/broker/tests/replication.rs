//! Two real brokers on loopback replicating one partition, with the controller's part (who leads,
//! committing ISR changes) played by the test.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_broker::replica_manager::{
    Acks, AddressBook, BrokerEpochs, IsrUpdater, PartitionAssignment,
};
use strata_broker::topic_config::TopicConfig;
use strata_broker::{Broker, BrokerConfig, BrokerHandle, ReplicationConfig};
use strata_common::{ErrorCode, TopicPartition};
use strata_record::{BatchIter, RecordBatchBuilder};
use strata_tests::relay::SilencingRelay;

fn quick_replication() -> ReplicationConfig {
    ReplicationConfig {
        replica_lag_time_max_ms: 1_000,
        replica_fetch_max_wait_ms: 200,
        ..ReplicationConfig::default()
    }
}

async fn start(node_id: i32, directory: &std::path::Path) -> BrokerHandle {
    start_with(node_id, directory, quick_replication()).await
}

async fn start_with(
    node_id: i32,
    directory: &std::path::Path,
    replication: ReplicationConfig,
) -> BrokerHandle {
    let config = BrokerConfig {
        node_id,
        data_dir: directory.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        replication,
        ..BrokerConfig::default()
    };
    Broker::start(config).await.expect("broker starts")
}

/// Plays the controller's record of registrations: each broker's current epoch is the one it
/// registered with, which leaders check on every follower fetch.
fn share_broker_epochs(brokers: [&BrokerHandle; 2]) {
    let epochs: HashMap<i32, i64> = brokers
        .iter()
        .map(|broker| {
            let replicas = broker.replica_manager();
            (replicas.node_id(), replicas.broker_epoch())
        })
        .collect();
    let epochs: BrokerEpochs = Arc::new(move |id| epochs.get(&id).copied());
    for broker in brokers {
        broker.replica_manager().set_broker_epochs(epochs.clone());
    }
}

/// Tells both brokers where the other is and which broker epochs are current, and plays a
/// controller that commits every ISR change.
fn wire_up(brokers: [&BrokerHandle; 2], addresses: HashMap<i32, String>) {
    let book: AddressBook = Arc::new(move |id| addresses.get(&id).cloned());
    let updater: IsrUpdater = Arc::new(|_, _, isr| Box::pin(async move { Ok(isr) }));
    for broker in brokers {
        broker.replica_manager().set_address_book(book.clone());
        broker.replica_manager().set_isr_updater(updater.clone());
    }
    share_broker_epochs(brokers);
}

fn records(tag: &str, count: usize) -> Bytes {
    let mut builder = RecordBatchBuilder::new();
    for index in 0..count {
        builder.push(
            1_000 + index as i64,
            Some(b"k"),
            Some(format!("{tag}-{index}").as_bytes()),
            &[],
        );
    }
    builder.build().into_bytes()
}

fn values(broker: &BrokerHandle, topic_partition: &TopicPartition) -> Vec<String> {
    let log = broker
        .replica_manager()
        .partition(&topic_partition.topic, topic_partition.partition)
        .unwrap()
        .log()
        .clone();
    let read = log.read(0, 1 << 20, None).unwrap();
    BatchIter::new(read.records)
        .flat_map(|batch| {
            batch
                .unwrap()
                .records()
                .map(|record| String::from_utf8(record.unwrap().value.unwrap().to_vec()).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_waits_for_the_follower_and_a_dead_follower_leaves_the_isr() {
    let directories = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let leader = start(1, directories[0].path()).await;
    let follower = start(2, directories[1].path()).await;
    let addresses: HashMap<i32, String> = HashMap::from([
        (1, leader.internal_addr().to_string()),
        (2, follower.internal_addr().to_string()),
    ]);
    let book: AddressBook = Arc::new(move |id| addresses.get(&id).cloned());
    // The "controller": commits every ISR change the leader proposes and remembers the last.
    let committed: Arc<Mutex<Vec<i32>>> = Arc::new(Mutex::new(vec![1, 2]));
    let recorder = committed.clone();
    let updater: IsrUpdater = Arc::new(move |_, _, isr| {
        *recorder.lock().unwrap() = isr.clone();
        Box::pin(async move { Ok(isr) })
    });
    for broker in [&leader, &follower] {
        broker.replica_manager().set_address_book(book.clone());
        broker.replica_manager().set_isr_updater(updater.clone());
    }
    share_broker_epochs([&leader, &follower]);
    let topic_partition = TopicPartition::new("replicated", 0);
    let config = TopicConfig::resolve(
        &[("min.insync.replicas".to_string(), "2".to_string())]
            .into_iter()
            .collect(),
    )
    .unwrap();
    let assignment = PartitionAssignment {
        leader_id: 1,
        leader_epoch: 1,
        replicas: vec![1, 2],
        isr: vec![1, 2],
    };
    leader
        .replica_manager()
        .apply_assignment(topic_partition.clone(), &config, &assignment)
        .unwrap();
    follower
        .replica_manager()
        .apply_assignment(topic_partition.clone(), &config, &assignment)
        .unwrap();

    let timeout = Duration::from_secs(10);
    for round in 0..5 {
        let info = leader
            .replica_manager()
            .append(
                "replicated",
                0,
                records(&format!("r{round}"), 3),
                Acks::All,
                timeout,
            )
            .await
            .expect("acks=all succeeds with both in sync");
        assert_eq!(info.base_offset, round * 3);
    }
    // acks=all returned, so the follower already has every record.
    assert_eq!(values(&follower, &topic_partition).len(), 15);
    assert_eq!(
        values(&follower, &topic_partition),
        values(&leader, &topic_partition)
    );
    let follower_partition = follower
        .replica_manager()
        .partition("replicated", 0)
        .unwrap();
    eventually("the follower's high watermark", || {
        follower_partition.high_watermark() == 15
    })
    .await;
    assert_eq!(
        follower_partition.log().leader_epoch_entries(),
        leader
            .replica_manager()
            .partition("replicated", 0)
            .unwrap()
            .log()
            .leader_epoch_entries()
    );

    // Consumers may not read from a follower.
    let error = follower
        .replica_manager()
        .read("replicated", 0, 0, 1024)
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::NotLeaderOrFollower);

    follower.shutdown().await;
    eventually("the dead follower to leave the ISR", || {
        *committed.lock().unwrap() == vec![1]
    })
    .await;
    let refused = leader
        .replica_manager()
        .append("replicated", 0, records("lonely", 1), Acks::All, timeout)
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::NotEnoughReplicas);
    // acks=1 still works without the follower.
    leader
        .replica_manager()
        .append("replicated", 0, records("one", 1), Acks::Leader, timeout)
        .await
        .unwrap();

    // The follower comes back, catches up and rejoins the ISR.
    let follower = start(2, directories[1].path()).await;
    follower.replica_manager().set_address_book(book.clone());
    follower.replica_manager().set_isr_updater(updater.clone());
    share_broker_epochs([&leader, &follower]);
    follower
        .replica_manager()
        .apply_assignment(topic_partition.clone(), &config, &assignment)
        .unwrap();
    eventually("the follower to rejoin the ISR", || {
        *committed.lock().unwrap() == vec![1, 2]
    })
    .await;
    leader
        .replica_manager()
        .append("replicated", 0, records("back", 1), Acks::All, timeout)
        .await
        .expect("acks=all works again");
    assert_eq!(
        values(&follower, &topic_partition),
        values(&leader, &topic_partition)
    );
    leader.shutdown().await;
    follower.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_truncates_its_divergent_tail_to_the_new_leaders_epoch_end() {
    let directories = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let first = start(1, directories[0].path()).await;
    let second = start(2, directories[1].path()).await;
    wire_up(
        [&first, &second],
        HashMap::from([
            (1, first.internal_addr().to_string()),
            (2, second.internal_addr().to_string()),
        ]),
    );
    let topic_partition = TopicPartition::new("diverge", 0);
    let config = TopicConfig::resolve(&Default::default()).unwrap();
    let timeout = Duration::from_secs(10);

    // Epoch 1: broker 1 leads, both replicate three batches.
    let epoch_one = PartitionAssignment {
        leader_id: 1,
        leader_epoch: 1,
        replicas: vec![1, 2],
        isr: vec![1, 2],
    };
    first
        .replica_manager()
        .apply_assignment(topic_partition.clone(), &config, &epoch_one)
        .unwrap();
    second
        .replica_manager()
        .apply_assignment(topic_partition.clone(), &config, &epoch_one)
        .unwrap();
    for round in 0..3 {
        first
            .replica_manager()
            .append(
                "diverge",
                0,
                records(&format!("a{round}"), 1),
                Acks::All,
                timeout,
            )
            .await
            .unwrap();
    }
    // Broker 1 writes two more that never replicate (broker 2 is cut off, as by a partition).
    second
        .replica_manager()
        .apply_assignment(
            topic_partition.clone(),
            &config,
            &PartitionAssignment {
                leader_id: -1,
                leader_epoch: 2,
                ..epoch_one.clone()
            },
        )
        .unwrap();
    for round in 0..2 {
        first
            .replica_manager()
            .append(
                "diverge",
                0,
                records(&format!("lost{round}"), 1),
                Acks::Leader,
                timeout,
            )
            .await
            .unwrap();
    }
    // Epoch 3: broker 2 becomes leader with its three records and takes a new write.
    let epoch_three = PartitionAssignment {
        leader_id: 2,
        leader_epoch: 3,
        replicas: vec![1, 2],
        isr: vec![2],
    };
    second
        .replica_manager()
        .apply_assignment(topic_partition.clone(), &config, &epoch_three)
        .unwrap();
    second
        .replica_manager()
        .append("diverge", 0, records("b0", 1), Acks::Leader, timeout)
        .await
        .unwrap();
    first
        .replica_manager()
        .apply_assignment(topic_partition.clone(), &config, &epoch_three)
        .unwrap();

    // Broker 1 must drop lost0 and lost1 and take b0 at offset 3.
    eventually("broker 1 to converge on the new leader's log", || {
        values(&first, &topic_partition) == ["a0-0", "a1-0", "a2-0", "b0-0"]
    })
    .await;
    assert_eq!(
        values(&second, &topic_partition),
        ["a0-0", "a1-0", "a2-0", "b0-0"]
    );
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_connection_to_the_leader_goes_silent_reconnects_and_catches_up() {
    let directories = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let leader = start(1, directories[0].path()).await;
    let follower = start_with(
        2,
        directories[1].path(),
        ReplicationConfig {
            replica_socket_timeout_ms: 1_000,
            ..quick_replication()
        },
    )
    .await;
    let mut relay = SilencingRelay::bind().await;
    relay.forward_to(leader.internal_addr());
    wire_up(
        [&leader, &follower],
        HashMap::from([
            (1, relay.address().to_string()),
            (2, follower.internal_addr().to_string()),
        ]),
    );
    let topic_partition = TopicPartition::new("silenced", 0);
    let config = TopicConfig::resolve(&Default::default()).unwrap();
    let assignment = PartitionAssignment {
        leader_id: 1,
        leader_epoch: 1,
        replicas: vec![1, 2],
        isr: vec![1, 2],
    };
    for broker in [&leader, &follower] {
        broker
            .replica_manager()
            .apply_assignment(topic_partition.clone(), &config, &assignment)
            .unwrap();
    }
    let timeout = Duration::from_secs(10);
    leader
        .replica_manager()
        .append("silenced", 0, records("before", 2), Acks::All, timeout)
        .await
        .expect("the follower replicates through the relay");

    relay.silence_existing_connections();
    leader
        .replica_manager()
        .append("silenced", 0, records("after", 3), Acks::Leader, timeout)
        .await
        .unwrap();
    eventually(
        "the follower to give up on its silent connection and catch up on a new one",
        || values(&follower, &topic_partition).len() == 5,
    )
    .await;
    assert_eq!(
        values(&follower, &topic_partition),
        values(&leader, &topic_partition)
    );
    // The silenced connection never completes HTTP/2's graceful close.
    tokio::time::timeout(Duration::from_secs(20), leader.shutdown())
        .await
        .expect("a connection gone silent does not hold up the leader's shutdown");
    follower.shutdown().await;
}

#[tokio::test]
async fn a_replica_socket_timeout_within_the_fetch_wait_is_refused_at_start() {
    let directory = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        data_dir: directory.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        replication: ReplicationConfig {
            replica_fetch_max_wait_ms: 500,
            replica_socket_timeout_ms: 500,
            ..ReplicationConfig::default()
        },
        ..BrokerConfig::default()
    };
    let Err(error) = Broker::start(config).await else {
        panic!("a broker whose every replica fetch would time out must not start");
    };
    let message = error.to_string();
    assert!(
        message.contains("replica.socket.timeout.ms (500) must exceed"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_current_replica_can_move_the_high_watermark() {
    use strata_proto::replication_v1 as proto;
    use strata_proto::replication_v1::replication_client::ReplicationClient;

    let directory = tempfile::tempdir().unwrap();
    let leader = start(1, directory.path()).await;
    // Broker 2 is the partition's only follower and registered with epoch 77; broker 3 is a
    // registered broker that does not replicate it.
    let epochs: BrokerEpochs = Arc::new(|id| match id {
        2 => Some(77),
        3 => Some(78),
        _ => None,
    });
    leader.replica_manager().set_broker_epochs(epochs);
    let topic_partition = TopicPartition::new("guarded", 0);
    let assignment = PartitionAssignment {
        leader_id: 1,
        leader_epoch: 1,
        replicas: vec![1, 2],
        isr: vec![1, 2],
    };
    leader
        .replica_manager()
        .apply_assignment(
            topic_partition.clone(),
            &TopicConfig::resolve(&Default::default()).unwrap(),
            &assignment,
        )
        .unwrap();
    leader
        .replica_manager()
        .append(
            "guarded",
            0,
            records("g", 3),
            Acks::Leader,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let partition = leader.replica_manager().partition("guarded", 0).unwrap();
    assert_eq!(partition.high_watermark(), 0, "broker 2 has nothing yet");

    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", leader.internal_addr()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut replication = ReplicationClient::new(channel);
    let mut fetch_as = async |replica_id: i32, broker_epoch: i64| {
        let request = proto::ReplicaFetchRequest {
            replica_id,
            broker_epoch,
            max_wait_ms: 0,
            max_bytes: 1 << 20,
            partitions: vec![proto::ReplicaFetchPartition {
                topic: "guarded".to_string(),
                partition: 0,
                leader_epoch: 1,
                fetch_offset: 3,
            }],
        };
        let answer = replication
            .replica_fetch(request)
            .await
            .unwrap()
            .into_inner()
            .partitions
            .remove(0);
        ErrorCode::from_code(answer.error_code)
    };
    // A stale incarnation of broker 2, a broker nobody registered, and a registered broker
    // that is not a replica all claim to have everything; none moves the high watermark.
    assert_eq!(fetch_as(2, 76).await, ErrorCode::StaleBrokerEpoch);
    assert_eq!(fetch_as(9, 0).await, ErrorCode::StaleBrokerEpoch);
    assert_eq!(fetch_as(3, 78).await, ErrorCode::NotLeaderOrFollower);
    assert_eq!(partition.high_watermark(), 0);
    // The real follower's claim does.
    assert_eq!(fetch_as(2, 77).await, ErrorCode::None);
    assert_eq!(partition.high_watermark(), 3);
    leader.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_all_wait_ends_as_soon_as_leadership_moves() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(1, directory.path()).await;
    let topic_partition = TopicPartition::new("moving", 0);
    let config = TopicConfig::resolve(&Default::default()).unwrap();
    // Broker 2 never fetches, so nothing this leader appends gets replicated.
    let leading = PartitionAssignment {
        leader_id: 1,
        leader_epoch: 1,
        replicas: vec![1, 2],
        isr: vec![1, 2],
    };
    broker
        .replica_manager()
        .apply_assignment(topic_partition.clone(), &config, &leading)
        .unwrap();
    let replicas = broker.replica_manager().clone();
    let waiting = tokio::spawn(async move {
        replicas
            .append(
                "moving",
                0,
                records("stranded", 1),
                Acks::All,
                Duration::from_secs(60),
            )
            .await
    });
    let partition = broker.replica_manager().partition("moving", 0).unwrap();
    eventually("the append to reach the log", || {
        partition.log().log_end_offset() == 1
    })
    .await;
    // Broker 2 takes over: the waiting producer hears it at once, not at its 60 s timeout.
    let following = PartitionAssignment {
        leader_id: 2,
        leader_epoch: 2,
        ..leading
    };
    broker
        .replica_manager()
        .apply_assignment(topic_partition, &config, &following)
        .unwrap();
    let error = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the wait ends with the leadership")
        .unwrap()
        .unwrap_err();
    assert_eq!(
        error.code,
        ErrorCode::NotLeaderOrFollower,
        "{}",
        error.message
    );
    assert!(
        error.message.contains("not acknowledged"),
        "{}",
        error.message
    );
    broker.shutdown().await;
}
