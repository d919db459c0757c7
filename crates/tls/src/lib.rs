//! TLS for every Strata listener and every connection a node or client opens.
//!
//! One place decides how Strata speaks TLS, so the three listeners (client gRPC, internal gRPC,
//! Kafka) and the five kinds of outgoing connection (clients to brokers, replica fetches, Raft and
//! forwarded controller calls, records forwarded to leaders, group lookups) cannot drift apart:
//!
//! - **Identities are PEM files** (a certificate chain and its private key) read by path.
//!   [`ReloadingIdentity`] re-reads them when they change on disk, checked at most once a second
//!   on a handshake, so a renewed certificate is served to the next connection without a
//!   restart. A half-written or mismatched pair is logged and the previous identity kept, since
//!   refusing every handshake because a renewal is in progress would turn a rotation into an
//!   outage.
//! - **Trust is a CA bundle** (PEM). Servers verify client certificates against it when mutual
//!   TLS is asked for ([`ClientAuth`]); clients verify servers against it, by the host name or IP
//!   address they dialled. There is no fallback to system roots: a cluster names its CA.
//! - **Accepting** ([`TlsListener`]) runs each handshake in a task of its own with a deadline, so
//!   a client that stalls or sends garbage mid-handshake holds only its own socket; the failure is
//!   logged with the peer's address and the connection closed. The same listener type serves
//!   plaintext when no TLS is configured, so callers have one code path.
//! - **Connecting** ([`ClientTls`]) plugs into tonic as a connector; gRPC over TLS negotiates
//!   `h2` by ALPN as every gRPC implementation expects.
//!
//! ring is the only crypto provider compiled in; configurations name it explicitly instead of
//! relying on a process-wide default.

mod accept;
mod connect;
pub mod dev_certs;
mod identity;
mod pem;

pub use accept::{MaybeTlsStream, PeerInfo, TlsListener};
pub use connect::{ClientTls, TlsConnector, channel, lazy_channel};
pub use identity::ReloadingIdentity;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// ALPN protocol id of HTTP/2, which gRPC requires over TLS.
pub const ALPN_H2: &[u8] = b"h2";

/// A certificate chain and the private key that goes with it, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// Whether a server asks connecting clients for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A certificate is asked for and verified if sent; clients without one still connect.
    Optional,
    /// A client without a certificate signed by the CA is refused in the handshake.
    Required,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoPrivateKey { path: PathBuf },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("client certificates were asked for ({0:?}) but no CA file names who may sign them")]
    ClientAuthWithoutCa(ClientAuth),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider every configuration here is built with.
///
/// rustls now steers toward aws-lc-rs for its post-quantum key exchange; ring is kept because it
/// builds from the crate alone on every machine the project targets (aws-lc-rs adds a large C
/// build to a two-core CI). Switching is this one function plus the features in Cargo.toml.
///
/// AES-128-GCM comes first: it is as safe as AES-256-GCM for this use and costs fewer rounds per
/// block, which shows when a replay streams gigabytes through one core. Servers choose by their
/// own order (`ignore_client_order`), so clients that prefer AES-256 get AES-128 too.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(provider)
}

/// What a server needs to speak TLS: its identity, and whom it trusts to sign client
/// certificates.
#[derive(Clone, Debug)]
pub struct ServerTls {
    identity: Arc<ReloadingIdentity>,
    client_verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl ServerTls {
    /// Loads `identity` now (so a bad path fails at startup, not at the first handshake) and the
    /// CA bundle when client certificates are asked for.
    pub fn new(
        identity: &IdentityFiles,
        client_ca: Option<&Path>,
        client_auth: ClientAuth,
    ) -> Result<Self, TlsError> {
        let identity = Arc::new(ReloadingIdentity::load(identity.clone())?);
        let client_verifier = match (client_auth, client_ca) {
            (ClientAuth::None, _) => rustls::server::WebPkiClientVerifier::no_client_auth(),
            (auth, None) => return Err(TlsError::ClientAuthWithoutCa(auth)),
            (auth, Some(ca)) => {
                let roots = Arc::new(pem::root_store(ca)?);
                let builder =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider());
                let builder = if auth == ClientAuth::Optional {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                builder.build().map_err(|error| TlsError::Invalid {
                    path: ca.to_path_buf(),
                    message: error.to_string(),
                })?
            }
        };
        Ok(Self {
            identity,
            client_verifier,
        })
    }

    /// A server configuration offering `alpn` (empty for protocols without ALPN, such as
    /// Kafka's).
    pub fn config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?
            .with_client_cert_verifier(self.client_verifier.clone())
            .with_cert_resolver(self.identity.clone());
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }
}

/// The user a verified client certificate chain (leaf first) names: the leaf's subject common
/// name (CN), the part of the subject that `strata certs create` and most PKIs put the user in.
/// `None` when the chain is empty, or its leaf does not parse or has no CN.
pub fn certificate_user(chain: &[rustls_pki_types::CertificateDer<'_>]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
    let common_name = parsed.subject().iter_common_name().next()?;
    let name = common_name.as_str().ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}
