//! Password hashing behind a limit sized to the cores, with a short queue.
//!
//! One Argon2id hash or check holds 19 MiB for as long as it runs; with nothing to bound
//! them, 100 log-ins at once took auth past 2 GB (issue 11). Every hash and check goes
//! through [`HashGate::run`]: at most `hash_concurrency` run at once, at most
//! `hash_queue` more wait for a turn, and a waiter gets up to `hash_queue_wait_ms`. Past
//! either bound the caller gets [`HashError::Busy`] at once, which routes answer with
//! `503` and `Retry-After`. Running more hashes than there are cores would not finish
//! them sooner, only hold more memory while they share the CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;

use crate::password;

/// How many hashes may run and wait (from the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    /// Hashes running at once; at least 1.
    pub concurrency: usize,
    /// Hashes waiting for a turn beyond those.
    pub queue: usize,
    /// How long one waits for a turn before it is refused.
    pub max_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many hashes running and waiting, or the wait ran out: try again shortly.
    #[error("too many log-ins at once; try again in a second")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The limit on hashing, shared by every route. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct HashGate {
    inner: Arc<Inner>,
}

struct Inner {
    /// Permits for the running and the waiting together: when none is left the queue
    /// is full, and a caller is refused without waiting.
    admitted: Arc<Semaphore>,
    /// Permits for the running (tokio's semaphore is fair: first come, first served).
    running: Arc<Semaphore>,
    max_wait: Duration,
    metrics: HashMetrics,
    /// Counted inside the blocking task, around the work itself.
    running_now: AtomicUsize,
    running_peak: AtomicUsize,
    /// The memory of the hashes that ran, kept for the next ones: at most one set per
    /// hash that may run at once ([`crate::password`] says why).
    memory: std::sync::Mutex<Vec<password::Memory>>,
}

/// The gate's metrics, registered with auth's others.
#[derive(Clone, Default)]
pub struct HashMetrics {
    /// Hashes by stage: `running`, `queued`.
    pub hashes: Family<StageLabel, Gauge>,
    /// Hashes refused, by reason: `queue_full`, `waited_too_long`.
    pub refused: Family<ReasonLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

impl HashGate {
    pub fn new(limits: HashLimits) -> Self {
        let concurrency = limits.concurrency.max(1);
        Self {
            inner: Arc::new(Inner {
                admitted: Arc::new(Semaphore::new(concurrency.saturating_add(limits.queue))),
                running: Arc::new(Semaphore::new(concurrency)),
                max_wait: limits.max_wait,
                metrics: HashMetrics::default(),
                running_now: AtomicUsize::new(0),
                running_peak: AtomicUsize::new(0),
                memory: std::sync::Mutex::default(),
            }),
        }
    }

    pub fn metrics(&self) -> &HashMetrics {
        &self.inner.metrics
    }

    /// The most hashes that have run at once since start.
    pub fn peak_running(&self) -> usize {
        self.inner.running_peak.load(Ordering::Relaxed)
    }

    /// Runs `work` (a hash or a check) on a blocking thread once a turn is free;
    /// [`HashError::Busy`] when the queue is full or the turn takes too long.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        self.run_in_memory(move |_| work()).await
    }

    /// [`Self::run`], with the memory a hash works in lent to `work`
    /// ([`crate::password`]).
    pub async fn run_in_memory<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut password::Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let inner = &self.inner;
        let Ok(admitted) = inner.admitted.clone().try_acquire_owned() else {
            return Err(inner.refuse("queue_full"));
        };
        let queued = StageGuard::enter(inner.metrics.hashes.get_or_create(&StageLabel { stage: "queued" }).clone());
        let turn = tokio::time::timeout(inner.max_wait, inner.running.clone().acquire_owned()).await;
        drop(queued);
        let running = match turn {
            Ok(Ok(permit)) => permit,
            Ok(Err(closed)) => {
                return Err(HashError::Failed(anyhow::Error::new(closed).context("the hash gate is closed")));
            }
            Err(_elapsed) => return Err(inner.refuse("waited_too_long")),
        };
        let shared = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // The permits go with the work, not with the caller: a client that hangs up
            // drops the request, but the hash runs on, and its turn must stay taken.
            let _permits = (admitted, running);
            let _running = shared.start_running();
            let mut memory = shared.lend_memory();
            let done = work(&mut memory);
            shared.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(memory);
            done
        })
        .await
        .context("password hashing task failed")
        .map_err(HashError::Failed)
    }
}

impl Inner {
    fn refuse(&self, reason: &'static str) -> HashError {
        self.metrics.refused.get_or_create(&ReasonLabel { reason }).inc();
        tracing::debug!(reason, "password hash refused");
        HashError::Busy
    }

    /// A kept block set, or a new one (the first hashes, up to the concurrency).
    fn lend_memory(&self) -> password::Memory {
        let kept = self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        kept.unwrap_or_else(password::memory)
    }

    fn start_running(&self) -> RunningGuard<'_> {
        let now = self.running_now.fetch_add(1, Ordering::Relaxed) + 1;
        self.running_peak.fetch_max(now, Ordering::Relaxed);
        let gauge = self.metrics.hashes.get_or_create(&StageLabel { stage: "running" }).clone();
        RunningGuard { inner: self, _stage: StageGuard::enter(gauge) }
    }
}

/// One hash in a stage's gauge until dropped (also when a waiting caller gives up).
struct StageGuard(Gauge);

impl StageGuard {
    fn enter(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for StageGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

struct RunningGuard<'a> {
    inner: &'a Inner,
    _stage: StageGuard,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.inner.running_now.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(concurrency: usize, queue: usize, max_wait: Duration) -> HashGate {
        HashGate::new(HashLimits { concurrency, queue, max_wait })
    }

    /// Starts a hash that runs until `release` is sent; returns once it runs.
    async fn occupy(
        gate: &HashGate,
    ) -> (tokio::task::JoinHandle<Result<bool, HashError>>, std::sync::mpsc::Sender<()>) {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, mut first_started) = tokio::sync::mpsc::unbounded_channel();
        let first = tokio::spawn({
            let gate = gate.clone();
            async move {
                gate.run(move || {
                    let _ = started.send(());
                    released.recv().is_ok()
                })
                .await
            }
        });
        first_started.recv().await.unwrap();
        (first, release)
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_the_rest_run_one_at_a_time() {
        let gate = gate(1, 1, Duration::from_secs(30));
        let (first, release) = occupy(&gate).await;
        let second = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(|| true).await }
        });
        // The second waits in the queue; poll the gauge with a deadline.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while gate.metrics().hashes.get_or_create(&StageLabel { stage: "queued" }).get() != 1 {
            assert!(tokio::time::Instant::now() < deadline, "the second never queued");
            tokio::task::yield_now().await;
        }
        assert!(matches!(gate.run(|| true).await, Err(HashError::Busy)), "a third finds the queue full");
        release.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert!(second.await.unwrap().unwrap());
        assert_eq!(gate.peak_running(), 1);
        assert_eq!(gate.metrics().refused.get_or_create(&ReasonLabel { reason: "queue_full" }).get(), 1);
    }

    #[tokio::test]
    async fn a_wait_past_the_bound_is_refused() {
        let gate = gate(1, 4, Duration::from_millis(50));
        let (first, release) = occupy(&gate).await;
        assert!(matches!(gate.run(|| true).await, Err(HashError::Busy)));
        assert_eq!(gate.metrics().refused.get_or_create(&ReasonLabel { reason: "waited_too_long" }).get(), 1);
        release.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert!(gate.run(|| true).await.unwrap(), "a free gate runs the work");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_reuse_their_memory_one_set_per_hash_at_once() {
        let gate = gate(2, 16, Duration::from_secs(30));
        let hashes: Vec<_> = (0..8)
            .map(|round| {
                let gate = gate.clone();
                tokio::spawn(async move {
                    let password = format!("password-{round}");
                    gate.run_in_memory(move |memory| crate::password::hash(&password, memory)).await
                })
            })
            .collect();
        for hash in hashes {
            assert!(hash.await.unwrap().unwrap().unwrap().starts_with("$argon2id$"));
        }
        let kept = gate.inner.memory.lock().unwrap().len();
        assert!((1..=2).contains(&kept), "8 hashes, 2 at a time, left {kept} memory sets (at most 2)");
    }
}
