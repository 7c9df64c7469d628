//! Request and reply bodies of every route.
//!
//! Requests are read from url-encoded forms (whatever their `Content-Type`) or JSON;
//! replies are JSON. Success replies carry `"status": "success"`, errors are
//! [`ErrorBody`] with a 4xx or 5xx status code.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::de;
use crate::names::{ChannelName, MessageText, Username};

// === Common ===

/// The `status` field of every reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Error,
}

/// The body of every error reply: `{"status": "error", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub status: Status,
    pub message: String,
}

impl ErrorBody {
    pub fn new(message: impl Into<String>) -> Self {
        Self { status: Status::Error, message: message.into() }
    }
}

/// A success with a human-readable message: `{"status": "success", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub status: Status,
    pub message: String,
}

impl Ack {
    pub fn success(message: impl Into<String>) -> Self {
        Self { status: Status::Success, message: message.into() }
    }
}

/// A bare success: `{"status": "success"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub status: Status,
}

impl Done {
    pub fn success() -> Self {
        Self { status: Status::Success }
    }
}

// === Auth service ===

/// `POST /login` and `POST /register` on auth, and `POST /login` on the tracker and
/// the peers. Debug never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// The reply of auth's `POST /login`: a signed session token and when it expires.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionGrant {
    pub status: Status,
    pub username: Username,
    pub token: String,
    /// Unix time, in seconds, after which the token is refused.
    pub expires_at: u64,
}

impl fmt::Debug for SessionGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionGrant")
            .field("username", &self.username)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Who a valid session belongs to: auth's `GET /session`, the peer's `GET /me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub status: Status,
    pub username: Username,
    pub expires_at: u64,
    /// The peer that hosts the session (`ip:port`), when a peer answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// What the log-in page offers (`GET /login-options` on auth, the peers and the
/// tracker): sign-up, and the demo accounts when the server has them (development
/// only; none in a deployment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOptions {
    /// Whether `POST /register` signs new users up.
    pub sign_up: bool,
    /// The demo accounts present with their public passwords.
    #[serde(default)]
    pub demo_accounts: Vec<DemoAccount>,
}

/// A demo account and its public password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoAccount {
    pub username: String,
    pub password: String,
}

// === Tracker: channels ===

/// `POST /join-channel`, `/leave-channel`, `/create-channel`. The original page also
/// sends `peer_ip`, `peer_port` and `username`; they are ignored, because the session
/// says who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRequest {
    pub channel_name: ChannelName,
}

/// `POST /get-channel-messages`: one page of history, the latest by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    pub channel_name: ChannelName,
    /// Only messages with an id below this one (scrolling back).
    #[serde(default, deserialize_with = "de::opt_u64", skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// Only messages with an id above this one (catching up).
    #[serde(default, deserialize_with = "de::opt_u64", skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// At most this many messages (default 100, at most 500).
    #[serde(default, deserialize_with = "de::opt_u64", skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// `GET /get-all-channels` and `GET /get-joined-channels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelList {
    pub status: Status,
    pub channels: Vec<ChannelName>,
}

/// `POST /get-channel-messages`. The whole channel sits under `messages`, as in the
/// original, so its page reads `messages.messages[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelHistory {
    pub status: Status,
    pub messages: ChannelView,
}

/// One channel: its members and one page of its history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelView {
    pub channel: ChannelName,
    pub members: Vec<Member>,
    pub messages: Vec<ChannelMessage>,
    /// Whether the page was cut at the limit: more messages exist before it (latest
    /// page, or `before`) or after it (`after`).
    #[serde(default)]
    pub has_more: bool,
}

/// A channel member and, while online, the peer that hosts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub username: Username,
    pub ip: Option<String>,
    pub port: Option<u16>,
    pub online: bool,
}

/// One stored channel message. `id` orders a channel's history: every reader sees
/// the same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMessage {
    pub id: u64,
    pub channel: ChannelName,
    pub sender_ip: String,
    pub sender_port: u16,
    pub username: Username,
    pub text: MessageText,
    /// Server time of arrival, in milliseconds since the Unix epoch.
    pub ts: u64,
}

/// `POST /send-channel-message`. The original also sends `peer_ip`, `peer_port` and
/// `username`; they are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendChannelMessage {
    pub channel_name: ChannelName,
    pub message: MessageText,
}

/// The reply to a stored message: its id and server timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageStored {
    pub status: Status,
    pub message: String,
    pub id: u64,
    pub ts: u64,
}

// === Tracker: peers and users ===

/// `POST /register-peer-pool` and `POST /heartbeat`, signed with the cluster secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRegistration {
    pub ip: String,
    #[serde(deserialize_with = "de::port")]
    pub port: u16,
    /// The original sends `username=n/a`; it is ignored.
    #[serde(default, skip_serializing)]
    pub username: Option<String>,
}

/// `POST /submit-info` (a user's home peer) and the items of `GET /get-list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub ip: String,
    #[serde(deserialize_with = "de::port")]
    pub port: u16,
    pub username: Username,
    /// In `GET /get-list`: whether the user has the chat open now.
    #[serde(default)]
    pub active: bool,
    /// In `POST /submit-info`: a peer announcing again a user it hosted before (after a
    /// restart, or when the tracker forgot it), not one whose request just arrived. The
    /// tracker refuses it (409) when the user is signed in on another live peer now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reclaim: bool,
}

/// `POST /presence`, signed: a peer says whether a user it hosts has the chat open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityReport {
    pub ip: String,
    #[serde(deserialize_with = "de::port")]
    pub port: u16,
    pub username: Username,
    pub active: bool,
}

/// `POST /release-user`: a peer no longer hosts this user (logout, expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseUser {
    pub ip: String,
    #[serde(deserialize_with = "de::port")]
    pub port: u16,
    pub username: Username,
}

/// One ended session: its id, and when its token would have expired anyway (after
/// which nobody needs to remember it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedSession {
    pub sid: String,
    pub expires_at: u64,
}

/// `POST /revoke-sessions` on the tracker (signed): the sessions a peer ended; the
/// reply is every ended session the tracker knows of, so the two sides agree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedSessions {
    pub sessions: Vec<RevokedSession>,
}

/// Where a user is hosted: `GET /lookup?username=NAME` on the tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub ip: String,
    pub port: u16,
    pub username: Username,
    /// Whether that peer is alive now.
    pub online: bool,
}

/// A live peer in the pool: `GET /get-peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub ip: String,
    pub port: u16,
    /// How many users this peer hosts now.
    pub users: u32,
}

/// The JSON body that comes with the tracker's login redirect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRedirect {
    pub status: Status,
    pub username: Username,
    /// Where the browser goes next: the assigned peer's page.
    pub location: String,
}

// === Peer ===

/// `POST /submit-username`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitUsername {
    pub username: Username,
}

/// `POST /connect-peer`: by address as in the original, or by user name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectPeer {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub ip: Option<String>,
    #[serde(default, deserialize_with = "de::opt_port")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Username>,
}

/// A contact: an item of `GET /get-connected-peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub ip: String,
    pub port: u16,
    pub username: Username,
    #[serde(default)]
    pub online: bool,
}

/// `POST /send-peer`: a direct message to the user at `ip:port`, or to `username`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendPeer {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub ip: Option<String>,
    #[serde(default, deserialize_with = "de::opt_port")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Username>,
    pub message: MessageText,
}

/// `POST /broadcast-peer`: one message to every contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcast {
    pub message: MessageText,
}

/// A direct message, as peers send it to each other (`POST /receive-message`, signed
/// with the cluster secret) and as `GET /get-received-messages` lists it. The field
/// names are the original's; `id`, `to` and `ts` are new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectMessage {
    /// Chosen by the sender's peer; the receiver de-duplicates by it.
    pub id: String,
    pub message: MessageText,
    pub sender_ip: String,
    #[serde(deserialize_with = "de::port")]
    pub sender_port: u16,
    /// The sender.
    pub username: Username,
    /// The recipient.
    pub to: Username,
    /// When the sender's peer accepted it, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// Whether it went to every contact rather than to one user.
    #[serde(default)]
    pub broadcast: bool,
    /// Its place in the reader's mailbox on their peer (for paging); set in replies of
    /// that peer, absent between peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// For the sender's own copies: whether the recipient's peer has it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<bool>,
}

/// `POST /import-mailbox`, signed: a peer hands a user who moved their direct messages
/// (both ways) and contacts, in pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxTransfer {
    pub username: Username,
    pub messages: Vec<DirectMessage>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
}

/// The reply to `POST /send-peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectSent {
    pub status: Status,
    pub message: String,
    pub id: String,
    /// False when the recipient's peer could not be reached yet: the message waits in
    /// the outbox and is retried.
    pub delivered: bool,
}

/// The reply to `POST /broadcast-peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastSent {
    pub status: Status,
    pub message: String,
    pub delivered: u32,
    pub queued: u32,
}

/// `GET /get-conversation?with=NAME`: the direct messages between the caller and one
/// user, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub status: Status,
    pub with: Username,
    pub messages: Vec<DirectMessage>,
    /// Whether older messages exist before the first of this page.
    #[serde(default)]
    pub has_more: bool,
}

/// `GET /get-conversations`: the caller's direct conversations, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversations {
    pub status: Status,
    pub conversations: Vec<ConversationSummary>,
}

/// One direct conversation of the caller, as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// The other user.
    pub with: Username,
    /// The latest message, either way.
    pub last: DirectMessage,
    /// Received messages not yet read (through `/get-received-messages`).
    pub unread: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check;

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    #[test]
    fn revoked_sessions_are_a_list_of_ids_with_expiries() {
        let sessions =
            RevokedSessions { sessions: vec![RevokedSession { sid: "s1".into(), expires_at: 1_800_000_000 }] };
        check(&sessions, r#"{"sessions":[{"sid":"s1","expires_at":1800000000}]}"#);
    }

    #[test]
    fn replies_keep_the_original_shape() {
        check(&ErrorBody::new("channel not found"), r#"{"status":"error","message":"channel not found"}"#);
        check(&Ack::success("Joined channel general"), r#"{"status":"success","message":"Joined channel general"}"#);
        check(&Done::success(), r#"{"status":"success"}"#);
        check(
            &ChannelList { status: Status::Success, channels: vec![ChannelName::parse("general").unwrap()] },
            r#"{"status":"success","channels":["general"]}"#,
        );
        check(
            &UserInfo { ip: "127.0.0.1".into(), port: 9002, username: name("bob"), active: true, reclaim: false },
            r#"{"ip":"127.0.0.1","port":9002,"username":"bob","active":true}"#,
        );
    }

    #[test]
    fn channel_history_nests_the_channel_under_messages() {
        let history = ChannelHistory {
            status: Status::Success,
            messages: ChannelView {
                channel: ChannelName::parse("general").unwrap(),
                members: vec![Member {
                    username: name("alice"),
                    ip: Some("127.0.0.1".into()),
                    port: Some(9001),
                    online: true,
                }],
                messages: vec![ChannelMessage {
                    id: 7,
                    channel: ChannelName::parse("general").unwrap(),
                    sender_ip: "127.0.0.1".into(),
                    sender_port: 9001,
                    username: name("alice"),
                    text: MessageText::parse("hello & friends").unwrap(),
                    ts: 1_700_000_000_000,
                }],
                has_more: false,
            },
        };
        check(
            &history,
            concat!(
                r#"{"status":"success","messages":{"channel":"general","#,
                r#""members":[{"username":"alice","ip":"127.0.0.1","port":9001,"online":true}],"#,
                r#""messages":[{"id":7,"channel":"general","sender_ip":"127.0.0.1","sender_port":9001,"#,
                r#""username":"alice","text":"hello & friends","ts":1700000000000}],"has_more":false}}"#
            ),
        );
    }

    #[test]
    fn conversations_list_the_other_user_the_last_message_and_the_unread_count() {
        let conversations = Conversations {
            status: Status::Success,
            conversations: vec![ConversationSummary {
                with: name("bob"),
                last: DirectMessage {
                    id: "0190".into(),
                    message: MessageText::parse("see you").unwrap(),
                    sender_ip: "127.0.0.1".into(),
                    sender_port: 9002,
                    username: name("bob"),
                    to: name("alice"),
                    ts: 1_700_000_000_000,
                    broadcast: false,
                    seq: Some(12),
                    delivered: None,
                },
                unread: 2,
            }],
        };
        check(
            &conversations,
            concat!(
                r#"{"status":"success","conversations":[{"with":"bob","last":{"id":"0190","message":"see you","#,
                r#""sender_ip":"127.0.0.1","sender_port":9002,"username":"bob","to":"alice","ts":1700000000000,"#,
                r#""broadcast":false,"seq":12},"unread":2}]}"#
            ),
        );
    }

    #[test]
    fn original_forms_parse() {
        let join: ChannelRequest =
            serde_urlencoded::from_str("channel_name=general&peer_ip=127.0.0.1&peer_port=9001&username=alice").unwrap();
        assert_eq!(join.channel_name.as_str(), "general");

        let send: SendPeer = serde_urlencoded::from_str("ip=127.0.0.1&port=9002&message=hi+bob+%21").unwrap();
        assert_eq!(send.port, Some(9002));
        assert_eq!(send.message.as_str(), "hi bob !");

        let register: PeerRegistration = serde_urlencoded::from_str("ip=127.0.0.1&port=9001&username=n/a").unwrap();
        assert_eq!(register.port, 9001);

        let history: HistoryRequest = serde_urlencoded::from_str("channel_name=general&limit=&before=12").unwrap();
        assert_eq!((history.before, history.limit), (Some(12), None));
    }

    #[test]
    fn ports_are_accepted_as_numbers_or_text_but_must_be_valid() {
        let dm = r#"{"id":"x","message":"hi","sender_ip":"127.0.0.1","sender_port":"9001","username":"alice","to":"bob","ts":1}"#;
        assert_eq!(serde_json::from_str::<DirectMessage>(dm).unwrap().sender_port, 9001);
        assert!(serde_urlencoded::from_str::<SendPeer>("ip=a&port=99999&message=x").is_err());
        assert!(serde_urlencoded::from_str::<SendPeer>("ip=a&port=abc&message=x").is_err());
        assert!(serde_json::from_str::<PeerRegistration>(r#"{"ip":"a","port":0}"#).is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let credentials = Credentials { username: "alice".into(), password: "hunter22".into() };
        assert!(!format!("{credentials:?}").contains("hunter22"));
        let grant = SessionGrant {
            status: Status::Success,
            username: name("alice"),
            token: "tok.en.sig".into(),
            expires_at: 1,
        };
        assert!(!format!("{grant:?}").contains("tok.en.sig"));
    }
}
