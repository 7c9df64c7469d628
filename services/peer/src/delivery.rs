//! Direct messages, peer to peer.
//!
//! The sender's peer files each message in the sender's mailbox and in its outbox in
//! one commit, then tries to deliver it: it asks the tracker where the recipient is
//! now and POSTs `/receive-message` there, signed with the cluster secret. A message
//! that cannot be delivered at once stays in the outbox; the outbox worker retries it
//! with backoff (asking the tracker again each time, so a user who moved is found)
//! until it is delivered or too old. The recipient's peer files it once per id.

use std::time::Duration;

use kit::backoff::delay_for;
use kit::error::ApiError;
use tracing::Instrument;
use wire::addr::PeerAddr;
use wire::api::{DirectChange, DirectMessage, ReplyPreview};
use wire::events::{Delivered, Event};
use wire::names::{MessageText, Username};

use crate::hub::Audience;
use crate::ids::MessageId;
use crate::state::AppState;
use crate::store::Outgoing;

/// The first retry comes after about this long, then the waits double.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How many due messages the worker takes at a time.
const BATCH: usize = 64;

/// Where a message goes first.
#[derive(Debug, Clone)]
pub enum Destination {
    /// The tracker was just asked: the recipient is here.
    Located(PeerAddr),
    /// Ask the tracker; if it cannot say, try this (a contact's last address).
    Hint(PeerAddr),
    /// The tracker could not be asked just now: try where the recipient was last.
    LastKnown(PeerAddr),
}

impl Destination {
    /// The peer this destination names.
    pub fn addr(&self) -> &PeerAddr {
        match self {
            Self::Located(addr) | Self::Hint(addr) | Self::LastKnown(addr) => addr,
        }
    }
}

/// Sends a direct message from `from` to `to`, a reply to `reply` if given. Returns
/// the message and whether it was delivered now (else it waits in the outbox).
pub async fn send(
    state: &AppState,
    from: &Username,
    to: &Username,
    destination: Destination,
    text: MessageText,
    broadcast: bool,
    reply: Option<ReplyPreview>,
) -> Result<(DirectMessage, bool), ApiError> {
    let sender = (state.me.ip.clone(), state.me.port);
    let mut message =
        DirectMessage::new(MessageId::new().into(), from.clone(), to.clone(), text, sender, kit::now_ms());
    message.broadcast = broadcast;
    message.reply_to = reply.as_ref().and_then(|reply| match &reply.id {
        wire::api::MessageKey::Direct(id) => Some(id.clone()),
        wire::api::MessageKey::Channel(_) => None,
    });
    message.reply = reply;
    let seq = state.store.save_outgoing(&message).await?;
    state.metrics.dms_sent.inc();
    state.hub.publish(
        Audience::Users(vec![from.clone()]),
        &Event::DirectMessage(DirectMessage { seq: Some(seq), ..message.clone() }),
    );
    let item = Outgoing::Message(message.clone());
    let first = match destination {
        Destination::Located(home) | Destination::LastKnown(home) => hand_over(state, &item, &home).await,
        Destination::Hint(hint) => attempt(state, &item, Some(&hint)).await,
    };
    let delivered = settle_first(state, &message.id, first).await?;
    if delivered {
        state.metrics.dms_delivered.inc();
        announce_delivery(state, &message);
    }
    Ok((message, delivered))
}

/// Hands a change to a direct message, applied and queued already by
/// [`crate::dm_changes::make`], to the other user's peer; left to the outbox worker
/// when that fails.
pub async fn send_change(state: &AppState, change: DirectChange) -> Result<(), ApiError> {
    let hint = state.store.last_known_address(&change.from, &change.to).await?;
    let item = Outgoing::Change(change);
    let first = attempt(state, &item, hint.as_ref()).await;
    settle_first(state, item.id(), first).await.map(drop)
}

/// Tells the sender's browsers that a message reached the recipient's peer.
fn announce_delivery(state: &AppState, message: &DirectMessage) {
    let receipt = Event::Delivered(Delivered { id: message.id.clone(), to: message.to.clone() });
    state.hub.publish(Audience::Users(vec![message.username.clone()]), &receipt);
}

/// Files a message for a user hosted here. Returns whether it is new (not a retry of
/// one filed already).
pub async fn deliver_here(state: &AppState, message: &DirectMessage) -> Result<bool, ApiError> {
    if !state.sessions.is_hosted(&message.to) {
        return Err(ApiError::NotFound(format!("user {} is not hosted on this peer", message.to)));
    }
    match state.store.save_incoming(message).await? {
        Some(seq) => {
            state.metrics.dms_received.inc();
            let filed = DirectMessage { seq: Some(seq), ..message.clone() };
            state.hub.publish(Audience::Users(vec![message.to.clone()]), &Event::DirectMessage(filed));
            Ok(true)
        }
        None => Ok(false),
    }
}

/// One delivery attempt: find the recipient's peer, hand the message (or change) over.
async fn attempt(state: &AppState, item: &Outgoing, hint: Option<&PeerAddr>) -> Result<(), ApiError> {
    let home = match state.tracker.lookup(item.to()).await {
        Ok(location) => PeerAddr { ip: location.ip, port: location.port },
        Err(err) => match hint {
            Some(hint) => hint.clone(),
            None => return Err(err),
        },
    };
    hand_over(state, item, &home).await
}

/// Gives a message or change to the peer at `home` (this one, or another, signed).
async fn hand_over(state: &AppState, item: &Outgoing, home: &PeerAddr) -> Result<(), ApiError> {
    match item {
        Outgoing::Message(message) if *home == state.me => deliver_here(state, message).await.map(drop),
        Outgoing::Message(message) => state.peers.receive_message(home, message).await,
        Outgoing::Change(change) if *home == state.me => crate::dm_changes::receive_here(state, change).await,
        Outgoing::Change(change) => state.peers.receive_change(home, change).await,
    }
}

/// After a first attempt at handing `id` over: out of the outbox if it went, else
/// scheduled for a retry. Returns whether it went.
async fn settle_first(state: &AppState, id: &str, first: Result<(), ApiError>) -> Result<bool, ApiError> {
    match first {
        Ok(()) => {
            state.store.delivered(id).await?;
            Ok(true)
        }
        Err(err) => {
            tracing::info!(%id, %err, "not delivered yet; queued");
            let next = kit::now_ms() + delay_for(0, RETRY_MIN, RETRY_MAX).as_millis() as u64;
            state.store.retry_later(id, 1, next, &err.to_string()).await?;
            state.metrics.outbox_depth.inc();
            state.outbox_wake.notify_one();
            Ok(false)
        }
    }
}

/// Retries what is in the outbox until each message is delivered or too old.
pub async fn outbox_worker(state: AppState) {
    loop {
        match state.store.due(BATCH).await {
            Ok(due) => {
                for pending in due {
                    retry(&state, pending).await;
                }
            }
            Err(err) => tracing::error!(%err, "could not read the outbox"),
        }
        if let Ok(depth) = state.store.outbox_len().await {
            state.metrics.outbox_depth.set(depth as i64);
        }
        let next_due = state.store.next_due().await.ok().flatten();
        let wait = next_due.map_or(RETRY_MAX, |due| Duration::from_millis(due.saturating_sub(kit::now_ms())));
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = state.outbox_wake.notified() => {}
            () = tokio::time::sleep(wait.min(RETRY_MAX)) => {}
        }
    }
}

/// One retry, in its own trace linked to the trace of the original send.
async fn retry(state: &AppState, pending: crate::store::Pending) {
    let span = tracing::info_span!(
        "outbox retry",
        otel.name = "outbox retry",
        otel.kind = "internal",
        message.id = %pending.item.id(),
        attempt = pending.attempts + 1,
        service = "peer",
    );
    if let Some(traceparent) = &pending.traceparent {
        kit::telemetry::add_link(&span, traceparent);
    }
    retry_in_span(state, pending).instrument(span).await;
}

async fn retry_in_span(state: &AppState, pending: crate::store::Pending) {
    let id = pending.item.id().to_owned();
    state.metrics.outbox_retries.inc();
    let age = Duration::from_millis(kit::now_ms().saturating_sub(pending.created_at));
    if age > state.outbox_ttl {
        tracing::warn!(%id, to = %pending.item.to(), attempts = pending.attempts, "giving up on a direct message");
        if let Err(err) = state.store.give_up(&id).await {
            tracing::error!(%err, "could not drop an expired message from the outbox");
        }
        return;
    }
    let outcome = match attempt(state, &pending.item, None).await {
        Ok(()) => state
            .store
            .delivered(&id)
            .await
            .map(|()| tracing::info!(%id, attempts = pending.attempts + 1, "queued direct message delivered")),
        Err(err) => {
            let attempts = pending.attempts + 1;
            let next = kit::now_ms() + delay_for(attempts, RETRY_MIN, RETRY_MAX).as_millis() as u64;
            tracing::debug!(%id, attempts, %err, "direct message still not deliverable");
            state.store.retry_later(&id, attempts, next, &err.to_string()).await
        }
    };
    if let Err(err) = outcome {
        tracing::error!(%err, "could not update the outbox");
    }
}
