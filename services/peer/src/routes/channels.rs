//! Channel routes, relayed to the tracker on the user's behalf (their session token
//! goes along as a bearer token, so the tracker checks it itself).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kit::body::Input;
use kit::error::ApiError;
use wire::api::{Ack, ChannelHistory, ChannelList, ChannelRequest, HistoryRequest, MessageStored, SendChannelMessage};

use crate::AppState;
use crate::sessions::Session;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/get-all-channels", get(all_channels))
        .route("/get-joined-channels", get(joined_channels))
        .route("/create-channel", post(create_channel))
        .route("/join-channel", post(join_channel))
        .route("/leave-channel", post(leave_channel))
        .route("/get-channel-messages", post(channel_messages))
        .route("/send-channel-message", post(send_channel_message))
}

async fn all_channels(State(state): State<AppState>, session: Session) -> Result<Json<ChannelList>, ApiError> {
    let request = state.client.user_get(state.tracker_url("get-all-channels"), &session.token);
    kit::client::call(request, "tracker").await.map(Json)
}

async fn joined_channels(State(state): State<AppState>, session: Session) -> Result<Json<ChannelList>, ApiError> {
    let request = state.client.user_get(state.tracker_url("get-joined-channels"), &session.token);
    let list: ChannelList = kit::client::call(request, "tracker").await?;
    state.sessions.set_joined(session.username(), list.channels.iter().cloned());
    Ok(Json(list))
}

async fn create_channel(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<ChannelRequest>,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    let request = state.client.user_post(state.tracker_url("create-channel"), &session.token, &body);
    let ack = kit::client::call(request, "tracker").await?;
    state.sessions.update_joined(session.username(), &body.channel_name, true);
    Ok((StatusCode::CREATED, Json(ack)))
}

async fn join_channel(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<ChannelRequest>,
) -> Result<Json<Ack>, ApiError> {
    let request = state.client.user_post(state.tracker_url("join-channel"), &session.token, &body);
    let ack = kit::client::call(request, "tracker").await?;
    state.sessions.update_joined(session.username(), &body.channel_name, true);
    Ok(Json(ack))
}

async fn leave_channel(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<ChannelRequest>,
) -> Result<Json<Ack>, ApiError> {
    let request = state.client.user_post(state.tracker_url("leave-channel"), &session.token, &body);
    let ack = kit::client::call(request, "tracker").await?;
    state.sessions.update_joined(session.username(), &body.channel_name, false);
    Ok(Json(ack))
}

async fn channel_messages(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<HistoryRequest>,
) -> Result<Json<ChannelHistory>, ApiError> {
    let request = state.client.user_post(state.tracker_url("get-channel-messages"), &session.token, &body);
    kit::client::call(request, "tracker").await.map(Json)
}

async fn send_channel_message(
    State(state): State<AppState>,
    session: Session,
    Input(body): Input<SendChannelMessage>,
) -> Result<Json<MessageStored>, ApiError> {
    let request = state.client.user_post(state.tracker_url("send-channel-message"), &session.token, &body);
    kit::client::call(request, "tracker").await.map(Json)
}
