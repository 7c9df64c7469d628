//! [`TrackerClient`]: every tracker route the peer calls, as one method each.
//!
//! Calls for the peer itself are signed with the cluster key; channel calls relayed
//! for a user carry the user's session token, so the tracker checks it itself.

use kit::client::Client;
use kit::client::endpoints::Endpoints;
use kit::error::ApiError;
use reqwest::Response;
use wire::addr::PeerAddr;
use wire::api::{
    Ack, ActivityReport, ChannelHistory, ChannelList, ChannelMarkedRead, ChannelRequest, DeleteMessage, Deleted, Done,
    EditMessage, Edited, HistoryRequest, Invite, Location, MarkChannelRead, MessageStored, PeerRegistration, React,
    Reacted, ReleaseUser, RevokedSession, RevokedSessions, SearchRequest, SearchResults, SendChannelMessage, SetTopic,
    TypingRequest, UserInfo,
};
use wire::names::Username;
use wire::routes::tracker as routes;

/// The tracker, at every configured instance, speaking for the peer at `me`. Cloning
/// is a reference-count bump.
#[derive(Clone)]
pub struct TrackerClient {
    endpoints: Endpoints,
    client: Client,
    me: PeerAddr,
}

impl TrackerClient {
    pub fn new(endpoints: Endpoints, client: Client, me: PeerAddr) -> Self {
        Self { endpoints, client, me }
    }

    /// The configured instances; the push stream moves between them itself.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    // === the peer in the pool ===

    /// Joins the pool.
    pub async fn register(&self) -> Result<(), ApiError> {
        self.signed_post::<Done, _>(routes::REGISTER_PEER_POOL, &self.registration()).await.map(drop)
    }

    /// Says the peer is still alive; 404 when the tracker does not know it.
    pub async fn heartbeat(&self) -> Result<(), ApiError> {
        self.signed_post::<Done, _>(routes::HEARTBEAT, &self.registration()).await.map(drop)
    }

    /// Leaves the pool at once.
    pub async fn leave(&self) -> Result<(), ApiError> {
        self.signed_post::<Done, _>(routes::LEAVE_PEER_POOL, &self.registration()).await.map(drop)
    }

    /// Opens the push stream for this peer, resuming after the channel message
    /// `last_id` when given. The reply is passed on as it came (a 404 means the
    /// tracker does not know this peer).
    pub async fn peer_stream(&self, last_id: Option<u64>) -> Result<Response, ApiError> {
        let port = self.me.port.to_string();
        self.endpoints
            .send(routes::PEER_STREAM, |mut url| {
                url.query_pairs_mut().append_pair("ip", &self.me.ip).append_pair("port", &port);
                let request = self.client.signed_stream(url);
                match last_id {
                    Some(id) => request.header("last-event-id", id.to_string()),
                    None => request,
                }
            })
            .await
    }

    // === the users hosted here ===

    /// Says this peer hosts `user`: because their request just arrived, or
    /// (`reclaim`) because it hosted them before (409 when they moved since).
    pub async fn submit_info(&self, user: &Username, reclaim: bool) -> Result<(), ApiError> {
        let info =
            UserInfo { ip: self.me.ip.clone(), port: self.me.port, username: user.clone(), active: false, reclaim };
        self.signed_post::<Done, _>(routes::SUBMIT_INFO, &info).await.map(drop)
    }

    /// Says whether `user` has the chat open.
    pub async fn presence(&self, user: &Username, active: bool) -> Result<(), ApiError> {
        let report = ActivityReport { ip: self.me.ip.clone(), port: self.me.port, username: user.clone(), active };
        self.endpoints.call_ok(routes::PRESENCE, |url| self.client.signed_post(url, &report)).await
    }

    /// Says this peer stopped hosting `user`.
    pub async fn release(&self, user: &Username) -> Result<(), ApiError> {
        let release = ReleaseUser { ip: self.me.ip.clone(), port: self.me.port, username: user.clone() };
        self.endpoints.call_ok(routes::RELEASE_USER, |url| self.client.signed_post(url, &release)).await
    }

    /// Tells the tracker about sessions ended here; the reply is every session ended
    /// anywhere after the cursor `since` (all, without one), and the next cursor.
    pub async fn revoke_sessions(
        &self,
        ended: &[RevokedSession],
        since: Option<String>,
    ) -> Result<RevokedSessions, ApiError> {
        let body = RevokedSessions { sessions: ended.to_vec(), since, cursor: None };
        self.signed_post(routes::REVOKE_SESSIONS, &body).await
    }

    /// The channels `user` joined.
    pub async fn channels_of(&self, user: &Username) -> Result<ChannelList, ApiError> {
        self.endpoints
            .call_read(routes::GET_JOINED_CHANNELS, |mut url| {
                url.query_pairs_mut().append_pair("username", user.as_str());
                self.client.signed_get(url)
            })
            .await
    }

    // === the directory ===

    /// Where `user` is hosted (or was last); 404 when they have never been online.
    pub async fn lookup(&self, user: &Username) -> Result<Location, ApiError> {
        self.endpoints
            .call_read(routes::LOOKUP, |mut url| {
                url.query_pairs_mut().append_pair("username", user.as_str());
                self.client.signed_get(url)
            })
            .await
    }

    /// Everyone online now.
    pub async fn online(&self) -> Result<Vec<UserInfo>, ApiError> {
        self.endpoints.call_read(routes::GET_LIST, |url| self.client.signed_get(url)).await
    }

    // === channels, for the user whose session token is given ===

    pub async fn all_channels(&self, token: &str) -> Result<ChannelList, ApiError> {
        self.endpoints.call_read(routes::GET_ALL_CHANNELS, |url| self.client.user_get(url, token)).await
    }

    pub async fn joined_channels(&self, token: &str) -> Result<ChannelList, ApiError> {
        self.endpoints.call_read(routes::GET_JOINED_CHANNELS, |url| self.client.user_get(url, token)).await
    }

    pub async fn create_channel(&self, token: &str, request: &ChannelRequest) -> Result<Ack, ApiError> {
        self.user_post(routes::CREATE_CHANNEL, token, request).await
    }

    pub async fn join_channel(&self, token: &str, request: &ChannelRequest) -> Result<Ack, ApiError> {
        self.user_post(routes::JOIN_CHANNEL, token, request).await
    }

    pub async fn leave_channel(&self, token: &str, request: &ChannelRequest) -> Result<Ack, ApiError> {
        self.user_post(routes::LEAVE_CHANNEL, token, request).await
    }

    /// A page of history: a read, so it moves on to another tracker after any failure.
    pub async fn channel_messages(&self, token: &str, request: &HistoryRequest) -> Result<ChannelHistory, ApiError> {
        self.endpoints.call_read(routes::GET_CHANNEL_MESSAGES, |url| self.client.user_post(url, token, request)).await
    }

    pub async fn send_channel_message(
        &self,
        token: &str,
        message: &SendChannelMessage,
    ) -> Result<MessageStored, ApiError> {
        self.user_post(routes::SEND_CHANNEL_MESSAGE, token, message).await
    }

    pub async fn edit_message(&self, token: &str, request: &EditMessage) -> Result<Edited, ApiError> {
        self.user_post(routes::EDIT_MESSAGE, token, request).await
    }

    pub async fn delete_message(&self, token: &str, request: &DeleteMessage) -> Result<Deleted, ApiError> {
        self.user_post(routes::DELETE_MESSAGE, token, request).await
    }

    pub async fn react(&self, token: &str, request: &React) -> Result<Reacted, ApiError> {
        self.user_post(routes::REACT, token, request).await
    }

    pub async fn typing(&self, token: &str, request: &TypingRequest) -> Result<Done, ApiError> {
        self.user_post(routes::TYPING, token, request).await
    }

    pub async fn mark_channel_read(
        &self,
        token: &str,
        request: &MarkChannelRead,
    ) -> Result<ChannelMarkedRead, ApiError> {
        self.user_post(routes::MARK_READ, token, request).await
    }

    pub async fn set_topic(&self, token: &str, request: &SetTopic) -> Result<Ack, ApiError> {
        self.user_post(routes::SET_TOPIC, token, request).await
    }

    pub async fn invite(&self, token: &str, request: &Invite) -> Result<Ack, ApiError> {
        self.user_post(routes::INVITE, token, request).await
    }

    /// Full-text search of the user's channels: a read, so it moves on to another
    /// tracker after any failure.
    pub async fn search(&self, token: &str, request: &SearchRequest) -> Result<SearchResults, ApiError> {
        self.endpoints.call_read(routes::SEARCH, |url| self.client.user_post(url, token, request)).await
    }

    // === helpers ===

    fn registration(&self) -> PeerRegistration {
        PeerRegistration { ip: self.me.ip.clone(), port: self.me.port, username: None }
    }

    async fn signed_post<T, B>(&self, route: &str, body: &B) -> Result<T, ApiError>
    where
        T: serde::de::DeserializeOwned,
        B: serde::Serialize + ?Sized,
    {
        self.endpoints.call(route, |url| self.client.signed_post(url, body)).await
    }

    async fn user_post<T, B>(&self, route: &str, token: &str, body: &B) -> Result<T, ApiError>
    where
        T: serde::de::DeserializeOwned,
        B: serde::Serialize + ?Sized,
    {
        self.endpoints.call(route, |url| self.client.user_post(url, token, body)).await
    }
}
