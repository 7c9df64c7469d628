//! The peer's link to the tracker: registration, heartbeat, announcing hosted users,
//! and following the tracker's push stream.
//!
//! A peer that starts before the tracker, or loses it, retries with backoff rather
//! than dying; a tracker that restarted and forgot the peer gets a new registration
//! and every hosted user announced again. With several tracker instances
//! (`--tracker-ip A,B`), registration and heartbeats fail over through the tracker
//! client, and the push stream moves to the next instance when it breaks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use kit::backoff::Backoff;
use kit::client::endpoints::Endpoints;
use kit::error::ApiError;
use wire::api::ChannelMessage;
use wire::events::{
    ChannelRead, ChannelUpdated, Event, Mention, MessageDeleted, MessageEdited, Pushed, Reactions, Read, Typing,
};

use crate::hosting::{self, our_revoked, share_revoked};
use crate::hub::Audience;
use crate::ids::ChannelMessageId;
use crate::state::AppState;

/// Registers with the tracker (retrying until it answers), then beats. Once first
/// registered, follows the tracker's push stream too.
pub async fn keep_registered(state: AppState) {
    let mut following = false;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut quiet = Quiet::default();
    'register: loop {
        loop {
            match state.tracker.register().await {
                Ok(()) => break,
                Err(err) => {
                    quiet.failed("could not register with the tracker; retrying", &err);
                    if !pause(&state, backoff.next_wait()).await {
                        return;
                    }
                }
            }
        }
        quiet.recovered();
        backoff.reset();
        state.sessions.forget_announcements();
        // Before it counts as ready: the sessions ended while this peer was away.
        if !share_revoked(&state, our_revoked(&state).await).await {
            if !pause(&state, backoff.next_wait()).await {
                return;
            }
            continue 'register;
        }
        state.revocations_unshared.store(false, Ordering::Release);
        state.readiness.set(true);
        tracing::info!(peer = %state.me, "registered with the tracker");
        if !std::mem::replace(&mut following, true) {
            tokio::spawn(follow_stream(state.clone()));
        }
        let mut report_activity = true;
        let mut strays = true;
        loop {
            hosting::release_expired(&state).await;
            for user in state.sessions.unannounced() {
                hosting::announce(&state, &user, true).await;
            }
            for user in state.sessions.without_channels() {
                hosting::learn_channels(&state, &user).await;
            }
            // After (re-)registering and announcing, who has the chat open, and the
            // mailboxes of users who moved while this peer was away.
            if std::mem::take(&mut report_activity) {
                for user in state.sessions.active() {
                    hosting::report_activity(&state, &user, true).await;
                }
            }
            if std::mem::take(&mut strays) {
                tokio::spawn(crate::handoff::hand_over_strays(state.clone()));
            }
            if state.revocations_unshared.load(Ordering::Acquire)
                && share_revoked(&state, our_revoked(&state).await).await
            {
                state.revocations_unshared.store(false, Ordering::Release);
            }
            if !pause(&state, state.heartbeat).await {
                return;
            }
            match state.tracker.heartbeat().await {
                Ok(()) => quiet.recovered(),
                Err(ApiError::Upstream { status, .. }) if status == 404 => {
                    tracing::warn!("the tracker forgot this peer; registering again");
                    continue 'register;
                }
                Err(err) => quiet.failed("heartbeat failed; the tracker may be down", &err),
            }
        }
    }
}

/// Tells the tracker this peer is stopping, so that it leaves the pool and its users
/// show offline at once rather than after the tracker's TTL. Bounded: a tracker that
/// is gone or stopping too is not waited for (it then notices by the missed beats).
pub async fn leave(state: &AppState) {
    match tokio::time::timeout(LEAVE_PATIENCE, state.tracker.leave()).await {
        Ok(Ok(())) => tracing::info!(peer = %state.me, "left the tracker's pool"),
        Ok(Err(err)) => tracing::debug!(%err, "could not tell the tracker this peer is leaving"),
        Err(_) => tracing::debug!("the tracker did not answer the leave in time"),
    }
}

/// How long a stopping peer waits for the tracker to take note that it leaves.
const LEAVE_PATIENCE: Duration = Duration::from_secs(2);

/// Follows the tracker's push stream for this peer and hands each event to the hub,
/// resuming after the last channel message it saw.
///
/// With several tracker instances the stream moves: when it ends or fails, the next
/// instance is asked, resuming after the same message (in cluster mode every replica
/// serves every message, under the database's ids), so nothing is missed or doubled.
/// An instance that does not know this peer gets it registered first.
pub async fn follow_stream(state: AppState) {
    let mut last_id: Option<ChannelMessageId> = None;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut quiet = Quiet::default();
    let endpoints = state.tracker.endpoints().clone();
    loop {
        let response = tokio::select! {
            () = state.shutdown.cancelled() => return,
            response = state.tracker.peer_stream(last_id.map(|id| id.0)) => response,
        };
        // The instance that answered (the preferred one now), to move on from if its
        // stream breaks.
        let instance = endpoints.url("/");
        match response {
            Ok(response) if response.status().is_success() => {
                quiet.recovered();
                backoff.reset();
                tracing::info!(?last_id, %instance, "following the tracker's push stream");
                // Sessions ended while this peer could not hear about it, both ways;
                // later ones arrive on the stream.
                if share_revoked(&state, our_revoked(&state).await).await {
                    state.revocations_unshared.store(false, Ordering::Release);
                }
                let mut events = response.bytes_stream().eventsource();
                loop {
                    let next = tokio::select! {
                        () = state.shutdown.cancelled() => return,
                        next = events.next() => next,
                    };
                    match next {
                        Some(Ok(event)) => {
                            if let Some(id) = ChannelMessageId::parse(&event.id) {
                                last_id = Some(id);
                            }
                            dispatch(&state, &event.data);
                        }
                        Some(Err(err)) => {
                            tracing::warn!(%err, %instance, "the tracker's push stream broke; reconnecting");
                            break;
                        }
                        None => {
                            tracing::info!(%instance, "the tracker closed its push stream; reconnecting");
                            break;
                        }
                    }
                }
                move_on_from(&endpoints, &instance);
                // Straight to the next instance: the backoff was reset, so the pause
                // below is short.
            }
            Ok(response) if response.status() == reqwest::StatusCode::NOT_FOUND => {
                // This instance does not know this peer (it restarted, or keeps a
                // pool of its own): join its pool, and reopen the stream there.
                tracing::info!(%instance, "the tracker does not know this peer; registering there");
                match state.tracker.register().await {
                    Ok(()) => reannounce(&state).await,
                    Err(err) => quiet.failed("could not register with the tracker; retrying", &err),
                }
            }
            Ok(response) => {
                let err = ApiError::BadGateway(format!("tracker answered {}", response.status()));
                quiet.failed("could not open the tracker's push stream", &err);
                move_on_from(&endpoints, &instance);
            }
            Err(err) => {
                quiet.failed("could not open the tracker's push stream", &err);
                move_on_from(&endpoints, &instance);
            }
        }
        if !pause(&state, backoff.next_wait()).await {
            return;
        }
    }
}

/// Moves the tracker calls on to the next instance, unless another call moved them
/// off `instance` already (a second move would land back on a dead one).
fn move_on_from(endpoints: &Endpoints, instance: &reqwest::Url) {
    if endpoints.url("/") == *instance {
        endpoints.skip();
    }
}

/// Announces every hosted user again, to a tracker that just took this peer into its
/// pool; the heartbeat loop retries the ones that fail.
async fn reannounce(state: &AppState) {
    state.sessions.forget_announcements();
    for user in state.sessions.unannounced() {
        hosting::announce(state, &user, true).await;
    }
}

/// Hands one pushed event to this peer's browsers, in a span that joins the trace of
/// the request that caused it.
fn dispatch(state: &AppState, data: &str) {
    let Pushed { event, traceparent } = match serde_json::from_str(data) {
        Ok(pushed) => pushed,
        Err(err) => {
            tracing::warn!(%err, "ignoring an event the tracker sent that this peer does not understand");
            return;
        }
    };
    state.metrics.pushes_received.inc();
    // A push that no traced request caused (a peer that went silent) is routine: its
    // span would be a root trace of its own, so it is made only on request.
    let caused = traceparent.is_some() || kit::telemetry::trace_routine();
    let span = if kit::telemetry::exporting() && caused {
        // Named for the all-in-one, where the tracker that pushed is in this process.
        let span = tracing::info_span!(
            "tracker push",
            otel.name = %format!("push {}", event.name()),
            otel.kind = "consumer",
            service = "peer",
        );
        if let Some(parent) = traceparent.as_deref().and_then(kit::telemetry::context_from_traceparent) {
            kit::telemetry::set_parent(&span, parent);
        }
        span
    } else {
        tracing::Span::none()
    };
    let _entered = span.enter();
    match &event {
        Event::ChannelMessage(message) => {
            state.hub.publish(Audience::Channel(message.channel.clone()), &event);
            publish_mentions(state, message);
        }
        Event::Membership(change) => {
            state.sessions.update_joined(&change.username, &change.channel, change.joined);
            // A private channel's members (and who left it) alone hear of it.
            let audience = if change.private {
                Audience::ChannelAnd(change.channel.clone(), change.username.clone())
            } else {
                Audience::Everyone
            };
            state.hub.publish(audience, &event);
        }
        Event::MessageEdited(MessageEdited { channel: Some(channel), .. })
        | Event::MessageDeleted(MessageDeleted { channel: Some(channel), .. })
        | Event::Reaction(Reactions { channel: Some(channel), .. })
        | Event::ChannelUpdated(ChannelUpdated { channel, .. }) => {
            state.hub.publish(Audience::Channel(channel.clone()), &event);
        }
        Event::Typing(Typing { channel: Some(channel), username, .. }) => {
            state.hub.publish(Audience::ChannelExcept(channel.clone(), username.clone()), &event);
        }
        Event::ChannelRead(ChannelRead { username, channel, up_to }) => {
            // To the reader's own pages, as a `read` like a direct conversation's.
            let read = Event::Read(Read { channel: Some(channel.clone()), with: None, up_to: Some(*up_to) });
            state.hub.publish(Audience::Users(vec![username.clone()]), &read);
        }
        Event::Presence(_) => {
            state.hub.publish(Audience::Everyone, &event);
        }
        Event::Moved(moved) => {
            tokio::spawn(crate::handoff::hand_over(state.clone(), moved.username.clone(), moved.to.clone()));
        }
        Event::SessionRevoked(session) => {
            let state = state.clone();
            let session = session.clone();
            tokio::spawn(async move {
                if let Err(err) = hosting::revoke_here(&state, &session, false).await {
                    tracing::warn!(%err, "could not record an ended session");
                }
            });
        }
        // Direct-message events travel peer to peer, never on the tracker's stream.
        Event::DirectMessage(_)
        | Event::Delivered(_)
        | Event::MessageEdited(_)
        | Event::MessageDeleted(_)
        | Event::Reaction(_)
        | Event::Typing(_)
        | Event::Mention(_)
        | Event::Read(_)
        | Event::Reset => {}
    }
}

/// How much of a message a `mention` event quotes, in characters.
const MENTION_EXCERPT_CHARS: usize = 100;

/// Tells each member a channel message names (and that this peer hosts) with a
/// `mention` event to their streams.
fn publish_mentions(state: &AppState, message: &ChannelMessage) {
    for user in &message.mentions {
        if !state.sessions.is_member(user, &message.channel) {
            continue;
        }
        let mention = Event::Mention(Mention {
            channel: message.channel.clone(),
            id: message.id,
            username: message.username.clone(),
            text: message.text.as_str().chars().take(MENTION_EXCERPT_CHARS).collect(),
        });
        state.hub.publish(Audience::Users(vec![user.clone()]), &mention);
    }
}

/// Waits `duration`, or until shutdown; false on shutdown.
async fn pause(state: &AppState, duration: Duration) -> bool {
    tokio::select! {
        () = state.shutdown.cancelled() => false,
        () = tokio::time::sleep(duration) => true,
    }
}

/// Logs the first failure of a run at warn, the rest at debug, and the recovery at
/// info: a tracker that is down for an hour costs two warnings, not thousands.
#[derive(Default)]
struct Quiet {
    failing: bool,
}

impl Quiet {
    fn failed(&mut self, message: &'static str, err: &dyn std::fmt::Display) {
        if self.failing {
            tracing::debug!(%err, "{message}");
        } else {
            tracing::warn!(%err, "{message}");
            self.failing = true;
        }
    }

    fn recovered(&mut self) {
        if self.failing {
            tracing::info!("the tracker answers again");
            self.failing = false;
        }
    }
}
