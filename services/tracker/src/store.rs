//! Durable tracker data: channels, members, channel history and the user directory,
//! in SQLite (WAL, group commit), with an in-memory view of channels, members and
//! homes for the reads that happen on every request.
//!
//! Checks that decide a write run in SQL inside the write itself; the in-memory view
//! and the event stream are updated by commit hooks, which run in commit order. So a
//! message is pushed to peers only once it is on disk, and in id order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};

use kit::db::{Db, DbError, parse_column};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::broadcast;
use wire::api::{ChannelMessage, RevokedSession};
use wire::events::{Event, Membership, Moved, Presence, Pushed};
use wire::names::{ChannelName, MessageText, Username};

use wire::addr::PeerAddr;

/// The channels every tracker starts with, as the original's.
pub const DEFAULT_CHANNELS: [&str; 5] = ["general", "random", "project", "help", "announcements"];

/// The largest page of history one request gets.
pub const MAX_PAGE: u64 = 500;
/// The page size when the request does not say.
pub const DEFAULT_PAGE: u64 = 100;

const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE channels (
        name       TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        created_by TEXT
    );
    CREATE TABLE members (
        channel   TEXT NOT NULL REFERENCES channels(name),
        username  TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        PRIMARY KEY (channel, username)
    );
    CREATE INDEX members_by_user ON members(username);
    CREATE TABLE messages (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        channel     TEXT NOT NULL REFERENCES channels(name),
        username    TEXT NOT NULL,
        sender_ip   TEXT NOT NULL,
        sender_port INTEGER NOT NULL,
        text        TEXT NOT NULL,
        ts          INTEGER NOT NULL
    );
    CREATE INDEX messages_by_channel ON messages(channel, id);
    CREATE TABLE directory (
        username   TEXT PRIMARY KEY,
        ip         TEXT NOT NULL,
        port       INTEGER NOT NULL,
        online     INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    INSERT INTO channels (name, created_at) VALUES
        ('general', 0), ('random', 0), ('project', 0), ('help', 0), ('announcements', 0);
"#,
    r#"
    CREATE TABLE revoked (
        sid        TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    );
"#,
];

/// Something for the peers: a new channel message (with its id, to resume from), a
/// membership change, a presence change.
#[derive(Debug)]
pub struct Push {
    pub id: Option<u64>,
    pub event: Event,
    pub targets: Targets,
    /// The trace context of the request that caused it.
    pub traceparent: Option<String>,
    /// The [`Pushed`] JSON the peers get, made by the first stream that sends it.
    json: OnceLock<String>,
}

/// Which peers a [`Push`] is for.
#[derive(Debug)]
pub enum Targets {
    Everyone,
    /// The peers that host at least one member of the channel.
    Peers(HashSet<PeerAddr>),
}

impl Push {
    pub fn new(id: Option<u64>, event: Event, targets: Targets, traceparent: Option<String>) -> Self {
        Self { id, event, targets, traceparent, json: OnceLock::new() }
    }

    /// The event with its trace context as JSON: serialized once, however many peers
    /// it goes to.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| pushed_json(&self.event, self.traceparent.as_deref()))
    }

    pub fn is_for(&self, peer: &PeerAddr) -> bool {
        match &self.targets {
            Targets::Everyone => true,
            Targets::Peers(peers) => peers.contains(peer),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("channel `{0}` not found")]
    NoChannel(ChannelName),
    #[error("channel `{0}` already exists")]
    ChannelExists(ChannelName),
    #[error("join channel `{0}` before posting to it")]
    NotMember(ChannelName),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The tracker's data. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct Store {
    db: Db,
    view: Arc<RwLock<View>>,
    events: broadcast::Sender<Arc<Push>>,
}

#[derive(Default)]
struct View {
    /// Channel to members.
    channels: BTreeMap<ChannelName, BTreeSet<Username>>,
    /// User to the peer that hosts them, or hosted them last.
    homes: HashMap<Username, Home>,
    /// Users with the chat open (an event stream on their peer). Soft state: peers
    /// report it again after a tracker restart.
    active: HashSet<Username>,
    /// Ended sessions (logouts), by session id, with when their tokens expire anyway.
    revoked: HashMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Home {
    peer: PeerAddr,
    /// False once the peer released the user (logout); the peer stays their last home,
    /// where direct messages are retried until they log in again.
    signed_in: bool,
}

impl Store {
    /// Opens the database at `path`, migrating it, and loads the in-memory view.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let (db, view) = Db::open_and_load(path, MIGRATIONS, load_view)?;
        // Peers that fall this far behind get a `reset` and reload; see the peer stream.
        let (events, _) = broadcast::channel(4096);
        Ok(Self { db, view: Arc::new(RwLock::new(view)), events })
    }

    pub fn path(&self) -> &Path {
        self.db.path()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Push>> {
        self.events.subscribe()
    }

    /// Sends a push to every subscribed peer stream.
    pub fn publish(&self, push: Push) {
        // No subscriber is fine: no peer is connected.
        let _ = self.events.send(Arc::new(push));
    }

    // === Ended sessions ===

    /// The ended sessions whose tokens have not expired yet.
    pub fn revoked(&self) -> Vec<RevokedSession> {
        let now = kit::now_secs();
        let view = self.read();
        let live = view.revoked.iter().filter(|(_, expires_at)| **expires_at >= now);
        live.map(|(sid, expires_at)| RevokedSession { sid: sid.clone(), expires_at: *expires_at }).collect()
    }

    /// Records ended sessions durably, then tells every peer about those that are
    /// news. Returns them.
    pub async fn revoke(&self, sessions: Vec<RevokedSession>) -> Result<Vec<RevokedSession>, StoreError> {
        let now = kit::now_secs();
        let fresh: Vec<RevokedSession> = {
            let view = self.read();
            sessions.into_iter().filter(|s| s.expires_at >= now && !view.revoked.contains_key(&s.sid)).collect()
        };
        if fresh.is_empty() {
            return Ok(fresh);
        }
        let rows = fresh.clone();
        let announced = fresh.clone();
        let (view, events) = (self.view.clone(), self.events.clone());
        let traceparent = kit::telemetry::current_traceparent();
        self.db
            .write_then(
                move |conn| {
                    conn.execute("DELETE FROM revoked WHERE expires_at < ?1", [now as i64])?;
                    let mut insert =
                        conn.prepare_cached("INSERT OR IGNORE INTO revoked (sid, expires_at) VALUES (?1, ?2)")?;
                    for session in &rows {
                        insert.execute(params![session.sid, session.expires_at as i64])?;
                    }
                    Ok(())
                },
                move |_: &()| {
                    let mut view = write(&view);
                    view.revoked.retain(|_, expires_at| *expires_at >= now);
                    for session in announced {
                        if view.revoked.insert(session.sid.clone(), session.expires_at).is_none() {
                            let event = Event::SessionRevoked(session);
                            let _ =
                                events.send(Arc::new(Push::new(None, event, Targets::Everyone, traceparent.clone())));
                        }
                    }
                },
            )
            .await?;
        Ok(fresh)
    }

    // === Channels and members ===

    pub fn channels(&self) -> Vec<ChannelName> {
        self.read().channels.keys().cloned().collect()
    }

    pub fn channel_exists(&self, channel: &ChannelName) -> bool {
        self.read().channels.contains_key(channel)
    }

    pub fn joined(&self, user: &Username) -> Vec<ChannelName> {
        self.read()
            .channels
            .iter()
            .filter(|(_, members)| members.contains(user))
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn members(&self, channel: &ChannelName) -> Option<Vec<Username>> {
        self.read().channels.get(channel).map(|members| members.iter().cloned().collect())
    }

    pub fn is_member(&self, channel: &ChannelName, user: &Username) -> bool {
        self.read().channels.get(channel).is_some_and(|members| members.contains(user))
    }

    pub async fn create_channel(&self, channel: &ChannelName, by: &Username) -> Result<(), StoreError> {
        let (name, creator) = (channel.clone(), by.clone());
        let view = self.view.clone();
        let events = self.events.clone();
        let created = self
            .db
            .write_then(
                move |conn| {
                    let inserted = conn.execute(
                        "INSERT OR IGNORE INTO channels (name, created_at, created_by) VALUES (?1, ?2, ?3)",
                        params![name.as_str(), kit::now_ms() as i64, creator.as_str()],
                    )?;
                    if inserted == 1 {
                        conn.execute(
                            "INSERT INTO members (channel, username, joined_at) VALUES (?1, ?2, ?3)",
                            params![name.as_str(), creator.as_str(), kit::now_ms() as i64],
                        )?;
                    }
                    Ok(inserted == 1)
                },
                {
                    let (name, creator) = (channel.clone(), by.clone());
                    move |created: &bool| {
                        if *created {
                            write(&view).channels.insert(name.clone(), BTreeSet::from([creator.clone()]));
                            let _ = events.send(Arc::new(membership(name, creator, true)));
                        }
                    }
                },
            )
            .await?;
        if created { Ok(()) } else { Err(StoreError::ChannelExists(channel.clone())) }
    }

    /// Adds `user` to `channel`. Returns false when they were a member already.
    pub async fn join(&self, channel: &ChannelName, user: &Username) -> Result<bool, StoreError> {
        self.set_membership(channel, user, true).await
    }

    /// Removes `user` from `channel`. Returns false when they were not a member.
    pub async fn leave(&self, channel: &ChannelName, user: &Username) -> Result<bool, StoreError> {
        self.set_membership(channel, user, false).await
    }

    async fn set_membership(&self, channel: &ChannelName, user: &Username, joined: bool) -> Result<bool, StoreError> {
        if !self.channel_exists(channel) {
            return Err(StoreError::NoChannel(channel.clone()));
        }
        let (name, member) = (channel.clone(), user.clone());
        let view = self.view.clone();
        let events = self.events.clone();
        let hook = {
            let (name, member) = (channel.clone(), user.clone());
            move |changed: &bool| {
                if *changed {
                    let mut view = write(&view);
                    if let Some(members) = view.channels.get_mut(&name) {
                        if joined {
                            members.insert(member.clone());
                        } else {
                            members.remove(&member);
                        }
                    }
                    drop(view);
                    let _ = events.send(Arc::new(membership(name, member, joined)));
                }
            }
        };
        let changed = self
            .db
            .write_then(
                move |conn| {
                    if joined {
                        conn.execute(
                            "INSERT OR IGNORE INTO members (channel, username, joined_at) VALUES (?1, ?2, ?3)",
                            params![name.as_str(), member.as_str(), kit::now_ms() as i64],
                        )
                    } else {
                        conn.execute(
                            "DELETE FROM members WHERE channel = ?1 AND username = ?2",
                            params![name.as_str(), member.as_str()],
                        )
                    }
                    .map(|rows| rows == 1)
                },
                hook,
            )
            .await?;
        Ok(changed)
    }

    // === Messages ===

    /// Stores a message from a member and pushes it to the peers hosting members.
    pub async fn post(
        &self,
        channel: &ChannelName,
        user: &Username,
        sender: &PeerAddr,
        text: &MessageText,
    ) -> Result<ChannelMessage, StoreError> {
        if !self.channel_exists(channel) {
            return Err(StoreError::NoChannel(channel.clone()));
        }
        let draft = ChannelMessage {
            id: 0,
            channel: channel.clone(),
            sender_ip: sender.ip.clone(),
            sender_port: sender.port,
            username: user.clone(),
            text: text.clone(),
            ts: 0,
        };
        let view = self.view.clone();
        let events = self.events.clone();
        let traceparent = kit::telemetry::current_traceparent();
        let stored = self
            .db
            .write_then(
                move |conn| {
                    let member: Option<i64> = conn
                        .prepare_cached("SELECT 1 FROM members WHERE channel = ?1 AND username = ?2")?
                        .query_row(params![draft.channel.as_str(), draft.username.as_str()], |row| row.get(0))
                        .optional()?;
                    if member.is_none() {
                        return Ok(None);
                    }
                    let ts = kit::now_ms();
                    conn.prepare_cached(
                        "INSERT INTO messages (channel, username, sender_ip, sender_port, text, ts)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        draft.channel.as_str(),
                        draft.username.as_str(),
                        draft.sender_ip,
                        draft.sender_port,
                        draft.text.as_str(),
                        ts as i64
                    ])?;
                    Ok(Some(ChannelMessage { id: conn.last_insert_rowid() as u64, ts, ..draft }))
                },
                move |stored: &Option<ChannelMessage>| {
                    if let Some(message) = stored {
                        let targets = Targets::Peers(hosts_of_members(&read_view(&view), &message.channel));
                        let push =
                            Push::new(Some(message.id), Event::ChannelMessage(message.clone()), targets, traceparent);
                        let _ = events.send(Arc::new(push));
                    }
                },
            )
            .await?;
        stored.ok_or_else(|| StoreError::NotMember(channel.clone()))
    }

    /// One page of a channel's history, oldest first, and whether the limit cut it.
    pub async fn history(
        &self,
        channel: &ChannelName,
        before: Option<u64>,
        after: Option<u64>,
        limit: u64,
    ) -> Result<(Vec<ChannelMessage>, bool), StoreError> {
        if !self.channel_exists(channel) {
            return Err(StoreError::NoChannel(channel.clone()));
        }
        let name = channel.clone();
        let limit = limit.clamp(1, MAX_PAGE);
        let page = self
            .db
            .read(move |conn| {
                let fetch = (limit + 1) as i64;
                let mut rows = match (before, after) {
                    (_, Some(after)) => query_messages(
                        conn,
                        "WHERE channel = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3",
                        params![name.as_str(), after as i64, fetch],
                    )?,
                    (Some(before), None) => query_messages(
                        conn,
                        "WHERE channel = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
                        params![name.as_str(), before as i64, fetch],
                    )?,
                    (None, None) => query_messages(
                        conn,
                        "WHERE channel = ?1 ORDER BY id DESC LIMIT ?2",
                        params![name.as_str(), fetch],
                    )?,
                };
                let has_more = rows.len() as u64 > limit;
                rows.truncate(limit as usize);
                if after.is_none() {
                    rows.reverse();
                }
                Ok((rows, has_more))
            })
            .await?;
        Ok(page)
    }

    /// Messages of every channel with an id above `after`, in id order, at most
    /// `limit` of them: what a reconnecting peer missed.
    pub async fn messages_since(&self, after: u64, limit: u64) -> Result<Vec<ChannelMessage>, StoreError> {
        Ok(self
            .db
            .read(move |conn| {
                query_messages(conn, "WHERE id > ?1 ORDER BY id ASC LIMIT ?2", params![after as i64, limit as i64])
            })
            .await?)
    }

    /// The id of the newest message, 0 when there is none.
    pub async fn last_message_id(&self) -> Result<u64, StoreError> {
        Ok(self
            .db
            .read(|conn| conn.query_row("SELECT COALESCE(MAX(id), 0) FROM messages", [], |row| row.get::<_, i64>(0)))
            .await? as u64)
    }

    // === Directory ===

    /// The peer that hosts `user`, or hosted them last; and whether they are still
    /// signed in there.
    pub fn home(&self, user: &Username) -> Option<(PeerAddr, bool)> {
        self.read().homes.get(user).map(|home| (home.peer.clone(), home.signed_in))
    }

    /// The users signed in on some peer, and that peer.
    pub fn signed_in(&self) -> Vec<(Username, PeerAddr)> {
        let mut homes: Vec<_> = self
            .read()
            .homes
            .iter()
            .filter(|(_, home)| home.signed_in)
            .map(|(user, home)| (user.clone(), home.peer.clone()))
            .collect();
        homes.sort();
        homes
    }

    pub fn users_on(&self, peer: &PeerAddr) -> Vec<Username> {
        let mut users: Vec<_> = self
            .read()
            .homes
            .iter()
            .filter(|(_, home)| home.signed_in && home.peer == *peer)
            .map(|(user, _)| user.clone())
            .collect();
        users.sort();
        users
    }

    /// The peers that host members of `channel` now.
    pub fn hosts_of_members(&self, channel: &ChannelName) -> HashSet<PeerAddr> {
        hosts_of_members(&self.read(), channel)
    }

    pub fn is_active(&self, user: &Username) -> bool {
        self.read().active.contains(user)
    }

    /// Records whether `user`, signed in on `peer`, has the chat open; tells every
    /// peer when that changes. Returns false when `peer` is not their home.
    pub fn set_active(&self, user: &Username, peer: &PeerAddr, active: bool) -> bool {
        let mut view = write(&self.view);
        if view.homes.get(user).is_none_or(|home| !home.signed_in || home.peer != *peer) {
            return false;
        }
        let changed = if active { view.active.insert(user.clone()) } else { view.active.remove(user) };
        drop(view);
        if changed {
            self.publish(presence(user.clone(), true, active));
        }
        true
    }

    /// Forgets who is active on `peer` (it stopped beating).
    pub fn clear_active_on(&self, peer: &PeerAddr) {
        let mut view = write(&self.view);
        let on_peer: Vec<Username> =
            view.homes.iter().filter(|(_, home)| home.peer == *peer).map(|(user, _)| user.clone()).collect();
        for user in on_peer {
            view.active.remove(&user);
        }
    }

    /// Records that `peer` hosts `user` (their latest login wins).
    pub async fn set_home(&self, user: &Username, peer: &PeerAddr) -> Result<(), StoreError> {
        self.write_home(user, peer, true).await.map(|_| ())
    }

    /// Marks `user` signed out of `peer`, if that is their home. Returns whether it was.
    pub async fn release(&self, user: &Username, peer: &PeerAddr) -> Result<bool, StoreError> {
        if self.home(user) != Some((peer.clone(), true)) {
            return Ok(false);
        }
        self.write_home(user, peer, false).await
    }

    async fn write_home(&self, user: &Username, peer: &PeerAddr, signed_in: bool) -> Result<bool, StoreError> {
        let home = Home { peer: peer.clone(), signed_in };
        if self.read().homes.get(user) == Some(&home) {
            return Ok(false);
        }
        let (name, addr) = (user.clone(), peer.clone());
        let view = self.view.clone();
        let events = self.events.clone();
        let hook = {
            let name = user.clone();
            move |_: &usize| {
                let mut view = write(&view);
                let new_peer = home.peer.clone();
                let previous = view.homes.insert(name.clone(), home);
                if !signed_in {
                    view.active.remove(&name);
                }
                let active = view.active.contains(&name);
                drop(view);
                // The peer they left holds their mailbox: it hands it over.
                if let Some(previous) = previous.filter(|previous| previous.peer != new_peer) {
                    let moved = Push::new(
                        None,
                        Event::Moved(Moved { username: name.clone(), to: new_peer }),
                        Targets::Peers(HashSet::from([previous.peer])),
                        None,
                    );
                    let _ = events.send(Arc::new(moved));
                }
                let _ = events.send(Arc::new(presence(name, signed_in, active)));
            }
        };
        self.db
            .write_then(
                move |conn| {
                    conn.execute(
                        "INSERT INTO directory (username, ip, port, online, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT(username) DO UPDATE SET ip = ?2, port = ?3, online = ?4, updated_at = ?5",
                        params![name.as_str(), addr.ip, addr.port, signed_in, kit::now_ms() as i64],
                    )
                },
                hook,
            )
            .await?;
        Ok(true)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        read_view(&self.view)
    }
}

/// `event` as a peer's stream carries it: a [`Pushed`], with the trace context.
pub fn pushed_json(event: &Event, traceparent: Option<&str>) -> String {
    let pushed = Pushed { event: event.clone(), traceparent: traceparent.map(str::to_owned) };
    serde_json::to_string(&pushed).expect("wire events serialize to JSON")
}

/// A presence change, for every peer.
pub fn presence(username: Username, online: bool, active: bool) -> Push {
    Push::new(
        None,
        Event::Presence(Presence { username, online, active }),
        Targets::Everyone,
        kit::telemetry::current_traceparent(),
    )
}

fn membership(channel: ChannelName, username: Username, joined: bool) -> Push {
    Push::new(None, Event::Membership(Membership { channel, username, joined }), Targets::Everyone, None)
}

fn hosts_of_members(view: &View, channel: &ChannelName) -> HashSet<PeerAddr> {
    view.channels
        .get(channel)
        .map(|members| {
            members
                .iter()
                .filter_map(|member| view.homes.get(member))
                .filter(|home| home.signed_in)
                .map(|home| home.peer.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn read_view(view: &RwLock<View>) -> std::sync::RwLockReadGuard<'_, View> {
    view.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(view: &RwLock<View>) -> std::sync::RwLockWriteGuard<'_, View> {
    view.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn load_view(conn: &Connection) -> rusqlite::Result<View> {
    let mut view = View::default();
    let mut channels = conn.prepare("SELECT name FROM channels")?;
    for name in channels.query_map([], |row| parse_column(row, 0, ChannelName::parse))? {
        view.channels.insert(name?, BTreeSet::new());
    }
    let mut members = conn.prepare("SELECT channel, username FROM members")?;
    let rows = members
        .query_map([], |row| Ok((parse_column(row, 0, ChannelName::parse)?, parse_column(row, 1, Username::parse)?)))?;
    for row in rows {
        let (channel, user) = row?;
        view.channels.entry(channel).or_default().insert(user);
    }
    let mut directory = conn.prepare("SELECT username, ip, port, online FROM directory")?;
    let rows = directory.query_map([], |row| {
        let peer = PeerAddr { ip: row.get(1)?, port: row.get(2)? };
        Ok((parse_column(row, 0, Username::parse)?, Home { peer, signed_in: row.get(3)? }))
    })?;
    for row in rows {
        let (user, addr) = row?;
        view.homes.insert(user, addr);
    }
    let mut revoked = conn.prepare("SELECT sid, expires_at FROM revoked WHERE expires_at >= ?1")?;
    for row in revoked.query_map([kit::now_secs() as i64], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))? {
        let (sid, expires_at) = row?;
        view.revoked.insert(sid, expires_at);
    }
    Ok(view)
}

fn query_messages(
    conn: &Connection,
    clause: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<ChannelMessage>> {
    let sql = format!("SELECT id, channel, username, sender_ip, sender_port, text, ts FROM messages {clause}");
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params, |row| {
        Ok(ChannelMessage {
            id: row.get::<_, i64>(0)? as u64,
            channel: parse_column(row, 1, ChannelName::parse)?,
            username: parse_column(row, 2, Username::parse)?,
            sender_ip: row.get(3)?,
            sender_port: row.get(4)?,
            text: parse_column(row, 5, MessageText::parse)?,
            ts: row.get::<_, i64>(6)? as u64,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    fn peer(port: u16) -> PeerAddr {
        PeerAddr::parse("127.0.0.1", port).unwrap()
    }

    fn text(body: &str) -> MessageText {
        MessageText::parse(body).unwrap()
    }

    #[tokio::test]
    async fn everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tracker.db");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.channels().len(), 5);
            store.create_channel(&channel("rust"), &user("alice")).await.unwrap();
            store.join(&channel("general"), &user("bob")).await.unwrap();
            store.set_home(&user("bob"), &peer(9002)).await.unwrap();
            store.post(&channel("general"), &user("bob"), &peer(9002), &text("one")).await.unwrap();
            store.post(&channel("general"), &user("bob"), &peer(9002), &text("two")).await.unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert!(store.is_member(&channel("rust"), &user("alice")));
        assert_eq!(store.joined(&user("bob")), [channel("general")]);
        assert_eq!(store.home(&user("bob")), Some((peer(9002), true)));
        assert!(store.release(&user("bob"), &peer(9002)).await.unwrap());
        assert_eq!(store.home(&user("bob")), Some((peer(9002), false)));
        assert!(store.signed_in().is_empty());
        let (page, has_more) = store.history(&channel("general"), None, None, 10).await.unwrap();
        let texts: Vec<_> = page.iter().map(|m| m.text.as_str()).collect();
        assert_eq!((texts, has_more), (vec!["one", "two"], false));
    }

    #[tokio::test]
    async fn history_pages_backwards_and_forwards() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("tracker.db")).unwrap();
        store.join(&channel("general"), &user("a")).await.unwrap();
        for i in 0..7 {
            store.post(&channel("general"), &user("a"), &peer(9001), &text(&format!("m{i}"))).await.unwrap();
        }
        let texts = |page: &[ChannelMessage]| page.iter().map(|m| m.text.to_string()).collect::<Vec<_>>();
        let (latest, more) = store.history(&channel("general"), None, None, 3).await.unwrap();
        assert_eq!((texts(&latest), more), (vec!["m4".into(), "m5".into(), "m6".into()], true));
        let (older, more) = store.history(&channel("general"), Some(latest[0].id), None, 3).await.unwrap();
        assert_eq!((texts(&older), more), (vec!["m1".into(), "m2".into(), "m3".into()], true));
        let (oldest, more) = store.history(&channel("general"), Some(older[0].id), None, 3).await.unwrap();
        assert_eq!((texts(&oldest), more), (vec!["m0".into()], false));
        let (newer, more) = store.history(&channel("general"), None, Some(older[2].id), 2).await.unwrap();
        assert_eq!((texts(&newer), more), (vec!["m4".into(), "m5".into()], true));
    }

    #[tokio::test]
    async fn posting_needs_membership_and_a_known_channel() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("tracker.db")).unwrap();
        let not_member = store.post(&channel("general"), &user("eve"), &peer(9001), &text("hi")).await;
        assert!(matches!(not_member, Err(StoreError::NotMember(_))));
        let unknown = store.post(&channel("nope"), &user("eve"), &peer(9001), &text("hi")).await;
        assert!(matches!(unknown, Err(StoreError::NoChannel(_))));
        assert!(matches!(store.join(&channel("nope"), &user("eve")).await, Err(StoreError::NoChannel(_))));
        assert!(matches!(
            store.create_channel(&channel("general"), &user("eve")).await,
            Err(StoreError::ChannelExists(_))
        ));
        assert!(store.join(&channel("general"), &user("eve")).await.unwrap());
        assert!(!store.join(&channel("general"), &user("eve")).await.unwrap(), "joining twice is a no-op");
        assert!(store.leave(&channel("general"), &user("eve")).await.unwrap());
        assert!(store.joined(&user("eve")).is_empty());
    }

    #[tokio::test]
    async fn messages_are_pushed_in_id_order_to_the_peers_of_members() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("tracker.db")).unwrap();
        store.join(&channel("general"), &user("a")).await.unwrap();
        store.join(&channel("general"), &user("b")).await.unwrap();
        store.set_home(&user("a"), &peer(9001)).await.unwrap();
        store.set_home(&user("b"), &peer(9002)).await.unwrap();
        let mut events = store.subscribe();
        let posts = (0..50).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.post(&channel("general"), &user("a"), &peer(9001), &text(&format!("{i}"))).await.unwrap()
            })
        });
        for post in posts {
            post.await.unwrap();
        }
        let mut last = 0;
        for _ in 0..50 {
            let push = events.recv().await.unwrap();
            let id = push.id.unwrap();
            assert!(id > last, "pushes must come in id order");
            last = id;
            assert!(push.is_for(&peer(9001)) && push.is_for(&peer(9002)) && !push.is_for(&peer(9003)));
        }
    }
}
