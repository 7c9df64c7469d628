//! The peer's durable data, in SQLite (WAL, group commit): the users it hosts, revoked
//! sessions, contacts, every direct message sent or received (the mailboxes), and the
//! outbox of messages not yet delivered.

use std::path::Path;

use kit::db::{Db, DbError, parse_column};
use rusqlite::{Connection, OptionalExtension, params};
use wire::addr::PeerAddr;
use wire::api::{Contact, DirectMessage};
use wire::names::{MessageText, Username};

const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE hosted (
        username TEXT PRIMARY KEY,
        since    INTEGER NOT NULL
    );
    CREATE TABLE revoked (
        sid        TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE contacts (
        owner    TEXT NOT NULL,
        username TEXT NOT NULL,
        ip       TEXT NOT NULL,
        port     INTEGER NOT NULL,
        added_at INTEGER NOT NULL,
        PRIMARY KEY (owner, username)
    );
    -- One row per mailbox a message is in: the sender's (outgoing = 1) and the
    -- recipient's (outgoing = 0), when they live on this peer.
    CREATE TABLE dms (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        owner       TEXT NOT NULL,
        outgoing    INTEGER NOT NULL,
        id          TEXT NOT NULL,
        other       TEXT NOT NULL,
        sender      TEXT NOT NULL,
        recipient   TEXT NOT NULL,
        text        TEXT NOT NULL,
        ts          INTEGER NOT NULL,
        sender_ip   TEXT NOT NULL,
        sender_port INTEGER NOT NULL,
        broadcast   INTEGER NOT NULL,
        unread      INTEGER NOT NULL,
        UNIQUE (owner, outgoing, id)
    );
    CREATE INDEX dms_by_conversation ON dms(owner, other, seq);
    CREATE INDEX dms_unread ON dms(owner, unread, seq);
    CREATE TABLE outbox (
        id           TEXT PRIMARY KEY,
        message      TEXT NOT NULL,
        attempts     INTEGER NOT NULL,
        next_attempt INTEGER NOT NULL,
        created_at   INTEGER NOT NULL,
        last_error   TEXT
    );
    CREATE INDEX outbox_due ON outbox(next_attempt);
"#,
    r#"
    -- The trace context of the send, so retries link to it.
    ALTER TABLE outbox ADD COLUMN traceparent TEXT;
"#,
    r#"
    -- When the user's latest session here expires (Unix seconds; 0: unknown).
    ALTER TABLE hosted ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
    -- Conversations are read in time order: a mailbox handed over from another peer
    -- brings older messages with newer places.
    CREATE INDEX dms_by_time ON dms(owner, other, ts, seq);
"#,
    r#"
    -- Whether this peer ended the session (a logout here) or heard of it from the
    -- tracker. Sessions from before this column were all ended here.
    ALTER TABLE revoked ADD COLUMN own INTEGER NOT NULL DEFAULT 1;
"#,
];

/// How long the outbox worker leaves a new message to its sender's own first attempt.
const FIRST_ATTEMPT_GRACE_MS: i64 = 15_000;

/// The peer's data. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct PeerStore {
    db: Db,
}

/// What the peer keeps in memory from its database.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Hosted users and when their latest session expires (0: unknown).
    pub hosted: Vec<(Username, u64)>,
    pub revoked: Vec<(String, u64)>,
}

/// A direct message waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    pub message: DirectMessage,
    /// The trace context of the original send.
    pub traceparent: Option<String>,
    pub attempts: u32,
    /// When it entered the outbox, ms since the epoch.
    pub created_at: u64,
}

impl PeerStore {
    pub fn open(path: &Path) -> anyhow::Result<(Self, Loaded)> {
        let (db, loaded) = Db::open_and_load(path, MIGRATIONS, load)?;
        Ok((Self { db }, loaded))
    }

    pub fn path(&self) -> &Path {
        self.db.path()
    }

    // === Sessions ===

    /// Records that this peer hosts `user` until at least `expires_at`.
    pub async fn host(&self, user: &Username, expires_at: u64) -> Result<(), DbError> {
        let user = user.clone();
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO hosted (username, since, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(username) DO UPDATE SET expires_at = MAX(expires_at, ?3)",
                    params![user.as_str(), kit::now_ms() as i64, expires_at as i64],
                )
            })
            .await
            .map(drop)
    }

    pub async fn unhost(&self, user: &Username) -> Result<(), DbError> {
        let user = user.clone();
        self.db
            .write(move |conn| conn.execute("DELETE FROM hosted WHERE username = ?1", [user.as_str()]))
            .await
            .map(drop)
    }

    /// Records an ended session: `own` when it ended here (a logout on this peer),
    /// else heard of from the tracker.
    pub async fn revoke(&self, sid: &str, expires_at: u64, own: bool) -> Result<(), DbError> {
        let sid = sid.to_owned();
        self.db
            .write(move |conn| {
                conn.execute("DELETE FROM revoked WHERE expires_at < ?1", [kit::now_secs() as i64])?;
                conn.execute(
                    "INSERT INTO revoked (sid, expires_at, own) VALUES (?1, ?2, ?3)
                     ON CONFLICT(sid) DO UPDATE SET own = max(own, ?3)",
                    params![sid, expires_at as i64, own],
                )
            })
            .await
            .map(drop)
    }

    /// The sessions that ended here and whose tokens have not expired: what the
    /// tracker must know of.
    pub async fn own_revoked(&self) -> Result<Vec<(String, u64)>, DbError> {
        self.db
            .read(|conn| {
                let mut statement =
                    conn.prepare_cached("SELECT sid, expires_at FROM revoked WHERE own = 1 AND expires_at >= ?1")?;
                let rows = statement
                    .query_map([kit::now_secs() as i64], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?;
                rows.collect()
            })
            .await
    }

    // === Contacts ===

    /// Adds or moves a contact of `owner`.
    pub async fn add_contact(&self, owner: &Username, contact: &Username, at: &PeerAddr) -> Result<(), DbError> {
        let (owner, contact, at) = (owner.clone(), contact.clone(), at.clone());
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO contacts (owner, username, ip, port, added_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(owner, username) DO UPDATE SET ip = ?3, port = ?4",
                    params![owner.as_str(), contact.as_str(), at.ip, at.port, kit::now_ms() as i64],
                )
            })
            .await
            .map(drop)
    }

    /// `owner`'s contacts, in the order they were added, with their last known address.
    pub async fn contacts(&self, owner: &Username) -> Result<Vec<Contact>, DbError> {
        let owner = owner.clone();
        self.db
            .read(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT username, ip, port FROM contacts WHERE owner = ?1 ORDER BY added_at, username",
                )?;
                let rows = statement.query_map([owner.as_str()], |row| {
                    Ok(Contact {
                        username: parse_column(row, 0, Username::parse)?,
                        ip: row.get(1)?,
                        port: row.get(2)?,
                        online: false,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    /// Where `owner` last knew `other` to be: their contact's address, else the peer
    /// that `other`'s latest message to them came from. Lets direct messages go peer
    /// to peer while the tracker cannot be asked.
    pub async fn last_known_address(&self, owner: &Username, other: &Username) -> Result<Option<PeerAddr>, DbError> {
        let (owner, other) = (owner.clone(), other.clone());
        self.db
            .read(move |conn| {
                let address = |row: &rusqlite::Row<'_>| Ok(PeerAddr { ip: row.get(0)?, port: row.get(1)? });
                let keys = params![owner.as_str(), other.as_str()];
                let contact = conn
                    .prepare_cached("SELECT ip, port FROM contacts WHERE owner = ?1 AND username = ?2")?
                    .query_row(keys, address)
                    .optional()?;
                if contact.is_some() {
                    return Ok(contact);
                }
                conn.prepare_cached(
                    "SELECT sender_ip, sender_port FROM dms WHERE owner = ?1 AND other = ?2 AND outgoing = 0
                     ORDER BY ts DESC, seq DESC LIMIT 1",
                )?
                .query_row(keys, address)
                .optional()
            })
            .await
    }

    // === Mailboxes and outbox ===

    /// Files a message in its sender's mailbox and in the outbox, in one commit.
    /// Returns its place in the sender's mailbox.
    pub async fn save_outgoing(&self, message: &DirectMessage) -> Result<u64, DbError> {
        let message = message.clone();
        let traceparent = kit::telemetry::current_traceparent();
        self.db
            .write(move |conn| {
                let seq = insert_dm(conn, &message, true)?.unwrap_or_default();
                let json = serde_json::to_string(&message)
                    .map_err(|err| rusqlite::Error::ToSqlConversionFailure(err.into()))?;
                // The sender tries at once; the outbox worker takes over only if that fails,
                // or if the peer dies before it knows.
                let now = kit::now_ms() as i64;
                conn.execute(
                    "INSERT OR IGNORE INTO outbox (id, message, attempts, next_attempt, created_at, traceparent)
                     VALUES (?1, ?2, 0, ?3, ?4, ?5)",
                    params![message.id, json, now + FIRST_ATTEMPT_GRACE_MS, now, traceparent],
                )?;
                Ok(seq)
            })
            .await
    }

    /// Files a received message in its recipient's mailbox. Returns its place there,
    /// or `None` when it was filed already (a retry of a delivered message).
    pub async fn save_incoming(&self, message: &DirectMessage) -> Result<Option<u64>, DbError> {
        let message = message.clone();
        self.db.write(move |conn| insert_dm(conn, &message, false)).await
    }

    /// Messages due for another delivery attempt, oldest first.
    pub async fn due(&self, limit: usize) -> Result<Vec<Pending>, DbError> {
        self.db
            .read(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT message, attempts, created_at, traceparent FROM outbox WHERE next_attempt <= ?1
                     ORDER BY next_attempt, created_at LIMIT ?2",
                )?;
                let rows = statement.query_map(params![kit::now_ms() as i64, limit as i64], |row| {
                    let json: String = row.get(0)?;
                    let message = serde_json::from_str(&json).map_err(|err| {
                        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, err.into())
                    })?;
                    Ok(Pending {
                        message,
                        attempts: row.get(1)?,
                        created_at: row.get::<_, i64>(2)? as u64,
                        traceparent: row.get(3)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    /// When the next outbox message is due, ms since the epoch.
    pub async fn next_due(&self) -> Result<Option<u64>, DbError> {
        self.db
            .read(|conn| {
                conn.query_row("SELECT MIN(next_attempt) FROM outbox", [], |row| row.get::<_, Option<i64>>(0))
                    .map(|due| due.map(|due| due as u64))
            })
            .await
    }

    pub async fn outbox_len(&self) -> Result<u64, DbError> {
        self.db
            .read(|conn| conn.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get::<_, i64>(0)))
            .await
            .map(|n| n as u64)
    }

    /// The message reached its recipient's peer: out of the outbox.
    pub async fn delivered(&self, id: &str) -> Result<(), DbError> {
        self.remove_from_outbox(id).await
    }

    /// Gives up on a message (too old).
    pub async fn give_up(&self, id: &str) -> Result<(), DbError> {
        self.remove_from_outbox(id).await
    }

    async fn remove_from_outbox(&self, id: &str) -> Result<(), DbError> {
        let id = id.to_owned();
        self.db.write(move |conn| conn.execute("DELETE FROM outbox WHERE id = ?1", [id])).await.map(drop)
    }

    /// Schedules another attempt at `next_attempt` (ms since the epoch).
    pub async fn retry_later(&self, id: &str, attempts: u32, next_attempt: u64, error: &str) -> Result<(), DbError> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE outbox SET attempts = ?2, next_attempt = ?3, last_error = ?4 WHERE id = ?1",
                    params![id, attempts, next_attempt as i64, error],
                )
            })
            .await
            .map(drop)
    }

    /// `owner`'s received messages not yet read through `/get-received-messages`,
    /// oldest first; marks them read.
    pub async fn take_unread(&self, owner: &Username) -> Result<Vec<DirectMessage>, DbError> {
        let owner = owner.clone();
        self.db
            .write(move |conn| {
                let messages = query_dms(
                    conn,
                    "WHERE owner = ?1 AND outgoing = 0 AND unread = 1 ORDER BY seq LIMIT 1000",
                    params![owner.as_str()],
                )?;
                if let Some(last) = messages.last().and_then(|message| message.seq) {
                    conn.execute(
                        "UPDATE dms SET unread = 0 WHERE owner = ?1 AND outgoing = 0 AND unread = 1 AND seq <= ?2",
                        params![owner.as_str(), last as i64],
                    )?;
                }
                Ok(messages)
            })
            .await
    }

    /// The messages between `owner` and `other`, both ways, oldest first: the latest
    /// `limit`, or the `limit` before `before`; and whether older ones exist.
    pub async fn conversation(
        &self,
        owner: &Username,
        other: &Username,
        before: Option<u64>,
        limit: u64,
    ) -> Result<(Vec<DirectMessage>, bool), DbError> {
        let (owner, other) = (owner.clone(), other.clone());
        self.db
            .read(move |conn| {
                // Time order, the place breaking ties; `before` names a message, and the
                // page ends just before it in that order.
                let mut messages = query_dms(
                    conn,
                    "WHERE owner = ?1 AND other = ?2
                       AND (?3 IS NULL OR (ts, seq) < (SELECT ts, seq FROM dms WHERE seq = ?3))
                     ORDER BY ts DESC, seq DESC LIMIT ?4",
                    params![owner.as_str(), other.as_str(), before.map(|seq| seq as i64), limit as i64 + 1],
                )?;
                let has_more = messages.len() as u64 > limit;
                messages.truncate(limit as usize);
                messages.reverse();
                Ok((messages, has_more))
            })
            .await
    }

    // === Handing a mailbox over to a user's new home ===

    /// One page of `owner`'s mailbox after place `after`, in place order. Their own
    /// messages carry `delivered`, received ones do not.
    pub async fn export_mailbox(
        &self,
        owner: &Username,
        after: u64,
        limit: u64,
    ) -> Result<Vec<DirectMessage>, DbError> {
        let owner = owner.clone();
        self.db
            .read(move |conn| {
                query_dms(
                    conn,
                    "WHERE owner = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                    params![owner.as_str(), after as i64, limit as i64],
                )
            })
            .await
    }

    /// Files a page of a mailbox handed over by `owner`'s previous peer, and their
    /// contacts. Messages already here are skipped; handed-over ones count as read.
    pub async fn import_mailbox(
        &self,
        owner: &Username,
        messages: Vec<DirectMessage>,
        contacts: Vec<Contact>,
    ) -> Result<usize, DbError> {
        let owner = owner.clone();
        self.db
            .write(move |conn| {
                let mut filed = 0;
                for message in &messages {
                    let outgoing = message.delivered.is_some() && message.username == owner;
                    if let Some(seq) = insert_dm(conn, message, outgoing)? {
                        conn.prepare_cached("UPDATE dms SET unread = 0 WHERE seq = ?1")?.execute([seq as i64])?;
                        filed += 1;
                    }
                }
                for contact in &contacts {
                    conn.execute(
                        "INSERT OR IGNORE INTO contacts (owner, username, ip, port, added_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![owner.as_str(), contact.username.as_str(), contact.ip, contact.port, kit::now_ms() as i64],
                    )?;
                }
                Ok(filed)
            })
            .await
    }

    /// The users with a mailbox here.
    pub async fn mailbox_owners(&self) -> Result<Vec<Username>, DbError> {
        self.db
            .read(|conn| {
                let mut statement = conn.prepare("SELECT DISTINCT owner FROM dms")?;
                let owners = statement.query_map([], |row| parse_column(row, 0, Username::parse))?;
                owners.collect()
            })
            .await
    }

    /// Forgets `owner`'s mailbox up to place `through` (handed over), and their
    /// contacts. Messages filed after the hand-over began stay.
    pub async fn drop_mailbox(&self, owner: &Username, through: u64) -> Result<(), DbError> {
        let owner = owner.clone();
        self.db
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM dms WHERE owner = ?1 AND seq <= ?2",
                    params![owner.as_str(), through as i64],
                )?;
                conn.execute("DELETE FROM contacts WHERE owner = ?1", [owner.as_str()])?;
                Ok(())
            })
            .await
    }
}

fn insert_dm(conn: &Connection, message: &DirectMessage, outgoing: bool) -> rusqlite::Result<Option<u64>> {
    let (owner, other) = if outgoing { (&message.username, &message.to) } else { (&message.to, &message.username) };
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO dms
             (owner, outgoing, id, other, sender, recipient, text, ts, sender_ip, sender_port, broadcast, unread)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            owner.as_str(),
            outgoing,
            message.id,
            other.as_str(),
            message.username.as_str(),
            message.to.as_str(),
            message.message.as_str(),
            message.ts as i64,
            message.sender_ip,
            message.sender_port,
            message.broadcast,
            !outgoing
        ],
    )?;
    Ok((inserted == 1).then(|| conn.last_insert_rowid() as u64))
}

fn query_dms(conn: &Connection, clause: &str, params: impl rusqlite::Params) -> rusqlite::Result<Vec<DirectMessage>> {
    // An outgoing message is delivered once it has left the outbox.
    let sql = format!(
        "SELECT seq, id, sender, recipient, text, ts, sender_ip, sender_port, broadcast,
                CASE WHEN outgoing = 1 THEN NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.id = dms.id) END
         FROM dms {clause}"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params, |row| {
        Ok(DirectMessage {
            seq: Some(row.get::<_, i64>(0)? as u64),
            id: row.get(1)?,
            username: parse_column(row, 2, Username::parse)?,
            to: parse_column(row, 3, Username::parse)?,
            message: parse_column(row, 4, MessageText::parse)?,
            ts: row.get::<_, i64>(5)? as u64,
            sender_ip: row.get(6)?,
            sender_port: row.get(7)?,
            broadcast: row.get(8)?,
            delivered: row.get(9)?,
        })
    })?;
    rows.collect()
}

fn load(conn: &Connection) -> rusqlite::Result<Loaded> {
    let mut loaded = Loaded::default();
    let mut hosted = conn.prepare("SELECT username, expires_at FROM hosted")?;
    for user in
        hosted.query_map([], |row| Ok((parse_column(row, 0, Username::parse)?, row.get::<_, i64>(1)? as u64)))?
    {
        loaded.hosted.push(user?);
    }
    let mut revoked = conn.prepare("SELECT sid, expires_at FROM revoked WHERE expires_at >= ?1")?;
    for row in revoked.query_map([kit::now_secs() as i64], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))? {
        loaded.revoked.push(row?);
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    fn dm(id: &str, from: &str, to: &str, text: &str) -> DirectMessage {
        DirectMessage {
            id: id.into(),
            message: MessageText::parse(text).unwrap(),
            sender_ip: "127.0.0.1".into(),
            sender_port: 9001,
            username: user(from),
            to: user(to),
            ts: 1,
            broadcast: false,
            seq: None,
            delivered: None,
        }
    }

    #[tokio::test]
    async fn only_sessions_ended_here_are_for_the_tracker_and_all_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peer.db");
        let later = kit::now_secs() + 600;
        {
            let (store, _) = PeerStore::open(&path).unwrap();
            store.revoke("mine", later, true).await.unwrap();
            store.revoke("heard", later, false).await.unwrap();
            store.revoke("heard-then-mine", later, false).await.unwrap();
            store.revoke("heard-then-mine", later, true).await.unwrap();
            store.revoke("mine-then-heard", later, true).await.unwrap();
            store.revoke("mine-then-heard", later, false).await.unwrap();
            store.revoke("expired", kit::now_secs() - 600, true).await.unwrap();
        }
        let (store, loaded) = PeerStore::open(&path).unwrap();
        let mut own: Vec<String> = store.own_revoked().await.unwrap().into_iter().map(|(sid, _)| sid).collect();
        own.sort();
        assert_eq!(own, ["heard-then-mine", "mine", "mine-then-heard"]);
        assert_eq!(loaded.revoked.len(), 4, "every live one is loaded at start");
    }

    #[tokio::test]
    async fn received_messages_are_filed_once_and_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = PeerStore::open(&dir.path().join("peer.db")).unwrap();
        assert!(store.save_incoming(&dm("a", "alice", "bob", "one")).await.unwrap().is_some());
        assert!(store.save_incoming(&dm("a", "alice", "bob", "one")).await.unwrap().is_none(), "duplicate");
        store.save_incoming(&dm("b", "alice", "bob", "two")).await.unwrap();
        let unread = store.take_unread(&user("bob")).await.unwrap();
        assert_eq!(unread.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), ["one", "two"]);
        assert!(store.take_unread(&user("bob")).await.unwrap().is_empty());
        assert_eq!(store.conversation(&user("bob"), &user("alice"), None, 10).await.unwrap().0.len(), 2);
    }

    #[tokio::test]
    async fn outgoing_messages_wait_in_the_outbox_until_delivered_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peer.db");
        {
            let (store, _) = PeerStore::open(&path).unwrap();
            store.host(&user("alice"), 100).await.unwrap();
            store.host(&user("alice"), 50).await.unwrap();
            store.save_outgoing(&dm("x", "alice", "bob", "hi")).await.unwrap();
            store.save_outgoing(&dm("y", "alice", "bob", "there")).await.unwrap();
            store.delivered("x").await.unwrap();
        }
        let (store, loaded) = PeerStore::open(&path).unwrap();
        assert_eq!(loaded.hosted, [(user("alice"), 100)], "the latest expiry wins");
        assert!(store.due(10).await.unwrap().is_empty(), "the sender's own first attempt comes first");
        store.retry_later("y", 1, kit::now_ms(), "down").await.unwrap();
        let due = store.due(10).await.unwrap();
        assert_eq!(due.iter().map(|p| p.message.id.as_str()).collect::<Vec<_>>(), ["y"]);
        store.retry_later("y", 1, kit::now_ms() + 60_000, "down").await.unwrap();
        assert!(store.due(10).await.unwrap().is_empty());
        assert_eq!(store.outbox_len().await.unwrap(), 1);
        let (sent, _) = store.conversation(&user("alice"), &user("bob"), None, 10).await.unwrap();
        assert_eq!(sent.iter().map(|m| m.delivered).collect::<Vec<_>>(), [Some(true), Some(false)]);
    }

    #[tokio::test]
    async fn conversations_page_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = PeerStore::open(&dir.path().join("peer.db")).unwrap();
        for i in 0..5 {
            store.save_incoming(&dm(&format!("m{i}"), "alice", "bob", &format!("{i}"))).await.unwrap();
        }
        let (latest, more) = store.conversation(&user("bob"), &user("alice"), None, 2).await.unwrap();
        assert_eq!((latest.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), more), (vec!["3", "4"], true));
        let (older, more) = store.conversation(&user("bob"), &user("alice"), latest[0].seq, 10).await.unwrap();
        assert_eq!((older.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), more), (vec!["0", "1", "2"], false));
        assert_eq!(older[0].delivered, None, "received copies have no delivery state");
    }
}
