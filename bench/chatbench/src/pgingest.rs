//! Durable ingestion on PostgreSQL, beside pgbench (`--only pg-ingest`).
//!
//! Each round runs, each on fresh state: the embedded tracker (SQLite, for scale), one
//! tracker on PostgreSQL, two tracker replicas on one PostgreSQL database (the posters
//! split between them), and pgbench inserting the same message rows one per
//! transaction with the same client count and duration. With `--pg-batch N` it also
//! runs two pgbench ceilings of one replica's group commit: a batch of N rows as one
//! multi-row INSERT, and as the tracker sends it (N pipelined INSERTs); one client,
//! since a replica has one batch in flight. The order alternates across rounds (ABBA),
//! so a drift of the machine does not favour one system.
//!
//! A tracker run starts its own services and database and stops them after; pgbench
//! gets a scratch database with the message tables (see [`crate::pg`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use wire::names::ChannelName;

use crate::chat::{ChannelPoster, Chat};
use crate::cluster::{Cluster, Layout};
use crate::ingest::{self, IngestResult};
use crate::pg::{BenchDatabase, PgbenchResult, PgbenchRun, ServerCounters, Workload};
use crate::procfs::CpuMeter;

/// What the comparison needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub weaprous: PathBuf,
    pub pgbench: PathBuf,
    /// A URL of the PostgreSQL server (any database on it; fresh ones are made).
    pub server: String,
    /// Closed-loop posters, and pgbench clients.
    pub concurrency: usize,
    /// pgbench `-j`.
    pub pgbench_threads: usize,
    pub warmup: Duration,
    /// The measured window, and pgbench's `-T` (whole seconds, rounded up).
    pub duration: Duration,
    pub message_size: usize,
    /// Rows per transaction of the batch ceilings; 0 leaves them out.
    pub batch: usize,
    pub service_log: String,
    pub service_env: Vec<(String, String)>,
}

/// The systems of one round, in the order of odd rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Embedded,
    PgOne,
    PgTwo,
    Pgbench,
    MultiRow,
    Pipelined,
}

/// A tracker run on PostgreSQL: the ingestion and what the server did meanwhile.
#[derive(Debug, Clone, Default)]
pub struct TrackerRun {
    pub ingest: IngestResult,
    /// Per second, over warm-up and window.
    pub server: ServerCounters,
}

/// What one round measured.
#[derive(Debug, Clone, Default)]
pub struct PgRound {
    pub order: Vec<System>,
    pub embedded: Option<IngestResult>,
    pub one: Option<TrackerRun>,
    pub two: Option<TrackerRun>,
    pub pgbench: Option<PgbenchResult>,
    pub multi_row: Option<PgbenchResult>,
    pub pipelined: Option<PgbenchResult>,
}

impl System {
    pub fn label(self) -> &'static str {
        match self {
            System::Embedded => "embedded",
            System::PgOne => "pg_1_tracker",
            System::PgTwo => "pg_2_trackers",
            System::Pgbench => "pgbench",
            System::MultiRow => "pgbench_multi_row",
            System::Pipelined => "pgbench_pipelined",
        }
    }
}

/// The order of round `number`: odd rounds forwards, even rounds backwards.
pub fn order(number: usize, batch: usize) -> Vec<System> {
    let mut systems = vec![System::Embedded, System::PgOne, System::PgTwo, System::Pgbench];
    if batch > 0 {
        systems.extend([System::MultiRow, System::Pipelined]);
    }
    if number.is_multiple_of(2) {
        systems.reverse();
    }
    systems
}

/// Runs round `number`; writes one line per system to `out` as it goes.
pub async fn round(settings: &Settings, number: usize, out: &mut impl std::io::Write) -> anyhow::Result<PgRound> {
    let mut round = PgRound { order: order(number, settings.batch), ..PgRound::default() };
    for system in round.order.clone() {
        eprintln!("  {}: {} concurrent clients", system.label(), settings.concurrency);
        let single = |workload| PgbenchRun {
            workload,
            clients: settings.concurrency,
            threads: settings.pgbench_threads,
            seconds: settings.duration.as_secs_f64().ceil() as u64,
            message_size: settings.message_size,
        };
        // The batch ceilings: one client, as one replica has one batch in flight.
        let batch = |workload| PgbenchRun { clients: 1, threads: 1, ..single(workload) };
        match system {
            System::Embedded => {
                let run = tracker_run(settings, 1, false).await.context("embedded run")?;
                writeln!(out, "{}", tracker_line(number, system, &run, false))?;
                round.embedded = Some(run.ingest);
            }
            System::PgOne | System::PgTwo => {
                let trackers = if system == System::PgOne { 1 } else { 2 };
                let run = tracker_run(settings, trackers, true).await.with_context(|| system.label())?;
                writeln!(out, "{}", tracker_line(number, system, &run, true))?;
                *(if system == System::PgOne { &mut round.one } else { &mut round.two }) = Some(run);
            }
            System::Pgbench | System::MultiRow | System::Pipelined => {
                let run = match system {
                    System::Pgbench => single(Workload::SingleRow),
                    System::MultiRow => batch(Workload::MultiRow(settings.batch)),
                    _ => batch(Workload::Pipelined(settings.batch)),
                };
                let result = crate::pg::pgbench(&settings.pgbench, &settings.server, run)
                    .await
                    .with_context(|| system.label())?;
                writeln!(out, "{}", pgbench_line(number, system, &result))?;
                let slot = match system {
                    System::Pgbench => &mut round.pgbench,
                    System::MultiRow => &mut round.multi_row,
                    _ => &mut round.pipelined,
                };
                *slot = Some(result);
            }
        }
        out.flush()?;
    }
    Ok(round)
}

/// Starts `trackers` trackers (on a fresh database when `postgres`) and two peers,
/// measures, and stops them and drops the database.
async fn tracker_run(settings: &Settings, trackers: usize, postgres: bool) -> anyhow::Result<TrackerRun> {
    let database = if postgres { Some(BenchDatabase::create(&settings.server, "tracker").await?) } else { None };
    let layout =
        Layout { trackers, peers: 2, database_url: database.as_ref().map(|database| database.url().to_owned()) };
    let cluster = Cluster::start_layout(&settings.weaprous, &layout, &settings.service_log, &settings.service_env)
        .await
        .context("starting the services")?;
    let outcome = measure(settings, &cluster, database.as_ref()).await;
    for logs in cluster.log_summaries().iter().filter(|logs| logs.errors > 0) {
        eprintln!("  warning: {} logged {} errors, first: {:?}", logs.service, logs.errors, logs.notable.first());
    }
    cluster.stop().await;
    // Dropped after the trackers stopped, so nothing reconnects to it.
    drop(database);
    outcome
}

async fn measure(
    settings: &Settings,
    cluster: &Cluster,
    database: Option<&BenchDatabase>,
) -> anyhow::Result<TrackerRun> {
    let channel = ChannelName::parse("ingest").map_err(|err| anyhow::anyhow!("bad channel name: {err}"))?;
    let chat = Chat::new(cluster.token_keys())?;
    let peers: Vec<String> = cluster.peers.iter().map(|peer| peer.url.clone()).collect();
    let members = chat.members("i", settings.concurrency, &peers, &channel).await.context("poster set-up")?;
    let mut processes = cluster.pids();
    if let Some(database) = database {
        // The trackers' connections, opened by now (the set-up used them): their CPU
        // is the database's share of the work.
        let sql = format!("SELECT pid FROM pg_stat_activity WHERE datname = '{}'", database.name());
        let pids = crate::pg::psql(&settings.server, &sql).await?;
        processes
            .extend(pids.lines().filter_map(|pid| pid.trim().parse().ok()).map(|pid| ("postgres".to_owned(), pid)));
    }
    let cpu_meter = CpuMeter::new(processes);
    let trackers = cluster.trackers().iter().map(|tracker| tracker.url.clone()).collect();
    let poster = ChannelPoster::new(&chat, members, channel, trackers);
    let before = counters(&settings.server, database).await?;
    let started = Instant::now();
    let ingest = ingest::run(
        poster,
        settings.concurrency,
        settings.warmup,
        settings.duration,
        settings.message_size,
        &cpu_meter,
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = counters(&settings.server, database).await?;
    let server = match (before, after) {
        (Some(before), Some(after)) => before.rate_until(&after, elapsed),
        _ => ServerCounters::default(),
    };
    Ok(TrackerRun { ingest, server })
}

/// The server's counters of `database`; none for the embedded store.
async fn counters(server: &str, database: Option<&BenchDatabase>) -> anyhow::Result<Option<ServerCounters>> {
    match database {
        Some(database) => ServerCounters::read(server, database.name()).await.map(Some),
        None => Ok(None),
    }
}

/// The line of a tracker run: the ingestion line, and on PostgreSQL what the server
/// did per message.
fn tracker_line(round: usize, system: System, run: &TrackerRun, postgres: bool) -> String {
    let mut line = crate::lines::ingest_line(round, system.label(), &run.ingest).replacen(
        "scenario=ingest",
        "scenario=pg_ingest",
        1,
    );
    if postgres {
        line.push_str(&server_fields(&run.server));
    }
    line
}

fn pgbench_line(round: usize, system: System, result: &PgbenchResult) -> String {
    format!(
        "chatbench round={round} scenario=pg_ingest path={} tps={:.0} rows_per_s={:.0} p50_ms={:.3} p99_ms={:.3} \
         max_ms={:.3} failed={}{} command={:?}",
        system.label(),
        result.tps,
        result.rows_per_s,
        result.latency.p50_ms,
        result.latency.p99_ms,
        result.latency.max_ms,
        result.failed,
        server_fields(&result.server),
        result.command,
    )
}

/// The server's work per inserted row: transactions committed (read-only ones too),
/// WAL records, and WAL fsyncs per thousand rows.
fn server_fields(server: &ServerCounters) -> String {
    let rows = server.inserted.max(1e-9);
    format!(
        " db_rows_per_s={:.0} db_commits_per_row={:.3} wal_records_per_row={:.2} wal_fsyncs_per_1000_rows={:.1}",
        server.inserted,
        server.commits / rows,
        server.wal_records / rows,
        server.wal_syncs * 1000.0 / rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_alternate_the_order() {
        let first = order(1, 64);
        assert_eq!(first.first(), Some(&System::Embedded));
        let mut second = order(2, 64);
        second.reverse();
        assert_eq!(first, second);
        assert_eq!(order(3, 0), vec![System::Embedded, System::PgOne, System::PgTwo, System::Pgbench]);
    }
}
