//! The embedded backend's in-memory view of channels, members, homes and ended
//! sessions: what the reads on every request need, kept current by commit hooks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use wire::addr::PeerAddr;
use wire::names::{ChannelName, Username};

#[derive(Default)]
pub(super) struct View {
    /// Channel to members.
    pub(super) channels: BTreeMap<ChannelName, BTreeSet<Username>>,
    /// The private channels: only their members see them.
    pub(super) private: HashSet<ChannelName>,
    /// Channel topics, where set.
    pub(super) topics: HashMap<ChannelName, String>,
    /// User to the peer that hosts them, or hosted them last.
    pub(super) homes: HashMap<Username, Home>,
    /// Users with the chat open (an event stream on their peer). Soft state: peers
    /// report it again after a tracker restart.
    pub(super) active: HashSet<Username>,
    /// Ended sessions (logouts), by session id, with when their tokens expire anyway.
    pub(super) revoked: HashMap<String, u64>,
    /// The same sessions by the sequence number they ended under.
    pub(super) revoked_order: BTreeMap<u64, String>,
    /// The last sequence number given, and this store's id (for cursors).
    pub(super) revoked_seq: u64,
    pub(super) store_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Home {
    pub(super) peer: PeerAddr,
    /// False once the peer released the user (logout); the peer stays their last home,
    /// where direct messages are retried until they log in again.
    pub(super) signed_in: bool,
}

pub(super) fn hosts_of_members(view: &View, channel: &ChannelName) -> HashSet<PeerAddr> {
    view.channels
        .get(channel)
        .map(|members| {
            members
                .iter()
                .filter_map(|member| view.homes.get(member))
                .filter(|home| home.signed_in)
                .map(|home| home.peer.clone())
                .collect()
        })
        .unwrap_or_default()
}

impl View {
    /// Whether `user` may see `channel`: it exists, and is public or has them as a member.
    pub(super) fn can_see(&self, channel: &ChannelName, user: &Username) -> bool {
        self.channels.get(channel).is_some_and(|members| !self.private.contains(channel) || members.contains(user))
    }

    /// The peer hosting `user` now, if any.
    pub(super) fn host_of(&self, user: &Username) -> Option<PeerAddr> {
        self.homes.get(user).filter(|home| home.signed_in).map(|home| home.peer.clone())
    }
}

pub(super) fn read_view(view: &RwLock<View>) -> RwLockReadGuard<'_, View> {
    view.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn write(view: &RwLock<View>) -> RwLockWriteGuard<'_, View> {
    view.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}
