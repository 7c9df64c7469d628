//! [`PeerClient`]: calls to other peers, signed with the cluster key.

use std::time::Duration;

use kit::client::Client;
use kit::error::ApiError;
use reqwest::Url;
use wire::addr::PeerAddr;
use wire::api::{Ack, DirectChange, DirectMessage, MailboxTransfer};
use wire::routes::peer as routes;

/// How long a peer has to answer a health check before a contact is refused.
const HEALTH_PATIENCE: Duration = Duration::from_secs(3);

/// Other peers, each named by the call. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct PeerClient {
    client: Client,
}

impl PeerClient {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Hands a direct message to the peer hosting its recipient.
    pub async fn receive_message(&self, to: &PeerAddr, message: &DirectMessage) -> Result<(), ApiError> {
        let url = route(to, routes::RECEIVE_MESSAGE)?;
        kit::client::call::<Ack>(self.client.signed_post(url, message), &service(to)).await.map(drop)
    }

    /// Hands a change to a direct message (or a typing notice) to the peer hosting
    /// the other user of the conversation.
    pub async fn receive_change(&self, to: &PeerAddr, change: &DirectChange) -> Result<(), ApiError> {
        let url = route(to, routes::RECEIVE_CHANGE)?;
        kit::client::call::<Ack>(self.client.signed_post(url, change), &service(to)).await.map(drop)
    }

    /// Hands one page of a moving user's mailbox to their new home.
    pub async fn import_mailbox(&self, to: &PeerAddr, page: &MailboxTransfer) -> Result<(), ApiError> {
        let url = route(to, routes::IMPORT_MAILBOX)?;
        kit::client::call::<Ack>(self.client.signed_post(url, page), &service(to)).await.map(drop)
    }

    /// Whether the peer at `addr` answers its health check in time.
    pub async fn is_up(&self, addr: &PeerAddr) -> Result<bool, ApiError> {
        let request = self.client.http().get(route(addr, "/healthz")?).timeout(HEALTH_PATIENCE);
        let answered = kit::client::send(request, &service(addr)).await;
        Ok(answered.is_ok_and(|response| response.status().is_success()))
    }
}

/// `route` on the peer at `addr`. Addresses are validated when parsed, so this fails
/// only for one that bypassed [`PeerAddr::parse`]: a bad request, not our fault.
fn route(addr: &PeerAddr, route: &str) -> Result<Url, ApiError> {
    Url::parse(&format!("{}{route}", addr.url()))
        .map_err(|err| ApiError::BadRequest(format!("`{addr}` is not a peer address: {err}")))
}

fn service(addr: &PeerAddr) -> String {
    format!("peer {addr}")
}
