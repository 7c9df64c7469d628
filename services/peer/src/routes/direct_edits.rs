//! Changing direct messages after they were sent: edit and delete (their author),
//! react (either user of the conversation), typing notices; and the signed route by
//! which the other user's peer hears of them.
//!
//! `/edit-message`, `/delete-message`, `/react` and `/typing` serve channel messages
//! too: with `channel_name` the call is about a channel and is relayed to the
//! tracker, which authorises it and tells the members; without it, it is about a
//! direct message, served here.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use kit::body::Input;
use kit::error::ApiError;
use kit::sign::Signed;
use wire::api::{
    Ack, DeleteMessage, Deleted, DirectChange, DirectChangeKind, Done, EditMessage, Edited, MessageKey, React, Reacted,
    Status, TypingRequest,
};

use crate::hosting::Session;
use crate::state::AppState;
use crate::{delivery, dm_changes};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/edit-message", post(edit_message))
        .route("/delete-message", post(delete_message))
        .route("/react", post(react))
        .route("/typing", post(typing))
        .route(wire::routes::peer::RECEIVE_CHANGE, post(receive_change))
}

#[tracing::instrument(level = "debug", skip_all, fields(username = %session.username()))]
async fn edit_message(
    State(state): State<AppState>,
    session: Session,
    Input(request): Input<EditMessage>,
) -> Result<Json<Edited>, ApiError> {
    if request.channel_name.is_some() {
        return state.tracker.edit_message(&session.token, &request).await.map(Json);
    }
    let me = session.username();
    let (message, partner) = dm_changes::find(&state, me, &request.id).await?;
    // Later than any edit before it, so it wins wherever edits meet.
    let edited_at = kit::now_ms().max(message.edited_at.map_or(0, |at| at + 1));
    let change = DirectChangeKind::Edit { message_id: message.id, message: request.message, edited_at };
    let message = change_and_send(&state, me, &partner, change).await?;
    Ok(Json(Edited {
        status: Status::Success,
        message: "Message edited".into(),
        id: MessageKey::Direct(message.id),
        edited_at: message.edited_at.unwrap_or(edited_at),
    }))
}

#[tracing::instrument(level = "debug", skip_all, fields(username = %session.username()))]
async fn delete_message(
    State(state): State<AppState>,
    session: Session,
    Input(request): Input<DeleteMessage>,
) -> Result<Json<Deleted>, ApiError> {
    if request.channel_name.is_some() {
        return state.tracker.delete_message(&session.token, &request).await.map(Json);
    }
    let me = session.username();
    let (message, partner) = dm_changes::find(&state, me, &request.id).await?;
    let change = DirectChangeKind::Delete { message_id: message.id };
    let message = change_and_send(&state, me, &partner, change).await?;
    Ok(Json(Deleted { status: Status::Success, message: "Message deleted".into(), id: MessageKey::Direct(message.id) }))
}

#[tracing::instrument(level = "debug", skip_all, fields(username = %session.username()))]
async fn react(
    State(state): State<AppState>,
    session: Session,
    Input(request): Input<React>,
) -> Result<Json<Reacted>, ApiError> {
    if request.channel_name.is_some() {
        return state.tracker.react(&session.token, &request).await.map(Json);
    }
    let me = session.username();
    let (message, partner) = dm_changes::find(&state, me, &request.id).await?;
    let change =
        DirectChangeKind::React { message_id: message.id, emoji: request.emoji, on: request.on, at: kit::now_ms() };
    let message = change_and_send(&state, me, &partner, change).await?;
    Ok(Json(Reacted { status: Status::Success, id: MessageKey::Direct(message.id), reactions: message.reactions }))
}

/// The caller is typing to `to`: told to `to`'s pages, at most once per 2 s (more
/// are answered but dropped). In a channel (`channel_name`): relayed to the tracker,
/// which tells the other members at the same pace.
async fn typing(
    State(state): State<AppState>,
    session: Session,
    Input(request): Input<TypingRequest>,
) -> Result<Json<Done>, ApiError> {
    if request.channel_name.is_some() {
        if request.to.is_some() {
            return Err(ApiError::bad_request("say where: channel_name or to, not both"));
        }
        return state.tracker.typing(&session.token, &request).await.map(Json);
    }
    let to = request.to.ok_or_else(|| ApiError::bad_request("say to whom: `to` (or `channel_name`)"))?;
    if &to == session.username() {
        return Err(ApiError::bad_request("typing to yourself is not news"));
    }
    dm_changes::typing(&state, session.username(), &to).await;
    Ok(Json(Done::success()))
}

/// Makes the change here, then hands it to the other user's peer.
async fn change_and_send(
    state: &AppState,
    me: &wire::names::Username,
    partner: &wire::names::Username,
    change: DirectChangeKind,
) -> Result<wire::api::DirectMessage, ApiError> {
    let (message, to_send) = dm_changes::make(state, me, partner, change).await?;
    if let Some(change) = to_send {
        delivery::send_change(state, change).await?;
    }
    Ok(message)
}

/// Another peer hands over a change made by one of its users to a message of a user
/// hosted here (signed: only peers can).
#[tracing::instrument(level = "debug", skip_all, fields(id = %change.id))]
async fn receive_change(
    State(state): State<AppState>,
    Signed(change): Signed<DirectChange>,
) -> Result<Json<Ack>, ApiError> {
    dm_changes::receive_here(&state, &change).await?;
    Ok(Json(Ack::success("Change received")))
}
