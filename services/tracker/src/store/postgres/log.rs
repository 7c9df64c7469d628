//! The log's plumbing, shared by the store, its directory, its follower and its post
//! batcher: the lock and the channel of appends, reading the log in id order and
//! which entries a reader may take, appending an event, and reading messages back.
//! The rules are in the parent module's doc.

use deadpool_postgres::{Object, Transaction};
use wire::addr::PeerAddr;
use wire::api::ChannelMessage;
use wire::events::Event;
use wire::names::{ChannelName, MessageText, Username};

use crate::store::model::{StoreError, mentions_from_column};

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
/// Where the message's later columns (edit, tombstone, reply, mentions) start in
/// [`read_log`]'s rows.
pub(super) const LOG_MESSAGE_EXTRAS: usize = 11;
const LOG_RELEASED: usize = 15;
/// Where they start in [`query_messages`]'s rows.
const QUERY_MESSAGE_EXTRAS: usize = 7;

/// The log after `after` in id order, `limit` entries at most, messages and events
/// alike, each with whether it is released; see [`readable_prefix`].
pub(super) async fn read_log(conn: &Object, after: i64, limit: i64) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let statement = conn
        .prepare_cached(&format!(
            "SELECT *, {RELEASED} AS released FROM (
                 (SELECT id, channel, username, sender_ip, sender_port, text, ts, traceparent,
                         NULL::text AS event, NULL::text AS targets, xid,
                         edited_at, deleted, reply_to, mentions
                  FROM tracker_messages WHERE id > $1 ORDER BY id LIMIT $2)
                 UNION ALL
                 (SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, traceparent, event, targets, xid,
                         NULL, NULL, NULL, NULL
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
    let sql = format!(
        "SELECT id, channel, username, sender_ip, sender_port, text, ts, edited_at, deleted, reply_to, mentions
         FROM tracker_messages {clause}"
    );
    let statement = conn.prepare_cached(&sql).await?;
    conn.query(&statement, params).await?.iter().map(|row| message_from_row(row, QUERY_MESSAGE_EXTRAS)).collect()
}

/// A `tracker_messages` row: its first seven columns in the order [`query_messages`]
/// selects them, and from `extras` on the edit time, tombstone, reply and mentions.
pub(super) fn message_from_row(row: &tokio_postgres::Row, extras: usize) -> Result<ChannelMessage, StoreError> {
    let deleted: bool = row.get(extras + 1);
    let text = if deleted { MessageText::tombstone() } else { parse(row.get(5), MessageText::parse)? };
    let mut message = ChannelMessage::new(
        row.get::<_, i64>(0) as u64,
        parse(row.get(1), ChannelName::parse)?,
        (row.get(3), row.get::<_, i32>(4) as u16),
        parse(row.get(2), Username::parse)?,
        text,
    );
    message.ts = row.get::<_, i64>(6) as u64;
    message.edited_at = row.get::<_, Option<i64>>(extras).map(|ts| ts as u64);
    message.deleted = deleted;
    message.reply_to = row.get::<_, Option<i64>>(extras + 2).map(|id| id as u64);
    message.mentions = mentions_from_column(row.get::<_, Option<&str>>(extras + 3));
    Ok(message)
}

/// Reads a text column through a wire type's parser. Stored data was parsed on the
/// way in, so a failure means someone edited the table by hand.
pub(super) fn parse<T, E: std::fmt::Display>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    parse(text).map_err(|err| StoreError::Corrupt(err.to_string()))
}
