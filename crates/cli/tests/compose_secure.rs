//! `deploy/docker-compose.secure.yml`: the three-node compose cluster with TLS everywhere and
//! authenticated users, its certificates made by the cluster itself on first start. From the
//! host, with the CA copied out of the containers as the compose file says, as its bootstrap
//! user: a replicated topic takes acks=all writes over TLS (so the nodes replicate and run Raft
//! over mutual TLS), they are read back by a consumer and a share group, kcat lists the cluster
//! over SASL_SSL, a client certificate logs in as its user and may only read what an ACL lets
//! it, a plaintext client and a client without credentials are refused, and
//! the web console signs its user in and shows the cluster it reaches over TLS.
//!
//! Without Docker the test says `SKIPPED` on stderr and returns; the project is torn down
//! (`down -v`) even when the test fails.

mod common;

use common::compose::{docker, repository, run, up_healthy};
use common::eventually;
use std::time::Duration;
use strata_client::{
    Acks, AclBinding, Admin, AdminConfig, AutoOffsetReset, ClientTls, Consumer, ConsumerConfig,
    Credentials, IdentityFiles, NewTopic, Producer, ProducerConfig, ProducerRecord, ShareConsumer,
    ShareConsumerConfig, TopicPartition, acl,
};

const EVERY_NODE: &str = "127.0.0.1:7070,127.0.0.1:7071,127.0.0.1:7072";
const RECORDS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secured_compose_cluster_serves_and_replicates_over_tls_only() {
    let Some((project, containers)) =
        up_healthy("strata-secure-test", "docker-compose.secure.yml").await
    else {
        return;
    };

    let directory = tempfile::tempdir().unwrap();
    let ca = directory.path().join("ca.pem");
    docker(&[
        "cp",
        &format!("{}:/certs/ca.pem", containers[0]),
        ca.to_str().unwrap(),
    ]);
    let tls = ClientTls::new(&ca, None).unwrap();
    let admin_user = Credentials::new("admin", "admin-secret");

    let admin = eventually(
        "an admin connection over TLS",
        Duration::from_secs(30),
        async || {
            Admin::connect(
                AdminConfig::builder()
                    .bootstrap(EVERY_NODE)
                    .tls(tls.clone())
                    .credentials(admin_user.clone())
                    .build()
                    .unwrap(),
            )
            .await
            .ok()
        },
    )
    .await;
    admin
        .create_topic(NewTopic::new("sealed", 3, 3).config("min.insync.replicas", "3"))
        .await
        .unwrap();
    eventually(
        "every replica in sync",
        Duration::from_secs(60),
        async || {
            let topic = admin.describe_topic("sealed").await.ok()?;
            topic
                .partitions
                .iter()
                .all(|partition| partition.isr.len() == 3)
                .then_some(())
        },
    )
    .await;

    // The web console is served over HTTPS with the node's certificate; it asks for a user,
    // then reaches the cluster over TLS as that user.
    let console = "localhost:8081";
    let plain = common::http("127.0.0.1:8081", "GET", "/health", &[], "");
    assert!(
        plain.is_none_or(|answer| answer.status != 200),
        "the admin listener answered plain HTTP"
    );
    let anonymous = common::https(&tls, console, "GET", "/topics/sealed", &[], "")
        .await
        .expect("the console answers over HTTPS");
    assert_eq!(anonymous.status, 303, "{}", anonymous.body);
    let refused = common::https(
        &tls,
        console,
        "POST",
        "/login",
        &[],
        "user=admin&password=guess",
    )
    .await
    .unwrap();
    assert_eq!(refused.status, 401, "{}", refused.body);
    let signed_in = common::https(
        &tls,
        console,
        "POST",
        "/login",
        &[],
        "user=admin&password=admin-secret&next=%2Ftopics%2Fsealed",
    )
    .await
    .unwrap();
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let cookie = signed_in
        .header("set-cookie")
        .and_then(|cookie| cookie.split(';').next())
        .expect("a session cookie")
        .to_string();
    let page = common::https(
        &tls,
        console,
        "GET",
        "/topics/sealed",
        &[("Cookie", &cookie)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.body.matches("<tr class=\"partition\">").count(),
        3,
        "{}",
        page.body
    );

    // With min.insync.replicas 3, an acknowledgement means all three nodes replicated the
    // record from its leader over the internal listener's mutual TLS.
    let producer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(EVERY_NODE)
            .tls(tls.clone())
            .credentials(admin_user.clone())
            .acks(Acks::All)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let mut deliveries = Vec::new();
    for index in 0..RECORDS {
        deliveries.push(
            producer
                .send(
                    ProducerRecord::new("sealed", format!("record-{index}"))
                        .key(format!("{index}")),
                )
                .await
                .unwrap(),
        );
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    producer.close().await.unwrap();

    let mut consumer = Consumer::connect(
        ConsumerConfig::builder()
            .bootstrap(EVERY_NODE)
            .tls(tls.clone())
            .credentials(admin_user.clone())
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    consumer
        .assign(
            (0..3)
                .map(|partition| TopicPartition::new("sealed", partition))
                .collect(),
        )
        .unwrap();
    let mut read = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while read.len() < RECORDS && tokio::time::Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            read.insert(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(
        read.len(),
        RECORDS,
        "every acknowledged record is read back over TLS"
    );

    // A share group's coordinator reads the partitions other nodes lead through their internal
    // listeners, over mutual TLS, under the names the nodes know each other by.
    let mut worker = ShareConsumer::connect(
        ShareConsumerConfig::new("sealed-workers")
            .bootstrap(EVERY_NODE)
            .tls(tls.clone())
            .credentials(admin_user.clone()),
    )
    .await
    .unwrap();
    worker.subscribe(["sealed"]).unwrap();
    let mut shared = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while shared.len() < RECORDS && tokio::time::Instant::now() < deadline {
        let records = worker.poll(Duration::from_millis(500)).await.unwrap();
        for record in &records {
            worker.ack(record);
        }
        for record in records {
            shared.insert(record.record.value.clone().unwrap());
        }
    }
    assert_eq!(
        shared.len(),
        RECORDS,
        "the share group hands out every record"
    );

    // The client certificate the cluster made (CN `client`, signed by the clients' CA) logs in
    // without a password, and may do what the ACLs give `User:client`: read `sealed`, not write.
    for file in ["client.pem", "client-key.pem"] {
        docker(&[
            "cp",
            &format!("{}:/certs/{file}", containers[0]),
            directory.path().join(file).to_str().unwrap(),
        ]);
    }
    admin
        .create_acls(vec![AclBinding {
            resource_type: acl::ResourceType::Topic,
            resource_name: "sealed".to_string(),
            pattern_type: acl::PatternType::Literal,
            principal: "User:client".to_string(),
            host: acl::WILDCARD.to_string(),
            operation: acl::Operation::Read,
            permission: acl::Permission::Allow,
        }])
        .await
        .unwrap();
    let certified = ClientTls::new(
        &ca,
        Some(&IdentityFiles {
            certificate: directory.path().join("client.pem"),
            key: directory.path().join("client-key.pem"),
        }),
    )
    .unwrap();
    let mut reader = Consumer::connect(
        ConsumerConfig::builder()
            .bootstrap(EVERY_NODE)
            .tls(certified.clone())
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    reader
        .assign(vec![TopicPartition::new("sealed", 0)])
        .unwrap();
    let read_by_certificate = eventually(
        "the certified client reading sealed",
        Duration::from_secs(60),
        async || {
            let records = reader.poll(Duration::from_millis(500)).await.ok()?;
            (!records.is_empty()).then_some(records.len())
        },
    )
    .await;
    assert!(read_by_certificate > 0);
    let writer = Producer::connect(
        ProducerConfig::builder()
            .bootstrap(EVERY_NODE)
            .tls(certified)
            .acks(Acks::Leader)
            .enable_idempotence(false)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let refused = match writer
        .send(ProducerRecord::new("sealed", "not allowed"))
        .await
    {
        Ok(delivery) => delivery.await.unwrap_err(),
        Err(error) => error,
    };
    assert!(
        refused.to_string().contains("TOPIC_AUTHORIZATION_FAILED"),
        "{refused}"
    );

    // Plaintext is refused: the client cannot get the cluster's metadata.
    let plaintext = Admin::connect(
        AdminConfig::builder()
            .bootstrap("127.0.0.1:7070")
            .connect_timeout_ms(5_000)
            .request_timeout_ms(5_000)
            .retries(0)
            .build()
            .unwrap(),
    )
    .await;
    assert!(plaintext.is_err(), "a plaintext client was served");
    let anonymous = Admin::connect(
        AdminConfig::builder()
            .bootstrap("127.0.0.1:7070")
            .tls(tls.clone())
            .retries(0)
            .build()
            .unwrap(),
    )
    .await;
    assert!(
        anonymous.is_err(),
        "a client without credentials was served"
    );

    // Kafka's door is TLS too: kcat lists the three brokers, when kcat can be installed.
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kafka-clients-venv");
    let installed = run(
        repository()
            .join("tests/kafka-clients/install.sh")
            .to_str()
            .unwrap(),
        &[venv.to_str().unwrap()],
        Duration::from_secs(600),
    )
    .unwrap();
    match installed
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("kcat="))
    {
        None => eprintln!("SKIPPED (kcat part only): kcat could not be installed"),
        Some(kcat) => {
            let listed = run(
                kcat,
                &[
                    "-b",
                    "127.0.0.1:9092",
                    "-L",
                    "-m",
                    "30",
                    "-X",
                    "security.protocol=sasl_ssl",
                    "-X",
                    &format!("ssl.ca.location={}", ca.display()),
                    "-X",
                    "sasl.mechanisms=SCRAM-SHA-512",
                    "-X",
                    "sasl.username=admin",
                    "-X",
                    "sasl.password=admin-secret",
                ],
                Duration::from_secs(60),
            )
            .unwrap();
            assert!(listed.success, "kcat -L over TLS failed: {}", listed.stderr);
            assert!(
                listed.stdout.contains("3 brokers") && listed.stdout.contains("sealed"),
                "{}",
                listed.stdout
            );
        }
    }
    drop(project);
}
