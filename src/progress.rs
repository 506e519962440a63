//! Progress: a live display in a terminal, a steady log line otherwise, and one log line per
//! finished partition.
//!
//! Why: "it always says what it is doing". A person running `sluice backfill` in a terminal sees
//! partitions done/total, conversations per second, an ETA and the request rate against the
//! budget, redrawn in place (indicatif). Under systemd, Docker or a pipe the same numbers come as
//! one log line every `interval` (default 30 s), so journald keeps a readable history.
//!
//! The engine feeds a shared [`ProgressTracker`] (totals, finished partitions, conversations) and
//! the request count comes from [`Metrics`], so the display and `/metrics` never disagree. The
//! reporter runs on its own thread and needs no async runtime.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::Metrics;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Live display on stderr (a terminal).
    Bar,
    /// One `info` log line every interval.
    Log { interval: Duration },
    /// Nothing but the per-partition lines.
    Off,
}

/// Default interval of the progress log line.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(30);

impl ProgressMode {
    /// The live display when stderr is a terminal and this is not service mode; the log line
    /// otherwise.
    pub fn detect(service_mode: bool) -> ProgressMode {
        if !service_mode && std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Log {
                interval: DEFAULT_LOG_INTERVAL,
            }
        }
    }
}

/// A partition that has just finished (done, unverified or failed).
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedPartition {
    pub dataset: String,
    pub range_start: DateTime<Utc>,
    pub range_end: DateTime<Utc>,
    /// done, unverified or failed.
    pub status: String,
    pub received: Option<i64>,
    pub total_hits: Option<i64>,
    pub attempts: i64,
    pub elapsed: Duration,
    /// The reason, for failed or unverified partitions. Must not contain secrets (the client's
    /// errors never do).
    pub error: Option<String>,
}

/// The one line logged per finished partition, e.g.
/// `partition conversations 2026-03-01T00:00:00Z..2026-03-02T00:00:00Z done: 1234 of totalHits 1234 in 12.3 s (attempt 1)`.
pub fn partition_line(p: &FinishedPartition) -> String {
    let numbers = match (p.received, p.total_hits) {
        (Some(r), Some(t)) => format!("{r} of totalHits {t}"),
        (Some(r), None) => format!("{r} records"),
        (None, Some(t)) => format!("totalHits {t}"),
        (None, None) => "no records".to_string(),
    };
    let mut line = format!(
        "partition {} {}..{} {}: {} in {:.1} s (attempt {})",
        p.dataset,
        p.range_start.format("%Y-%m-%dT%H:%M:%SZ"),
        p.range_end.format("%Y-%m-%dT%H:%M:%SZ"),
        p.status,
        numbers,
        p.elapsed.as_secs_f64(),
        p.attempts
    );
    if let Some(e) = &p.error {
        line.push_str(" — ");
        line.push_str(e);
    }
    line
}

/// Counters the engine updates; the reporter reads them.
#[derive(Debug)]
pub struct ProgressTracker {
    metrics: Arc<Metrics>,
    budget_per_minute: f64,
    total: AtomicU64,
    finished: AtomicU64,
    failed: AtomicU64,
    conversations: AtomicU64,
    bar: Mutex<Option<ProgressBar>>,
}

impl ProgressTracker {
    pub fn new(metrics: Arc<Metrics>, budget_per_minute: f64) -> Arc<Self> {
        Arc::new(ProgressTracker {
            metrics,
            budget_per_minute,
            total: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            conversations: AtomicU64::new(0),
            bar: Mutex::new(None),
        })
    }

    /// Partitions planned for this run (already finished ones included).
    pub fn set_total(&self, partitions: u64) {
        self.total.store(partitions, Ordering::Relaxed);
    }

    /// More partitions planned (a split, catch-up blocks).
    pub fn add_total(&self, partitions: u64) {
        self.total.fetch_add(partitions, Ordering::Relaxed);
    }

    /// Partitions already finished before this run started (resume).
    pub fn add_already_finished(&self, partitions: u64) {
        self.finished.fetch_add(partitions, Ordering::Relaxed);
    }

    /// Conversations received (and handed to the Writer).
    pub fn add_conversations(&self, n: u64) {
        self.conversations.fetch_add(n, Ordering::Relaxed);
    }

    /// Count a finished partition and emit its line: `info` for done, `warn` otherwise (printed
    /// above the live display when there is one).
    pub fn partition_finished(&self, p: &FinishedPartition) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        if p.status == "failed" {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let line = partition_line(p);
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ if p.status == "done" => log::info!("{line}"),
            _ => log::warn!("{line}"),
        }
    }

    fn sample(&self, at: Instant) -> Sample {
        Sample {
            at,
            requests: self.metrics.requests_total(),
            conversations: self.conversations.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Relaxed),
        }
    }
}

/// Counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: Instant,
    pub requests: u64,
    pub conversations: u64,
    pub finished: u64,
}

/// What the display shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressSnapshot {
    pub finished: u64,
    pub total: u64,
    pub failed: u64,
    pub conversations: u64,
    pub conversations_per_second: f64,
    pub requests_per_minute: f64,
    pub budget_per_minute: f64,
    /// None until a rate is known or when nothing is left.
    pub eta: Option<Duration>,
}

/// Rates over the samples' window (oldest to newest); ETA from the partition rate.
pub fn snapshot(
    window: &VecDeque<Sample>,
    total: u64,
    failed: u64,
    budget_per_minute: f64,
) -> Option<ProgressSnapshot> {
    let last = *window.back()?;
    let first = *window.front()?;
    let secs = last.at.saturating_duration_since(first.at).as_secs_f64();
    let per_sec = |a: u64, b: u64| {
        if secs > 0.0 {
            b.saturating_sub(a) as f64 / secs
        } else {
            0.0
        }
    };
    let partitions_per_sec = per_sec(first.finished, last.finished);
    let remaining = total.saturating_sub(last.finished);
    let eta = if remaining > 0 && partitions_per_sec > 0.0 {
        Some(Duration::from_secs_f64(
            remaining as f64 / partitions_per_sec,
        ))
    } else {
        None
    };
    Some(ProgressSnapshot {
        finished: last.finished,
        total,
        failed,
        conversations: last.conversations,
        conversations_per_second: per_sec(first.conversations, last.conversations),
        requests_per_minute: per_sec(first.requests, last.requests) * 60.0,
        budget_per_minute,
        eta,
    })
}

fn fmt_eta(eta: Option<Duration>) -> String {
    match eta {
        None => "ETA –".into(),
        Some(d) => {
            let s = d.as_secs();
            if s >= 3600 {
                format!("ETA {}h{:02}m", s / 3600, (s % 3600) / 60)
            } else if s >= 60 {
                format!("ETA {}m{:02}s", s / 60, s % 60)
            } else {
                format!("ETA {s}s")
            }
        }
    }
}

/// The steady log line, e.g.
/// `progress: 12/40 partitions (0 failed), 35000 conversations, 812.0 conversations/s, 291/300 requests/min, ETA 3m10s`.
pub fn progress_line(s: &ProgressSnapshot) -> String {
    format!(
        "progress: {}/{} partitions ({} failed), {} conversations, {:.1} conversations/s, {:.0}/{:.0} requests/min, {}",
        s.finished,
        s.total,
        s.failed,
        s.conversations,
        s.conversations_per_second,
        s.requests_per_minute,
        s.budget_per_minute,
        fmt_eta(s.eta)
    )
}

fn bar_message(s: &ProgressSnapshot) -> String {
    format!(
        "{:.0} conv/s · {:.0}/{:.0} req/min · {}",
        s.conversations_per_second,
        s.requests_per_minute,
        s.budget_per_minute,
        fmt_eta(s.eta)
    )
}

/// The closing line's samples: from the run's start to the last sample, so it reports the
/// run's average rates.
pub fn closing_window(started: Sample, window: &VecDeque<Sample>) -> VecDeque<Sample> {
    let mut w = VecDeque::from([started]);
    if let Some(last) = window.back() {
        if last.at > started.at {
            w.push_back(*last);
        }
    }
    w
}

/// Rates are measured over this trailing window.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// The running reporter; [`ProgressReporter::finish`] stops it and prints a last line.
pub struct ProgressReporter {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Start reporting `tracker` in `mode`.
pub fn start(tracker: Arc<ProgressTracker>, mode: ProgressMode) -> ProgressReporter {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let tick = match mode {
        ProgressMode::Bar => Duration::from_millis(500),
        ProgressMode::Log { interval } => interval,
        ProgressMode::Off => {
            return ProgressReporter {
                stop: None,
                thread: None,
            }
        }
    };
    let bar = if mode == ProgressMode::Bar {
        let bar = ProgressBar::with_draw_target(
            Some(tracker.total.load(Ordering::Relaxed)),
            ProgressDrawTarget::stderr(),
        );
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} partitions · {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        *tracker.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Some(bar)
    } else {
        None
    };
    let thread = std::thread::Builder::new()
        .name("sluice-progress".into())
        .spawn(move || {
            // The run's first sample: rates need two, and the closing line reports the whole
            // run (a run shorter than one tick would otherwise close with 0.0/s).
            let started = tracker.sample(Instant::now());
            let mut window: VecDeque<Sample> = VecDeque::from([started]);
            loop {
                let stopping = !matches!(
                    stop_rx.recv_timeout(tick),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                );
                let now = Instant::now();
                window.push_back(tracker.sample(now));
                while window.len() > 2
                    && window
                        .front()
                        .is_some_and(|s| now.saturating_duration_since(s.at) > RATE_WINDOW)
                {
                    window.pop_front();
                }
                let total = tracker.total.load(Ordering::Relaxed);
                let failed = tracker.failed.load(Ordering::Relaxed);
                let whole_run;
                let over = if stopping {
                    whole_run = closing_window(started, &window);
                    &whole_run
                } else {
                    &window
                };
                if let Some(s) = snapshot(over, total, failed, tracker.budget_per_minute) {
                    match &bar {
                        Some(bar) => {
                            bar.set_length(total);
                            bar.set_position(s.finished);
                            bar.set_message(bar_message(&s));
                            if stopping {
                                bar.finish();
                            }
                        }
                        None => {
                            if window.len() > 1 || stopping {
                                log::info!("{}", progress_line(&s));
                            }
                        }
                    }
                }
                if stopping {
                    break;
                }
            }
        })
        .ok();
    ProgressReporter {
        stop: Some(stop_tx),
        thread,
    }
}

impl ProgressReporter {
    /// Stop reporting; the display is left with its final numbers.
    pub fn finish(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProgressReporter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn partition_line_names_range_status_and_numbers() {
        let mut p = FinishedPartition {
            dataset: "conversations".into(),
            range_start: t("2026-03-01T00:00:00Z"),
            range_end: t("2026-03-02T00:00:00Z"),
            status: "done".into(),
            received: Some(1234),
            total_hits: Some(1234),
            attempts: 1,
            elapsed: Duration::from_millis(12_340),
            error: None,
        };
        assert_eq!(
            partition_line(&p),
            "partition conversations 2026-03-01T00:00:00Z..2026-03-02T00:00:00Z done: \
             1234 of totalHits 1234 in 12.3 s (attempt 1)"
        );
        p.status = "unverified".into();
        p.received = Some(1230);
        p.error = Some("received 1230 distinct, totalHits 1234".into());
        let line = partition_line(&p);
        assert!(
            line.contains("unverified: 1230 of totalHits 1234"),
            "{line}"
        );
        assert!(
            line.ends_with("— received 1230 distinct, totalHits 1234"),
            "{line}"
        );
    }

    #[test]
    fn rates_and_eta_come_from_the_window() {
        let t0 = Instant::now();
        let window: VecDeque<Sample> = [
            Sample {
                at: t0,
                requests: 100,
                conversations: 1_000,
                finished: 2,
            },
            Sample {
                at: t0 + Duration::from_secs(30),
                requests: 245,
                conversations: 16_000,
                finished: 5,
            },
        ]
        .into_iter()
        .collect();
        let s = snapshot(&window, 20, 1, 300.0).unwrap();
        assert_eq!(s.finished, 5);
        assert!((s.conversations_per_second - 500.0).abs() < 1e-9);
        assert!((s.requests_per_minute - 290.0).abs() < 1e-9);
        // 3 partitions per 30 s, 15 left: 150 s.
        assert_eq!(s.eta, Some(Duration::from_secs(150)));
        let line = progress_line(&s);
        assert_eq!(
            line,
            "progress: 5/20 partitions (1 failed), 16000 conversations, 500.0 conversations/s, \
             290/300 requests/min, ETA 2m30s"
        );
        // One sample: no rate, no ETA yet.
        let one: VecDeque<Sample> = window.iter().take(1).copied().collect();
        let s = snapshot(&one, 20, 0, 300.0).unwrap();
        assert_eq!((s.conversations_per_second, s.eta), (0.0, None));
        assert!(snapshot(&VecDeque::new(), 1, 0, 300.0).is_none());
    }

    #[test]
    fn closing_line_reports_the_whole_run_even_when_shorter_than_a_tick() {
        let t0 = Instant::now();
        let started = Sample {
            at: t0,
            requests: 0,
            conversations: 0,
            finished: 0,
        };
        // One tick never came: the only other sample is the one taken at the stop.
        let window = VecDeque::from([
            started,
            Sample {
                at: t0 + Duration::from_secs(30),
                requests: 147,
                conversations: 42_000,
                finished: 7,
            },
        ]);
        let s = snapshot(&closing_window(started, &window), 7, 0, 294.0).unwrap();
        let line = progress_line(&s);
        assert!(line.contains("1400.0 conversations/s"), "{line}");
        assert!(line.contains("294/294 requests/min"), "{line}");
        // No time passed at all: no rates to report, and no division by zero.
        let s = snapshot(
            &closing_window(started, &VecDeque::from([started])),
            0,
            0,
            294.0,
        );
        assert_eq!(s.map(|s| s.conversations_per_second), Some(0.0));
    }

    #[test]
    fn tracker_counts_finished_partitions_and_requests() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let tracker = ProgressTracker::new(metrics.clone(), 300.0);
        tracker.set_total(3);
        tracker.add_already_finished(1);
        metrics.observe_request("conversations_query", Some(200), Duration::ZERO);
        tracker.add_conversations(7);
        tracker.partition_finished(&FinishedPartition {
            dataset: "users".into(),
            range_start: t("2026-03-01T00:00:00Z"),
            range_end: t("2026-03-02T00:00:00Z"),
            status: "failed".into(),
            received: None,
            total_hits: None,
            attempts: 3,
            elapsed: Duration::from_secs(1),
            error: Some("HTTP 400".into()),
        });
        let s = tracker.sample(Instant::now());
        assert_eq!((s.finished, s.requests, s.conversations), (2, 1, 7));
        assert_eq!(tracker.failed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn off_mode_starts_no_thread() {
        let tracker = ProgressTracker::new(Arc::new(Metrics::new().unwrap()), 300.0);
        let r = start(tracker, ProgressMode::Off);
        assert!(r.thread.is_none());
        r.finish();
    }
}
