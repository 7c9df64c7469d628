//! Changes to direct messages in SQLite: edits, deletions, reactions, read state and
//! reply parents.

use kit::db::{DbError, parse_column};
use rusqlite::{Connection, OptionalExtension, params};
use wire::api::{DirectChange, DirectChangeKind, DirectMessage, MessageKey, ReplyPreview};
use wire::names::Username;

use super::SqliteStore;
use super::mailbox::{last_reads, query_dms};
use crate::store::records::{ChangeOutcome, Outgoing};
use crate::store::rules::{FIRST_ATTEMPT_GRACE_MS, MAX_EMOJI_PER_MESSAGE, reaction_changes};

impl SqliteStore {
    /// Applies `change` to the copy of its message in `owner`'s mailbox; when it is
    /// `own` (made here by its author) and changed something, puts it in the outbox
    /// for the other user's peer too, in one commit.
    pub async fn apply_change(
        &self,
        owner: &Username,
        change: &DirectChange,
        own: bool,
    ) -> Result<ChangeOutcome, DbError> {
        let (owner, change) = (owner.clone(), change.clone());
        let traceparent = kit::telemetry::current_traceparent();
        self.db
            .write(move |conn| {
                let outcome = apply(conn, &owner, &change, own)?;
                if own && matches!(outcome, ChangeOutcome::Applied { changed: true, .. }) {
                    let json = serde_json::to_string(&change)
                        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(err.into()))?;
                    let now = kit::now_ms() as i64;
                    conn.execute(
                        "INSERT OR IGNORE INTO outbox (id, message, attempts, next_attempt, created_at, traceparent, kind)
                         VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)",
                        params![change.id, json, now + FIRST_ATTEMPT_GRACE_MS, now, traceparent, Outgoing::CHANGE],
                    )?;
                }
                Ok(outcome)
            })
            .await
    }

    /// The message `id` in `owner`'s mailbox.
    pub async fn find_message(&self, owner: &Username, id: &str) -> Result<Option<DirectMessage>, DbError> {
        let (owner, id) = (owner.clone(), id.to_owned());
        self.db
            .read(move |conn| {
                Ok(query_dms(conn, &owner, "WHERE owner = ?1 AND id = ?2 LIMIT 1", params![owner.as_str(), id])?.pop())
            })
            .await
    }

    /// The message `id` of `owner`'s conversation with `other`, as a reply to it shows it.
    pub async fn reply_parent(
        &self,
        owner: &Username,
        other: &Username,
        id: &str,
    ) -> Result<Option<ReplyPreview>, DbError> {
        let (owner, other, id) = (owner.clone(), other.clone(), id.to_owned());
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT sender, text, deleted FROM dms WHERE owner = ?1 AND other = ?2 AND id = ?3 LIMIT 1",
                )?
                .query_row(params![owner.as_str(), other.as_str(), id], |row| {
                    let author = parse_column(row, 0, Username::parse)?;
                    let text: String = row.get(1)?;
                    Ok(ReplyPreview::of(MessageKey::Direct(id.clone()), author, &text, row.get(2)?))
                })
                .optional()
            })
            .await
    }

    /// Marks `owner`'s received messages from `with` read, up to place `up_to` (every
    /// one without it). Returns how many were unread, and the last one read now.
    pub async fn mark_read_with(
        &self,
        owner: &Username,
        with: &Username,
        up_to: Option<u64>,
    ) -> Result<(u64, u64), DbError> {
        let (owner, with) = (owner.clone(), with.clone());
        let up_to = up_to.map_or(i64::MAX, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
        self.db
            .write(move |conn| {
                let marked = conn.execute(
                    "UPDATE dms SET unread = 0
                     WHERE owner = ?1 AND other = ?2 AND outgoing = 0 AND unread = 1 AND seq <= ?3",
                    params![owner.as_str(), with.as_str(), up_to],
                )?;
                let last_read = last_reads(conn, &owner)?.get(with.as_str()).copied().unwrap_or(0);
                Ok((marked as u64, last_read))
            })
            .await
    }
}

fn apply(conn: &Connection, owner: &Username, change: &DirectChange, own: bool) -> rusqlite::Result<ChangeOutcome> {
    let Some(id) = change.change.message_id() else { return Ok(ChangeOutcome::Missing) };
    let found = conn
        .prepare_cached("SELECT sender, recipient, deleted FROM dms WHERE owner = ?1 AND id = ?2 LIMIT 1")?
        .query_row(params![owner.as_str(), id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, bool>(2)?))
        })
        .optional()?;
    let Some((sender, recipient, deleted)) = found else { return Ok(ChangeOutcome::Missing) };
    let from = change.from.as_str();
    let changed = match &change.change {
        DirectChangeKind::Edit { message, edited_at, .. } => {
            if sender != from {
                return Ok(ChangeOutcome::NotAuthor);
            }
            if deleted {
                return Ok(ChangeOutcome::Deleted);
            }
            conn.execute(
                "UPDATE dms SET text = ?3, edited_at = ?4
                 WHERE owner = ?1 AND id = ?2 AND deleted = 0 AND (edited_at IS NULL OR edited_at < ?4)",
                params![owner.as_str(), id, message.as_str(), *edited_at as i64],
            )? > 0
        }
        DirectChangeKind::Delete { .. } => {
            if sender != from {
                return Ok(ChangeOutcome::NotAuthor);
            }
            conn.execute("DELETE FROM dm_reactions WHERE owner = ?1 AND id = ?2", params![owner.as_str(), id])?;
            conn.execute(
                "UPDATE dms SET text = '', deleted = 1 WHERE owner = ?1 AND id = ?2 AND deleted = 0",
                params![owner.as_str(), id],
            )? > 0
        }
        DirectChangeKind::React { emoji, on, at, .. } => {
            if sender != from && recipient != from {
                return Ok(ChangeOutcome::NotAuthor);
            }
            if deleted {
                return Ok(ChangeOutcome::Deleted);
            }
            if own && *on && too_many_emoji(conn, owner, id, emoji.as_str())? {
                return Ok(ChangeOutcome::TooManyEmoji);
            }
            let existing = conn
                .prepare_cached(
                    "SELECT at, active FROM dm_reactions WHERE owner = ?1 AND id = ?2 AND emoji = ?3 AND username = ?4",
                )?
                .query_row(params![owner.as_str(), id, emoji.as_str(), from], |row| {
                    Ok((row.get::<_, i64>(0)? as u64, row.get::<_, bool>(1)?))
                })
                .optional()?;
            // The latest change wins; taking back a reaction leaves a row saying when.
            let changed = reaction_changes(existing, *on, *at);
            if changed || existing.is_none() {
                conn.execute(
                    "INSERT INTO dm_reactions (owner, id, emoji, username, at, active) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (owner, id, emoji, username) DO UPDATE SET at = ?5, active = ?6",
                    params![owner.as_str(), id, emoji.as_str(), from, *at as i64, on],
                )?;
            }
            changed
        }
        DirectChangeKind::Typing => return Ok(ChangeOutcome::Missing),
    };
    let message = query_dms(conn, owner, "WHERE owner = ?1 AND id = ?2 LIMIT 1", params![owner.as_str(), id])?
        .pop()
        .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(ChangeOutcome::Applied { message: Box::new(message), changed })
}

/// Whether `emoji` would be one distinct emoji too many on the message.
fn too_many_emoji(conn: &Connection, owner: &Username, id: &str, emoji: &str) -> rusqlite::Result<bool> {
    let distinct: i64 = conn.prepare_cached(
        "SELECT COUNT(DISTINCT emoji) FROM dm_reactions WHERE owner = ?1 AND id = ?2 AND active = 1 AND emoji != ?3",
    )?
    .query_row(params![owner.as_str(), id, emoji], |row| row.get(0))?;
    Ok(distinct as usize >= MAX_EMOJI_PER_MESSAGE)
}
