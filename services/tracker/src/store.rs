//! Durable tracker data: the peer pool, channels, members, channel history, the user
//! directory and ended sessions, behind one interface with two backends.
//!
//! - [`sqlite`]: embedded, one tracker. SQLite (WAL, group commit) with an in-memory
//!   view of channels, members and homes, and the peer pool in memory. Pushes go out
//!   from commit hooks, in commit order.
//! - [`postgres`]: the cluster backend, several tracker replicas on one database.
//!   Everything is in the database; pushes reach every replica's peer streams through
//!   a follower that reads the committed log (messages and events) in id order.
//!
//! Either way checks that decide a write run inside the write itself, and a message
//! is pushed to peers only once it is committed, and in id order.

mod chat;
mod model;
pub mod postgres;
pub mod sqlite;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kit::search::SearchQuery;
use kit::session::TokenKeys;
use tokio::sync::broadcast;
use wire::addr::PeerAddr;
use wire::api::{ChannelMessage, Member, RevokedSession};
use wire::names::{ChannelName, MessageText, Username};

pub use model::{Access, Push, RevokedSince, StoreError, Targets, mentions_in, presence, pushed_json};

/// The channels every tracker starts with, as the original's.
pub const DEFAULT_CHANNELS: [&str; 5] = ["general", "random", "project", "help", "announcements"];

/// The largest page of history one request gets.
pub const MAX_PAGE: u64 = 500;
/// The page size when the request does not say.
pub const DEFAULT_PAGE: u64 = 100;

/// The tracker's data, on one backend. Cloning is a reference-count bump.
#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Calls the same method on whichever backend holds the data.
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            Store::Sqlite(store) => store.$method($($arg),*).await,
            Store::Postgres(store) => store.$method($($arg),*).await,
        }
    };
}

/// Like `dispatch!`, for the directory and the peer pool: the PostgreSQL backend keeps
/// them in a [`postgres::Directory`] of their own.
macro_rules! dispatch_directory {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            Store::Sqlite(store) => store.$method($($arg),*).await,
            Store::Postgres(store) => store.directory().$method($($arg),*).await,
        }
    };
}

impl Store {
    /// The embedded backend: the database at `path`, peers silent for `peer_ttl` expire.
    pub fn open(path: &Path, peer_ttl: Duration) -> anyhow::Result<Self> {
        sqlite::SqliteStore::open(path, peer_ttl).map(Store::Sqlite)
    }

    /// The cluster backend: the PostgreSQL database at `url`, through a pool of at most
    /// `pool_size` connections; starts this replica's follower and post batcher.
    pub async fn connect(url: &str, pool_size: usize, peer_ttl: Duration) -> anyhow::Result<Self> {
        postgres::PgStore::connect(url, pool_size, peer_ttl).await.map(Store::Postgres)
    }

    /// Where the data is, for logs (no password).
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(store) => store.path().display().to_string(),
            Store::Postgres(store) => store.describe(),
        }
    }

    /// Whether the database answers. The embedded one is a file this process holds
    /// open, so it always does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(store) => store.ping().await,
        }
    }

    /// How long a silent peer stays in the pool.
    pub fn peer_ttl(&self) -> Duration {
        match self {
            Store::Sqlite(store) => store.peer_ttl(),
            Store::Postgres(store) => store.peer_ttl(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Push>> {
        match self {
            Store::Sqlite(store) => store.subscribe(),
            Store::Postgres(store) => store.subscribe(),
        }
    }

    /// Session revocations that reach this tracker from elsewhere (another replica)
    /// go into `tokens` too. Call before reading [`Store::revoked`], so none falls
    /// between the two.
    pub fn revoke_into(&self, tokens: &TokenKeys) {
        // One tracker hears of every revocation through its own route, which revokes
        // locally first: only replicas need this.
        if let Store::Postgres(store) = self {
            store.revoke_into(tokens.clone());
        }
    }

    // === Ended sessions ===

    /// The ended sessions whose tokens have not expired yet.
    pub async fn revoked(&self) -> Result<Vec<RevokedSession>, StoreError> {
        dispatch!(self.revoked())
    }

    /// The ended sessions after the cursor `since` (all without one), not expired,
    /// and the cursor after them.
    pub async fn revoked_since(&self, since: Option<&str>) -> Result<RevokedSince, StoreError> {
        dispatch!(self.revoked_since(since))
    }

    /// Records ended sessions durably, then tells every peer about those that are
    /// news. Returns them.
    pub async fn revoke(&self, sessions: Vec<RevokedSession>) -> Result<Vec<RevokedSession>, StoreError> {
        dispatch!(self.revoke(sessions))
    }

    // === Channels and members ===

    pub async fn channels(&self) -> Result<Vec<ChannelName>, StoreError> {
        dispatch!(self.channels())
    }

    pub async fn joined(&self, user: &Username) -> Result<Vec<ChannelName>, StoreError> {
        dispatch!(self.joined(user))
    }

    /// The members of `channel`, sorted; `None` when there is no such channel.
    pub async fn members(&self, channel: &ChannelName) -> Result<Option<Vec<Username>>, StoreError> {
        dispatch!(self.members(channel))
    }

    /// The members of `channel` with their home peer, and whether they are online
    /// there (signed in, on a live peer).
    pub async fn roster(&self, channel: &ChannelName) -> Result<Vec<Member>, StoreError> {
        dispatch!(self.roster(channel))
    }

    pub async fn is_member(&self, channel: &ChannelName, user: &Username) -> Result<bool, StoreError> {
        dispatch!(self.is_member(channel, user))
    }

    /// Creates a channel (`private`: seen by its members only), with `by` its first member.
    pub async fn create_channel(&self, channel: &ChannelName, by: &Username, private: bool) -> Result<(), StoreError> {
        dispatch!(self.create_channel(channel, by, private))
    }

    /// Adds `user` to `channel`. Returns false when they were a member already.
    pub async fn join(&self, channel: &ChannelName, user: &Username) -> Result<bool, StoreError> {
        dispatch!(self.set_membership(channel, user, true))
    }

    /// Removes `user` from `channel`. Returns false when they were not a member.
    pub async fn leave(&self, channel: &ChannelName, user: &Username) -> Result<bool, StoreError> {
        dispatch!(self.set_membership(channel, user, false))
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
        dispatch!(self.post(channel, user, sender, text, None))
    }

    /// Posts `text` from `user`, sent from the peer that hosts them (their directory
    /// entry): refused when no peer does. On PostgreSQL the lookup is part of the
    /// batched insert, so a post costs no query of its own.
    pub async fn post_from_home(
        &self,
        channel: &ChannelName,
        user: &Username,
        text: &MessageText,
        reply_to: Option<u64>,
    ) -> Result<ChannelMessage, StoreError> {
        match self {
            Self::Sqlite(store) => {
                let (sender, _) = store.home(user).await?.ok_or(StoreError::NotOnAnyPeer)?;
                store.post(channel, user, &sender, text, reply_to).await
            }
            Self::Postgres(store) => store.post_from_home(channel, user, text, reply_to).await,
        }
    }

    /// One page of a channel's history, oldest first, and whether the limit cut it.
    pub async fn history(
        &self,
        channel: &ChannelName,
        before: Option<u64>,
        after: Option<u64>,
        limit: u64,
    ) -> Result<(Vec<ChannelMessage>, bool), StoreError> {
        dispatch!(self.history(channel, before, after, limit.clamp(1, MAX_PAGE)))
    }

    /// The newest messages, at most `limit`, that contain every word of `query`, in
    /// the channels `user` is a member of now (only `channel`, when given).
    pub async fn search(
        &self,
        user: &Username,
        query: &SearchQuery,
        channel: Option<&ChannelName>,
        limit: u64,
    ) -> Result<Vec<ChannelMessage>, StoreError> {
        dispatch!(self.search(user, query, channel, limit))
    }

    /// Messages of every channel with an id above `after`, in id order, at most
    /// `limit` of them: what a reconnecting peer missed.
    pub async fn messages_since(&self, after: u64, limit: u64) -> Result<Vec<ChannelMessage>, StoreError> {
        dispatch!(self.messages_since(after, limit))
    }

    /// The id of the newest message, 0 when there is none.
    pub async fn last_message_id(&self) -> Result<u64, StoreError> {
        dispatch!(self.last_message_id())
    }

    // === Directory ===

    /// The peer that hosts `user`, or hosted them last; and whether they are still
    /// signed in there.
    pub async fn home(&self, user: &Username) -> Result<Option<(PeerAddr, bool)>, StoreError> {
        dispatch_directory!(self.home(user))
    }

    /// The users signed in on some peer, and that peer, sorted.
    pub async fn signed_in(&self) -> Result<Vec<(Username, PeerAddr)>, StoreError> {
        dispatch_directory!(self.signed_in())
    }

    /// The users signed in on `peer`, sorted.
    pub async fn users_on(&self, peer: &PeerAddr) -> Result<Vec<Username>, StoreError> {
        dispatch_directory!(self.users_on(peer))
    }

    /// The peers that host members of `channel` now.
    pub async fn hosts_of_members(&self, channel: &ChannelName) -> Result<HashSet<PeerAddr>, StoreError> {
        dispatch_directory!(self.hosts_of_members(channel))
    }

    /// The users online now (signed in on a live peer), their peer, and whether they
    /// have the chat open; sorted by name.
    pub async fn online(&self) -> Result<Vec<(Username, PeerAddr, bool)>, StoreError> {
        dispatch_directory!(self.online())
    }

    pub async fn is_active(&self, user: &Username) -> Result<bool, StoreError> {
        dispatch_directory!(self.is_active(user))
    }

    /// Records whether `user`, signed in on `peer`, has the chat open; tells every
    /// peer when that changes. Returns false when `peer` is not their home.
    pub async fn set_active(&self, user: &Username, peer: &PeerAddr, active: bool) -> Result<bool, StoreError> {
        dispatch_directory!(self.set_active(user, peer, active))
    }

    /// Records that `peer` hosts `user` (their latest login wins).
    pub async fn set_home(&self, user: &Username, peer: &PeerAddr) -> Result<(), StoreError> {
        dispatch_directory!(self.write_home(user, peer, true)).map(|_| ())
    }

    /// Marks `user` signed out of `peer`, if that is their home. Returns whether it was.
    pub async fn release(&self, user: &Username, peer: &PeerAddr) -> Result<bool, StoreError> {
        if self.home(user).await? != Some((peer.clone(), true)) {
            return Ok(false);
        }
        dispatch_directory!(self.write_home(user, peer, false))
    }

    // === The peer pool ===

    /// Adds or refreshes a peer. Returns true when it was not in the pool; then the
    /// users it hosts are online again, and every peer hears so.
    pub async fn register_peer(&self, peer: &PeerAddr) -> Result<bool, StoreError> {
        dispatch_directory!(self.register_peer(peer))
    }

    /// Refreshes a known peer. Returns false when the pool does not know it (it
    /// expired, or the tracker restarted), so the peer registers again.
    pub async fn heartbeat(&self, peer: &PeerAddr) -> Result<bool, StoreError> {
        dispatch_directory!(self.heartbeat(peer))
    }

    /// Whether `peer` beat within the TTL.
    pub async fn is_live(&self, peer: &PeerAddr) -> Result<bool, StoreError> {
        dispatch_directory!(self.is_live(peer))
    }

    /// The live peers, in registration order.
    pub async fn live_peers(&self) -> Result<Vec<PeerAddr>, StoreError> {
        dispatch_directory!(self.live_peers())
    }

    /// Removes a peer that said it is leaving: its users are no longer active, and
    /// every peer hears they went offline. Returns how many users it hosted, or `None`
    /// when it was not in the pool.
    pub async fn leave_pool(&self, peer: &PeerAddr) -> Result<Option<usize>, StoreError> {
        dispatch_directory!(self.leave_pool(peer))
    }

    /// Removes the peers silent for longer than the TTL, as [`Store::leave_pool`]
    /// does; returns them with how many users each hosted. Of several replicas, only
    /// one acts on a given peer.
    pub async fn expire_peers(&self) -> Result<Vec<(PeerAddr, usize)>, StoreError> {
        dispatch_directory!(self.expire_peers())
    }
}
