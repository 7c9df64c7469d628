//! What the store hands back, whichever its backend.

use wire::api::DirectMessage;
use wire::names::Username;

/// What the peer keeps in memory from its database.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Hosted users and when their latest session expires (0: unknown).
    pub hosted: Vec<(Username, u64)>,
    pub revoked: Vec<(String, u64)>,
}

/// A direct message waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    pub message: DirectMessage,
    /// The trace context of the original send.
    pub traceparent: Option<String>,
    pub attempts: u32,
    /// When it entered the outbox, ms since the epoch.
    pub created_at: u64,
}
