//! `strata produce`: one record per stdin line.

use anyhow::{Context, Result, bail};
use clap::Args;
use strata_client::{Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::Bootstrap;
use crate::topic::connect_admin;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    topic: String,
    /// Split each line at the first SEP into key and value; without it lines have no key.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Replicas that must have a record before it counts as acknowledged. With `all` the
    /// producer is idempotent (a retried batch is written once); 1 and 0 turn that off.
    #[arg(long, default_value = "all", value_name = "all|1|0", value_parser = parse_acks)]
    acks: Acks,
    /// Send every record to this partition instead of choosing by key.
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Give up on a record not acknowledged this long after it was read (Kafka's
    /// delivery.timeout.ms); meanwhile each retry is reported on stderr with its cause.
    #[arg(long, default_value_t = 30_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..))]
    timeout_ms: u64,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

/// How long a record waits for others to share its batch: stdin usually comes in bursts.
const LINGER_MS: u64 = 5;

pub fn parse_acks(text: &str) -> Result<Acks, String> {
    text.parse::<Acks>()
        .map_err(|_| format!("'{text}' is not one of all, 1, 0"))
}

/// Splits a line into key and value at the first `separator`.
fn split_line<'a>(line: &'a str, separator: Option<&str>) -> Option<(Option<&'a str>, &'a str)> {
    match separator {
        None => Some((None, line)),
        Some(separator) => line
            .split_once(separator)
            .map(|(key, value)| (Some(key), value)),
    }
}

pub async fn run(args: ProduceArgs) -> Result<()> {
    if args.key_separator.as_deref() == Some("") {
        bail!("--key-separator must not be empty");
    }
    // Fails fast on an unknown topic instead of waiting for it to appear.
    let admin = connect_admin(&args.bootstrap).await?;
    admin
        .describe_topic(&args.topic)
        .await
        .with_context(|| format!("cannot produce to topic '{}'", args.topic))?;

    let config = ProducerConfig::builder()
        .bootstrap(args.bootstrap.bootstrap.as_str())
        .acks(args.acks)
        // Idempotence needs acks=all; asking for 1 or 0 is asking for less.
        .enable_idempotence(args.acks == Acks::All)
        .connect_timeout_ms(5_000)
        .linger_ms(LINGER_MS)
        // A record's whole life must fit its delivery timeout, lingering included.
        .request_timeout_ms((args.timeout_ms - LINGER_MS).min(30_000))
        .delivery_timeout_ms(args.timeout_ms)
        .build()?;
    let producer = Producer::connect(config)
        .await
        .with_context(|| format!("cannot connect to {}", args.bootstrap.bootstrap))?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut deliveries: Vec<DeliveryFuture> = Vec::new();
    let mut line_number = 0u64;
    let mut failure: Option<anyhow::Error> = None;
    let stop = crate::stop_requested();
    tokio::pin!(stop);
    let mut stopped_by_signal = false;
    // Ends at end of input or on SIGINT/SIGTERM; each line is read once. What was read before a
    // signal is still delivered and counted.
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line.context("cannot read stdin")?,
            () = &mut stop => {
                stopped_by_signal = true;
                None
            }
        };
        let Some(line) = line else { break };
        line_number += 1;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        let Some((key, value)) = split_line(line, args.key_separator.as_deref()) else {
            failure = Some(anyhow::anyhow!(
                "line {line_number} has no key separator '{}'",
                args.key_separator.as_deref().unwrap_or_default()
            ));
            break;
        };
        let mut record = ProducerRecord::new(args.topic.as_str(), value.to_string());
        if let Some(key) = key {
            record = record.key(key.to_string());
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        match producer.send(record).await {
            Ok(delivery) => deliveries.push(delivery),
            Err(error) => {
                failure = Some(
                    anyhow::Error::new(error).context(format!("cannot send line {line_number}")),
                );
                break;
            }
        }
    }

    producer
        .flush()
        .await
        .context("cannot flush the producer")?;
    let sent = deliveries.len();
    let mut acknowledged = 0usize;
    let mut first_error = None;
    for delivery in deliveries {
        match delivery.await {
            Ok(_) => acknowledged += 1,
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    producer
        .close()
        .await
        .context("cannot close the producer")?;
    if let Some(error) = first_error {
        bail!(
            "{} of {sent} records were not acknowledged: {error}",
            sent - acknowledged
        );
    }
    if let Some(failure) = failure {
        return Err(failure.context(format!(
            "acknowledged {acknowledged} records before stopping"
        )));
    }
    if stopped_by_signal {
        eprintln!("stopped by a signal after reading {sent} records");
    }
    println!(
        "acknowledged {acknowledged} record{}",
        if acknowledged == 1 { "" } else { "s" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(split_line("k:v:w", Some(":")), Some((Some("k"), "v:w")));
        assert_eq!(split_line(":v", Some(":")), Some((Some(""), "v")));
        assert_eq!(split_line("k=>v", Some("=>")), Some((Some("k"), "v")));
        assert_eq!(split_line("no separator", Some(":")), None);
        assert_eq!(split_line("k:v", None), Some((None, "k:v")));
    }

    #[test]
    fn acks_accept_kafka_spellings() {
        assert_eq!(parse_acks("all"), Ok(Acks::All));
        assert_eq!(parse_acks("1"), Ok(Acks::Leader));
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert!(parse_acks("2").is_err());
    }
}
