//! Kafka clients nobody here wrote, against a `strata server` with a Kafka listener: kcat
//! (librdkafka) from Debian, confluent-kafka (librdkafka) and kafka-python from PyPI, installed
//! by `tests/kafka-clients/install.sh` into a venv under Cargo's target directory. The Python
//! side of each scenario is `tests/kafka-clients/scenarios.py`.
//!
//! Where a client cannot be installed the test prints one `SKIPPED:` line saying why and
//! returns; it never passes without having run the client.

mod common;
mod support;

use anyhow::{Result, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use support::{Output, Server, create_topic, free_address, run, run_args};

/// A scenario produces and reads thousands of records through a client that waits for
/// acknowledgements; generous for a loaded two-core machine.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What `install.sh` could provide; installed once per test binary.
struct Clients {
    kcat: Option<PathBuf>,
    python: Option<PathBuf>,
    missing: Vec<String>,
}

fn clients() -> &'static Clients {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    CLIENTS.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kafka-clients-venv");
        let mut clients = Clients {
            kcat: None,
            python: None,
            missing: Vec::new(),
        };
        let installed = Command::new(repository().join("tests/kafka-clients/install.sh"))
            .arg(&venv)
            .output();
        let stdout = match installed {
            Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
            Err(error) => {
                clients.missing.push(format!(
                    "tests/kafka-clients/install.sh did not run: {error}"
                ));
                return clients;
            }
        };
        for line in stdout.lines() {
            if let Some(path) = line.strip_prefix("kcat=") {
                clients.kcat = Some(PathBuf::from(path));
            } else if let Some(path) = line.strip_prefix("python=") {
                clients.python = Some(PathBuf::from(path));
            } else if let Some(reason) = line.strip_prefix("missing: ") {
                clients.missing.push(reason.to_string());
            }
        }
        clients
    })
}

/// The client `which` picks, or `None` after printing why the test is skipped.
fn client(which: fn(&Clients) -> Option<&PathBuf>, name: &str) -> Option<PathBuf> {
    let clients = clients();
    let found = which(clients).cloned();
    if found.is_none() {
        eprintln!(
            "SKIPPED: {name} is not available: {}",
            clients.missing.join("; ")
        );
    }
    found
}

/// A client and a one-node server with a Kafka listener for it.
struct Setup {
    client: PathBuf,
    server: Server,
    /// The Kafka listener's address.
    kafka: String,
    _directory: tempfile::TempDir,
}

/// The client `which` picks and a server, or `None` after printing why the test is skipped.
fn prepare(which: fn(&Clients) -> Option<&PathBuf>, name: &str) -> Result<Option<Setup>> {
    let Some(client) = client(which, name) else {
        return Ok(None);
    };
    let (server, kafka, directory) = kafka_server()?;
    Ok(Some(Setup {
        client,
        server,
        kafka,
        _directory: directory,
    }))
}

/// A one-node server with a Kafka listener, and that listener's address.
fn kafka_server() -> Result<(Server, String, tempfile::TempDir)> {
    let directory = tempfile::tempdir()?;
    let kafka = free_address()?;
    let server = support::start_server_in(
        &directory.path().join("data"),
        &directory.path().join("server.log"),
        &["--kafka-listen", &kafka],
    )?;
    Ok((server, kafka, directory))
}

fn kcat(kcat: &Path, arguments: &[&str], stdin: &str) -> Result<Output> {
    let mut command = Command::new(kcat);
    command.args(arguments);
    let output = run(command, stdin, SCENARIO_TIMEOUT)?;
    ensure!(
        output.status.success(),
        "kcat {arguments:?} failed ({}): {}",
        output.status,
        output.stderr
    );
    Ok(output)
}

fn scenario(python: &Path, arguments: &[&str]) -> Result<Output> {
    let mut command = Command::new(python);
    command
        .arg(repository().join("tests/kafka-clients/scenarios.py"))
        .args(arguments);
    let output = run(command, "", SCENARIO_TIMEOUT)?;
    ensure!(
        output.status.success(),
        "scenario {arguments:?} failed ({}):\n{}\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
    Ok(output)
}

#[test]
fn what_kcat_produces_strata_consumes_and_what_strata_produces_kcat_reads() -> Result<()> {
    let Some(setup) = prepare(|clients| clients.kcat.as_ref(), "kcat")? else {
        return Ok(());
    };
    let (kcat_path, server, kafka) = (&setup.client, &setup.server, &setup.kafka);
    create_topic(&server.address, "doors", "1")?;
    kcat(
        kcat_path,
        &["-b", kafka, "-P", "-t", "doors", "-K", ":"],
        "k1:from kcat\nk2:also kcat\n",
    )?;
    support::produce_lines(&server.address, "doors", "0", "from strata\n")?;
    let consumed = run_args(&[
        "consume",
        "doors",
        "--from-beginning",
        "-e",
        "--format",
        "%k=%v",
        "--bootstrap",
        &server.address,
    ])?;
    ensure!(consumed.status.success(), "{}", consumed.stderr);
    ensure!(
        consumed.stdout.lines().collect::<Vec<_>>()
            == ["k1=from kcat", "k2=also kcat", "=from strata"],
        "strata consume read {:?}",
        consumed.stdout
    );
    let read = kcat(
        kcat_path,
        &[
            "-b",
            kafka,
            "-C",
            "-t",
            "doors",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%o %k=%s\n",
        ],
        "",
    )?;
    ensure!(
        read.stdout.lines().collect::<Vec<_>>()
            == ["0 k1=from kcat", "1 k2=also kcat", "2 =from strata"],
        "kcat read {:?}",
        read.stdout
    );
    Ok(())
}

#[test]
fn kcat_produces_and_consumes_with_every_codec() -> Result<()> {
    let Some(setup) = prepare(|clients| clients.kcat.as_ref(), "kcat")? else {
        return Ok(());
    };
    let (kcat_path, server, kafka) = (&setup.client, &setup.server, &setup.kafka);
    // Enough alike lines that librdkafka's batches are worth compressing (it sends a batch
    // uncompressed when compression would not shrink it).
    let lines: String = (0..500)
        .map(|i| format!("{{\"order\":{i},\"status\":\"shipped\",\"carrier\":\"post\"}}\n"))
        .collect();
    for codec in CODECS {
        let topic = format!("codec-{codec}");
        create_topic(&server.address, &topic, "1")?;
        kcat(
            kcat_path,
            &[
                "-b",
                kafka,
                "-P",
                "-t",
                &topic,
                "-z",
                codec,
                "-X",
                "linger.ms=50",
            ],
            &lines,
        )?;
        let read = kcat(
            kcat_path,
            &[
                "-b",
                kafka,
                "-C",
                "-t",
                &topic,
                "-o",
                "beginning",
                "-e",
                "-q",
            ],
            "",
        )?;
        ensure!(
            read.stdout == lines,
            "{codec}: kcat read back something else"
        );
        let consumed = run_args(&[
            "consume",
            &topic,
            "--from-beginning",
            "-e",
            "--bootstrap",
            &server.address,
        ])?;
        ensure!(consumed.status.success(), "{codec}: {}", consumed.stderr);
        ensure!(
            consumed.stdout == lines,
            "{codec}: strata consume read back something else"
        );
    }
    Ok(())
}

#[test]
fn confluent_kafka_round_trips_every_codec_with_an_idempotent_producer() -> Result<()> {
    let Some(setup) = prepare(|clients| clients.python.as_ref(), "confluent-kafka")? else {
        return Ok(());
    };
    let (python, server, kafka) = (&setup.client, &setup.server, &setup.kafka);
    for codec in CODECS {
        let topic = format!("confluent-{codec}");
        create_topic(&server.address, &topic, "3")?;
        scenario(python, &["roundtrip", kafka, &topic, "3", "2000", codec])?;
    }
    Ok(())
}

#[test]
fn kafka_python_round_trips_records() -> Result<()> {
    let Some(setup) = prepare(|clients| clients.python.as_ref(), "kafka-python")? else {
        return Ok(());
    };
    let (python, server, kafka) = (&setup.client, &setup.server, &setup.kafka);
    // kafka-python compresses gzip with the standard library; the other codecs need packages
    // of their own, which the confluent-kafka test covers through librdkafka.
    for codec in ["none", "gzip"] {
        let topic = format!("kafka-python-{codec}");
        create_topic(&server.address, &topic, "1")?;
        scenario(
            python,
            &["kafka-python-roundtrip", kafka, &topic, "500", codec],
        )?;
    }
    Ok(())
}

#[test]
fn confluent_kafka_reads_from_an_offset_and_from_a_timestamp() -> Result<()> {
    let Some(setup) = prepare(|clients| clients.python.as_ref(), "confluent-kafka")? else {
        return Ok(());
    };
    let (python, server, kafka) = (&setup.client, &setup.server, &setup.kafka);
    create_topic(&server.address, "positions", "1")?;
    scenario(python, &["positions", kafka, "positions"])?;
    Ok(())
}

#[test]
fn kafka_clients_report_unknown_topics_and_too_large_records_as_kafka_does() -> Result<()> {
    let Some(setup) = prepare(|clients| clients.python.as_ref(), "confluent-kafka")? else {
        return Ok(());
    };
    let (python, server, kafka) = (&setup.client, &setup.server, &setup.kafka);
    let created = run_args(&[
        "topic",
        "create",
        "small",
        "--partitions",
        "1",
        "--replication-factor",
        "1",
        "--config",
        "max.message.bytes=1024",
        "--bootstrap",
        &server.address,
    ])?;
    ensure!(created.status.success(), "{}", created.stderr);
    let output = scenario(python, &["errors", kafka, "small"])?;
    ensure!(
        output.stdout.contains("MSG_SIZE_TOO_LARGE"),
        "{}",
        output.stdout
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_kafka_producer_loses_and_duplicates_nothing_across_a_leader_kill()
-> Result<()> {
    let Some(python) = client(|clients| clients.python.as_ref(), "confluent-kafka") else {
        return Ok(());
    };
    const RECORDS: usize = 3_000;
    let directory = tempfile::tempdir()?;
    let (mut nodes, _voters) = common::start_cluster(directory.path()).await;
    let admin = common::admin(&common::survivors(&nodes)).await;
    admin
        .create_topic(
            strata_client::NewTopic::new("acked", 1, 3).config("min.insync.replicas", "2"),
        )
        .await?;
    let kafka_bootstrap = nodes
        .iter()
        .filter_map(|node| node.kafka_address.clone())
        .collect::<Vec<_>>()
        .join(",");
    let pids = nodes
        .iter()
        .map(|node| {
            let pid = node.child.as_ref().map_or(0, std::process::Child::id);
            format!("\"{}\": {pid}", node.id)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let acknowledged_path = directory.path().join("acknowledged.json");
    let arguments = [
        "idempotent-leader-kill".to_string(),
        kafka_bootstrap,
        "acked".to_string(),
        RECORDS.to_string(),
        format!("{{{pids}}}"),
        acknowledged_path.display().to_string(),
    ];
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let output = tokio::task::block_in_place(|| scenario(&python, &arguments))?;
    eprintln!("{}", output.stdout.trim());
    let acknowledged: Vec<(String, String)> =
        serde_json::from_str(&std::fs::read_to_string(&acknowledged_path)?)?;
    ensure!(
        acknowledged.len() == RECORDS,
        "{} acknowledged",
        acknowledged.len()
    );
    let running: Vec<String> = nodes
        .iter_mut()
        .filter_map(|node| node.is_running().then(|| node.address.clone()))
        .collect();
    ensure!(
        running.len() == 2,
        "the scenario killed one node: {running:?}"
    );
    common::assert_exactly_once_in_key_order(
        &running.join(","),
        "acked",
        1,
        &acknowledged,
        Duration::from_secs(120),
    )
    .await;
    Ok(())
}

#[test]
fn confluent_kafka_members_share_a_classic_group_and_strata_shows_its_offsets() -> Result<()> {
    confluent_kafka_members_share_a_group("classic-group")
}

/// KIP-848 through the Kafka door: librdkafka with `group.protocol=consumer`, its assignments
/// computed by Strata's coordinator and named by topic id.
#[test]
fn confluent_kafka_members_share_a_consumer_protocol_group_and_strata_shows_its_offsets()
-> Result<()> {
    confluent_kafka_members_share_a_group("consumer-group")
}

/// The `scenario` (`classic-group` or `consumer-group`) on a 6-partition topic, then the
/// group's committed offsets as `strata group describe` shows them.
fn confluent_kafka_members_share_a_group(scenario_name: &str) -> Result<()> {
    let Some(setup) = prepare(|clients| clients.python.as_ref(), "confluent-kafka")? else {
        return Ok(());
    };
    let (python, server, kafka) = (&setup.client, &setup.server, &setup.kafka);
    create_topic(&server.address, "shared", "6")?;
    scenario(python, &[scenario_name, kafka, "shared", "6", "billing"])?;
    // One cluster, two doors: the group the Kafka clients committed, as `strata` sees it.
    let described = run_args(&[
        "group",
        "describe",
        "billing",
        "--format",
        "json",
        "--bootstrap",
        &server.address,
    ])?;
    ensure!(described.status.success(), "{}", described.stderr);
    let json: serde_json::Value = serde_json::from_str(&described.stdout)?;
    let partitions = json["partitions"].as_array().cloned().unwrap_or_default();
    let committed: i64 = partitions
        .iter()
        .filter_map(|partition| partition["committed"].as_i64())
        .sum();
    let lag: i64 = partitions
        .iter()
        .filter_map(|partition| partition["lag"].as_i64())
        .sum();
    ensure!(
        (committed, lag) == (6 * 60, 1),
        "strata group describe shows {committed} committed and a lag of {lag} (the record \
         produced after the last commit): {}",
        described.stdout
    );
    Ok(())
}

#[test]
fn kafka_python_members_share_a_group() -> Result<()> {
    let Some(setup) = prepare(|clients| clients.python.as_ref(), "kafka-python")? else {
        return Ok(());
    };
    let (python, server, kafka) = (&setup.client, &setup.server, &setup.kafka);
    create_topic(&server.address, "pairs", "4")?;
    support::produce_lines(&server.address, "pairs", "0", "a\nb\n")?;
    support::produce_lines(&server.address, "pairs", "3", "c\n")?;
    scenario(
        python,
        &["kafka-python-group", kafka, "pairs", "pair-group"],
    )?;
    Ok(())
}

#[test]
fn confluent_kafkas_admin_client_creates_describes_alters_grows_and_deletes_topics() -> Result<()> {
    let Some(setup) = prepare(|clients| clients.python.as_ref(), "confluent-kafka")? else {
        return Ok(());
    };
    let (python, _server, kafka) = (&setup.client, &setup.server, &setup.kafka);
    scenario(python, &["admin", kafka])?;
    Ok(())
}

/// A one-node server whose listeners speak TLS with certificates from `strata certs create`,
/// started with `extra` flags and probed, and topics created, with the client flags `client`
/// makes from the certificate files.
struct Secured {
    _server: Server,
    kafka: String,
    certs: PathBuf,
    _directory: tempfile::TempDir,
}

impl Secured {
    fn start(
        extra: &[&str],
        client: impl Fn(&dyn Fn(&str) -> String) -> Vec<String>,
        topics: &[&str],
    ) -> Result<Secured> {
        let directory = tempfile::tempdir()?;
        let certs = directory.path().join("certs");
        let created = support::run(
            support::strata(&["certs", "create", "--out", certs.to_str().unwrap()]),
            "",
            support::COMMAND_TIMEOUT,
        )?;
        ensure!(created.status.success(), "{}", created.stderr);
        let file = |name: &str| certs.join(name).to_str().unwrap().to_string();
        let client_flags = client(&file);
        let client_flags: Vec<&str> = client_flags.iter().map(String::as_str).collect();
        let kafka = free_address()?;
        let (node_certificate, node_key, ca, client_ca) = (
            file("node-1.pem"),
            file("node-1-key.pem"),
            file("ca.pem"),
            file("client-ca.pem"),
        );
        let mut server_flags = vec![
            "--kafka-listen",
            &kafka,
            "--tls-cert",
            &node_certificate,
            "--tls-key",
            &node_key,
            "--tls-ca",
            &ca,
            // Where client certificates come from, for the tests that ask for them.
            "--tls-client-ca",
            &client_ca,
        ];
        server_flags.extend(extra);
        let server = support::start_server_probed(
            &directory.path().join("data"),
            &directory.path().join("server.log"),
            &server_flags,
            &client_flags,
        )?;
        for topic in topics {
            let mut create = vec![
                "topic",
                "create",
                topic,
                "--partitions",
                "1",
                "--replication-factor",
                "1",
                "--bootstrap",
                &server.address,
            ];
            create.extend(&client_flags);
            let created = run_args(&create)?;
            ensure!(created.status.success(), "{}", created.stderr);
        }
        Ok(Secured {
            _server: server,
            kafka,
            certs,
            _directory: directory,
        })
    }

    fn file(&self, name: &str) -> String {
        self.certs.join(name).to_str().unwrap().to_string()
    }
}

#[test]
fn kafka_clients_speak_tls_with_client_certificates() -> Result<()> {
    let Some(kcat_path) = client(|clients| clients.kcat.as_ref(), "kcat") else {
        return Ok(());
    };
    let python = client(|clients| clients.python.as_ref(), "confluent-kafka");
    let secured = Secured::start(
        &["--tls-client-auth", "required"],
        |file| {
            [
                "--tls-ca",
                "ca.pem",
                "--tls-cert",
                "client.pem",
                "--tls-key",
                "client-key.pem",
            ]
            .iter()
            .map(|flag| {
                if flag.ends_with(".pem") {
                    file(flag)
                } else {
                    flag.to_string()
                }
            })
            .collect()
        },
        &["sealed", "sealed-py"],
    )?;
    let (ca, certificate, key) = (
        secured.file("ca.pem"),
        secured.file("client.pem"),
        secured.file("client-key.pem"),
    );
    let kafka = &secured.kafka;

    let ssl = [
        "-X",
        "security.protocol=ssl",
        "-X",
        &format!("ssl.ca.location={ca}"),
        "-X",
        &format!("ssl.certificate.location={certificate}"),
        "-X",
        &format!("ssl.key.location={key}"),
    ]
    .map(|argument| argument.to_string());
    let mut produce = vec!["-b", kafka.as_str(), "-P", "-t", "sealed"];
    produce.extend(ssl.iter().map(String::as_str));
    kcat(&kcat_path, &produce, "over tls\n")?;
    let mut consume = vec![
        "-b",
        &kafka,
        "-C",
        "-t",
        "sealed",
        "-o",
        "beginning",
        "-e",
        "-q",
    ];
    consume.extend(ssl.iter().map(String::as_str));
    let read = kcat(&kcat_path, &consume, "")?;
    ensure!(
        read.stdout.trim() == "over tls",
        "kcat read {:?}",
        read.stdout
    );

    // Without its certificate kcat is turned away in the handshake.
    let mut anonymous = Command::new(&kcat_path);
    anonymous.args([
        "-b",
        kafka,
        "-L",
        "-m",
        "10",
        "-X",
        "security.protocol=ssl",
        "-X",
        &format!("ssl.ca.location={ca}"),
    ]);
    let refused = run(anonymous, "", SCENARIO_TIMEOUT)?;
    ensure!(
        !refused.status.success(),
        "kcat without a certificate was served: {}",
        refused.stdout
    );

    if let Some(python) = python {
        scenario(
            &python,
            &["tls-roundtrip", kafka, "sealed-py", &ca, &certificate, &key],
        )
        .map(drop)?;
    }
    Ok(())
}

/// The server flags of a [`Secured`] server that requires SASL, with `admin` (password
/// `admin-secret`) as its bootstrap user, a super user.
const REQUIRE_AUTH: [&str; 3] = ["--require-auth", "--bootstrap-user", "admin:admin-secret"];

/// The `strata` client flags that log in as the bootstrap user of [`REQUIRE_AUTH`].
fn as_admin(file: &dyn Fn(&str) -> String) -> Vec<String> {
    [
        "--tls-ca",
        &file("ca.pem"),
        "--user",
        "admin",
        "--password",
        "admin-secret",
    ]
    .map(str::to_string)
    .to_vec()
}

#[test]
fn kafka_clients_log_in_with_sasl_over_tls() -> Result<()> {
    let Some(kcat_path) = client(|clients| clients.kcat.as_ref(), "kcat") else {
        return Ok(());
    };
    let python = client(|clients| clients.python.as_ref(), "confluent-kafka");
    let secured = Secured::start(&REQUIRE_AUTH, as_admin, &["logged", "logged-py"])?;
    let ca = secured.file("ca.pem");
    let kafka = &secured.kafka;

    let sasl = |mechanism: &str, password: &str| {
        [
            "-X".to_string(),
            "security.protocol=sasl_ssl".to_string(),
            "-X".to_string(),
            format!("ssl.ca.location={ca}"),
            "-X".to_string(),
            format!("sasl.mechanisms={mechanism}"),
            "-X".to_string(),
            "sasl.username=admin".to_string(),
            "-X".to_string(),
            format!("sasl.password={password}"),
        ]
    };
    let with = |base: &[&str], extra: &[String]| -> Vec<String> {
        base.iter()
            .map(|argument| argument.to_string())
            .chain(extra.iter().cloned())
            .collect()
    };
    let produce = with(
        &["-b", kafka, "-P", "-t", "logged"],
        &sasl("SCRAM-SHA-512", "admin-secret"),
    );
    let produce: Vec<&str> = produce.iter().map(String::as_str).collect();
    kcat(&kcat_path, &produce, "scram in\n")?;
    // PLAIN is offered over TLS.
    let consume = with(
        &[
            "-b",
            kafka,
            "-C",
            "-t",
            "logged",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        &sasl("PLAIN", "admin-secret"),
    );
    let consume: Vec<&str> = consume.iter().map(String::as_str).collect();
    let read = kcat(&kcat_path, &consume, "")?;
    ensure!(
        read.stdout.trim() == "scram in",
        "kcat read {:?}",
        read.stdout
    );

    let refused = with(
        &["-b", kafka, "-L", "-m", "10"],
        &sasl("SCRAM-SHA-256", "guess"),
    );
    let mut refused_command = Command::new(&kcat_path);
    refused_command.args(&refused);
    let refused = run(refused_command, "", SCENARIO_TIMEOUT)?;
    ensure!(
        !refused.status.success(),
        "kcat with a wrong password was served"
    );
    ensure!(
        refused.stderr.contains("invalid user name or password"),
        "{}",
        refused.stderr
    );

    if let Some(python) = python {
        scenario(
            &python,
            &[
                "sasl-roundtrip",
                kafka,
                "logged-py",
                &ca,
                "admin",
                "admin-secret",
            ],
        )
        .map(drop)?;
    }
    Ok(())
}

/// ACLs managed through confluent-kafka's AdminClient over SASL_SSL, and what they decide for
/// a user's producer, consumer group and topic listing (the `acls` scenario).
#[test]
fn confluent_kafkas_admin_client_manages_acls_that_decide_what_a_user_may_do() -> Result<()> {
    let Some(python) = client(|clients| clients.python.as_ref(), "confluent-kafka") else {
        return Ok(());
    };
    let secured = Secured::start(&REQUIRE_AUTH, as_admin, &["granted", "hidden"])?;
    let ca = secured.file("ca.pem");
    let output = scenario(
        &python,
        &[
            "acls",
            &secured.kafka,
            "granted",
            "hidden",
            "readers",
            &ca,
            "admin",
            "admin-secret",
        ],
    )?;
    eprintln!("{}", output.stdout.trim());
    Ok(())
}
