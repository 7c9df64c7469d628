//! Route paths, one constant each, used by the router that serves a route and by the
//! client that calls it, so the two cannot drift apart.
//!
//! Only routes that one service calls on another live here; routes only browsers call
//! stay where they are served.

/// The tracker's routes.
pub mod tracker {
    /// `POST`, signed: a peer joins the pool ([`crate::api::PeerRegistration`]).
    pub const REGISTER_PEER_POOL: &str = "/register-peer-pool";
    /// `POST`, signed: a peer is still alive.
    pub const HEARTBEAT: &str = "/heartbeat";
    /// `POST`, signed: a peer stops and leaves the pool at once.
    pub const LEAVE_PEER_POOL: &str = "/leave-peer-pool";
    /// `GET`, signed: the tracker's push to one peer (Server-Sent Events).
    pub const PEER_STREAM: &str = "/peer-stream";
    /// `GET`: the live peers.
    pub const GET_PEERS: &str = "/get-peers";
    /// `GET`: where a user is hosted.
    pub const LOOKUP: &str = "/lookup";
    /// `POST`, signed: a user's chat opened or closed on a peer.
    pub const PRESENCE: &str = "/presence";
    /// `POST`, signed: a peer stops hosting a user.
    pub const RELEASE_USER: &str = "/release-user";
    /// `POST`, signed: sessions ended (log-outs), shared with every service.
    pub const REVOKE_SESSIONS: &str = "/revoke-sessions";
    /// `POST`: the original's log-in, which picks a peer.
    pub const LOGIN: &str = "/login";
    /// `POST`: the original's user registration with the tracker.
    pub const SUBMIT_INFO: &str = "/submit-info";
    /// `GET`: the users online.
    pub const GET_LIST: &str = "/get-list";
    /// `GET`: every channel.
    pub const GET_ALL_CHANNELS: &str = "/get-all-channels";
    /// `GET`: the caller's channels.
    pub const GET_JOINED_CHANNELS: &str = "/get-joined-channels";
    /// `POST`: join a channel.
    pub const JOIN_CHANNEL: &str = "/join-channel";
    /// `POST`: leave a channel.
    pub const LEAVE_CHANNEL: &str = "/leave-channel";
    /// `POST`: create a channel.
    pub const CREATE_CHANNEL: &str = "/create-channel";
    /// `POST`: post to a channel.
    pub const SEND_CHANNEL_MESSAGE: &str = "/send-channel-message";
    /// `POST`: a page of a channel's history.
    pub const GET_CHANNEL_MESSAGES: &str = "/get-channel-messages";
    /// `POST`: the author edits a channel message.
    pub const EDIT_MESSAGE: &str = "/edit-message";
    /// `POST`: the author deletes a channel message.
    pub const DELETE_MESSAGE: &str = "/delete-message";
    /// `POST`: a member reacts to a channel message.
    pub const REACT: &str = "/react";
    /// `POST`: a member is typing in a channel.
    pub const TYPING: &str = "/typing";
    /// `POST`: a member has read a channel up to a message.
    pub const MARK_READ: &str = "/mark-read";
    /// `POST`: a member sets a channel's topic.
    pub const SET_TOPIC: &str = "/set-topic";
    /// `POST`: a member adds a user to a channel.
    pub const INVITE: &str = "/invite";
    /// `POST`: full-text search of the caller's channels ([`crate::api::SearchRequest`]).
    pub const SEARCH: &str = "/search";
}

/// Auth's routes.
pub mod auth {
    /// `POST`, signed and naming the client: credentials to a session token.
    pub const LOGIN: &str = "/login";
    /// `POST`, signed and naming the client: sign-up.
    pub const REGISTER: &str = "/register";
    /// `POST`: end a session.
    pub const LOGOUT: &str = "/logout";
    /// `GET`: whose a token is.
    pub const SESSION: &str = "/session";
    /// `GET`: what the log-in page offers ([`crate::api::LoginOptions`]); the peers
    /// and the tracker serve it to browsers under the same path.
    pub const LOGIN_OPTIONS: &str = "/login-options";
}

/// A peer's routes that other peers call.
pub mod peer {
    /// `POST`, signed: a direct message for a user hosted there.
    pub const RECEIVE_MESSAGE: &str = "/receive-message";
    /// `POST`, signed: a page of a moving user's mailbox (embedded storage only).
    pub const IMPORT_MAILBOX: &str = "/import-mailbox";
    /// `POST`, signed: a change to a direct message (edit, deletion, reaction) or a
    /// typing notice, for a user hosted there.
    pub const RECEIVE_CHANGE: &str = "/receive-change";
}

/// What a service serves to other services and to the metrics scraper only: its
/// signed routes and `/metrics`. The proxy's public vhosts deny these paths
/// (`deny` in `proxy.conf`), so they are reached on the internal network alone.
pub mod internal {
    /// Every service's Prometheus metrics.
    pub const METRICS: &str = "/metrics";

    /// A peer's: direct messages and mailboxes from other peers.
    pub const PEER: &[&str] =
        &[METRICS, super::peer::RECEIVE_MESSAGE, super::peer::IMPORT_MAILBOX, super::peer::RECEIVE_CHANGE];

    /// The tracker's: the peer pool, its push stream, presence and session ends.
    pub const TRACKER: &[&str] = &[
        METRICS,
        super::tracker::REGISTER_PEER_POOL,
        super::tracker::HEARTBEAT,
        super::tracker::LEAVE_PEER_POOL,
        super::tracker::PEER_STREAM,
        super::tracker::PRESENCE,
        super::tracker::RELEASE_USER,
        super::tracker::REVOKE_SESSIONS,
    ];

    /// Auth's. Its `/login` and `/register` stay public: API clients log in there
    /// directly (the peers and the tracker relay the browsers' log-ins, signed).
    pub const AUTH: &[&str] = &[METRICS];

    /// The `deny` statement for a vhost in front of a service with these paths.
    pub fn deny_statement(paths: &[&str]) -> String {
        format!("deny {};", paths.join(" "))
    }
}
