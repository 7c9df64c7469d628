//! Results as they come: one machine-readable line per scenario and round.
//!
//! Machine-readable lines start with `chatbench ` and are `key=value` pairs.

use std::fmt::Write;

use crate::fanout::FanoutResult;
use crate::ingest::IngestResult;
use crate::memory::MemoryResult;
use crate::procfs::CpuUse;

/// The line of a fan-out run.
pub fn fanout_line(round: usize, scenario: &str, system: &str, result: &FanoutResult) -> String {
    let mut line = format!(
        "chatbench round={round} scenario={scenario} system={system} posts_per_s={:.1} deliveries_per_s={:.0} \
         p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} samples={} expected={} received={} resets={} \
         post_errors={} skipped={}",
        result.posts_per_s,
        result.deliveries_per_s,
        result.latency.p50_ms,
        result.latency.p99_ms,
        result.latency.p999_ms,
        result.latency.max_ms,
        result.latency.samples,
        result.expected,
        result.received,
        result.resets,
        result.post_errors,
        result.skipped,
    );
    push_cpu(&mut line, &result.cpu);
    // CPU time per delivery, all our processes together: comparable across machines
    // of the same speed even when the load generator shares the cores.
    if result.deliveries_per_s > 0.0 {
        let _ = write!(line, " cpu_us_per_delivery={:.2}", result.cpu.ours * 1e6 / result.deliveries_per_s);
    }
    if let Some(error) = &result.first_error {
        let _ = write!(line, " first_error={error:?}");
    }
    line
}

/// The line of a memory run.
pub fn memory_line(round: usize, system: &str, result: &MemoryResult) -> String {
    format!(
        "chatbench round={round} scenario=idle_memory system={system} streams={} rss_before={} rss_after={} \
         rss_per_stream={:.0} anon_per_stream={:.0} pss_per_stream={:.0} tcp_kernel_per_stream={:.0}",
        result.streams,
        result.before.rss,
        result.after.rss,
        result.rss_per_stream(),
        result.anon_per_stream(),
        result.pss_per_stream(),
        result.tcp_kernel_per_stream(),
    )
}

/// The line of an ingestion run.
pub fn ingest_line(round: usize, path: &str, result: &IngestResult) -> String {
    let mut line = format!(
        "chatbench round={round} scenario=ingest path={path} messages_per_s={:.0} ack_p50_ms={:.3} ack_p99_ms={:.3} \
         ack_max_ms={:.3} errors={}",
        result.messages_per_s,
        result.ack_latency.p50_ms,
        result.ack_latency.p99_ms,
        result.ack_latency.max_ms,
        result.errors,
    );
    push_cpu(&mut line, &result.cpu);
    if result.messages_per_s > 0.0 {
        for (process, cores) in &result.cpu.processes {
            if *cores >= 0.005 {
                let _ = write!(
                    line,
                    " us_per_msg_{}={:.1}",
                    process.replace('-', "_"),
                    cores * 1e6 / result.messages_per_s
                );
            }
        }
    }
    if let Some(error) = &result.first_error {
        let _ = write!(line, " first_error={error:?}");
    }
    line
}

fn push_cpu(line: &mut String, cpu: &CpuUse) {
    for (process, cores) in &cpu.processes {
        let _ = write!(line, " cpu_{}={cores:.2}", process.replace('-', "_"));
    }
    let _ = write!(line, " cpu_ours={:.2} cpu_others={:.2}", cpu.ours, cpu.others);
}
