//! The log's plumbing, shared by the store, its directory, its follower and its post
//! batcher: the lock and the channel of appends, reading the log in id order and
//! which entries a reader may take, appending an event, and reading messages back.
//! The rules are in the parent module's doc.

use deadpool_postgres::{Object, Transaction};
use wire::addr::PeerAddr;
use wire::api::ChannelMessage;
use wire::events::Event;
use wire::names::{ChannelName, MessageText, Username};

use crate::store::model::StoreError;

/// The advisory lock every append to the log takes before its first write ("trklog"
/// in ASCII).
pub(crate) const LOG_LOCK: i64 = 0x7472_6b6c_6f67;
/// The channel a committed append notifies.
pub(super) const LOG_CHANNEL: &str = "tracker_log";

/// Whether a log row is released: its transaction ended before every transaction
/// still running began writing (see the parent module's doc).
pub(super) const RELEASED: &str = "xid < pg_snapshot_xmin(pg_current_snapshot())";

/// Columns of [`read_log`]'s rows after the message's (which come first, in the order
/// [`message_from_row`] reads them).
pub(super) const LOG_TRACEPARENT: usize = 7;
pub(super) const LOG_EVENT: usize = 8;
pub(super) const LOG_TARGETS: usize = 9;
const LOG_RELEASED: usize = 11;

/// The log after `after` in id order, `limit` entries at most, messages and events
/// alike, each with whether it is released; see [`readable_prefix`].
pub(super) async fn read_log(conn: &Object, after: i64, limit: i64) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let statement = conn
        .prepare_cached(&format!(
            "SELECT *, {RELEASED} AS released FROM (
                 (SELECT id, channel, username, sender_ip, sender_port, text, ts, traceparent,
                         NULL::text AS event, NULL::text AS targets, xid
                  FROM tracker_messages WHERE id > $1 ORDER BY id LIMIT $2)
                 UNION ALL
                 (SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, traceparent, event, targets, xid
                  FROM tracker_events WHERE id > $1 ORDER BY id LIMIT $2)
             ) AS log ORDER BY id LIMIT $2"
        ))
        .await?;
    Ok(conn.query(&statement, &[&after, &limit]).await?)
}

/// How many of `rows` (the log after `after`, from [`read_log`]) a reader may take
/// now: each entry that follows the one before it with no id between them, or that is
/// released (then no lower id can still appear). The first that is neither waits: an
/// id below it may be in flight.
pub(super) fn readable_prefix(after: i64, rows: &[tokio_postgres::Row]) -> usize {
    let mut last = after;
    rows.iter()
        .take_while(|row| {
            let id: i64 = row.get(0);
            let readable = id == last + 1 || row.get::<_, bool>(LOG_RELEASED);
            last = id;
            readable
        })
        .count()
}

/// Begins a transaction that may append to the log: the log lock comes first, before
/// any write, and is held until the transaction ends.
pub(super) async fn log_transaction(conn: &mut Object) -> Result<Transaction<'_>, StoreError> {
    let tx = conn.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK]).await?;
    Ok(tx)
}

/// Appends an event for the peers to the log, inside `tx`, which must come from
/// [`log_transaction`]: inserts, notifies (sent when `tx` commits). `targets` `None`
/// means every peer.
pub(super) async fn append_event(
    tx: &Transaction<'_>,
    event: &Event,
    targets: Option<&[PeerAddr]>,
    traceparent: Option<&str>,
) -> Result<(), StoreError> {
    let event = serde_json::to_string(event).expect("wire events serialize to JSON");
    let targets = targets.map(|targets| serde_json::to_string(targets).expect("addresses serialize to JSON"));
    tx.execute(
        "INSERT INTO tracker_events (event, targets, traceparent, created_at) VALUES ($1, $2, $3, $4)",
        &[&event, &targets, &traceparent, &(kit::now_ms() as i64)],
    )
    .await?;
    tx.execute("SELECT pg_notify($1, '')", &[&LOG_CHANNEL]).await?;
    Ok(())
}

/// The messages of `tracker_messages` that `clause` (`WHERE`, `ORDER BY`, `LIMIT`)
/// selects.
pub(super) async fn query_messages(
    conn: &Object,
    clause: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<ChannelMessage>, StoreError> {
    let sql = format!("SELECT id, channel, username, sender_ip, sender_port, text, ts FROM tracker_messages {clause}");
    let statement = conn.prepare_cached(&sql).await?;
    conn.query(&statement, params).await?.iter().map(message_from_row).collect()
}

/// A `tracker_messages` row, its columns in the order [`query_messages`] selects them.
pub(super) fn message_from_row(row: &tokio_postgres::Row) -> Result<ChannelMessage, StoreError> {
    Ok(ChannelMessage {
        id: row.get::<_, i64>(0) as u64,
        channel: parse(row.get(1), ChannelName::parse)?,
        username: parse(row.get(2), Username::parse)?,
        sender_ip: row.get(3),
        sender_port: row.get::<_, i32>(4) as u16,
        text: parse(row.get(5), MessageText::parse)?,
        ts: row.get::<_, i64>(6) as u64,
    })
}

/// Reads a text column through a wire type's parser. Stored data was parsed on the
/// way in, so a failure means someone edited the table by hand.
pub(super) fn parse<T, E: std::fmt::Display>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    parse(text).map_err(|err| StoreError::Corrupt(err.to_string()))
}
