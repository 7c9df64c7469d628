//! Start-up order and liveness: a peer that starts before the tracker waits for it;
//! a peer that stops leaves the pool and its users show offline.

use kit::config::Secrets;
use testkit::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_started_before_the_tracker_registers_once_the_tracker_is_up() {
    testkit::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::random();
    // Reserve the tracker's port, then leave it closed: connections are refused.
    let tracker_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    let peer_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_config = peer::Config {
        tracker_url: format!("http://127.0.0.1:{tracker_port}"),
        data_dir: dir.path().join("peers"),
        heartbeat_secs: 1,
        secrets: secrets.clone(),
        ..peer::Config::default()
    };
    let peer_state = peer::AppState::new(&peer_config, peer_listener.local_addr().unwrap()).await.unwrap();
    let readiness = peer_state.readiness.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let peer = tokio::spawn(peer::serve(peer_listener, peer_state, stop.clone().cancelled_owned()));

    // The peer serves, but is not ready: there is no tracker yet.
    assert!(!readiness.is_ready());

    let tracker_config =
        tracker::Config { data_dir: dir.path().join("tracker"), secrets, ..tracker::Config::default() };
    let tracker_listener = tokio::net::TcpListener::bind(("127.0.0.1", tracker_port)).await.unwrap();
    let tracker = tokio::spawn(tracker::serve(
        tracker_listener,
        tracker::AppState::new(&tracker_config).await.unwrap(),
        stop.clone().cancelled_owned(),
    ));
    testkit::eventually("the peer registers once the tracker is up", || async { readiness.is_ready() }).await;

    stop.cancel();
    peer.await.unwrap().unwrap();
    tracker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_leaves_the_pool_at_once_and_its_users_show_offline() {
    // A TTL longer than `eventually` waits: only the peer's word can be this quick.
    let mut sys = System::builder().peers(2).liveness(30, 1).start().await;
    let _alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    assert_eq!(bob.get("/get-list").await.body.as_array().unwrap().len(), 1);
    assert_eq!(bob.at(sys.tracker_url()).get("/get-peers").await.body.as_array().unwrap().len(), 2);
    sys.stop_peer(0).await;
    testkit::eventually("alice shows offline as soon as her peer stopped", || async {
        bob.get("/get-list").await.body.as_array().is_some_and(|users| users.is_empty())
    })
    .await;
    assert_eq!(
        bob.at(sys.tracker_url()).get("/get-peers").await.body.as_array().unwrap().len(),
        1,
        "the peer left the pool"
    );
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_does_not_take_back_a_user_who_moved() {
    let mut sys = System::builder().peers(3).start().await;
    let _alice_on_0 = sys.login(0, "user1", "password1").await;
    sys.stop_peer(0).await;
    // Alice's browser lands on another peer meanwhile (hers is down).
    let alice = sys.login(1, "user1", "password1").await;
    let bob = sys.login(2, "user2", "password2").await;
    sys.restart_peer(0).await;
    // Peer 0 remembers hosting alice and announces her again; the tracker refuses,
    // since she is signed in on peer 1 now.
    let metrics_url = format!("{}/metrics", sys.tracker_url());
    testkit::eventually("the tracker refused peer 0's claim on alice", || async {
        let text = sys.client().get(&metrics_url).send().await.unwrap().text().await.unwrap();
        text.lines().any(|line| {
            line.starts_with("http_requests_total") && line.contains("/submit-info") && line.contains("status=\"409\"")
        })
    })
    .await;
    let listed = bob.get("/get-list").await.body;
    assert!(listed.as_array().unwrap().iter().all(|user| user["port"] != sys.peer_port(0)), "{listed}");
    let lookup = bob.at(sys.tracker_url()).get("/lookup?username=user1").await;
    assert_eq!(lookup.body["port"], sys.peer_port(1), "alice's home stays peer 1");
    let sent = bob.post("/send-peer", "username=user1&message=where+are+you").await;
    assert_eq!(sent.body["delivered"], true, "{}", sent.body);
    assert_eq!(alice.get("/get-received-messages").await.body[0]["message"], "where are you");
    sys.shutdown().await;
}
