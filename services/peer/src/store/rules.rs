//! What both backends do alike when they file mailboxes and the outbox: the first
//! attempt's grace, the cap on conversations listed, and how a conversation is summed up.

use wire::api::{ConversationSummary, DirectMessage};
use wire::names::Username;

/// How long the outbox worker leaves a new message to its sender's own first attempt.
pub(super) const FIRST_ATTEMPT_GRACE_MS: i64 = 15_000;

/// The most conversations `/get-conversations` lists (the most recent ones).
pub(super) const MAX_CONVERSATIONS: usize = 1000;

/// One summary per latest message (already newest first), naming the other user of
/// each and their unread count.
pub(super) fn summarize(
    owner: &Username,
    latest: Vec<DirectMessage>,
    unread: impl Fn(&Username) -> u64,
) -> Vec<ConversationSummary> {
    latest
        .into_iter()
        .map(|last| {
            let with = if &last.username == owner { last.to.clone() } else { last.username.clone() };
            ConversationSummary { unread: unread(&with), with, last }
        })
        .collect()
}
