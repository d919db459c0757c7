//! Running docker-compose projects of `deploy/` from a test: the tools, one project's lifetime
//! (torn down with `down -v` even when the test fails), and bounded waits on its containers.

use super::eventually;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args`, killing it if it is still running after `timeout`.
pub fn run(program: &str, args: &[&str], timeout: Duration) -> Result<Finished, String> {
    run_with_input(program, args, "", timeout)
}

/// [`run`] with `input` written to the program's stdin, which is then closed.
pub fn run_with_input(
    program: &str,
    args: &[&str],
    input: &str,
    timeout: Duration,
) -> Result<Finished, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    // On a thread, so a program that does not read its input cannot block the deadline.
    thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut stdin, input.as_bytes());
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|error| error.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{program} {} did not finish within {timeout:?}",
                args.join(" ")
            ));
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Finished {
        success: status.success(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Why Docker cannot be used here, if it cannot.
pub fn docker_unavailable() -> Option<String> {
    match run("docker", &["info"], Duration::from_secs(30)) {
        Ok(finished) if finished.success => None,
        Ok(finished) => Some(format!(
            "`docker info` failed: {}",
            finished.stderr.lines().next().unwrap_or("no message")
        )),
        Err(error) => Some(error),
    }
}

/// `docker-compose` (v1, what the CI machines have) or else the `docker compose` plugin.
pub fn compose_tool() -> Option<Vec<String>> {
    let works = |program: &str, args: &[&str]| {
        run(program, args, Duration::from_secs(30)).is_ok_and(|finished| finished.success)
    };
    if works("docker-compose", &["version"]) {
        Some(vec!["docker-compose".to_string()])
    } else if works("docker", &["compose", "version"]) {
        Some(vec!["docker".to_string(), "compose".to_string()])
    } else {
        None
    }
}

pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// One compose project of `deploy/docker-compose.yml`; dropping it runs `down -v`.
pub struct Project {
    pub tool: Vec<String>,
    pub name: String,
    pub file: String,
}

impl Project {
    pub fn compose(&self, args: &[&str], timeout: Duration) -> Finished {
        let mut all: Vec<&str> = self.tool[1..].iter().map(String::as_str).collect();
        all.extend(["-p", &self.name, "-f", &self.file]);
        all.extend(args);
        run(&self.tool[0], &all, timeout).unwrap_or_else(|error| panic!("{error}"))
    }

    pub fn compose_ok(&self, args: &[&str], timeout: Duration) -> String {
        let finished = self.compose(args, timeout);
        assert!(
            finished.success,
            "compose {} failed: {}",
            args.join(" "),
            finished.stderr
        );
        finished.stdout
    }

    /// The container id of `service` (`ps -q` works for compose v1 and v2 naming alike).
    pub fn container(&self, service: &str) -> String {
        let id = self.compose_ok(&["ps", "-q", service], Duration::from_secs(60));
        let id = id.trim();
        assert!(!id.is_empty(), "compose lists no container for {service}");
        id.to_string()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if thread::panicking() {
            let logs = self.compose(&["logs", "--no-color"], Duration::from_secs(60));
            let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.log", self.name));
            match std::fs::write(&path, &logs.stdout) {
                Ok(()) => eprintln!("the cluster's logs are in {}", path.display()),
                Err(error) => eprintln!("cannot write {}: {error}", path.display()),
            }
        }
        let stopping = Instant::now();
        let down = self.compose(
            &["down", "-v", "--remove-orphans", "-t", "10"],
            Duration::from_secs(120),
        );
        eprintln!("down -v took {:?}", stopping.elapsed());
        if !down.success {
            eprintln!(
                "warning: `down -v` of project {} failed: {}",
                self.name, down.stderr
            );
        }
    }
}

pub fn docker(args: &[&str]) -> String {
    let finished =
        run("docker", args, Duration::from_secs(60)).unwrap_or_else(|error| panic!("{error}"));
    assert!(
        finished.success,
        "docker {} failed: {}",
        args.join(" "),
        finished.stderr
    );
    finished.stdout
}

/// Waits until Docker reports every container healthy; fails at once if one stopped.
pub async fn all_healthy(containers: &[String], limit: Duration) {
    eventually("every container healthy", limit, async || {
        let mut args = vec![
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.Health.Status}}",
        ];
        args.extend(containers.iter().map(String::as_str));
        let states = docker(&args);
        assert!(
            !states.contains("exited") && !states.contains("dead"),
            "a container stopped while starting: {states}"
        );
        states
            .lines()
            .all(|state| state == "running healthy")
            .then_some(())
    })
    .await;
}

/// Waits until every partition of the topic satisfies `condition`, as `admin` sees it.
/// Why the compose tests cannot run here, or the compose tool to run them with. Prints nothing:
/// the caller says `SKIPPED` with the reason.
fn compose_or_skip_reason() -> Result<Vec<String>, String> {
    if let Some(reason) = docker_unavailable() {
        return Err(format!("docker is not available ({reason})"));
    }
    compose_tool().ok_or_else(|| {
        "docker works but neither docker-compose nor `docker compose` is installed".to_string()
    })
}

/// The host ports both compose files publish: the client and Kafka listeners of three nodes.
const PUBLISHED_PORTS: [u16; 6] = [7070, 7071, 7072, 9092, 9093, 9094];

/// Brings up `deploy/<file>` as a project of its own: checks the published ports are free,
/// builds the image from this test's `strata`, starts it and waits until the three nodes are
/// healthy. Returns the project (torn down when dropped) and the nodes' containers, or `None`
/// after printing one `SKIPPED:` line when Docker or compose cannot be used here.
pub async fn up_healthy(name: &str, file: &str) -> Option<(Project, Vec<String>)> {
    let tool = match compose_or_skip_reason() {
        Ok(tool) => tool,
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            return None;
        }
    };
    assert_ports_free(&PUBLISHED_PORTS);
    build_image();
    let project = Project {
        tool,
        name: format!("{name}-{}", std::process::id()),
        file: repository()
            .join("deploy")
            .join(file)
            .to_str()
            .unwrap()
            .to_string(),
    };
    project.compose_ok(&["up", "-d", "--no-build"], Duration::from_secs(180));
    let containers: Vec<String> = ["strata-1", "strata-2", "strata-3"]
        .iter()
        .map(|service| project.container(service))
        .collect();
    all_healthy(&containers, Duration::from_secs(180)).await;
    Some((project, containers))
}

/// Fails the test if one of `ports` is taken: the compose files publish them.
fn assert_ports_free(ports: &[u16]) {
    for &port in ports {
        if let Err(error) = TcpListener::bind(("0.0.0.0", port)) {
            panic!(
                "port {port} is taken ({error}); the compose tests publish 7070-7072 and \
                 9092-9094 like deploy/docker-compose.yml, so stop whatever holds it (`docker \
                 ps` shows a leftover cluster)"
            );
        }
    }
}

/// Builds `strata:latest` from this test binary's `strata` with `deploy/build-image.sh`.
fn build_image() {
    let image_dir = tempfile::tempdir().unwrap();
    let script = repository().join("deploy/build-image.sh");
    let build_dir = image_dir.path().join("image");
    let built = run(
        script.to_str().unwrap(),
        &[
            "--binary",
            env!("CARGO_BIN_EXE_strata"),
            "--build-dir",
            build_dir.to_str().unwrap(),
        ],
        Duration::from_secs(300),
    )
    .unwrap();
    assert!(built.success, "build-image.sh failed: {}", built.stderr);
    eprintln!("{}", built.stdout.trim());
}
