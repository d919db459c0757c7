//! A broker that requires authentication: on the gRPC door every call needs `authorization:
//! Basic`, on the Kafka door a SASL exchange (SCRAM or PLAIN) comes before anything but
//! ApiVersions. Users live in the metadata as SCRAM credentials; the bootstrap user is the first.

mod kafka_client;

use kafka_client::{
    KafkaConnection, basic_authorization as basic, scram_login, start_secured, upsert_user_request,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    ApiVersionsRequest, DescribeUserScramCredentialsRequest, MetadataRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use strata_auth::Mechanism;
use strata_broker::BrokerHandle;
use strata_proto::v1 as proto;
use strata_proto::v1::broker_client::BrokerClient;
use tonic::transport::Channel;

const SASL_AUTHENTICATION_FAILED: i16 = 58;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

async fn metadata_as(
    broker: &BrokerHandle,
    authorization: Option<&str>,
) -> Result<proto::MetadataResponse, tonic::Status> {
    let channel = Channel::from_shared(format!("http://{}", broker.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(proto::MetadataRequest { topics: vec![] });
    if let Some(authorization) = authorization {
        request
            .metadata_mut()
            .insert("authorization", authorization.parse().unwrap());
    }
    BrokerClient::new(channel)
        .metadata(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn grpc_calls_need_a_known_user_and_password() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start_secured(directory.path()).await;

    let missing = metadata_as(&broker, None).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::Unauthenticated, "{missing}");
    let wrong = metadata_as(&broker, Some(&basic("admin", "guess")))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    assert!(
        !wrong.message().contains("guess"),
        "the refusal repeats the password: {wrong}"
    );
    let unknown = metadata_as(&broker, Some(&basic("nobody", "admin-secret")))
        .await
        .unwrap_err();
    assert_eq!(
        unknown.message(),
        wrong.message(),
        "an unknown user is refused exactly as a wrong password is"
    );
    let garbage = metadata_as(&broker, Some("Basic %%%")).await.unwrap_err();
    assert_eq!(garbage.code(), tonic::Code::Unauthenticated);

    metadata_as(&broker, Some(&basic("admin", "admin-secret")))
        .await
        .expect("the bootstrap user is served");
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_refused_without_a_check() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start_secured(directory.path()).await;
    for _ in 0..strata_broker::authentication::FAILURES_ALLOWED {
        metadata_as(&broker, Some(&basic("admin", "guess")))
            .await
            .unwrap_err();
    }
    // Now even the right password is turned away: the source is out of attempts.
    let throttled = metadata_as(&broker, Some(&basic("admin", "admin-secret")))
        .await
        .unwrap_err();
    assert_eq!(throttled.code(), tonic::Code::Unauthenticated);
    assert!(
        throttled.message().contains("too many failed"),
        "{throttled}"
    );
}

#[tokio::test]
async fn kafka_clients_authenticate_with_scram_before_anything_else() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start_secured(directory.path()).await;
    let kafka = broker.kafka_addr().unwrap();

    // ApiVersions is answered before authentication; anything else closes the connection.
    let mut anonymous = KafkaConnection::connect(kafka).await;
    let versions = anonymous.send(ApiVersionsRequest::default(), 3).await;
    assert!(
        versions
            .api_keys
            .iter()
            .any(|api| api.api_key == 36 && api.max_version >= 2),
        "SaslAuthenticate is advertised"
    );
    let (frame, _) = anonymous.frame(&MetadataRequest::default().with_topics(None), 12);
    anonymous.write_raw(&frame).await;
    assert!(anonymous.is_closed_by_broker().await);

    // A wrong password fails the exchange and the connection.
    let mut wrong = KafkaConnection::connect(kafka).await;
    assert_eq!(
        scram_login(&mut wrong, Mechanism::ScramSha512, "admin", "guess").await,
        Err(SASL_AUTHENTICATION_FAILED)
    );
    assert!(wrong.is_closed_by_broker().await);

    // PLAIN sends the password itself: not offered without TLS.
    let mut plain = KafkaConnection::connect(kafka).await;
    let refused = plain
        .send(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            1,
        )
        .await;
    assert_eq!(refused.error_code, UNSUPPORTED_SASL_MECHANISM);
    assert!(
        refused
            .mechanisms
            .iter()
            .all(|mechanism| mechanism.as_str() != "PLAIN")
    );

    // The bootstrap user, then a user made over Kafka's own user API, with either mechanism.
    let mut admin = KafkaConnection::connect(kafka).await;
    scram_login(&mut admin, Mechanism::ScramSha512, "admin", "admin-secret")
        .await
        .expect("the bootstrap user logs in");
    let metadata = admin
        .send(MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(metadata.brokers.len(), 1);
    let altered = admin
        .send(
            upsert_user_request("alice", Mechanism::ScramSha256, "alice-secret"),
            0,
        )
        .await;
    assert_eq!(altered.results[0].error_code, 0, "{altered:?}");
    let described = admin
        .send(
            DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                UserName::default().with_name(StrBytes::from_static_str("alice")),
            ])),
            0,
        )
        .await;
    assert_eq!(described.results[0].credential_infos.len(), 1);
    assert_eq!(
        described.results[0].credential_infos[0].mechanism,
        Mechanism::ScramSha256.kafka_type()
    );

    let mut alice = KafkaConnection::connect(kafka).await;
    scram_login(&mut alice, Mechanism::ScramSha256, "alice", "alice-secret")
        .await
        .expect("a user made over Kafka's API logs in");
    // She has no SCRAM-SHA-512 credential, so that exchange fails as a wrong password would.
    let mut alice_512 = KafkaConnection::connect(kafka).await;
    assert_eq!(
        scram_login(
            &mut alice_512,
            Mechanism::ScramSha512,
            "alice",
            "alice-secret"
        )
        .await,
        Err(SASL_AUTHENTICATION_FAILED)
    );
    // And the gRPC door knows her by the same credential.
    metadata_as(&broker, Some(&basic("alice", "alice-secret")))
        .await
        .expect("one credential for both doors");
}

#[tokio::test]
async fn users_survive_a_restart_and_the_bootstrap_user_does_not_reset_a_password() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start_secured(directory.path()).await;
    let kafka = broker.kafka_addr().unwrap();
    let mut admin = KafkaConnection::connect(kafka).await;
    scram_login(&mut admin, Mechanism::ScramSha512, "admin", "admin-secret")
        .await
        .unwrap();
    // The bootstrap user changes its own password.
    let altered = admin
        .send(
            upsert_user_request("admin", Mechanism::ScramSha512, "changed"),
            0,
        )
        .await;
    assert_eq!(altered.results[0].error_code, 0, "{altered:?}");
    broker.shutdown().await;

    // Started again with the same bootstrap user: the cluster has it, so its password stays.
    let broker = start_secured(directory.path()).await;
    metadata_as(&broker, Some(&basic("admin", "changed")))
        .await
        .expect("the changed password survives the restart");
    let mut again = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
    assert_eq!(
        scram_login(&mut again, Mechanism::ScramSha512, "admin", "admin-secret").await,
        Err(SASL_AUTHENTICATION_FAILED),
        "the bootstrap user did not reset the password"
    );
}

#[tokio::test]
async fn a_stranger_cannot_send_a_large_request_before_authenticating() {
    let directory = tempfile::tempdir().unwrap();
    let broker = start_secured(directory.path()).await;
    let mut stranger = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
    // A size prefix of 1 MiB: refused before the body is read, the connection closed.
    stranger.write_raw(&(1_i32 << 20).to_be_bytes()).await;
    assert!(stranger.is_closed_by_broker().await);
    // The same prefix after logging in is an ordinary request size.
    let mut admin = KafkaConnection::connect(broker.kafka_addr().unwrap()).await;
    scram_login(&mut admin, Mechanism::ScramSha256, "admin", "admin-secret")
        .await
        .unwrap();
    let metadata = admin
        .send(MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(metadata.brokers.len(), 1);
}
