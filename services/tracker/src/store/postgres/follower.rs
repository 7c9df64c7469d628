//! This replica's two background tasks on PostgreSQL.
//!
//! - [`commit_posts`]: group commit of channel messages. The posts waiting together go
//!   into one transaction, which takes the log lock first; each post's membership
//!   check is part of its insert. Posters hear back once the batch is committed.
//! - [`Follower`]: reads the log (messages and events) in id order from the last id
//!   it saw, woken by `LISTEN tracker_log`, and by a timer in case a notification is
//!   lost, and publishes each entry on this replica's broadcast, to its peer streams.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use kit::backoff::Backoff;
use kit::pg::Listener;
use kit::session::TokenKeys;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wire::addr::PeerAddr;
use wire::api::ChannelMessage;
use wire::events::Event;
use wire::names::ChannelName;

use super::{LOG_CHANNEL, LOG_LOCK, message_from_row};
use crate::store::{Push, StoreError, Targets};

/// Posts waiting beyond this many make posters wait (back-pressure).
pub(super) const POST_QUEUE: usize = 8192;
/// The most posts one transaction takes; bounds the latency of a batch.
const MAX_BATCH: usize = 1024;
/// The most log entries one read takes.
const PAGE: i64 = 1000;
/// How often the follower reads even without a notification.
const FALLBACK: Duration = Duration::from_secs(1);
/// How long the follower waits for a listening connection before reading without.
const LISTEN_PATIENCE: Duration = Duration::from_secs(5);

/// A post waiting for its batch.
pub(super) struct PostJob {
    pub(super) draft: ChannelMessage,
    /// Whether the sender's peer comes from the directory (in the insert itself)
    /// rather than from the draft.
    pub(super) from_home: bool,
    pub(super) traceparent: Option<String>,
    /// The stored message, or `None` when the poster is not a member.
    pub(super) reply: oneshot::Sender<Result<Option<ChannelMessage>, StoreError>>,
}

/// Commits the posts of this replica in batches until every sender is dropped.
pub(super) async fn commit_posts(pool: Pool, mut jobs: mpsc::Receiver<PostJob>) {
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match commit_batch(&pool, &batch).await {
            Ok(stored) => {
                for (job, stored) in batch.drain(..).zip(stored) {
                    let _ = job.reply.send(Ok(stored));
                }
            }
            Err(err) => {
                tracing::error!(%err, posts = batch.len(), "failed to commit a batch of posts");
                let err = Arc::new(err);
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Batch(err.clone())));
                }
            }
        }
    }
}

async fn commit_batch(pool: &Pool, batch: &[PostJob]) -> Result<Vec<Option<ChannelMessage>>, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let lock = tx.prepare_cached("SELECT pg_advisory_xact_lock($1)").await?;
    let draw = tx.prepare_cached("SELECT nextval('tracker_messages_id_seq') FROM generate_series(1, $1)").await?;
    // One statement for the whole batch. Each post comes with the id drawn for it, so
    // the rows that come back are matched to their posts by id, whatever order the
    // database returns them in. A post with no sender's peer given takes it from the
    // directory; the membership check is part of the statement.
    let insert = tx
        .prepare_cached(
            "INSERT INTO tracker_messages (id, channel, username, sender_ip, sender_port, text, ts, traceparent)
             SELECT b.id, b.channel, b.username, COALESCE(b.ip, d.ip), COALESCE(b.port, d.port), b.text, $8,
                    b.traceparent
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[])
                  AS b(id, channel, username, ip, port, text, traceparent)
             LEFT JOIN tracker_directory d ON d.username = b.username
             WHERE (b.ip IS NOT NULL OR d.username IS NOT NULL)
               AND EXISTS (SELECT 1 FROM tracker_members m WHERE m.channel = b.channel AND m.username = b.username)
             RETURNING id, sender_ip, sender_port",
        )
        .await?;
    let notify = tx.prepare_cached("SELECT pg_notify($1, '')").await?;
    let count = i32::try_from(batch.len()).unwrap_or(i32::MAX);
    // The lock first, then the ids: drawn under the lock, they become visible in id
    // order. Sent together: one round trip.
    let count_param: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&count];
    let (_, drawn) = tokio::try_join!(tx.execute(&lock, &[&LOG_LOCK]), tx.query(&draw, &count_param))?;
    let mut ids: Vec<i64> = drawn.iter().map(|row| row.get(0)).collect();
    ids.sort_unstable();
    let ts = kit::now_ms();
    let ts_param = ts as i64;
    let channels: Vec<&str> = batch.iter().map(|job| job.draft.channel.as_str()).collect();
    let users: Vec<&str> = batch.iter().map(|job| job.draft.username.as_str()).collect();
    let ips: Vec<Option<&str>> =
        batch.iter().map(|job| (!job.from_home).then_some(job.draft.sender_ip.as_str())).collect();
    let ports: Vec<Option<i32>> =
        batch.iter().map(|job| (!job.from_home).then_some(i32::from(job.draft.sender_port))).collect();
    let texts: Vec<&str> = batch.iter().map(|job| job.draft.text.as_str()).collect();
    let traces: Vec<Option<&str>> = batch.iter().map(|job| job.traceparent.as_deref()).collect();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
        [&ids, &channels, &users, &ips, &ports, &texts, &traces, &ts_param];
    // A notification with nothing stored only wakes the followers for nothing.
    let (rows, _) = tokio::try_join!(tx.query(&insert, &params), tx.execute(&notify, &[&LOG_CHANNEL]))?;
    let mut inserted: HashMap<i64, (String, i32)> =
        rows.iter().map(|row| (row.get::<_, i64>(0), (row.get(1), row.get(2)))).collect();
    let stored: Vec<Option<ChannelMessage>> = batch
        .iter()
        .zip(&ids)
        .map(|(job, id)| {
            let (sender_ip, sender_port) = inserted.remove(id)?;
            Some(ChannelMessage {
                id: *id as u64,
                ts,
                sender_ip,
                sender_port: u16::try_from(sender_port).unwrap_or_default(),
                ..job.draft.clone()
            })
        })
        .collect();
    tx.commit().await?;
    Ok(stored)
}

/// Reads the log on from the last id seen and publishes it on this replica.
pub(super) struct Follower {
    pool: Pool,
    url: String,
    events: broadcast::Sender<Arc<Push>>,
    tokens: Arc<OnceLock<TokenKeys>>,
    /// The newest log id published.
    last: i64,
}

/// One entry of the log.
enum Entry {
    Message(ChannelMessage, Option<String>),
    Event(Event, Option<Vec<PeerAddr>>, Option<String>),
}

impl Follower {
    pub(super) fn new(
        pool: Pool,
        url: &str,
        events: broadcast::Sender<Arc<Push>>,
        tokens: Arc<OnceLock<TokenKeys>>,
        last: i64,
    ) -> Self {
        Self { pool, url: url.to_owned(), events, tokens, last }
    }

    /// Follows the log until `stop` is cancelled.
    pub(super) async fn run(mut self, stop: CancellationToken) {
        // At most the fallback period, so reading goes on at that pace without a listener.
        let mut backoff = Backoff::new(Duration::from_millis(100), FALLBACK);
        loop {
            // Listening first, then reading: whatever commits after the read notifies.
            // Bounded: a database that does not answer must not stop the reading.
            let listening = tokio::time::timeout(LISTEN_PATIENCE, Listener::start(&self.url, &[LOG_CHANNEL])).await;
            let listener = match listening.unwrap_or_else(|_| Err(anyhow::anyhow!("no answer in time"))) {
                Ok(listener) => Some(listener),
                Err(err) => {
                    tracing::warn!(err = %format!("{err:#}"), "tracker follower failed to listen; reading on a timer");
                    None
                }
            };
            self.catch_up().await;
            match listener {
                Some(mut listener) => {
                    backoff.reset();
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            woken = listener.recv() => if woken.is_none() {
                                tracing::warn!("tracker follower lost its listener; listening again");
                                break;
                            },
                            () = tokio::time::sleep(FALLBACK) => {}
                        }
                        self.catch_up().await;
                    }
                }
                None => tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_wait()) => {}
                },
            }
        }
    }

    /// Publishes every entry committed after the last one seen.
    async fn catch_up(&mut self) {
        loop {
            match self.publish_page().await {
                Ok(read) if read == PAGE as usize => {}
                Ok(_) => return,
                Err(err) => {
                    // The next wake-up or tick reads again from the same id.
                    tracing::warn!(%err, after = self.last, "tracker follower failed to read the log");
                    return;
                }
            }
        }
    }

    /// Publishes the next page of the log; returns how many entries it read.
    async fn publish_page(&mut self) -> Result<usize, StoreError> {
        let conn = self.pool.get().await?;
        let statement = conn
            .prepare_cached(
                "(SELECT id, channel, username, sender_ip, sender_port, text, ts, traceparent,
                         NULL::text AS event, NULL::text AS targets
                  FROM tracker_messages WHERE id > $1 ORDER BY id LIMIT $2)
                 UNION ALL
                 (SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, traceparent, event, targets
                  FROM tracker_events WHERE id > $1 ORDER BY id LIMIT $2)
                 ORDER BY id LIMIT $2",
            )
            .await?;
        let rows = conn.query(&statement, &[&self.last, &PAGE]).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.get(0);
            let traceparent: Option<String> = row.get(7);
            let entry = match row.get::<_, Option<String>>(8) {
                None => message_from_row(row).map(|message| Entry::Message(message, traceparent)),
                Some(event) => {
                    parse_event(&event, row.get(9)).map(|(event, targets)| Entry::Event(event, targets, traceparent))
                }
            };
            match entry {
                Ok(entry) => entries.push((id, entry)),
                Err(err) => tracing::error!(%err, id, "skipping a log entry that does not parse"),
            }
        }
        let channels: HashSet<&ChannelName> = entries
            .iter()
            .filter_map(|(_, entry)| match entry {
                Entry::Message(message, _) => Some(&message.channel),
                Entry::Event(..) => None,
            })
            .collect();
        let hosts = hosts_of_members(&conn, channels).await?;
        for (id, entry) in entries {
            let push = match entry {
                Entry::Message(message, traceparent) => {
                    let targets = Targets::Peers(hosts.get(&message.channel).cloned().unwrap_or_default());
                    Push::new(Some(message.id), Event::ChannelMessage(message), targets, traceparent)
                }
                Entry::Event(event, targets, traceparent) => {
                    if let (Event::SessionRevoked(session), Some(tokens)) = (&event, self.tokens.get()) {
                        tokens.revoke(&session.sid, session.expires_at);
                    }
                    let targets = match targets {
                        Some(peers) => Targets::Peers(peers.into_iter().collect()),
                        None => Targets::Everyone,
                    };
                    Push::new(None, event, targets, traceparent)
                }
            };
            // No subscriber is fine: no peer is connected to this replica.
            let _ = self.events.send(Arc::new(push));
            self.last = id;
        }
        if let Some(row) = rows.last() {
            self.last = row.get(0);
        }
        Ok(rows.len())
    }
}

fn parse_event(event: &str, targets: Option<String>) -> Result<(Event, Option<Vec<PeerAddr>>), StoreError> {
    let corrupt = |err: serde_json::Error| StoreError::Corrupt(err.to_string());
    let event = serde_json::from_str(event).map_err(corrupt)?;
    let targets = targets.map(|targets| serde_json::from_str(&targets)).transpose().map_err(corrupt)?;
    Ok((event, targets))
}

/// The peers that host members of each of `channels` now.
async fn hosts_of_members(
    conn: &deadpool_postgres::Object,
    channels: HashSet<&ChannelName>,
) -> Result<HashMap<ChannelName, HashSet<PeerAddr>>, StoreError> {
    let mut hosts: HashMap<ChannelName, HashSet<PeerAddr>> = HashMap::new();
    if channels.is_empty() {
        return Ok(hosts);
    }
    let names: Vec<&str> = channels.iter().map(|channel| channel.as_str()).collect();
    let statement = conn
        .prepare_cached(
            "SELECT DISTINCT m.channel, d.ip, d.port
             FROM tracker_members m JOIN tracker_directory d ON d.username = m.username
             WHERE d.online AND m.channel = ANY($1)",
        )
        .await?;
    let rows = conn.query(&statement, &[&names]).await?;
    for row in rows {
        let channel = super::parse(row.get(0), ChannelName::parse)?;
        let peer = PeerAddr { ip: row.get(1), port: row.get::<_, i32>(2) as u16 };
        hosts.entry(channel).or_default().insert(peer);
    }
    Ok(hosts)
}
