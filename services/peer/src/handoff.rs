//! Handing a user's mailbox to their new home.
//!
//! A user's direct messages live on the peer that hosted them when each arrived. When
//! the user moves (their peer went down, or their browser landed elsewhere), the
//! tracker tells the peer they left; that peer stops hosting them (so new messages go
//! to the new home), sends their mailbox and contacts there in pages, and forgets what
//! it sent. Nothing is forgotten before the new home has it: a failed hand-over leaves
//! the mailbox here for the next attempt.
//!
//! On PostgreSQL every peer replica reads the one shared mailbox, so nothing moves:
//! the old peer only stops hosting the user.

use std::time::Duration;

use kit::backoff::Backoff;
use wire::addr::PeerAddr;
use wire::api::{Contact, DirectMessage, MailboxTransfer};
use wire::names::Username;

use crate::state::AppState;

/// Messages read from the database at a time; what one request carries is decided by
/// its size ([`PAGE_BYTES`]).
const READ_BATCH: u64 = 500;
/// The most bytes of JSON one `/import-mailbox` request carries: the receiver refuses
/// bodies over [`kit::body::MAX_BODY_BYTES`], and a quarter of that stays spare so an
/// estimate a little short (or a field added later) still fits. The largest message
/// (4000 characters of at most 4 bytes each) fits with room to spare.
const PAGE_BYTES: usize = kit::body::MAX_BODY_BYTES / 4 * 3;
/// Attempts before giving up until the next move event.
const ATTEMPTS: u32 = 6;

/// Hands `user`'s mailbox to the peer at `to`, retrying a few times with backoff.
pub async fn hand_over(state: AppState, user: Username, to: PeerAddr) {
    if to == state.me {
        return;
    }
    // New messages for the user now go to their new home (this peer answers 404).
    if let Err(err) = state.store.unhost(&user).await {
        tracing::warn!(username = %user, %err, "could not stop hosting a user who moved");
    }
    state.sessions.remove(&user);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    for attempt in 1..=ATTEMPTS {
        match transfer(&state, &user, &to).await {
            Ok(0) => return,
            Ok(sent) => {
                tracing::info!(username = %user, %to, messages = sent, "mailbox handed over to the user's new home");
                return;
            }
            Err(err) => tracing::warn!(username = %user, %to, attempt, %err, "mailbox hand-over failed; retrying"),
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff.next_wait()) => {}
        }
    }
}

/// Sends every page, then forgets what was sent; repeats while messages kept
/// arriving meanwhile. Returns how many messages went.
async fn transfer(state: &AppState, user: &Username, to: &PeerAddr) -> anyhow::Result<usize> {
    // A mailbox shared by every peer stays where it is.
    let Some(mailboxes) = state.store.handover() else { return Ok(0) };
    let mut sent = 0;
    let mut contacts = mailboxes.contacts(user).await?;
    loop {
        let mut after = 0;
        let mut through = None;
        loop {
            let messages = mailboxes.export_mailbox(user, after, READ_BATCH).await?;
            if messages.is_empty() && contacts.is_empty() {
                break;
            }
            let full = messages.len() as u64 == READ_BATCH;
            if let Some(last) = messages.last().and_then(|message| message.seq) {
                after = last;
                through = Some(last);
            }
            sent += messages.len();
            for page in pages(user, messages, std::mem::take(&mut contacts), PAGE_BYTES) {
                state.peers.import_mailbox(to, &page).await?;
            }
            if !full {
                break;
            }
        }
        let Some(through) = through else { return Ok(sent) };
        mailboxes.drop_mailbox(user, through).await?;
        if mailboxes.export_mailbox(user, 0, 1).await?.is_empty() {
            return Ok(sent);
        }
    }
}

/// Cuts messages and contacts into requests of at most `budget` bytes of JSON each,
/// in order. Sizes are measured, not guessed: a page of short messages holds many,
/// one of long ones few. Something larger than the budget alone goes alone.
fn pages(user: &Username, messages: Vec<DirectMessage>, contacts: Vec<Contact>, budget: usize) -> Vec<MailboxTransfer> {
    let empty = |contacts: Vec<Contact>| MailboxTransfer { username: user.clone(), messages: Vec::new(), contacts };
    let envelope = json_len(&empty(Vec::new()));
    let mut pages = Vec::new();
    let mut page = empty(Vec::new());
    let mut size = envelope;
    // Each item costs its JSON and a separating comma.
    for contact in contacts {
        let cost = json_len(&contact) + 1;
        if size + cost > budget && !page.contacts.is_empty() {
            pages.push(std::mem::replace(&mut page, empty(Vec::new())));
            size = envelope;
        }
        size += cost;
        page.contacts.push(contact);
    }
    for message in messages {
        let cost = json_len(&message) + 1;
        if size + cost > budget && !(page.messages.is_empty() && page.contacts.is_empty()) {
            pages.push(std::mem::replace(&mut page, empty(Vec::new())));
            size = envelope;
        }
        size += cost;
        page.messages.push(message);
    }
    if !(page.messages.is_empty() && page.contacts.is_empty()) {
        pages.push(page);
    }
    pages
}

fn json_len<T: serde::Serialize>(value: &T) -> usize {
    // Wire types always serialize (the client sending the page relies on it too).
    serde_json::to_vec(value).expect("wire types serialize to JSON").len()
}

/// Finds mailboxes here whose owners live elsewhere now (they moved while this peer
/// was away, or after they left it), and hands each to its owner's home.
pub async fn hand_over_strays(state: AppState) {
    let Some(mailboxes) = state.store.handover() else { return };
    let owners = match mailboxes.mailbox_owners().await {
        Ok(owners) => owners,
        Err(err) => {
            tracing::warn!(%err, "could not list the mailboxes kept here");
            return;
        }
    };
    for owner in owners.into_iter().filter(|owner| !state.sessions.is_hosted(owner)) {
        match state.tracker.lookup(&owner).await {
            Ok(home) => {
                let to = PeerAddr { ip: home.ip, port: home.port };
                if to != state.me {
                    hand_over(state.clone(), owner, to).await;
                }
            }
            Err(err) => tracing::debug!(username = %owner, %err, "no home known for a stray mailbox; kept"),
        }
    }
}

#[cfg(test)]
mod tests {
    use wire::names::MessageText;

    use super::*;

    fn message(i: usize, text: &str) -> DirectMessage {
        DirectMessage {
            id: format!("{i:032}"),
            message: MessageText::parse(text).unwrap(),
            sender_ip: "127.0.0.1".into(),
            sender_port: 9001,
            username: Username::parse("bob").unwrap(),
            to: Username::parse("alice").unwrap(),
            ts: 1_700_000_000_000 + i as u64,
            broadcast: false,
            seq: Some(i as u64 + 1),
            delivered: None,
            edited_at: None,
            deleted: false,
            reply_to: None,
            reply: None,
            reactions: Vec::new(),
        }
    }

    fn contact(i: usize) -> Contact {
        Contact {
            username: Username::parse(&format!("friend{i}")).unwrap(),
            ip: "10.0.0.1".into(),
            port: 9001,
            online: false,
        }
    }

    /// Every page fits the budget, and together they carry everything in order.
    fn check(messages: Vec<DirectMessage>, contacts: Vec<Contact>, budget: usize) -> Vec<MailboxTransfer> {
        let alice = Username::parse("alice").unwrap();
        let built = pages(&alice, messages.clone(), contacts.clone(), budget);
        for page in &built {
            let size = serde_json::to_vec(page).unwrap().len();
            assert!(size <= budget, "a page of {size} bytes is over the budget of {budget}");
            assert!(!(page.messages.is_empty() && page.contacts.is_empty()), "no empty pages");
        }
        let carried: Vec<DirectMessage> = built.iter().flat_map(|page| page.messages.clone()).collect();
        let carried_contacts: Vec<Contact> = built.iter().flat_map(|page| page.contacts.clone()).collect();
        assert_eq!((carried, carried_contacts), (messages, contacts));
        built
    }

    #[test]
    fn four_hundred_ordinary_messages_go_in_pages_the_receiver_accepts() {
        let messages = (0..400).map(|i| message(i, &format!("an ordinary message, number {i}"))).collect();
        let built = check(messages, (0..300).map(contact).collect(), PAGE_BYTES);
        assert!(built.len() > 1, "400 messages and 300 contacts are more than one request");
    }

    #[test]
    fn long_messages_go_a_few_at_a_time_and_the_longest_fits_alone() {
        // The longest message there can be: 4000 characters of 4 bytes each (control
        // characters, which JSON escapes longer, are refused in messages).
        let longest = "😀".repeat(wire::names::MAX_MESSAGE_CHARS);
        let messages: Vec<DirectMessage> = (0..5).map(|i| message(i, &longest)).collect();
        assert!(json_len(&messages[0]) < PAGE_BYTES);
        let built = check(messages, Vec::new(), PAGE_BYTES);
        assert!(built.len() >= 2, "five 16 KB messages are more than one request");
    }

    #[test]
    fn nothing_to_send_is_no_page() {
        assert!(check(Vec::new(), Vec::new(), PAGE_BYTES).is_empty());
    }
}
