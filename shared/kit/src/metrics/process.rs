//! The `process_*` metrics every Prometheus client library exports (CPU, memory,
//! open files, threads, start time), read from `/proc/self` on each scrape, and
//! `weaprous_build_info` (version and git commit).
//!
//! Read at scrape time rather than kept up to date: a scrape every few seconds reads
//! three small files, and nothing is paid between scrapes. Off Linux the process
//! metrics are simply absent.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The version every crate of the workspace shares.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from: `WEAPROUS_GIT_COMMIT` at build time
/// (`WEAPROUS_GIT_COMMIT=$(git rev-parse --short HEAD) cargo build`; the Dockerfile
/// takes it as a build argument), else `unknown`.
pub const GIT_COMMIT: &str = match option_env!("WEAPROUS_GIT_COMMIT") {
    Some(commit) if !commit.is_empty() => commit,
    _ => "unknown",
};

/// Linux reports CPU times in clock ticks of `USER_HZ`, 100 on every architecture
/// Linux runs on (it is fixed for user space, whatever the kernel's own tick).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// Registers the process collector and `weaprous_build_info` in `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "weaprous_build",
        "The version and git commit of the running binary (always 1)",
        Info::new(BuildLabels { version: VERSION, commit: GIT_COMMIT }),
    );
    registry.register_collector(Box::new(ProcessCollector));
}

/// Reads `/proc/self` on each scrape.
#[derive(Debug)]
struct ProcessCollector;

/// One reading of `/proc/self`.
#[derive(Debug, Default, PartialEq)]
struct Reading {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    threads: u64,
    start_time_seconds: f64,
    open_fds: u64,
    max_fds: Option<u64>,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(reading) = Reading::now() else {
            return Ok(());
        };
        let counter = |value: f64| ConstCounter::new(value);
        counter(reading.cpu_seconds).encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            MetricType::Counter,
        )?)?;
        let gauges: [(&str, &str, Option<f64>); 6] = [
            ("process_resident_memory_bytes", "Resident memory size, in bytes", Some(reading.resident_bytes as f64)),
            ("process_virtual_memory_bytes", "Virtual memory size, in bytes", Some(reading.virtual_bytes as f64)),
            ("process_threads", "Operating system threads", Some(reading.threads as f64)),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                Some(reading.start_time_seconds),
            ),
            ("process_open_fds", "Open file descriptors", Some(reading.open_fds as f64)),
            ("process_max_fds", "The limit of open file descriptors", reading.max_fds.map(|max| max as f64)),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
            }
        }
        Ok(())
    }
}

impl Reading {
    fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|text| boot_time(&text));
        let limits = std::fs::read_to_string("/proc/self/limits").ok();
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count() as u64);
        let mut reading = Self::parse(&stat, &status, boot_time, limits.as_deref())?;
        reading.open_fds = open_fds;
        Some(reading)
    }

    /// A reading from the texts of `/proc/self/stat` and `/proc/self/status`, the
    /// boot time from `/proc/stat`, and `/proc/self/limits` (open files aside).
    fn parse(stat: &str, status: &str, boot_time: Option<f64>, limits: Option<&str>) -> Option<Self> {
        // The command name, in parentheses, may hold spaces: fields count from its end.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Fields 14, 15 (utime, stime) and 22 (starttime) of proc(5), from field 3 here.
        let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
        let cpu_seconds = (ticks(14)? + ticks(15)?) as f64 / TICKS_PER_SECOND;
        let start_time_seconds = boot_time.unwrap_or(0.0) + ticks(22)? as f64 / TICKS_PER_SECOND;
        let kilobytes = |key: &str| {
            let line = status.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))?;
            line.split_whitespace().next()?.parse::<u64>().ok()
        };
        let max_fds = limits.and_then(|limits| {
            let line = limits.lines().find_map(|line| line.strip_prefix("Max open files"))?;
            line.split_whitespace().next()?.parse().ok()
        });
        Some(Self {
            cpu_seconds,
            resident_bytes: kilobytes("VmRSS").unwrap_or(0) * 1024,
            virtual_bytes: kilobytes("VmSize").unwrap_or(0) * 1024,
            threads: kilobytes("Threads").unwrap_or(0),
            start_time_seconds,
            open_fds: 0,
            max_fds,
        })
    }
}

/// The `btime` line of `/proc/stat`: when the machine booted, in Unix seconds.
fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat.lines().find_map(|line| line.strip_prefix("btime "))?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_parse_into_a_reading() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 7 0 \
                    12000 123456789 2000 18446744073709551615";
        let status = "Name:\tweaprous\nVmSize:\t  120000 kB\nVmRSS:\t    8000 kB\nThreads:\t7\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let reading = Reading::parse(stat, status, boot_time("cpu 1 2 3\nbtime 1700000000\n"), Some(limits)).unwrap();
        assert_eq!(
            reading,
            Reading {
                cpu_seconds: 3.0,
                resident_bytes: 8000 * 1024,
                virtual_bytes: 120000 * 1024,
                threads: 7,
                start_time_seconds: 1_700_000_120.0,
                open_fds: 0,
                max_fds: Some(1024),
            }
        );
    }

    #[test]
    fn this_process_is_read_and_rendered() {
        let mut registry = Registry::default();
        register(&mut registry);
        let text = super::super::Metrics::new(registry).render();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name}\n{text}");
        }
        assert!(text.contains(&format!("weaprous_build_info{{version=\"{VERSION}\",commit=\"")), "{text}");
        let reading = Reading::now().unwrap();
        assert!(reading.resident_bytes > 0 && reading.open_fds > 0 && reading.start_time_seconds > 1e9, "{reading:?}");
    }
}
