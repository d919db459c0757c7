//! A TCP relay that can make every connection it carries so far go silent.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Sits in front of a server and relays each connection to it. `silence_existing_connections`
/// leaves the connections open but passes nothing on, in either direction: how a connection
/// looks when the peer's host vanished without a reset, or a NAT or firewall forgot it.
/// Connections opened later relay normally, as they would to a peer that is reachable again.
pub struct SilencingRelay {
    address: String,
    listener: Option<TcpListener>,
    generation: Arc<watch::Sender<u64>>,
}

impl SilencingRelay {
    /// Binds a free loopback port; nothing is relayed until [`SilencingRelay::forward_to`], so
    /// the server behind it can be told this address before it starts.
    pub async fn bind() -> SilencingRelay {
        let (listener, address) = crate::bind_loopback().await;
        SilencingRelay {
            address,
            listener: Some(listener),
            generation: Arc::new(watch::channel(0).0),
        }
    }

    /// The `host:port` to connect to instead of the server's.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Starts relaying every accepted connection to `upstream`, until the runtime ends.
    pub fn forward_to(&mut self, upstream: SocketAddr) {
        let listener = self
            .listener
            .take()
            .expect("forward_to is called once per relay");
        let generation = self.generation.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let accepted_in = *generation.borrow();
                let mut current = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let silenced = async move {
                        let _ = current
                            .wait_for(|&generation| generation > accepted_in)
                            .await;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        // Both sockets stay open, and nothing more is read from either.
                        () = silenced => std::future::pending::<()>().await,
                    }
                });
            }
        });
    }

    /// Every connection relayed so far stops passing bytes, for good.
    pub fn silence_existing_connections(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }
}
