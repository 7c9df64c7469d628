//! Who is online, and the caller's contacts.

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use kit::body::Input;
use kit::error::ApiError;
use wire::addr::PeerAddr;
use wire::api::{Ack, ConnectPeer, Contact, UserInfo};
use wire::names::Username;

use crate::delivery::Destination;
use crate::hosting::Session;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/get-list", get(online_users))
        .route("/connect-peer", post(connect_peer))
        .route("/get-connected-peers", get(contacts))
}

/// Everyone online now, as the tracker sees it.
pub(crate) async fn online(state: &AppState) -> Result<Vec<UserInfo>, ApiError> {
    state.tracker.online().await
}

async fn online_users(State(state): State<AppState>, session: Session) -> Result<Json<Vec<UserInfo>>, ApiError> {
    let mut users = online(&state).await?;
    users.retain(|user| &user.username != session.username());
    Ok(Json(users))
}

/// The one user a request means, and where to find them: by name, or the only user
/// online at `ip:port`. While the tracker cannot be asked, a user the caller knows (a
/// contact, or someone who wrote to them) is looked for where they were last.
pub(crate) async fn resolve(
    state: &AppState,
    caller: &Username,
    ip: Option<&str>,
    port: Option<u16>,
    username: Option<&Username>,
) -> Result<(Username, Destination), ApiError> {
    if let Some(username) = username {
        return match state.tracker.lookup(username).await {
            Ok(location) => {
                Ok((username.clone(), Destination::Located(PeerAddr { ip: location.ip, port: location.port })))
            }
            Err(ApiError::Upstream { status, .. }) if status == 404 => {
                Err(ApiError::NotFound(format!("no user {username} has ever been online")))
            }
            // The tracker cannot say: where the caller last knew them to be, if anywhere.
            Err(err) if cannot_ask(&err) => match state.store.last_known_address(caller, username).await? {
                Some(addr) => Ok((username.clone(), Destination::LastKnown(addr))),
                None => Err(err),
            },
            Err(err) => Err(err),
        };
    }
    let (Some(ip), Some(port)) = (ip, port) else {
        return Err(ApiError::bad_request("say who: `username`, or `ip` and `port`"));
    };
    let addr = PeerAddr::parse(ip, port).map_err(ApiError::BadRequest)?;
    let online = match online(state).await {
        Ok(users) => Some(users),
        Err(err) if cannot_ask(&err) => None,
        Err(err) => return Err(err),
    };
    let mut here: Vec<Username> = online
        .iter()
        .flatten()
        .filter(|user| user.ip == addr.ip && user.port == addr.port)
        .map(|user| user.username.clone())
        .collect();
    if here.is_empty() {
        // Someone the caller knows who was last seen there.
        here = state
            .store
            .contacts(caller)
            .await?
            .into_iter()
            .filter(|contact| contact.ip == addr.ip && contact.port == addr.port)
            .map(|contact| contact.username)
            .collect();
    }
    let destination =
        if online.is_some() { Destination::Located(addr.clone()) } else { Destination::LastKnown(addr.clone()) };
    match here.len() {
        0 if online.is_none() => {
            Err(ApiError::Unavailable(format!("tracker is unreachable, and nobody you know was at {addr}")))
        }
        0 => Err(ApiError::NotFound(format!("nobody is online at {addr}"))),
        1 => Ok((here.remove(0), destination)),
        _ => {
            Err(ApiError::bad_request(format!("{} users are online at {addr}; say which with `username`", here.len())))
        }
    }
}

/// Whether an error means the tracker could not be asked (down, slow, failing), as
/// opposed to an answer.
fn cannot_ask(err: &ApiError) -> bool {
    matches!(err, ApiError::Unavailable(_) | ApiError::GatewayTimeout(_) | ApiError::BadGateway(_))
}

/// Adds a contact once their peer answers.
async fn connect_peer(
    State(state): State<AppState>,
    session: Session,
    Input(request): Input<ConnectPeer>,
) -> Result<Json<Ack>, ApiError> {
    let (contact, destination) =
        resolve(&state, session.username(), request.ip.as_deref(), request.port, request.username.as_ref()).await?;
    let addr = destination.addr();
    if *addr != state.me && !state.peers.is_up(addr).await? {
        return Err(ApiError::BadGateway(format!("peer {addr} does not answer")));
    }
    state.store.add_contact(session.username(), &contact, addr).await?;
    tracing::info!(username = %session.username(), %contact, peer = %addr, "contact added");
    Ok(Json(Ack::success(format!("Connected to {addr}"))))
}

/// The caller's contacts, where they are now and whether they are online.
async fn contacts(State(state): State<AppState>, session: Session) -> Result<Json<Vec<Contact>>, ApiError> {
    let mut contacts = state.store.contacts(session.username()).await?;
    // The tracker being down only costs the online marks.
    let online: HashMap<Username, UserInfo> =
        online(&state).await.unwrap_or_default().into_iter().map(|user| (user.username.clone(), user)).collect();
    for contact in &mut contacts {
        if let Some(now) = online.get(&contact.username) {
            contact.online = true;
            contact.ip.clone_from(&now.ip);
            contact.port = now.port;
        }
    }
    Ok(Json(contacts))
}
