//! The tracker's routes, one module per resource.

pub(crate) mod channels;
pub(crate) mod chat;
pub(crate) mod login;
pub(crate) mod peers;
pub(crate) mod search;
pub(crate) mod stream;

use axum::Router;
use kit::error::ApiError;

use crate::state::AppState;
use crate::store::StoreError;

pub(crate) fn router() -> Router<AppState> {
    channels::router()
        .merge(chat::router())
        .merge(peers::router())
        .merge(login::router())
        .merge(stream::router())
        .merge(search::router())
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NoChannel(_) => ApiError::NotFound(err.to_string()),
            StoreError::ChannelExists(_) => ApiError::Conflict(err.to_string()),
            StoreError::NotMember(_) => ApiError::Forbidden(err.to_string()),
            StoreError::NotOnAnyPeer => ApiError::Conflict(err.to_string()),
            StoreError::NotAMember(_) | StoreError::NotAuthor(_) => ApiError::Forbidden(err.to_string()),
            StoreError::NoMessage(..) => ApiError::NotFound(err.to_string()),
            StoreError::Deleted(_) | StoreError::TooManyReactions(_) => ApiError::Conflict(err.to_string()),
            StoreError::Db(_)
            | StoreError::Pg(_)
            | StoreError::Batch(_)
            | StoreError::Corrupt(_)
            | StoreError::Closed => ApiError::Internal(err.into()),
        }
    }
}
