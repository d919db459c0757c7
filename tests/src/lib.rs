//! Helpers for workspace-level tests, and for crates' integration tests that need the same
//! network tricks. The workspace-level tests themselves live in `tests/`.

pub mod link;
pub mod relay;

/// A listener on a free loopback port, and its `host:port`.
async fn bind_loopback() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener
        .local_addr()
        .expect("a bound socket's address")
        .to_string();
    (listener, address)
}
