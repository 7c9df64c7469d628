//! The peer's durable data: the users it hosts, ended sessions, contacts, every
//! direct message sent or received (the mailboxes: one copy per mailbox a message is
//! in, the sender's `outgoing` and the recipient's), and the outbox of messages not
//! yet delivered.
//!
//! One interface, [`PeerStore`], over two backends chosen by configuration:
//! [`sqlite`] (embedded, one file per peer, mailboxes handed over when their owner
//! moves) and [`postgres`] (cluster mode, one database shared by every peer replica,
//! so a mailbox never moves). Routes never see SQL. What both backends share sits
//! beside them: `error` ([`StoreError`]), `records` ([`Loaded`], [`Pending`]) and
//! `rules` (the outbox's first grace, the conversation cap and summaries).

mod error;
pub mod postgres;
mod records;
mod rules;
pub mod sqlite;

use std::path::Path;
use std::time::Duration;

use kit::search::SearchQuery;
use wire::addr::PeerAddr;
use wire::api::{Contact, ConversationSummary, DirectChange, DirectMessage, ReplyPreview};
use wire::names::Username;

pub use error::StoreError;
use postgres::PgStore;
pub use records::{ChangeOutcome, Loaded, Outgoing, Pending};
pub use rules::MAX_EMOJI_PER_MESSAGE;
use sqlite::SqliteStore;

/// The peer's data, on one of its backends. Cloning is a reference-count bump.
#[derive(Clone)]
pub enum PeerStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Runs the same call on whichever backend the store is, with its error made a
/// [`StoreError`].
macro_rules! on_backend {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            PeerStore::Sqlite($store) => $call.map_err(StoreError::from),
            PeerStore::Postgres($store) => $call,
        }
    };
}

impl PeerStore {
    /// The embedded store in the SQLite file at `path`, and what it restores.
    pub fn open(path: &Path) -> anyhow::Result<(Self, Loaded)> {
        let (store, loaded) = SqliteStore::open(path)?;
        Ok((Self::Sqlite(store), loaded))
    }

    /// The store in the PostgreSQL database at `url`, shared by every peer replica,
    /// for the peer at `me`, and what that peer restores. Waits up to `patience` for
    /// the database to answer.
    pub async fn connect(
        url: &str,
        me: &PeerAddr,
        max_size: usize,
        patience: Duration,
    ) -> anyhow::Result<(Self, Loaded)> {
        let (store, loaded) = PgStore::connect(url, me, max_size, patience).await?;
        Ok((Self::Postgres(store), loaded))
    }

    /// Where the data lives, for logs (no secrets).
    pub fn describe(&self) -> String {
        match self {
            PeerStore::Sqlite(store) => format!("sqlite:{}", store.path().display()),
            PeerStore::Postgres(store) => store.describe().to_owned(),
        }
    }

    /// The embedded store, whose mailboxes are this peer's alone and move with their
    /// owners; `None` when mailboxes are shared by every peer and never move.
    pub fn handover(&self) -> Option<&SqliteStore> {
        match self {
            PeerStore::Sqlite(store) => Some(store),
            PeerStore::Postgres(_) => None,
        }
    }

    // === Sessions ===

    /// Records that this peer hosts `user` until at least `expires_at`.
    pub async fn host(&self, user: &Username, expires_at: u64) -> Result<(), StoreError> {
        on_backend!(self, store => store.host(user, expires_at).await)
    }

    pub async fn unhost(&self, user: &Username) -> Result<(), StoreError> {
        on_backend!(self, store => store.unhost(user).await)
    }

    /// Records an ended session: `own` when it ended here (a logout on this peer),
    /// else heard of from the tracker.
    pub async fn revoke(&self, sid: &str, expires_at: u64, own: bool) -> Result<(), StoreError> {
        on_backend!(self, store => store.revoke(sid, expires_at, own).await)
    }

    /// The sessions that ended here and whose tokens have not expired: what the
    /// tracker must know of.
    pub async fn own_revoked(&self) -> Result<Vec<(String, u64)>, StoreError> {
        on_backend!(self, store => store.own_revoked().await)
    }

    // === Contacts ===

    /// Adds or moves a contact of `owner`.
    pub async fn add_contact(&self, owner: &Username, contact: &Username, at: &PeerAddr) -> Result<(), StoreError> {
        on_backend!(self, store => store.add_contact(owner, contact, at).await)
    }

    /// `owner`'s contacts, in the order they were added, with their last known address.
    pub async fn contacts(&self, owner: &Username) -> Result<Vec<Contact>, StoreError> {
        on_backend!(self, store => store.contacts(owner).await)
    }

    /// Where `owner` last knew `other` to be: their contact's address, else the peer
    /// that `other`'s latest message to them came from. Lets direct messages go peer
    /// to peer while the tracker cannot be asked.
    pub async fn last_known_address(&self, owner: &Username, other: &Username) -> Result<Option<PeerAddr>, StoreError> {
        on_backend!(self, store => store.last_known_address(owner, other).await)
    }

    // === Mailboxes ===

    /// Files a message in its sender's mailbox and in the outbox, in one commit.
    /// Returns its place in the sender's mailbox.
    pub async fn save_outgoing(&self, message: &DirectMessage) -> Result<u64, StoreError> {
        on_backend!(self, store => store.save_outgoing(message).await)
    }

    /// Files a received message in its recipient's mailbox. Returns its place there,
    /// or `None` when it was filed already (a retry of a delivered message).
    pub async fn save_incoming(&self, message: &DirectMessage) -> Result<Option<u64>, StoreError> {
        on_backend!(self, store => store.save_incoming(message).await)
    }

    /// `owner`'s received messages not yet read, oldest first (at most 1000): what
    /// `GET /get-received-messages` lists, without marking them.
    pub async fn unread(&self, owner: &Username) -> Result<Vec<DirectMessage>, StoreError> {
        on_backend!(self, store => store.unread(owner).await)
    }

    /// Marks `owner`'s received messages read, up to the one at `up_to` (every one
    /// without it): `POST /mark-read`. Returns how many were unread.
    pub async fn mark_read(&self, owner: &Username, up_to: Option<u64>) -> Result<u64, StoreError> {
        on_backend!(self, store => store.mark_read(owner, up_to).await)
    }

    /// [`PeerStore::unread`], then those marked read: the original's polling.
    pub async fn take_unread(&self, owner: &Username) -> Result<Vec<DirectMessage>, StoreError> {
        let messages = self.unread(owner).await?;
        if let Some(last) = messages.last().and_then(|message| message.seq) {
            self.mark_read(owner, Some(last)).await?;
        }
        Ok(messages)
    }

    /// The messages between `owner` and `other`, both ways, oldest first: the latest
    /// `limit`, or the `limit` before `before`; and whether older ones exist.
    pub async fn conversation(
        &self,
        owner: &Username,
        other: &Username,
        before: Option<u64>,
        limit: u64,
    ) -> Result<(Vec<DirectMessage>, bool), StoreError> {
        on_backend!(self, store => store.conversation(owner, other, before, limit).await)
    }

    /// `owner`'s direct conversations, newest first: with whom, the latest message
    /// either way, and how many received messages are unread.
    pub async fn conversations(&self, owner: &Username) -> Result<Vec<ConversationSummary>, StoreError> {
        on_backend!(self, store => store.conversations(owner).await)
    }

    /// Files a page of a mailbox handed over by `owner`'s previous peer, and their
    /// contacts. Messages already here are skipped; handed-over ones count as read.
    pub async fn import_mailbox(
        &self,
        owner: &Username,
        messages: Vec<DirectMessage>,
        contacts: Vec<Contact>,
    ) -> Result<usize, StoreError> {
        on_backend!(self, store => store.import_mailbox(owner, messages, contacts).await)
    }

    // === Changes to direct messages ===

    /// Applies a change (edit, deletion, reaction) to the copy of its message in
    /// `owner`'s mailbox. `own`: the change is made here by its author (not handed
    /// over by the other user's peer): the cap on emoji applies, and when it changed
    /// something it also goes in the outbox for the other user's peer, in the same
    /// commit.
    pub async fn apply_change(
        &self,
        owner: &Username,
        change: &DirectChange,
        own: bool,
    ) -> Result<ChangeOutcome, StoreError> {
        on_backend!(self, store => store.apply_change(owner, change, own).await)
    }

    /// The message `id` in `owner`'s mailbox, as they see it.
    pub async fn find_message(&self, owner: &Username, id: &str) -> Result<Option<DirectMessage>, StoreError> {
        on_backend!(self, store => store.find_message(owner, id).await)
    }

    /// The message `id` of `owner`'s conversation with `other`, as a reply shows it;
    /// `None` when that conversation has no such message.
    pub async fn reply_parent(
        &self,
        owner: &Username,
        other: &Username,
        id: &str,
    ) -> Result<Option<ReplyPreview>, StoreError> {
        on_backend!(self, store => store.reply_parent(owner, other, id).await)
    }

    /// Marks `owner`'s received messages from `with` read, up to place `up_to` (every
    /// one without it). Returns how many were unread, and the place of the last
    /// received message read now (0: none).
    pub async fn mark_read_with(
        &self,
        owner: &Username,
        with: &Username,
        up_to: Option<u64>,
    ) -> Result<(u64, u64), StoreError> {
        on_backend!(self, store => store.mark_read_with(owner, with, up_to).await)
    }

    /// The newest messages of `owner`'s mailbox, at most `limit`, that contain every
    /// word of `query`; only those with `with`, when given.
    pub async fn search(
        &self,
        owner: &Username,
        query: &SearchQuery,
        with: Option<&Username>,
        limit: u64,
    ) -> Result<Vec<DirectMessage>, StoreError> {
        on_backend!(self, store => store.search(owner, query, with, limit).await)
    }

    // === Outbox ===

    /// Messages and changes due for another delivery attempt, oldest first.
    pub async fn due(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        on_backend!(self, store => store.due(limit).await)
    }

    /// When the next outbox message is due, ms since the epoch.
    pub async fn next_due(&self) -> Result<Option<u64>, StoreError> {
        on_backend!(self, store => store.next_due().await)
    }

    pub async fn outbox_len(&self) -> Result<u64, StoreError> {
        on_backend!(self, store => store.outbox_len().await)
    }

    /// The message reached its recipient's peer: out of the outbox.
    pub async fn delivered(&self, id: &str) -> Result<(), StoreError> {
        on_backend!(self, store => store.delivered(id).await)
    }

    /// Gives up on a message (too old).
    pub async fn give_up(&self, id: &str) -> Result<(), StoreError> {
        on_backend!(self, store => store.give_up(id).await)
    }

    /// Schedules another attempt at `next_attempt` (ms since the epoch).
    pub async fn retry_later(&self, id: &str, attempts: u32, next_attempt: u64, error: &str) -> Result<(), StoreError> {
        on_backend!(self, store => store.retry_later(id, attempts, next_attempt, error).await)
    }
}

#[cfg(test)]
mod tests;
