//! `POST /search`: full-text search of the caller's channels (asked of the tracker,
//! with their session token, so it answers for their memberships) and of their direct
//! messages (this peer's store), merged newest first.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use kit::body::Input;
use kit::error::ApiError;
use kit::search::SearchQuery;
use wire::api::{DirectMessage, SearchHit, SearchRequest, SearchResults, Status};
use wire::names::Username;

use crate::hosting::Session;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/search", post(search))
}

#[tracing::instrument(level = "debug", skip_all, fields(user = %session.username()))]
async fn search(
    State(state): State<AppState>,
    session: Session,
    Input(request): Input<SearchRequest>,
) -> Result<Json<SearchResults>, ApiError> {
    state.searches.check(session.username())?;
    let query = SearchQuery::parse(&request.q).map_err(|err| ApiError::bad_request(err.0))?;
    let limit = kit::search::limit(request.limit).map_err(|err| ApiError::bad_request(err.0))?;
    if request.channel_name.is_some() && request.with.is_some() {
        return Err(ApiError::bad_request("search a channel (channel_name) or a conversation (with), not both"));
    }
    let user = session.username();
    let channels = async {
        if request.with.is_some() {
            return Ok(Vec::new());
        }
        let asked = SearchRequest { limit: Some(limit), ..request.clone() };
        state.tracker.search(&session.token, &asked).await.map(|found| found.results)
    };
    let direct = async {
        if request.channel_name.is_some() {
            return Ok(Vec::new());
        }
        let found = state.store.search(user, &query, request.with.as_ref(), limit).await?;
        Ok::<_, ApiError>(found.into_iter().map(|message| direct_hit(user, &query, message)).collect())
    };
    let (channels, direct) = tokio::try_join!(channels, direct)?;
    Ok(Json(SearchResults { status: Status::Success, results: merge(channels, direct, limit) }))
}

fn direct_hit(user: &Username, query: &SearchQuery, message: DirectMessage) -> SearchHit {
    let with = if message.username == *user { message.to } else { message.username.clone() };
    SearchHit::Direct {
        snippet: query.snippet(message.message.as_str()),
        with,
        id: message.id,
        username: message.username,
        ts: message.ts,
    }
}

/// Both lists, each newest first, as one: newest first, at most `limit`.
fn merge(channels: Vec<SearchHit>, direct: Vec<SearchHit>, limit: u64) -> Vec<SearchHit> {
    let mut results: Vec<SearchHit> = channels.into_iter().chain(direct).collect();
    results.sort_by_key(|hit| std::cmp::Reverse(hit.ts()));
    results.truncate(limit as usize);
    results
}
