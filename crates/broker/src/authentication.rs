//! Who is calling: users proven by a password, checked against the SCRAM credentials in the
//! applied metadata.
//!
//! Two doors, one check:
//! - **Kafka listener**: SASL, as Kafka's brokers do it (SaslHandshake v1, then SaslAuthenticate
//!   carrying SCRAM-SHA-256, SCRAM-SHA-512 or, over TLS only, PLAIN). The connection is
//!   authenticated once; until then it may only ask ApiVersions and SASL, anything else closes
//!   it (`kafka::sasl`).
//! - **gRPC client listener**: every call carries `authorization: Basic base64(user:password)`
//!   (RFC 7617), which any gRPC library can send as call metadata. The password is verified
//!   against the stored SCRAM credential, so there is one set of credentials for both doors and
//!   no password is stored. A verification costs a PBKDF2 run (thousands of HMACs), so a
//!   successful one is remembered for [`VERIFIED_FOR`] against the exact stored key it matched:
//!   a changed or deleted credential stops matching at once.
//!
//! A client that presents a certificate the client CA verified is the user its certificate
//! names (`strata_tls::certificate_user`) on both doors, without a password; credentials it
//! sends as well take precedence.
//!
//! Nodes do not authenticate here: they reach each other on the internal listener, which with
//! TLS takes only certificates the cluster's CA signed.
//!
//! Failed attempts are counted per source address; past [`FAILURES_ALLOWED`] in
//! [`FAILURE_WINDOW`] that source is refused without a check until the window passes, so a
//! password cannot be guessed at the rate PBKDF2 allows. Each failure is logged with the source
//! and the user name, never the password or the SASL messages.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_auth::{Mechanism, ScramCredential};

use crate::authorization::Caller;
use strata_controller::MetadataState;
use tokio::sync::watch;
use tracing::warn;

/// Failed attempts a source may make in [`FAILURE_WINDOW`] before it is refused unchecked.
pub const FAILURES_ALLOWED: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a verified gRPC password is trusted without running PBKDF2 again.
pub const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// Entries in the verified-password cache before it is cleared; bounds memory against a client
/// that cycles through users.
const VERIFIED_CAPACITY: usize = 10_000;

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    pub user: String,
}

/// Why an attempt was refused; the text is safe to send to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("authentication failed: invalid user name or password")]
    Failed,
    #[error(
        "too many failed authentications from this address; try again in up to {}s",
        FAILURE_WINDOW.as_secs()
    )]
    Throttled,
    #[error("authentication required: {0}")]
    Missing(String),
    #[error("malformed credentials: {0}")]
    Malformed(String),
}

struct Failures {
    since: Instant,
    count: u32,
}

/// What a verified password was checked against, and when.
struct Verified {
    stored_key: Vec<u8>,
    at: Instant,
}

pub struct Authenticator {
    required: bool,
    metadata: watch::Receiver<Arc<MetadataState>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    verified: Mutex<HashMap<(String, Vec<u8>), Verified>>,
}

impl Authenticator {
    pub fn new(required: bool, metadata: watch::Receiver<Arc<MetadataState>>) -> Self {
        Self {
            required,
            metadata,
            failures: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Whether clients must authenticate on the client and Kafka listeners.
    pub fn required(&self) -> bool {
        self.required
    }

    /// `user`'s stored credential for `mechanism`, from the applied metadata.
    pub fn credential(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        self.metadata
            .borrow()
            .scram_credential(user, mechanism)
            .cloned()
    }

    /// Refuses `source` outright while it is over its failure budget.
    pub fn admit(&self, source: IpAddr) -> Result<(), Refusal> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&source) {
            Some(recent) if recent.since.elapsed() < FAILURE_WINDOW => {
                if recent.count >= FAILURES_ALLOWED {
                    Err(Refusal::Throttled)
                } else {
                    Ok(())
                }
            }
            Some(_) => {
                failures.remove(&source);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts and logs a failed attempt from `source` as `user` (as the client named it).
    pub fn failed(&self, source: IpAddr, user: Option<&str>, door: &str, why: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Expired windows are dropped as failures arrive, so the map holds only recent sources.
        failures.retain(|_, recent| recent.since.elapsed() < FAILURE_WINDOW);
        let recent = failures.entry(source).or_insert(Failures {
            since: Instant::now(),
            count: 0,
        });
        recent.count += 1;
        warn!(%source, user = user.unwrap_or("-"), door, reason = why, failures = recent.count, "authentication failed");
    }

    /// Checks an `authorization` header value (`Basic base64(user:password)`) from `source`.
    pub async fn basic(&self, header: Option<&str>, source: IpAddr) -> Result<Principal, Refusal> {
        self.admit(source)?;
        let Some(header) = header else {
            return Err(Refusal::Missing(
                "send `authorization: Basic base64(user:password)` with every call".to_string(),
            ));
        };
        let refused = |refusal: Refusal, user: Option<&str>, why: &str| {
            self.failed(source, user, "grpc", why);
            Err(refusal)
        };
        let Some(encoded) = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
        else {
            return refused(
                Refusal::Malformed("only the Basic scheme is accepted".to_string()),
                None,
                "not Basic",
            );
        };
        use base64::Engine as _;
        let Some((user, password)) = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|text| {
                text.split_once(':')
                    .map(|(user, password)| (user.to_string(), password.to_string()))
            })
        else {
            return refused(
                Refusal::Malformed("Basic credentials are base64 of user:password".to_string()),
                None,
                "bad Basic encoding",
            );
        };
        if self.verify_password(&user, &password).await {
            Ok(Principal { user })
        } else {
            refused(Refusal::Failed, Some(&user), "wrong user or password")
        }
    }

    /// Whether `password` is `user`'s, by the strongest credential the user has. A check not
    /// remembered runs PBKDF2 on the blocking pool: thousands of HMACs would otherwise hold a
    /// runtime worker, and every request queued behind it, for milliseconds.
    pub async fn verify_password(&self, user: &str, password: &str) -> bool {
        let Some(credential) = self
            .credential(user, Mechanism::ScramSha512)
            .or_else(|| self.credential(user, Mechanism::ScramSha256))
        else {
            return false;
        };
        // The cache key holds a digest of the password, not the password.
        let key = (
            user.to_string(),
            ring::digest::digest(&ring::digest::SHA256, password.as_bytes())
                .as_ref()
                .to_vec(),
        );
        {
            let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = verified.get(&key)
                && entry.stored_key == credential.stored_key
                && entry.at.elapsed() < VERIFIED_FOR
            {
                return true;
            }
        }
        let (checked, candidate) = (credential.clone(), password.to_string());
        let verified =
            tokio::task::spawn_blocking(move || checked.verify_password(&candidate)).await;
        if !verified.unwrap_or(false) {
            return false;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(
            key,
            Verified {
                stored_key: credential.stored_key,
                at: Instant::now(),
            },
        );
        true
    }
}

/// Wraps the client listener's router: a call without valid credentials (or a verified client
/// certificate) is answered `UNAUTHENTICATED` before any handler (zero-copy routes included)
/// sees it; every call that passes carries its [`Caller`] (and, when it proved a user, its
/// [`Principal`]) in its extensions.
#[derive(Clone)]
pub struct AuthenticationLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthenticationLayer {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> tower_layer::Layer<S> for AuthenticationLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Authenticated<S> {
        Authenticated {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

type Body = tonic::body::Body;

impl<S> tower_service::Service<http::Request<Body>> for Authenticated<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let peer = request.extensions().get::<strata_tls::PeerInfo>();
        let source = peer.map_or(IpAddr::from([0, 0, 0, 0]), |peer| peer.remote_addr.ip());
        // Health checks and reflection (the API's schema) carry no data: probes and generic
        // tools reach them without credentials.
        let open_to_all = ["/grpc.health.v1.", "/grpc.reflection."]
            .iter()
            .any(|prefix| request.uri().path().starts_with(prefix));
        if !self.authenticator.required() || open_to_all {
            request.extensions_mut().insert(Caller::anonymous(source));
            return Box::pin(self.inner.call(request));
        }
        let certificate_user = peer
            .and_then(|peer| peer.client_certificates.as_deref())
            .and_then(strata_tls::certificate_user);
        // The service that was polled ready goes into the future; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            // Credentials, when sent, say who the caller is; a verified client certificate
            // speaks for a caller that sends none.
            let authenticated = match (header, certificate_user) {
                (None, Some(user)) => Ok(Principal { user }),
                (header, _) => authenticator.basic(header.as_deref(), source).await,
            };
            match authenticated {
                Ok(principal) => {
                    request
                        .extensions_mut()
                        .insert(Caller::user(&principal.user, source));
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                // With the Kafka code, as every refusal carries one, so clients tell a wrong
                // password from a server fault.
                Err(refusal) => Ok(crate::grpc::status::to_status(crate::PartitionError::new(
                    strata_common::ErrorCode::SaslAuthenticationFailed,
                    refusal.to_string(),
                ))
                .into_http()),
            }
        })
    }
}
