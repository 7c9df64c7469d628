//! The users this peer hosts and their open event streams: state only.
//!
//! What the peer says to the tracker about them (hosting, presence, releasing) lives
//! in [`crate::hosting`]; this module knows no other service.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use wire::names::{ChannelName, Username};

/// Hosted users and their open event streams. Cloning is a reference-count bump.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    hosted: HashMap<Username, Hosted>,
    /// Open event streams per user (browser tabs with the chat open).
    streams: HashMap<Username, usize>,
}

#[derive(Default)]
struct Hosted {
    /// The channels the user joined; `None` until learnt from the tracker.
    joined: Option<BTreeSet<ChannelName>>,
    /// Whether the tracker knows this peer hosts the user.
    announced: bool,
    /// When the latest session seen here expires (Unix seconds).
    expires_at: u64,
}

impl Sessions {
    /// The state saved by an earlier run. Users whose expiry is unknown get a day.
    pub fn restore(hosted: Vec<(Username, u64)>) -> Self {
        let unknown = kit::now_secs() + 24 * 60 * 60;
        let inner = Inner {
            hosted: hosted
                .into_iter()
                .map(|(user, expires_at)| {
                    let expires_at = if expires_at == 0 { unknown } else { expires_at };
                    (user, Hosted { expires_at, ..Hosted::default() })
                })
                .collect(),
            streams: HashMap::new(),
        };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    pub fn is_hosted(&self, user: &Username) -> bool {
        self.lock().hosted.contains_key(user)
    }

    /// Whether `user` is hosted here with a session that lasts at least until
    /// `expires_at`.
    pub(crate) fn is_hosted_until(&self, user: &Username, expires_at: u64) -> bool {
        self.lock().hosted.get(user).is_some_and(|hosted| hosted.expires_at >= expires_at)
    }

    /// Hosted users whose every session has expired.
    pub fn expired(&self, now: u64) -> Vec<Username> {
        self.lock().hosted.iter().filter(|(_, hosted)| hosted.expires_at < now).map(|(user, _)| user.clone()).collect()
    }

    /// Counts a new event stream of `user`; true when it is their first.
    pub fn stream_opened(&self, user: &Username) -> bool {
        self.try_open_stream(user, None).unwrap_or(false)
    }

    /// Counts a new event stream of `user` unless they have `max` open already
    /// (`None`: no cap): `Some(first)`, or `None` when refused.
    pub fn try_open_stream(&self, user: &Username, max: Option<usize>) -> Option<bool> {
        let mut inner = self.lock();
        let count = inner.streams.entry(user.clone()).or_default();
        if max.is_some_and(|max| *count >= max) {
            return None;
        }
        *count += 1;
        Some(*count == 1)
    }

    /// Counts a closed event stream of `user`; true when it was their last.
    pub fn stream_closed(&self, user: &Username) -> bool {
        let mut inner = self.lock();
        let Some(count) = inner.streams.get_mut(user) else { return false };
        *count = count.saturating_sub(1);
        if *count == 0 {
            inner.streams.remove(user);
            true
        } else {
            false
        }
    }

    pub fn has_streams(&self, user: &Username) -> bool {
        self.lock().streams.contains_key(user)
    }

    /// Users with at least one event stream open.
    pub fn active(&self) -> Vec<Username> {
        self.lock().streams.keys().cloned().collect()
    }

    /// Whether `user` is hosted here and a member of `channel`.
    pub fn is_member(&self, user: &Username, channel: &ChannelName) -> bool {
        self.lock()
            .hosted
            .get(user)
            .and_then(|hosted| hosted.joined.as_ref())
            .is_some_and(|joined| joined.contains(channel))
    }

    /// Hosted users whose channels are not known yet.
    pub fn without_channels(&self) -> Vec<Username> {
        self.lock().hosted.iter().filter(|(_, hosted)| hosted.joined.is_none()).map(|(user, _)| user.clone()).collect()
    }

    /// Hosted users the tracker has not been told about yet.
    pub fn unannounced(&self) -> Vec<Username> {
        self.lock().hosted.iter().filter(|(_, hosted)| !hosted.announced).map(|(user, _)| user.clone()).collect()
    }

    pub fn set_announced(&self, user: &Username, announced: bool) {
        if let Some(hosted) = self.lock().hosted.get_mut(user) {
            hosted.announced = announced;
        }
    }

    /// The tracker forgot this peer: every user must be announced again.
    pub fn forget_announcements(&self) {
        for hosted in self.lock().hosted.values_mut() {
            hosted.announced = false;
        }
    }

    pub fn set_joined(&self, user: &Username, channels: impl IntoIterator<Item = ChannelName>) {
        if let Some(hosted) = self.lock().hosted.get_mut(user) {
            hosted.joined = Some(channels.into_iter().collect());
        }
    }

    /// Applies a membership change of a hosted user.
    pub fn update_joined(&self, user: &Username, channel: &ChannelName, joined: bool) {
        if let Some(set) = self.lock().hosted.get_mut(user).and_then(|hosted| hosted.joined.as_mut()) {
            if joined {
                set.insert(channel.clone());
            } else {
                set.remove(channel);
            }
        }
    }

    /// Hosts `user` until at least `expires_at`. Returns true when they were not hosted.
    pub(crate) fn insert(&self, user: &Username, expires_at: u64) -> bool {
        let mut inner = self.lock();
        match inner.hosted.get_mut(user) {
            Some(hosted) => {
                hosted.expires_at = hosted.expires_at.max(expires_at);
                false
            }
            None => {
                inner.hosted.insert(user.clone(), Hosted { expires_at, ..Hosted::default() });
                true
            }
        }
    }

    pub(crate) fn remove(&self, user: &Username) {
        self.lock().hosted.remove(user);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
