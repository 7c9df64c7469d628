//! Channel routes, relayed to the tracker on the user's behalf (their session token
//! goes along as a bearer token, so the tracker checks it itself).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kit::body::Input;
use kit::error::ApiError;
use wire::api::{
    Ack, ChannelHistory, ChannelList, ChannelRequest, HistoryRequest, Invite, MessageStored, SendChannelMessage,
    SetTopic,
};

use crate::hosting::Session;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/get-all-channels", get(all_channels))
        .route("/get-joined-channels", get(joined_channels))
        .route("/create-channel", post(create_channel))
        .route("/join-channel", post(join_channel))
        .route("/leave-channel", post(leave_channel))
        .route("/get-channel-messages", post(channel_messages))
        .route("/send-channel-message", post(send_channel_message))
        .route("/set-topic", post(set_topic))
        .route("/invite", post(invite))
}

async fn all_channels(State(state): State<AppState>, session: Session) -> Result<Json<ChannelList>, ApiError> {
    state.tracker.all_channels(&session.token).await.map(Json)
}

async fn joined_channels(State(state): State<AppState>, session: Session) -> Result<Json<ChannelList>, ApiError> {
    let list = state.tracker.joined_channels(&session.token).await?;
    state.sessions.set_joined(session.username(), list.channels.iter().cloned());
    Ok(Json(list))
}

async fn create_channel(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<ChannelRequest>,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    let ack = state.tracker.create_channel(&session.token, &body).await?;
    state.sessions.update_joined(session.username(), &body.channel_name, true);
    Ok((StatusCode::CREATED, Json(ack)))
}

async fn join_channel(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<ChannelRequest>,
) -> Result<Json<Ack>, ApiError> {
    let ack = state.tracker.join_channel(&session.token, &body).await?;
    state.sessions.update_joined(session.username(), &body.channel_name, true);
    Ok(Json(ack))
}

async fn leave_channel(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<ChannelRequest>,
) -> Result<Json<Ack>, ApiError> {
    let ack = state.tracker.leave_channel(&session.token, &body).await?;
    state.sessions.update_joined(session.username(), &body.channel_name, false);
    Ok(Json(ack))
}

async fn channel_messages(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<HistoryRequest>,
) -> Result<Json<ChannelHistory>, ApiError> {
    state.tracker.channel_messages(&session.token, &body).await.map(Json)
}

async fn send_channel_message(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<SendChannelMessage>,
) -> Result<Json<MessageStored>, ApiError> {
    state.tracker.send_channel_message(&session.token, &body).await.map(Json)
}

async fn set_topic(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<SetTopic>,
) -> Result<Json<Ack>, ApiError> {
    state.tracker.set_topic(&session.token, &body).await.map(Json)
}

async fn invite(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<Invite>,
) -> Result<Json<Ack>, ApiError> {
    state.tracker.invite(&session.token, &body).await.map(Json)
}
