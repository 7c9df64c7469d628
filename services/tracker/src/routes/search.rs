//! `POST /search`: full-text search of the caller's channels (a peer relays it for
//! the user whose session token it carries, and merges in their direct messages).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use kit::error::ApiError;
use kit::search::SearchQuery;
use wire::api::{SearchHit, SearchRequest, SearchResults, Status};
use wire::names::{ChannelName, Username};
use wire::routes::tracker;

use crate::caller::Authed;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(tracker::SEARCH, post(search))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn search(
    State(state): State<AppState>,
    request: Authed<SearchRequest>,
) -> Result<Json<SearchResults>, ApiError> {
    let user = request.caller.user()?;
    let SearchRequest { q, channel_name, with: _, limit } = request.body;
    let query = SearchQuery::parse(&q).map_err(|err| ApiError::bad_request(err.0))?;
    let limit = kit::search::limit(limit).map_err(|err| ApiError::bad_request(err.0))?;
    if let Some(channel) = &channel_name {
        check_readable(&state, channel, user).await?;
    }
    let messages = state.store.search(user, &query, channel_name.as_ref(), limit).await?;
    let results = messages
        .into_iter()
        .map(|message| SearchHit::Channel {
            snippet: query.snippet(message.text.as_str()),
            channel: message.channel,
            id: message.id,
            username: message.username,
            ts: message.ts,
        })
        .collect();
    Ok(Json(SearchResults { status: Status::Success, results }))
}

/// Only members search a channel: 404 for a channel that does not exist or is
/// private and not theirs (invisible, as in every route), 403 for a public one they
/// are not in.
async fn check_readable(state: &AppState, channel: &ChannelName, user: &Username) -> Result<(), ApiError> {
    Ok(state.store.member_access(channel, user).await?)
}
