//! A network link between two processes that a test can cut and heal, as a network partition
//! does, without privileges: a loopback TCP relay in front of one endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Relays every connection made to [`Link::address`] on to the endpoint behind it.
///
/// [`Link::cut`] makes the link behave as a partitioned network does for TCP: nothing passes in
/// either direction, yet no connection is reset, so each side sees only silence; bytes already
/// sent wait (as unacknowledged segments would) and are delivered once [`Link::heal`] is
/// called; a connection opened during the cut is accepted but reaches the endpoint only after
/// the heal, as a retransmitted SYN would. A stopped or killed endpoint still looks like one:
/// connections to a dead process are closed, to a paused one they hang.
///
/// One `Link` carries one direction of traffic between two nodes (the connections one node
/// opens to the other), so a test makes a one-way or two-way partition by cutting one or both.
pub struct Link {
    address: String,
    open: Arc<watch::Sender<bool>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Binds a free loopback port that relays to `endpoint` while the link is open.
    pub async fn to(endpoint: SocketAddr) -> Link {
        let (listener, address) = crate::bind_loopback().await;
        let open = Arc::new(watch::channel(true).0);
        let accepting = tokio::spawn(accept(listener, endpoint, open.clone()));
        Link {
            address,
            open,
            accepting,
        }
    }

    /// The `host:port` to connect to instead of the endpoint's.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Stops all traffic over the link, in both directions of every connection.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Lets traffic flow again, starting with what waited during the cut.
    pub fn heal(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, endpoint: SocketAddr, open: Arc<watch::Sender<bool>>) {
    while let Ok((inbound, _)) = listener.accept().await {
        let mut open = open.subscribe();
        tokio::spawn(async move {
            if open.wait_for(|&open| open).await.is_err() {
                return;
            }
            // A refused connection closes the inbound one, as the endpoint's host would reset it.
            let Ok(outbound) = TcpStream::connect(endpoint).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (inbound_read, inbound_write) = inbound.into_split();
            let (outbound_read, outbound_write) = outbound.into_split();
            // Either direction ending (a closed or reset socket) ends the relayed connection.
            tokio::select! {
                () = pump(inbound_read, outbound_write, open.clone()) => {}
                () = pump(outbound_read, inbound_write, open) => {}
            }
        });
    }
}

/// Copies `from` to `to` while the link is open; during a cut, holds what it read.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut open: watch::Receiver<bool>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(read) => read,
        };
        if open.wait_for(|&open| open).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
