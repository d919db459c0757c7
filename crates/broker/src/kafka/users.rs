//! Kafka's user APIs, so Kafka's own admin tools manage Strata's users: AlterUserScramCredentials
//! and DescribeUserScramCredentials, translated into the gRPC Admin door's calls.

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, RequestKind,
    ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use strata_proto::v1 as proto;

use super::KafkaDoor;

/// Version 0 is the only one Kafka defines for both.
pub(super) const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
];

fn message(text: String) -> Option<StrBytes> {
    (!text.is_empty()).then(|| StrBytes::from_string(text))
}

impl KafkaDoor {
    pub(super) async fn handle_user_request(
        &self,
        request: RequestKind,
    ) -> Result<ResponseKind, RequestKind> {
        Ok(match request {
            RequestKind::AlterUserScramCredentials(body) => {
                ResponseKind::AlterUserScramCredentials(self.alter_users(body).await)
            }
            RequestKind::DescribeUserScramCredentials(body) => {
                ResponseKind::DescribeUserScramCredentials(self.describe_users(body))
            }
            other => return Err(other),
        })
    }

    async fn alter_users(
        &self,
        request: AlterUserScramCredentialsRequest,
    ) -> AlterUserScramCredentialsResponse {
        let request = proto::AlterUserScramCredentialsRequest {
            upsertions: request
                .upsertions
                .into_iter()
                .map(|upsertion| proto::ScramCredentialUpsertion {
                    user: upsertion.name.to_string(),
                    mechanism: i32::from(upsertion.mechanism),
                    iterations: upsertion.iterations,
                    salt: upsertion.salt,
                    salted_password: upsertion.salted_password,
                })
                .collect(),
            deletions: request
                .deletions
                .into_iter()
                .map(|deletion| proto::ScramCredentialDeletion {
                    user: deletion.name.to_string(),
                    mechanism: i32::from(deletion.mechanism),
                })
                .collect(),
        };
        let results = self
            .admin()
            .alter_users(self.caller(), request)
            .await
            .into_iter()
            .map(|result| {
                AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(result.user))
                    .with_error_code(result.error_code as i16)
                    .with_error_message(message(result.error_message))
            })
            .collect();
        AlterUserScramCredentialsResponse::default().with_results(results)
    }

    fn describe_users(
        &self,
        request: DescribeUserScramCredentialsRequest,
    ) -> DescribeUserScramCredentialsResponse {
        let users = request
            .users
            .unwrap_or_default()
            .into_iter()
            .map(|user| user.name.to_string())
            .collect();
        let described = match self.admin().describe_users(self.caller(), users) {
            Ok(described) => described,
            // Kafka answers a caller without Describe on the cluster with a top-level error.
            Err(refused) => {
                return DescribeUserScramCredentialsResponse::default()
                    .with_error_code(refused.code.code() as i16)
                    .with_error_message(message(refused.message));
            }
        };
        let results = described
            .into_iter()
            .map(|described| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(described.user))
                    .with_error_code(described.error_code as i16)
                    .with_error_message(message(described.error_message))
                    .with_credential_infos(
                        described
                            .credentials
                            .into_iter()
                            .map(|info| {
                                CredentialInfo::default()
                                    .with_mechanism(info.mechanism as i8)
                                    .with_iterations(info.iterations)
                            })
                            .collect(),
                    )
            })
            .collect();
        DescribeUserScramCredentialsResponse::default().with_results(results)
    }
}
