//! What a benchmark prints: its result as a few human-readable lines, or as one JSON object
//! with `--json` for scripts and CI.
//!
//! Units: MB and GB are decimal (10^6 and 10^9 bytes), as network throughput is usually quoted;
//! latencies are recorded in microseconds in an HDR histogram (3 significant digits, so a
//! percentile is within 0.1% of the true value) and reported in milliseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

use super::loopback::Baseline;
use super::progress::format_count;

/// Where a benchmark's lines go.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// With `--json`, stdout carries only the result object; everything else goes to stderr.
    pub fn progress_to_stderr(self) -> bool {
        self.json
    }

    /// A line for the reader: stdout normally, stderr under `--json`.
    pub fn note(self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

/// Latencies from 1 µs to one hour, at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("the bounds are valid")
}

/// Records `latency` in `histogram` in microseconds, clamped into its range.
pub fn record_latency(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

/// The percentiles a benchmark reports, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// `None` for an empty histogram: no percentile of nothing.
    pub fn of(histogram: &Histogram<u64>) -> Option<LatencySummary> {
        if histogram.is_empty() {
            return None;
        }
        let millis = |micros: u64| micros as f64 / 1_000.0;
        Some(LatencySummary {
            p50_ms: millis(histogram.value_at_quantile(0.50)),
            p99_ms: millis(histogram.value_at_quantile(0.99)),
            p99_9_ms: millis(histogram.value_at_quantile(0.999)),
            max_ms: millis(histogram.max()),
        })
    }

    fn to_json(self) -> Value {
        json!({
            "p50": round3(self.p50_ms),
            "p99": round3(self.p99_ms),
            "p99_9": round3(self.p99_9_ms),
            "max": round3(self.max_ms),
        })
    }
}

fn round3(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

/// One benchmark's result.
#[derive(Clone, Debug)]
pub struct BenchSummary {
    /// `produce`, `consume` or `e2e`.
    pub command: &'static str,
    pub topic: String,
    /// Records that completed: acknowledged, consumed, or received end to end.
    pub records: u64,
    /// Payload bytes of those records (keys and values).
    pub bytes: u64,
    pub elapsed: Duration,
    /// What the latency measures, for the text output ("ack latency", "end-to-end latency").
    pub latency_label: &'static str,
    pub latency: Option<LatencySummary>,
    /// Produce acknowledgement latency, when it is not already `latency` (end to end).
    pub ack_latency: Option<LatencySummary>,
    pub loopback: Option<Baseline>,
    /// Loopback TCP round trips of one record's size at the benchmark's rate, for end to end.
    pub loopback_round_trip: Option<LatencySummary>,
    /// A raw write of the same bytes to a new file, for produce.
    pub file_write: Option<Baseline>,
    /// Records that failed (produce) or went missing (end to end).
    pub errors: u64,
    /// Settings and command-specific counts, shown in both outputs.
    pub details: Vec<(&'static str, Value)>,
}

impl BenchSummary {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn bytes_per_second(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// This run's payload throughput as a fraction of raw loopback TCP throughput.
    pub fn ratio_of_loopback(&self) -> Option<f64> {
        self.ratio_of(self.loopback)
    }

    /// This run's payload throughput as a fraction of a raw file write on this machine.
    pub fn ratio_of_file_write(&self) -> Option<f64> {
        self.ratio_of(self.file_write)
    }

    fn ratio_of(&self, baseline: Option<Baseline>) -> Option<f64> {
        baseline.map(|baseline| self.bytes_per_second() / baseline.bytes_per_second())
    }

    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("command".into(), json!(self.command));
        object.insert("topic".into(), json!(self.topic));
        object.insert("records".into(), json!(self.records));
        object.insert("bytes".into(), json!(self.bytes));
        object.insert("errors".into(), json!(self.errors));
        object.insert(
            "elapsed_s".into(),
            json!(round3(self.elapsed.as_secs_f64())),
        );
        object.insert(
            "records_per_sec".into(),
            json!((self.records_per_second() * 10.0).round() / 10.0),
        );
        object.insert(
            "mb_per_sec".into(),
            json!(round3(self.bytes_per_second() / 1e6)),
        );
        object.insert(
            "latency_ms".into(),
            self.latency.map_or(Value::Null, LatencySummary::to_json),
        );
        if let Some(ack_latency) = self.ack_latency {
            object.insert("ack_latency_ms".into(), ack_latency.to_json());
        }
        let baseline_json = |baseline: Option<Baseline>| {
            baseline.map_or(Value::Null, |baseline| {
                json!({
                    "bytes": baseline.bytes,
                    "elapsed_s": round3(baseline.elapsed.as_secs_f64()),
                    "gb_per_sec": round3(baseline.bytes_per_second() / 1e9),
                })
            })
        };
        let ratio_json = |ratio: Option<f64>| {
            ratio.map_or(Value::Null, |ratio| json!((ratio * 1e6).round() / 1e6))
        };
        if let Some(round_trip) = self.loopback_round_trip {
            object.insert("loopback_round_trip_ms".into(), round_trip.to_json());
        }
        object.insert("loopback".into(), baseline_json(self.loopback));
        object.insert(
            "ratio_of_loopback".into(),
            ratio_json(self.ratio_of_loopback()),
        );
        if self.file_write.is_some() {
            object.insert("file_write".into(), baseline_json(self.file_write));
            object.insert(
                "ratio_of_file_write".into(),
                ratio_json(self.ratio_of_file_write()),
            );
        }
        for (key, value) in &self.details {
            object.insert((*key).into(), value.clone());
        }
        Value::Object(object)
    }

    pub fn to_text(&self) -> String {
        let mut lines = vec![format!(
            "{} benchmark on topic '{}'",
            self.command, self.topic
        )];
        if !self.details.is_empty() {
            // Unset options (null) are left out: the line lists what shaped this run.
            let settings: Vec<String> = self
                .details
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| match value {
                    Value::String(text) => format!("{key}={text}"),
                    other => format!("{key}={other}"),
                })
                .collect();
            lines.push(format!("  settings:    {}", settings.join(" ")));
        }
        lines.push(format!(
            "  records:     {} ({} errors)",
            format_count(self.records as f64),
            self.errors
        ));
        lines.push(format!(
            "  elapsed:     {:.3} s",
            self.elapsed.as_secs_f64()
        ));
        let ratio = self
            .ratio_of_loopback()
            .map(|ratio| format!(" ({:.2}% of loopback)", ratio * 100.0))
            .unwrap_or_default();
        lines.push(format!(
            "  throughput:  {} records/s, {:.2} MB/s{ratio}",
            format_count(self.records_per_second()),
            self.bytes_per_second() / 1e6
        ));
        if let Some(baseline) = self.loopback {
            lines.push(format!(
                "  loopback:    {:.2} GB/s",
                baseline.bytes_per_second() / 1e9
            ));
        }
        if let Some(baseline) = self.file_write {
            lines.push(format!(
                "  file write:  {:.2} GB/s ({:.2}% of it)",
                baseline.bytes_per_second() / 1e9,
                self.ratio_of_file_write().unwrap_or_default() * 100.0
            ));
        }
        let latencies = [
            (self.latency_label, self.latency),
            ("ack latency", self.ack_latency),
            ("loopback rtt", self.loopback_round_trip),
        ];
        for (label, latency) in latencies {
            if let Some(latency) = latency {
                lines.push(format!(
                    "  {:<13} p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                    format!("{label}:"),
                    latency.p50_ms,
                    latency.p99_ms,
                    latency.p99_9_ms,
                    latency.max_ms
                ));
            }
        }
        lines.join("\n")
    }

    /// Prints the result: one JSON object on stdout, or the text lines.
    pub fn print(&self, output: Output) {
        if output.json {
            println!("{}", self.to_json());
        } else {
            println!("{}", self.to_text());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> BenchSummary {
        let mut histogram = latency_histogram();
        for micros in 1..=1_000u64 {
            record_latency(&mut histogram, Duration::from_micros(micros * 10));
        }
        BenchSummary {
            command: "produce",
            topic: "t".into(),
            records: 2_000,
            bytes: 200_000,
            elapsed: Duration::from_millis(500),
            latency_label: "ack latency",
            latency: LatencySummary::of(&histogram),
            ack_latency: None,
            loopback_round_trip: None,
            loopback: Some(Baseline {
                bytes: 1_000_000_000,
                elapsed: Duration::from_millis(250),
            }),
            file_write: Some(Baseline {
                bytes: 1_000_000,
                elapsed: Duration::from_millis(1),
            }),
            errors: 0,
            details: vec![
                ("acks", json!("all")),
                ("producers", json!(1)),
                ("target_rate", Value::Null),
            ],
        }
    }

    #[test]
    fn rates_and_the_loopback_ratio_follow_from_the_counts() {
        let summary = summary();
        assert_eq!(summary.records_per_second(), 4_000.0);
        assert_eq!(summary.bytes_per_second(), 400_000.0);
        let ratio = summary.ratio_of_loopback().expect("a baseline");
        assert!((ratio - 1e-4).abs() < 1e-12, "{ratio}");
        let ratio = summary.ratio_of_file_write().expect("a baseline");
        assert!((ratio - 4e-4).abs() < 1e-12, "{ratio}");
    }

    #[test]
    fn json_has_every_field_a_script_reads() {
        let json = summary().to_json();
        for key in [
            "command",
            "topic",
            "records",
            "bytes",
            "errors",
            "elapsed_s",
            "records_per_sec",
            "mb_per_sec",
            "latency_ms",
            "loopback",
            "ratio_of_loopback",
            "file_write",
            "ratio_of_file_write",
            "acks",
            "producers",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(json["records"], 2_000);
        assert_eq!(json["loopback"]["gb_per_sec"], 4.0);
        assert_eq!(json["file_write"]["gb_per_sec"], 1.0);
        let latency = &json["latency_ms"];
        let p50 = latency["p50"].as_f64().expect("p50");
        let p99 = latency["p99"].as_f64().expect("p99");
        let max = latency["max"].as_f64().expect("max");
        assert!((4.9..=5.1).contains(&p50), "{latency}");
        assert!(p50 <= p99 && p99 <= max, "{latency}");
        assert!((9.9..=10.1).contains(&max), "{latency}");
    }

    #[test]
    fn text_shows_rates_latency_and_the_ratio() {
        let text = summary().to_text();
        assert!(text.contains("4,000 records/s"), "{text}");
        assert!(text.contains("0.40 MB/s (0.01% of loopback)"), "{text}");
        assert!(
            text.contains("file write:  1.00 GB/s (0.04% of it)"),
            "{text}"
        );
        assert!(text.contains("p99.9"), "{text}");
        assert!(
            text.contains("settings:    acks=all producers=1\n"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_histogram_has_no_percentiles() {
        assert_eq!(LatencySummary::of(&latency_histogram()), None);
    }
}
