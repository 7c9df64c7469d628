//! Group commit of channel messages on PostgreSQL.
//!
//! The posts that arrive while earlier batches are being committed wait together and
//! go into one transaction: one statement inserts them all, and each post's
//! membership check is part of it. Several batches of one replica (and the batches of
//! every other replica) are in flight at once: each holds the log lock only while it
//! draws its ids and inserts, not while its commit waits for the disk, so one batch's
//! fsync overlaps the next batch's insert, and no batch sends `NOTIFY` itself (see
//! [`Notifier`]). Why readers still see the log in id order is explained in the
//! parent module. Posters hear back once their batch has committed, and in the order
//! their batches were taken.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::{Object, Pool};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use wire::api::ChannelMessage;

use super::log::{LOG_CHANNEL, LOG_LOCK};
use crate::store::model::{StoreError, mentions_column};

/// Inserts a batch: the accepted posts take their ids from the log sequence in the
/// order they came, so refused ones leave no gap in the log (see the parent module).
/// A post with no sender's peer given takes it from the directory; the membership
/// check is part of the statement. What it returns is where the two forms differ.
macro_rules! insert_posts {
    ($returning:literal) => {
        concat!(
            "INSERT INTO tracker_messages
                 (id, channel, username, sender_ip, sender_port, text, ts, traceparent, reply_to, mentions)
             SELECT nextval('tracker_messages_id_seq'), channel, username, ip, port, text, $7, traceparent,
                    reply_to, mentions
             FROM (SELECT b.channel, b.username, COALESCE(b.ip, d.ip) AS ip, COALESCE(b.port, d.port) AS port,
                          b.text, b.traceparent, b.reply_to, b.mentions
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                               $8::bigint[], $9::text[])
                        WITH ORDINALITY AS b(channel, username, ip, port, text, traceparent, reply_to, mentions, n)
                   LEFT JOIN tracker_directory d ON d.username = b.username
                   WHERE (b.ip IS NOT NULL OR d.username IS NOT NULL)
                     AND EXISTS (SELECT 1 FROM tracker_members m
                                 WHERE m.channel = b.channel AND m.username = b.username)
                   ORDER BY b.n) AS accepted
             RETURNING ",
            $returning
        )
    };
}

/// A batch where nobody is mentioned.
const INSERT: &str = insert_posts!("id, channel, username, text, sender_ip, sender_port");

/// A batch with mentions: they go to `tracker_mentions` in the same statement.
const INSERT_MENTIONING: &str = concat!(
    "WITH accepted AS (",
    insert_posts!("id, channel, username, text, sender_ip, sender_port, mentions"),
    "), mentioned AS (
         INSERT INTO tracker_mentions (username, channel, message_id)
         SELECT name, a.channel, a.id FROM accepted a, unnest(string_to_array(a.mentions, ' ')) AS name
         WHERE a.mentions IS NOT NULL
         ON CONFLICT DO NOTHING
     )
     SELECT id, channel, username, text, sender_ip, sender_port FROM accepted"
);

/// Posts waiting beyond this many make posters wait (back-pressure).
pub(super) const POST_QUEUE: usize = 8192;
/// The most posts one transaction takes; bounds the latency of a batch.
const MAX_BATCH: usize = 1024;
/// The most batches of one replica in flight at once.
const MAX_IN_FLIGHT: usize = 3;
/// How many posts must wait before a batch starts beside one in flight.
const MIN_OVERLAP: usize = 32;

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

/// How many batches may be in flight with a pool of `pool_size` connections: leaves
/// most of the pool to reads and the follower.
pub(super) fn batches_in_flight(pool_size: usize) -> usize {
    (pool_size / 4).clamp(1, MAX_IN_FLIGHT)
}

/// Commits the posts of this replica in batches, `in_flight` at most at once, until
/// every sender is dropped.
///
/// A batch starts beside one already in flight only once [`MIN_OVERLAP`] posts wait
/// for it; fewer wait for the batch in flight to end and join the next. Overlapping
/// batches hide one commit's wait for the disk behind the next insert, which pays
/// when many posts arrive; with few, more and smaller transactions only cost the
/// database more work per message.
pub(super) async fn commit_posts(pool: Pool, mut jobs: mpsc::Receiver<PostJob>, in_flight: usize) {
    let notifier = Notifier::start(pool.clone());
    let slots = Arc::new(Semaphore::new(in_flight));
    // Woken when a batch ends, so a waiting batch can start.
    let ended = Arc::new(Notify::new());
    // Resolves when the batch taken before has answered its posters.
    let mut previous: Option<oneshot::Receiver<()>> = None;
    loop {
        let Some(first) = jobs.recv().await else { return };
        let mut batch = vec![first];
        take_waiting(&mut jobs, &mut batch);
        let mut open = true;
        while open && batch.len() < MIN_OVERLAP && slots.available_permits() < in_flight {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => {
                        batch.push(job);
                        take_waiting(&mut jobs, &mut batch);
                    }
                    None => open = false,
                },
                () = ended.notified() => {}
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        take_waiting(&mut jobs, &mut batch);
        let (answered, next) = oneshot::channel();
        let before = previous.replace(next);
        let pool = pool.clone();
        let (notifier, ended) = (notifier.clone(), ended.clone());
        tokio::spawn(async move {
            let result = commit_batch(&pool, &batch).await;
            drop(slot);
            ended.notify_one();
            if result.is_ok() {
                // Answered once the followers have been told: a poster who hears back
                // and acts next (a direct message, say) is not ahead of the push.
                notifier.committed().await;
            }
            // A poster whose batch committed after a later one still hears first:
            // replies keep the order in which batches were taken.
            if let Some(before) = before {
                let _ = before.await;
            }
            answer(batch, result);
            let _ = answered.send(());
        });
    }
}

/// Adds the posts already waiting to `batch`, up to [`MAX_BATCH`].
fn take_waiting(jobs: &mut mpsc::Receiver<PostJob>, batch: &mut Vec<PostJob>) {
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// Tells the followers of every replica that batches committed: `NOTIFY tracker_log`
/// in a transaction of its own, after the batches' commits rather than inside them.
///
/// PostgreSQL serialises the commits of notifying transactions, through their wait
/// for the disk (a lock it takes at commit so that notifications queue in commit
/// order); a batch that notified itself would commit one at a time with every other.
/// This transaction writes nothing worth keeping, so it commits without waiting for
/// the disk (`synchronous_commit` off, for it alone). One notification covers every
/// batch committed before it is sent. If one is lost, followers still read on their
/// timer.
#[derive(Clone)]
struct Notifier {
    /// How many commits asked to be announced.
    asked: Arc<AtomicU64>,
    wake: Arc<Notify>,
    /// How many commits have been announced.
    told: watch::Receiver<u64>,
}

impl Notifier {
    fn start(pool: Pool) -> Self {
        let (told_tx, told) = watch::channel(0);
        let notifier = Self { asked: Arc::new(AtomicU64::new(0)), wake: Arc::new(Notify::new()), told };
        tokio::spawn(Self::run(notifier.asked.clone(), notifier.wake.clone(), pool, told_tx));
        notifier
    }

    /// Announces a commit; returns once a notification sent after it has committed
    /// (or failed).
    async fn committed(&self) {
        let mine = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        let mut told = self.told.clone();
        // An error means the notifier is gone: nothing left to wait for.
        let _ = told.wait_for(|told| *told >= mine).await;
    }

    /// Sends notifications until every handle on the notifier is dropped.
    async fn run(asked: Arc<AtomicU64>, wake: Arc<Notify>, pool: Pool, told: watch::Sender<u64>) {
        loop {
            tokio::select! {
                () = wake.notified() => {}
                () = told.closed() => return,
            }
            let asked = asked.load(Ordering::SeqCst);
            let sent = async {
                let conn = pool.get().await?;
                let notify = conn
                    .prepare_cached("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')")
                    .await?;
                conn.query(&notify, &[&LOG_CHANNEL]).await?;
                Ok::<_, StoreError>(())
            };
            if let Err(err) = sent.await {
                tracing::warn!(%err, "failed to notify the followers of committed posts; they read on their timer");
            }
            told.send_replace(asked);
        }
    }
}

fn answer(batch: Vec<PostJob>, result: Result<Vec<Option<ChannelMessage>>, StoreError>) {
    match result {
        Ok(stored) => {
            for (job, stored) in batch.into_iter().zip(stored) {
                let _ = job.reply.send(Ok(stored));
            }
        }
        Err(err) => {
            tracing::error!(%err, posts = batch.len(), "failed to commit a batch of posts");
            let err = Arc::new(err);
            for job in batch {
                let _ = job.reply.send(Err(StoreError::Batch(err.clone())));
            }
        }
    }
}

/// Commits one batch on a connection of its own. On any failure the connection is
/// closed rather than returned to the pool: that ends its transaction and releases
/// the log lock, which it takes at session level.
async fn commit_batch(pool: &Pool, batch: &[PostJob]) -> Result<Vec<Option<ChannelMessage>>, StoreError> {
    let conn = pool.get().await?;
    let result = run_batch(&conn, batch).await;
    if result.is_err() {
        drop(Object::take(conn));
    }
    result
}

async fn run_batch(conn: &Object, batch: &[PostJob]) -> Result<Vec<Option<ChannelMessage>>, StoreError> {
    // Prepared once per connection; after that the whole batch is one round trip to
    // the database, its five statements sent together.
    let begin = conn.prepare_cached("BEGIN").await?;
    let lock = conn.prepare_cached("SELECT pg_advisory_lock($1)").await?;
    // See `insert_posts!`. Mentions go to their table in the same statement, for the
    // mention counts; a batch that mentions nobody (most) skips that part.
    let mentioning = batch.iter().any(|job| !job.draft.mentions.is_empty());
    let insert = conn.prepare_cached(if mentioning { INSERT_MENTIONING } else { INSERT }).await?;
    let unlock = conn.prepare_cached("SELECT pg_advisory_unlock($1)").await?;
    let commit = conn.prepare_cached("COMMIT").await?;

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
    let replies: Vec<Option<i64>> = batch.iter().map(|job| job.draft.reply_to.map(|id| id as i64)).collect();
    let mentions: Vec<Option<String>> = batch.iter().map(|job| mentions_column(&job.draft.mentions)).collect();
    let params: [&(dyn ToSql + Sync); 9] =
        [&channels, &users, &ips, &ports, &texts, &traces, &ts_param, &replies, &mentions];
    // The lock before anything is written, so the transaction's id (assigned by its
    // first write) and its log ids are drawn under it; released as soon as the rows
    // are in, so the commit's wait for the disk does not hold it. The followers hear
    // of the rows after the commit, from `Notifier`.
    let (_, _, rows, _, _) = tokio::try_join!(
        conn.execute(&begin, &[]),
        conn.execute(&lock, &[&LOG_LOCK]),
        conn.query(&insert, &params),
        conn.execute(&unlock, &[&LOG_LOCK]),
        conn.execute(&commit, &[]),
    )?;
    Ok(match_rows(batch, rows, ts))
}

/// Matches the stored rows to their posts. RETURNING promises no order, and a row
/// names no post; but posts with the same channel, author and text take their ids in
/// the order they came, and are stored or refused together, except that one whose
/// sender's peer comes from the directory is refused when the author has no entry
/// there, while one that names its peer is not. So within each such group the rows,
/// by id, go to the posts in order: to all of them when all were stored, else to
/// those that named their peer.
fn match_rows(batch: &[PostJob], rows: Vec<tokio_postgres::Row>, ts: u64) -> Vec<Option<ChannelMessage>> {
    type Key = (String, String, String);
    let key =
        |job: &PostJob| (job.draft.channel.to_string(), job.draft.username.to_string(), job.draft.text.to_string());
    let mut stored: HashMap<Key, Vec<(i64, String, i32)>> = HashMap::new();
    for row in rows {
        stored.entry((row.get(1), row.get(2), row.get(3))).or_default().push((row.get(0), row.get(4), row.get(5)));
    }
    for group in stored.values_mut() {
        // Popped from the end: the lowest id last.
        group.sort_unstable_by_key(|row| std::cmp::Reverse(row.0));
    }
    let mut posts: HashMap<Key, usize> = HashMap::new();
    for job in batch {
        *posts.entry(key(job)).or_default() += 1;
    }
    // The groups where some posts were refused: those that named no peer.
    let partly: HashSet<Key> = stored
        .iter()
        .filter(|(key, rows)| rows.len() < posts.get(*key).copied().unwrap_or_default())
        .map(|(key, _)| key.clone())
        .collect();
    batch
        .iter()
        .map(|job| {
            let key = key(job);
            if job.from_home && partly.contains(&key) {
                return None;
            }
            let group = stored.get_mut(&key)?;
            let (id, sender_ip, sender_port) = group.pop()?;
            Some(ChannelMessage {
                id: id as u64,
                ts,
                sender_ip,
                sender_port: u16::try_from(sender_port).unwrap_or_default(),
                ..job.draft.clone()
            })
        })
        .collect()
}
