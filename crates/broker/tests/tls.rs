//! A three-node cluster with TLS on every listener: nodes replicate, elect and forward to each
//! other over mutual TLS, clients are served over TLS on the gRPC and Kafka doors, and whoever
//! does not speak TLS, or has no node certificate where one is required, is refused. The HTTP
//! admin listener speaks HTTPS.

mod common;
mod kafka_client;

use std::path::Path;
use std::time::Duration;

use common::STEP;
use kafka_client::KafkaConnection;
use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
use strata_broker::{Broker, BrokerConfig, BrokerHandle, TlsConfig};
use strata_proto::replication_v1::replication_client::ReplicationClient;
use strata_proto::v1 as proto;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::broker_client::BrokerClient;
use strata_proto::v1::records_client::RecordsClient;
use strata_tls::dev_certs::{self, ClusterFiles, DevCa};
use strata_tls::{ClientAuth, ClientTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};

async fn start_tls_cluster(directory: &Path, certificates: &ClusterFiles) -> Vec<BrokerHandle> {
    common::start_cluster_with_tls(directory, |id| {
        Some(TlsConfig {
            identity: certificates.nodes[id as usize - 1].clone(),
            ca: certificates.ca.clone(),
            client_auth: ClientAuth::None,
            client_ca: None,
        })
    })
    .await
}

fn endpoint(address: impl std::fmt::Display) -> Endpoint {
    Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
}

/// A client that trusts the cluster's CA and presents no certificate.
fn anonymous_client(certificates: &ClusterFiles) -> ClientTls {
    ClientTls::new(&certificates.ca, None).unwrap()
}

async fn tls_channel(tls: &ClientTls, address: impl std::fmt::Display) -> Channel {
    tls.channel(endpoint(address))
        .await
        .expect("a client trusting the CA connects")
}

#[tokio::test]
async fn a_tls_cluster_replicates_forwards_and_serves_both_doors() {
    let directory = tempfile::tempdir().unwrap();
    let certificates = dev_certs::write_cluster(directory.path(), 3, &[], "alice").unwrap();
    let brokers = start_tls_cluster(directory.path(), &certificates).await;
    let client = ClientTls::new(&certificates.ca, None).unwrap();
    let channel = tls_channel(&client, brokers[0].local_addr()).await;

    let created = AdminClient::new(channel.clone())
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![proto::CreatableTopic {
                name: "secured".to_string(),
                num_partitions: 1,
                replication_factor: 3,
                configs: [("min.insync.replicas".to_string(), "3".to_string())].into(),
            }],
            timeout_ms: 10_000,
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);

    // A full ISR means every follower fetched from the leader over the internal listener's
    // mutual TLS, and the ISR changes went through the controller quorum the same way.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let metadata = BrokerClient::new(channel.clone())
            .metadata(proto::MetadataRequest {
                topics: vec!["secured".to_string()],
            })
            .await
            .unwrap()
            .into_inner();
        let full_isr = metadata.topics.iter().any(|topic| {
            topic
                .partitions
                .iter()
                .all(|partition| partition.leader_id > 0 && partition.isr.len() == 3)
        });
        if full_isr {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ISR never filled: {metadata:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Through every node: the ones that do not lead forward to the leader over mutual TLS; with
    // min.insync.replicas 3 an acknowledgement means all three replicas have the record.
    for broker in &brokers {
        let produced = RecordsClient::new(tls_channel(&client, broker.local_addr()).await)
            .produce(proto::ProduceRecordsRequest {
                topic: "secured".to_string(),
                records: vec![proto::ProducedRecord {
                    value: Some(format!("via {}", broker.local_addr()).into_bytes().into()),
                    partition: Some(0),
                    ..Default::default()
                }],
                acks: -1,
                timeout_ms: 10_000,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(produced.results[0].error_code, 0, "{produced:?}");
    }
    let fetched = RecordsClient::new(channel.clone())
        .fetch(proto::FetchRecordsRequest {
            topic: "secured".to_string(),
            partition: 0,
            offset: 0,
            max_records: 10,
            max_wait_ms: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.records.len(), 3, "{fetched:?}");

    // The Kafka door speaks TLS too, and advertises the same topic.
    let kafka_address = brokers[1].kafka_addr().unwrap();
    let stream = client
        .connect("127.0.0.1", kafka_address.port())
        .await
        .expect("TLS to the Kafka listener");
    let mut kafka = KafkaConnection::over(stream);
    let versions = kafka.send(ApiVersionsRequest::default(), 3).await;
    assert_eq!(versions.error_code, 0);
    let metadata = kafka
        .send(MetadataRequest::default().with_topics(None), 12)
        .await;
    assert!(
        metadata
            .topics
            .iter()
            .any(|topic| topic.name.as_ref().map(|name| name.as_str()) == Some("secured")),
        "{metadata:?}"
    );
}

#[tokio::test]
async fn clients_without_tls_or_without_a_node_certificate_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let certificates = dev_certs::write_cluster(directory.path(), 3, &[], "alice").unwrap();
    let brokers = start_tls_cluster(directory.path(), &certificates).await;
    let broker = &brokers[0];

    // Plaintext gRPC meets a TLS listener: the call fails instead of being served.
    let plaintext = endpoint(broker.local_addr()).connect_lazy();
    let refused = BrokerClient::new(plaintext)
        .metadata(proto::MetadataRequest { topics: vec![] })
        .await;
    assert!(refused.is_err(), "a plaintext call was served: {refused:?}");

    // Plaintext Kafka: the broker closes the connection without an answer.
    let mut kafka = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
    let (frame, _) = kafka.frame(&ApiVersionsRequest::default(), 0);
    kafka.write_raw(&frame).await;
    assert!(kafka.is_closed_by_broker().await);

    // The HTTP admin listener speaks HTTPS with the node's certificate: a client trusting the
    // CA gets its answer, a plaintext request none.
    let http = broker.http_addr().unwrap();
    let get_health = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut secured = anonymous_client(&certificates)
        .connect("localhost", http.port())
        .await
        .expect("an HTTPS client trusting the CA connects");
    secured.write_all(get_health).await.unwrap();
    let mut answer = Vec::new();
    let _ = secured.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "{answer}"
    );
    let mut plaintext = tokio::net::TcpStream::connect(http).await.unwrap();
    plaintext.write_all(get_health).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(STEP, plaintext.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "plain HTTP was served"
    );

    // The internal listener serves nodes only: a client trusting the CA but without a
    // certificate, or with one from another CA, gets no answer; a node's certificate does.
    let offsets_for_epoch = |channel: Channel| async move {
        ReplicationClient::new(channel)
            .offsets_for_leader_epoch(
                strata_proto::replication_v1::OffsetsForLeaderEpochRequest::default(),
            )
            .await
    };
    let anonymous = ClientTls::new(&certificates.ca, None).unwrap();
    let foreign = {
        let ca = DevCa::new("another CA").unwrap();
        let identity = dev_certs::write_identity(
            directory.path(),
            "mallory",
            &ca.issue_client("mallory").unwrap(),
        )
        .unwrap();
        ClientTls::new(&certificates.ca, Some(&identity)).unwrap()
    };
    for refused in [anonymous, foreign] {
        let served = match refused.channel(endpoint(broker.internal_addr())).await {
            Ok(channel) => offsets_for_epoch(channel).await.is_ok(),
            Err(_) => false,
        };
        assert!(
            !served,
            "the internal listener served a client that is not a node"
        );
    }
    let node = ClientTls::new(&certificates.ca, Some(&certificates.nodes[1])).unwrap();
    let answer = offsets_for_epoch(tls_channel(&node, broker.internal_addr()).await).await;
    assert!(answer.is_ok(), "a node was refused: {answer:?}");
}

#[tokio::test]
async fn clients_certificates_from_their_own_ca_open_the_client_doors_only() {
    let directory = tempfile::tempdir().unwrap();
    let nodes = dev_certs::write_cluster(directory.path(), 1, &[], "unused").unwrap();
    let clients_ca = DevCa::new("clients' CA").unwrap();
    let clients_ca_path = directory.path().join("clients-ca.pem");
    std::fs::write(&clients_ca_path, clients_ca.certificate_pem()).unwrap();
    let alice = dev_certs::write_identity(
        directory.path(),
        "alice",
        &clients_ca.issue_client("alice").unwrap(),
    )
    .unwrap();
    let broker = Broker::start(BrokerConfig {
        data_dir: directory.path().join("node"),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(TlsConfig {
            identity: nodes.nodes[0].clone(),
            ca: nodes.ca.clone(),
            client_auth: ClientAuth::Required,
            client_ca: Some(clients_ca_path),
        }),
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts with TLS");

    let served = |tls: ClientTls, address: std::net::SocketAddr| async move {
        let Ok(channel) = tls.channel(endpoint(address)).await else {
            return false;
        };
        BrokerClient::new(channel.clone())
            .metadata(proto::MetadataRequest { topics: vec![] })
            .await
            .is_ok()
            || ReplicationClient::new(channel)
                .offsets_for_leader_epoch(
                    strata_proto::replication_v1::OffsetsForLeaderEpochRequest::default(),
                )
                .await
                .is_ok()
    };
    let as_alice = ClientTls::new(&nodes.ca, Some(&alice)).unwrap();
    let anonymous = ClientTls::new(&nodes.ca, None).unwrap();
    let as_node = ClientTls::new(&nodes.ca, Some(&nodes.nodes[0])).unwrap();

    assert!(served(as_alice.clone(), broker.local_addr()).await);
    assert!(!served(anonymous, broker.local_addr()).await);
    // A node's certificate is not a client's: the clients' CA did not sign it.
    assert!(!served(as_node.clone(), broker.local_addr()).await);
    // And a client's certificate is not a node's.
    assert!(!served(as_alice, broker.internal_addr()).await);
    assert!(served(as_node, broker.internal_addr()).await);
}
