//! The embedded backend: SQLite (WAL, group commit through [`kit::db::Db`]), with an
//! in-memory view of channels, members and homes for the reads that happen on every
//! request, and the peer pool in memory.
//!
//! The in-memory view and the event stream are updated by commit hooks, which run in
//! commit order. So a message is pushed to peers only once it is on disk, and in id
//! order.

mod chat;
mod directory;
mod revoked;
mod rows;
mod schema;
mod search;
mod view;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kit::db::{Db, parse_column};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::broadcast;
use wire::addr::PeerAddr;
use wire::api::{ChannelMessage, Member};
use wire::events::Event;
use wire::names::{ChannelName, MessageText, Username};

use crate::pool::PeerPool;
use crate::store::model::{
    PUSH_BUFFER, Push, StoreError, Targets, membership, mention_candidates, mentions_column, mentions_from_column,
    mentions_in,
};
use view::{View, hosts_of_members, read_view, write};

/// The embedded store. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
    view: Arc<RwLock<View>>,
    events: broadcast::Sender<Arc<Push>>,
    pool: PeerPool,
}

impl SqliteStore {
    /// Opens the database at `path`, migrating it, and loads the in-memory view.
    pub fn open(path: &Path, peer_ttl: Duration) -> anyhow::Result<Self> {
        let (db, view) = Db::open_and_load(path, schema::MIGRATIONS, schema::load_view)?;
        // Peers that fall this far behind get a `reset` and reload; see the peer stream.
        let (events, _) = broadcast::channel(PUSH_BUFFER);
        Ok(Self { db, view: Arc::new(RwLock::new(view)), events, pool: PeerPool::new(peer_ttl) })
    }

    pub fn path(&self) -> &Path {
        self.db.path()
    }

    pub fn peer_ttl(&self) -> Duration {
        self.pool.ttl()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Push>> {
        self.events.subscribe()
    }

    /// Sends a push to every subscribed peer stream.
    fn publish(&self, push: Push) {
        // No subscriber is fine: no peer is connected.
        let _ = self.events.send(Arc::new(push));
    }

    // === Ended sessions === (in `revoked`)

    // === Channels and members ===

    pub async fn channels(&self) -> Result<Vec<ChannelName>, StoreError> {
        Ok(self.read().channels.keys().cloned().collect())
    }

    fn channel_exists(&self, channel: &ChannelName) -> bool {
        self.read().channels.contains_key(channel)
    }

    pub async fn joined(&self, user: &Username) -> Result<Vec<ChannelName>, StoreError> {
        Ok(self
            .read()
            .channels
            .iter()
            .filter(|(_, members)| members.contains(user))
            .map(|(name, _)| name.clone())
            .collect())
    }

    pub async fn members(&self, channel: &ChannelName) -> Result<Option<Vec<Username>>, StoreError> {
        Ok(self.read().channels.get(channel).map(|members| members.iter().cloned().collect()))
    }

    pub async fn roster(&self, channel: &ChannelName) -> Result<Vec<Member>, StoreError> {
        let view = self.read();
        let Some(members) = view.channels.get(channel) else { return Ok(Vec::new()) };
        Ok(members
            .iter()
            .map(|username| {
                let home = view.homes.get(username);
                Member {
                    ip: home.map(|home| home.peer.ip.clone()),
                    port: home.map(|home| home.peer.port),
                    username: username.clone(),
                    online: home.is_some_and(|home| home.signed_in && self.pool.is_live(&home.peer)),
                }
            })
            .collect())
    }

    pub async fn is_member(&self, channel: &ChannelName, user: &Username) -> Result<bool, StoreError> {
        Ok(self.read().channels.get(channel).is_some_and(|members| members.contains(user)))
    }

    pub async fn create_channel(&self, channel: &ChannelName, by: &Username, private: bool) -> Result<(), StoreError> {
        let (name, creator) = (channel.clone(), by.clone());
        let view = self.view.clone();
        let events = self.events.clone();
        let traceparent = kit::telemetry::current_traceparent();
        let created = self
            .db
            .write_then(
                move |conn| {
                    // One writer: no other channel can appear between this look and
                    // the insert.
                    if look_alike_channel(conn, &name)? {
                        return Ok(false);
                    }
                    let inserted = conn.execute(
                        "INSERT OR IGNORE INTO channels (name, created_at, created_by, private)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![name.as_str(), kit::now_ms() as i64, creator.as_str(), private],
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
                            let mut view = write(&view);
                            view.channels.insert(name.clone(), BTreeSet::from([creator.clone()]));
                            let targets = private.then(|| {
                                view.private.insert(name.clone());
                                view.host_of(&creator).into_iter().collect()
                            });
                            drop(view);
                            let _ = events.send(Arc::new(membership(name, creator, true, targets, traceparent)));
                        }
                    }
                },
            )
            .await?;
        if created { Ok(()) } else { Err(StoreError::ChannelExists(channel.clone())) }
    }

    pub async fn set_membership(
        &self,
        channel: &ChannelName,
        user: &Username,
        joined: bool,
    ) -> Result<bool, StoreError> {
        if !self.channel_exists(channel) {
            return Err(StoreError::NoChannel(channel.clone()));
        }
        let (name, member) = (channel.clone(), user.clone());
        let view = self.view.clone();
        let events = self.events.clone();
        let traceparent = kit::telemetry::current_traceparent();
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
                    // A private channel's change goes to its members and the user.
                    let targets = view.private.contains(&name).then(|| {
                        let mut targets = hosts_of_members(&view, &name);
                        targets.extend(view.host_of(&member));
                        targets
                    });
                    drop(view);
                    let _ = events.send(Arc::new(membership(name, member, joined, targets, traceparent)));
                }
            }
        };
        let changed = self
            .db
            .write_then(
                move |conn| {
                    if joined {
                        // A new member has read what came before.
                        conn.execute(
                            "INSERT OR IGNORE INTO members (channel, username, joined_at, last_read)
                             VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(id), 0) FROM messages WHERE channel = ?1))",
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

    /// Stores a message from a member, answering the message `reply_to` of the same
    /// channel if given, with the members it mentions.
    pub async fn post(
        &self,
        channel: &ChannelName,
        user: &Username,
        sender: &PeerAddr,
        text: &MessageText,
        reply_to: Option<u64>,
    ) -> Result<ChannelMessage, StoreError> {
        let mut draft =
            ChannelMessage::new(0, channel.clone(), (sender.ip.clone(), sender.port), user.clone(), text.clone());
        {
            let view = self.read();
            let Some(members) = view.channels.get(channel) else {
                return Err(StoreError::NoChannel(channel.clone()));
            };
            if !mention_candidates(text.as_str()).is_empty() {
                draft.mentions = mentions_in(text.as_str(), user, |name| {
                    Username::parse(name).is_ok_and(|name| members.contains(&name))
                });
            }
        }
        draft.reply_to = reply_to;
        let view = self.view.clone();
        let events = self.events.clone();
        let traceparent = kit::telemetry::current_traceparent();
        self.db
            .write_then(
                move |conn| {
                    let member: Option<i64> = conn
                        .prepare_cached("SELECT 1 FROM members WHERE channel = ?1 AND username = ?2")?
                        .query_row(params![draft.channel.as_str(), draft.username.as_str()], |row| row.get(0))
                        .optional()?;
                    if member.is_none() {
                        return Ok(Err(StoreError::NotMember(draft.channel.clone())));
                    }
                    if let Some(parent) = draft.reply_to {
                        match rows::reply_preview(conn, &draft.channel, parent)? {
                            Some(preview) => draft.reply = Some(preview),
                            None => return Ok(Err(StoreError::NoMessage(draft.channel.clone(), parent))),
                        }
                    }
                    let ts = kit::now_ms();
                    let mentions = mentions_column(&draft.mentions);
                    conn.prepare_cached(
                        "INSERT INTO messages (channel, username, sender_ip, sender_port, text, ts, reply_to, mentions)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?
                    .execute(params![
                        draft.channel.as_str(),
                        draft.username.as_str(),
                        draft.sender_ip,
                        draft.sender_port,
                        draft.text.as_str(),
                        ts as i64,
                        draft.reply_to.map(|id| id as i64),
                        mentions,
                    ])?;
                    let id = conn.last_insert_rowid() as u64;
                    rows::record_mentions(conn, &draft.channel, id, &draft.mentions)?;
                    Ok(Ok(ChannelMessage { id, ts, ..draft }))
                },
                move |stored: &Result<ChannelMessage, StoreError>| {
                    if let Ok(message) = stored {
                        let targets = Targets::Peers(hosts_of_members(&read_view(&view), &message.channel));
                        let push =
                            Push::new(Some(message.id), Event::ChannelMessage(message.clone()), targets, traceparent);
                        let _ = events.send(Arc::new(push));
                    }
                },
            )
            .await?
    }

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
                rows::enrich(conn, &mut rows)?;
                Ok((rows, has_more))
            })
            .await?;
        Ok(page)
    }

    pub async fn messages_since(&self, after: u64, limit: u64) -> Result<Vec<ChannelMessage>, StoreError> {
        Ok(self
            .db
            .read(move |conn| {
                let mut rows = query_messages(
                    conn,
                    "WHERE id > ?1 ORDER BY id ASC LIMIT ?2",
                    params![after as i64, limit as i64],
                )?;
                rows::enrich(conn, &mut rows)?;
                Ok(rows)
            })
            .await?)
    }

    pub async fn last_message_id(&self) -> Result<u64, StoreError> {
        Ok(self
            .db
            .read(|conn| conn.query_row("SELECT COALESCE(MAX(id), 0) FROM messages", [], |row| row.get::<_, i64>(0)))
            .await? as u64)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        read_view(&self.view)
    }
}

fn query_messages(
    conn: &Connection,
    clause: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<ChannelMessage>> {
    let sql = format!(
        "SELECT id, channel, username, sender_ip, sender_port, text, ts, edited_at, deleted, reply_to, mentions
         FROM messages {clause}"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params, |row| {
        let deleted: bool = row.get(8)?;
        let mut message = ChannelMessage::new(
            row.get::<_, i64>(0)? as u64,
            parse_column(row, 1, ChannelName::parse)?,
            (row.get(3)?, row.get(4)?),
            parse_column(row, 2, Username::parse)?,
            if deleted { MessageText::tombstone() } else { parse_column(row, 5, MessageText::parse)? },
        );
        message.ts = row.get::<_, i64>(6)? as u64;
        message.edited_at = row.get::<_, Option<i64>>(7)?.map(|ts| ts as u64);
        message.deleted = deleted;
        message.reply_to = row.get::<_, Option<i64>>(9)?.map(|id| id as u64);
        message.mentions = mentions_from_column(row.get::<_, Option<String>>(10)?.as_deref());
        Ok(message)
    })?;
    rows.collect()
}

/// Whether a channel whose name looks like `name` ([`ChannelName::key`]) exists.
fn look_alike_channel(conn: &rusqlite::Connection, name: &ChannelName) -> rusqlite::Result<bool> {
    let key = name.key();
    let mut names = conn.prepare_cached("SELECT name FROM channels")?;
    let mut rows = names.query([])?;
    while let Some(row) = rows.next()? {
        if wire::names::name_key(&row.get::<_, String>(0)?) == key {
            return Ok(true);
        }
    }
    Ok(false)
}
