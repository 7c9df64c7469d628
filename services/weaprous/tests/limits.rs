//! A service raises its soft open-file limit to the hard limit at start: every
//! connection is a file, and a soft limit of 1024 would cap a peer near a thousand
//! event streams.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The soft and hard "Max open files" of a process.
fn open_file_limits(pid: &str) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    let mut numbers = line["Max open files".len()..].split_whitespace().map(str::parse);
    Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
}

#[test]
fn a_service_started_with_a_low_soft_limit_raises_it_to_the_hard_limit() {
    let (_, hard) = open_file_limits("self").expect("/proc/self/limits");
    assert!(hard > 256, "this test needs a hard limit above 256, not {hard}");
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let mut tracker = Command::new("sh")
        .args(["-c", r#"ulimit -S -n 256 && exec "$0" "$@""#, env!("CARGO_BIN_EXE_weaprous"), "tracker"])
        .args(["--server-port", &port, "--data-dir", data.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = tracker.id().to_string();

    // The limit is raised before the port is bound: once it answers, read it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err() {
        assert!(Instant::now() < deadline, "the tracker did not listen within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = open_file_limits(&pid);
    let _ = tracker.kill();
    let _ = tracker.wait();
    assert_eq!(seen, Some((hard, hard)), "the tracker's open-file limits (started with a soft limit of 256)");
}
