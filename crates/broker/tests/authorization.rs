//! ACLs on the gRPC door of brokers that require authentication: what a user may read, write,
//! join and commit is what the bindings in the metadata allow, deny wins, prefixes cover their
//! topics, super users pass, a client certificate names its user, and the bindings survive a
//! controller failover and a full restart. (The Kafka door's checks are in `kafka_acls.rs`.)

mod common;
mod kafka_client;

use bytes::Bytes;
use common::{STEP, free_port};
use kafka_client::{ADMIN, basic_authorization, secured_config};
use std::time::Duration;
use strata_auth::{AclBinding, Mechanism, Operation, PatternType, Permission, ResourceType};
use strata_broker::{Broker, BrokerConfig, BrokerHandle};
use strata_common::ErrorCode;
use strata_proto::v1 as proto;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::broker_client::BrokerClient;
use strata_proto::v1::group_coordinator_client::GroupCoordinatorClient;
use strata_proto::v1::records_client::RecordsClient;
use strata_record::RecordBatchBuilder;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const READER: (&str, &str) = ("reader", "reader-secret");

/// Sends `authorization: Basic ...` with every call, when it has a user.
#[derive(Clone)]
struct Credentials(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Credentials {
    fn of((user, password): (&str, &str)) -> Credentials {
        Credentials(Some(basic_authorization(user, password).parse().unwrap()))
    }
}

type Authenticated = InterceptedService<Channel, Credentials>;

/// The gRPC clients of one user against one broker.
struct Session {
    channel: Channel,
    credentials: Credentials,
}

impl Session {
    async fn connect(broker: &BrokerHandle, user: (&str, &str)) -> Session {
        Session {
            channel: common::channel(broker).await,
            credentials: Credentials::of(user),
        }
    }

    fn broker(&self) -> BrokerClient<Authenticated> {
        BrokerClient::with_interceptor(self.channel.clone(), self.credentials.clone())
    }

    fn admin(&self) -> AdminClient<Authenticated> {
        AdminClient::with_interceptor(self.channel.clone(), self.credentials.clone())
    }

    fn groups(&self) -> GroupCoordinatorClient<Authenticated> {
        GroupCoordinatorClient::with_interceptor(self.channel.clone(), self.credentials.clone())
    }

    fn records(&self) -> RecordsClient<Authenticated> {
        RecordsClient::with_interceptor(self.channel.clone(), self.credentials.clone())
    }

    /// The names the caller sees when it lists every topic.
    async fn listed_topics(&self) -> Vec<String> {
        let answer = self
            .broker()
            .metadata(proto::MetadataRequest { topics: vec![] })
            .await
            .unwrap()
            .into_inner();
        answer.topics.into_iter().map(|topic| topic.name).collect()
    }

    async fn produce(&self, topic: &str, value: &str) -> proto::PartitionProduceResponse {
        let mut builder = RecordBatchBuilder::new();
        builder.push(1, None, Some(value.as_bytes()), &[]);
        self.broker()
            .produce(proto::ProduceRequest {
                acks: -1,
                timeout_ms: 10_000,
                correlation_id: 0,
                partitions: vec![proto::PartitionRecords {
                    topic: topic.to_string(),
                    partition: 0,
                    records: builder.build().into_bytes(),
                }],
            })
            .await
            .unwrap()
            .into_inner()
            .partitions
            .remove(0)
    }

    async fn fetch(&self, topic: &str) -> proto::FetchPartitionResponse {
        self.broker()
            .fetch(proto::FetchRequest {
                max_wait_ms: 0,
                min_bytes: 0,
                max_bytes: 1 << 20,
                isolation_level: 0,
                partitions: vec![proto::FetchPartition {
                    topic: topic.to_string(),
                    partition: 0,
                    fetch_offset: 0,
                    partition_max_bytes: 1 << 20,
                }],
            })
            .await
            .unwrap()
            .into_inner()
            .partitions
            .remove(0)
    }

    async fn create_topic(&self, topic: &str) -> proto::TopicResult {
        self.admin()
            .create_topics(proto::CreateTopicsRequest {
                topics: vec![proto::CreatableTopic {
                    name: topic.to_string(),
                    num_partitions: 1,
                    replication_factor: 1,
                    configs: Default::default(),
                }],
                timeout_ms: 10_000,
                validate_only: false,
            })
            .await
            .unwrap()
            .into_inner()
            .topics
            .remove(0)
    }

    async fn create_user(&self, (user, password): (&str, &str)) {
        let (salt, salted_password) =
            strata_auth::salt_password(Mechanism::ScramSha512, password, 4096).unwrap();
        let answer = self
            .admin()
            .alter_user_scram_credentials(proto::AlterUserScramCredentialsRequest {
                upsertions: vec![proto::ScramCredentialUpsertion {
                    user: user.to_string(),
                    mechanism: i32::from(Mechanism::ScramSha512.kafka_type()),
                    iterations: 4096,
                    salt: Bytes::from(salt),
                    salted_password: Bytes::from(salted_password),
                }],
                deletions: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.results[0].error_code, 0, "{answer:?}");
    }

    /// Creates `bindings`; the error code of each.
    async fn create_acls(&self, bindings: &[AclBinding]) -> Vec<i32> {
        let creations = bindings.iter().map(proto::AclBinding::from).collect();
        self.admin()
            .create_acls(proto::CreateAclsRequest { creations })
            .await
            .unwrap()
            .into_inner()
            .results
            .into_iter()
            .map(|result| result.error_code)
            .collect()
    }

    async fn all_acls(&self) -> Vec<proto::AclBinding> {
        let answer = self
            .admin()
            .describe_acls(proto::DescribeAclsRequest { filter: None })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.error_code, 0, "{}", answer.error_message);
        answer.bindings
    }

    async fn commit(&self, group: &str, topic: &str, offset: i64) -> i32 {
        self.groups()
            .offset_commit(proto::OffsetCommitRequest {
                group_id: group.to_string(),
                member_id: String::new(),
                member_epoch: -1,
                partitions: vec![proto::OffsetCommitPartition {
                    topic: topic.to_string(),
                    partition: 0,
                    offset,
                    leader_epoch: -1,
                    metadata: String::new(),
                }],
            })
            .await
            .unwrap()
            .into_inner()
            .partitions[0]
            .error_code
    }
}

fn allow(resource_type: ResourceType, name: &str, operation: Operation) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.to_string(),
        pattern_type: PatternType::Literal,
        principal: format!("User:{}", READER.0),
        host: "*".to_string(),
        operation,
        permission: Permission::Allow,
    }
}

fn code(code: i32) -> ErrorCode {
    ErrorCode::from_code(code)
}

/// A secured one-node broker with topics `a` and `b` (one record each) and the user `reader`,
/// who has no ACLs yet; the admin's and the reader's sessions.
async fn start_with_reader(config: BrokerConfig) -> (BrokerHandle, Session, Session) {
    let broker = Broker::start(config).await.expect("broker starts");
    let admin = Session::connect(&broker, ADMIN).await;
    for topic in ["a", "b"] {
        let created = admin.create_topic(topic).await;
        assert_eq!(created.error_code, 0, "{}", created.error_message);
        let produced = admin.produce(topic, "from admin").await;
        assert_eq!(produced.error_code, 0, "{}", produced.error_message);
    }
    admin.create_user(READER).await;
    let reader = Session::connect(&broker, READER).await;
    (broker, admin, reader)
}

#[tokio::test]
async fn a_user_reads_writes_and_sees_only_what_acls_allow() {
    let directory = tempfile::tempdir().unwrap();
    let (broker, admin, reader) = start_with_reader(secured_config(directory.path())).await;

    // No ACL, no access: nothing listed, nothing read, nothing created.
    assert_eq!(reader.listed_topics().await, Vec::<String>::new());
    assert_eq!(
        code(reader.fetch("a").await.error_code),
        ErrorCode::TopicAuthorizationFailed
    );
    assert_eq!(
        code(reader.create_topic("c").await.error_code),
        ErrorCode::TopicAuthorizationFailed
    );

    // Managing ACLs takes Alter on the cluster, which the reader lacks.
    assert_eq!(
        reader
            .create_acls(&[allow(ResourceType::Topic, "a", Operation::Read)])
            .await
            .into_iter()
            .map(code)
            .collect::<Vec<_>>(),
        vec![ErrorCode::ClusterAuthorizationFailed]
    );
    assert_eq!(
        admin
            .create_acls(&[allow(ResourceType::Topic, "a", Operation::Read)])
            .await,
        vec![0]
    );

    assert_eq!(reader.listed_topics().await, vec!["a".to_string()]);
    let described_b = reader
        .broker()
        .metadata(proto::MetadataRequest {
            topics: vec!["b".to_string(), "missing".to_string()],
        })
        .await
        .unwrap()
        .into_inner();
    for topic in &described_b.topics {
        // Refused before existence is checked: a missing topic looks like a forbidden one.
        assert_eq!(
            code(topic.error_code),
            ErrorCode::TopicAuthorizationFailed,
            "{topic:?}"
        );
    }
    let fetched = reader.fetch("a").await;
    assert_eq!(fetched.error_code, 0, "{}", fetched.error_message);
    assert!(!fetched.records.is_empty(), "the reader reads a's record");
    assert_eq!(
        code(reader.fetch("b").await.error_code),
        ErrorCode::TopicAuthorizationFailed
    );

    // Read is not Write: the produce is refused and nothing is appended.
    let refused = reader.produce("a", "from reader").await;
    assert_eq!(
        code(refused.error_code),
        ErrorCode::TopicAuthorizationFailed
    );
    assert!(
        refused.error_message.contains("write topic 'a'"),
        "{}",
        refused.error_message
    );
    let end = admin
        .broker()
        .list_offsets(proto::ListOffsetsRequest {
            partitions: vec![proto::ListOffsetsPartition {
                topic: "a".to_string(),
                partition: 0,
                timestamp: -1,
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .partitions[0]
        .offset;
    assert_eq!(end, 1, "only the admin's record is in a");
    let by_record = reader
        .records()
        .produce(proto::ProduceRecordsRequest {
            topic: "a".to_string(),
            records: vec![proto::ProducedRecord {
                value: Some(Bytes::from_static(b"by record")),
                ..Default::default()
            }],
            acks: -1,
            timeout_ms: 10_000,
        })
        .await
        .unwrap_err();
    assert_eq!(
        by_record.code(),
        tonic::Code::PermissionDenied,
        "{by_record}"
    );

    // Nor may the reader delete or reconfigure what it reads.
    let deleted = reader
        .admin()
        .delete_topics(proto::DeleteTopicsRequest {
            names: vec!["a".to_string()],
            timeout_ms: 10_000,
        })
        .await
        .unwrap()
        .into_inner()
        .topics
        .remove(0);
    assert_eq!(
        code(deleted.error_code),
        ErrorCode::TopicAuthorizationFailed
    );
    let users = reader
        .admin()
        .describe_user_scram_credentials(proto::DescribeUserScramCredentialsRequest {
            users: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(users.code(), tonic::Code::PermissionDenied, "{users}");

    // Deleting the binding takes the access away again.
    let removed = admin
        .admin()
        .delete_acls(proto::DeleteAclsRequest {
            filters: vec![proto::AclFilter {
                resource_type: 1,
                pattern_type: 1,
                principal: Some(format!("User:{}", READER.0)),
                operation: 1,
                permission: 1,
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.results[0].deleted.len(), 1, "{removed:?}");
    assert_eq!(
        code(reader.fetch("a").await.error_code),
        ErrorCode::TopicAuthorizationFailed
    );
    assert!(admin.all_acls().await.is_empty());
    broker.shutdown().await;
}

#[tokio::test]
async fn group_acls_gate_joining_and_committing() {
    let directory = tempfile::tempdir().unwrap();
    let (broker, admin, reader) = start_with_reader(secured_config(directory.path())).await;
    admin
        .create_acls(&[allow(ResourceType::Topic, "a", Operation::Read)])
        .await;
    let find_coordinator = |session: &Session| {
        let mut groups = session.groups();
        async move {
            groups
                .find_coordinator(proto::FindCoordinatorRequest {
                    group_id: "g".to_string(),
                })
                .await
                .unwrap()
                .into_inner()
                .error_code
        }
    };
    // The first FindCoordinator creates the offsets topic, as a client's first one does.
    assert_eq!(find_coordinator(&admin).await, 0);
    assert_eq!(
        code(find_coordinator(&reader).await),
        ErrorCode::GroupAuthorizationFailed,
        "finding a group's coordinator takes Describe on the group"
    );
    let join = || async {
        reader
            .groups()
            .consumer_group_heartbeat(proto::ConsumerGroupHeartbeatRequest {
                group_id: "g".to_string(),
                member_epoch: 0,
                rebalance_timeout_ms: 10_000,
                session_timeout_ms: 10_000,
                has_subscription: true,
                subscribed_topic_names: vec!["a".to_string()],
                ..Default::default()
            })
            .await
    };
    let refused = join().await.unwrap().into_inner();
    assert_eq!(
        code(refused.error_code),
        ErrorCode::GroupAuthorizationFailed
    );
    assert!(refused.error_message.contains("group 'g'"), "{refused:?}");
    assert_eq!(
        code(reader.commit("g", "a", 1).await),
        ErrorCode::GroupAuthorizationFailed
    );

    admin
        .create_acls(&[allow(ResourceType::Group, "g", Operation::Read)])
        .await;
    assert_eq!(find_coordinator(&reader).await, 0);
    // Subscribing to a topic the reader may not describe would hand it that topic's partitions.
    let prying = reader
        .groups()
        .consumer_group_heartbeat(proto::ConsumerGroupHeartbeatRequest {
            group_id: "g".to_string(),
            member_epoch: 0,
            rebalance_timeout_ms: 10_000,
            session_timeout_ms: 10_000,
            has_subscription: true,
            subscribed_topic_names: vec!["a".to_string(), "b".to_string()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code(prying.error_code),
        ErrorCode::TopicAuthorizationFailed,
        "{prying:?}"
    );
    let joined = join().await.unwrap().into_inner();
    assert_eq!(
        joined.error_code, 0,
        "Read on the group lets the reader join: {joined:?}"
    );
    assert!(!joined.member_id.is_empty());
    let left = reader
        .groups()
        .delete_group(proto::DeleteGroupRequest {
            group_id: "g".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code(left.error_code),
        ErrorCode::GroupAuthorizationFailed,
        "Delete is not Read"
    );

    let standalone = "standalone";
    admin
        .create_acls(&[allow(ResourceType::Group, standalone, Operation::Read)])
        .await;
    // Committing takes Read on the topic as well as on the group.
    assert_eq!(reader.commit(standalone, "a", 1).await, 0);
    assert_eq!(
        code(reader.commit(standalone, "b", 1).await),
        ErrorCode::TopicAuthorizationFailed
    );

    // Listing shows the groups the reader may describe; the admin sees them all.
    let admin_commit = admin.commit("hidden", "b", 1).await;
    assert_eq!(admin_commit, 0);
    let listed = |session: &Session| {
        let mut groups = session.groups();
        async move {
            let mut names: Vec<String> = groups
                .list_groups(proto::ListGroupsRequest {})
                .await
                .unwrap()
                .into_inner()
                .groups
                .into_iter()
                .map(|group| group.group_id)
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(listed(&reader).await, vec!["g", standalone]);
    assert_eq!(listed(&admin).await, vec!["g", "hidden", standalone]);
    broker.shutdown().await;
}

#[tokio::test]
async fn prefixed_grants_cover_their_topics_deny_wins_and_super_users_pass() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = secured_config(directory.path());
    config.super_users = vec!["ops".to_string()];
    let (broker, admin, reader) = start_with_reader(config).await;
    for topic in ["logs.app", "logs.secret", "logsish"] {
        assert_eq!(admin.create_topic(topic).await.error_code, 0);
    }
    let mut prefixed = allow(ResourceType::Topic, "logs.", Operation::Write);
    prefixed.pattern_type = PatternType::Prefixed;
    let mut denied = allow(ResourceType::Topic, "logs.secret", Operation::All);
    denied.permission = Permission::Deny;
    assert_eq!(admin.create_acls(&[prefixed, denied]).await, vec![0, 0]);

    assert_eq!(reader.produce("logs.app", "ok").await.error_code, 0);
    assert_eq!(
        code(reader.produce("logs.secret", "no").await.error_code),
        ErrorCode::TopicAuthorizationFailed,
        "the deny wins over the prefixed allow"
    );
    assert_eq!(
        code(reader.produce("logsish", "no").await.error_code),
        ErrorCode::TopicAuthorizationFailed,
        "the prefix is `logs.`, not `logs`"
    );
    // Write implies Describe, so the writable topic is listed; the denied one is not.
    assert_eq!(reader.listed_topics().await, vec!["logs.app".to_string()]);

    // An invalid binding is refused on its own; the valid one beside it is stored.
    let mut invalid = allow(ResourceType::Topic, "x", Operation::Read);
    invalid.principal = "reader".to_string();
    let results = admin
        .create_acls(&[invalid, allow(ResourceType::Topic, "x", Operation::Read)])
        .await;
    assert_eq!(code(results[0]), ErrorCode::InvalidRequest);
    assert_eq!(results[1], 0);

    // A super user needs no binding at all.
    admin.create_user(("ops", "ops-secret")).await;
    let ops = Session::connect(&broker, ("ops", "ops-secret")).await;
    assert_eq!(ops.produce("logs.secret", "ops may").await.error_code, 0);
    assert_eq!(ops.create_topic("made-by-ops").await.error_code, 0);
    assert_eq!(ops.all_acls().await.len(), 3);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_certificate_logs_in_as_the_user_it_names() {
    use strata_tls::ClientTls;
    use strata_tls::dev_certs;
    let directory = tempfile::tempdir().unwrap();
    let certificates =
        dev_certs::write_cluster(&directory.path().join("certs"), 1, &[], READER.0).unwrap();
    let mut config = secured_config(&directory.path().join("node"));
    config.tls = Some(strata_broker::TlsConfig {
        identity: certificates.nodes[0].clone(),
        ca: certificates.ca.clone(),
        client_auth: strata_tls::ClientAuth::Optional,
        client_ca: Some(certificates.client_ca.clone()),
    });
    let broker = Broker::start(config).await.expect("broker starts with TLS");
    let endpoint = || {
        tonic::transport::Endpoint::from_shared(format!("https://{}", broker.local_addr())).unwrap()
    };
    let as_admin = ClientTls::new(&certificates.ca, None).unwrap();
    let admin_session = Session {
        channel: as_admin.channel(endpoint()).await.unwrap(),
        credentials: Credentials::of(ADMIN),
    };
    assert_eq!(admin_session.create_topic("a").await.error_code, 0);
    assert_eq!(
        admin_session
            .create_acls(&[allow(ResourceType::Topic, "a", Operation::Read)])
            .await,
        vec![0]
    );

    let with_certificate = ClientTls::new(&certificates.ca, Some(&certificates.client)).unwrap();
    let reader = Session {
        channel: with_certificate.channel(endpoint()).await.unwrap(),
        credentials: Credentials(None),
    };
    // No password: the certificate says who is calling, and the ACLs decide as for a password.
    assert_eq!(reader.listed_topics().await, vec!["a".to_string()]);
    assert_eq!(reader.fetch("a").await.error_code, 0);
    assert_eq!(
        code(reader.produce("a", "no").await.error_code),
        ErrorCode::TopicAuthorizationFailed
    );
    // Without a certificate or a password, nobody is calling.
    let anonymous = Session {
        channel: as_admin.channel(endpoint()).await.unwrap(),
        credentials: Credentials(None),
    };
    let refused = anonymous
        .broker()
        .metadata(proto::MetadataRequest { topics: vec![] })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    broker.shutdown().await;
}

/// Every node of a secured three-node cluster refuses the reader's write and allows its read,
/// polled until the node has applied the bindings.
async fn enforced_everywhere(brokers: &[BrokerHandle]) {
    for broker in brokers {
        let reader = Session::connect(broker, READER).await;
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let listed = reader.listed_topics().await;
            let refused = reader.produce("a", "no").await.error_code;
            if listed == vec!["a".to_string()]
                && code(refused) == ErrorCode::TopicAuthorizationFailed
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the ACLs are not enforced on a node: listed {listed:?}, produce {refused}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_and_users_survive_a_controller_failover_and_a_full_restart() {
    let directory = tempfile::tempdir().unwrap();
    let voters: Vec<(i32, String)> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let start = |voters: Vec<(i32, String)>, path: std::path::PathBuf| async move {
        let starts = (1..=3).map(|id| {
            let mut config = secured_config(&path.join(format!("node-{id}")));
            config.node_id = id;
            config.voters = voters.clone();
            Broker::start(config)
        });
        futures::future::join_all(starts)
            .await
            .into_iter()
            .map(|started| started.expect("broker starts"))
            .collect::<Vec<_>>()
    };
    let mut brokers = start(voters.clone(), directory.path().to_path_buf()).await;
    let admin = Session::connect(&brokers[0], ADMIN).await;
    let created = admin
        .admin()
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![proto::CreatableTopic {
                name: "a".to_string(),
                num_partitions: 1,
                replication_factor: 3,
                configs: Default::default(),
            }],
            timeout_ms: 10_000,
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    admin.create_user(READER).await;
    assert_eq!(
        admin
            .create_acls(&[allow(ResourceType::Topic, "a", Operation::Read)])
            .await,
        vec![0]
    );
    enforced_everywhere(&brokers).await;

    // The controller leader goes away; the other two elect another and keep the bindings.
    let controller = admin
        .broker()
        .metadata(proto::MetadataRequest { topics: vec![] })
        .await
        .unwrap()
        .into_inner()
        .controller_id;
    let index = brokers
        .iter()
        .position(|broker| broker.replica_manager().node_id() == controller)
        .expect("a node leads the controller quorum");
    brokers.remove(index).shutdown().await;
    enforced_everywhere(&brokers).await;
    let survivor = Session::connect(&brokers[0], ADMIN).await;
    let deadline = tokio::time::Instant::now() + STEP;
    while survivor
        .create_acls(&[allow(ResourceType::Group, "g", Operation::Read)])
        .await
        != vec![0]
    {
        // Retried until the surviving voters have elected a new controller leader.
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new controller leader took an ACL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every node stops, and all come back from their data directories.
    for broker in brokers {
        broker.shutdown().await;
    }
    let brokers = start(voters, directory.path().to_path_buf()).await;
    enforced_everywhere(&brokers).await;
    let admin = Session::connect(&brokers[0], ADMIN).await;
    assert_eq!(admin.all_acls().await.len(), 2, "both bindings are back");
    for broker in brokers {
        broker.shutdown().await;
    }
}
