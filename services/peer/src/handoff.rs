//! Handing a user's mailbox to their new home.
//!
//! A user's direct messages live on the peer that hosted them when each arrived. When
//! the user moves (their peer went down, or their browser landed elsewhere), the
//! tracker tells the peer they left; that peer stops hosting them (so new messages go
//! to the new home), sends their mailbox and contacts there in pages, and forgets what
//! it sent. Nothing is forgotten before the new home has it: a failed hand-over leaves
//! the mailbox here for the next attempt.

use std::time::Duration;

use kit::backoff::Backoff;
use wire::addr::PeerAddr;
use wire::api::{Ack, MailboxTransfer};
use wire::names::Username;

use crate::AppState;

/// Messages per page of a hand-over.
const PAGE: u64 = 500;
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
    let url = reqwest::Url::parse(&format!("{}/import-mailbox", to.url()))?;
    let mut sent = 0;
    let mut contacts = mailboxes.contacts(user).await?;
    loop {
        let mut after = 0;
        let mut through = None;
        loop {
            let messages = mailboxes.export_mailbox(user, after, PAGE).await?;
            if messages.is_empty() && contacts.is_empty() {
                break;
            }
            let full = messages.len() as u64 == PAGE;
            if let Some(last) = messages.last().and_then(|message| message.seq) {
                after = last;
                through = Some(last);
            }
            sent += messages.len();
            let page = MailboxTransfer { username: user.clone(), messages, contacts: std::mem::take(&mut contacts) };
            kit::client::call::<Ack>(state.client.signed_post(url.clone(), &page), &format!("peer {to}")).await?;
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
        match crate::delivery::locate(&state, &owner).await {
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
