//! The follower: reads the log (messages and events) in id order from the last id it
//! saw, woken by `LISTEN tracker_log`, and by a timer in case a notification is lost,
//! and publishes each readable entry (see the parent module) on this replica's
//! broadcast, to its peer streams.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use kit::backoff::Backoff;
use kit::pg::Listener;
use kit::session::TokenKeys;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use wire::addr::PeerAddr;
use wire::api::ChannelMessage;
use wire::events::Event;
use wire::names::ChannelName;

use super::log::{
    LOG_CHANNEL, LOG_EVENT, LOG_MESSAGE_EXTRAS, LOG_TARGETS, LOG_TRACEPARENT, message_from_row, read_log,
    readable_prefix,
};
use crate::store::model::{Push, StoreError, Targets};

/// The most log entries one read takes.
const PAGE: i64 = 1000;
/// How often the follower reads even without a notification.
const FALLBACK: Duration = Duration::from_secs(1);
/// How long the follower waits for a listening connection before reading without.
const LISTEN_PATIENCE: Duration = Duration::from_secs(5);
/// How soon the follower reads again while entries wait for a missing id. A batch
/// still in flight notifies when it commits; this read is for an id whose transaction
/// rolled back, which nothing announces (and it costs the database a query per
/// follower each time).
const HELD_RETRY: Duration = Duration::from_millis(25);
/// The longest pause between those reads.
const HELD_RETRY_MAX: Duration = Duration::from_millis(100);
/// How long entries may wait for older transactions before the follower warns.
const HELD_WARNING: Duration = Duration::from_secs(10);

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
        let mut held = Held::default();
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
            self.catch_up(&mut held).await;
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
                            () = tokio::time::sleep(held.next_read().unwrap_or(FALLBACK)) => {}
                        }
                        self.catch_up(&mut held).await;
                    }
                }
                None => tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_wait()) => {}
                },
            }
        }
    }

    /// Publishes every readable entry after the last one seen.
    async fn catch_up(&mut self, held: &mut Held) {
        loop {
            match self.publish_page().await {
                Ok(page) => {
                    held.note(page.held, self.last);
                    if page.read < PAGE as usize || page.held {
                        return;
                    }
                }
                Err(err) => {
                    // The next wake-up or tick reads again from the same id.
                    tracing::warn!(%err, after = self.last, "tracker follower failed to read the log");
                    return;
                }
            }
        }
    }

    /// Publishes the readable entries of the next page of the log.
    async fn publish_page(&mut self) -> Result<Page, StoreError> {
        let conn = self.pool.get().await?;
        // Entries that may not be read yet come back too, so the follower knows to
        // read again soon: no notification says when the transactions before them end.
        let rows = read_log(&conn, self.last, PAGE).await?;
        let readable = readable_prefix(self.last, &rows);
        let page = Page { read: rows.len(), held: readable < rows.len() };
        let rows = &rows[..readable];
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.get(0);
            let traceparent: Option<String> = row.get(LOG_TRACEPARENT);
            let entry = match row.get::<_, Option<String>>(LOG_EVENT) {
                None => message_from_row(row, LOG_MESSAGE_EXTRAS).map(|message| Entry::Message(message, traceparent)),
                Some(event) => parse_event(&event, row.get(LOG_TARGETS))
                    .map(|(event, targets)| Entry::Event(event, targets, traceparent)),
            };
            match entry {
                Ok(entry) => entries.push((id, entry)),
                Err(err) => tracing::error!(%err, id, "skipping a log entry that does not parse"),
            }
        }
        let replies: Vec<&mut ChannelMessage> = entries
            .iter_mut()
            .filter_map(|(_, entry)| match entry {
                Entry::Message(message, _) if message.reply_to.is_some() => Some(message),
                _ => None,
            })
            .collect();
        super::rows::fill_replies(&conn, replies).await?;
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
        Ok(page)
    }
}

/// What one read of the log found.
struct Page {
    /// Entries read, readable or not.
    read: usize,
    /// Whether entries wait for a lower id, in flight or never to come.
    held: bool,
}

/// Entries that wait for older transactions: how soon to read again, and a warning
/// when they wait long (a transaction left open somewhere on the database).
#[derive(Default)]
struct Held {
    since: Option<tokio::time::Instant>,
    retry: Option<Duration>,
    warned: bool,
}

impl Held {
    fn note(&mut self, held: bool, last: i64) {
        if !held {
            if self.warned {
                tracing::info!(after = last, "log entries no longer wait for older transactions");
            }
            *self = Self::default();
            return;
        }
        let since = *self.since.get_or_insert_with(tokio::time::Instant::now);
        // Soon at first, then less often: a long transaction should not make the
        // follower spin.
        self.retry = Some(self.retry.map_or(HELD_RETRY, |retry| (retry * 2).min(HELD_RETRY_MAX)));
        if !self.warned && since.elapsed() >= HELD_WARNING {
            self.warned = true;
            tracing::warn!(
                after = last,
                waited_s = since.elapsed().as_secs(),
                "log entries wait for a missing id, which a transaction still open on the database \
                 may hold; delivery resumes when it ends (see pg_stat_activity; \
                 idle_in_transaction_session_timeout bounds it)"
            );
        }
    }

    /// How soon to read again without a notification, while entries wait.
    fn next_read(&self) -> Option<Duration> {
        self.retry
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
        let channel = super::log::parse(row.get(0), ChannelName::parse)?;
        let peer = PeerAddr { ip: row.get(1), port: row.get::<_, i32>(2) as u16 };
        hosts.entry(channel).or_default().insert(peer);
    }
    Ok(hosts)
}
