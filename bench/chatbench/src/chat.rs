//! Acting as WeApRous users: session tokens minted with the cluster's session secret
//! (no Argon2 log-in per user), hosting on a peer, channels, posting, and event
//! streams read the way a browser's `EventSource` would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use eventsource_stream::Eventsource;
use futures_util::{StreamExt, TryStreamExt, stream};
use kit::session::TokenKeys;
use tokio::task::JoinHandle;
use wire::api::{ChannelRequest, SendChannelMessage};
use wire::names::{ChannelName, MessageText, Username};

use crate::fanout::Poster;
use crate::probe::Probe;

/// How many set-up calls (hosting, joining, opening streams) run at once.
const SETUP_CONCURRENCY: usize = 32;
/// How long one call (or an event stream's response head) may take: a hung service
/// fails the benchmark instead of hanging it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A user with a session, hosted on one peer.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: Username,
    pub token: String,
    /// The base URL of the user's home peer.
    pub home: String,
}

/// An HTTP client for the services, and the keys to mint sessions.
#[derive(Clone)]
pub struct Chat {
    http: reqwest::Client,
    keys: TokenKeys,
}

/// Open event streams; closed (their tasks aborted) on drop.
pub struct Streams {
    tasks: Vec<JoinHandle<()>>,
    /// Streams that ended or broke while open.
    pub broken: Arc<AtomicU64>,
}

/// Posts channel messages as the members, round-robin: to each member's home peer
/// (the user path) or straight to a tracker (where the message becomes durable).
#[derive(Clone)]
pub struct ChannelPoster {
    http: reqwest::Client,
    members: Arc<Vec<Member>>,
    channel: ChannelName,
    /// Empty: each member's home peer; else member `i` posts to tracker `i % len`
    /// (replicas share the posters evenly).
    trackers: Arc<Vec<String>>,
}

impl Chat {
    pub fn new(keys: TokenKeys) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().pool_max_idle_per_host(usize::MAX).tcp_nodelay(true).build()?;
        Ok(Self { http, keys })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `count` users named `prefix0`, `prefix1`..., spread round-robin over `peers`,
    /// each hosted on their peer and a member of `channel` (created if needed).
    pub async fn members(
        &self,
        prefix: &str,
        count: usize,
        peers: &[String],
        channel: &ChannelName,
    ) -> anyhow::Result<Vec<Member>> {
        let members = (0..count)
            .map(|index| self.member(&format!("{prefix}{index}"), &peers[index % peers.len()]))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.host_all(&members).await?;
        let Some(creator) = members.first() else { return Ok(members) };
        self.create_channel(creator, channel).await?;
        stream::iter(members.iter().skip(1).map(|member| self.join(member, channel)))
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(members)
    }

    /// A new session for `name`, whose home will be the peer at `home`.
    pub fn member(&self, name: &str, home: &str) -> anyhow::Result<Member> {
        let name = Username::parse(name).map_err(|err| anyhow::anyhow!("bad user name {name}: {err}"))?;
        let (token, _) = self.keys.issue(&name)?;
        Ok(Member { name, token, home: home.to_owned() })
    }

    /// Makes every member's home peer host them (their first request there does).
    pub async fn host_all(&self, members: &[Member]) -> anyhow::Result<()> {
        stream::iter(members.iter().map(|member| self.host(member)))
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn host(&self, member: &Member) -> anyhow::Result<()> {
        let response = self
            .http
            .get(format!("{}/me", member.home))
            .bearer_auth(&member.token)
            .timeout(CALL_TIMEOUT)
            .send()
            .await?;
        expect_success(response, "GET /me").await
    }

    async fn create_channel(&self, member: &Member, channel: &ChannelName) -> anyhow::Result<()> {
        let body = ChannelRequest { channel_name: channel.clone(), private: false };
        let response = self
            .http
            .post(format!("{}/create-channel", member.home))
            .bearer_auth(&member.token)
            .json(&body)
            .timeout(CALL_TIMEOUT)
            .send()
            .await?;
        // It exists already: an earlier round made it.
        if response.status() == reqwest::StatusCode::CONFLICT {
            return self.join(member, channel).await;
        }
        expect_success(response, "POST /create-channel").await
    }

    async fn join(&self, member: &Member, channel: &ChannelName) -> anyhow::Result<()> {
        let body = ChannelRequest { channel_name: channel.clone(), private: false };
        let response = self
            .http
            .post(format!("{}/join-channel", member.home))
            .bearer_auth(&member.token)
            .json(&body)
            .timeout(CALL_TIMEOUT)
            .send()
            .await?;
        expect_success(response, "POST /join-channel").await
    }

    /// Opens `GET /events` for each of `members` (waiting until every stream answered
    /// 200), read in the background. With a probe, receiver `i` is `members[i]` and
    /// channel messages and resets are counted.
    pub async fn open_streams(&self, members: &[Member], probe: Option<Arc<Probe>>) -> anyhow::Result<Streams> {
        let broken = Arc::new(AtomicU64::new(0));
        let opening = members.iter().enumerate().map(|(index, member)| {
            let probe = probe.clone();
            let broken = broken.clone();
            async move {
                // Only the response head is bounded: the stream itself stays open.
                let request = self.http.get(format!("{}/events", member.home)).bearer_auth(&member.token).send();
                let response = tokio::time::timeout(CALL_TIMEOUT, request)
                    .await
                    .map_err(|_| anyhow::anyhow!("GET /events did not answer within {CALL_TIMEOUT:?}"))??;
                if !response.status().is_success() {
                    bail!("GET /events answered {}", response.status());
                }
                Ok(tokio::spawn(read_stream(response, index, probe, broken)))
            }
        });
        let tasks = stream::iter(opening).buffer_unordered(SETUP_CONCURRENCY * 2).try_collect().await?;
        Ok(Streams { tasks, broken })
    }
}

impl Streams {
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn broken(&self) -> u64 {
        self.broken.load(Ordering::Relaxed)
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ChannelPoster {
    /// `trackers` empty: post to each member's home peer; else to the trackers.
    pub fn new(chat: &Chat, members: Vec<Member>, channel: ChannelName, trackers: Vec<String>) -> Self {
        Self { http: chat.http.clone(), members: Arc::new(members), channel, trackers: Arc::new(trackers) }
    }
}

impl Poster for ChannelPoster {
    async fn post(&self, seq: u64, text: String) -> anyhow::Result<()> {
        let index = (seq % self.members.len() as u64) as usize;
        let member = &self.members[index];
        let base = if self.trackers.is_empty() { &member.home } else { &self.trackers[index % self.trackers.len()] };
        let message = MessageText::parse(&text).map_err(|err| anyhow::anyhow!("bad message text: {err}"))?;
        let body = SendChannelMessage { channel_name: self.channel.clone(), message, reply_to: None };
        let response = self
            .http
            .post(format!("{base}/send-channel-message"))
            .bearer_auth(&member.token)
            .json(&body)
            .timeout(CALL_TIMEOUT)
            .send()
            .await?;
        expect_success(response, "POST /send-channel-message").await
    }
}

async fn read_stream(response: reqwest::Response, receiver: usize, probe: Option<Arc<Probe>>, broken: Arc<AtomicU64>) {
    let mut events = response.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        let Ok(event) = event else { break };
        if let Some(probe) = &probe {
            match event.event.as_str() {
                "channel_message" => probe.delivered(receiver, &event.data),
                "reset" => probe.reset(),
                _ => {}
            }
        }
    }
    broken.fetch_add(1, Ordering::Relaxed);
}

/// Reads the whole reply (so the connection goes back to the pool) and fails on a
/// non-2xx status, with the service's message.
async fn expect_success(response: reqwest::Response, what: &str) -> anyhow::Result<()> {
    let status = response.status();
    let body = response.bytes().await.with_context(|| format!("{what}: the reply was cut off"))?;
    if !status.is_success() {
        bail!("{what} answered {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}
