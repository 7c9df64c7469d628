//! Mailboxes in SQLite: filing, reading, and handing a mailbox over to another peer.

mod search;

use std::collections::HashMap;

use kit::db::{DbError, parse_column};
use rusqlite::{Connection, params};
use wire::api::{Contact, ConversationSummary, DirectMessage};
use wire::names::{Emoji, MessageText, Username};

use super::SqliteStore;
use crate::store::records::Outgoing;
use crate::store::rules::{FIRST_ATTEMPT_GRACE_MS, MAX_CONVERSATIONS, Parent, attach, ids_json, summarize};

impl SqliteStore {
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
                    "INSERT OR IGNORE INTO outbox (id, message, attempts, next_attempt, created_at, traceparent, kind)
                     VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)",
                    params![message.id, json, now + FIRST_ATTEMPT_GRACE_MS, now, traceparent, Outgoing::MESSAGE],
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

    /// `owner`'s received messages not yet read, oldest first (at most 1000).
    pub async fn unread(&self, owner: &Username) -> Result<Vec<DirectMessage>, DbError> {
        let owner = owner.clone();
        self.db
            .read(move |conn| {
                query_dms(
                    conn,
                    &owner,
                    "WHERE owner = ?1 AND outgoing = 0 AND unread = 1 ORDER BY seq LIMIT 1000",
                    params![owner.as_str()],
                )
            })
            .await
    }

    pub async fn mark_read(&self, owner: &Username, up_to: Option<u64>) -> Result<u64, DbError> {
        let owner = owner.clone();
        let up_to = up_to.map_or(i64::MAX, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
        self.db
            .write(move |conn| {
                let marked = conn.execute(
                    "UPDATE dms SET unread = 0 WHERE owner = ?1 AND outgoing = 0 AND unread = 1 AND seq <= ?2",
                    params![owner.as_str(), up_to],
                )?;
                Ok(marked as u64)
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
                    &owner,
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
                    &owner,
                    "WHERE owner = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                    params![owner.as_str(), after as i64, limit as i64],
                )
            })
            .await
    }

    /// `owner`'s conversations, newest first: the latest message with each other
    /// user, and how many received ones are unread.
    pub async fn conversations(&self, owner: &Username) -> Result<Vec<ConversationSummary>, DbError> {
        let owner = owner.clone();
        self.db
            .read(move |conn| {
                let latest = query_dms(
                    conn,
                    &owner,
                    // Each other user once (an index walk), then one lookup each for
                    // their latest message.
                    "WHERE seq IN (SELECT (SELECT x.seq FROM dms AS x WHERE x.owner = ?1 AND x.other = o.other
                                           ORDER BY x.ts DESC, x.seq DESC LIMIT 1)
                                   FROM (SELECT DISTINCT other FROM dms WHERE owner = ?1) AS o)
                     ORDER BY ts DESC, seq DESC LIMIT ?2",
                    params![owner.as_str(), MAX_CONVERSATIONS as i64],
                )?;
                let mut statement = conn.prepare_cached(
                    "SELECT other, COUNT(*) FROM dms WHERE owner = ?1 AND outgoing = 0 AND unread = 1 GROUP BY other",
                )?;
                let unread = statement
                    .query_map([owner.as_str()], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64)))?
                    .collect::<rusqlite::Result<HashMap<_, _>>>()?;
                let last_read = last_reads(conn, &owner)?;
                Ok(summarize(
                    &owner,
                    latest,
                    |with| unread.get(with.as_str()).copied().unwrap_or(0),
                    |with| last_read.get(with.as_str()).copied().unwrap_or(0),
                ))
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
                        import_reactions(conn, &owner, message)?;
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
                // Reactions go with the last of the messages they belong to.
                conn.execute(
                    "DELETE FROM dm_reactions WHERE owner = ?1
                       AND NOT EXISTS (SELECT 1 FROM dms WHERE dms.owner = ?1 AND dms.id = dm_reactions.id)",
                    [owner.as_str()],
                )?;
                Ok(())
            })
            .await
    }
}

fn insert_dm(conn: &Connection, message: &DirectMessage, outgoing: bool) -> rusqlite::Result<Option<u64>> {
    let (owner, other) = if outgoing { (&message.username, &message.to) } else { (&message.to, &message.username) };
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO dms
             (owner, outgoing, id, other, sender, recipient, text, ts, sender_ip, sender_port, broadcast, unread,
              edited_at, deleted, reply_to)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
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
            !outgoing,
            message.edited_at.map(|at| at as i64),
            message.deleted,
            message.reply_to,
        ],
    )?;
    Ok((inserted == 1).then(|| conn.last_insert_rowid() as u64))
}

/// The messages of `owner`'s mailbox that `clause` selects, with their reactions and
/// reply previews.
pub(super) fn query_dms(
    conn: &Connection,
    owner: &Username,
    clause: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<DirectMessage>> {
    // An outgoing message is delivered once it has left the outbox.
    let sql = format!(
        "SELECT seq, id, sender, recipient, text, ts, sender_ip, sender_port, broadcast,
                CASE WHEN outgoing = 1 THEN NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.id = dms.id) END,
                edited_at, deleted, reply_to
         FROM dms {clause}"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params, |row| {
        let deleted: bool = row.get(11)?;
        Ok(DirectMessage {
            seq: Some(row.get::<_, i64>(0)? as u64),
            id: row.get(1)?,
            username: parse_column(row, 2, Username::parse)?,
            to: parse_column(row, 3, Username::parse)?,
            message: parse_column(row, 4, |text| MessageText::parse_stored(text, deleted))?,
            ts: row.get::<_, i64>(5)? as u64,
            sender_ip: row.get(6)?,
            sender_port: row.get(7)?,
            broadcast: row.get(8)?,
            delivered: row.get(9)?,
            edited_at: row.get::<_, Option<i64>>(10)?.map(|at| at as u64),
            deleted,
            reply_to: row.get(12)?,
            reply: None,
            reactions: Vec::new(),
        })
    })?;
    let mut messages = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    if messages.is_empty() {
        return Ok(messages);
    }
    let (ids, parent_ids) = ids_json(&messages);
    let mut statement = conn.prepare_cached(
        "SELECT id, emoji, username FROM dm_reactions
         WHERE owner = ?1 AND active = 1 AND id IN (SELECT value FROM json_each(?2)) ORDER BY at, username",
    )?;
    let reactions = statement
        .query_map(params![owner.as_str(), ids], |row| {
            Ok((row.get(0)?, parse_column(row, 1, Emoji::parse)?, parse_column(row, 2, Username::parse)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut parents: HashMap<String, Parent> = HashMap::new();
    if parent_ids != "[]" {
        let mut statement = conn.prepare_cached(
            "SELECT id, sender, text, deleted FROM dms WHERE owner = ?1 AND id IN (SELECT value FROM json_each(?2))",
        )?;
        let rows = statement.query_map(params![owner.as_str(), parent_ids], |row| {
            Ok((row.get::<_, String>(0)?, (parse_column(row, 1, Username::parse)?, row.get(2)?, row.get(3)?)))
        })?;
        for row in rows {
            let (id, parent) = row?;
            parents.insert(id, parent);
        }
    }
    attach(&mut messages, reactions, &parents);
    Ok(messages)
}

/// The place of the last received message read, per other user of `owner`'s.
pub(super) fn last_reads(conn: &Connection, owner: &Username) -> rusqlite::Result<HashMap<String, u64>> {
    let mut statement = conn.prepare_cached(
        "SELECT other, MAX(seq) FROM dms WHERE owner = ?1 AND outgoing = 0 AND unread = 0 GROUP BY other",
    )?;
    statement.query_map([owner.as_str()], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64)))?.collect()
}

/// Files the reactions of a handed-over message, in their order.
pub(super) fn import_reactions(conn: &Connection, owner: &Username, message: &DirectMessage) -> rusqlite::Result<()> {
    let mut at = 0_i64;
    for reaction in &message.reactions {
        for user in &reaction.users {
            at += 1;
            conn.prepare_cached(
                "INSERT OR IGNORE INTO dm_reactions (owner, id, emoji, username, at, active) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            )?
            .execute(params![owner.as_str(), message.id, reaction.emoji.as_str(), user.as_str(), at])?;
        }
    }
    Ok(())
}
