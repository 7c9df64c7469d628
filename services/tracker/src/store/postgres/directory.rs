//! The PostgreSQL backend's user directory (who is on which peer, who has the chat
//! open) and peer pool: a peer is live while its last beat, by the database's clock,
//! is within the TTL.

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::{Object, Pool, Transaction};
use wire::addr::PeerAddr;
use wire::events::{Event, Moved, Presence};
use wire::names::{ChannelName, Username};

use super::log::{append_event, log_transaction, parse};
use crate::store::model::StoreError;

/// How long events for the peers stay in the log: a follower further behind than
/// this skips them (they are live news, not history; messages are kept).
const EVENTS_KEPT_MS: i64 = 60 * 60 * 1000;

/// The database's clock in milliseconds: liveness is judged by one clock, whichever
/// replica writes or reads it.
pub(super) const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The directory and the peer pool, on the store's connection pool.
pub struct Directory {
    pool: Pool,
    peer_ttl: Duration,
}

impl Directory {
    pub(super) fn new(pool: Pool, peer_ttl: Duration) -> Self {
        Self { pool, peer_ttl }
    }

    /// How long a silent peer stays in the pool.
    pub fn peer_ttl(&self) -> Duration {
        self.peer_ttl
    }

    /// The TTL in milliseconds, as the queries compare it with [`NOW_MS`].
    pub(super) fn ttl_ms(&self) -> i64 {
        i64::try_from(self.peer_ttl.as_millis()).unwrap_or(i64::MAX)
    }

    async fn conn(&self) -> Result<Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    // === Directory ===

    pub async fn home(&self, user: &Username) -> Result<Option<(PeerAddr, bool)>, StoreError> {
        let row = self
            .conn()
            .await?
            .query_opt("SELECT ip, port, online FROM tracker_directory WHERE username = $1", &[&user.as_str()])
            .await?;
        Ok(row.map(|row| (peer_from(row.get(0), row.get(1)), row.get(2))))
    }

    pub async fn signed_in(&self) -> Result<Vec<(Username, PeerAddr)>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query("SELECT username, ip, port FROM tracker_directory WHERE online ORDER BY username COLLATE \"C\"", &[])
            .await?;
        rows.iter().map(|row| Ok((parse(row.get(0), Username::parse)?, peer_from(row.get(1), row.get(2))))).collect()
    }

    pub async fn users_on(&self, peer: &PeerAddr) -> Result<Vec<Username>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        users_on(&tx, peer).await
    }

    pub async fn hosts_of_members(&self, channel: &ChannelName) -> Result<HashSet<PeerAddr>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT DISTINCT d.ip, d.port
                 FROM tracker_members m JOIN tracker_directory d ON d.username = m.username
                 WHERE m.channel = $1 AND d.online",
                &[&channel.as_str()],
            )
            .await?;
        Ok(rows.iter().map(|row| peer_from(row.get(0), row.get(1))).collect())
    }

    pub async fn online(&self) -> Result<Vec<(Username, PeerAddr, bool)>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT d.username, d.ip, d.port, d.active
                     FROM tracker_directory d JOIN tracker_peers p ON p.ip = d.ip AND p.port = d.port
                     WHERE d.online AND p.last_beat_ms >= {NOW_MS} - $1
                     ORDER BY d.username COLLATE \"C\""
                ),
                &[&self.ttl_ms()],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((parse(row.get(0), Username::parse)?, peer_from(row.get(1), row.get(2)), row.get(3))))
            .collect()
    }

    pub async fn is_active(&self, user: &Username) -> Result<bool, StoreError> {
        let row = self
            .conn()
            .await?
            .query_opt("SELECT active FROM tracker_directory WHERE username = $1", &[&user.as_str()])
            .await?;
        Ok(row.is_some_and(|row| row.get(0)))
    }

    pub async fn set_active(&self, user: &Username, peer: &PeerAddr, active: bool) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        let row = tx
            .query_opt(
                "SELECT active FROM tracker_directory WHERE username = $1 AND ip = $2 AND port = $3 AND online
                 FOR UPDATE",
                &[&user.as_str(), &peer.ip, &i32::from(peer.port)],
            )
            .await?;
        let Some(row) = row else { return Ok(false) };
        if row.get::<_, bool>(0) != active {
            tx.execute("UPDATE tracker_directory SET active = $2 WHERE username = $1", &[&user.as_str(), &active])
                .await?;
            let traceparent = kit::telemetry::current_traceparent();
            append_event(&tx, &presence(user, true, active), None, traceparent.as_deref()).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records `user`'s home; returns false when it was so already. Signing out
    /// (`signed_in` false) only applies while `peer` is their home.
    pub async fn write_home(&self, user: &Username, peer: &PeerAddr, signed_in: bool) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        let previous = tx
            .query_opt(
                "SELECT ip, port, online, active FROM tracker_directory WHERE username = $1 FOR UPDATE",
                &[&user.as_str()],
            )
            .await?
            .map(|row| (peer_from(row.get(0), row.get(1)), row.get::<_, bool>(2), row.get::<_, bool>(3)));
        let unchanged = previous.as_ref().is_some_and(|(home, online, _)| home == peer && *online == signed_in);
        let not_home = !signed_in && !previous.as_ref().is_some_and(|(home, online, _)| home == peer && *online);
        if unchanged || not_home {
            return Ok(false);
        }
        let active = signed_in && previous.as_ref().is_some_and(|(_, _, active)| *active);
        tx.execute(
            "INSERT INTO tracker_directory (username, ip, port, online, active, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (username) DO UPDATE SET ip = $2, port = $3, online = $4, active = $5, updated_at = $6",
            &[&user.as_str(), &peer.ip, &i32::from(peer.port), &signed_in, &active, &(kit::now_ms() as i64)],
        )
        .await?;
        let traceparent = kit::telemetry::current_traceparent();
        // The peer they left holds their mailbox: it hands it over.
        if let Some((previous, _, _)) = previous.filter(|(previous, _, _)| previous != peer) {
            let moved = Event::Moved(Moved { username: user.clone(), to: peer.clone() });
            append_event(&tx, &moved, Some(&[previous]), None).await?;
        }
        append_event(&tx, &presence(user, signed_in, active), None, traceparent.as_deref()).await?;
        tx.commit().await?;
        Ok(true)
    }

    // === The peer pool ===

    pub async fn register_peer(&self, peer: &PeerAddr) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO tracker_peers (ip, port, registered_at, last_beat_ms) VALUES ($1, $2, {NOW_MS}, {NOW_MS})
                     ON CONFLICT (ip, port) DO UPDATE SET last_beat_ms = EXCLUDED.last_beat_ms
                     RETURNING xmax = 0"
                ),
                &[&peer.ip, &i32::from(peer.port)],
            )
            .await?;
        let inserted: bool = row.get(0);
        if inserted {
            // Users it hosted when it left (or went silent) are online again: everyone
            // hears so, as they heard of them leaving.
            let traceparent = kit::telemetry::current_traceparent();
            for user in users_on(&tx, peer).await? {
                append_event(&tx, &presence(&user, true, false), None, traceparent.as_deref()).await?;
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }

    pub async fn heartbeat(&self, peer: &PeerAddr) -> Result<bool, StoreError> {
        let updated = self
            .conn()
            .await?
            .execute(
                &format!("UPDATE tracker_peers SET last_beat_ms = {NOW_MS} WHERE ip = $1 AND port = $2"),
                &[&peer.ip, &i32::from(peer.port)],
            )
            .await?;
        Ok(updated == 1)
    }

    pub async fn is_live(&self, peer: &PeerAddr) -> Result<bool, StoreError> {
        let row = self
            .conn()
            .await?
            .query_opt(
                &format!("SELECT 1 FROM tracker_peers WHERE ip = $1 AND port = $2 AND last_beat_ms >= {NOW_MS} - $3"),
                &[&peer.ip, &i32::from(peer.port), &self.ttl_ms()],
            )
            .await?;
        Ok(row.is_some())
    }

    pub async fn live_peers(&self) -> Result<Vec<PeerAddr>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT ip, port FROM tracker_peers WHERE last_beat_ms >= {NOW_MS} - $1 ORDER BY registration"
                ),
                &[&self.ttl_ms()],
            )
            .await?;
        Ok(rows.iter().map(|row| peer_from(row.get(0), row.get(1))).collect())
    }

    pub async fn leave_pool(&self, peer: &PeerAddr) -> Result<Option<usize>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        let removed = tx
            .execute("DELETE FROM tracker_peers WHERE ip = $1 AND port = $2", &[&peer.ip, &i32::from(peer.port)])
            .await?;
        if removed == 0 {
            return Ok(None);
        }
        let users = forget_peers(&tx, std::slice::from_ref(peer)).await?;
        tx.commit().await?;
        Ok(Some(users.iter().sum()))
    }

    pub async fn expire_peers(&self) -> Result<Vec<(PeerAddr, usize)>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        // Replicas expiring at once: the row goes to whichever deletes it first; the
        // other's DELETE skips it.
        let rows = tx
            .query(
                &format!("DELETE FROM tracker_peers WHERE last_beat_ms < {NOW_MS} - $1 RETURNING ip, port"),
                &[&self.ttl_ms()],
            )
            .await?;
        let peers: Vec<PeerAddr> = rows.iter().map(|row| peer_from(row.get(0), row.get(1))).collect();
        let users = forget_peers(&tx, &peers).await?;
        let expired = peers.into_iter().zip(users).collect();
        tx.execute("DELETE FROM tracker_events WHERE created_at < $1", &[&(kit::now_ms() as i64 - EVENTS_KEPT_MS)])
            .await?;
        tx.commit().await?;
        Ok(expired)
    }
}

/// After `peers` left the pool: their users are no longer active, and everyone
/// hears they went offline. Returns how many users each hosted.
async fn forget_peers(tx: &Transaction<'_>, peers: &[PeerAddr]) -> Result<Vec<usize>, StoreError> {
    // `tx` took the log lock before any row lock (`log_transaction`): a transaction
    // that waits for the log lock holds no row, so none can deadlock with this one.
    let mut offline = Vec::new();
    let mut counts = Vec::with_capacity(peers.len());
    for peer in peers {
        let users = users_on(tx, peer).await?;
        tx.execute(
            "UPDATE tracker_directory SET active = FALSE WHERE ip = $1 AND port = $2 AND active",
            &[&peer.ip, &i32::from(peer.port)],
        )
        .await?;
        counts.push(users.len());
        offline.extend(users);
    }
    let traceparent = kit::telemetry::current_traceparent();
    for user in &offline {
        append_event(tx, &presence(user, false, false), None, traceparent.as_deref()).await?;
    }
    Ok(counts)
}

async fn users_on(tx: &Transaction<'_>, peer: &PeerAddr) -> Result<Vec<Username>, StoreError> {
    let rows = tx
        .query(
            "SELECT username FROM tracker_directory WHERE online AND ip = $1 AND port = $2
             ORDER BY username COLLATE \"C\"",
            &[&peer.ip, &i32::from(peer.port)],
        )
        .await?;
    rows.iter().map(|row| parse(row.get(0), Username::parse)).collect()
}

fn presence(user: &Username, online: bool, active: bool) -> Event {
    Event::Presence(Presence { username: user.clone(), online, active })
}

fn peer_from(ip: String, port: i32) -> PeerAddr {
    PeerAddr { ip, port: port as u16 }
}
