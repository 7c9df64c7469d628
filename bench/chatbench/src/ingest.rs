//! Durable ingestion: concurrent posters send channel messages as fast as their
//! replies come back (closed loop, bounded concurrency). A success reply means the
//! message is on disk (the tracker commits before it answers), so acknowledged
//! messages per second is the durable ingestion rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::fanout::{Poster, Window};
use crate::probe::{Latency, Probe, new_histogram};
use crate::procfs::{CpuMeter, CpuUse};

/// What one ingestion run measured.
#[derive(Debug, Clone, Default)]
pub struct IngestResult {
    /// Messages acknowledged per second in the window.
    pub messages_per_s: f64,
    /// Post-to-acknowledgement latency in the window.
    pub ack_latency: Latency,
    pub errors: u64,
    pub first_error: Option<String>,
    pub cpu: CpuUse,
}

/// Posts with `concurrency` closed-loop senders for `warmup + duration`.
pub async fn run<P: Poster>(
    poster: P,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    message_size: usize,
    cpu_meter: &CpuMeter,
) -> IngestResult {
    let window = Window::at(Instant::now() + warmup, duration);
    let seq = Arc::new(AtomicU64::new(0));
    let cpu_sampler = {
        let cpu_meter = cpu_meter.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(window.start.into()).await;
            let start = cpu_meter.snapshot();
            tokio::time::sleep_until(window.end.into()).await;
            start.until(&cpu_meter.snapshot())
        })
    };
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (poster, seq) = (poster.clone(), seq.clone());
            tokio::spawn(async move {
                let mut tally = Tally { latencies: new_histogram(), acked: 0, errors: 0, first_error: None };
                loop {
                    let sent = Instant::now();
                    if sent >= window.end {
                        return tally;
                    }
                    let number = seq.fetch_add(1, Ordering::Relaxed);
                    let text = Probe::text(0, number, 0, false, message_size);
                    let outcome = poster.post(number, text).await;
                    let answered = Instant::now();
                    let in_window = answered >= window.start && answered < window.end;
                    match outcome {
                        Ok(()) if in_window => {
                            tally.acked += 1;
                            tally.latencies.saturating_record((answered - sent).as_micros() as u64);
                        }
                        Ok(()) => {}
                        Err(err) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert_with(|| format!("{err:#}"));
                        }
                    }
                }
            })
        })
        .collect();
    let mut latencies = new_histogram();
    let mut result = IngestResult::default();
    let mut acked = 0;
    for task in tasks {
        if let Ok(tally) = task.await {
            let _ = latencies.add(&tally.latencies);
            acked += tally.acked;
            result.errors += tally.errors;
            if result.first_error.is_none() {
                result.first_error = tally.first_error;
            }
        }
    }
    result.messages_per_s = acked as f64 / duration.as_secs_f64();
    result.ack_latency = Latency::of(&latencies);
    result.cpu = cpu_sampler.await.unwrap_or_default();
    result
}

struct Tally {
    latencies: hdrhistogram::Histogram<u64>,
    acked: u64,
    errors: u64,
    first_error: Option<String>,
}
