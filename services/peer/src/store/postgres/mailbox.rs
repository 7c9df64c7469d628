//! Mailboxes in PostgreSQL: filing and reading, shared by every replica. Filing is
//! idempotent by message id (`ON CONFLICT DO NOTHING`), whichever replica files it.

mod search;

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use wire::api::{Contact, ConversationSummary, DirectMessage};
use wire::names::{Emoji, MessageText, Username};

use super::{PgStore, parse_name, port};
use crate::store::error::StoreError;
use crate::store::records::Outgoing;
use crate::store::rules::{FIRST_ATTEMPT_GRACE_MS, MAX_CONVERSATIONS, Parent, attach, summarize};

/// The columns [`message_from_row`] reads, from `peer_dms` as `d`. An outgoing
/// message is delivered once it has left the outbox.
pub(super) const COLUMNS: &str =
    "d.seq, d.id, d.sender, d.recipient, d.text, d.ts, d.sender_ip, d.sender_port, d.broadcast,
     CASE WHEN d.outgoing THEN NOT EXISTS (SELECT 1 FROM peer_outbox o WHERE o.id = d.id) END,
     d.edited_at, d.deleted, d.reply_to";

impl PgStore {
    /// Files a message in its sender's mailbox and in the outbox, in one transaction.
    pub async fn save_outgoing(&self, message: &DirectMessage) -> Result<u64, StoreError> {
        let json = serde_json::to_string(message).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        let traceparent = kit::telemetry::current_traceparent();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let seq = insert_dm(&tx, message, true, false).await?.unwrap_or_default();
        // The sender tries at once; an outbox worker (of any replica) takes over only
        // if that fails, or if this peer dies before it knows.
        let now = kit::now_ms() as i64;
        let statement = tx
            .prepare_cached(
                "INSERT INTO peer_outbox (id, message, attempts, next_attempt, created_at, traceparent, kind)
                 VALUES ($1, $2, 0, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        let kind = Outgoing::MESSAGE;
        tx.execute(&statement, &[&message.id, &json, &(now + FIRST_ATTEMPT_GRACE_MS), &now, &traceparent, &kind])
            .await?;
        tx.commit().await?;
        Ok(seq)
    }

    pub async fn save_incoming(&self, message: &DirectMessage) -> Result<Option<u64>, StoreError> {
        let client = self.pool.get().await?;
        insert_dm(&client, message, false, true).await
    }

    /// Received messages not yet read, oldest first, marked read in the same
    /// statement: two replicas asked at once hand each message to one of them.
    pub async fn unread(&self, owner: &Username) -> Result<Vec<DirectMessage>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM peer_dms d WHERE d.owner = $1 AND NOT d.outgoing AND d.unread
             ORDER BY d.seq LIMIT 1000"
        );
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &[&owner.as_str()]).await?;
        read_messages(&client, owner, &rows).await
    }

    pub async fn mark_read(&self, owner: &Username, up_to: Option<u64>) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        let up_to = up_to.map_or(i64::MAX, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
        let statement = client
            .prepare_cached(
                "UPDATE peer_dms SET unread = false WHERE owner = $1 AND NOT outgoing AND unread AND seq <= $2",
            )
            .await?;
        Ok(client.execute(&statement, &[&owner.as_str(), &up_to]).await?)
    }

    pub async fn conversation(
        &self,
        owner: &Username,
        other: &Username,
        before: Option<u64>,
        limit: u64,
    ) -> Result<(Vec<DirectMessage>, bool), StoreError> {
        let client = self.pool.get().await?;
        // Time order, the place breaking ties; `before` names a message, and the page
        // ends just before it in that order.
        let sql = format!(
            "SELECT {COLUMNS} FROM peer_dms d
             WHERE d.owner = $1 AND d.other = $2
               AND ($3::BIGINT IS NULL OR (d.ts, d.seq) < (SELECT ts, seq FROM peer_dms WHERE seq = $3))
             ORDER BY d.ts DESC, d.seq DESC LIMIT $4"
        );
        let statement = client.prepare_cached(&sql).await?;
        let before = before.map(|seq| seq as i64);
        let rows = client.query(&statement, &[&owner.as_str(), &other.as_str(), &before, &(limit as i64 + 1)]).await?;
        let mut messages = read_messages(&client, owner, &rows).await?;
        let has_more = messages.len() as u64 > limit;
        messages.truncate(limit as usize);
        messages.reverse();
        Ok((messages, has_more))
    }

    /// `owner`'s conversations, newest first: the latest message with each other
    /// user, and how many received ones are unread.
    pub async fn conversations(&self, owner: &Username) -> Result<Vec<ConversationSummary>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT * FROM (SELECT DISTINCT ON (d.other) {COLUMNS} FROM peer_dms d
                            WHERE d.owner = $1 ORDER BY d.other, d.ts DESC, d.seq DESC) AS latest
             ORDER BY 6 DESC, 1 DESC LIMIT $2"
        );
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &[&owner.as_str(), &(MAX_CONVERSATIONS as i64)]).await?;
        let latest = read_messages(&client, owner, &rows).await?;
        let statement = client
            .prepare_cached(
                "SELECT other, COUNT(*) FROM peer_dms WHERE owner = $1 AND NOT outgoing AND unread GROUP BY other",
            )
            .await?;
        let unread: HashMap<String, u64> = client
            .query(&statement, &[&owner.as_str()])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
            .collect();
        let last_read = last_reads(&client, owner).await?;
        Ok(summarize(
            owner,
            latest,
            |with| unread.get(with.as_str()).copied().unwrap_or(0),
            |with| last_read.get(with.as_str()).copied().unwrap_or(0),
        ))
    }

    /// Files a page of a mailbox handed over by an embedded peer (a peer never hands
    /// over a shared mailbox). Handed-over messages count as read.
    pub async fn import_mailbox(
        &self,
        owner: &Username,
        messages: Vec<DirectMessage>,
        contacts: Vec<Contact>,
    ) -> Result<usize, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut filed = 0;
        for message in &messages {
            let outgoing = message.delivered.is_some() && &message.username == owner;
            if insert_dm(&tx, message, outgoing, false).await?.is_some() {
                import_reactions(&tx, owner, message).await?;
                filed += 1;
            }
        }
        for contact in &contacts {
            tx.execute(
                "INSERT INTO peer_contacts (owner, username, ip, port, added_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (owner, username) DO NOTHING",
                &[
                    &owner.as_str(),
                    &contact.username.as_str(),
                    &contact.ip,
                    &i32::from(contact.port),
                    &(kit::now_ms() as i64),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(filed)
    }
}

/// Files one copy of `message`: the sender's (`outgoing`) or the recipient's. Returns
/// its place, or `None` when that mailbox has it already.
async fn insert_dm(
    client: &impl GenericClient,
    message: &DirectMessage,
    outgoing: bool,
    unread: bool,
) -> Result<Option<u64>, StoreError> {
    let (owner, other) = if outgoing { (&message.username, &message.to) } else { (&message.to, &message.username) };
    let statement = client
        .prepare_cached(
            "INSERT INTO peer_dms
                 (owner, outgoing, id, other, sender, recipient, text, ts, sender_ip, sender_port, broadcast, unread,
                  edited_at, deleted, reply_to)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (owner, outgoing, id) DO NOTHING
             RETURNING seq",
        )
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &owner.as_str(),
                &outgoing,
                &message.id,
                &other.as_str(),
                &message.username.as_str(),
                &message.to.as_str(),
                &message.message.as_str(),
                &(message.ts as i64),
                &message.sender_ip,
                &i32::from(message.sender_port),
                &message.broadcast,
                &unread,
                &message.edited_at.map(|at| at as i64),
                &message.deleted,
                &message.reply_to,
            ],
        )
        .await?;
    Ok(row.map(|row| row.get::<_, i64>(0) as u64))
}

/// Messages of `owner`'s mailbox read back, with their reactions and reply previews.
pub(super) async fn read_messages(
    client: &impl GenericClient,
    owner: &Username,
    rows: &[Row],
) -> Result<Vec<DirectMessage>, StoreError> {
    let mut messages = rows.iter().map(message_from_row).collect::<Result<Vec<_>, _>>()?;
    if messages.is_empty() {
        return Ok(messages);
    }
    let ids: Vec<&str> = messages.iter().map(|message| message.id.as_str()).collect();
    let statement = client
        .prepare_cached(
            "SELECT id, emoji, username FROM peer_dm_reactions
             WHERE owner = $1 AND active AND id = ANY($2) ORDER BY at, username",
        )
        .await?;
    let reactions = client
        .query(&statement, &[&owner.as_str(), &ids])
        .await?
        .iter()
        .map(|row| {
            let emoji = Emoji::parse(row.get(1)).map_err(|err| StoreError::Corrupt(err.to_string()))?;
            Ok((row.get::<_, String>(0), emoji, parse_name(row.get(2))?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let parent_ids: Vec<&str> = messages.iter().filter_map(|message| message.reply_to.as_deref()).collect();
    let mut parents: HashMap<String, Parent> = HashMap::new();
    if !parent_ids.is_empty() {
        let statement = client
            .prepare_cached("SELECT id, sender, text, deleted FROM peer_dms WHERE owner = $1 AND id = ANY($2)")
            .await?;
        for row in client.query(&statement, &[&owner.as_str(), &parent_ids]).await? {
            parents.insert(row.get(0), (parse_name(row.get(1))?, row.get(2), row.get(3)));
        }
    }
    attach(&mut messages, reactions, &parents);
    Ok(messages)
}

fn message_from_row(row: &Row) -> Result<DirectMessage, StoreError> {
    let deleted: bool = row.get(11);
    Ok(DirectMessage {
        seq: Some(row.get::<_, i64>(0) as u64),
        id: row.get(1),
        username: parse_name(row.get(2))?,
        to: parse_name(row.get(3))?,
        message: MessageText::parse_stored(row.get(4), deleted).map_err(|err| StoreError::Corrupt(err.to_string()))?,
        ts: row.get::<_, i64>(5) as u64,
        sender_ip: row.get(6),
        sender_port: port(row.get(7))?,
        broadcast: row.get(8),
        delivered: row.get(9),
        edited_at: row.get::<_, Option<i64>>(10).map(|at| at as u64),
        deleted,
        reply_to: row.get(12),
        reply: None,
        reactions: Vec::new(),
    })
}

/// The place of the last received message read, per other user of `owner`'s.
pub(super) async fn last_reads(
    client: &impl GenericClient,
    owner: &Username,
) -> Result<HashMap<String, u64>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT other, MAX(seq) FROM peer_dms WHERE owner = $1 AND NOT outgoing AND NOT unread GROUP BY other",
        )
        .await?;
    let rows = client.query(&statement, &[&owner.as_str()]).await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get::<_, i64>(1) as u64)).collect())
}

/// Files the reactions of a handed-over message, in their order.
pub(super) async fn import_reactions(
    client: &impl GenericClient,
    owner: &Username,
    message: &DirectMessage,
) -> Result<(), StoreError> {
    let mut at = 0_i64;
    for reaction in &message.reactions {
        for user in &reaction.users {
            at += 1;
            client
                .execute(
                    "INSERT INTO peer_dm_reactions (owner, id, emoji, username, at, active)
                     VALUES ($1, $2, $3, $4, $5, true) ON CONFLICT DO NOTHING",
                    &[&owner.as_str(), &message.id, &reaction.emoji.as_str(), &user.as_str(), &at],
                )
                .await?;
        }
    }
    Ok(())
}
