//! Leadership bounded by the controller session: a leader that can no longer renew its session
//! stops taking writes by itself, before the controller could have elected another leader.

mod common;

use common::{STEP, create_replicated_topic, produce, start_cluster};
use std::time::Duration;
use strata_common::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_its_session_stops_taking_writes() {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = start_cluster(directory.path()).await;
    // acks=1 and one in-sync replica enough: nothing but the lease would stop a lone leader.
    let leader_id =
        create_replicated_topic(&brokers, "leased", &[("min.insync.replicas", "1")]).await;
    let leader_index = leader_id as usize - 1;
    let taken = produce(
        &brokers[leader_index],
        "leased",
        1,
        "while the quorum is up",
    )
    .await;
    assert_eq!(taken.error_code, 0, "{}", taken.error_message);

    // The other two voters go away: the leader is alone, and no controller quorum remains to
    // renew its session or to fence it.
    let leader = brokers.remove(leader_index);
    for other in brokers {
        other.shutdown().await;
    }

    let deadline = tokio::time::Instant::now() + STEP;
    let refusal = loop {
        let answer = produce(&leader, "leased", 1, "after the quorum left").await;
        if answer.error_code != 0 {
            break answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a leader cut off from its controller quorum kept acknowledging writes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        ErrorCode::from_code(refusal.error_code),
        ErrorCode::NotLeaderOrFollower,
        "{}",
        refusal.error_message
    );
    assert!(
        refusal.error_message.contains("controller session"),
        "{}",
        refusal.error_message
    );
    leader.shutdown().await;
}
