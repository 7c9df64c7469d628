//! Channels: list, create, join, leave, history, post.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kit::error::ApiError;
use wire::api::{
    Ack, ChannelHistory, ChannelList, ChannelRequest, ChannelView, HistoryRequest, MessageStored, SendChannelMessage,
    Status,
};

use serde::Deserialize;
use wire::names::{ChannelName, Username};
use wire::routes::tracker;

use crate::caller::{Authed, Caller};
use crate::state::AppState;
use crate::store::{DEFAULT_PAGE, StoreError};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(tracker::GET_ALL_CHANNELS, get(all_channels))
        .route(tracker::GET_JOINED_CHANNELS, get(joined_channels))
        .route(tracker::CREATE_CHANNEL, post(create_channel))
        .route(tracker::JOIN_CHANNEL, post(join_channel))
        .route(tracker::LEAVE_CHANNEL, post(leave_channel))
        .route(tracker::GET_CHANNEL_MESSAGES, post(channel_messages))
        .route(tracker::SEND_CHANNEL_MESSAGE, post(send_channel_message))
}

/// Every channel the caller may see: private ones only to their members.
async fn all_channels(State(state): State<AppState>, caller: Caller) -> Result<Json<ChannelList>, ApiError> {
    let channels = match &caller {
        Caller::Service => state.store.channels().await?,
        Caller::User(_) => state.store.visible_channels(caller.user()?).await?,
    };
    Ok(Json(ChannelList { status: Status::Success, channels, summaries: None }))
}

#[derive(Deserialize)]
struct JoinedQuery {
    username: Option<Username>,
}

/// A user's own channels; a peer (signed) asks for a user it hosts with `?username=`.
async fn joined_channels(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<JoinedQuery>, QueryRejection>,
) -> Result<Json<ChannelList>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let user = match (&caller, &query.username) {
        (Caller::Service, Some(user)) => user,
        (Caller::Service, None) => return Err(ApiError::bad_request("a service must say which user: ?username=NAME")),
        (Caller::User(_), _) => caller.user()?,
    };
    // A user's own list carries their read state; a peer only needs the names.
    let summaries = match caller {
        Caller::User(_) => Some(state.store.summaries(user).await?),
        Caller::Service => None,
    };
    Ok(Json(ChannelList { status: Status::Success, channels: state.store.joined(user).await?, summaries }))
}

#[tracing::instrument(level = "debug", skip_all, fields(channel = %request.body.channel_name))]
async fn create_channel(
    State(state): State<AppState>,
    request: Authed<ChannelRequest>,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    let user = request.caller.user()?;
    state.channel_creations.check(user)?;
    // A new name meets the profile of new names; one that looks like an existing
    // channel's (`generaⅼ` beside `general`) is that channel's (409).
    let channel =
        ChannelName::parse_new(request.body.channel_name.as_str()).map_err(|err| ApiError::bad_request(err.0))?;
    state.store.create_channel(&channel, user, request.body.private).await?;
    tracing::info!(%user, private = request.body.private, "channel created");
    Ok((StatusCode::CREATED, Json(Ack::success(format!("Created channel {channel}")))))
}

#[tracing::instrument(level = "debug", skip_all, fields(channel = %request.body.channel_name))]
async fn join_channel(State(state): State<AppState>, request: Authed<ChannelRequest>) -> Result<Json<Ack>, ApiError> {
    let user = request.caller.user()?;
    // A private channel is joined by invitation only, and is absent to others.
    state.store.access(&request.body.channel_name, user).await?;
    state.store.join(&request.body.channel_name, user).await?;
    Ok(Json(Ack::success(format!("Joined channel {}", request.body.channel_name))))
}

#[tracing::instrument(level = "debug", skip_all, fields(channel = %request.body.channel_name))]
async fn leave_channel(State(state): State<AppState>, request: Authed<ChannelRequest>) -> Result<Json<Ack>, ApiError> {
    let user = request.caller.user()?;
    if !state.store.leave(&request.body.channel_name, user).await? {
        return Err(ApiError::NotFound(format!("you are not a member of channel {}", request.body.channel_name)));
    }
    Ok(Json(Ack::success(format!("Left channel {}", request.body.channel_name))))
}

#[tracing::instrument(level = "debug", skip_all, fields(channel = %request.body.channel_name))]
async fn channel_messages(
    State(state): State<AppState>,
    request: Authed<HistoryRequest>,
) -> Result<Json<ChannelHistory>, ApiError> {
    let HistoryRequest { channel_name, before, after, limit } = request.body;
    if let Caller::User(_) = request.caller {
        state.store.access(&channel_name, request.caller.user()?).await?;
    }
    let (messages, has_more) = state.store.history(&channel_name, before, after, limit.unwrap_or(DEFAULT_PAGE)).await?;
    let members = state.store.roster(&channel_name).await?;
    Ok(Json(ChannelHistory {
        status: Status::Success,
        messages: ChannelView { channel: channel_name, members, messages, has_more },
    }))
}

#[tracing::instrument(level = "debug", skip_all, fields(channel = %request.body.channel_name))]
async fn send_channel_message(
    State(state): State<AppState>,
    request: Authed<SendChannelMessage>,
) -> Result<Json<MessageStored>, ApiError> {
    let user = request.caller.user()?;
    state.channel_messages.check(user)?;
    let SendChannelMessage { channel_name, message, reply_to } = request.body;
    let stored = match state.store.post_from_home(&channel_name, user, &message, reply_to).await {
        // To a non-member, a private channel is absent (404), a public one needs joining.
        Err(StoreError::NotMember(channel)) => {
            return Err(state
                .store
                .access(&channel, user)
                .await
                .err()
                .unwrap_or(StoreError::NotMember(channel))
                .into());
        }
        stored => stored?,
    };
    state.metrics.messages_stored.inc();
    tracing::debug!(id = stored.id, "channel message stored");
    Ok(Json(MessageStored {
        status: Status::Success,
        message: format!("Message sent to {channel_name}"),
        id: stored.id,
        ts: stored.ts,
    }))
}
