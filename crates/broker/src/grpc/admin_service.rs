use super::acl_admin;
use crate::BrokerState;
use crate::authorization::Caller;
use crate::broker_lifecycle::{controller_error, wait_until_applied};
use crate::client_boundary::{TopicAction, check_topic_action};
use crate::error::PartitionError;
use crate::grpc::status::{error_fields, to_status};
use crate::topic_config::TopicConfig;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use strata_auth::Operation;
use strata_common::{ErrorCode, validate_topic_name};
use strata_controller::{MetadataCommand, MetadataState};
use strata_proto::v1 as proto;
use tonic::{Request, Response, Status};

/// How long an admin request waits for its committed change to be applied on this broker.
pub(super) const APPLY_WAIT: Duration = Duration::from_secs(10);

pub struct AdminService {
    pub(super) state: Arc<BrokerState>,
}

impl AdminService {
    pub fn new(state: Arc<BrokerState>) -> AdminService {
        AdminService { state }
    }

    async fn create_topic(
        &self,
        topic: proto::CreatableTopic,
        validate_only: bool,
    ) -> Result<(), PartitionError> {
        let configs: BTreeMap<String, String> = topic.configs.into_iter().collect();
        // The controller checks names, counts and keys; the values are the broker's to judge.
        validate_topic_name(&topic.name)
            .map_err(|message| PartitionError::new(ErrorCode::InvalidTopicException, message))?;
        check_topic_action(&topic.name, TopicAction::Create)?;
        let resolved = TopicConfig::resolve(&configs)?;
        if topic.replication_factor > 0 {
            check_min_insync_within(&resolved, topic.replication_factor)?;
        }
        let name = topic.name.clone();
        let command = MetadataCommand::CreateTopic {
            name: topic.name,
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            configs,
        };
        if validate_only {
            return self.dry_run(command);
        }
        self.submit_and_wait(command, |state| state.topic(&name).is_some())
            .await
    }

    /// Submits `command` and waits until this broker has applied it, which `applied` tells.
    pub(super) async fn submit_and_wait(
        &self,
        command: MetadataCommand,
        applied: impl Fn(&MetadataState) -> bool,
    ) -> Result<(), PartitionError> {
        self.state
            .controller
            .submit(command)
            .await
            .map_err(controller_error)?;
        wait_until_applied(&self.state.applied_metadata, APPLY_WAIT, applied).await
    }

    /// Whether the controller would accept `command` now: it is applied to a copy of this
    /// broker's metadata, so `validate_only` refuses what the controller would (an existing
    /// topic, a replication factor above the live brokers, too many partitions) with its codes
    /// and messages. The real command can still be refused if the metadata moves on meanwhile.
    fn dry_run(&self, command: MetadataCommand) -> Result<(), PartitionError> {
        let mut copy = MetadataState::clone(&self.state.controller.metadata().borrow());
        copy.apply(command).map(drop).map_err(controller_error)
    }

    async fn delete_topic(&self, name: String) -> Result<(), PartitionError> {
        check_topic_action(&name, TopicAction::Delete)?;
        self.submit_and_wait(
            MetadataCommand::DeleteTopic { name: name.clone() },
            |state| state.topic(&name).is_none(),
        )
        .await
    }

    async fn create_partitions(
        &self,
        increase: proto::PartitionsIncrease,
        validate_only: bool,
    ) -> Result<(), PartitionError> {
        check_topic_action(&increase.name, TopicAction::CreatePartitions)?;
        let current = self
            .state
            .controller
            .metadata()
            .borrow()
            .topic(&increase.name)
            .map(|topic| topic.partitions.len() as i32)
            .ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic '{}' does not exist", increase.name),
                )
            })?;
        if increase.count <= current {
            return Err(PartitionError::new(
                ErrorCode::InvalidPartitions,
                format!(
                    "topic '{}' has {current} partitions; a topic can only grow, and {} is not more",
                    increase.name, increase.count
                ),
            ));
        }
        let (name, total) = (increase.name, increase.count);
        let command = MetadataCommand::CreatePartitions {
            name: name.clone(),
            total,
        };
        if validate_only {
            return self.dry_run(command);
        }
        self.submit_and_wait(command, |state| {
            state
                .topic(&name)
                .is_some_and(|topic| topic.partitions.len() as i32 >= total)
        })
        .await
    }

    async fn alter_configs(
        &self,
        request: proto::AlterTopicConfigs,
        validate_only: bool,
    ) -> Result<(), PartitionError> {
        check_topic_action(&request.name, TopicAction::AlterConfigs)?;
        let set: BTreeMap<String, String> = request.set.into_iter().collect();
        let (current, replication_factor) = self
            .state
            .controller
            .metadata()
            .borrow()
            .topic(&request.name)
            .map(|topic| {
                let replication_factor = topic
                    .partitions
                    .iter()
                    .map(|partition| partition.replicas.len())
                    .min()
                    .unwrap_or(0);
                (topic.configs.clone(), replication_factor)
            })
            .ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic '{}' does not exist", request.name),
                )
            })?;
        let mut resulting = current;
        resulting.extend(set.clone());
        for key in &request.delete {
            resulting.remove(key);
        }
        TopicConfig::check_keys(
            &request
                .delete
                .iter()
                .map(|key| (key.clone(), String::new()))
                .collect(),
        )?;
        let resolved = TopicConfig::resolve(&resulting)?;
        check_min_insync_within(&resolved, replication_factor as i32)?;
        if validate_only {
            return Ok(());
        }
        let name = request.name.clone();
        let command = MetadataCommand::AlterTopicConfigs {
            name: request.name,
            set,
            delete: request.delete,
        };
        self.submit_and_wait(command, |state| {
            state
                .topic(&name)
                .is_some_and(|topic| topic.configs == resulting)
        })
        .await
    }
}

/// `acks=all` could never succeed on a topic whose `min.insync.replicas` exceeds its replicas:
/// every such produce would wait out its timeout. Refused up front, as Kafka's policy does.
fn check_min_insync_within(
    config: &TopicConfig,
    replication_factor: i32,
) -> Result<(), PartitionError> {
    if config.min_insync_replicas > replication_factor {
        return Err(PartitionError::new(
            ErrorCode::InvalidConfig,
            format!(
                "min.insync.replicas is {} but the replication factor is {replication_factor}; \
                 acks=all writes could never succeed",
                config.min_insync_replicas
            ),
        ));
    }
    Ok(())
}

/// How long a topic change may wait for the controller quorum when the request names no timeout
/// (Kafka's `request.timeout.ms` default).
const DEFAULT_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The bound a request's `timeout_ms` sets on its changes; 0 or less means the default.
pub(crate) fn change_timeout(timeout_ms: i32) -> Duration {
    match u64::try_from(timeout_ms) {
        Ok(ms) if ms > 0 => Duration::from_millis(ms),
        _ => DEFAULT_CHANGE_TIMEOUT,
    }
}

/// Runs a topic change for at most `limit`. A controller leader that lost its majority neither
/// commits nor refuses a command, so without this bound the request would wait for good.
async fn within(
    limit: Duration,
    change: impl std::future::Future<Output = Result<(), PartitionError>>,
) -> Result<(), PartitionError> {
    tokio::time::timeout(limit, change).await.unwrap_or_else(|_| {
        Err(PartitionError::new(
            ErrorCode::RequestTimedOut,
            format!(
                "the controller quorum did not commit the change within {} ms (are a majority of \
                 the voters up and reachable?); it may still take effect",
                limit.as_millis()
            ),
        ))
    })
}

fn topic_result(name: String, result: Result<(), PartitionError>) -> proto::TopicResult {
    let (error_code, error_message) = error_fields(&result);
    proto::TopicResult {
        name,
        error_code,
        error_message,
    }
}

/// Kafka's mechanism id in the API's enum.
fn mechanism_of(id: i32) -> Result<strata_auth::Mechanism, PartitionError> {
    i8::try_from(id)
        .ok()
        .and_then(strata_auth::Mechanism::from_kafka_type)
        .ok_or_else(|| {
            PartitionError::new(
                ErrorCode::UnsupportedSaslMechanism,
                format!("unknown SCRAM mechanism {id}; 1 is SCRAM-SHA-256, 2 SCRAM-SHA-512"),
            )
        })
}

impl AdminService {
    /// Sets a user's credential from the salted password a client computed.
    pub(crate) async fn upsert_scram_credential(
        &self,
        upsertion: proto::ScramCredentialUpsertion,
    ) -> Result<(), PartitionError> {
        let mechanism = mechanism_of(upsertion.mechanism)?;
        let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
        let credential = strata_auth::ScramCredential::from_salted_password(
            mechanism,
            &upsertion.salt,
            iterations,
            &upsertion.salted_password,
        )
        .map_err(|error| {
            PartitionError::new(ErrorCode::UnacceptableCredential, error.to_string())
        })?;
        let stored_key = credential.stored_key.clone();
        let user = upsertion.user;
        self.submit_and_wait(
            MetadataCommand::UpsertScramCredential {
                user: user.clone(),
                credential,
            },
            |state| {
                state
                    .scram_credential(&user, mechanism)
                    .is_some_and(|stored| stored.stored_key == stored_key)
            },
        )
        .await
    }

    pub(crate) async fn delete_scram_credential(
        &self,
        deletion: proto::ScramCredentialDeletion,
    ) -> Result<(), PartitionError> {
        let mechanism = mechanism_of(deletion.mechanism)?;
        let user = deletion.user;
        self.submit_and_wait(
            MetadataCommand::DeleteScramCredential {
                user: user.clone(),
                mechanism,
            },
            |state| state.scram_credential(&user, mechanism).is_none(),
        )
        .await
    }

    /// Every user's mechanisms when `users` is empty, else the named users' (a user without
    /// credentials gets RESOURCE_NOT_FOUND).
    pub(crate) fn describe_users(
        &self,
        caller: Option<&Caller>,
        users: Vec<String>,
    ) -> Result<Vec<proto::DescribedUser>, PartitionError> {
        self.state.authorizer.cluster(caller, Operation::Describe)?;
        let metadata = self.state.applied_metadata.borrow().clone();
        let names: Vec<String> = if users.is_empty() {
            metadata.users.keys().cloned().collect()
        } else {
            users
        };
        Ok(names
            .into_iter()
            .map(|user| match metadata.users.get(&user) {
                Some(credentials) => proto::DescribedUser {
                    user,
                    error_code: 0,
                    error_message: String::new(),
                    credentials: credentials
                        .values()
                        .map(|credential| proto::ScramCredentialInfo {
                            mechanism: i32::from(credential.mechanism.kafka_type()),
                            iterations: i32::try_from(credential.iterations).unwrap_or(i32::MAX),
                        })
                        .collect(),
                },
                None => proto::DescribedUser {
                    error_code: ErrorCode::ResourceNotFound.code(),
                    error_message: format!("no user '{user}'"),
                    user,
                    credentials: Vec::new(),
                },
            })
            .collect())
    }

    /// Applies the upsertions, then the deletions, one result per user named.
    pub(crate) async fn alter_users(
        &self,
        caller: Option<&Caller>,
        request: proto::AlterUserScramCredentialsRequest,
    ) -> Vec<proto::UserResult> {
        if let Err(refused) = self.state.authorizer.cluster(caller, Operation::Alter) {
            let users: std::collections::BTreeSet<String> = request
                .upsertions
                .iter()
                .map(|upsertion| upsertion.user.clone())
                .chain(
                    request
                        .deletions
                        .iter()
                        .map(|deletion| deletion.user.clone()),
                )
                .collect();
            return users
                .into_iter()
                .map(|user| proto::UserResult {
                    user,
                    error_code: refused.code.code(),
                    error_message: refused.message.clone(),
                })
                .collect();
        }
        let mut results: BTreeMap<String, Result<(), PartitionError>> = BTreeMap::new();
        for upsertion in request.upsertions {
            let user = upsertion.user.clone();
            let result = self.upsert_scram_credential(upsertion).await;
            let entry = results.entry(user).or_insert(Ok(()));
            if entry.is_ok() {
                *entry = result;
            }
        }
        for deletion in request.deletions {
            let user = deletion.user.clone();
            let result = self.delete_scram_credential(deletion).await;
            let entry = results.entry(user).or_insert(Ok(()));
            if entry.is_ok() {
                *entry = result;
            }
        }
        results
            .into_iter()
            .map(|(user, result)| {
                let (error_code, error_message) = error_fields(&result);
                proto::UserResult {
                    user,
                    error_code,
                    error_message,
                }
            })
            .collect()
    }
}

#[tonic::async_trait]
impl proto::admin_server::Admin for AdminService {
    async fn create_acls(
        &self,
        request: Request<proto::CreateAclsRequest>,
    ) -> Result<Response<proto::CreateAclsResponse>, Status> {
        let caller = Caller::of(&request);
        let creations = request
            .into_inner()
            .creations
            .into_iter()
            .map(acl_admin::binding_from_proto)
            .collect();
        let results = self
            .create_acls(caller.as_ref(), creations)
            .await
            .into_iter()
            .map(|result| {
                let (error_code, error_message) = error_fields(&result);
                proto::AclResult {
                    error_code,
                    error_message,
                }
            })
            .collect();
        Ok(Response::new(proto::CreateAclsResponse { results }))
    }

    async fn describe_acls(
        &self,
        request: Request<proto::DescribeAclsRequest>,
    ) -> Result<Response<proto::DescribeAclsResponse>, Status> {
        let caller = Caller::of(&request);
        let filter = request.into_inner().filter.unwrap_or(proto::AclFilter {
            resource_type: i32::from(strata_auth::acl::ANY_CODE),
            pattern_type: i32::from(strata_auth::acl::ANY_CODE),
            operation: i32::from(strata_auth::acl::ANY_CODE),
            permission: i32::from(strata_auth::acl::ANY_CODE),
            ..Default::default()
        });
        let described = acl_admin::filter_from_proto(filter)
            .and_then(|filter| self.describe_acls(caller.as_ref(), &filter));
        let (error_code, error_message) = error_fields(&described);
        Ok(Response::new(proto::DescribeAclsResponse {
            error_code,
            error_message,
            bindings: described
                .unwrap_or_default()
                .into_iter()
                .map(|binding| proto::AclBinding::from(&binding))
                .collect(),
        }))
    }

    async fn delete_acls(
        &self,
        request: Request<proto::DeleteAclsRequest>,
    ) -> Result<Response<proto::DeleteAclsResponse>, Status> {
        let caller = Caller::of(&request);
        let filters = request
            .into_inner()
            .filters
            .into_iter()
            .map(acl_admin::filter_from_proto)
            .collect();
        let results = self
            .delete_acls(caller.as_ref(), filters)
            .await
            .into_iter()
            .map(|result| {
                let (error_code, error_message) = error_fields(&result);
                proto::DeleteAclsFilterResult {
                    error_code,
                    error_message,
                    deleted: result
                        .unwrap_or_default()
                        .into_iter()
                        .map(|binding| proto::AclBinding::from(&binding))
                        .collect(),
                }
            })
            .collect();
        Ok(Response::new(proto::DeleteAclsResponse { results }))
    }

    async fn alter_user_scram_credentials(
        &self,
        request: Request<proto::AlterUserScramCredentialsRequest>,
    ) -> Result<Response<proto::AlterUserScramCredentialsResponse>, Status> {
        let caller = Caller::of(&request);
        let results = self
            .alter_users(caller.as_ref(), request.into_inner())
            .await;
        Ok(Response::new(proto::AlterUserScramCredentialsResponse {
            results,
        }))
    }

    async fn describe_user_scram_credentials(
        &self,
        request: Request<proto::DescribeUserScramCredentialsRequest>,
    ) -> Result<Response<proto::DescribeUserScramCredentialsResponse>, Status> {
        let caller = Caller::of(&request);
        let users = self
            .describe_users(caller.as_ref(), request.into_inner().users)
            .map_err(to_status)?;
        Ok(Response::new(proto::DescribeUserScramCredentialsResponse {
            users,
        }))
    }

    async fn create_topics(
        &self,
        request: Request<proto::CreateTopicsRequest>,
    ) -> Result<Response<proto::CreateTopicsResponse>, Status> {
        let caller = Caller::of(&request);
        let caller = caller.as_ref();
        let request = request.into_inner();
        let validate_only = request.validate_only;
        let limit = change_timeout(request.timeout_ms);
        let topics = request.topics.into_iter().map(|topic| async move {
            let name = topic.name.clone();
            let created = async {
                self.state.authorizer.create_topic(caller, &topic.name)?;
                self.create_topic(topic, validate_only).await
            };
            topic_result(name, within(limit, created).await)
        });
        let topics = futures::future::join_all(topics).await;
        Ok(Response::new(proto::CreateTopicsResponse { topics }))
    }

    async fn delete_topics(
        &self,
        request: Request<proto::DeleteTopicsRequest>,
    ) -> Result<Response<proto::DeleteTopicsResponse>, Status> {
        let caller = Caller::of(&request);
        let caller = caller.as_ref();
        let request = request.into_inner();
        let limit = change_timeout(request.timeout_ms);
        let topics = request.names.into_iter().map(|name| async move {
            let deleted = async {
                self.state
                    .authorizer
                    .topic(caller, Operation::Delete, &name)?;
                self.delete_topic(name.clone()).await
            };
            let result = within(limit, deleted).await;
            topic_result(name, result)
        });
        Ok(Response::new(proto::DeleteTopicsResponse {
            topics: futures::future::join_all(topics).await,
        }))
    }

    async fn describe_configs(
        &self,
        request: Request<proto::DescribeConfigsRequest>,
    ) -> Result<Response<proto::DescribeConfigsResponse>, Status> {
        let caller = Caller::of(&request);
        let topics = request
            .into_inner()
            .topics
            .into_iter()
            .map(|name| {
                if let Err(refused) =
                    self.state
                        .authorizer
                        .topic(caller.as_ref(), Operation::DescribeConfigs, &name)
                {
                    return proto::TopicConfigs {
                        name,
                        error_code: refused.code.code(),
                        error_message: refused.message,
                        entries: Vec::new(),
                    };
                }
                match self
                    .state
                    .controller
                    .metadata()
                    .borrow()
                    .topic(&name)
                    .cloned()
                {
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
                }
            })
            .collect();
        Ok(Response::new(proto::DescribeConfigsResponse { topics }))
    }

    async fn alter_configs(
        &self,
        request: Request<proto::AlterConfigsRequest>,
    ) -> Result<Response<proto::AlterConfigsResponse>, Status> {
        let caller = Caller::of(&request);
        let caller = caller.as_ref();
        let request = request.into_inner();
        let validate_only = request.validate_only;
        // The request has no timeout field; the client's deadline, if shorter, ends it first.
        let topics = request.topics.into_iter().map(|topic| async move {
            let name = topic.name.clone();
            let altered = async {
                self.state
                    .authorizer
                    .topic(caller, Operation::AlterConfigs, &topic.name)?;
                self.alter_configs(topic, validate_only).await
            };
            let result = within(DEFAULT_CHANGE_TIMEOUT, altered).await;
            topic_result(name, result)
        });
        let topics = futures::future::join_all(topics).await;
        Ok(Response::new(proto::AlterConfigsResponse { topics }))
    }

    async fn create_partitions(
        &self,
        request: Request<proto::CreatePartitionsRequest>,
    ) -> Result<Response<proto::CreatePartitionsResponse>, Status> {
        let caller = Caller::of(&request);
        let caller = caller.as_ref();
        let request = request.into_inner();
        let validate_only = request.validate_only;
        let limit = change_timeout(request.timeout_ms);
        let topics = request.topics.into_iter().map(|increase| async move {
            let name = increase.name.clone();
            let grown = async {
                self.state
                    .authorizer
                    .topic(caller, Operation::Alter, &increase.name)?;
                self.create_partitions(increase, validate_only).await
            };
            let result = within(limit, grown).await;
            topic_result(name, result)
        });
        let topics = futures::future::join_all(topics).await;
        Ok(Response::new(proto::CreatePartitionsResponse { topics }))
    }
}
