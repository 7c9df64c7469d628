//! `POST /search`: full-text search over the caller's channels and direct messages.

use serde::{Deserialize, Serialize};

use super::replies::Status;
use crate::de;
use crate::names::{ChannelName, Username};

/// The most results one search returns.
pub const MAX_SEARCH_LIMIT: u64 = 100;
/// The number of results when the request does not say.
pub const DEFAULT_SEARCH_LIMIT: u64 = 20;
/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 256;

/// `POST /search` on a peer (and, for channels only, on the tracker): messages that
/// contain every word of `q`, in the caller's channels (or only `channel_name`) and
/// their direct messages (or only those with `with`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchRequest {
    pub q: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<ChannelName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<Username>,
    /// At most this many results (default [`DEFAULT_SEARCH_LIMIT`], at most
    /// [`MAX_SEARCH_LIMIT`]).
    #[serde(default, deserialize_with = "de::opt_u64", skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// The reply to `POST /search`: the newest matches first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    pub status: Status,
    pub results: Vec<SearchHit>,
}

/// One message that matched, with the words that matched marked in its snippet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SearchHit {
    Channel {
        channel: ChannelName,
        id: u64,
        username: Username,
        ts: u64,
        snippet: Vec<Segment>,
    },
    /// A direct message between the caller and `with`, either way.
    Direct {
        with: Username,
        id: String,
        username: Username,
        ts: u64,
        snippet: Vec<Segment>,
    },
}

/// A piece of a snippet: plain text, to be shown as text (never as HTML), marked when
/// it is a word of the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub text: String,
    pub hit: bool,
}

impl SearchHit {
    /// When the message was stored, in milliseconds since the Unix epoch.
    pub fn ts(&self) -> u64 {
        match self {
            SearchHit::Channel { ts, .. } | SearchHit::Direct { ts, .. } => *ts,
        }
    }
}
