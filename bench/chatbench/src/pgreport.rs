//! The summary of the PostgreSQL ingestion comparison: medians over rounds with the
//! spread, each throughput also as a multiple of pgbench's single-row rate in the same
//! round (the median of the per-round ratios), and the targets.

use std::fmt::Write;

use crate::pg::ServerCounters;
use crate::pgingest::{PgRound, TrackerRun};
use crate::report::{Spread, Target, number};

/// The target: PostgreSQL ingestion at least this many times pgbench's rate.
pub const VERSUS_PGBENCH: f64 = 1.5;
/// The target for the acknowledgement p99, ms.
pub const ACK_P99_MS: f64 = 20.0;

/// One row of the table.
struct Row {
    key: &'static str,
    label: &'static str,
    value: fn(&PgRound) -> Option<f64>,
    /// Also shown as a multiple of pgbench's single-row tps of the same round.
    versus_pgbench: bool,
    /// On the ratio when `versus_pgbench`, else on the value.
    target: Option<Target>,
}

fn rows() -> Vec<Row> {
    let row = |key, label, value, versus_pgbench, target| Row { key, label, value, versus_pgbench, target };
    let throughput = Some(Target::AtLeast(VERSUS_PGBENCH));
    let p99 = Some(Target::AtMost(ACK_P99_MS));
    vec![
        row(
            "pg1_msgs_per_s",
            "PostgreSQL, 1 tracker: msgs/s",
            |r| Some(r.one.as_ref()?.ingest.messages_per_s),
            true,
            throughput,
        ),
        row(
            "pg1_ack_p50_ms",
            "PostgreSQL, 1 tracker: ack p50 (ms)",
            |r| Some(r.one.as_ref()?.ingest.ack_latency.p50_ms),
            false,
            None,
        ),
        row(
            "pg1_ack_p99_ms",
            "PostgreSQL, 1 tracker: ack p99 (ms)",
            |r| Some(r.one.as_ref()?.ingest.ack_latency.p99_ms),
            false,
            p99,
        ),
        row(
            "pg2_msgs_per_s",
            "PostgreSQL, 2 trackers: msgs/s",
            |r| Some(r.two.as_ref()?.ingest.messages_per_s),
            true,
            throughput,
        ),
        row(
            "pg2_ack_p50_ms",
            "PostgreSQL, 2 trackers: ack p50 (ms)",
            |r| Some(r.two.as_ref()?.ingest.ack_latency.p50_ms),
            false,
            None,
        ),
        row(
            "pg2_ack_p99_ms",
            "PostgreSQL, 2 trackers: ack p99 (ms)",
            |r| Some(r.two.as_ref()?.ingest.ack_latency.p99_ms),
            false,
            p99,
        ),
        row("pgbench_tps", "pgbench single-row INSERT: tps", |r| Some(r.pgbench.as_ref()?.tps), false, None),
        row(
            "pgbench_p50_ms",
            "pgbench single-row INSERT: p50 (ms)",
            |r| Some(r.pgbench.as_ref()?.latency.p50_ms),
            false,
            None,
        ),
        row(
            "pgbench_p99_ms",
            "pgbench single-row INSERT: p99 (ms)",
            |r| Some(r.pgbench.as_ref()?.latency.p99_ms),
            false,
            None,
        ),
        row(
            "embedded_msgs_per_s",
            "embedded (SQLite) tracker: msgs/s",
            |r| Some(r.embedded.as_ref()?.messages_per_s),
            true,
            None,
        ),
        row(
            "embedded_ack_p99_ms",
            "embedded (SQLite) tracker: ack p99 (ms)",
            |r| Some(r.embedded.as_ref()?.ack_latency.p99_ms),
            false,
            None,
        ),
        row(
            "pgbench_multi_row_rows_per_s",
            "ceiling: N-row INSERT/tx, 1 client: rows/s",
            |r| Some(r.multi_row.as_ref()?.rows_per_s),
            true,
            None,
        ),
        row(
            "pgbench_pipelined_rows_per_s",
            "ceiling: N pipelined INSERTs/tx, 1 client: rows/s",
            |r| Some(r.pipelined.as_ref()?.rows_per_s),
            true,
            None,
        ),
        row(
            "pg1_commits_per_row",
            "PostgreSQL, 1 tracker: commits per row",
            |r| Some(per_row(&r.one.as_ref()?.server, |s| s.commits)),
            false,
            None,
        ),
        row(
            "pg1_wal_fsyncs_per_1000_rows",
            "PostgreSQL, 1 tracker: WAL fsyncs/1000 rows",
            |r| Some(1000.0 * per_row(&r.one.as_ref()?.server, |s| s.wal_syncs)),
            false,
            None,
        ),
        row(
            "pg2_commits_per_row",
            "PostgreSQL, 2 trackers: commits per row",
            |r| Some(per_row(&r.two.as_ref()?.server, |s| s.commits)),
            false,
            None,
        ),
        row(
            "pgbench_wal_fsyncs_per_1000_rows",
            "pgbench single-row: WAL fsyncs/1000 rows",
            |r| Some(1000.0 * per_row(&r.pgbench.as_ref()?.server, |s| s.wal_syncs)),
            false,
            None,
        ),
        row(
            "pg1_cpu_postgres",
            "PostgreSQL, 1 tracker: CPU of its backends (cores)",
            |r| cpu(r.one.as_ref()?, "postgres"),
            false,
            None,
        ),
        row(
            "pg1_cpu_tracker",
            "PostgreSQL, 1 tracker: CPU of the tracker (cores)",
            |r| cpu(r.one.as_ref()?, "tracker"),
            false,
            None,
        ),
        row(
            "pg1_cpu_bench",
            "PostgreSQL, 1 tracker: CPU of the load generator (cores)",
            |r| cpu(r.one.as_ref()?, "bench"),
            false,
            None,
        ),
    ]
}

fn per_row(server: &ServerCounters, what: fn(&ServerCounters) -> f64) -> f64 {
    if server.inserted > 0.0 { what(server) / server.inserted } else { f64::NAN }
}

fn cpu(run: &TrackerRun, process: &str) -> Option<f64> {
    run.ingest.cpu.processes.get(process).copied()
}

/// The table and one `chatbench median figure=...` line per row measured.
pub fn summary(rounds: &[PgRound], loads: &[f64]) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\n== chatbench pg-ingest summary: {} round(s), medians [min-max over rounds]; x pgbench is the median of \
         the per-round ratios to pgbench's single-row tps; load average at round starts: {}",
        rounds.len(),
        loads.iter().map(|load| format!("{load:.2}")).collect::<Vec<_>>().join(", ")
    );
    let _ =
        writeln!(text, "{:<56} {:>26} {:>22} {:>10} {:>5}", "figure", "median [min-max]", "x pgbench", "target", "met");
    let mut lines = String::new();
    for row in rows() {
        let Some(value) = Spread::of(rounds.iter().filter_map(row.value)) else { continue };
        let ratio = if row.versus_pgbench {
            Spread::of(rounds.iter().filter_map(|round| {
                let pgbench = round.pgbench.as_ref()?.tps;
                (pgbench > 0.0).then(|| (row.value)(round)).flatten().map(|value| value / pgbench)
            }))
        } else {
            None
        };
        let judged = if row.versus_pgbench { ratio.as_ref().map(|ratio| ratio.median) } else { Some(value.median) };
        let met = row.target.zip(judged).map(|(target, judged)| target.met_by(judged));
        let target = row.target.map_or("-".to_owned(), |target| match (row.versus_pgbench, target) {
            (true, Target::AtLeast(floor)) => format!(">= {floor}x"),
            _ => target.to_string(),
        });
        let _ = writeln!(
            text,
            "{:<56} {:>26} {:>22} {:>10} {:>5}",
            row.label,
            format!("{} [{}-{}]", number(value.median), number(value.min), number(value.max)),
            ratio.as_ref().map_or("-".to_owned(), |r| format!("{:.2}x [{:.2}-{:.2}]", r.median, r.min, r.max)),
            target,
            met.map_or("-", |met| if met { "yes" } else { "NO" }),
        );
        let _ = write!(
            lines,
            "chatbench median figure={} value={:.3} min={:.3} max={:.3} rounds={}",
            row.key, value.median, value.min, value.max, value.count
        );
        if let Some(ratio) = &ratio {
            let _ = write!(
                lines,
                " x_pgbench={:.3} x_pgbench_min={:.3} x_pgbench_max={:.3}",
                ratio.median, ratio.min, ratio.max
            );
        }
        if let Some(met) = met {
            let _ = write!(lines, " target={target:?} met={met}");
        }
        lines.push('\n');
    }
    text.push('\n');
    text.push_str(&lines);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::IngestResult;
    use crate::pg::PgbenchResult;

    #[test]
    fn throughput_is_judged_against_pgbench_of_the_same_round() {
        let round = |pg: f64, pgbench: f64| PgRound {
            one: Some(TrackerRun {
                ingest: IngestResult { messages_per_s: pg, ..IngestResult::default() },
                server: ServerCounters { commits: 50.0, inserted: 100.0, ..ServerCounters::default() },
            }),
            pgbench: Some(PgbenchResult { tps: pgbench, ..PgbenchResult::default() }),
            ..PgRound::default()
        };
        // Ratios 2.0, 1.0 and 1.6: median 1.6, met.
        let text = summary(&[round(16_000.0, 8_000.0), round(8_000.0, 8_000.0), round(12_800.0, 8_000.0)], &[0.5]);
        assert!(text.contains("figure=pg1_msgs_per_s value=12800.000"), "{text}");
        assert!(
            text.contains("x_pgbench=1.600 x_pgbench_min=1.000 x_pgbench_max=2.000 target=\">= 1.5x\" met=true"),
            "{text}"
        );
        assert!(text.contains("figure=pg1_commits_per_row value=0.500"), "{text}");
        assert!(!text.contains("figure=pg2_msgs_per_s"), "{text}");
        let missed = summary(&[round(10_000.0, 8_000.0)], &[0.5]);
        assert!(missed.contains("x_pgbench=1.250") && missed.contains("met=false"), "{missed}");
    }
}
