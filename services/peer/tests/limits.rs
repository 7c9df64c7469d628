//! The `peer` binary (what the container images run) raises its soft open-file
//! limit to the hard limit at start (`kit::start`, which every binary calls): every
//! connection is a file, and a soft limit of 1024 would cap a peer near a thousand
//! event streams.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kit::limits::open_files_of;

#[test]
fn a_peer_started_with_a_low_soft_limit_raises_it_to_the_hard_limit() {
    let (_, hard) = open_files_of("self").expect("/proc/self/limits");
    assert!(hard > 256, "this test needs a hard limit above 256, not {hard}");
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut peer = Command::new("sh")
        .args(["-c", r#"ulimit -S -n 256 && exec "$0" "$@""#, env!("CARGO_BIN_EXE_peer")])
        .args(["--server-port", &port.to_string(), "--data-dir", data.path().to_str().unwrap()])
        // No tracker: the peer serves (not ready) all the same.
        .args(["--tracker-ip", "127.0.0.1:9"])
        // Secrets no one else knows: a public one would stop the peer at start.
        .env("WEAPROUS_SESSION_SECRET", "limits-test-session-secret-7f3a9c")
        .env("WEAPROUS_CLUSTER_SECRET", "limits-test-cluster-secret-1b8e2d")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // The limit is raised before the port is bound: once it answers, read it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the peer did not listen within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = open_files_of(&peer.id().to_string());
    let _ = peer.kill();
    let _ = peer.wait();
    assert_eq!(seen, Some((hard, hard)), "the peer's open-file limits (started with a soft limit of 256)");
}
