//! The embedded backend: one SQLite file per peer (WAL, group commit through
//! [`kit::db::Db`]), holding only what this peer has seen: the users it hosts, the
//! sessions it knows ended, its users' contacts, mailboxes and outbox.

mod changes;
mod mailbox;

use std::path::Path;

use kit::db::{Db, DbError, parse_column};
use rusqlite::{Connection, OptionalExtension, params};
use wire::addr::PeerAddr;
use wire::api::Contact;
use wire::names::Username;

use super::records::{Loaded, Outgoing, Pending};

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
    r#"
    -- Edits, deletions (tombstones: empty text), replies and reactions of direct
    -- messages, per mailbox copy. A reaction taken back stays as a row with
    -- active = 0, so the latest change (by `at`) wins whatever order they arrive in.
    ALTER TABLE dms ADD COLUMN edited_at INTEGER;
    ALTER TABLE dms ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE dms ADD COLUMN reply_to TEXT;
    CREATE INDEX dms_by_id ON dms(owner, id);
    CREATE TABLE dm_reactions (
        owner    TEXT NOT NULL,
        id       TEXT NOT NULL,
        emoji    TEXT NOT NULL,
        username TEXT NOT NULL,
        at       INTEGER NOT NULL,
        active   INTEGER NOT NULL,
        PRIMARY KEY (owner, id, emoji, username)
    );
    -- What an outbox row carries: a direct message, or a change to one.
    ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
"#,
    // Full-text search of the mailboxes (`mailbox/search.rs`): each row's words, and
    // its owner and other user as exact tokens (`hex(name)`), so a search asks the
    // index for one mailbox. Triggers keep it in step with every insert, update of the
    // text (an edit, a deletion's tombstone) and delete (a mailbox handed over).
    r#"
    CREATE VIRTUAL TABLE dms_search USING fts5(
        text, owner_key, other_key,
        content = '', contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 0'
    );
    INSERT INTO dms_search (rowid, text, owner_key, other_key) SELECT seq, text, hex(owner), hex(other) FROM dms;
    CREATE TRIGGER dms_search_insert AFTER INSERT ON dms BEGIN
        INSERT INTO dms_search (rowid, text, owner_key, other_key)
            VALUES (new.seq, new.text, hex(new.owner), hex(new.other));
    END;
    CREATE TRIGGER dms_search_update AFTER UPDATE OF text, owner, other ON dms BEGIN
        DELETE FROM dms_search WHERE rowid = old.seq;
        INSERT INTO dms_search (rowid, text, owner_key, other_key)
            VALUES (new.seq, new.text, hex(new.owner), hex(new.other));
    END;
    CREATE TRIGGER dms_search_delete AFTER DELETE ON dms BEGIN
        DELETE FROM dms_search WHERE rowid = old.seq;
    END;
"#,
];

/// The peer's data in its SQLite file. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
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

    // === Outbox ===

    /// Messages due for another delivery attempt, oldest first.
    pub async fn due(&self, limit: usize) -> Result<Vec<Pending>, DbError> {
        self.db
            .read(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT message, attempts, created_at, traceparent, kind FROM outbox WHERE next_attempt <= ?1
                     ORDER BY next_attempt, created_at LIMIT ?2",
                )?;
                let rows = statement.query_map(params![kit::now_ms() as i64, limit as i64], |row| {
                    let json: String = row.get(0)?;
                    let kind: String = row.get(4)?;
                    let item = Outgoing::from_json(&kind, &json).map_err(|err| {
                        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, err.into())
                    })?;
                    Ok(Pending {
                        item,
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
