//! The client half: TLS connections to a listener, for tonic channels and for anything else that
//! needs a byte stream.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use crate::{ALPN_H2, IdentityFiles, ReloadingIdentity, TlsError, pem, provider};

/// How a client speaks TLS: the CA it trusts servers by, and optionally its own certificate for
/// servers that ask for one (mutual TLS). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    pub fn new(ca: &Path, identity: Option<&IdentityFiles>) -> Result<Self, TlsError> {
        let roots = pem::root_store(ca)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some(identity) => builder
                .with_client_cert_resolver(Arc::new(ReloadingIdentity::load(identity.clone())?)),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Dials `host:port` and runs the handshake, verifying the server's certificate against
    /// `host` (a DNS name or an IP address).
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        // An IPv6 literal comes out of a URI in brackets; the name to verify has none.
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(name.to_string()).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("'{host}' is not a host name TLS can verify: {error}"),
            )
        })?;
        let tcp = TcpStream::connect((name, port)).await?;
        tcp.set_nodelay(true)?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(server_name, tcp)
            .await
    }

    /// A channel to `endpoint` (given as `http://host:port`; the TLS is this connector's, not
    /// tonic's) that connects on first use.
    pub fn lazy_channel(&self, endpoint: Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(TlsConnector { tls: self.clone() })
    }

    /// A channel to `endpoint`, connected now.
    pub async fn channel(&self, endpoint: Endpoint) -> Result<Channel, tonic::transport::Error> {
        endpoint
            .connect_with_connector(TlsConnector { tls: self.clone() })
            .await
    }
}

/// Opens a tonic channel with TLS when `tls` is given and plaintext otherwise, so callers that
/// may run either way have one line for it.
pub fn lazy_channel(endpoint: Endpoint, tls: Option<&ClientTls>) -> Channel {
    match tls {
        Some(tls) => tls.lazy_channel(endpoint),
        None => endpoint.connect_lazy(),
    }
}

/// The connected form of [`lazy_channel`].
pub async fn channel(
    endpoint: Endpoint,
    tls: Option<&ClientTls>,
) -> Result<Channel, tonic::transport::Error> {
    match tls {
        Some(tls) => tls.channel(endpoint).await,
        None => endpoint.connect().await,
    }
}

/// The tower service tonic calls to open a connection to a URI.
#[derive(Clone, Debug)]
pub struct TlsConnector {
    tls: ClientTls,
}

type Connecting = Pin<
    Box<
        dyn Future<Output = io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>> + Send,
    >,
>;

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let tls = self.tls.clone();
        Box::pin(async move {
            let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("'{uri}' names no host and port"),
                ));
            };
            Ok(TokioIo::new(tls.connect(host, port).await?))
        })
    }
}
