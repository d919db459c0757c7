//! ACLs through the Kafka listener: CreateAcls, DescribeAcls and DeleteAcls as Kafka's admin
//! tools send them, refused to a user without Alter (or Describe) on the cluster, and what the
//! bindings they make allow and refuse on the same door: metadata listings, produce, fetch,
//! groups, prefixed patterns, a deny over an allow, and topic ids that do not give away the
//! names of topics a user may not describe. The broker requires authentication (ACLs apply only
//! then); its bootstrap user is a super user and manages everything.

mod kafka_client;

use kafka_client::{
    ADMIN, KafkaConnection, batch, connect_as, create_topics, fetch_request, join_group_request,
    list_offset, offset_commit_request, produce_request, served, start_secured, topic_id,
    upsert_user_request,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_acls_response::DescribeAclsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateAclsRequest, DeleteAclsRequest, DeleteTopicsRequest,
    DescribeAclsRequest, FindCoordinatorRequest, MetadataRequest,
};
use kafka_protocol::protocol::StrBytes;
use std::net::SocketAddr;
use strata_auth::Mechanism;
use strata_broker::BrokerHandle;
use uuid::Uuid;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;
const MEMBER_ID_REQUIRED: i16 = 79;

/// Kafka's ACL codes, as its clients send them (`ANY` and `MATCH` only in filters).
const ANY: i8 = 1;
const MATCH: i8 = 2;
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const ALTER: i8 = 7;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// A binding for `principal` from any host.
fn acl(
    resource_type: i8,
    name: &str,
    pattern_type: i8,
    principal: &str,
    operation: i8,
    permission: i8,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(name))
        .with_resource_pattern_type(pattern_type)
        .with_principal(text(principal))
        .with_host(text("*"))
        .with_operation(operation)
        .with_permission_type(permission)
}

/// A DescribeAcls filter on resources of `resource_type` named (or matched by) `name`, of
/// every principal, host, operation and permission.
fn describe_filter(resource_type: i8, name: Option<&str>, pattern_type: i8) -> DescribeAclsRequest {
    // Null, not the codec's default of an empty string (which would match only an empty
    // principal or host, as in Kafka), means any.
    DescribeAclsRequest::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(name.map(text))
        .with_pattern_type_filter(pattern_type)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

fn every_acl() -> DescribeAclsRequest {
    describe_filter(ANY, None, ANY)
}

/// The DeleteAcls filter that `describe` is as a DescribeAcls filter.
fn delete_filter(describe: DescribeAclsRequest) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(describe.resource_type_filter)
        .with_resource_name_filter(describe.resource_name_filter)
        .with_pattern_type_filter(describe.pattern_type_filter)
        .with_principal_filter(describe.principal_filter)
        .with_host_filter(describe.host_filter)
        .with_operation(describe.operation)
        .with_permission_type(describe.permission_type)
}

/// Each creation's error code, in order.
async fn create_acls(connection: &mut KafkaConnection, creations: Vec<AclCreation>) -> Vec<i16> {
    let answer = connection
        .send(CreateAclsRequest::default().with_creations(creations), 3)
        .await;
    answer
        .results
        .iter()
        .map(|result| result.error_code)
        .collect()
}

/// What DescribeAcls answers `filter` with, as (resource type, name, pattern type, [(principal,
/// operation, permission)]); panics on an error.
async fn described(
    connection: &mut KafkaConnection,
    filter: DescribeAclsRequest,
    version: i16,
) -> Vec<(i8, String, i8, Vec<(String, i8, i8)>)> {
    let answer = connection.send(filter, version).await;
    assert_eq!(answer.error_code, 0, "v{version}: {answer:?}");
    let shape = |resource: &DescribeAclsResource| {
        let acls = resource
            .acls
            .iter()
            .map(|acl| {
                assert_eq!(acl.host.as_str(), "*");
                (
                    acl.principal.to_string(),
                    acl.operation,
                    acl.permission_type,
                )
            })
            .collect();
        (
            resource.resource_type,
            resource.resource_name.to_string(),
            resource.pattern_type,
            acls,
        )
    };
    let mut resources: Vec<_> = answer.resources.iter().map(shape).collect();
    resources.sort();
    resources
}

/// Makes `user` (password `<user>-secret`) as the admin, and logs in as them.
async fn new_user(admin: &mut KafkaConnection, kafka: SocketAddr, user: &str) -> KafkaConnection {
    let password = format!("{user}-secret");
    let made = admin
        .send(
            upsert_user_request(user, Mechanism::ScramSha512, &password),
            0,
        )
        .await;
    assert_eq!(made.results[0].error_code, 0, "{made:?}");
    connect_as(kafka, user, &password).await
}

/// The topics a Metadata request for every topic lists.
async fn listed_topics(connection: &mut KafkaConnection) -> Vec<String> {
    let answer = connection
        .send(MetadataRequest::default().with_topics(None), 12)
        .await;
    let mut names: Vec<String> = answer
        .topics
        .iter()
        .map(|topic| topic.name.as_ref().expect("a name").to_string())
        .collect();
    names.sort();
    names
}

/// Metadata for the topic whose id is `id`.
fn metadata_by_id(id: Uuid) -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default()
            .with_name(None)
            .with_topic_id(id),
    ]))
}

/// DeleteTopics (version 6 and later) of the topic whose id is `id`.
fn delete_by_id(id: Uuid) -> DeleteTopicsRequest {
    DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(id),
        ])
}

/// Fetches partition 0 of `topic` from the start: the error code and the values read.
async fn fetch(connection: &mut KafkaConnection, topic: &str) -> (i16, Vec<String>) {
    let answer = connection.send(fetch_request(topic, 0), 12).await;
    let partition = &answer.responses[0].partitions[0];
    let mut values = Vec::new();
    for batch in strata_record::BatchIter::new(partition.records.clone().unwrap_or_default()) {
        for record in batch.expect("whole batches").records() {
            let value = record.expect("whole records").value.unwrap_or_default();
            values.push(String::from_utf8_lossy(&value).into_owned());
        }
    }
    (partition.error_code, values)
}

/// What [`secured`] put in each topic.
fn from_admin() -> (i16, Vec<String>) {
    (0, vec!["from admin".to_string()])
}

async fn produce(connection: &mut KafkaConnection, topic: &str, value: &str) -> i16 {
    let answer = connection
        .send(produce_request(topic, -1, batch(&[value])), 9)
        .await;
    answer.responses[0].partition_responses[0].error_code
}

/// A broker that requires authentication, `topics` made with one record each, and a
/// connection logged in as its admin.
async fn secured(
    directory: &std::path::Path,
    topics: &[&str],
) -> (BrokerHandle, SocketAddr, KafkaConnection) {
    let broker = start_secured(directory).await;
    let kafka = broker.kafka_addr().expect("a Kafka listener");
    let mut admin = connect_as(kafka, ADMIN.0, ADMIN.1).await;
    create_topics(&mut admin, topics).await;
    for topic in topics {
        assert_eq!(produce(&mut admin, topic, "from admin").await, 0);
    }
    (broker, kafka, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_made_over_kafka_decide_what_a_user_sees_reads_and_writes() {
    let directory = tempfile::tempdir().unwrap();
    let (_broker, kafka, mut admin) = secured(directory.path(), &["a", "b"]).await;
    let versions = admin.send(ApiVersionsRequest::default(), 3).await;
    for api_key in [ApiKey::CreateAcls, ApiKey::DescribeAcls, ApiKey::DeleteAcls] {
        assert_eq!(served(&versions, api_key), 1..=3, "{api_key:?}");
    }
    let mut reader = new_user(&mut admin, kafka, "reader").await;
    let read_a = || acl(TOPIC, "a", LITERAL, "User:reader", READ, ALLOW);

    // No ACL, no access: nothing listed, nothing read.
    assert_eq!(listed_topics(&mut reader).await, Vec::<String>::new());
    assert_eq!(fetch(&mut reader, "a").await.0, TOPIC_AUTHORIZATION_FAILED);
    // Named by id, a topic the reader may not describe is refused without its name (ids are
    // easily guessed; Kafka answers such ids without a name too), and is not deleted.
    let (a_id, b_id) = (
        topic_id(&mut admin, "a").await,
        topic_id(&mut admin, "b").await,
    );
    let by_id = reader.send(metadata_by_id(b_id), 12).await;
    let refused = &by_id.topics[0];
    assert_eq!(
        (refused.error_code, refused.name.as_ref(), refused.topic_id),
        (TOPIC_AUTHORIZATION_FAILED, None, b_id)
    );
    let deleted = reader.send(delete_by_id(b_id), 6).await;
    let refused = &deleted.responses[0];
    assert_eq!(
        (refused.error_code, refused.name.as_ref()),
        (TOPIC_AUTHORIZATION_FAILED, None)
    );
    assert_eq!(listed_topics(&mut admin).await, ["a", "b"]);

    // Managing ACLs is Alter on the cluster, reading them Describe: the reader has neither.
    let refused = reader
        .send(
            CreateAclsRequest::default().with_creations(vec![read_a()]),
            3,
        )
        .await;
    assert_eq!(refused.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(refused.results[0].error_message.is_some());
    let refused = reader.send(every_acl(), 3).await;
    assert_eq!(refused.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(refused.resources.is_empty());
    let refused = reader
        .send(
            DeleteAclsRequest::default().with_filters(vec![delete_filter(every_acl())]),
            3,
        )
        .await;
    assert_eq!(
        refused.filter_results[0].error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    assert_eq!(described(&mut admin, every_acl(), 3).await, vec![]);

    // The admin, a super user, may. A binding Kafka would refuse is refused alone, with why.
    let created = admin
        .send(
            CreateAclsRequest::default().with_creations(vec![
                read_a(),
                acl(TOPIC, "b", LITERAL, "reader", READ, ALLOW),
            ]),
            1,
        )
        .await;
    assert_eq!(created.results[0].error_code, 0, "{created:?}");
    assert_eq!(created.results[0].error_message, None);
    assert_eq!(created.results[1].error_code, INVALID_REQUEST);
    let why = created.results[1].error_message.as_ref().unwrap();
    assert!(why.contains("principal"), "{why}");

    // Described back in every version, through a filter that matches what covers topic `a`.
    let covering_a = || {
        describe_filter(TOPIC, Some("a"), MATCH).with_principal_filter(Some(text("User:reader")))
    };
    let expected = vec![(
        TOPIC,
        "a".to_string(),
        LITERAL,
        vec![("User:reader".to_string(), READ, ALLOW)],
    )];
    for version in 1..=3 {
        assert_eq!(
            described(&mut admin, covering_a(), version).await,
            expected,
            "v{version}"
        );
    }
    let someone_else = covering_a().with_principal_filter(Some(text("User:other")));
    assert_eq!(described(&mut admin, someone_else, 2).await, vec![]);

    // Read on `a`: listed (by id too) and read, and Read does not mean Write or Delete.
    assert_eq!(listed_topics(&mut reader).await, ["a"]);
    let by_id = reader.send(metadata_by_id(a_id), 12).await;
    assert_eq!(by_id.topics[0].error_code, 0);
    assert_eq!(
        by_id.topics[0].name.as_ref().map(|name| name.as_str()),
        Some("a")
    );
    let deleted = reader.send(delete_by_id(a_id), 6).await;
    let refused = &deleted.responses[0];
    assert_eq!(
        (
            refused.error_code,
            refused.name.as_ref().map(|name| name.as_str())
        ),
        (TOPIC_AUTHORIZATION_FAILED, Some("a"))
    );
    assert_eq!(fetch(&mut reader, "a").await, from_admin());
    assert_eq!(fetch(&mut reader, "b").await.0, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(
        produce(&mut reader, "a", "from reader").await,
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(
        list_offset(&mut admin, "a", -1).await,
        1,
        "nothing appended"
    );

    // A user with Alter on the cluster manages ACLs too, as in Kafka: an operator deletes the
    // reader's binding, and the answer names what was deleted.
    let operator_alters_cluster = acl(
        CLUSTER,
        "kafka-cluster",
        LITERAL,
        "User:operator",
        ALTER,
        ALLOW,
    );
    assert_eq!(
        create_acls(&mut admin, vec![operator_alters_cluster]).await,
        [0]
    );
    let mut operator = new_user(&mut admin, kafka, "operator").await;
    let deleted = operator
        .send(
            DeleteAclsRequest::default().with_filters(vec![delete_filter(
                describe_filter(TOPIC, Some("a"), LITERAL)
                    .with_principal_filter(Some(text("User:reader"))),
            )]),
            2,
        )
        .await;
    let result = &deleted.filter_results[0];
    assert_eq!(result.error_code, 0, "{deleted:?}");
    assert_eq!(result.matching_acls.len(), 1);
    let gone = &result.matching_acls[0];
    assert_eq!(
        (
            gone.error_code,
            gone.resource_type,
            gone.resource_name.as_str(),
            gone.pattern_type,
            gone.principal.as_str(),
            gone.host.as_str(),
            gone.operation,
            gone.permission_type
        ),
        (0, TOPIC, "a", LITERAL, "User:reader", "*", READ, ALLOW)
    );

    // Deleted, it allows nothing any more.
    assert_eq!(fetch(&mut reader, "a").await.0, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(listed_topics(&mut reader).await, Vec::<String>::new());
    assert_eq!(
        described(&mut admin, every_acl(), 1).await,
        vec![(
            CLUSTER,
            "kafka-cluster".to_string(),
            LITERAL,
            vec![("User:operator".to_string(), ALTER, ALLOW)]
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_refuses_members_and_commits_until_a_read_acl_names_it() {
    let directory = tempfile::tempdir().unwrap();
    let (_broker, kafka, mut admin) = secured(directory.path(), &["a"]).await;
    let mut reader = new_user(&mut admin, kafka, "reader").await;
    // Committing needs Read on the topic as well as on the group; the topic is granted here so
    // that only the group decides.
    let read_a = acl(TOPIC, "a", LITERAL, "User:reader", READ, ALLOW);
    assert_eq!(create_acls(&mut admin, vec![read_a]).await, [0]);
    let find = || FindCoordinatorRequest::default().with_key(text("g"));
    let join = || join_group_request("g", "", b"member");
    let commit = || offset_commit_request("g", -1, "", "a", 0, 1);

    assert_eq!(
        reader.send(find(), 3).await.error_code,
        GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(
        reader.send(join(), 9).await.error_code,
        GROUP_AUTHORIZATION_FAILED
    );
    let refused = reader.send(commit(), 8).await;
    assert_eq!(
        refused.topics[0].partitions[0].error_code,
        GROUP_AUTHORIZATION_FAILED
    );

    let read_g = acl(GROUP, "g", LITERAL, "User:reader", READ, ALLOW);
    assert_eq!(create_acls(&mut admin, vec![read_g]).await, [0]);
    assert_eq!(reader.send(find(), 3).await.error_code, 0);
    // Past authorization, a new member is asked to rejoin with its id (KIP-394), as in Kafka.
    assert_eq!(reader.send(join(), 9).await.error_code, MEMBER_ID_REQUIRED);
    let committed = reader.send(commit(), 8).await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    // The ACL names `g` alone.
    let other = join_group_request("other", "", b"member");
    assert_eq!(
        reader.send(other, 9).await.error_code,
        GROUP_AUTHORIZATION_FAILED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefixed_acl_covers_topics_by_name_and_a_deny_wins_over_it() {
    let directory = tempfile::tempdir().unwrap();
    let (_broker, kafka, mut admin) =
        secured(directory.path(), &["logs.app", "logs.secret", "metrics"]).await;
    let mut reader = new_user(&mut admin, kafka, "reader").await;
    let created = create_acls(
        &mut admin,
        vec![
            acl(TOPIC, "logs.", PREFIXED, "User:reader", READ, ALLOW),
            // Every principal, the reader included.
            acl(TOPIC, "logs.secret", LITERAL, "User:*", READ, DENY),
        ],
    )
    .await;
    assert_eq!(created, [0, 0]);

    assert_eq!(fetch(&mut reader, "logs.app").await, from_admin());
    assert_eq!(
        fetch(&mut reader, "logs.secret").await.0,
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(
        fetch(&mut reader, "metrics").await.0,
        TOPIC_AUTHORIZATION_FAILED
    );
    // The deny is of Read only: Describe, which the prefixed Read implies, still lists the
    // topic, as in Kafka.
    assert_eq!(
        listed_topics(&mut reader).await,
        ["logs.app", "logs.secret"]
    );

    // MATCH finds every binding that covers a name; a pattern type finds only its own.
    let prefixed = (
        TOPIC,
        "logs.".to_string(),
        PREFIXED,
        vec![("User:reader".to_string(), READ, ALLOW)],
    );
    let deny = (
        TOPIC,
        "logs.secret".to_string(),
        LITERAL,
        vec![("User:*".to_string(), READ, DENY)],
    );
    assert_eq!(
        described(
            &mut admin,
            describe_filter(TOPIC, Some("logs.secret"), MATCH),
            3
        )
        .await,
        [prefixed.clone(), deny]
    );
    assert_eq!(
        described(&mut admin, describe_filter(ANY, None, PREFIXED), 3).await,
        [prefixed]
    );

    // Deleting the deny (by its permission) leaves the allow, which now reads the topic.
    let denies = every_acl().with_permission_type(DENY);
    let deleted = admin
        .send(
            DeleteAclsRequest::default().with_filters(vec![delete_filter(denies)]),
            3,
        )
        .await;
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert_eq!(fetch(&mut reader, "logs.secret").await, from_admin());
}
