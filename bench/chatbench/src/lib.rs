//! The real-time benchmark of WeApRous (issue 4), as a program: it starts the real
//! system (the tracker and two peers, child processes of the release `weaprous`
//! binary, on loopback), acts as hundreds of users, and measures:
//!
//! 1. channel fan-out at a fixed rate: send-to-receive latency p50/p99/max with every
//!    member holding a `GET /events` stream, members spread over two peers;
//! 2. saturated fan-out: the deliveries per second the system sustains;
//! 3. memory per idle event stream, on a fresh peer;
//! 4. durable ingestion: acknowledged channel messages per second, through a peer
//!    (the user path) and straight to the tracker (where durability happens);
//! 5. the ceiling: the same fan-out through `nats-server`, same subscriber count and
//!    message size, and the ratios;
//! 6. on request (`--only pg-ingest`), durable ingestion on PostgreSQL through one and
//!    two tracker replicas, beside pgbench inserting the same rows (see [`pgingest`]).
//!
//! Several rounds; the summary gives medians and the spread. Everything is bounded in
//! time and stays on loopback; child processes die with the benchmark.
//!
//! # Layout
//! `cluster` starts the services, `chat` acts as users, `probe` tallies what
//! receivers get, `fanout`, `memory` and `ingest` are the scenarios, `nats` the
//! ceiling, `procfs` reads memory and CPU from `/proc`, `lines` prints each run's
//! line as it comes and `report` the summary; `pg`, `pgingest` and `pgreport` are the
//! PostgreSQL comparison.

pub mod chat;
pub mod cluster;
pub mod fanout;
pub mod ingest;
pub mod lines;
pub mod memory;
pub mod nats;
pub mod pg;
pub mod pgingest;
pub mod pgreport;
pub mod probe;
pub mod procfs;
pub mod report;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use wire::names::ChannelName;

use crate::chat::{ChannelPoster, Chat};
use crate::cluster::Cluster;
use crate::fanout::Plan;
use crate::nats::NatsServer;
use crate::probe::Probe;
use crate::procfs::CpuMeter;
use crate::report::Round;

/// Command-line settings. `--quick` is a smoke run: one short round, fewer streams.
#[derive(Debug, Clone, Parser)]
#[command(name = "chatbench", about = "WeApRous real-time benchmark: fan-out, idle streams, ingestion, NATS ceiling")]
pub struct Args {
    /// The `weaprous` binary (default: next to this one, e.g. target/release/weaprous).
    #[arg(long)]
    pub weaprous: Option<PathBuf>,
    /// The `nats-server` binary.
    #[arg(long, default_value = "nats-server")]
    pub nats_server: PathBuf,
    /// Scenarios to run (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Scenario>,
    /// A smoke run: 1 round, 1 s warm-up, 3 s windows, 500 idle streams.
    #[arg(long)]
    pub quick: bool,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Channel members, each with an event stream, spread over the two peers.
    #[arg(long, default_value_t = 200)]
    pub members: usize,
    /// Deliveries per second of the fixed-rate run (messages/s times members).
    #[arg(long, default_value_t = 10_000.0)]
    pub deliveries_per_s: f64,
    /// Message text size in bytes (the NATS payload size too).
    #[arg(long, default_value_t = 128)]
    pub message_size: usize,
    /// Warm-up before each measured window, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Measured window of the fan-out runs, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Concurrent senders of the saturated fan-out.
    #[arg(long, default_value_t = 16)]
    pub senders: usize,
    /// Saturated fan-out: messages in flight (not yet delivered to every member) at most.
    #[arg(long, default_value_t = 256)]
    pub window: u64,
    /// Idle event streams opened for the memory figure.
    #[arg(long, default_value_t = 2000)]
    pub idle_streams: usize,
    /// Users the idle streams are spread over.
    #[arg(long, default_value_t = 20)]
    pub idle_users: usize,
    /// Concurrent posters (one user each) of the ingestion runs.
    #[arg(long, default_value_t = 64)]
    pub ingest_concurrency: usize,
    /// Measured window of each ingestion run, seconds (pg-ingest: pgbench's `-T` too).
    #[arg(long, default_value_t = 5.0)]
    pub ingest_duration: f64,
    /// pg-ingest: a URL of the PostgreSQL server, where fresh databases are created and
    /// dropped (default: `WEAPROUS_BENCH_DATABASE_URL`, else the local server).
    #[arg(long)]
    pub database_url: Option<String>,
    /// pg-ingest: the `pgbench` binary.
    #[arg(long, default_value = "pgbench")]
    pub pgbench: PathBuf,
    /// pg-ingest: pgbench's worker threads (`-j`).
    #[arg(long, default_value_t = 2)]
    pub pgbench_threads: usize,
    /// pg-ingest: rows per transaction of the batch ceilings (pgbench, one client);
    /// 0 leaves them out.
    #[arg(long, default_value_t = 64)]
    pub pg_batch: usize,
    /// Stops the benchmark (and the services) if the whole run takes longer, seconds.
    #[arg(long, default_value_t = 900)]
    pub max_seconds: u64,
    /// `RUST_LOG` of the services.
    #[arg(long, default_value = "info")]
    pub service_log: String,
    /// `KEY=VALUE` for every service's environment (repeatable), to measure variants,
    /// e.g. `MALLOC_ARENA_MAX=1`.
    #[arg(long = "service-env", value_parser = parse_key_value)]
    pub service_env: Vec<(String, String)>,
    /// Runs the memory scenario's peer under this program, for profiling, e.g.
    /// `--memory-peer-wrapper "heaptrack -o /tmp/peer"` (its memory figure is then
    /// the wrapper's, not the peer's).
    #[arg(long)]
    pub memory_peer_wrapper: Option<String>,
}

/// The scenarios, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Fan-out at a fixed rate (latency).
    Fixed,
    /// Saturated fan-out (throughput).
    Saturated,
    /// Memory per idle event stream.
    Memory,
    /// Durable ingestion, via a peer and at the tracker.
    Ingest,
    /// The NATS ceiling (its fan-out runs follow `fixed` and `saturated`, its memory
    /// run follows `memory`).
    Nats,
    /// Durable ingestion on PostgreSQL (1 and 2 trackers) beside pgbench and the
    /// embedded tracker; runs alone, and only when asked.
    PgIngest,
}

impl Args {
    /// The settings with `--quick` applied.
    pub fn effective(mut self) -> Self {
        if self.quick {
            self.rounds = 1;
            self.warmup = 1.0;
            self.duration = 3.0;
            self.idle_streams = self.idle_streams.min(500);
            self.ingest_duration = 2.0;
        }
        if self.only.is_empty() {
            // PostgreSQL is not needed unless asked for.
            self.only = Scenario::value_variants().iter().copied().filter(|s| *s != Scenario::PgIngest).collect();
        }
        self
    }

    /// The PostgreSQL server of pg-ingest.
    pub fn database_server(&self) -> String {
        self.database_url
            .clone()
            .or_else(|| std::env::var(pg::SERVER_ENV).ok())
            .unwrap_or_else(|| pg::DEFAULT_SERVER.to_owned())
    }

    fn runs(&self, scenario: Scenario) -> bool {
        self.only.contains(&scenario)
    }

    fn plan(&self) -> Plan {
        Plan {
            warmup: Duration::from_secs_f64(self.warmup),
            duration: Duration::from_secs_f64(self.duration),
            drain: Duration::from_secs(3),
            message_size: self.message_size,
        }
    }
}

/// Runs the benchmark; machine-readable lines and the summary go to `out`, progress
/// to stderr.
pub async fn run(args: Args, out: &mut impl Write) -> anyhow::Result<Vec<Round>> {
    let args = args.effective();
    let weaprous = match &args.weaprous {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("weaprous"),
    };
    if args.runs(Scenario::PgIngest) {
        if args.only.len() > 1 {
            anyhow::bail!("pg-ingest runs alone: --only pg-ingest");
        }
        return run_pg_ingest(&args, weaprous, out).await;
    }
    writeln!(
        out,
        "== chatbench: {} cores, load average {:.2}, members={} message_size={}B fixed={} deliveries/s \
         warmup={}s duration={}s rounds={} senders={} window={} idle_streams={} ingest_concurrency={}",
        std::thread::available_parallelism().map_or(0, |cores| cores.get()),
        procfs::loadavg(),
        args.members,
        args.message_size,
        args.deliveries_per_s,
        args.warmup,
        args.duration,
        args.rounds,
        args.senders,
        args.window,
        args.idle_streams,
        args.ingest_concurrency,
    )?;
    let mut cluster = Cluster::start(&weaprous, 2, &args.service_log, &args.service_env).await?;
    let nats = if args.runs(Scenario::Nats) { Some(NatsServer::start(&args.nats_server).await?) } else { None };
    let chat = Chat::new(cluster.token_keys())?;
    let peers: Vec<String> = cluster.peers.iter().map(|peer| peer.url.clone()).collect();

    let fanout_channel = channel("fanout")?;
    let fanout_members = if args.runs(Scenario::Fixed) || args.runs(Scenario::Saturated) {
        eprintln!("setting up {} channel members", args.members);
        chat.members("f", args.members, &peers, &fanout_channel).await.context("fan-out set-up")?
    } else {
        Vec::new()
    };
    let ingest_channel = channel("ingest")?;
    let ingest_members = if args.runs(Scenario::Ingest) {
        eprintln!("setting up {} posters", args.ingest_concurrency);
        chat.members("i", args.ingest_concurrency, &peers, &ingest_channel).await.context("ingestion set-up")?
    } else {
        Vec::new()
    };

    let mut processes = cluster.pids();
    if let Some(nats) = &nats {
        processes.push(("nats".to_owned(), nats.pid));
    }
    let cpu_meter = CpuMeter::new(processes);
    let plan = args.plan();
    let rate = args.deliveries_per_s / args.members as f64;
    let probe = Probe::new(args.members);
    let nats_probe = Probe::new(args.members);
    let fanout_poster = ChannelPoster::new(&chat, fanout_members.clone(), fanout_channel, Vec::new());
    let mut rounds = Vec::new();
    for number in 1..=args.rounds {
        let mut round = Round { number, load: procfs::loadavg(), ..Round::default() };
        eprintln!("round {number}/{}: load average {:.2}", args.rounds, round.load);

        if args.runs(Scenario::Fixed) || args.runs(Scenario::Saturated) {
            let streams = chat.open_streams(&fanout_members, Some(probe.clone())).await.context("opening streams")?;
            if args.runs(Scenario::Fixed) {
                eprintln!("  weaprous fan-out at {rate:.1} messages/s to {} members", args.members);
                let result = fanout::fixed_rate(&probe, fanout_poster.clone(), rate, &plan, &cpu_meter).await;
                writeln!(out, "{}", lines::fanout_line(number, "fanout_fixed", "weaprous", &result))?;
                round.fanout_fixed = Some(result);
            }
            if args.runs(Scenario::Saturated) {
                eprintln!("  weaprous fan-out saturated ({} senders, window {})", args.senders, args.window);
                let result =
                    fanout::saturated(&probe, fanout_poster.clone(), args.senders, args.window, &plan, &cpu_meter)
                        .await;
                writeln!(out, "{}", lines::fanout_line(number, "fanout_saturated", "weaprous", &result))?;
                round.fanout_saturated = Some(result);
            }
            if streams.broken() > 0 {
                eprintln!("  warning: {} event streams ended during the fan-out runs", streams.broken());
            }
            drop(streams);
        }

        if let Some(nats) = &nats
            && (args.runs(Scenario::Fixed) || args.runs(Scenario::Saturated))
        {
            let subscribers = nats.subscribers(args.members, nats_probe.clone()).await.context("nats subscribers")?;
            let poster = nats.poster().await?;
            if args.runs(Scenario::Fixed) {
                eprintln!("  nats fan-out at {rate:.1} messages/s to {} subscribers", args.members);
                let result = fanout::fixed_rate(&nats_probe, poster.clone(), rate, &plan, &cpu_meter).await;
                writeln!(out, "{}", lines::fanout_line(number, "fanout_fixed", "nats", &result))?;
                round.nats_fixed = Some(result);
            }
            if args.runs(Scenario::Saturated) {
                eprintln!("  nats fan-out saturated");
                let result = fanout::saturated(&nats_probe, poster, args.senders, args.window, &plan, &cpu_meter).await;
                writeln!(out, "{}", lines::fanout_line(number, "fanout_saturated", "nats", &result))?;
                round.nats_saturated = Some(result);
            }
            subscribers.close().await;
        }

        if args.runs(Scenario::Ingest) {
            let warmup = Duration::from_secs_f64(args.warmup.min(1.0));
            let duration = Duration::from_secs_f64(args.ingest_duration);
            for (path, trackers) in [("peer", Vec::new()), ("tracker", vec![cluster.tracker.url.clone()])] {
                eprintln!("  ingestion via the {path}, {} concurrent posters", args.ingest_concurrency);
                let poster = ChannelPoster::new(&chat, ingest_members.clone(), ingest_channel.clone(), trackers);
                let result =
                    ingest::run(poster, args.ingest_concurrency, warmup, duration, args.message_size, &cpu_meter).await;
                writeln!(out, "{}", lines::ingest_line(number, path, &result))?;
                match path {
                    "peer" => round.ingest_peer = Some(result),
                    _ => round.ingest_tracker = Some(result),
                }
            }
        }

        if args.runs(Scenario::Memory) {
            eprintln!("  memory: {} idle event streams on a fresh peer", args.idle_streams);
            let wrapper: Vec<String> = args
                .memory_peer_wrapper
                .iter()
                .flat_map(|wrapper| wrapper.split_whitespace())
                .map(str::to_owned)
                .collect();
            let result =
                memory::weaprous(&mut cluster, &chat, number, args.idle_users, args.idle_streams, &wrapper).await?;
            writeln!(out, "{}", lines::memory_line(number, "weaprous", &result))?;
            round.memory = Some(result);
            if args.runs(Scenario::Nats) {
                eprintln!("  memory: {} idle nats connections on a fresh nats-server", args.idle_streams);
                let result = memory::nats(&args.nats_server, args.idle_streams).await?;
                writeln!(out, "{}", lines::memory_line(number, "nats", &result))?;
                round.nats_memory = Some(result);
            }
        }
        out.flush()?;
        rounds.push(round);
    }

    write!(out, "{}", report::summary(&rounds))?;
    for logs in cluster.log_summaries() {
        writeln!(out, "chatbench logs service={} warnings={} errors={}", logs.service, logs.warnings, logs.errors)?;
        for line in &logs.notable {
            writeln!(out, "chatbench log service={} line={line:?}", logs.service)?;
        }
    }
    writeln!(out, "chatbench load_average_end={:.2}", procfs::loadavg())?;
    out.flush()?;
    if let Some(nats) = nats {
        nats.stop().await;
    }
    cluster.stop().await;
    Ok(rounds)
}

/// `--only pg-ingest`: the rounds of the PostgreSQL comparison, then its summary.
async fn run_pg_ingest(args: &Args, weaprous: PathBuf, out: &mut impl Write) -> anyhow::Result<Vec<Round>> {
    let server = args.database_server();
    let settings = pgingest::Settings {
        weaprous,
        pgbench: args.pgbench.clone(),
        server: server.clone(),
        concurrency: args.ingest_concurrency,
        pgbench_threads: args.pgbench_threads,
        warmup: Duration::from_secs_f64(args.warmup.min(1.0)),
        duration: Duration::from_secs_f64(args.ingest_duration),
        message_size: args.message_size,
        batch: args.pg_batch,
        service_log: args.service_log.clone(),
        service_env: args.service_env.clone(),
    };
    let version = pg::psql(&server, "SHOW server_version").await.context("the PostgreSQL server does not answer")?;
    let sync = pg::psql(&server, "SHOW synchronous_commit").await?;
    writeln!(
        out,
        "== chatbench pg-ingest: {} cores, load average {:.2}, PostgreSQL {version} at {} (synchronous_commit={sync}), \
         clients={} message_size={}B warmup={:?} duration={:?} rounds={} pgbench_threads={} batch={}",
        std::thread::available_parallelism().map_or(0, |cores| cores.get()),
        procfs::loadavg(),
        pg::describe(&server),
        settings.concurrency,
        settings.message_size,
        settings.warmup,
        settings.duration,
        args.rounds,
        settings.pgbench_threads,
        settings.batch,
    )?;
    let mut rounds = Vec::new();
    for number in 1..=args.rounds {
        let load = procfs::loadavg();
        eprintln!("round {number}/{}: load average {load:.2}", args.rounds);
        let pg = pgingest::round(&settings, number, out).await?;
        rounds.push(Round { number, load, pg: Some(pg), ..Round::default() });
    }
    let pg_rounds: Vec<pgingest::PgRound> = rounds.iter().filter_map(|round| round.pg.clone()).collect();
    let loads: Vec<f64> = rounds.iter().map(|round| round.load).collect();
    write!(out, "{}", pgreport::summary(&pg_rounds, &loads))?;
    writeln!(out, "chatbench load_average_end={:.2}", procfs::loadavg())?;
    out.flush()?;
    Ok(rounds)
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    Ok((key.to_owned(), value.to_owned()))
}

fn channel(name: &str) -> anyhow::Result<ChannelName> {
    ChannelName::parse(name).map_err(|err| anyhow::anyhow!("bad channel name {name}: {err}"))
}
