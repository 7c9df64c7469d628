//! What the kernel says about our processes and the machine: resident memory, CPU
//! time, and how busy the whole machine was (so a noisy run shows as noisy).

use std::collections::BTreeMap;
use std::time::Instant;

/// Memory of one process, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS` from `/proc/PID/status`.
    pub rss: u64,
    /// `RssAnon`: heap and stacks, without the mapped binary.
    pub rss_anon: u64,
    /// `Pss` from `/proc/PID/smaps_rollup`: shared pages split between their users.
    pub pss: u64,
}

/// Reads the memory of `pid`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Ok(Memory {
        rss: kib_field(&status, "VmRSS:").unwrap_or(0) * 1024,
        rss_anon: kib_field(&status, "RssAnon:").unwrap_or(0) * 1024,
        pss: kib_field(&rollup, "Pss:").unwrap_or(0) * 1024,
    })
}

/// The first process under `root` (itself included, depth first) running `exe`.
pub fn descendant_running(root: u32, exe: &std::path::Path) -> Option<u32> {
    if std::fs::read_link(format!("/proc/{root}/exe")).is_ok_and(|path| path == exe) {
        return Some(root);
    }
    let tasks = std::fs::read_dir(format!("/proc/{root}/task")).ok()?;
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|pid| pid.parse().ok()) {
            if let Some(found) = descendant_running(child, exe) {
                return Some(found);
            }
        }
    }
    None
}

/// Bytes the kernel holds for TCP sockets (`/proc/net/sockstat`, `TCP: ... mem N`
/// pages): loopback connections cost memory outside any process's RSS.
pub fn tcp_kernel_bytes() -> u64 {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let pages = sockstat
        .lines()
        .find(|line| line.starts_with("TCP:"))
        .and_then(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.iter().position(|field| *field == "mem").and_then(|at| fields.get(at + 1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    pages * 4096
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// CPU time of some processes and of the whole machine at one instant.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    /// Process label to CPU seconds (all threads, user and system).
    processes: BTreeMap<String, f64>,
    /// Busy CPU seconds of the whole machine (all cores).
    machine_busy: f64,
}

/// Cores used over an interval: per process, ours together, and everything else on the
/// machine (builds, other benchmarks).
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    pub processes: BTreeMap<String, f64>,
    pub ours: f64,
    pub others: f64,
}

/// Takes CPU snapshots of a fixed set of processes (and this one, as `bench`).
#[derive(Debug, Clone)]
pub struct CpuMeter {
    processes: Vec<(String, u32)>,
    ticks_per_second: f64,
}

impl CpuMeter {
    pub fn new(processes: Vec<(String, u32)>) -> Self {
        Self { processes, ticks_per_second: ticks_per_second() }
    }

    pub fn snapshot(&self) -> CpuSnapshot {
        let mut processes = BTreeMap::new();
        // Processes sharing a label add up (a database's backends, as `postgres`).
        for (label, pid) in &self.processes {
            if let Some(ticks) = process_ticks(&pid.to_string()) {
                *processes.entry(label.clone()).or_insert(0.0) += ticks / self.ticks_per_second;
            }
        }
        if let Some(ticks) = process_ticks("self") {
            processes.insert("bench".to_owned(), ticks / self.ticks_per_second);
        }
        CpuSnapshot { at: Instant::now(), processes, machine_busy: machine_busy_ticks() / self.ticks_per_second }
    }
}

impl CpuSnapshot {
    /// Average cores used between `self` and a later snapshot.
    pub fn until(&self, later: &CpuSnapshot) -> CpuUse {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-6);
        let processes: BTreeMap<String, f64> = later
            .processes
            .iter()
            .filter_map(|(label, end)| Some((label.clone(), (end - self.processes.get(label)?) / seconds)))
            .collect();
        let ours = processes.values().sum::<f64>();
        let machine = (later.machine_busy - self.machine_busy) / seconds;
        CpuUse { processes, ours, others: (machine - ours).max(0.0) }
    }
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find(|line| line.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of `/proc/<which>/stat`, in clock ticks.
fn process_ticks(which: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{which}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy ticks of all cores since boot: everything but idle and iowait.
fn machine_busy_ticks() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else { return 0.0 };
    let values: Vec<f64> = line.split_whitespace().skip(1).filter_map(|field| field.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: f64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    total - idle
}

/// `getconf CLK_TCK`, 100 (the Linux default) if that fails.
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let memory = memory(std::process::id()).unwrap();
        assert!(memory.rss > 0 && memory.rss_anon > 0);
        assert!(process_ticks("self").is_some());
        assert!(machine_busy_ticks() > 0.0);
    }

    #[test]
    fn kib_fields_are_read_by_name() {
        let status = "Name:\tpeer\nVmRSS:\t   1234 kB\nRssAnon:\t  1000 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(1234));
        assert_eq!(kib_field(status, "RssAnon:"), Some(1000));
        assert_eq!(kib_field(status, "Pss:"), None);
    }
}
