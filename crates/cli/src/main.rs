//! `strata`: run a broker or a local dev cluster, manage topics, produce and consume.
//!
//! Command and flag spellings are a public interface: scripts depend on them. Every failure
//! prints one line, `error: ...`, to stderr and exits non-zero.

mod acl;
mod bench;
mod cluster;
mod console;
mod consume;
mod dlq;
mod duration;
mod group;
mod health;
mod output;
mod produce;
mod profile;
mod record_format;
mod server;
mod tls;
mod topic;
mod user;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use duration::{DurationParser, Unit};

/// Produce requests, fetch responses and batches are buffers of about a megabyte, allocated and
/// freed thousands of times a second. glibc's allocator keeps moving its thresholds for such
/// sizes and hands them back to the kernel, so profiles of both the broker and the clients
/// showed page faults and page zeroing for every buffer; a consumer read about 40% slower for
/// it (benches/README.md, "Single node"). jemalloc keeps size-classed extents and returns them to
/// the kernel only after they sit unused.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:7070";

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: a Kafka-style distributed commit log",
    after_help = "Example:\n  strata dev\n  strata topic create orders --partitions 3 --replication-factor 1\n  printf 'k1:hello\\n' | strata produce orders --key-separator :\n  strata consume orders --from-beginning --max-messages 1\n  strata consume orders --group billing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the client commands find the cluster.
#[derive(Debug, Clone, Args)]
struct Bootstrap {
    /// Brokers to contact first; the rest of the cluster is learned from them. Without this
    /// flag or STRATA_BOOTSTRAP, the profile STRATA_PROFILE names or the current profile's
    /// (`strata profile`), else 127.0.0.1:7070.
    #[arg(long, env = "STRATA_BOOTSTRAP", default_value_t = profile::default_bootstrap(), value_name = "HOST:PORT[,HOST:PORT...]")]
    bootstrap: String,
    #[command(flatten)]
    tls: tls::ClientTlsArgs,
    #[command(flatten)]
    credentials: user::CredentialArgs,
}

impl Bootstrap {
    /// The cluster these flags (with the profile behind them) point at.
    fn cluster_target(&self) -> anyhow::Result<tls::ClusterTarget> {
        Ok(tls::ClusterTarget {
            bootstrap: self.bootstrap.clone(),
            tls: self.tls.client_tls()?,
            credentials: self.credentials.credentials(),
            address_rewrites: Vec::new(),
        })
    }
}

/// Where the admin commands find the cluster, and how long they wait for it.
#[derive(Debug, Clone, Args)]
struct AdminTarget {
    #[command(flatten)]
    bootstrap: Bootstrap,
    /// Give up after this long, retries included. A change to topics waits for the controller
    /// quorum, which needs a majority of the voters up, so a cluster that lost its quorum fails
    /// the command then rather than hold it.
    #[arg(long, default_value = topic::DEFAULT_ADMIN_TIMEOUT, value_name = "DURATION", value_parser = ADMIN_TIMEOUT)]
    timeout: Duration,
    /// --timeout in milliseconds, its old spelling.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "timeout", value_parser = ADMIN_TIMEOUT.number_of(Unit::Millis))]
    timeout_ms: Option<Duration>,
}

/// `--timeout` of the admin commands: zero would fail every call before it is sent.
const ADMIN_TIMEOUT: DurationParser = DurationParser::human().at_least(Duration::from_millis(1));

impl AdminTarget {
    fn timeout(&self) -> Duration {
        duration::given(self.timeout, self.timeout_ms)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one broker node until interrupted.
    #[command(
        after_help = "Example:\n  strata server --node-id 1 --data-dir /var/lib/strata --listen 0.0.0.0:7070 \\\n    --advertise broker1.example.com:7070 \\\n    --voters 1@broker1.internal:7170,2@broker2.internal:7170,3@broker3.internal:7170"
    )]
    Server(server::ServerArgs),
    /// Run a local cluster for development until Ctrl-C.
    #[command(
        after_help = "Example:\n  strata dev                      # one node on 127.0.0.1:7070\n  strata dev --nodes 3 --port 9000 --data-dir /tmp/strata"
    )]
    Dev(server::DevArgs),
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Send records to a topic: stdin lines, delimited or JSON records, or whole files.
    #[command(
        after_help = "Example:\n  printf 'user-1:signed up\\nuser-2:logged in\\n' | strata produce events --key-separator :\n  strata produce events --acks 1 < events.txt"
    )]
    Produce(produce::ProduceArgs),
    /// Print the records of one or more topics to stdout.
    #[command(
        after_help = "Example:\n  strata consume events --from-beginning --max-messages 10 --format json\n  strata consume events --partition 0 --offset 42 --timeout 5s\n  strata consume orders payments --offset -10 -e --format '%t %p:%o %v'\n  strata consume events --group billing --from-beginning\n  strata consume jobs --share-group workers --max-messages 10"
    )]
    Consume(consume::ConsumeArgs),
    /// Inspect the cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// List, describe (with lag), reset and delete consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Dead-letter topics of share groups: list, peek, redrive.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Measure produce and consume throughput and latency against a running cluster.
    #[command(
        subcommand,
        after_help = "Example:\n  strata bench produce --topic bench --records 1000000 --record-size 100\n  strata bench consume --topic bench\n  strata bench e2e --topic latency --rate 5000 --duration 10s"
    )]
    Bench(bench::BenchCommand),
    /// Exit 0 if the node at --bootstrap is up and serving clients (for health checks).
    Health(health::HealthArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  strata completion bash > /etc/bash_completion.d/strata\n  strata completion zsh > \"${fpath[1]}/_strata\"\n  strata completion fish > ~/.config/fish/completions/strata.fish"
    )]
    Completion {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Named connection settings (like `rpk profile`): create, use, list, delete.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Development certificates for a cluster with TLS.
    #[command(subcommand)]
    Certs(tls::CertsCommand),
    /// Create, delete and list users (SCRAM credentials) of a cluster that requires
    /// authentication.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Create, list and delete ACLs: who may do what to topics, groups and the cluster, on a
    /// cluster that requires authentication.
    #[command(subcommand)]
    Acl(acl::AclCommand),
}

fn main() -> ExitCode {
    // Before parsing, since the selected profile is the default of --bootstrap.
    let unreadable_profile = profile::select_default_bootstrap().err();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return report_usage_error(error),
    };
    if let Some(error) = unreadable_profile
        && !matches!(cli.command, Command::Profile(_))
    {
        // Only the default changes: a command given --bootstrap still works. `strata profile`
        // reports the same error as its own when it reads the file.
        eprintln!(
            "warning: {}; client commands default to {DEFAULT_BOOTSTRAP}",
            one_line(&error)
        );
    }
    let mut builder = match cli.command.runtime() {
        RuntimeShape::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        RuntimeShape::Workers(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        RuntimeShape::OnePerCore => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Everything a command must finish it awaits inside `run`. What may be left is a blocking
    // read of stdin (a producer stopped by a signal while its input is still open), which
    // would hold a normal runtime shutdown until the input closed.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A clap error is a usage error clap's declarations cannot express, which the command
        // found itself; it is reported like clap's own.
        Err(error) => match error.downcast::<clap::Error>() {
            Ok(usage) => report_usage_error(usage),
            Err(error) => {
                eprintln!("error: {}", one_line(&error));
                ExitCode::FAILURE
            }
        },
    }
}

impl Command {
    /// The runtime the command asks for: benchmarks size their client's, `server` its workers.
    fn runtime(&self) -> RuntimeShape {
        match self {
            Command::Bench(command) => match command.runtime_threads() {
                Some(1) => RuntimeShape::CurrentThread,
                Some(threads) => RuntimeShape::Workers(threads),
                None => RuntimeShape::OnePerCore,
            },
            Command::Server(args) => args
                .worker_threads()
                .map_or(RuntimeShape::OnePerCore, RuntimeShape::Workers),
            _ => RuntimeShape::OnePerCore,
        }
    }
}

/// The async runtime a command runs on.
enum RuntimeShape {
    /// Tokio's default: a multi-threaded runtime with a worker per core.
    OnePerCore,
    /// Everything on the thread that runs the command.
    CurrentThread,
    /// A multi-threaded runtime with this many workers (the blocking pool comes on top).
    Workers(usize),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(args) => {
            init_tracing_as(SERVER_LOG_FILTER, args.log_format());
            server::run_server(args).await
        }
        Command::Dev(args) => {
            init_tracing_as(SERVER_LOG_FILTER, args.log_format());
            server::run_dev(args).await
        }
        Command::Topic(command) => {
            init_tracing_if_asked();
            topic::run(command).await
        }
        Command::Produce(args) => {
            // Warnings on: the producer reports each retry and its cause there, so a cluster
            // that does not take the writes is visible before the timeout ends them.
            init_tracing("warn");
            produce::run(args).await
        }
        Command::Consume(args) => {
            init_tracing_if_asked();
            consume::run(args).await
        }
        Command::Cluster(command) => {
            init_tracing_if_asked();
            cluster::run(command).await
        }
        Command::Group(command) => {
            init_tracing_if_asked();
            group::run(command).await
        }
        Command::Dlq(command) => {
            init_tracing_if_asked();
            dlq::run(command).await
        }
        Command::Bench(command) => {
            init_tracing_if_asked();
            bench::run(command).await
        }
        Command::Health(args) => health::run(args).await,
        Command::Profile(command) => profile::run(command),
        Command::Certs(command) => tls::run_certs(command),
        Command::User(command) => {
            init_tracing_if_asked();
            user::run(command).await
        }
        Command::Acl(command) => {
            init_tracing_if_asked();
            acl::run(command).await
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            // Generated into memory first: clap_complete panics on a write error, and a reader
            // that closes the pipe early (`| head`) is not an error.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "strata", &mut script);
            match std::io::stdout().write_all(&script) {
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(anyhow::Error::new(error).context("cannot write the completion script"))
                }
                _ => Ok(()),
            }
        }
    }
}

/// Help and version go to stdout as clap formats them; a usage error becomes one line.
fn report_usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Nothing useful can be done if printing help fails (e.g. a closed pipe).
            let _ = error.print();
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2))
        }
        _ => {
            eprintln!("error: {} (see --help)", usage_error_line(&error));
            ExitCode::from(2)
        }
    }
}

/// Clap's rendered usage error on one line, with everything that helps fix the command: the
/// headline, its details (missing arguments, `[possible values: ...]`) and the tips ("a similar
/// subcommand exists"). The usage synopsis and the pointer to --help are left out, since the
/// line ends with its own pointer to --help.
fn usage_error_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    // Clap separates the parts of its message with blank lines: the headline with its detail
    // lines first, then each tip, the usage and the pointer to --help.
    let mut paragraphs = rendered
        .split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|lines| !lines.is_empty());
    let Some(first) = paragraphs.next() else {
        return "invalid arguments".to_string();
    };
    let headline = first[0].strip_prefix("error: ").unwrap_or(first[0]);
    let details = &first[1..];
    let mut line = match (headline.strip_suffix(':'), details.is_empty()) {
        (_, true) => headline.to_string(),
        // "the following required arguments were not provided:" lists them, one per line.
        (Some(introduction), false) => format!("{introduction}: {}", details.join(", ")),
        (None, false) => format!("{headline} {}", details.join(" ")),
    };
    for paragraph in paragraphs {
        if paragraph[0].starts_with("Usage:") || paragraph[0].starts_with("For more information") {
            continue;
        }
        line.push_str("; ");
        line.push_str(&paragraph.join(" "));
    }
    line
}

/// An error and its causes on one line, so scripts can rely on one line per failure.
fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Resolves once the process is asked to stop: SIGINT from a terminal, or SIGTERM, which
/// docker, systemd and Kubernetes send. The handlers are installed when this is called, so call
/// it before the work it interrupts: a signal that arrives while nothing polls the future is
/// kept for it rather than lost (and no longer kills the process mid-way).
fn stop_requested() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::interrupt())
            .and_then(|interrupt| Ok((interrupt, signal(SignalKind::terminate())?)))
            .ok()
    };
    async move {
        #[cfg(unix)]
        if let Some((mut interrupt, mut terminate)) = signals {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What `server` and `dev` log without RUST_LOG: Strata's own lines from info up. openraft
/// logs every vote, election and shutdown step at info, dozens of lines that bury the node's
/// own (and `strata dev`'s banner); its warnings and errors still show.
const SERVER_LOG_FILTER: &str = "info,openraft=warn";

/// Logs what `default_filter` (an `EnvFilter` directive list) lets through, unless RUST_LOG
/// says otherwise.
fn init_tracing(default_filter: &str) {
    init_tracing_as(default_filter, server::LogFormat::Text);
}

/// [`init_tracing`] in `format`: text for people, or one JSON object per line for log
/// collectors (Loki, Elasticsearch, CloudWatch), with the event's fields as JSON fields.
fn init_tracing_as(default_filter: &str, format: server::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Fails only if a subscriber is already set, which then keeps working.
    let _ = match format {
        // Colour only for a person at a terminal: in a log file or a pipe the escape codes are
        // noise.
        server::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        server::LogFormat::Json => logs.json().flatten_event(true).try_init(),
    };
}

/// Client commands stay quiet (their stdout is data) unless RUST_LOG asks for logs.
fn init_tracing_if_asked() {
    if std::env::var_os("RUST_LOG").is_some() {
        init_tracing("warn");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn errors_print_on_one_line() {
        let error = anyhow::anyhow!("line one\nline two").context("cannot create topic 'x'");
        assert_eq!(
            one_line(&error),
            "cannot create topic 'x': line one; line two"
        );
    }
}
