use crate::BrokerState;
use crate::error::PartitionError;
use crate::grpc::status::error_fields;
use crate::topic_config::TopicConfig;
use std::collections::BTreeMap;
use std::sync::Arc;
use strata_common::{ErrorCode, TopicPartition};
use strata_proto::v1 as proto;
use tonic::{Request, Response, Status};

pub struct AdminService {
    state: Arc<BrokerState>,
}

impl AdminService {
    pub fn new(state: Arc<BrokerState>) -> AdminService {
        AdminService { state }
    }

    fn create_topic(
        &self,
        topic: proto::CreatableTopic,
        validate_only: bool,
    ) -> Result<(), PartitionError> {
        let configs: BTreeMap<String, String> = topic.configs.into_iter().collect();
        let record = self.state.metadata.create_topic(
            &topic.name,
            topic.num_partitions,
            topic.replication_factor,
            configs,
            1,
            !validate_only,
        )?;
        if validate_only {
            return Ok(());
        }
        let config = TopicConfig::resolve(&record.configs)?;
        for partition in 0..record.partitions {
            self.state.replicas.become_leader(
                TopicPartition::new(&record.name, partition),
                &config,
                0,
            )?;
        }
        Ok(())
    }

    fn delete_topic(&self, name: &str) -> Result<(), PartitionError> {
        let record = self.state.metadata.delete_topic(name)?;
        for partition in 0..record.partitions {
            self.state
                .replicas
                .remove_partition(&TopicPartition::new(name, partition), true)?;
        }
        Ok(())
    }

    fn alter_configs(
        &self,
        request: proto::AlterTopicConfigs,
        validate_only: bool,
    ) -> Result<(), PartitionError> {
        let set: BTreeMap<String, String> = request.set.into_iter().collect();
        let record = self.state.metadata.alter_configs(
            &request.name,
            set,
            &request.delete,
            !validate_only,
        )?;
        if validate_only {
            return Ok(());
        }
        let config = TopicConfig::resolve(&record.configs)?;
        for partition in 0..record.partitions {
            self.state
                .replicas
                .update_config(&TopicPartition::new(&record.name, partition), &config)?;
        }
        Ok(())
    }
}

fn topic_result(name: String, result: Result<(), PartitionError>) -> proto::TopicResult {
    let (error_code, error_message) = error_fields(&result);
    proto::TopicResult {
        name,
        error_code,
        error_message,
    }
}

#[tonic::async_trait]
impl proto::admin_server::Admin for AdminService {
    async fn create_topics(
        &self,
        request: Request<proto::CreateTopicsRequest>,
    ) -> Result<Response<proto::CreateTopicsResponse>, Status> {
        let request = request.into_inner();
        let topics = request
            .topics
            .into_iter()
            .map(|topic| {
                let name = topic.name.clone();
                topic_result(name, self.create_topic(topic, request.validate_only))
            })
            .collect();
        Ok(Response::new(proto::CreateTopicsResponse { topics }))
    }

    async fn delete_topics(
        &self,
        request: Request<proto::DeleteTopicsRequest>,
    ) -> Result<Response<proto::DeleteTopicsResponse>, Status> {
        let topics = request.into_inner().names.into_iter().map(|name| {
            let result = self.delete_topic(&name);
            topic_result(name, result)
        });
        Ok(Response::new(proto::DeleteTopicsResponse {
            topics: topics.collect(),
        }))
    }

    async fn describe_configs(
        &self,
        request: Request<proto::DescribeConfigsRequest>,
    ) -> Result<Response<proto::DescribeConfigsResponse>, Status> {
        let topics = request
            .into_inner()
            .topics
            .into_iter()
            .map(|name| match self.state.metadata.topic(&name) {
                Some(topic) => proto::TopicConfigs {
                    name,
                    error_code: 0,
                    error_message: String::new(),
                    entries: TopicConfig::describe(&topic.configs)
                        .into_iter()
                        .map(|(name, value, is_default)| proto::ConfigEntry {
                            name,
                            value,
                            is_default,
                        })
                        .collect(),
                },
                None => proto::TopicConfigs {
                    error_code: ErrorCode::UnknownTopicOrPartition.code(),
                    error_message: format!("topic '{name}' does not exist"),
                    name,
                    entries: Vec::new(),
                },
            })
            .collect();
        Ok(Response::new(proto::DescribeConfigsResponse { topics }))
    }

    async fn alter_configs(
        &self,
        request: Request<proto::AlterConfigsRequest>,
    ) -> Result<Response<proto::AlterConfigsResponse>, Status> {
        let request = request.into_inner();
        let topics = request
            .topics
            .into_iter()
            .map(|topic| {
                let name = topic.name.clone();
                topic_result(name, self.alter_configs(topic, request.validate_only))
            })
            .collect();
        Ok(Response::new(proto::AlterConfigsResponse { topics }))
    }
}
