//! Changes to direct messages in PostgreSQL: edits, deletions, reactions, read state
//! and reply parents. A change locks its message's row, so two replicas applying
//! changes to one message at once take turns.

use deadpool_postgres::GenericClient;
use wire::api::{DirectChange, DirectChangeKind, DirectMessage, MessageKey, ReplyPreview};
use wire::names::Username;

use super::mailbox::{COLUMNS, last_reads, read_messages};
use super::{PgStore, parse_name};
use crate::store::error::StoreError;
use crate::store::records::{ChangeOutcome, Outgoing};
use crate::store::rules::{FIRST_ATTEMPT_GRACE_MS, MAX_EMOJI_PER_MESSAGE, reaction_changes};

impl PgStore {
    /// Applies `change` to the copy of its message in `owner`'s mailbox; when it is
    /// `own` (made here by its author) and changed something, puts it in the outbox
    /// for the other user's peer too, in one transaction.
    pub async fn apply_change(
        &self,
        owner: &Username,
        change: &DirectChange,
        own: bool,
    ) -> Result<ChangeOutcome, StoreError> {
        let traceparent = kit::telemetry::current_traceparent();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let outcome = apply(&tx, owner, change, own).await?;
        if own && matches!(outcome, ChangeOutcome::Applied { changed: true, .. }) {
            let json = serde_json::to_string(change).map_err(|err| StoreError::Corrupt(err.to_string()))?;
            let now = kit::now_ms() as i64;
            let kind = Outgoing::CHANGE;
            tx.execute(
                "INSERT INTO peer_outbox (id, message, attempts, next_attempt, created_at, traceparent, kind)
                 VALUES ($1, $2, 0, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[&change.id, &json, &(now + FIRST_ATTEMPT_GRACE_MS), &now, &traceparent, &kind],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// The message `id` in `owner`'s mailbox.
    pub async fn find_message(&self, owner: &Username, id: &str) -> Result<Option<DirectMessage>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {COLUMNS} FROM peer_dms d WHERE d.owner = $1 AND d.id = $2 LIMIT 1");
        let rows = client.query(&sql, &[&owner.as_str(), &id]).await?;
        Ok(read_messages(&client, owner, &rows).await?.pop())
    }

    /// The message `id` of `owner`'s conversation with `other`, as a reply to it shows it.
    pub async fn reply_parent(
        &self,
        owner: &Username,
        other: &Username,
        id: &str,
    ) -> Result<Option<ReplyPreview>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT sender, text, deleted FROM peer_dms WHERE owner = $1 AND other = $2 AND id = $3 LIMIT 1",
                &[&owner.as_str(), &other.as_str(), &id],
            )
            .await?;
        row.map(|row| {
            Ok(ReplyPreview::of(MessageKey::Direct(id.to_owned()), parse_name(row.get(0))?, row.get(1), row.get(2)))
        })
        .transpose()
    }

    /// Marks `owner`'s received messages from `with` read, up to place `up_to` (every
    /// one without it). Returns how many were unread, and the last one read now.
    pub async fn mark_read_with(
        &self,
        owner: &Username,
        with: &Username,
        up_to: Option<u64>,
    ) -> Result<(u64, u64), StoreError> {
        let client = self.pool.get().await?;
        let up_to = up_to.map_or(i64::MAX, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
        let marked = client
            .execute(
                "UPDATE peer_dms SET unread = false
                 WHERE owner = $1 AND other = $2 AND NOT outgoing AND unread AND seq <= $3",
                &[&owner.as_str(), &with.as_str(), &up_to],
            )
            .await?;
        let last_read = last_reads(&client, owner).await?.get(with.as_str()).copied().unwrap_or(0);
        Ok((marked, last_read))
    }
}

async fn apply(
    client: &impl GenericClient,
    owner: &Username,
    change: &DirectChange,
    own: bool,
) -> Result<ChangeOutcome, StoreError> {
    let Some(id) = change.change.message_id() else { return Ok(ChangeOutcome::Missing) };
    let found = client
        .query_opt(
            "SELECT sender, recipient, deleted FROM peer_dms WHERE owner = $1 AND id = $2 LIMIT 1 FOR UPDATE",
            &[&owner.as_str(), &id],
        )
        .await?;
    let Some(row) = found else { return Ok(ChangeOutcome::Missing) };
    let (sender, recipient, deleted): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
    let from = change.from.as_str();
    let changed = match &change.change {
        DirectChangeKind::Edit { message, edited_at, .. } => {
            if sender != from {
                return Ok(ChangeOutcome::NotAuthor);
            }
            if deleted {
                return Ok(ChangeOutcome::Deleted);
            }
            client
                .execute(
                    "UPDATE peer_dms SET text = $3, edited_at = $4
                     WHERE owner = $1 AND id = $2 AND NOT deleted AND (edited_at IS NULL OR edited_at < $4)",
                    &[&owner.as_str(), &id, &message.as_str(), &(*edited_at as i64)],
                )
                .await?
                > 0
        }
        DirectChangeKind::Delete { .. } => {
            if sender != from {
                return Ok(ChangeOutcome::NotAuthor);
            }
            client
                .execute("DELETE FROM peer_dm_reactions WHERE owner = $1 AND id = $2", &[&owner.as_str(), &id])
                .await?;
            client
                .execute(
                    "UPDATE peer_dms SET text = '', deleted = true WHERE owner = $1 AND id = $2 AND NOT deleted",
                    &[&owner.as_str(), &id],
                )
                .await?
                > 0
        }
        DirectChangeKind::React { emoji, on, at, .. } => {
            if sender != from && recipient != from {
                return Ok(ChangeOutcome::NotAuthor);
            }
            if deleted {
                return Ok(ChangeOutcome::Deleted);
            }
            if own && *on {
                let row = client
                    .query_one(
                        "SELECT COUNT(DISTINCT emoji) FROM peer_dm_reactions
                         WHERE owner = $1 AND id = $2 AND active AND emoji != $3",
                        &[&owner.as_str(), &id, &emoji.as_str()],
                    )
                    .await?;
                if row.get::<_, i64>(0) as usize >= MAX_EMOJI_PER_MESSAGE {
                    return Ok(ChangeOutcome::TooManyEmoji);
                }
            }
            let existing = client
                .query_opt(
                    "SELECT at, active FROM peer_dm_reactions WHERE owner = $1 AND id = $2 AND emoji = $3 AND username = $4",
                    &[&owner.as_str(), &id, &emoji.as_str(), &from],
                )
                .await?
                .map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, bool>(1)));
            // The latest change wins; taking back a reaction leaves a row saying when.
            let changed = reaction_changes(existing, *on, *at);
            if changed || existing.is_none() {
                client
                    .execute(
                        "INSERT INTO peer_dm_reactions (owner, id, emoji, username, at, active)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (owner, id, emoji, username) DO UPDATE SET at = EXCLUDED.at, active = EXCLUDED.active",
                        &[&owner.as_str(), &id, &emoji.as_str(), &from, &(*at as i64), on],
                    )
                    .await?;
            }
            changed
        }
        DirectChangeKind::Typing => return Ok(ChangeOutcome::Missing),
    };
    let sql = format!("SELECT {COLUMNS} FROM peer_dms d WHERE d.owner = $1 AND d.id = $2 LIMIT 1");
    let rows = client.query(&sql, &[&owner.as_str(), &id]).await?;
    let message = read_messages(client, owner, &rows)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt(format!("message {id} vanished while it changed")))?;
    Ok(ChangeOutcome::Applied { message: Box::new(message), changed })
}
