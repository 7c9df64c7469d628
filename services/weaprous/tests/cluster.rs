//! Cluster mode as separate processes on one PostgreSQL database: 2 auth, 2 trackers,
//! 3 peers and the proxy, under steady traffic through the proxy while a tracker, then
//! an auth, then a peer get SIGKILL and come back. Nothing acknowledged is lost, every
//! event stream gets every channel message, and the failures each kill causes are
//! counted and reported.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::Value;
use testkit::{Backend, System, TestUser};
use tokio::sync::Mutex;

/// Failures seen by one kind of traffic: when each happened, since the start.
#[derive(Default)]
struct Failures {
    at: Vec<Duration>,
    first: Option<String>,
}

/// Logs `user` in on peer `index`, then talks through the proxy with the session and
/// the proxy's sticky cookie, as a browser does.
async fn through_proxy(sys: &System, index: usize, user: &str, password: &str) -> TestUser {
    let on_peer = sys.login(index, user, password).await;
    let via = on_peer.via(&sys.proxy_url(), "localhost");
    let response = via.request(reqwest::Method::GET, "/me").send().await.expect("the proxy answers");
    let sticky = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookie| cookie.strip_prefix("weaprous_backend=").map(|rest| rest.split(';').next().unwrap_or("")))
        .map(|value| format!("weaprous_backend={value}"))
        .unwrap_or_default();
    via.with_extra_cookies(&sticky)
}

/// Keeps the proxy's sticky cookie as a browser does: when the proxy pins the user to
/// another peer (theirs died), the next requests go there.
fn follow_sticky(user: &mut TestUser, headers: &reqwest::header::HeaderMap) {
    let sticky =
        headers.get_all("set-cookie").iter().filter_map(|value| value.to_str().ok()).find_map(|cookie| {
            cookie.strip_prefix("weaprous_backend=").map(|rest| rest.split(';').next().unwrap_or(""))
        });
    if let Some(value) = sticky {
        *user = user.with_extra_cookies(&format!("weaprous_backend={value}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_any_one_replica_under_load_loses_nothing_acknowledged() {
    let Some(backend) = Backend::postgres("killing_any_one_replica_under_load_loses_nothing_acknowledged").await else {
        return;
    };
    // Load as fast as it goes: the rate limits, which a person never meets, are off.
    let mut sys = System::builder()
        .processes(env!("CARGO_BIN_EXE_weaprous"))
        .backend(backend)
        .without_rate_limits()
        .auths(2)
        .trackers(2)
        .peers(3)
        .proxy()
        .start()
        .await;
    let poster = through_proxy(&sys, 0, "user1", "password1").await;
    let sender = through_proxy(&sys, 1, "user2", "password2").await;
    let listener = through_proxy(&sys, 2, "user3", "password3").await;
    for user in [&poster, &listener] {
        assert_eq!(user.post("/join-channel", "channel_name=general").await.status, 200);
    }

    let started = Instant::now();
    let running = Arc::new(AtomicBool::new(true));

    // Channel messages, one at a time, each acknowledged with its id.
    let channel_traffic = {
        let (mut poster, running) = (poster.clone(), running.clone());
        tokio::spawn(async move {
            let (mut acknowledged, mut failures) = (Vec::new(), Failures::default());
            let mut n = 0;
            while running.load(Ordering::Relaxed) {
                n += 1;
                let text = format!("c{n}");
                let reply = poster.post("/send-channel-message", &format!("channel_name=general&message={text}")).await;
                follow_sticky(&mut poster, &reply.headers);
                match reply.body["id"].as_u64() {
                    Some(id) if reply.status == 200 => acknowledged.push((id, text, started.elapsed())),
                    _ => fail(&mut failures, started, format!("{} {}", reply.status, reply.body)),
                }
            }
            (acknowledged, failures)
        })
    };
    // Direct messages from user2 to user3.
    let direct_traffic = {
        let (mut sender, running) = (sender.clone(), running.clone());
        tokio::spawn(async move {
            let (mut acknowledged, mut failures) = (Vec::new(), Failures::default());
            let mut n = 0;
            while running.load(Ordering::Relaxed) {
                n += 1;
                let text = format!("d{n}");
                let reply = sender.post("/send-peer", &format!("username=user3&message={text}")).await;
                follow_sticky(&mut sender, &reply.headers);
                if matches!(reply.status, 200 | 202) {
                    acknowledged.push(text);
                } else {
                    fail(&mut failures, started, format!("{} {}", reply.status, reply.body));
                }
            }
            (acknowledged, failures)
        })
    };
    // Log-ins through the proxy, and idempotent reads.
    let login_and_read_traffic = {
        let (client, proxy, mut reader, running) =
            (sys.client().clone(), sys.proxy_url(), poster.clone(), running.clone());
        tokio::spawn(async move {
            let (mut logins, mut reads) = (Failures::default(), Failures::default());
            while running.load(Ordering::Relaxed) {
                let login = client
                    .post(format!("{proxy}/login"))
                    .header("host", "localhost")
                    .header("accept", "application/json")
                    .body("username=user4&password=password4")
                    .send()
                    .await;
                match login {
                    Ok(response) if testkit::session_token(response.headers()).is_some() => {}
                    Ok(response) => fail(&mut logins, started, format!("log-in {}", response.status())),
                    Err(err) => fail(&mut logins, started, format!("log-in {err}")),
                }
                let read = reader.post("/get-channel-messages", "channel_name=general&limit=20").await;
                follow_sticky(&mut reader, &read.headers);
                if read.status != 200 {
                    fail(&mut reads, started, format!("read {} {}", read.status, read.body));
                }
            }
            (logins, reads)
        })
    };
    // user3's event stream, reconnecting as the page does: resume from the last id,
    // and reload the history when the peer says it cannot (`reset`).
    let seen_by_stream: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let caught_up = Arc::new(AtomicBool::new(false));
    let stream_task = {
        let (mut listener, seen, caught_up) = (listener.clone(), seen_by_stream.clone(), caught_up.clone());
        tokio::spawn(async move {
            let mut last_id: Option<String> = None;
            let mut reconnects = 0;
            while !caught_up.load(Ordering::Relaxed) {
                let mut request = listener.request(reqwest::Method::GET, "/events");
                if let Some(id) = &last_id {
                    request = request.header("last-event-id", id.clone());
                }
                let Ok(response) = request.send().await else {
                    reconnects += 1;
                    continue;
                };
                follow_sticky(&mut listener, response.headers());
                if response.status() != 200 {
                    reconnects += 1;
                    continue;
                }
                let mut events = response.bytes_stream().eventsource();
                loop {
                    let next = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
                    if caught_up.load(Ordering::Relaxed) {
                        break;
                    }
                    let event = match next {
                        Ok(Some(Ok(event))) => event,
                        Ok(_) => break,
                        Err(_) => continue,
                    };
                    if !event.id.is_empty() {
                        last_id = Some(event.id.clone());
                    }
                    if event.event == "channel_message" {
                        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                        if let Some(id) = data["id"].as_u64() {
                            seen.lock().await.insert(id);
                        }
                    } else if event.event == "reset" {
                        let history = listener.whole_channel_history("general").await;
                        seen.lock().await.extend(history.iter().filter_map(|m| m["id"].as_u64()));
                    }
                }
                reconnects += 1;
            }
            reconnects
        })
    };

    // The kills, each after some steady traffic, each replica back before the next.
    let steady = Duration::from_secs(2);
    let mut kills = Vec::new();
    tokio::time::sleep(steady).await; // Traffic runs meanwhile: this is the load's length.
    kills.push(("tracker", started.elapsed()));
    sys.kill_tracker(0).await;
    tokio::time::sleep(steady).await;
    sys.restart_tracker_at(0).await;
    tokio::time::sleep(steady).await;
    kills.push(("auth", started.elapsed()));
    sys.kill_auth(0).await;
    tokio::time::sleep(steady).await;
    sys.restart_auth(0).await;
    tokio::time::sleep(steady).await;
    kills.push(("peer", started.elapsed()));
    sys.kill_peer(2).await;
    tokio::time::sleep(steady).await;
    sys.restart_peer(2).await;
    tokio::time::sleep(steady).await;
    running.store(false, Ordering::Relaxed);

    let (channel_acked, channel_failures) = channel_traffic.await.unwrap();
    let (direct_acked, direct_failures) = direct_traffic.await.unwrap();
    let (login_failures, read_failures) = login_and_read_traffic.await.unwrap();
    // The stream gets a bounded while to deliver what was acknowledged last.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let seen = seen_by_stream.lock().await;
        if channel_acked.iter().all(|(id, _, _)| seen.contains(id)) {
            break;
        }
        drop(seen);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    caught_up.store(true, Ordering::Relaxed);
    let reconnects = stream_task.await.unwrap();

    // The report: per kill, how long each kind of traffic kept failing.
    for (kind, failures) in [
        ("channel messages", &channel_failures),
        ("direct messages", &direct_failures),
        ("log-ins", &login_failures),
        ("reads", &read_failures),
    ] {
        let spans: Vec<String> = kills
            .iter()
            .map(|(what, at)| format!("{what}: {:.2} s", error_span(&failures.at, *at, steady * 2).as_secs_f64()))
            .collect();
        eprintln!(
            "{kind}: {} failed ({}); first error: {}",
            failures.at.len(),
            spans.join(", "),
            failures.first.as_deref().unwrap_or("none")
        );
    }
    eprintln!(
        "acknowledged: {} channel, {} direct; stream reconnects: {reconnects}",
        channel_acked.len(),
        direct_acked.len()
    );

    // Every acknowledged channel message once, in order.
    let history = poster.whole_channel_history("general").await;
    let stored: Vec<(u64, String)> =
        history.iter().map(|m| (m["id"].as_u64().unwrap(), m["text"].as_str().unwrap().to_owned())).collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, text) in &stored {
        *counts.entry(text.as_str()).or_default() += 1;
    }
    for (id, text, _) in &channel_acked {
        assert_eq!(counts.get(text.as_str()), Some(&1), "acknowledged message {text} (id {id}) is stored once");
        assert!(stored.contains(&(*id, text.clone())), "{text} keeps its id {id}");
    }
    let acked_ids: Vec<u64> = channel_acked.iter().map(|(id, _, _)| *id).collect();
    assert!(acked_ids.windows(2).all(|pair| pair[0] < pair[1]), "one sender's messages are in order");
    assert!(channel_acked.len() > 20, "the load ran: {} messages acknowledged", channel_acked.len());

    // The stream saw every acknowledged channel message.
    let seen = seen_by_stream.lock().await;
    let missed: Vec<(u64, Duration)> =
        channel_acked.iter().filter(|(id, _, _)| !seen.contains(id)).map(|(id, _, at)| (*id, *at)).collect();
    assert!(missed.is_empty(), "the event stream missed {missed:?} (id, when acknowledged); kills: {kills:?}");

    // Every acknowledged direct message is in user3's conversation, once.
    let mut texts: Vec<String> = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let path = match before {
            Some(seq) => format!("/get-conversation?with=user2&limit=500&before={seq}"),
            None => "/get-conversation?with=user2&limit=500".to_owned(),
        };
        let page = listener.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let messages = page.body["messages"].as_array().expect("messages").clone();
        before = messages.first().and_then(|message| message["seq"].as_u64());
        texts.extend(messages.iter().filter_map(|message| message["message"].as_str().map(str::to_owned)));
        if page.body["has_more"] != true || before.is_none() {
            break;
        }
    }
    for text in &direct_acked {
        assert_eq!(texts.iter().filter(|t| *t == text).count(), 1, "direct message {text} is there once");
    }

    // Idempotent reads never fail: the proxy retries them on another peer.
    assert!(read_failures.at.is_empty(), "reads failed: {:?}", read_failures.first);
    for (kind, failures) in [("channel", &channel_failures), ("direct", &direct_failures), ("log-in", &login_failures)]
    {
        for (what, at) in &kills {
            let span = error_span(&failures.at, *at, steady * 2);
            assert!(span <= Duration::from_secs(1), "{kind} traffic failed for {span:?} after the {what} kill");
        }
    }
    sys.shutdown().await;
}

fn fail(failures: &mut Failures, started: Instant, what: String) {
    failures.at.push(started.elapsed());
    failures.first.get_or_insert(what);
}

/// How long failures went on after a kill at `at`: from the first to the last failure
/// within `window` after it (zero when none).
fn error_span(failures: &[Duration], at: Duration, window: Duration) -> Duration {
    let within: Vec<Duration> = failures.iter().copied().filter(|t| *t >= at && *t <= at + window).collect();
    match (within.first(), within.last()) {
        (Some(first), Some(last)) => *last - *first,
        _ => Duration::ZERO,
    }
}
