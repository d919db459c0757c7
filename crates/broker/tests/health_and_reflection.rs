//! The standard gRPC services generic tools use, on the client listener of a broker that
//! requires authentication: `grpc.health.v1.Health` says SERVING once the node serves clients,
//! and server reflection lists the client services and hands out their schemas, both without
//! credentials; the API itself still needs them.

mod common;

use strata_broker::{Broker, BrokerConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test]
async fn health_and_reflection_answer_generic_clients_without_credentials() {
    let directory = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        data_dir: directory.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        require_authentication: true,
        bootstrap_user: Some(("admin".to_string(), "admin-secret".to_string())),
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts");
    let channel = common::channel(&broker).await;

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "strata.v1.Broker", "strata.v1.GroupCoordinator"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "strata.v1.Nothing".to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let reflection = ServerReflectionClient::new(channel.clone());
    let ask = |request: MessageRequest| {
        let mut reflection = reflection.clone();
        async move {
            let requests = tokio_stream::once(ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request),
            });
            let mut answers = reflection
                .server_reflection_info(requests)
                .await
                .unwrap()
                .into_inner();
            answers.message().await.unwrap().unwrap().message_response
        }
    };
    let Some(MessageResponse::ListServicesResponse(listed)) =
        ask(MessageRequest::ListServices(String::new())).await
    else {
        panic!("no service list");
    };
    let names: Vec<String> = listed
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    for client_service in strata_proto::CLIENT_SERVICES {
        assert!(names.contains(&client_service.to_string()), "{names:?}");
    }
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|name| name.contains("replication") || name.contains("controller")),
        "only the client listener's services are advertised: {names:?}"
    );
    let Some(MessageResponse::FileDescriptorResponse(schema)) = ask(
        MessageRequest::FileContainingSymbol("strata.v1.Broker".to_string()),
    )
    .await
    else {
        panic!("no schema for strata.v1.Broker");
    };
    assert!(!schema.file_descriptor_proto.is_empty());
    drop(reflection);

    // The API itself still needs credentials.
    let refused = strata_proto::v1::broker_client::BrokerClient::new(channel)
        .metadata(strata_proto::v1::MetadataRequest { topics: vec![] })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    broker.shutdown().await;
}
