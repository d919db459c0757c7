//! Live progress while a benchmark runs: an `indicatif` bar with the current rate on a terminal,
//! else one plain line per second, so a log of a run shows how the rate moved over time.
//!
//! The benchmark bumps a shared counter; a task samples it on a timer and draws. Sampling rather
//! than drawing per record keeps the display off the hot path. Progress goes to the same stream
//! as the human-readable summary, or to stderr when `--json` reserves stdout for the result.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::report::Output;

/// A running progress display; [`Progress::finish`] stops it.
pub struct Progress {
    counter: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts displaying `counter` (records done so far) against `total` when known.
    pub fn start(label: &'static str, total: Option<u64>, output: Output) -> Progress {
        let counter = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        let to_stderr = output.progress_to_stderr();
        let terminal = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let task = tokio::spawn(display(
            label,
            total,
            counter.clone(),
            stopped,
            to_stderr,
            terminal,
        ));
        Progress {
            counter,
            stop,
            task,
        }
    }

    pub fn counter(&self) -> Arc<AtomicU64> {
        self.counter.clone()
    }

    /// Stops the display and clears the bar, so the summary starts on a clean line.
    pub async fn finish(self) {
        // The display task may already have ended if its stream closed; nothing to stop then.
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn display(
    label: &'static str,
    total: Option<u64>,
    counter: Arc<AtomicU64>,
    mut stopped: watch::Receiver<bool>,
    to_stderr: bool,
    terminal: bool,
) {
    let bar = terminal.then(|| {
        let target = if to_stderr {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::stdout()
        };
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::with_draw_target(Some(total), target),
                "{prefix} [{elapsed_precise}] {bar:32} {pos}/{len} records  {msg}",
            ),
            None => (
                ProgressBar::with_draw_target(None, target),
                "{prefix} [{elapsed_precise}] {spinner} {pos} records  {msg}",
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(label);
        bar
    });
    // A bar redraws often enough to look live; a plain log gets a line a second.
    let period = if bar.is_some() {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut last_count = 0u64;
    let mut last_at = Instant::now();
    let mut rate = 0.0;
    let mut rate_window_start = (Instant::now(), 0u64);
    // Ends when the benchmark calls `finish`, which every benchmark does once its bounded run
    // is over (or when the benchmark is dropped, which closes the channel).
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stopped.changed() => {
                if changed.is_err() || *stopped.borrow() {
                    break;
                }
                continue;
            }
        }
        let count = counter.load(Ordering::Relaxed);
        let now = Instant::now();
        match &bar {
            Some(bar) => {
                // The rate shown is over the last second, so it moves with the run rather than
                // averaging from the start.
                let (window_start, window_count) = rate_window_start;
                let window = now.duration_since(window_start);
                if window >= Duration::from_secs(1) {
                    rate = (count - window_count) as f64 / window.as_secs_f64();
                    rate_window_start = (now, count);
                }
                bar.set_position(count);
                bar.set_message(format!("{} records/s", format_count(rate)));
            }
            None => {
                let interval = now.duration_since(last_at).as_secs_f64().max(1e-9);
                let rate = (count - last_count) as f64 / interval;
                let done = match total {
                    Some(total) if total > 0 => format!(
                        "{count}/{total} records ({:.1}%)",
                        count as f64 * 100.0 / total as f64
                    ),
                    _ => format!("{count} records"),
                };
                let line = format!("{label}: {done}, {} records/s\n", format_count(rate));
                // Progress is best effort: a closed stream must not fail the benchmark.
                let _ = if to_stderr {
                    std::io::stderr().write_all(line.as_bytes())
                } else {
                    std::io::stdout().write_all(line.as_bytes())
                };
            }
        }
        last_count = count;
        last_at = now;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// A rate with no decimals and thousands separated, for reading at a glance.
pub fn format_count(value: f64) -> String {
    let whole = value.max(0.0).round() as u64;
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(format_count(0.0), "0");
        assert_eq!(format_count(999.4), "999");
        assert_eq!(format_count(1_000.0), "1,000");
        assert_eq!(format_count(1_234_567.8), "1,234,568");
        assert_eq!(format_count(-3.0), "0");
    }
}
