//! Fan-out drivers, the same for WeApRous and NATS: messages go out through a
//! [`Poster`], receivers report to a [`Probe`].
//!
//! - [`fixed_rate`] sends on a schedule (open loop: a slow reply never delays the next
//!   send) and measures latency from the *scheduled* send time, so a sender that falls
//!   behind shows up as latency instead of hiding it.
//! - [`saturated`] sends as fast as a few concurrent senders can, keeping at most a
//!   window of messages not yet delivered to every member in flight, and measures the
//!   deliveries per second the system sustains.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::probe::{Latency, Probe};
use crate::procfs::{CpuMeter, CpuUse};

/// Posts sent but not answered beyond this many are skipped (and counted): the
/// system is then far past saturation, and the benchmark must stay bounded.
const MAX_IN_FLIGHT: usize = 4096;

/// Something that sends one message to every member.
pub trait Poster: Clone + Send + Sync + 'static {
    /// Sends message number `seq` with `text`; done when the system accepted it.
    fn post(&self, seq: u64, text: String) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Timing shared by the fan-out scenarios.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Sent but not measured: connections warm up, queues reach their steady state.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// How long to wait after the last send for deliveries still on their way.
    pub drain: Duration,
    /// Message text size in bytes.
    pub message_size: usize,
}

/// What one fan-out run measured.
#[derive(Debug, Clone, Default)]
pub struct FanoutResult {
    /// Messages sent per second (fixed rate: the schedule; saturated: accepted).
    pub posts_per_s: f64,
    /// Deliveries (one message reaching one member) per second in the window.
    pub deliveries_per_s: f64,
    /// Send-to-receive latency of the messages sent in the window.
    pub latency: Latency,
    /// Deliveries owed for the measured messages accepted, and received.
    pub expected: u64,
    pub received: u64,
    pub post_errors: u64,
    /// Sends skipped because too many were in flight.
    pub skipped: u64,
    pub first_error: Option<String>,
    pub resets: u64,
    pub cpu: CpuUse,
}

/// Counters the sending tasks share.
#[derive(Default)]
struct Counters {
    posted: AtomicU64,
    accepted: AtomicU64,
    accepted_measured: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Sends `rate` messages per second for the warm-up and the window.
pub async fn fixed_rate<P: Poster>(
    probe: &Arc<Probe>,
    poster: P,
    rate: f64,
    plan: &Plan,
    cpu_meter: &CpuMeter,
) -> FanoutResult {
    let phase = probe.begin_phase();
    let counters = Arc::new(Counters::default());
    let start = Instant::now() + Duration::from_millis(20);
    let window = Window::at(start + plan.warmup, plan.duration);
    let sampler = window.sample(cpu_meter.clone(), probe.clone(), counters.clone());
    let total = ((plan.warmup + plan.duration).as_secs_f64() * rate).round() as u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    for seq in 0..total {
        let at = start + period.mul_f64(seq as f64);
        tokio::time::sleep_until(at.into()).await;
        let measured = at >= window.start;
        let text = Probe::text(phase, seq, probe.ns_at(at), measured, plan.message_size);
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (poster, counters) = (poster.clone(), counters.clone());
        counters.posted.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let outcome = poster.post(seq, text).await;
            counters.record(outcome, measured);
            drop(permit);
        });
    }
    // Every send answered (bounded: a hung system must not hang the benchmark).
    let _ = tokio::time::timeout(plan.drain * 4, in_flight.acquire_many(MAX_IN_FLIGHT as u32)).await;
    let expected = counters.accepted_measured.load(Ordering::Relaxed) * probe.members() as u64;
    probe.wait_for(plan.drain, |probe| probe.measured_deliveries() >= expected).await;
    let sample = sampler.await.unwrap_or_default();
    let received = probe.measured_deliveries();
    FanoutResult {
        posts_per_s: rate,
        deliveries_per_s: received as f64 / plan.duration.as_secs_f64(),
        latency: probe.latency(),
        expected,
        received,
        post_errors: counters.errors.load(Ordering::Relaxed),
        skipped: counters.skipped.load(Ordering::Relaxed),
        first_error: counters.first_error(),
        resets: probe.resets(),
        cpu: sample.cpu,
    }
}

/// Sends as fast as `senders` concurrent senders can, with at most `window` messages
/// not yet delivered to every member.
pub async fn saturated<P: Poster>(
    probe: &Arc<Probe>,
    poster: P,
    senders: usize,
    window_messages: u64,
    plan: &Plan,
    cpu_meter: &CpuMeter,
) -> FanoutResult {
    let phase = probe.begin_phase();
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let window = Window::at(start + plan.warmup, plan.duration);
    let sampler = window.sample(cpu_meter.clone(), probe.clone(), counters.clone());
    let members = probe.members() as u64;
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (poster, counters, probe) = (poster.clone(), counters.clone(), probe.clone());
            let message_size = plan.message_size;
            tokio::spawn(async move {
                loop {
                    if Instant::now() >= window.end {
                        return;
                    }
                    let outstanding =
                        counters.posted.load(Ordering::Relaxed).saturating_sub(probe.deliveries() / members);
                    if outstanding >= window_messages {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    let seq = counters.posted.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    let measured = now >= window.start && now < window.end;
                    let text = Probe::text(phase, seq, probe.ns_at(now), measured, message_size);
                    let outcome = poster.post(seq, text).await;
                    counters.record(outcome, measured);
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let accepted = counters.accepted.load(Ordering::Relaxed);
    probe.wait_for(plan.drain, |probe| probe.deliveries() >= accepted * members).await;
    let sample = sampler.await.unwrap_or_default();
    let seconds = plan.duration.as_secs_f64();
    FanoutResult {
        posts_per_s: sample.accepted as f64 / seconds,
        deliveries_per_s: sample.deliveries as f64 / seconds,
        latency: probe.latency(),
        expected: counters.accepted_measured.load(Ordering::Relaxed) * members,
        received: probe.measured_deliveries(),
        post_errors: counters.errors.load(Ordering::Relaxed),
        skipped: 0,
        first_error: counters.first_error(),
        resets: probe.resets(),
        cpu: sample.cpu,
    }
}

/// The measured window of a run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

/// Counts over the window: CPU, deliveries received, sends accepted.
#[derive(Debug, Clone, Default)]
struct WindowSample {
    cpu: CpuUse,
    deliveries: u64,
    accepted: u64,
}

impl Window {
    pub fn at(start: Instant, duration: Duration) -> Self {
        Self { start, end: start + duration }
    }

    /// Samples CPU use and the counters at the window's edges, in the background.
    fn sample(
        self,
        cpu_meter: CpuMeter,
        probe: Arc<Probe>,
        counters: Arc<Counters>,
    ) -> tokio::task::JoinHandle<WindowSample> {
        tokio::spawn(async move {
            tokio::time::sleep_until(self.start.into()).await;
            let (cpu_start, deliveries_start, accepted_start) =
                (cpu_meter.snapshot(), probe.deliveries(), counters.accepted.load(Ordering::Relaxed));
            tokio::time::sleep_until(self.end.into()).await;
            let (cpu_end, deliveries_end, accepted_end) =
                (cpu_meter.snapshot(), probe.deliveries(), counters.accepted.load(Ordering::Relaxed));
            WindowSample {
                cpu: cpu_start.until(&cpu_end),
                deliveries: deliveries_end - deliveries_start,
                accepted: accepted_end - accepted_start,
            }
        })
    }
}

impl Counters {
    fn record(&self, outcome: anyhow::Result<()>, measured: bool) {
        match outcome {
            Ok(()) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                if measured {
                    self.accepted_measured.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(err) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                first.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }

    fn first_error(&self) -> Option<String> {
        self.first_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}
