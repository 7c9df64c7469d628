//! What both backends do alike when they file mailboxes and the outbox: the first
//! attempt's grace, the cap on conversations listed, how a conversation is summed up,
//! and how reactions and reply previews are put on the messages read back.

use std::collections::HashMap;

use wire::api::{ConversationSummary, DirectMessage, MessageKey, Reaction, ReplyPreview};
use wire::names::{Emoji, Username};

/// How long the outbox worker leaves a new message to its sender's own first attempt.
pub(super) const FIRST_ATTEMPT_GRACE_MS: i64 = 15_000;

/// The most conversations `/get-conversations` lists (the most recent ones).
pub(super) const MAX_CONVERSATIONS: usize = 1000;

/// The most distinct emoji one message carries.
pub const MAX_EMOJI_PER_MESSAGE: usize = 20;

/// One summary per latest message (already newest first), naming the other user of
/// each, their unread count and the last received message read.
pub(super) fn summarize(
    owner: &Username,
    latest: Vec<DirectMessage>,
    unread: impl Fn(&Username) -> u64,
    last_read: impl Fn(&Username) -> u64,
) -> Vec<ConversationSummary> {
    latest
        .into_iter()
        .map(|last| {
            let with = if &last.username == owner { last.to.clone() } else { last.username.clone() };
            ConversationSummary { unread: unread(&with), last_read: last_read(&with), with, last }
        })
        .collect()
}

/// A parent message as a reply shows it: its author, text and whether it was deleted.
pub(super) type Parent = (Username, String, bool);

/// Puts on each message its reactions (`reactions`: rows of message id, emoji and
/// user, oldest first) and the preview of the message it answers (`parents`, by id).
pub(super) fn attach(
    messages: &mut [DirectMessage],
    reactions: impl IntoIterator<Item = (String, Emoji, Username)>,
    parents: &HashMap<String, Parent>,
) {
    let mut by_message: HashMap<String, Vec<Reaction>> = HashMap::new();
    for (id, emoji, user) in reactions {
        let list = by_message.entry(id).or_default();
        match list.iter_mut().find(|reaction| reaction.emoji == emoji) {
            Some(reaction) => reaction.users.push(user),
            None => list.push(Reaction { emoji, users: vec![user] }),
        }
    }
    for message in messages {
        message.reactions =
            if message.deleted { Vec::new() } else { by_message.remove(&message.id).unwrap_or_default() };
        message.reply = message.reply_to.as_ref().and_then(|parent_id| {
            let (author, text, deleted) = parents.get(parent_id)?;
            Some(ReplyPreview::of(MessageKey::Direct(parent_id.clone()), author.clone(), text, *deleted))
        });
    }
}

/// The ids whose reactions and parents [`attach`] needs, as one JSON array.
pub(super) fn ids_json(messages: &[DirectMessage]) -> (String, String) {
    let ids: Vec<&str> = messages.iter().map(|message| message.id.as_str()).collect();
    let parents: Vec<&str> = messages.iter().filter_map(|message| message.reply_to.as_deref()).collect();
    // Lists of strings always serialize.
    let json = |list: &[&str]| serde_json::to_string(list).expect("strings serialize to JSON");
    (json(&ids), json(&parents))
}

/// Whether a reaction change (`on` at `at`) changes what a user's reaction was
/// (`existing`: when it last changed and whether it is on): only a later change to
/// the other state does, so retries and late arrivals change nothing.
pub(super) fn reaction_changes(existing: Option<(u64, bool)>, on: bool, at: u64) -> bool {
    match existing {
        None => on,
        Some((previous_at, active)) => previous_at < at && active != on,
    }
}
