//! The accept and connect halves against each other over loopback, with certificates from the
//! dev CA: who gets in, who is refused, and that a refused or stalled client harms no one else.

use std::path::Path;
use std::time::{Duration, Instant};

use strata_tls::dev_certs::{self, DevCa};
use strata_tls::{ClientAuth, ClientTls, IdentityFiles, ServerTls, TlsListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;

const WAIT: Duration = Duration::from_secs(20);

/// Starts a listener that echoes one line per connection, prefixed with the client certificate
/// count it saw, and returns its port.
async fn echo_server(tls: &ServerTls) -> u16 {
    echo_server_on("127.0.0.1", tls).await
}

async fn echo_server_on(address: &str, tls: &ServerTls) -> u16 {
    let listener = TcpListener::bind((address, 0)).await.unwrap();
    let listener = TlsListener::new(listener, Some(tls), &[]).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut incoming = Box::pin(listener.into_incoming());
    tokio::spawn(async move {
        while let Some(Ok(mut stream)) = incoming.next().await {
            tokio::spawn(async move {
                let certificates = stream.client_certificates().map_or(0, |chain| chain.len());
                let mut buf = [0u8; 64];
                let read = stream.read(&mut buf).await.unwrap_or(0);
                let mut answer = format!("{certificates}:").into_bytes();
                answer.extend_from_slice(&buf[..read]);
                let _ = stream.write_all(&answer).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

async fn round_trip(client: &ClientTls, host: &str, port: u16) -> std::io::Result<String> {
    let mut stream = client.connect(host, port).await?;
    stream.write_all(b"ping").await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

struct Pki {
    _dir: tempfile::TempDir,
    files: dev_certs::ClusterFiles,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let files = dev_certs::write_cluster(dir.path(), 1, &[], "alice").unwrap();
    Pki { _dir: dir, files }
}

fn foreign_ca(dir: &Path) -> (std::path::PathBuf, IdentityFiles) {
    let ca = DevCa::new("someone else's CA").unwrap();
    let ca_path = dir.join("foreign-ca.pem");
    std::fs::write(&ca_path, ca.certificate_pem()).unwrap();
    let client =
        dev_certs::write_identity(dir, "foreign-client", &ca.issue_client("mallory").unwrap())
            .unwrap();
    (ca_path, client)
}

#[tokio::test]
async fn a_client_trusting_the_ca_gets_through_by_name_and_by_ip() {
    let pki = pki();
    let server = ServerTls::new(&pki.files.nodes[0], None, ClientAuth::None).unwrap();
    let port = echo_server(&server).await;
    let client = ClientTls::new(&pki.files.ca, None).unwrap();
    assert_eq!(
        round_trip(&client, "localhost", port).await.unwrap(),
        "0:ping"
    );
    assert_eq!(
        round_trip(&client, "127.0.0.1", port).await.unwrap(),
        "0:ping"
    );
}

#[tokio::test]
async fn a_server_from_another_ca_or_under_another_name_is_not_trusted() {
    let pki = pki();
    let server = ServerTls::new(&pki.files.nodes[0], None, ClientAuth::None).unwrap();
    let port = echo_server(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let (foreign_ca, _) = foreign_ca(dir.path());
    let error = round_trip(
        &ClientTls::new(&foreign_ca, None).unwrap(),
        "127.0.0.1",
        port,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    // 127.0.0.2 is loopback too, but not an address the certificate was issued for.
    let client = ClientTls::new(&pki.files.ca, None).unwrap();
    let misnamed_port = echo_server_on("127.0.0.2", &server).await;
    let error = round_trip(&client, "127.0.0.2", misnamed_port)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not valid for name"), "{error}");
    // The refusals cost the server nothing.
    assert_eq!(
        round_trip(&client, "localhost", port).await.unwrap(),
        "0:ping"
    );
}

#[tokio::test]
async fn garbage_and_stalled_handshakes_leave_other_clients_served() {
    let pki = pki();
    let server = ServerTls::new(&pki.files.nodes[0], None, ClientAuth::None).unwrap();
    let port = echo_server(&server).await;
    // One client opens a socket and says nothing; the handshake it owes is its own task's wait.
    let _stalled = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // Another speaks plaintext HTTP at the TLS port: it gets an alert or a closed socket.
    let mut garbage = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, garbage.read_to_end(&mut answer))
        .await
        .expect("the server closes a connection that is not TLS")
        .ok();
    assert!(!answer.starts_with(b"0:"), "garbage was served: {answer:?}");
    let client = ClientTls::new(&pki.files.ca, None).unwrap();
    assert_eq!(
        round_trip(&client, "localhost", port).await.unwrap(),
        "0:ping"
    );
}

#[tokio::test]
async fn required_client_certificates_admit_only_the_cas_clients() {
    let pki = pki();
    let server = ServerTls::new(
        &pki.files.nodes[0],
        Some(&pki.files.client_ca),
        ClientAuth::Required,
    )
    .unwrap();
    let port = echo_server(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, foreign_client) = foreign_ca(dir.path());

    let with_certificate = ClientTls::new(&pki.files.ca, Some(&pki.files.client)).unwrap();
    assert_eq!(
        round_trip(&with_certificate, "localhost", port)
            .await
            .unwrap(),
        "1:ping"
    );
    // TLS 1.3 finishes the client's side of the handshake before the server has checked the
    // certificate, so a refusal shows up as the first read failing or finding nothing.
    for refused in [
        ClientTls::new(&pki.files.ca, None).unwrap(),
        ClientTls::new(&pki.files.ca, Some(&foreign_client)).unwrap(),
    ] {
        match round_trip(&refused, "localhost", port).await {
            Err(_) => {}
            Ok(answer) => assert!(answer.is_empty(), "served without a valid certificate"),
        }
    }
}

#[tokio::test]
async fn optional_client_certificates_admit_clients_without_one() {
    let pki = pki();
    let server = ServerTls::new(
        &pki.files.nodes[0],
        Some(&pki.files.client_ca),
        ClientAuth::Optional,
    )
    .unwrap();
    let port = echo_server(&server).await;
    let anonymous = ClientTls::new(&pki.files.ca, None).unwrap();
    assert_eq!(
        round_trip(&anonymous, "localhost", port).await.unwrap(),
        "0:ping"
    );
    let with_certificate = ClientTls::new(&pki.files.ca, Some(&pki.files.client)).unwrap();
    assert_eq!(
        round_trip(&with_certificate, "localhost", port)
            .await
            .unwrap(),
        "1:ping"
    );
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let pki = pki();
    let node = &pki.files.nodes[0];
    let server = ServerTls::new(node, None, ClientAuth::None).unwrap();
    let port = echo_server(&server).await;
    let client = ClientTls::new(&pki.files.ca, None).unwrap();
    assert_eq!(
        round_trip(&client, "localhost", port).await.unwrap(),
        "0:ping"
    );

    // Renew under a CA the client does not trust yet: being refused proves the new file is the
    // one served, and trusting the new CA proves the server still works with it.
    let dir = tempfile::tempdir().unwrap();
    let renewing_ca = DevCa::new("renewing CA").unwrap();
    let renewing_ca_path = dir.path().join("renewing-ca.pem");
    std::fs::write(&renewing_ca_path, renewing_ca.certificate_pem()).unwrap();
    let renewed = renewing_ca
        .issue_node("strata-node-1", &["localhost".to_string()])
        .unwrap();
    std::fs::write(&node.certificate, &renewed.certificate).unwrap();
    std::fs::write(&node.key, &renewed.key).unwrap();

    let renewed_client = ClientTls::new(&renewing_ca_path, None).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match round_trip(&renewed_client, "localhost", port).await {
            Ok(answer) => {
                assert_eq!(answer, "0:ping");
                break;
            }
            Err(error) => assert!(
                Instant::now() < deadline,
                "the renewed certificate was never served: {error}"
            ),
        }
        tokio::task::yield_now().await;
    }
    // A client with no session to resume now meets the renewed certificate, which its CA did
    // not sign.
    let fresh_client = ClientTls::new(&pki.files.ca, None).unwrap();
    assert!(round_trip(&fresh_client, "localhost", port).await.is_err());
}

#[tokio::test]
async fn a_half_written_renewal_keeps_the_previous_certificate() {
    let pki = pki();
    let node = &pki.files.nodes[0];
    let server = ServerTls::new(node, None, ClientAuth::None).unwrap();
    let port = echo_server(&server).await;
    let client = ClientTls::new(&pki.files.ca, None).unwrap();
    // A new certificate without its key yet: it does not load, so the old pair stays.
    let other = DevCa::new("other")
        .unwrap()
        .issue_node("strata-node-1", &["localhost".to_string()])
        .unwrap();
    std::fs::write(&node.certificate, &other.certificate).unwrap();
    // Several handshakes across more than the check interval all get the old certificate.
    let until = Instant::now() + Duration::from_millis(2_500);
    while Instant::now() < until {
        assert_eq!(
            round_trip(&client, "localhost", port).await.unwrap(),
            "0:ping"
        );
    }
}

#[test]
fn bad_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = IdentityFiles {
        certificate: dir.path().join("nope.pem"),
        key: dir.path().join("nope-key.pem"),
    };
    let error = ServerTls::new(&missing, None, ClientAuth::None).unwrap_err();
    assert!(error.to_string().contains("nope.pem"), "{error}");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not pem at all").unwrap();
    let error = ClientTls::new(&empty, None).unwrap_err();
    assert!(error.to_string().contains("empty.pem"), "{error}");

    let pki = pki();
    let swapped = IdentityFiles {
        certificate: pki.files.nodes[0].certificate.clone(),
        key: pki.files.client.key.clone(),
    };
    let error = ServerTls::new(&swapped, None, ClientAuth::None).unwrap_err();
    assert!(error.to_string().contains("does not go with"), "{error}");

    let error = ServerTls::new(&pki.files.nodes[0], None, ClientAuth::Required).unwrap_err();
    assert!(error.to_string().contains("no CA file"), "{error}");
}

#[test]
fn a_client_certificate_names_its_user() {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pki = pki();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&pki.files.client.certificate)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(
        strata_tls::certificate_user(&chain).as_deref(),
        Some("alice")
    );
    assert_eq!(strata_tls::certificate_user(&[]), None);
}
