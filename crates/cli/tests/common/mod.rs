//! Helpers shared by the tests that run a real cluster: `strata server` processes on loopback
//! (`cluster_faults.rs`, `group_faults.rs`, `share_faults.rs`) or containers (`compose.rs`).

#![allow(dead_code)]

pub mod compose;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strata_client::{Admin, AdminConfig, Consumer, ConsumerConfig, ConsumerRecord, TopicPartition};

pub struct Node {
    pub id: i32,
    /// The client listener.
    pub address: String,
    /// The internal listener, which `--voters` names: replication and Raft.
    pub internal_address: String,
    /// The Kafka listener, for tests that drive the node with Kafka clients.
    pub kafka_address: Option<String>,
    /// The HTTP admin listener (metrics, probes).
    pub http_address: Option<String>,
    pub child: Option<Child>,
}

impl Node {
    /// Starts (or restarts) this node's `strata server`.
    pub fn start(&mut self, voters: &str, data_dir: &Path) {
        self.child = Some(spawn(
            self.id,
            &self.address,
            self.kafka_address.as_deref(),
            self.http_address.as_deref(),
            voters,
            data_dir,
        ));
    }

    /// Whether the process is still running (a test or a scenario may have killed it).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

/// Sends `signal` (`-STOP`, `-KILL`, ...) to `child`.
pub fn send_signal(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid} failed");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn spawn(
    id: i32,
    address: &str,
    kafka_address: Option<&str>,
    http_address: Option<&str>,
    voters: &str,
    data_dir: &Path,
) -> Child {
    let log = std::fs::File::create(data_dir.join(format!("node-{id}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "server",
            "--node-id",
            &id.to_string(),
            "--listen",
            address,
            "--voters",
            voters,
        ])
        .args(
            kafka_address
                .map(|kafka| vec!["--kafka-listen", kafka])
                .unwrap_or_default(),
        )
        .args(
            http_address
                .map(|http| vec!["--http-listen", http])
                .unwrap_or_default(),
        )
        .arg("--data-dir")
        .arg(data_dir.join(format!("node-{id}")))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("strata server starts")
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` until it returns `Some`, at most `limit`; the poll interval is not a guess at
/// how long anything takes, only how often to look.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn admin(bootstrap: &str) -> Admin {
    Admin::connect(
        AdminConfig::builder()
            .bootstrap(bootstrap)
            .request_timeout_ms(5_000)
            .build()
            .unwrap(),
    )
    .await
    .unwrap()
}

pub fn survivors(nodes: &[Node]) -> String {
    nodes
        .iter()
        .filter(|node| node.child.is_some())
        .map(|node| node.address.clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// Starts three `strata server` processes that name each other as voters and waits until all
/// three brokers are registered and unfenced. Returns the nodes and the `--voters` value.
pub async fn start_cluster(data_dir: &Path) -> (Vec<Node>, String) {
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| Node {
            id,
            address: format!("127.0.0.1:{}", free_port()),
            internal_address: format!("127.0.0.1:{}", free_port()),
            kafka_address: Some(format!("127.0.0.1:{}", free_port())),
            http_address: Some(format!("127.0.0.1:{}", free_port())),
            child: None,
        })
        .collect();
    let voters = nodes
        .iter()
        .map(|node| format!("{}@{}", node.id, node.internal_address))
        .collect::<Vec<_>>()
        .join(",");
    for node in &mut nodes {
        node.start(&voters, data_dir);
    }
    let bootstrap = survivors(&nodes);
    eventually("three live brokers", Duration::from_secs(60), async || {
        let admin = Admin::connect(
            AdminConfig::builder()
                .bootstrap(&bootstrap)
                .request_timeout_ms(2_000)
                .build()
                .unwrap(),
        )
        .await
        .ok()?;
        let cluster = admin.describe_cluster().await.ok()?;
        (cluster
            .brokers
            .iter()
            .filter(|broker| !broker.fenced)
            .count()
            == 3)
            .then_some(())
    })
    .await;
    (nodes, voters)
}

/// An admin client with a 5 s request timeout.
pub async fn try_admin(bootstrap: &str) -> strata_client::Result<Admin> {
    Admin::connect(
        AdminConfig::builder()
            .bootstrap(bootstrap)
            .request_timeout_ms(5_000)
            .build()?,
    )
    .await
}

/// Reads `partitions` partitions of `topic` from the beginning through `bootstrap` and checks
/// that every acknowledged `(key, "key:index")` record is there exactly once, that nothing is
/// there twice, and that each key's records are in the order they were sent. Gives up after
/// `limit`. Returns how many distinct records it read.
pub async fn assert_exactly_once_in_key_order(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    acknowledged: &[(String, String)],
    limit: Duration,
) -> usize {
    let mut consumer = consumer_from_beginning(bootstrap, topic, partitions).await;
    let mut read = KeyedReads::default();
    let deadline = Instant::now() + limit;
    while !read.has_all(acknowledged) {
        assert!(
            Instant::now() < deadline,
            "acknowledged records are missing: {} records read, {} acknowledged",
            read.distinct(),
            acknowledged.len()
        );
        for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            read.add(&record);
        }
    }
    read.assert_once_each_in_key_order();
    read.distinct()
}

/// A consumer assigned every one of `partitions` partitions of `topic`, at their beginnings.
pub async fn consumer_from_beginning(bootstrap: &str, topic: &str, partitions: i32) -> Consumer {
    let mut consumer = Consumer::connect(
        ConsumerConfig::builder()
            .bootstrap(bootstrap)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let partitions: Vec<TopicPartition> = (0..partitions)
        .map(|partition| TopicPartition::new(topic, partition))
        .collect();
    consumer.assign(partitions.clone()).unwrap();
    consumer.seek_to_beginning(&partitions).await.unwrap();
    consumer
}

/// Tails `partitions` partitions of `topic` from the beginning until it has read every record
/// of `acknowledged`, once that is known, failing `limit` after it became known. Retriable
/// errors (a killed leader) are retried inside `poll`; one that outlasts a poll is retried by
/// the next.
pub fn spawn_tailing_consumer(
    bootstrap: String,
    topic: &'static str,
    partitions: i32,
    mut acknowledged: tokio::sync::watch::Receiver<Option<Vec<(String, String)>>>,
    limit: Duration,
) -> tokio::task::JoinHandle<KeyedReads> {
    tokio::spawn(async move {
        let mut consumer = consumer_from_beginning(&bootstrap, topic, partitions).await;
        let mut read = KeyedReads::default();
        let mut deadline = None;
        let mut last_error = None;
        loop {
            // Bounded: the producing side always sends the acknowledged records in the end.
            if deadline.is_none() && acknowledged.borrow_and_update().is_some() {
                deadline = Some(Instant::now() + limit);
            }
            if let Some(deadline) = deadline {
                let acknowledged = acknowledged.borrow();
                let acknowledged = acknowledged.as_deref().expect("set with the deadline");
                if read.has_all(acknowledged) {
                    return read;
                }
                assert!(
                    Instant::now() < deadline,
                    "the tailing consumer is missing acknowledged records: {} read, {} \
                     acknowledged; last poll error: {last_error:?}",
                    read.distinct(),
                    acknowledged.len()
                );
            }
            match consumer.poll(Duration::from_millis(500)).await {
                Ok(records) => records.iter().for_each(|record| read.add(record)),
                Err(error) => last_error = Some(error.to_string()),
            }
        }
    })
}

/// What a consumer read of records keyed `key-N` with values `key-N:INDEX`, where each key's
/// indexes were sent in increasing order.
#[derive(Default)]
pub struct KeyedReads {
    /// How often each value was read.
    seen: HashMap<String, usize>,
    /// Each key's indexes in the order they were read.
    order: BTreeMap<String, Vec<usize>>,
}

impl KeyedReads {
    pub fn add(&mut self, record: &ConsumerRecord) {
        let value = String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap();
        let key = String::from_utf8(record.key.clone().unwrap().to_vec()).unwrap();
        let index: usize = value.rsplit(':').next().unwrap().parse().unwrap();
        *self.seen.entry(value).or_default() += 1;
        self.order.entry(key).or_default().push(index);
    }

    pub fn has_all(&self, acknowledged: &[(String, String)]) -> bool {
        acknowledged
            .iter()
            .all(|(_, value)| self.seen.contains_key(value))
    }

    /// Distinct values read.
    pub fn distinct(&self) -> usize {
        self.seen.len()
    }

    pub fn assert_once_each_in_key_order(&self) {
        let duplicated: Vec<&String> = self
            .seen
            .iter()
            .filter(|&(_, &count)| count > 1)
            .map(|(value, _)| value)
            .take(5)
            .collect();
        assert!(
            duplicated.is_empty(),
            "an idempotent producer writes each record once, but these were read more than \
             once: {duplicated:?}"
        );
        for (key, indexes) in &self.order {
            assert!(
                indexes.windows(2).all(|pair| pair[0] < pair[1]),
                "records of {key} are out of order: {indexes:?}"
            );
        }
    }
}

/// The body of `GET path` from `address` (an HTTP/1.1 server: a node's admin listener,
/// Prometheus) when it answers 200.
pub fn http_get(address: &str, path: &str) -> Option<String> {
    let response = http(address, "GET", path, &[], "")?;
    (response.status == 200).then_some(response.body)
}

/// An HTTP response as the tests read it.
pub struct HttpResponse {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// `method path` on `address` with `headers`, and `form` as an urlencoded body unless empty;
/// `None` when the server does not answer. One request per connection, so the body ends where
/// the stream does.
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: &str,
) -> Option<HttpResponse> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream
        .write_all(request_text(address, method, path, headers, form).as_bytes())
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    parse_response(&response)
}

/// [`http`] over TLS, trusting the servers `tls` trusts: a node's HTTP admin listener when the
/// node has TLS.
pub async fn https(
    tls: &strata_client::ClientTls,
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: &str,
) -> Option<HttpResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (host, port) = address.rsplit_once(':')?;
    let mut stream = tls.connect(host, port.parse().ok()?).await.ok()?;
    stream
        .write_all(request_text(address, method, path, headers, form).as_bytes())
        .await
        .ok()?;
    let mut response = Vec::new();
    // A server may close without TLS's close_notify after `Connection: close`; what it sent
    // before is the whole response.
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response)).await;
    parse_response(&String::from_utf8_lossy(&response))
}

/// One HTTP/1.1 request that asks the server to close the connection after its answer.
fn request_text(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: &str,
) -> String {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !form.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            form.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(form);
    request
}

fn parse_response(response: &str) -> Option<HttpResponse> {
    let (head, body) = response.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Some(HttpResponse {
        status,
        headers,
        body: body.to_string(),
    })
}

/// The repository's root, where `tests/` holds the install scripts.
pub fn repository() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `tests/<script>` with `arguments`, and returns the `name=value` pairs of the line it
/// prints when what it installs is there; otherwise prints one `SKIPPED:` line saying why (its
/// `missing: ...` line) and returns `None`, for the test to return.
pub fn installed(script: &str, arguments: &[&Path]) -> Option<BTreeMap<String, String>> {
    let output = Command::new(repository().join("tests").join(script))
        .args(arguments)
        .output();
    let stdout = match output {
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(error) => {
            eprintln!("SKIPPED: tests/{script} did not run: {error}");
            return None;
        }
    };
    if let Some(reason) = stdout
        .lines()
        .find_map(|line| line.strip_prefix("missing: "))
    {
        eprintln!("SKIPPED: {reason}");
        return None;
    }
    let found: BTreeMap<String, String> = stdout
        .lines()
        .flat_map(str::split_whitespace)
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    if found.is_empty() {
        eprintln!("SKIPPED: tests/{script} said nothing");
        return None;
    }
    Some(found)
}
