//! What the receivers saw: deliveries, send-to-receive latency, resets.
//!
//! Every benchmark message carries its phase, its sequence number, its send time (in
//! nanoseconds since the benchmark's epoch, one clock for senders and receivers since
//! they share this process) and whether it falls in the measured window, then padding
//! up to the message size. Receivers find that marker in whatever they get (an SSE
//! event's JSON, a NATS payload), so the same accounting serves both systems.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Where a benchmark message's marker starts.
const MARKER: &str = "cb|";

/// The receivers' shared tally. One per system under test; a new phase resets it.
pub struct Probe {
    epoch: Instant,
    members: usize,
    phase: AtomicU32,
    /// Deliveries of the current phase's messages, measured or not.
    deliveries: AtomicU64,
    /// Deliveries of the current phase's measured messages.
    measured: AtomicU64,
    /// `reset` events: a stream fell so far behind that it must reload.
    resets: AtomicU64,
    /// Deliveries of an earlier phase's messages (late arrivals).
    stale: AtomicU64,
    /// One latency histogram per receiver, so receivers never contend.
    latencies: Vec<Mutex<Histogram<u64>>>,
}

/// One message's marker, as parsed back.
#[derive(Debug, PartialEq, Eq)]
pub struct Marker {
    pub phase: u32,
    pub seq: u64,
    pub sent_ns: u64,
    pub measured: bool,
}

impl Probe {
    /// A probe for `members` receivers.
    pub fn new(members: usize) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            members,
            phase: AtomicU32::new(0),
            deliveries: AtomicU64::new(0),
            measured: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            latencies: (0..members).map(|_| Mutex::new(new_histogram())).collect(),
        })
    }

    pub fn members(&self) -> usize {
        self.members
    }

    /// Starts a new phase: counters and histograms start from zero, and messages of
    /// earlier phases no longer count. Returns the phase number to put in messages.
    pub fn begin_phase(&self) -> u32 {
        for histogram in &self.latencies {
            lock(histogram).reset();
        }
        self.deliveries.store(0, Ordering::SeqCst);
        self.measured.store(0, Ordering::SeqCst);
        self.resets.store(0, Ordering::SeqCst);
        self.stale.store(0, Ordering::SeqCst);
        self.phase.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Nanoseconds since the epoch: the send time to put in a message.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The epoch time of an instant (zero before the epoch).
    pub fn ns_at(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// The text of one message, padded with `x` to `size` bytes (longer if the marker
    /// alone is longer).
    pub fn text(phase: u32, seq: u64, sent_ns: u64, measured: bool, size: usize) -> String {
        let mut text = format!("{MARKER}{phase}|{seq}|{sent_ns}|{}|", if measured { 'm' } else { 'w' });
        let padding = size.saturating_sub(text.len());
        text.extend(std::iter::repeat_n('x', padding));
        text
    }

    /// Receiver `receiver` got something that may hold a benchmark message.
    pub fn delivered(&self, receiver: usize, payload: &str) {
        let now_ns = self.now_ns();
        let Some(marker) = parse(payload) else { return };
        if marker.phase != self.phase.load(Ordering::Relaxed) {
            self.stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        if marker.measured {
            self.measured.fetch_add(1, Ordering::Relaxed);
            let micros = now_ns.saturating_sub(marker.sent_ns) / 1000;
            lock(&self.latencies[receiver % self.latencies.len()]).saturating_record(micros.max(1));
        }
    }

    /// A receiver was told to reload (it fell behind).
    pub fn reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(Ordering::Relaxed)
    }

    pub fn measured_deliveries(&self) -> u64 {
        self.measured.load(Ordering::Relaxed)
    }

    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    pub fn stale(&self) -> u64 {
        self.stale.load(Ordering::Relaxed)
    }

    /// The latencies of the phase's measured messages, all receivers together.
    pub fn latency(&self) -> Latency {
        let mut all = new_histogram();
        for histogram in &self.latencies {
            // Same bounds everywhere, so adding cannot fail.
            let _ = all.add(&*lock(histogram));
        }
        Latency::of(&all)
    }

    /// Waits until `predicate` holds or `patience` runs out; true if it held.
    pub async fn wait_for(&self, patience: Duration, predicate: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + patience;
        while !predicate(self) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// Percentiles of send-to-receive latency, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            samples: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// A histogram of microseconds, from 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// The marker in `payload`, if it holds one.
pub fn parse(payload: &str) -> Option<Marker> {
    let start = payload.find(MARKER)? + MARKER.len();
    let mut fields = payload[start..].splitn(5, '|');
    Some(Marker {
        phase: fields.next()?.parse().ok()?,
        seq: fields.next()?.parse().ok()?,
        sent_ns: fields.next()?.parse().ok()?,
        measured: fields.next()? == "m",
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_text_has_the_size_asked_and_parses_back_from_inside_json() {
        let text = Probe::text(3, 42, 123_456_789, true, 128);
        assert_eq!(text.len(), 128);
        let json = format!(r#"{{"type":"channel_message","id":7,"text":"{text}","ts":1}}"#);
        assert_eq!(parse(&json), Some(Marker { phase: 3, seq: 42, sent_ns: 123_456_789, measured: true }));
        assert_eq!(parse(r#"{"type":"presence"}"#), None);
    }

    #[test]
    fn only_the_current_phase_counts_and_measured_messages_give_latencies() {
        let probe = Probe::new(2);
        let old = probe.begin_phase();
        let phase = probe.begin_phase();
        let sent = probe.now_ns();
        probe.delivered(0, &Probe::text(phase, 1, sent, true, 64));
        probe.delivered(1, &Probe::text(phase, 1, sent, false, 64));
        probe.delivered(1, &Probe::text(old, 1, sent, true, 64));
        assert_eq!((probe.deliveries(), probe.measured_deliveries(), probe.stale()), (2, 1, 1));
        assert_eq!(probe.latency().samples, 1);
    }
}
