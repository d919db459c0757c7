//! The HTTP admin listener of a running broker: `/metrics` reports the partitions, requests and
//! bytes the broker has actually served, `/health` and `/ready` answer probes, and anything else
//! is refused with the HTTP status that says why.

mod common;

use std::net::SocketAddr;
use strata_broker::{Broker, BrokerConfig, BrokerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request; the status code and the body.
async fn http(address: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: strata\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (status, body.to_string())
}

/// The value of the sample `series` (name and labels exactly as exposed) in `exposition`.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

async fn start(directory: &std::path::Path) -> BrokerHandle {
    Broker::start(BrokerConfig {
        data_dir: directory.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts")
}

#[tokio::test]
async fn metrics_report_what_the_broker_served() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let http_addr = broker.http_addr().unwrap();
    common::create_topic(&broker, "orders", 1, 1, &[]).await;
    for value in ["one", "two", "three"] {
        let produced = common::produce(&broker, "orders", 1, value).await;
        assert_eq!(produced.error_code, 0, "{}", produced.error_message);
    }

    let refused = common::produce(&broker, "no-such-topic", 1, "lost").await;
    assert_eq!(refused.error_code, 3, "{}", refused.error_message);

    let fetched =
        strata_proto::v1::broker_client::BrokerClient::new(common::channel(&broker).await)
            .fetch(strata_proto::v1::FetchRequest {
                max_wait_ms: 0,
                min_bytes: 0,
                max_bytes: 1 << 20,
                isolation_level: 0,
                partitions: vec![strata_proto::v1::FetchPartition {
                    topic: "orders".to_string(),
                    partition: 0,
                    fetch_offset: 0,
                    partition_max_bytes: 1 << 20,
                }],
            })
            .await
            .unwrap()
            .into_inner();
    let fetched_bytes = fetched.partitions[0].records.len() as f64;
    assert!(fetched_bytes > 0.0);

    let (status, exposition) = http(http_addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &exposition,
            r#"strata_topic_fetched_bytes_total{topic="orders"}"#
        ),
        Some(fetched_bytes)
    );
    assert_eq!(
        sample(
            &exposition,
            r#"strata_partition_errors_total{api="produce",code="UNKNOWN_TOPIC_OR_PARTITION"}"#
        ),
        Some(1.0)
    );
    assert!(
        exposition.ends_with("# EOF\n"),
        "OpenMetrics ends with # EOF"
    );
    let partition = r#"{topic="orders",partition="0"}"#;
    for (name, expected) in [
        ("strata_partition_log_start_offset", 0.0),
        ("strata_partition_log_end_offset", 3.0),
        ("strata_partition_high_watermark", 3.0),
        ("strata_partition_leader", 1.0),
        ("strata_partition_isr_size", 1.0),
        ("strata_partition_under_replicated", 0.0),
    ] {
        assert_eq!(
            sample(&exposition, &format!("{name}{partition}")),
            Some(expected),
            "{name}\n{exposition}"
        );
    }
    let size = sample(
        &exposition,
        &format!("strata_partition_size_bytes{partition}"),
    )
    .unwrap();
    assert!(size > 0.0, "three records take some bytes");
    assert_eq!(
        sample(
            &exposition,
            r#"strata_requests_total{door="grpc",api="Broker/Produce"}"#
        ),
        Some(4.0),
        "three produced and one refused"
    );
    assert_eq!(
        sample(
            &exposition,
            r#"strata_request_duration_seconds_count{door="grpc",api="Broker/Produce"}"#
        ),
        Some(4.0)
    );
    let produced = sample(
        &exposition,
        r#"strata_topic_produced_bytes_total{topic="orders"}"#,
    )
    .unwrap();
    assert!(produced > 0.0 && produced <= size, "{produced} of {size}");
    assert_eq!(
        sample(&exposition, "strata_cluster_under_replicated_partitions"),
        Some(0.0)
    );
    assert_eq!(sample(&exposition, "strata_controller_leader"), Some(1.0));
    assert_eq!(sample(&exposition, "strata_cluster_brokers"), Some(1.0));
    assert!(sample(&exposition, "strata_process_resident_memory_bytes").unwrap() > 0.0);

    // A group that committed offset 1 of the 3 records lags by 2.
    let mut groups = strata_proto::v1::group_coordinator_client::GroupCoordinatorClient::new(
        common::channel(&broker).await,
    );
    let found = groups
        .find_coordinator(strata_proto::v1::FindCoordinatorRequest {
            group_id: "stalled".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.error_code, 0, "{}", found.error_message);
    let committed = groups
        .offset_commit(strata_proto::v1::OffsetCommitRequest {
            group_id: "stalled".to_string(),
            member_id: String::new(),
            member_epoch: -1,
            partitions: vec![strata_proto::v1::OffsetCommitPartition {
                topic: "orders".to_string(),
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(committed.partitions[0].error_code, 0, "{committed:?}");
    let (_, exposition) = http(http_addr, "GET", "/metrics").await;
    let group = r#"{group="stalled",topic="orders",partition="0"}"#;
    assert_eq!(
        sample(
            &exposition,
            &format!("strata_group_committed_offset{group}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&exposition, &format!("strata_group_lag{group}")),
        Some(2.0)
    );

    // A share-group member holding the three records shows as three in flight.
    let fetched = groups
        .share_fetch(strata_proto::v1::ShareFetchRequest {
            group_id: "workers".to_string(),
            member_id: "worker-1".to_string(),
            topics: vec!["orders".to_string()],
            max_records: 10,
            max_wait_ms: 0,
            settings: None,
            acknowledgements: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.error_code, 0, "{}", fetched.error_message);
    let (_, exposition) = http(http_addr, "GET", "/metrics").await;
    assert_eq!(
        sample(
            &exposition,
            r#"strata_share_group_in_flight{group="workers"}"#
        ),
        Some(3.0),
        "{exposition}"
    );
    assert_eq!(
        sample(
            &exposition,
            r#"strata_share_group_delivered_total{group="workers"}"#
        ),
        Some(3.0)
    );

    // A call the router does not know is counted, under one label whatever its path.
    // (Replication is served on the internal listener only.)
    let invented = strata_proto::replication_v1::replication_client::ReplicationClient::new(
        common::channel(&broker).await,
    )
    .offsets_for_leader_epoch(strata_proto::replication_v1::OffsetsForLeaderEpochRequest::default())
    .await;
    assert_eq!(invented.unwrap_err().code(), tonic::Code::Unimplemented);
    let (_, exposition) = http(http_addr, "GET", "/metrics").await;
    assert_eq!(
        sample(
            &exposition,
            r#"strata_request_errors_total{door="grpc",api="unknown",code="Unimplemented"}"#
        ),
        Some(1.0)
    );
    assert!(!exposition.contains("OffsetsForLeaderEpoch"));

    // Every metric the Grafana dashboard in deploy/ charts is one the broker exposes.
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/grafana/strata-dashboard.json"),
    )
    .unwrap();
    let charted: std::collections::BTreeSet<&str> = dashboard
        .match_indices("strata_")
        .map(|(start, _)| {
            let rest = &dashboard[start..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| name.len() > "strata_".len())
        .collect();
    assert!(charted.len() > 10, "{charted:?}");
    for name in charted {
        let family = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            exposition.contains(&format!("# TYPE {family} ")),
            "the dashboard charts {name}, which /metrics does not have"
        );
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn probes_answer_and_other_requests_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start(directory.path()).await;
    let http_addr = broker.http_addr().unwrap();
    assert_eq!(
        http(http_addr, "GET", "/health").await,
        (200, "ok\n".to_string())
    );
    assert_eq!(
        http(http_addr, "GET", "/ready").await,
        (200, "ready\n".to_string())
    );
    let (status, body) = http(http_addr, "GET", "/metricz").await;
    assert_eq!(status, 404);
    assert!(body.contains("/metrics"), "{body}");
    assert_eq!(http(http_addr, "POST", "/metrics").await.0, 405);
    broker.shutdown().await;
}
