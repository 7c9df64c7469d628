//! Changes to direct messages after they were sent (edits, deletions, reactions), and
//! typing notices, between the two users of a conversation.
//!
//! Each user's copy of a conversation lives in their own mailbox (on their home peer
//! when embedded; in the shared database in cluster mode, still one copy each). A
//! change is applied to the author's copy and put in the outbox in one commit, then
//! handed to the other user's home peer like a message (`POST /receive-change`,
//! signed), which applies it to their copy and tells their pages. A change that
//! cannot be handed over at once (their peer is down, or the message itself has not
//! reached them yet) is retried by the outbox worker. Every change carries its time,
//! so applying one twice, or late, changes nothing. Typing notices are never stored
//! and never retried.

use kit::error::ApiError;
use wire::api::{DirectChange, DirectChangeKind, DirectMessage, MessageKey};
use wire::events::{Event, MessageDeleted, MessageEdited, Reactions, Typing};
use wire::names::Username;

use crate::hub::Audience;
use crate::ids::MessageId;
use crate::state::AppState;
use crate::store::{ChangeOutcome, MAX_EMOJI_PER_MESSAGE};

/// A change by `from` to their message `id` (or one they received, for reactions):
/// the message in `from`'s mailbox and the other user of its conversation, or 404.
pub async fn find(state: &AppState, from: &Username, id: &str) -> Result<(DirectMessage, Username), ApiError> {
    let message = state
        .store
        .find_message(from, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no message {id} in your direct messages")))?;
    let partner = if &message.username == from { message.to.clone() } else { message.username.clone() };
    Ok((message, partner))
}

/// Makes a change of `from`'s to a message of their conversation with `to`: applied
/// to `from`'s copy (and queued for `to`'s peer in the same commit), and told to
/// `from`'s pages. Returns the message as it is now, and the change when it changed
/// something and must be handed to `to`'s peer ([`crate::delivery::send_change`]).
pub async fn make(
    state: &AppState,
    from: &Username,
    to: &Username,
    change: DirectChangeKind,
) -> Result<(DirectMessage, Option<DirectChange>), ApiError> {
    let change = DirectChange { id: MessageId::new().into(), from: from.clone(), to: to.clone(), change };
    let (message, changed) = match state.store.apply_change(from, &change, true).await? {
        ChangeOutcome::Applied { message, changed } => (*message, changed),
        ChangeOutcome::Missing => return Err(ApiError::NotFound("no such message in your direct messages".into())),
        ChangeOutcome::NotAuthor => {
            return Err(ApiError::Forbidden("only the author of a message may edit or delete it".into()));
        }
        ChangeOutcome::Deleted => return Err(ApiError::Conflict("the message was deleted".into())),
        ChangeOutcome::TooManyEmoji => {
            return Err(ApiError::Conflict(format!("a message holds at most {MAX_EMOJI_PER_MESSAGE} different emoji")));
        }
    };
    if !changed {
        return Ok((message, None));
    }
    publish(state, from, to, &change, &message);
    if from == to {
        // A note to oneself: both copies are in this mailbox, changed already.
        state.store.delivered(&change.id).await?;
        return Ok((message, None));
    }
    Ok((message, Some(change)))
}

/// A change handed over by the author's peer, for a user hosted here: applied to their
/// copy and told to their pages. Answers 404 while the message has not reached them,
/// so the author's peer tries again later.
pub async fn receive_here(state: &AppState, change: &DirectChange) -> Result<(), ApiError> {
    if !state.sessions.is_hosted(&change.to) {
        return Err(ApiError::NotFound(format!("user {} is not hosted on this peer", change.to)));
    }
    if let DirectChangeKind::Typing = change.change {
        let typing = Typing { channel: None, username: change.from.clone(), to: Some(change.to.clone()) };
        state.hub.publish(Audience::Users(vec![change.to.clone()]), &Event::Typing(typing));
        return Ok(());
    }
    match state.store.apply_change(&change.to, change, false).await? {
        ChangeOutcome::Applied { message, changed } => {
            if changed {
                publish(state, &change.to, &change.from, change, &message);
            }
            Ok(())
        }
        ChangeOutcome::Missing => Err(ApiError::NotFound(format!("message not (yet) in {}'s mailbox", change.to))),
        ChangeOutcome::NotAuthor => Err(ApiError::Forbidden("the change is not its author's to make".into())),
        // Deleted meanwhile: nothing left to change.
        ChangeOutcome::Deleted | ChangeOutcome::TooManyEmoji => Ok(()),
    }
}

/// Tells `to`'s pages that `from` is typing to them, unless `from` did so less than
/// [`crate::typing::TYPING_EVERY`] ago. Never stored, never retried: a notice that cannot be handed
/// over is dropped.
pub async fn typing(state: &AppState, from: &Username, to: &Username) {
    if !state.typing.allow(from, to) {
        return;
    }
    let change = DirectChange {
        id: MessageId::new().into(),
        from: from.clone(),
        to: to.clone(),
        change: DirectChangeKind::Typing,
    };
    let home = match state.tracker.lookup(to).await {
        Ok(location) => wire::addr::PeerAddr { ip: location.ip, port: location.port },
        Err(err) => {
            tracing::debug!(%to, %err, "typing notice dropped: nowhere to send it");
            return;
        }
    };
    let handed = if home == state.me {
        receive_here(state, &change).await
    } else {
        state.peers.receive_change(&home, &change).await
    };
    if let Err(err) = handed {
        tracing::debug!(%to, %err, "typing notice dropped");
    }
}

/// Tells `viewer`'s pages what changed in their conversation with `with`.
fn publish(state: &AppState, viewer: &Username, with: &Username, change: &DirectChange, message: &DirectMessage) {
    let (with, id) = (Some(with.clone()), MessageKey::Direct(message.id.clone()));
    let event = match &change.change {
        DirectChangeKind::Edit { .. } => Event::MessageEdited(MessageEdited {
            channel: None,
            with,
            id,
            message: message.message.clone(),
            edited_at: message.edited_at.unwrap_or_default(),
            mentions: Vec::new(),
        }),
        DirectChangeKind::Delete { .. } => Event::MessageDeleted(MessageDeleted { channel: None, with, id }),
        DirectChangeKind::React { .. } => {
            Event::Reaction(Reactions { channel: None, with, id, reactions: message.reactions.clone() })
        }
        DirectChangeKind::Typing => return,
    };
    state.hub.publish(Audience::Users(vec![viewer.clone()]), &event);
}
