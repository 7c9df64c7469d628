//! What members do in a channel beyond posting: edit, delete, react, typing, read
//! state, topic, invitations. Each route checks who may (a private channel is absent
//! to non-members: 404), and the store pushes the event to the members' peers.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use kit::error::ApiError;
use wire::api::{
    Ack, ChannelMarkedRead, DeleteMessage, Deleted, Done, EditMessage, Edited, Invite, MAX_TOPIC_CHARS,
    MarkChannelRead, MessageKey, React, Reacted, SetTopic, Status, TypingRequest,
};
use wire::names::ChannelName;
use wire::routes::tracker;

use crate::caller::Authed;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(tracker::EDIT_MESSAGE, post(edit_message))
        .route(tracker::DELETE_MESSAGE, post(delete_message))
        .route(tracker::REACT, post(react))
        .route(tracker::TYPING, post(typing))
        .route(tracker::MARK_READ, post(mark_read))
        .route(tracker::SET_TOPIC, post(set_topic))
        .route(tracker::INVITE, post(invite))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn edit_message(State(state): State<AppState>, request: Authed<EditMessage>) -> Result<Json<Edited>, ApiError> {
    let user = request.caller.user()?;
    let EditMessage { id, channel_name, message } = request.body;
    let (channel, id) = channel_message(channel_name, &id)?;
    state.channel_messages.check(user)?;
    state.store.access(&channel, user).await?;
    let edited = state.store.edit(&channel, user, id, &message).await?;
    Ok(Json(Edited {
        status: Status::Success,
        message: format!("Message {id} edited"),
        id: MessageKey::Channel(id),
        edited_at: edited.edited_at,
    }))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_message(
    State(state): State<AppState>,
    request: Authed<DeleteMessage>,
) -> Result<Json<Deleted>, ApiError> {
    let user = request.caller.user()?;
    let DeleteMessage { id, channel_name } = request.body;
    let (channel, id) = channel_message(channel_name, &id)?;
    state.channel_messages.check(user)?;
    state.store.access(&channel, user).await?;
    state.store.delete(&channel, user, id).await?;
    Ok(Json(Deleted { status: Status::Success, message: format!("Message {id} deleted"), id: MessageKey::Channel(id) }))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn react(State(state): State<AppState>, request: Authed<React>) -> Result<Json<Reacted>, ApiError> {
    let user = request.caller.user()?;
    let React { id, channel_name, emoji, on } = request.body;
    let (channel, id) = channel_message(channel_name, &id)?;
    state.channel_messages.check(user)?;
    state.store.member_access(&channel, user).await?;
    let reactions = state.store.react(&channel, user, id, &emoji, on).await?;
    Ok(Json(Reacted { status: Status::Success, id: MessageKey::Channel(id), reactions }))
}

/// Ephemeral: forwarded to the other members at most once per user and channel
/// every two seconds; the excess is answered but dropped.
async fn typing(State(state): State<AppState>, request: Authed<TypingRequest>) -> Result<Json<Done>, ApiError> {
    let user = request.caller.user()?;
    let channel = request.body.channel_name.ok_or_else(|| ApiError::bad_request("channel_name is required"))?;
    state.store.member_access(&channel, user).await?;
    if state.typing.pass(&(user.clone(), channel.clone())) {
        state.store.typing(&channel, user).await?;
    }
    Ok(Json(Done::success()))
}

#[tracing::instrument(level = "debug", skip_all, fields(channel = %request.body.channel_name))]
async fn mark_read(
    State(state): State<AppState>,
    request: Authed<MarkChannelRead>,
) -> Result<Json<ChannelMarkedRead>, ApiError> {
    let user = request.caller.user()?;
    let MarkChannelRead { channel_name, up_to } = request.body;
    state.store.member_access(&channel_name, user).await?;
    let last_read = state.store.mark_read(&channel_name, user, up_to).await?;
    Ok(Json(ChannelMarkedRead { status: Status::Success, channel: channel_name, last_read }))
}

#[tracing::instrument(level = "debug", skip_all, fields(channel = %request.body.channel_name))]
async fn set_topic(State(state): State<AppState>, request: Authed<SetTopic>) -> Result<Json<Ack>, ApiError> {
    let user = request.caller.user()?;
    let SetTopic { channel_name, topic } = request.body;
    let topic = topic.trim();
    let chars = topic.chars().count();
    if chars > MAX_TOPIC_CHARS {
        return Err(ApiError::bad_request(format!("topic is {chars} characters long; the limit is {MAX_TOPIC_CHARS}")));
    }
    if topic.chars().any(char::is_control) {
        return Err(ApiError::bad_request("topic contains control characters"));
    }
    state.channel_messages.check(user)?;
    state.store.member_access(&channel_name, user).await?;
    state.store.set_topic(&channel_name, user, topic).await?;
    Ok(Json(Ack::success(format!("Topic of {channel_name} set"))))
}

#[tracing::instrument(level = "debug", skip_all, fields(channel = %request.body.channel_name))]
async fn invite(State(state): State<AppState>, request: Authed<Invite>) -> Result<Json<Ack>, ApiError> {
    let user = request.caller.user()?;
    let Invite { channel_name, username } = request.body;
    state.channel_messages.check(user)?;
    let message = if state.store.invite(&channel_name, user, &username).await? {
        format!("{username} joined {channel_name}")
    } else {
        format!("{username} is a member of {channel_name} already")
    };
    Ok(Json(Ack::success(message)))
}

/// A channel message's channel and id, or 400.
fn channel_message(channel: Option<ChannelName>, id: &str) -> Result<(ChannelName, u64), ApiError> {
    let channel = channel.ok_or_else(|| ApiError::bad_request("channel_name is required"))?;
    let id = id.parse().map_err(|_| ApiError::bad_request("id must be a channel message's number"))?;
    Ok((channel, id))
}
