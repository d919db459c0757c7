//! The server half: accepting connections, with or without TLS, without letting one slow
//! handshake hold up the rest.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::{ServerTls, TlsError};

/// How long a client may take to finish its handshake before its socket is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (out of file descriptors, most likely) so the loop does not
/// spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Accepted connections not yet picked up by the server; beyond this, handshakes wait.
const ACCEPTED_BACKLOG: usize = 128;

/// A bound socket that hands out connections, wrapped in TLS when the listener has it.
pub struct TlsListener {
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
}

impl TlsListener {
    /// `tls` of `None` serves plaintext; `alpn` is what a TLS listener offers (`[ALPN_H2]` for
    /// gRPC, nothing for Kafka).
    pub fn new(
        listener: TcpListener,
        tls: Option<&ServerTls>,
        alpn: &[&[u8]],
    ) -> Result<Self, TlsError> {
        let acceptor = match tls {
            Some(tls) => Some(TlsAcceptor::from(tls.config(alpn)?)),
            None => None,
        };
        Ok(Self { listener, acceptor })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Waits for the next TCP connection. The handshake is left to [`Accepted::establish`], so
    /// the caller can run it in the connection's own task.
    pub async fn accept(&self) -> io::Result<Accepted> {
        let (tcp, peer) = self.listener.accept().await?;
        // Requests and responses are whole frames written at once; Nagle would only delay them.
        tcp.set_nodelay(true)?;
        Ok(Accepted {
            tcp,
            peer,
            acceptor: self.acceptor.clone(),
        })
    }

    /// Connections for a tonic server's `serve_with_incoming*`: each handshake runs in its own
    /// task, and only established connections come out. Failed handshakes are logged and
    /// dropped. Accepting stops, and the port is released, once the stream is dropped.
    pub fn into_incoming(
        self,
    ) -> impl tokio_stream::Stream<Item = io::Result<MaybeTlsStream>> + Send + 'static {
        let (sender, receiver) = mpsc::channel(ACCEPTED_BACKLOG);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = sender.closed() => return,
                    accepted = self.accept() => accepted,
                };
                let accepted = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "could not accept a connection");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                        continue;
                    }
                };
                let sender = sender.clone();
                tokio::spawn(async move {
                    if let Some(stream) = accepted.establish().await {
                        // A closed receiver means the server is shutting down; the connection
                        // is dropped with it.
                        let _ = sender.send(Ok(stream)).await;
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(receiver)
    }
}

/// A TCP connection whose TLS handshake, if any, has not run yet.
pub struct Accepted {
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
}

impl Accepted {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Runs the handshake (bounded by `HANDSHAKE_TIMEOUT`); `None` when it failed, which is
    /// logged here with the peer's address.
    pub async fn establish(self) -> Option<MaybeTlsStream> {
        let peer = self.peer;
        let Some(acceptor) = self.acceptor else {
            return Some(MaybeTlsStream {
                inner: Inner::Plain(self.tcp),
                peer,
            });
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(self.tcp)).await {
            Ok(Ok(stream)) => Some(MaybeTlsStream {
                inner: Inner::Tls(Box::new(stream)),
                peer,
            }),
            Ok(Err(error)) => {
                // Port scanners and health probes that open and close a socket end here too,
                // so an EOF before any byte is not worth a warning.
                if error.kind() == io::ErrorKind::UnexpectedEof {
                    debug!(%peer, %error, "connection closed before its TLS handshake");
                } else {
                    warn!(%peer, %error, "TLS handshake refused");
                }
                None
            }
            Err(_) => {
                warn!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake not finished in time; connection closed");
                None
            }
        }
    }
}

/// A server-side connection, plaintext or TLS.
pub struct MaybeTlsStream {
    inner: Inner,
    peer: SocketAddr,
}

enum Inner {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl MaybeTlsStream {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// The certificate chain the client presented and the CA verified, leaf first.
    pub fn client_certificates(&self) -> Option<Arc<[CertificateDer<'static>]>> {
        match &self.inner {
            Inner::Plain(_) => None,
            Inner::Tls(stream) => stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect()),
        }
    }
}

/// What a gRPC handler can learn about the connection its request came on, from the request's
/// extensions.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub remote_addr: SocketAddr,
    pub tls: bool,
    pub client_certificates: Option<Arc<[CertificateDer<'static>]>>,
}

impl tonic::transport::server::Connected for MaybeTlsStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        PeerInfo {
            remote_addr: self.peer,
            tls: self.is_tls(),
            client_certificates: self.client_certificates(),
        }
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(stream) => Pin::new(stream).poll_read(context, buf),
            Inner::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Plain(stream) => Pin::new(stream).poll_write(context, buf),
            Inner::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Plain(stream) => Pin::new(stream).poll_write_vectored(context, bufs),
            Inner::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(context, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(stream) => stream.is_write_vectored(),
            Inner::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(stream) => Pin::new(stream).poll_flush(context),
            Inner::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(stream) => Pin::new(stream).poll_shutdown(context),
            Inner::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}
