//! PostgreSQL for the ingestion comparison: a fresh database per run (created and
//! dropped with `psql`), the server's WAL and commit counters, and `pgbench` as the
//! competitor: the same message rows, inserted by a plain client.
//!
//! `psql` and `pgbench` run as child processes (Debian's `postgresql-client`), so the
//! benchmark needs no database driver of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::probe::{Latency, new_histogram};

/// The server when neither `--database-url` nor `WEAPROUS_BENCH_DATABASE_URL` is set.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The environment variable naming the server.
pub const SERVER_ENV: &str = "WEAPROUS_BENCH_DATABASE_URL";
/// Set (to anything) to run pgbench's single-row baseline with prepared statements.
pub const PREPARED_ENV: &str = "CHATBENCH_PGBENCH_PREPARED";
/// How long one `psql` call may take.
const PSQL_TIMEOUT: Duration = Duration::from_secs(60);

/// The tracker's advisory log lock ("trklog"), taken by the batch scripts as the
/// tracker takes it.
const LOG_LOCK: i64 = 0x7472_6b6c_6f67;

/// `tracker_messages` and its neighbours as the tracker's migrations leave them (no
/// foreign key on the messages since migration 2; the `xid` column and its default),
/// for pgbench's scratch database.
const MESSAGE_TABLES: &str = "
    CREATE TABLE tracker_channels (name TEXT PRIMARY KEY, created_at BIGINT NOT NULL, created_by TEXT);
    CREATE TABLE tracker_members (
        channel TEXT NOT NULL REFERENCES tracker_channels(name), username TEXT NOT NULL,
        joined_at BIGINT NOT NULL, PRIMARY KEY (channel, username));
    CREATE TABLE tracker_messages (
        id BIGSERIAL PRIMARY KEY, channel TEXT NOT NULL,
        username TEXT NOT NULL, sender_ip TEXT NOT NULL, sender_port INTEGER NOT NULL,
        text TEXT NOT NULL, ts BIGINT NOT NULL, traceparent TEXT,
        xid xid8 NOT NULL DEFAULT pg_current_xact_id());
    CREATE INDEX tracker_messages_by_channel ON tracker_messages(channel, id);
    INSERT INTO tracker_channels (name, created_at) VALUES ('ingest', 0);
    INSERT INTO tracker_members (channel, username, joined_at)
        SELECT 'ingest', 'i' || n, 0 FROM generate_series(0, 1023) AS n;
";

/// A database of its own on the server, dropped (with its connections) on drop.
pub struct BenchDatabase {
    server: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    /// Creates `chatbench_<label>_<pid>_<time>` on the server at `server` (a URL of any
    /// database there, used for `CREATE DATABASE`).
    pub async fn create(server: &str, label: &str) -> anyhow::Result<Self> {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() % 1_000_000_000;
        let name = format!("chatbench_{label}_{}_{stamp}", std::process::id());
        psql(server, &format!("CREATE DATABASE {name}")).await.context("failed to create the bench database")?;
        let mut url = reqwest::Url::parse(server).context("the database URL is not a URL")?;
        url.set_path(&format!("/{name}"));
        Ok(Self { server: server.to_owned(), name, url: url.to_string() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        // Blocking, in drop: it runs between measurements, and must run even on error.
        let dropped = std::process::Command::new("psql")
            .args([&self.server, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !dropped.is_ok_and(|status| status.success()) {
            eprintln!("warning: failed to drop the bench database {}", self.name);
        }
    }
}

/// The server URL without its password, for the report.
pub fn describe(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

/// Runs one SQL text with `psql` and returns its unaligned, tuples-only output.
pub async fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let run = Command::new("psql")
        .args([url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PSQL_TIMEOUT, run)
        .await
        .map_err(|_| anyhow::anyhow!("psql did not finish within {PSQL_TIMEOUT:?}"))?
        .context("failed to run psql (apt-get install postgresql-client)")?;
    if !output.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The server's counters that tell how inserts became commits and fsyncs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerCounters {
    /// `pg_stat_database.xact_commit` of the database (read-only ones included).
    pub commits: f64,
    /// `pg_stat_database.tup_inserted` of the database.
    pub inserted: f64,
    /// `pg_stat_wal.wal_sync`: WAL fsyncs, server-wide.
    pub wal_syncs: f64,
    /// `pg_stat_wal.wal_records`, server-wide.
    pub wal_records: f64,
}

impl ServerCounters {
    /// Reads the counters of `database` (statistics are flushed at transaction end,
    /// at most a second late; the windows here are much longer).
    pub async fn read(server: &str, database: &str) -> anyhow::Result<Self> {
        let sql = format!(
            "SELECT d.xact_commit, d.tup_inserted, w.wal_sync, w.wal_records
             FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = '{database}'"
        );
        let text = psql(server, &sql).await?;
        let numbers: Vec<f64> = text.split('|').filter_map(|field| field.trim().parse().ok()).collect();
        let [commits, inserted, wal_syncs, wal_records] = numbers[..] else {
            bail!("unexpected statistics from the server: {text:?}");
        };
        Ok(Self { commits, inserted, wal_syncs, wal_records })
    }

    /// What happened from `self` to `later`, per second over `seconds`.
    pub fn rate_until(&self, later: &Self, seconds: f64) -> Self {
        Self {
            commits: (later.commits - self.commits) / seconds,
            inserted: (later.inserted - self.inserted) / seconds,
            wal_syncs: (later.wal_syncs - self.wal_syncs) / seconds,
            wal_records: (later.wal_records - self.wal_records) / seconds,
        }
    }
}

/// A pgbench workload: a script over the message table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The competitor: one 128-byte message row per transaction (autocommit INSERT).
    SingleRow,
    /// The tracker's batch as one statement: lock, one multi-row INSERT of `n` rows,
    /// notify, commit. Its rows/s is the ceiling of a batch of that size.
    MultiRow(usize),
    /// The tracker's batch as the tracker sends it: lock, `n` single-row
    /// `INSERT ... SELECT ... WHERE EXISTS (member)` in a pipeline, notify, commit.
    Pipelined(usize),
}

/// One pgbench run.
#[derive(Debug, Clone, Copy)]
pub struct PgbenchRun {
    pub workload: Workload,
    pub clients: usize,
    pub threads: usize,
    pub seconds: u64,
    pub message_size: usize,
}

/// What one pgbench run measured.
#[derive(Debug, Clone, Default)]
pub struct PgbenchResult {
    /// Transactions per second (pgbench's, without connection time).
    pub tps: f64,
    /// Message rows per second (`tps` times the rows of a transaction).
    pub rows_per_s: f64,
    /// Per-transaction latency, from pgbench's transaction log.
    pub latency: Latency,
    pub failed: u64,
    pub server: ServerCounters,
    /// The command line, for the report.
    pub command: String,
}

impl Workload {
    pub fn rows(self) -> usize {
        match self {
            Workload::SingleRow => 1,
            Workload::MultiRow(rows) | Workload::Pipelined(rows) => rows,
        }
    }

    /// The pgbench script; `text` is the message text (no quotes in it).
    fn script(self, text: &str) -> String {
        let columns = "tracker_messages (channel, username, sender_ip, sender_port, text, ts, traceparent)";
        let row = format!("'ingest', 'i' || (:client_id % 1024), '127.0.0.1', 9001, '{text}', 1765000000000, NULL");
        match self {
            Workload::SingleRow => format!("INSERT INTO {columns} VALUES ({row});\n"),
            Workload::MultiRow(rows) => format!(
                "BEGIN;\nSELECT pg_advisory_xact_lock({LOG_LOCK});\n\
                 INSERT INTO {columns} SELECT {row} FROM generate_series(1, {rows});\n\
                 SELECT pg_notify('tracker_log', '');\nCOMMIT;\n"
            ),
            Workload::Pipelined(rows) => {
                let insert = format!(
                    "INSERT INTO {columns} SELECT {row} WHERE EXISTS (SELECT 1 FROM tracker_members \
                     WHERE channel = 'ingest' AND username = 'i' || (:client_id % 1024)) RETURNING id;\n"
                );
                format!(
                    "BEGIN;\nSELECT pg_advisory_xact_lock({LOG_LOCK});\n\\startpipeline\n{}\\endpipeline\n\
                     SELECT pg_notify('tracker_log', '');\nCOMMIT;\n",
                    insert.repeat(rows)
                )
            }
        }
    }

    pub fn label(self) -> String {
        match self {
            Workload::SingleRow => "single-row INSERT per transaction".to_owned(),
            Workload::MultiRow(rows) => format!("{rows}-row INSERT + lock + notify per transaction"),
            Workload::Pipelined(rows) => format!("{rows} pipelined INSERTs + lock + notify per transaction"),
        }
    }
}

/// Runs pgbench on a scratch database of its own (created, filled with the message
/// tables, dropped), as a child process.
pub async fn pgbench(pgbench: &Path, server: &str, run: PgbenchRun) -> anyhow::Result<PgbenchResult> {
    let database = BenchDatabase::create(server, "pgbench").await?;
    psql(database.url(), MESSAGE_TABLES).await.context("failed to create pgbench's tables")?;
    let dir = tempfile::Builder::new().prefix("chatbench-pgbench-").tempdir()?;
    let script = dir.path().join("insert.sql");
    std::fs::write(&script, run.workload.script(&"x".repeat(run.message_size)))?;
    let log_prefix = dir.path().join("txlog");
    let mut args: Vec<String> = vec![
        "-n".into(),
        "-c".into(),
        run.clients.to_string(),
        "-j".into(),
        run.threads.min(run.clients).to_string(),
        "-T".into(),
        run.seconds.to_string(),
        "-f".into(),
        "insert.sql".into(),
    ];
    if matches!(run.workload, Workload::Pipelined(_)) || std::env::var_os(PREPARED_ENV).is_some() {
        // A pipeline needs the extended protocol; prepared, as the tracker's batch is.
        // The single-row baseline uses pgbench's default (simple) protocol, as the
        // target was set with; CHATBENCH_PGBENCH_PREPARED=1 prepares it too.
        args.extend(["-M".into(), "prepared".into()]);
    }
    let command = format!("pgbench {}", args.join(" "));
    args.extend(["-l".into(), format!("--log-prefix={}", log_prefix.display()), database.url().to_owned()]);
    let before = ServerCounters::read(server, database.name()).await?;
    let started = std::time::Instant::now();
    let output = Command::new(pgbench)
        .args(&args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("failed to run {} (apt-get install postgresql-contrib)", pgbench.display()))?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = ServerCounters::read(server, database.name()).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let (tps, failed) = parse_summary(&stdout).with_context(|| format!("unexpected pgbench output:\n{stdout}"))?;
    let latency = log_latency(&log_files(dir.path(), "txlog")?)?;
    Ok(PgbenchResult {
        tps,
        rows_per_s: tps * run.workload.rows() as f64,
        latency,
        failed,
        server: before.rate_until(&after, elapsed),
        command,
    })
}

/// `tps` and failed transactions from pgbench's summary.
fn parse_summary(stdout: &str) -> Option<(f64, u64)> {
    let tps = stdout.lines().find_map(|line| line.strip_prefix("tps = "))?.split_whitespace().next()?.parse().ok()?;
    let failed = stdout
        .lines()
        .find_map(|line| line.strip_prefix("number of failed transactions: "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Some((tps, failed))
}

fn log_files(dir: &Path, prefix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with(prefix)) {
            files.push(path);
        }
    }
    Ok(files)
}

/// Latency over pgbench's per-transaction logs: `client tx latency_us script epoch us`.
fn log_latency(files: &[PathBuf]) -> anyhow::Result<Latency> {
    let mut latencies = new_histogram();
    for file in files {
        let text = std::fs::read_to_string(file)?;
        for line in text.lines() {
            if let Some(micros) = line.split_whitespace().nth(2).and_then(|field| field.parse::<u64>().ok()) {
                latencies.saturating_record(micros);
            }
        }
    }
    Ok(Latency::of(&latencies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_and_the_transaction_log_are_read() {
        let stdout = "number of transactions actually processed: 81234\nnumber of failed transactions: 3 (0.004%)\n\
                      latency average = 7.876 ms\ntps = 8123.456789 (without initial connection time)\n";
        assert_eq!(parse_summary(stdout), Some((8123.456789, 3)));
        assert_eq!(parse_summary("no summary"), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("txlog.1"), "0 0 1000 0 1765000000 1\n0 1 3000 0 1765000000 2\n").unwrap();
        std::fs::write(dir.path().join("txlog.1.1"), "1 0 2000 0 1765000000 3\n").unwrap();
        std::fs::write(dir.path().join("insert.sql"), "not a log").unwrap();
        let latency = log_latency(&log_files(dir.path(), "txlog").unwrap()).unwrap();
        assert_eq!(latency.samples, 3);
        assert!((latency.p50_ms - 2.0).abs() < 0.01, "{latency:?}");
        assert!((latency.max_ms - 3.0).abs() < 0.01, "{latency:?}");
    }

    #[test]
    fn the_scripts_insert_message_rows_and_the_batches_lock_and_notify() {
        let single = Workload::SingleRow.script("abc");
        assert_eq!(single.matches("INSERT INTO tracker_messages").count(), 1);
        assert!(!single.contains("BEGIN"));
        let multi = Workload::MultiRow(64).script("abc");
        assert!(multi.contains("generate_series(1, 64)") && multi.contains("pg_advisory_xact_lock"));
        let pipelined = Workload::Pipelined(8).script("abc");
        assert_eq!(pipelined.matches("INSERT INTO").count(), 8);
        assert!(pipelined.contains("\\startpipeline") && pipelined.contains("pg_notify"));
        assert_eq!(Workload::Pipelined(8).rows(), 8);
    }

    #[test]
    fn the_described_server_has_no_password() {
        assert_eq!(describe("postgres://bench:secret@db:5432/postgres"), "postgres://bench@db:5432/postgres");
    }
}
