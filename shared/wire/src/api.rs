//! Request and reply bodies of every route.
//!
//! Requests are read from url-encoded forms (whatever their `Content-Type`) or JSON;
//! replies are JSON. Success replies carry `"status": "success"`, errors are
//! [`ErrorBody`] with a 4xx or 5xx status code.

mod auth;
mod channels;
mod chat;
mod peer;
mod replies;
mod search;
#[cfg(test)]
mod tests;
mod tracker;

pub use auth::{Credentials, DemoAccount, LoginOptions, LoginState, SessionGrant, SessionInfo};
pub use channels::{
    ChannelHistory, ChannelList, ChannelMarkedRead, ChannelMessage, ChannelRequest, ChannelSummary, ChannelView,
    HistoryRequest, Invite, MAX_REACTIONS, MAX_TOPIC_CHARS, MAX_UNREAD_COUNT, MarkChannelRead, Member, MessageStored,
    SendChannelMessage, SetTopic,
};
pub use chat::{
    DeleteMessage, Deleted, DirectChange, DirectChangeKind, EditMessage, Edited, MessageKey, REPLY_PREVIEW_CHARS,
    React, Reacted, Reaction, ReplyPreview, TypingRequest,
};
pub use peer::{
    Broadcast, BroadcastSent, ConnectPeer, Contact, Conversation, ConversationSummary, Conversations, DirectMessage,
    DirectSent, MailboxTransfer, MarkRead, MarkedRead, SendPeer, SubmitUsername,
};
pub use replies::{Ack, Done, ErrorBody, Status};
pub use search::{
    DEFAULT_SEARCH_LIMIT, MAX_QUERY_CHARS, MAX_SEARCH_LIMIT, SearchHit, SearchRequest, SearchResults, Segment,
};
pub use tracker::{
    ActivityReport, Location, LoginRedirect, PeerRegistration, PeerStatus, ReleaseUser, RevokedSession,
    RevokedSessions, UserInfo,
};
