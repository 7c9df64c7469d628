//! The cluster backend: every tracker replica keeps its state in one PostgreSQL
//! database, so any replica answers the same.
//!
//! Channel messages and the events for peers (membership, presence, moves, ended
//! sessions) form one log: `tracker_messages` and `tracker_events` draw their ids
//! from one sequence. Each replica's follower (`follower.rs`) reads the log on from the
//! last id it saw, woken by `NOTIFY tracker_log`, and publishes what it read on its
//! own broadcast, to its own peer streams. Nothing is published from the write path,
//! so nothing is doubled.
//!
//! A reader that goes by id must never see id N before an id below N that will still
//! commit, or it would skip that one. Transactions commit in any order, so the log
//! does not rely on that. Instead:
//!
//! 1. Every transaction that appends to the log takes one advisory lock
//!    (`log::LOG_LOCK`) before its first write and draws its log ids under it. Its
//!    transaction id (`xid8`, assigned by the first write) is therefore drawn under
//!    the lock too, so among log writers the order of transaction ids is the order of
//!    log ids. The batches of posts (`posts.rs`) release the lock once their rows are
//!    in, before the commit waits for the disk; other writers hold it to the end.
//! 2. Every log row records its transaction id (column `xid`). A reader going by id
//!    takes an entry when its id follows the last one taken with none between them
//!    (the common case: batches take their ids in one block, and refused posts take
//!    none), or when it is *released*: its transaction id is below the oldest
//!    transaction still running (`pg_snapshot_xmin(pg_current_snapshot())`), so every
//!    transaction that could hold a lower id has ended and a missing id never comes
//!    (a rolled-back one). The follower, and a peer stream starting or resuming, read
//!    this way (`log::readable_prefix`); pages of history read every committed row.
//!
//! Only a gap waits for the horizon, so a long transaction elsewhere on the server
//! delays delivery only when an id is missing at the same time; the follower warns
//! when a wait lasts.
//!
//! Reads query the database directly rather than a per-replica cache: a cache would
//! trail the database by a follower round, and two replicas would then answer
//! differently for a moment; these reads are indexed and small.

mod chat;
mod directory;
mod follower;
mod history;
pub(super) mod log;
mod posts;
mod revoked;
mod rows;
mod schema;
mod search;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Object, Pool};
use kit::pg::PgError;
use kit::session::TokenKeys;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};
use wire::addr::PeerAddr;
use wire::api::{ChannelMessage, Member, RevokedSession};
use wire::events::Event;
use wire::names::{ChannelName, MessageText, Username};

pub use directory::Directory;
use directory::NOW_MS;
use log::{RELEASED, append_event, log_transaction, parse};

use crate::store::model::{PUSH_BUFFER, Push, StoreError, membership};

/// The PostgreSQL store. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Pool,
    description: String,
    /// Who is on which peer, and the peer pool.
    directory: Directory,
    events: broadcast::Sender<Arc<Push>>,
    /// Where this replica's posts wait to be committed together.
    posts: mpsc::Sender<posts::PostJob>,
    /// Where revocations read from the log go (this replica's session checks).
    tokens: Arc<OnceLock<TokenKeys>>,
    /// Stops the follower when the last handle on the store is dropped.
    _follower: DropGuard,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        StoreError::Pg(PgError::from(err))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        StoreError::Pg(PgError::from(err))
    }
}

impl PgStore {
    /// Connects, migrates, and starts this replica's follower (from the newest entry
    /// of the log) and post batcher.
    pub async fn connect(url: &str, pool_size: usize, peer_ttl: Duration) -> anyhow::Result<Self> {
        let pool = kit::pg::connect(url, "tracker", pool_size, kit::pg::STARTUP_PATIENCE).await?;
        kit::pg::migrate(&pool, "tracker", schema::MIGRATIONS).await?;
        let newest = {
            let conn = pool.get().await.context("failed to get a database connection")?;
            let row = conn
                .query_one(
                    &format!(
                        "SELECT GREATEST((SELECT COALESCE(MAX(id), 0) FROM tracker_messages WHERE {RELEASED}),
                                         (SELECT COALESCE(MAX(id), 0) FROM tracker_events WHERE {RELEASED}))"
                    ),
                    &[],
                )
                .await
                .context("failed to read the newest log entry")?;
            row.get::<_, i64>(0)
        };
        let (events, _) = broadcast::channel(PUSH_BUFFER);
        let tokens = Arc::new(OnceLock::new());
        let stop = CancellationToken::new();
        let follower = follower::Follower::new(pool.clone(), url, events.clone(), tokens.clone(), newest);
        tokio::spawn(follower.run(stop.clone()));
        let (posts, jobs) = mpsc::channel(posts::POST_QUEUE);
        tokio::spawn(posts::commit_posts(pool.clone(), jobs, posts::batches_in_flight(pool_size)));
        Ok(Self {
            shared: Arc::new(Shared {
                directory: Directory::new(pool.clone(), peer_ttl),
                pool,
                description: kit::pg::describe(url),
                events,
                posts,
                tokens,
                _follower: stop.drop_guard(),
            }),
        })
    }

    pub fn describe(&self) -> String {
        self.shared.description.clone()
    }

    pub fn peer_ttl(&self) -> Duration {
        self.shared.directory.peer_ttl()
    }

    /// The directory and the peer pool.
    pub fn directory(&self) -> &Directory {
        &self.shared.directory
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Push>> {
        self.shared.events.subscribe()
    }

    pub fn revoke_into(&self, tokens: TokenKeys) {
        // Set once, at start; a second call keeps the first.
        let _ = self.shared.tokens.set(tokens);
    }

    /// Whether the database answers: a `SELECT 1` on a pooled connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        ping(&self.shared.pool).await
    }

    async fn conn(&self) -> Result<Object, StoreError> {
        Ok(self.shared.pool.get().await?)
    }

    // === Ended sessions ===

    pub async fn revoked(&self) -> Result<Vec<RevokedSession>, StoreError> {
        let now = kit::now_secs() as i64;
        let rows = self
            .conn()
            .await?
            .query("SELECT sid, expires_at FROM tracker_revoked WHERE expires_at >= $1", &[&now])
            .await?;
        Ok(rows.iter().map(|row| RevokedSession { sid: row.get(0), expires_at: row.get::<_, i64>(1) as u64 }).collect())
    }

    pub async fn revoke(&self, sessions: Vec<RevokedSession>) -> Result<Vec<RevokedSession>, StoreError> {
        let now = kit::now_secs();
        let sessions: Vec<_> = sessions.into_iter().filter(|session| session.expires_at >= now).collect();
        if sessions.is_empty() {
            return Ok(sessions);
        }
        let traceparent = kit::telemetry::current_traceparent();
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        tx.execute("DELETE FROM tracker_revoked WHERE expires_at < $1", &[&(now as i64)]).await?;
        let mut fresh = Vec::new();
        for session in sessions {
            let inserted = tx
                .execute(
                    "INSERT INTO tracker_revoked (sid, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&session.sid, &(session.expires_at as i64)],
                )
                .await?;
            if inserted == 1 {
                fresh.push(session);
            }
        }
        for session in &fresh {
            append_event(&tx, &Event::SessionRevoked(session.clone()), None, traceparent.as_deref()).await?;
        }
        tx.commit().await?;
        Ok(fresh)
    }

    // === Channels and members ===

    pub async fn channels(&self) -> Result<Vec<ChannelName>, StoreError> {
        let rows =
            self.conn().await?.query("SELECT name FROM tracker_channels ORDER BY name COLLATE \"C\"", &[]).await?;
        rows.iter().map(|row| parse(row.get(0), ChannelName::parse)).collect()
    }

    async fn channel_exists(&self, conn: &Object, channel: &ChannelName) -> Result<bool, StoreError> {
        let row = conn.query_opt("SELECT 1 FROM tracker_channels WHERE name = $1", &[&channel.as_str()]).await?;
        Ok(row.is_some())
    }

    pub async fn joined(&self, user: &Username) -> Result<Vec<ChannelName>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT channel FROM tracker_members WHERE username = $1 ORDER BY channel COLLATE \"C\"",
                &[&user.as_str()],
            )
            .await?;
        rows.iter().map(|row| parse(row.get(0), ChannelName::parse)).collect()
    }

    pub async fn members(&self, channel: &ChannelName) -> Result<Option<Vec<Username>>, StoreError> {
        let conn = self.conn().await?;
        if !self.channel_exists(&conn, channel).await? {
            return Ok(None);
        }
        let rows = conn
            .query(
                "SELECT username FROM tracker_members WHERE channel = $1 ORDER BY username COLLATE \"C\"",
                &[&channel.as_str()],
            )
            .await?;
        rows.iter().map(|row| parse(row.get(0), Username::parse)).collect::<Result<_, _>>().map(Some)
    }

    pub async fn roster(&self, channel: &ChannelName) -> Result<Vec<Member>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT m.username, d.ip, d.port, d.online AND EXISTS (
                         SELECT 1 FROM tracker_peers p
                         WHERE p.ip = d.ip AND p.port = d.port AND p.last_beat_ms >= {NOW_MS} - $2)
                     FROM tracker_members m LEFT JOIN tracker_directory d ON d.username = m.username
                     WHERE m.channel = $1 ORDER BY m.username COLLATE \"C\""
                ),
                &[&channel.as_str(), &self.shared.directory.ttl_ms()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Member {
                    username: parse(row.get(0), Username::parse)?,
                    ip: row.get(1),
                    port: row.get::<_, Option<i32>>(2).map(|port| port as u16),
                    online: row.get::<_, Option<bool>>(3).unwrap_or(false),
                })
            })
            .collect()
    }

    pub async fn is_member(&self, channel: &ChannelName, user: &Username) -> Result<bool, StoreError> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT 1 FROM tracker_members WHERE channel = $1 AND username = $2",
                &[&channel.as_str(), &user.as_str()],
            )
            .await?;
        Ok(row.is_some())
    }

    pub async fn create_channel(&self, channel: &ChannelName, by: &Username, private: bool) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        // Under the log's lock: no replica creates a channel between this look and
        // the insert.
        let key = channel.key();
        let names = tx.query("SELECT name FROM tracker_channels", &[]).await?;
        if names.iter().any(|row| wire::names::name_key(row.get(0)) == key) {
            return Err(StoreError::ChannelExists(channel.clone()));
        }
        let now = kit::now_ms() as i64;
        let inserted = tx
            .execute(
                "INSERT INTO tracker_channels (name, created_at, created_by, private) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&channel.as_str(), &now, &by.as_str(), &private],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::ChannelExists(channel.clone()));
        }
        tx.execute(
            "INSERT INTO tracker_members (channel, username, joined_at) VALUES ($1, $2, $3)",
            &[&channel.as_str(), &by.as_str(), &now],
        )
        .await?;
        let targets = if private { Some(rows::member_hosts(&tx, channel, by).await?) } else { None };
        let push =
            membership(channel.clone(), by.clone(), true, targets.clone().map(|t| t.into_iter().collect()), None);
        append_event(&tx, &push.event, targets.as_deref(), kit::telemetry::current_traceparent().as_deref()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_membership(
        &self,
        channel: &ChannelName,
        user: &Username,
        joined: bool,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        if !self.channel_exists(&conn, channel).await? {
            return Err(StoreError::NoChannel(channel.clone()));
        }
        let tx = log_transaction(&mut conn).await?;
        let changed = if joined {
            // A new member has read what came before.
            tx.execute(
                "INSERT INTO tracker_members (channel, username, joined_at, last_read)
                 VALUES ($1, $2, $3, (SELECT COALESCE(MAX(id), 0) FROM tracker_messages WHERE channel = $1))
                 ON CONFLICT DO NOTHING",
                &[&channel.as_str(), &user.as_str(), &(kit::now_ms() as i64)],
            )
            .await?
        } else {
            tx.execute(
                "DELETE FROM tracker_members WHERE channel = $1 AND username = $2",
                &[&channel.as_str(), &user.as_str()],
            )
            .await?
        } == 1;
        if changed {
            // A private channel's change goes to its members and the user.
            let targets = if rows::is_private(&tx, channel).await? {
                Some(rows::member_hosts(&tx, channel, user).await?)
            } else {
                None
            };
            let push = membership(
                channel.clone(),
                user.clone(),
                joined,
                targets.clone().map(|t| t.into_iter().collect()),
                None,
            );
            append_event(&tx, &push.event, targets.as_deref(), kit::telemetry::current_traceparent().as_deref())
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    // === Messages ===

    pub async fn post(
        &self,
        channel: &ChannelName,
        user: &Username,
        sender: &PeerAddr,
        text: &MessageText,
        reply_to: Option<u64>,
    ) -> Result<ChannelMessage, StoreError> {
        self.send_post(channel, user, Some(sender), text, reply_to).await
    }

    /// Like [`PgStore::post`], sent from the peer in the user's directory entry, which
    /// the batched insert reads itself.
    pub async fn post_from_home(
        &self,
        channel: &ChannelName,
        user: &Username,
        text: &MessageText,
        reply_to: Option<u64>,
    ) -> Result<ChannelMessage, StoreError> {
        self.send_post(channel, user, None, text, reply_to).await
    }

    /// Queues a post for the next batch; without a `sender`, the batch reads the
    /// sender's peer from the directory.
    async fn send_post(
        &self,
        channel: &ChannelName,
        user: &Username,
        sender: Option<&PeerAddr>,
        text: &MessageText,
        reply_to: Option<u64>,
    ) -> Result<ChannelMessage, StoreError> {
        let from_home = sender.is_none();
        let mut draft = ChannelMessage::new(
            0,
            channel.clone(),
            (sender.map(|peer| peer.ip.clone()).unwrap_or_default(), sender.map_or(0, |peer| peer.port)),
            user.clone(),
            text.clone(),
        );
        (draft.reply_to, draft.mentions) = rows::post_extras(&self.shared.pool, channel, user, text, reply_to).await?;
        let (reply, answer) = oneshot::channel();
        let job = posts::PostJob { draft, from_home, traceparent: kit::telemetry::current_traceparent(), reply };
        let closed = || StoreError::Closed;
        self.shared.posts.send(job).await.map_err(|_| closed())?;
        if let Some(stored) = answer.await.map_err(|_| closed())?? {
            return Ok(stored);
        }
        // Which refusal: the rare case pays the extra queries, in the order a caller
        // would check them.
        if from_home && self.shared.directory.home(user).await?.is_none() {
            return Err(StoreError::NotOnAnyPeer);
        }
        if self.channel_exists(&self.conn().await?, channel).await? {
            Err(StoreError::NotMember(channel.clone()))
        } else {
            Err(StoreError::NoChannel(channel.clone()))
        }
    }
}

/// A `SELECT 1` on a connection of `pool`: the cheapest proof that the database
/// answers this replica.
async fn ping(pool: &Pool) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    conn.simple_query("SELECT 1").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
    use tokio_postgres::NoTls;

    #[tokio::test]
    async fn a_ping_of_a_database_that_does_not_listen_fails_at_once() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(closed.port()).user("tracker").dbname("chat");
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(2).runtime(Runtime::Tokio1).build().unwrap();
        let ping = tokio::time::timeout(Duration::from_secs(5), super::ping(&pool)).await;
        assert!(matches!(ping, Ok(Err(super::StoreError::Pg(_)))), "{ping:?}");
    }
}
