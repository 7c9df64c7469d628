//! The search benchmark (issue 13): `POST /search` on a peer over 1,000,000 channel
//! messages in 100 channels, on the embedded backend and on PostgreSQL.
//!
//! It boots the whole system in this process (release build), creates the channels
//! through the API, stops the tracker, writes the messages straight into its
//! database (the index triggers and generated columns do their work as for any
//! insert), starts the tracker again, and times `POST /search` requests from one
//! logged-in user, one after another, over HTTP: peer, tracker, store and back.
//! Run it with `bench/search.sh`; `--help` lists the flags.

use std::time::{Duration, Instant};

use testkit::{Backend, System, TestUser};

/// The vocabulary: this many words, drawn with Zipf's law (rank r has weight 1/r).
const VOCABULARY: usize = 5000;
/// A word planted in a handful of messages only.
const NEEDLE: &str = "zyzzyva";
/// One message in this many holds the needle.
const NEEDLE_EVERY: u64 = 50_000;

struct Settings {
    messages: u64,
    channels: usize,
    rounds: usize,
    requests: usize,
    backends: Vec<String>,
}

fn settings() -> Settings {
    let mut settings = Settings {
        messages: 1_000_000,
        channels: 100,
        rounds: 3,
        requests: 200,
        backends: vec!["embedded".into(), "postgres".into()],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{flag} needs a value")).clone();
        match flag.as_str() {
            "--messages" => settings.messages = value().parse().expect("--messages N"),
            "--channels" => settings.channels = value().parse().expect("--channels N"),
            "--rounds" => settings.rounds = value().parse().expect("--rounds N"),
            "--requests" => settings.requests = value().parse().expect("--requests N"),
            "--backends" => settings.backends = value().split(',').map(str::to_owned).collect(),
            _ => {
                eprintln!(
                    "searchbench [--messages 1000000] [--channels 100] [--rounds 3] [--requests 200] \
                     [--backends embedded,postgres]"
                );
                std::process::exit(if flag == "--help" { 0 } else { 64 });
            }
        }
    }
    settings
}

#[tokio::main]
async fn main() {
    let settings = settings();
    for backend in &settings.backends {
        let backend = match backend.as_str() {
            "embedded" => Backend::Embedded,
            "postgres" => match Backend::postgres("searchbench").await {
                Some(backend) => backend,
                None => {
                    eprintln!("searchbench: no PostgreSQL server answers; skipping postgres");
                    continue;
                }
            },
            other => panic!("unknown backend {other}"),
        };
        run(&settings, backend).await;
    }
}

fn channel_name(index: usize) -> String {
    format!("bench-{index:03}")
}

/// Word `rank` of the vocabulary: letters only, 4 to 7 of them, distinct per rank.
fn word(rank: usize) -> String {
    let mut letters = String::new();
    let mut n = rank;
    loop {
        letters.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    format!("{}{letters}", ["qu", "bra", "st", "mo"][rank % 4])
}

/// A deterministic generator of message texts (xorshift), 6 to 15 Zipf words each.
struct Texts {
    state: u64,
    cumulative: Vec<f64>,
}

impl Texts {
    fn new() -> Self {
        let mut total = 0.0;
        let cumulative = (1..=VOCABULARY)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect::<Vec<_>>();
        Self { state: 0x9e37_79b9_7f4a_7c15, cumulative }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn text(&mut self, index: u64) -> String {
        let count = 6 + (self.next() % 10) as usize;
        let total = *self.cumulative.last().unwrap();
        let mut words: Vec<String> = (0..count)
            .map(|_| {
                let target = (self.next() as f64 / u64::MAX as f64) * total;
                word(self.cumulative.partition_point(|&c| c < target).min(VOCABULARY - 1))
            })
            .collect();
        if index % NEEDLE_EVERY == NEEDLE_EVERY / 2 {
            words.push(NEEDLE.to_owned());
        }
        words.join(" ")
    }
}

async fn run(settings: &Settings, backend: Backend) {
    let label = format!("{backend:?}").to_lowercase();
    let mut sys = System::builder().backend(backend.clone()).peers(1).without_rate_limits().start().await;
    let everywhere = sys.login(0, "user1", "password1").await;
    let few = sys.login(0, "user3", "password3").await;
    for index in 0..settings.channels {
        let name = channel_name(index);
        let created = everywhere.post("/create-channel", &format!("channel_name={name}")).await;
        assert_eq!(created.status, 201, "{}", created.body);
        if index % 10 == 0 {
            assert_eq!(few.post("/join-channel", &format!("channel_name={name}")).await.status, 200);
        }
    }
    sys.stop_tracker().await;
    let started = Instant::now();
    match &backend {
        Backend::Embedded => load_sqlite(&sys, settings),
        Backend::Postgres(_) => load_postgres(backend.database_url().unwrap(), settings).await,
    }
    say(format!(
        "searchbench backend={label} loaded messages={} channels={} seconds={:.1}",
        settings.messages,
        settings.channels,
        started.elapsed().as_secs_f64()
    ));
    sys.restart_tracker().await;

    let common = word(0);
    let medium = word(99);
    let two = format!("{} {}", word(0), word(1));
    let in_one = format!("q={common}&channel_name={}", channel_name(0));
    let cases: Vec<(&str, &TestUser, String)> = vec![
        ("common", &everywhere, format!("q={common}")),
        ("common_two_words", &everywhere, format!("q={two}")),
        ("medium", &everywhere, format!("q={medium}")),
        ("rare", &everywhere, format!("q={NEEDLE}")),
        ("absent", &everywhere, "q=nowhereword".to_owned()),
        ("common_one_channel", &everywhere, in_one),
        ("common_10_channels", &few, format!("q={common}")),
        ("medium_10_channels", &few, format!("q={medium}")),
        ("rare_10_channels", &few, format!("q={NEEDLE}")),
    ];
    for (name, user, body) in &cases {
        let reply = user.post("/search", body).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
        let found = reply.body["results"].as_array().unwrap().len();
        say(format!("searchbench backend={label} case={name} body={body:?} results={found}"));
    }
    let mut summary: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    for round in 1..=settings.rounds {
        for (name, user, body) in &cases {
            let mut times = Vec::with_capacity(settings.requests);
            for _ in 0..10 {
                user.post("/search", body).await;
            }
            for _ in 0..settings.requests {
                let start = Instant::now();
                let reply = user.post("/search", body).await;
                times.push(start.elapsed());
                assert_eq!(reply.status, 200);
            }
            let (p50, p99) = (percentile(&mut times, 0.50), percentile(&mut times, 0.99));
            say(format!("searchbench round={round} backend={label} case={name} p50_ms={p50:.2} p99_ms={p99:.2}"));
            match summary.iter_mut().find(|(case, _, _)| case == name) {
                Some((_, p50s, p99s)) => {
                    p50s.push(p50);
                    p99s.push(p99);
                }
                None => summary.push((name.to_string(), vec![p50], vec![p99])),
            }
        }
    }
    for (name, mut p50s, mut p99s) in summary {
        say(format!(
            "searchbench median backend={label} case={name} p50_ms={:.2} p99_ms={:.2} (p99 min={:.2} max={:.2}, {} rounds of {} requests)",
            median(&mut p50s),
            median(&mut p99s),
            p99s.iter().cloned().fold(f64::MAX, f64::min),
            p99s.iter().cloned().fold(0.0, f64::max),
            settings.rounds,
            settings.requests
        ));
    }
    sys.shutdown().await;
}

/// The `q` quantile of `times`, in milliseconds (nearest rank).
fn percentile(times: &mut [Duration], q: f64) -> f64 {
    times.sort();
    let rank = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len());
    times[rank - 1].as_secs_f64() * 1000.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Writes the messages into the stopped tracker's SQLite file, in one transaction.
fn load_sqlite(sys: &System, settings: &Settings) {
    let mut conn = rusqlite::Connection::open(sys.data_dir().join("tracker").join("tracker.db")).unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO messages (channel, username, sender_ip, sender_port, text, ts)
                 VALUES (?1, 'user2', '127.0.0.1', 9001, ?2, ?3)",
            )
            .unwrap();
        let mut texts = Texts::new();
        let base = kit::now_ms() - settings.messages * 10;
        for index in 0..settings.messages {
            let channel = channel_name(index as usize % settings.channels);
            insert.execute(rusqlite::params![channel, texts.text(index), (base + index * 10) as i64]).unwrap();
        }
    }
    tx.commit().unwrap();
    conn.execute_batch("PRAGMA optimize; INSERT INTO messages_search (messages_search) VALUES ('optimize');").unwrap();
}

/// Writes the messages into the tracker's PostgreSQL tables, 10,000 rows a statement.
async fn load_postgres(url: &str, settings: &Settings) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let statement = client
        .prepare(
            "INSERT INTO tracker_messages (channel, username, sender_ip, sender_port, text, ts)
             SELECT channel, 'user2', '127.0.0.1', 9001, text, ts FROM unnest($1::text[], $2::text[], $3::bigint[])
                 AS batch (channel, text, ts)",
        )
        .await
        .unwrap();
    let mut texts = Texts::new();
    let base = kit::now_ms() - settings.messages * 10;
    let mut index = 0;
    while index < settings.messages {
        let end = (index + 10_000).min(settings.messages);
        let channels: Vec<String> = (index..end).map(|i| channel_name(i as usize % settings.channels)).collect();
        let bodies: Vec<String> = (index..end).map(|i| texts.text(i)).collect();
        let times: Vec<i64> = (index..end).map(|i| (base + i * 10) as i64).collect();
        client.execute(&statement, &[&channels, &bodies, &times]).await.unwrap();
        index = end;
    }
    client.batch_execute("VACUUM ANALYZE tracker_messages").await.unwrap();
}

/// One line of the report, on stdout.
fn say(line: String) {
    use std::io::Write;
    // A closed stdout only loses the report.
    let _ = writeln!(std::io::stdout(), "{line}");
}
