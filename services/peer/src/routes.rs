//! The peer's routes, one module per resource.

mod account;
mod channels;
mod direct_edits;
mod events;
mod messages;
mod pages;
mod people;
mod search;

use axum::Router;

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    pages::router()
        .merge(account::router())
        .merge(channels::router())
        .merge(people::router())
        .merge(messages::router())
        .merge(direct_edits::router())
        .merge(events::router())
        .merge(search::router())
}
