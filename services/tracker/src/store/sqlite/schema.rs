//! The embedded database's schema, and loading the in-memory view from it.

use std::collections::BTreeSet;

use kit::db::parse_column;
use rusqlite::Connection;
use wire::addr::PeerAddr;
use wire::names::{ChannelName, Username};

use super::view::{Home, View};

pub(super) const MIGRATIONS: &[&str] = &[
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
    // Ended sessions in the order they ended, for peers that ask what ended since
    // their last call; the store's id tells a cursor of this store from another's.
    // Sessions ended before take their row order.
    r#"
    ALTER TABLE revoked ADD COLUMN seq INTEGER;
    UPDATE revoked SET seq = rowid;
    CREATE UNIQUE INDEX revoked_by_seq ON revoked(seq);
    CREATE TABLE revoked_cursor (
        store_id TEXT NOT NULL,
        last_seq INTEGER NOT NULL
    );
    INSERT INTO revoked_cursor (store_id, last_seq)
        SELECT lower(hex(randomblob(8))), coalesce(max(seq), 0) FROM revoked;
"#,
    // Issue 13: private channels and topics; read state per member (members had read
    // everything so far); edits, tombstones, replies and mentions of messages;
    // reactions; and mentions by user, to count them.
    r#"
    ALTER TABLE channels ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE channels ADD COLUMN topic TEXT NOT NULL DEFAULT '';
    ALTER TABLE members ADD COLUMN last_read INTEGER NOT NULL DEFAULT 0;
    UPDATE members SET last_read =
        (SELECT COALESCE(MAX(id), 0) FROM messages WHERE messages.channel = members.channel);
    ALTER TABLE messages ADD COLUMN edited_at INTEGER;
    ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN reply_to INTEGER;
    ALTER TABLE messages ADD COLUMN mentions TEXT;
    CREATE TABLE reactions (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id INTEGER NOT NULL,
        emoji      TEXT NOT NULL,
        username   TEXT NOT NULL,
        UNIQUE (message_id, emoji, username)
    );
    CREATE TABLE mentions (
        username   TEXT NOT NULL,
        channel    TEXT NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (username, channel, message_id)
    );
"#,
    // Full-text search of channel messages (see `search.rs`): the words of each
    // message's text, and its channel as one exact token (`hex(channel)`), so a search
    // asks for the caller's channels inside the index. Triggers keep the index in step
    // with every insert, update of the text (an edit, a deletion's tombstone) and
    // delete, whoever writes them.
    r#"
    CREATE VIRTUAL TABLE messages_search USING fts5(
        text, channel_key,
        content = '', contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 0'
    );
    INSERT INTO messages_search (rowid, text, channel_key) SELECT id, text, hex(channel) FROM messages;
    CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_search (rowid, text, channel_key) VALUES (new.id, new.text, hex(new.channel));
    END;
    CREATE TRIGGER messages_search_update AFTER UPDATE OF text, channel ON messages BEGIN
        DELETE FROM messages_search WHERE rowid = old.id;
        INSERT INTO messages_search (rowid, text, channel_key) VALUES (new.id, new.text, hex(new.channel));
    END;
    CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
        DELETE FROM messages_search WHERE rowid = old.id;
    END;
"#,
];

pub(super) fn load_view(conn: &Connection) -> rusqlite::Result<View> {
    let mut view = View::default();
    let mut channels = conn.prepare("SELECT name, private, topic FROM channels")?;
    let rows = channels.query_map([], |row| {
        Ok((parse_column(row, 0, ChannelName::parse)?, row.get::<_, bool>(1)?, row.get::<_, String>(2)?))
    })?;
    for row in rows {
        let (name, private, topic) = row?;
        if private {
            view.private.insert(name.clone());
        }
        if !topic.is_empty() {
            view.topics.insert(name.clone(), topic);
        }
        view.channels.insert(name, BTreeSet::new());
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
    let mut revoked = conn.prepare("SELECT sid, expires_at, seq FROM revoked WHERE expires_at >= ?1")?;
    let rows = revoked.query_map([kit::now_secs() as i64], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64, row.get::<_, i64>(2)? as u64))
    })?;
    for row in rows {
        let (sid, expires_at, seq) = row?;
        view.revoked.insert(sid.clone(), expires_at);
        view.revoked_order.insert(seq, sid);
    }
    (view.store_id, view.revoked_seq) = conn.query_row("SELECT store_id, last_seq FROM revoked_cursor", [], |row| {
        Ok((row.get(0)?, row.get::<_, i64>(1)? as u64))
    })?;
    Ok(view)
}
