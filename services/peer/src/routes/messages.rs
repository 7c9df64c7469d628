//! Direct messages: send, receive (from other peers), broadcast, read.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::future::join_all;
use kit::body::Input;
use kit::error::ApiError;
use kit::sign::Signed;
use serde::Deserialize;
use wire::addr::PeerAddr;
use wire::api::{
    Ack, Broadcast, BroadcastSent, Conversation, Conversations, DirectMessage, DirectSent, MailboxTransfer,
    MarkChannelRead, MarkRead, MarkedRead, SendPeer, Status,
};
use wire::events::{Event, Read};
use wire::names::Username;

use crate::delivery;
use crate::hosting::Session;
use crate::hub::Audience;
use crate::routes::people::resolve;
use crate::state::AppState;

/// The most messages one page of a conversation holds.
const MAX_PAGE: u64 = 500;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/send-peer", post(send_peer))
        .route(wire::routes::peer::RECEIVE_MESSAGE, post(receive_message))
        .route("/broadcast-peer", post(broadcast))
        .route("/get-received-messages", get(received_messages))
        .route("/mark-read", post(mark_read))
        .route("/get-conversation", get(conversation))
        .route("/get-conversations", get(conversations))
        .route(wire::routes::peer::IMPORT_MAILBOX, post(import_mailbox))
}

#[tracing::instrument(level = "debug", skip_all, fields(from = %session.username()))]
async fn send_peer(
    State(state): State<AppState>,
    session: Session,
    Input(request): Input<SendPeer>,
) -> Result<(StatusCode, Json<DirectSent>), ApiError> {
    state.direct_messages.check(session.username())?;
    let (to, destination) =
        resolve(&state, session.username(), request.ip.as_deref(), request.port, request.username.as_ref()).await?;
    state.direct_to_one.check(&(session.username().clone(), to.clone()))?;
    let reply = match &request.reply_to {
        Some(id) => Some(state.store.reply_parent(session.username(), &to, id).await?.ok_or_else(|| {
            ApiError::NotFound(format!("no message {id} in your conversation with {to} to reply to"))
        })?),
        None => None,
    };
    let addr = destination.addr().clone();
    let (message, delivered) =
        delivery::send(&state, session.username(), &to, destination, request.message, false, reply).await?;
    let (status, text) = if delivered {
        (StatusCode::OK, format!("Sent to {addr}"))
    } else {
        (StatusCode::ACCEPTED, format!("Queued for {to}: their peer is not reachable now; it will be retried"))
    };
    Ok((status, Json(DirectSent { status: Status::Success, message: text, id: message.id, delivered })))
}

/// Another peer hands over a message for a user hosted here; only peers that hold
/// the cluster secret can, so nobody can forge a sender.
#[tracing::instrument(level = "debug", skip_all, fields(id = %message.id))]
async fn receive_message(
    State(state): State<AppState>,
    Signed(message): Signed<DirectMessage>,
) -> Result<Json<Ack>, ApiError> {
    if delivery::deliver_here(&state, &message).await? {
        tracing::debug!(from = %message.username, "direct message received");
    } else {
        tracing::debug!("duplicate direct message ignored");
    }
    Ok(Json(Ack::success("Message received")))
}

/// One direct message to each of the caller's contacts.
#[tracing::instrument(level = "debug", skip_all, fields(from = %session.username()))]
async fn broadcast(
    State(state): State<AppState>,
    session: Session,
    Input(request): Input<Broadcast>,
) -> Result<Json<BroadcastSent>, ApiError> {
    state.direct_messages.check(session.username())?;
    let contacts = state.store.contacts(session.username()).await?;
    let sends = contacts.iter().map(|contact| {
        let hint = delivery::Destination::Hint(PeerAddr { ip: contact.ip.clone(), port: contact.port });
        delivery::send(&state, session.username(), &contact.username, hint, request.message.clone(), true, None)
    });
    let (mut delivered, mut queued) = (0, 0);
    for outcome in join_all(sends).await {
        match outcome? {
            (_, true) => delivered += 1,
            (_, false) => queued += 1,
        }
    }
    let message = if contacts.is_empty() {
        "Broadcast sent to nobody: connect to someone first".to_owned()
    } else {
        "Broadcast sent".to_owned()
    };
    Ok(Json(BroadcastSent { status: Status::Success, message, delivered, queued }))
}

/// The original's polling route: messages received and not yet read. Read-only
/// (no `GET` changes state, so a link from another site cannot mark them read):
/// `POST /mark-read` marks them.
async fn received_messages(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<Vec<DirectMessage>>, ApiError> {
    Ok(Json(state.store.unread(session.username()).await?))
}

/// With `channel_name`, relays to the tracker: the caller has read the channel up to
/// the message `up_to` (event `read` to their pages, from the tracker). Otherwise
/// direct messages: [`mark_direct_read`].
async fn mark_read(
    State(state): State<AppState>,
    session: Session,
    Input(request): Input<MarkRead>,
) -> Result<Response, ApiError> {
    match request.channel_name {
        Some(channel_name) => {
            let request = MarkChannelRead { channel_name, up_to: request.up_to };
            Ok(Json(state.tracker.mark_channel_read(&session.token, &request).await?).into_response())
        }
        None => Ok(Json(mark_direct_read(&state, &session, request).await?).into_response()),
    }
}

/// Marks the caller's received messages read, up to `up_to` (a `seq` of
/// `/get-received-messages`), or all of them; with `with`, only those of that
/// conversation. Every page of the caller's hears of it (event `read`).
async fn mark_direct_read(state: &AppState, session: &Session, request: MarkRead) -> Result<MarkedRead, ApiError> {
    let me = session.username();
    let (marked, read) = match &request.with {
        Some(with) => {
            let (marked, last_read) = state.store.mark_read_with(me, with, request.up_to).await?;
            (marked, Read { channel: None, with: Some(with.clone()), up_to: Some(last_read) })
        }
        None => {
            let marked = state.store.mark_read(me, request.up_to).await?;
            (marked, Read { channel: None, with: None, up_to: request.up_to })
        }
    };
    state.hub.publish(Audience::Users(vec![me.clone()]), &Event::Read(read));
    Ok(MarkedRead { status: Status::Success, marked })
}

/// A user's previous peer hands over their mailbox (signed: only peers can).
#[tracing::instrument(level = "debug", skip_all, fields(username = %transfer.username))]
async fn import_mailbox(
    State(state): State<AppState>,
    Signed(transfer): Signed<MailboxTransfer>,
) -> Result<Json<Ack>, ApiError> {
    let user = transfer.username.clone();
    let filed = state.store.import_mailbox(&user, transfer.messages, transfer.contacts).await?;
    if filed > 0 {
        // Their open pages reload what they show, older messages included.
        state.hub.publish(Audience::Users(vec![user.clone()]), &wire::events::Event::Reset);
        tracing::info!(username = %user, messages = filed, "mailbox received from the user's previous peer");
    }
    Ok(Json(Ack::success(format!("Filed {filed} messages"))))
}

#[derive(Deserialize)]
struct ConversationQuery {
    with: Username,
    before: Option<u64>,
    limit: Option<u64>,
}

async fn conversation(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<ConversationQuery>, QueryRejection>,
) -> Result<Json<Conversation>, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::bad_request(format!("expected ?with=NAME: {}", err.body_text())))?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let (messages, has_more) = state.store.conversation(session.username(), &query.with, query.before, limit).await?;
    Ok(Json(Conversation { status: Status::Success, with: query.with, messages, has_more }))
}

/// The caller's direct conversations, newest first, each with its latest message and
/// unread count: what a page lists after a reload or a new log-in, including partners
/// who are offline.
async fn conversations(State(state): State<AppState>, session: Session) -> Result<Json<Conversations>, ApiError> {
    let conversations = state.store.conversations(session.username()).await?;
    Ok(Json(Conversations { status: Status::Success, conversations }))
}
