//! The cluster backend: one PostgreSQL database shared by every peer replica (tables
//! `peer_*`).
//!
//! What belongs to a user is shared: their mailbox, contacts and the outbox, so any
//! replica serves any user with their whole history and a replica that goes away
//! strands nothing. What belongs to one running peer is keyed by its advertised
//! address: the users it hosts, which a restarted peer restores. Ended sessions are
//! shared (a session ended anywhere is ended everywhere).
//!
//! The outbox is worked by every replica at once: a worker claims the due rows it
//! takes (`FOR UPDATE SKIP LOCKED`, then a lease pushed into `next_attempt`), so no
//! row is sent by two replicas at once, and the rows of a replica that died become
//! due again when their lease ends.

mod changes;
mod mailbox;

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use wire::addr::PeerAddr;
use wire::api::Contact;
use wire::names::Username;

use super::error::StoreError;
use super::records::{Loaded, Outgoing, Pending};

const MIGRATIONS: &[&str] = &[
    r#"
    -- The users each peer hosts, by the peer's advertised address (ip:port).
    CREATE TABLE peer_hosted (
        peer       TEXT NOT NULL,
        username   TEXT NOT NULL,
        since      BIGINT NOT NULL,
        -- When the user's latest session there expires (Unix seconds; 0: unknown).
        expires_at BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (peer, username)
    );
    -- Ended sessions; `own`: ended by a logout on a peer (the tracker must hear of
    -- it), else heard of from the tracker.
    CREATE TABLE peer_revoked (
        sid        TEXT PRIMARY KEY,
        expires_at BIGINT NOT NULL,
        own        BOOLEAN NOT NULL
    );
    CREATE TABLE peer_contacts (
        owner    TEXT NOT NULL,
        username TEXT NOT NULL,
        ip       TEXT NOT NULL,
        port     INTEGER NOT NULL,
        added_at BIGINT NOT NULL,
        PRIMARY KEY (owner, username)
    );
    -- One row per mailbox a message is in: the sender's (outgoing) and the
    -- recipient's, whichever peers filed them.
    CREATE TABLE peer_dms (
        seq         BIGSERIAL PRIMARY KEY,
        owner       TEXT NOT NULL,
        outgoing    BOOLEAN NOT NULL,
        id          TEXT NOT NULL,
        other       TEXT NOT NULL,
        sender      TEXT NOT NULL,
        recipient   TEXT NOT NULL,
        text        TEXT NOT NULL,
        ts          BIGINT NOT NULL,
        sender_ip   TEXT NOT NULL,
        sender_port INTEGER NOT NULL,
        broadcast   BOOLEAN NOT NULL,
        unread      BOOLEAN NOT NULL,
        UNIQUE (owner, outgoing, id)
    );
    CREATE INDEX peer_dms_by_time ON peer_dms (owner, other, ts, seq);
    CREATE INDEX peer_dms_unread ON peer_dms (owner, seq) WHERE unread;
    CREATE TABLE peer_outbox (
        id           TEXT PRIMARY KEY,
        message      TEXT NOT NULL,
        attempts     INTEGER NOT NULL,
        next_attempt BIGINT NOT NULL,
        created_at   BIGINT NOT NULL,
        last_error   TEXT,
        traceparent  TEXT
    );
    CREATE INDEX peer_outbox_due ON peer_outbox (next_attempt);
"#,
    r#"
    -- Edits, deletions (tombstones: empty text), replies and reactions of direct
    -- messages, per mailbox copy. A reaction taken back stays as a row with
    -- active = false, so the latest change (by `at`) wins whatever order they arrive in.
    ALTER TABLE peer_dms ADD COLUMN edited_at BIGINT;
    ALTER TABLE peer_dms ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT false;
    ALTER TABLE peer_dms ADD COLUMN reply_to TEXT;
    CREATE INDEX peer_dms_by_id ON peer_dms (owner, id);
    CREATE TABLE peer_dm_reactions (
        owner    TEXT NOT NULL,
        id       TEXT NOT NULL,
        emoji    TEXT NOT NULL,
        username TEXT NOT NULL,
        at       BIGINT NOT NULL,
        active   BOOLEAN NOT NULL,
        PRIMARY KEY (owner, id, emoji, username)
    );
    -- What an outbox row carries: a direct message, or a change to one.
    ALTER TABLE peer_outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
"#,
    // Full-text search (`mailbox/search.rs`): the words of each row's text, computed by the
    // database on every insert and every update of the text (an edit, a deletion's
    // tombstone), whoever writes them. `simple`: no stemming or stop words (chat is in
    // many languages). ASCII punctuation becomes space first, so words are runs of
    // letters and digits as in the embedded store's FTS5 index (PostgreSQL's parser
    // would keep `foo-bar`, `bob@example.com` or `a.b/c` whole).
    r##"
    ALTER TABLE peer_dms ADD COLUMN search tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', translate(text, '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', repeat(' ', 32)))
    ) STORED;
    CREATE INDEX peer_dms_search ON peer_dms USING GIN (search);
"##,
];

/// How long a claimed outbox row is left to the replica that claimed it: longer than
/// one delivery attempt (a tracker lookup and a hand-over, 10 s each at most).
const CLAIM_LEASE_MS: i64 = 60_000;

/// The peer's data in the shared database. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// This peer's advertised address, the key of its own rows.
    peer: String,
    /// Where the database is, without secrets, for logs.
    described: String,
}

impl PgStore {
    /// Connects (waiting up to `patience` for the database), applies the peer's
    /// migrations, and loads what the peer at `me` restores.
    pub async fn connect(
        url: &str,
        me: &PeerAddr,
        max_size: usize,
        patience: Duration,
    ) -> anyhow::Result<(Self, Loaded)> {
        let pool = kit::pg::connect(url, "peer", max_size, patience).await?;
        kit::pg::migrate(&pool, "peer", MIGRATIONS).await?;
        let store = Self { pool, peer: me.to_string(), described: kit::pg::describe(url) };
        let loaded = store.load().await?;
        Ok((store, loaded))
    }

    /// Where the database is, without secrets.
    pub fn describe(&self) -> &str {
        &self.described
    }

    async fn load(&self) -> Result<Loaded, StoreError> {
        let client = self.pool.get().await?;
        let mut loaded = Loaded::default();
        for row in client.query("SELECT username, expires_at FROM peer_hosted WHERE peer = $1", &[&self.peer]).await? {
            loaded.hosted.push((parse_name(row.get(0))?, row.get::<_, i64>(1) as u64));
        }
        for row in client
            .query("SELECT sid, expires_at FROM peer_revoked WHERE expires_at >= $1", &[&(kit::now_secs() as i64)])
            .await?
        {
            loaded.revoked.push((row.get(0), row.get::<_, i64>(1) as u64));
        }
        Ok(loaded)
    }

    // === Sessions ===

    pub async fn host(&self, user: &Username, expires_at: u64) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO peer_hosted (peer, username, since, expires_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (peer, username)
                 DO UPDATE SET expires_at = GREATEST(peer_hosted.expires_at, EXCLUDED.expires_at)",
            )
            .await?;
        client
            .execute(&statement, &[&self.peer, &user.as_str(), &(kit::now_ms() as i64), &(expires_at as i64)])
            .await?;
        Ok(())
    }

    pub async fn unhost(&self, user: &Username) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute("DELETE FROM peer_hosted WHERE peer = $1 AND username = $2", &[&self.peer, &user.as_str()])
            .await?;
        Ok(())
    }

    pub async fn revoke(&self, sid: &str, expires_at: u64, own: bool) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.execute("DELETE FROM peer_revoked WHERE expires_at < $1", &[&(kit::now_secs() as i64)]).await?;
        client
            .execute(
                "INSERT INTO peer_revoked (sid, expires_at, own) VALUES ($1, $2, $3)
                 ON CONFLICT (sid) DO UPDATE SET own = peer_revoked.own OR EXCLUDED.own",
                &[&sid, &(expires_at as i64), &own],
            )
            .await?;
        Ok(())
    }

    pub async fn own_revoked(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT sid, expires_at FROM peer_revoked WHERE own AND expires_at >= $1",
                &[&(kit::now_secs() as i64)],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get::<_, i64>(1) as u64)).collect())
    }

    // === Contacts ===

    pub async fn add_contact(&self, owner: &Username, contact: &Username, at: &PeerAddr) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO peer_contacts (owner, username, ip, port, added_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (owner, username) DO UPDATE SET ip = EXCLUDED.ip, port = EXCLUDED.port",
                &[&owner.as_str(), &contact.as_str(), &at.ip, &i32::from(at.port), &(kit::now_ms() as i64)],
            )
            .await?;
        Ok(())
    }

    pub async fn contacts(&self, owner: &Username) -> Result<Vec<Contact>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached("SELECT username, ip, port FROM peer_contacts WHERE owner = $1 ORDER BY added_at, username")
            .await?;
        let rows = client.query(&statement, &[&owner.as_str()]).await?;
        rows.iter()
            .map(|row| {
                Ok(Contact {
                    username: parse_name(row.get(0))?,
                    ip: row.get(1),
                    port: port(row.get(2))?,
                    online: false,
                })
            })
            .collect()
    }

    pub async fn last_known_address(&self, owner: &Username, other: &Username) -> Result<Option<PeerAddr>, StoreError> {
        let client = self.pool.get().await?;
        let keys: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&owner.as_str(), &other.as_str()];
        let contact =
            client.query_opt("SELECT ip, port FROM peer_contacts WHERE owner = $1 AND username = $2", &keys).await?;
        let row = match contact {
            Some(row) => Some(row),
            None => {
                client
                    .query_opt(
                        "SELECT sender_ip, sender_port FROM peer_dms
                         WHERE owner = $1 AND other = $2 AND NOT outgoing
                         ORDER BY ts DESC, seq DESC LIMIT 1",
                        &keys,
                    )
                    .await?
            }
        };
        row.map(|row| Ok(PeerAddr { ip: row.get(0), port: port(row.get(1))? })).transpose()
    }

    // === Outbox ===

    /// Claims up to `limit` due messages for this replica, oldest first: each is left
    /// to it for [`CLAIM_LEASE_MS`], during which no other replica takes it.
    pub async fn due(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let client = self.pool.get().await?;
        let now = kit::now_ms() as i64;
        let statement = client
            .prepare_cached(
                "UPDATE peer_outbox SET next_attempt = $1 + $3
                 WHERE id IN (SELECT id FROM peer_outbox WHERE next_attempt <= $1
                              ORDER BY next_attempt, created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING message, attempts, created_at, traceparent, kind",
            )
            .await?;
        let rows = client.query(&statement, &[&now, &(limit as i64), &CLAIM_LEASE_MS]).await?;
        let mut due = rows
            .iter()
            .map(|row| {
                let json: String = row.get(0);
                let kind: String = row.get(4);
                let item = Outgoing::from_json(&kind, &json).map_err(|err| StoreError::Corrupt(err.to_string()))?;
                Ok(Pending {
                    item,
                    attempts: u32::try_from(row.get::<_, i32>(1)).unwrap_or_default(),
                    created_at: row.get::<_, i64>(2) as u64,
                    traceparent: row.get(3),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // RETURNING keeps no order.
        due.sort_by_key(|pending| pending.created_at);
        Ok(due)
    }

    pub async fn next_due(&self) -> Result<Option<u64>, StoreError> {
        let client = self.pool.get().await?;
        let row = client.query_one("SELECT MIN(next_attempt) FROM peer_outbox", &[]).await?;
        Ok(row.get::<_, Option<i64>>(0).map(|due| due as u64))
    }

    /// Messages waiting in the outbox of every replica.
    pub async fn outbox_len(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        let row = client.query_one("SELECT COUNT(*) FROM peer_outbox", &[]).await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    pub async fn delivered(&self, id: &str) -> Result<(), StoreError> {
        self.remove_from_outbox(id).await
    }

    pub async fn give_up(&self, id: &str) -> Result<(), StoreError> {
        self.remove_from_outbox(id).await
    }

    async fn remove_from_outbox(&self, id: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached("DELETE FROM peer_outbox WHERE id = $1").await?;
        client.execute(&statement, &[&id]).await?;
        Ok(())
    }

    pub async fn retry_later(&self, id: &str, attempts: u32, next_attempt: u64, error: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE peer_outbox SET attempts = $2, next_attempt = $3, last_error = $4 WHERE id = $1",
                &[&id, &i32::try_from(attempts).unwrap_or(i32::MAX), &(next_attempt as i64), &error],
            )
            .await?;
        Ok(())
    }
}

/// A user name read back. Names were parsed on the way in, so a failure means the
/// table was edited by hand.
fn parse_name(raw: &str) -> Result<Username, StoreError> {
    Username::parse(raw).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn port(raw: i32) -> Result<u16, StoreError> {
    u16::try_from(raw).map_err(|_| StoreError::Corrupt(format!("port {raw} out of range")))
}
