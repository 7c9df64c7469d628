//! The embedded backend's user directory (who is on which peer, who has the chat
//! open) and its peer pool, in memory.

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::params;
use wire::addr::PeerAddr;
use wire::events::{Event, Moved};
use wire::names::{ChannelName, Username};

use super::SqliteStore;
use super::view::{Home, hosts_of_members, write};
use crate::store::model::{Push, StoreError, Targets, presence};

impl SqliteStore {
    // === Directory ===

    pub async fn home(&self, user: &Username) -> Result<Option<(PeerAddr, bool)>, StoreError> {
        Ok(self.read().homes.get(user).map(|home| (home.peer.clone(), home.signed_in)))
    }

    pub async fn signed_in(&self) -> Result<Vec<(Username, PeerAddr)>, StoreError> {
        let mut homes: Vec<_> = self
            .read()
            .homes
            .iter()
            .filter(|(_, home)| home.signed_in)
            .map(|(user, home)| (user.clone(), home.peer.clone()))
            .collect();
        homes.sort();
        Ok(homes)
    }

    pub async fn users_on(&self, peer: &PeerAddr) -> Result<Vec<Username>, StoreError> {
        Ok(self.users_on_now(peer))
    }

    fn users_on_now(&self, peer: &PeerAddr) -> Vec<Username> {
        let mut users: Vec<_> = self
            .read()
            .homes
            .iter()
            .filter(|(_, home)| home.signed_in && home.peer == *peer)
            .map(|(user, _)| user.clone())
            .collect();
        users.sort();
        users
    }

    pub async fn hosts_of_members(&self, channel: &ChannelName) -> Result<HashSet<PeerAddr>, StoreError> {
        Ok(hosts_of_members(&self.read(), channel))
    }

    pub async fn online(&self) -> Result<Vec<(Username, PeerAddr, bool)>, StoreError> {
        let signed_in = self.signed_in().await?;
        let view = self.read();
        Ok(signed_in
            .into_iter()
            .filter(|(_, peer)| self.pool.is_live(peer))
            .map(|(user, peer)| {
                let active = view.active.contains(&user);
                (user, peer, active)
            })
            .collect())
    }

    pub async fn is_active(&self, user: &Username) -> Result<bool, StoreError> {
        Ok(self.read().active.contains(user))
    }

    pub async fn set_active(&self, user: &Username, peer: &PeerAddr, active: bool) -> Result<bool, StoreError> {
        let mut view = write(&self.view);
        if view.homes.get(user).is_none_or(|home| !home.signed_in || home.peer != *peer) {
            return Ok(false);
        }
        let changed = if active { view.active.insert(user.clone()) } else { view.active.remove(user) };
        drop(view);
        if changed {
            self.publish(presence(user.clone(), true, active, kit::telemetry::current_traceparent()));
        }
        Ok(true)
    }

    /// Records `user`'s home; returns false when it was so already.
    pub async fn write_home(&self, user: &Username, peer: &PeerAddr, signed_in: bool) -> Result<bool, StoreError> {
        let home = Home { peer: peer.clone(), signed_in };
        if self.read().homes.get(user) == Some(&home) {
            return Ok(false);
        }
        let (name, addr) = (user.clone(), peer.clone());
        let view = self.view.clone();
        let events = self.events.clone();
        let traceparent = kit::telemetry::current_traceparent();
        let hook = {
            let name = user.clone();
            move |_: &usize| {
                let mut view = write(&view);
                let new_peer = home.peer.clone();
                let previous = view.homes.insert(name.clone(), home);
                if !signed_in {
                    view.active.remove(&name);
                }
                let active = view.active.contains(&name);
                drop(view);
                // The peer they left holds their mailbox: it hands it over.
                if let Some(previous) = previous.filter(|previous| previous.peer != new_peer) {
                    let moved = Push::new(
                        None,
                        Event::Moved(Moved { username: name.clone(), to: new_peer }),
                        Targets::Peers(HashSet::from([previous.peer])),
                        None,
                    );
                    let _ = events.send(Arc::new(moved));
                }
                let _ = events.send(Arc::new(presence(name, signed_in, active, traceparent)));
            }
        };
        self.db
            .write_then(
                move |conn| {
                    conn.execute(
                        "INSERT INTO directory (username, ip, port, online, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT(username) DO UPDATE SET ip = ?2, port = ?3, online = ?4, updated_at = ?5",
                        params![name.as_str(), addr.ip, addr.port, signed_in, kit::now_ms() as i64],
                    )
                },
                hook,
            )
            .await?;
        Ok(true)
    }

    // === The peer pool ===

    pub async fn register_peer(&self, peer: &PeerAddr) -> Result<bool, StoreError> {
        if !self.pool.register(peer) {
            return Ok(false);
        }
        // Users it hosted when it left (or went silent, or before this tracker
        // restarted) are online again: everyone hears so, as they heard of them leaving.
        for user in self.users_on_now(peer) {
            self.publish(presence(user, true, false, kit::telemetry::current_traceparent()));
        }
        Ok(true)
    }

    pub async fn heartbeat(&self, peer: &PeerAddr) -> Result<bool, StoreError> {
        Ok(self.pool.heartbeat(peer))
    }

    pub async fn is_live(&self, peer: &PeerAddr) -> Result<bool, StoreError> {
        Ok(self.pool.is_live(peer))
    }

    pub async fn live_peers(&self) -> Result<Vec<PeerAddr>, StoreError> {
        Ok(self.pool.live())
    }

    pub async fn leave_pool(&self, peer: &PeerAddr) -> Result<Option<usize>, StoreError> {
        Ok(self.pool.remove(peer).then(|| self.forget_peer(peer)))
    }

    pub async fn expire_peers(&self) -> Result<Vec<(PeerAddr, usize)>, StoreError> {
        Ok(self
            .pool
            .expire()
            .into_iter()
            .map(|peer| {
                let users = self.forget_peer(&peer);
                (peer, users)
            })
            .collect())
    }

    /// After `peer` left the pool: its users are no longer active, and everyone hears
    /// they went offline. Returns how many users it hosted.
    fn forget_peer(&self, peer: &PeerAddr) -> usize {
        let users = self.users_on_now(peer);
        let mut view = write(&self.view);
        let on_peer: Vec<Username> =
            view.homes.iter().filter(|(_, home)| home.peer == *peer).map(|(user, _)| user.clone()).collect();
        for user in on_peer {
            view.active.remove(&user);
        }
        drop(view);
        let count = users.len();
        for user in users {
            self.publish(presence(user, false, false, kit::telemetry::current_traceparent()));
        }
        count
    }
}
