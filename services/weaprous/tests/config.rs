//! Bad configuration stops a service at start, with a clear message and exit code 64;
//! so does a secret everyone knows, outside development.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

fn run(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weaprous"))
        .args(args)
        // Only the secrets the case gives.
        .env_remove("WEAPROUS_SESSION_SECRET")
        .env_remove("WEAPROUS_CLUSTER_SECRET")
        .env_remove("WEAPROUS_SESSION_SECRET_FILE")
        .env_remove("WEAPROUS_CLUSTER_SECRET_FILE")
        .env_remove("WEAPROUS_DEV")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // A service that should have stopped but serves instead fails the test, bounded:
    // it is killed after 20 s (reading stderr to its end waits for the exit).
    let pid = child.id();
    let (done, timeout) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if timeout.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    });
    let mut stderr = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut stderr).expect("stderr is readable");
    let status = child.wait().expect("the binary ends");
    let _ = done.send(());
    watchdog.join().expect("the watchdog ends");
    (status.code(), stderr)
}

/// Arguments, environment, and what the error must mention.
type Case = (&'static [&'static str], &'static [(&'static str, &'static str)], &'static str);

#[test]
fn bad_values_fail_before_binding_with_exit_code_64() {
    let cases: [Case; 5] = [
        (&["tracker"], &[("TRACKER_PEER_TTL_SECS", "1")], "peer_ttl_secs"),
        (&["tracker"], &[("TRACKER_SERVER_PORT", "nine thousand")], "server_port"),
        (&["peer", "--tracker-ip", "ftp://x"], &[], "ftp://x"),
        (&["peer", "--server-ip", "0.0.0.0"], &[], "--advertise"),
        (&["auth"], &[("AUTH_SESSION_TTL_SECS", "-5")], "session_ttl_secs"),
    ];
    for (args, envs, expected) in cases {
        let (code, stderr) = run(args, envs);
        assert_eq!(code, Some(64), "{args:?} {envs:?}: {stderr}");
        assert!(
            stderr.contains("invalid configuration") && stderr.to_lowercase().contains(expected),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn unknown_flags_are_usage_errors() {
    let (code, stderr) = run(&["tracker", "--no-such-flag"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--no-such-flag"));
    let (code, _) = run(&["--role", "tracker", "--help"], &[]);
    assert_eq!(code, Some(0), "the original's --role works");
}

#[test]
fn a_malformed_config_file_names_the_file() {
    let dir = std::env::temp_dir().join(format!("weaprous-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tracker.toml");
    std::fs::write(&file, "server_port = [\n").unwrap();
    let (code, stderr) = run(&["tracker", "--config", file.to_str().unwrap()], &[]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("tracker.toml"), "{stderr}");
}

const PUBLIC: &str = "weaprous-dev-secret-change-me";
const RANDOM: &str = "9f2c1e0b7a6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b";

#[test]
fn a_public_secret_outside_development_stops_every_service_with_exit_code_64() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.csv");
    let db = db.to_str().unwrap();
    let data = dir.path().to_str().unwrap();
    let services: [&[&str]; 3] = [
        &["auth", "--server-port", "0", "--db", db],
        &["tracker", "--server-port", "0", "--data-dir", data],
        &["peer", "--server-port", "0", "--data-dir", data, "--tracker-ip", "127.0.0.1:9"],
    ];
    // Unset (the built-in public default), and set to the public value of the repository.
    let secrets: [(&[(&str, &str)], &str); 3] = [
        (&[], "WEAPROUS_SESSION_SECRET and WEAPROUS_CLUSTER_SECRET"),
        (&[("WEAPROUS_SESSION_SECRET", PUBLIC), ("WEAPROUS_CLUSTER_SECRET", PUBLIC)], "WEAPROUS_SESSION_SECRET and"),
        (&[("WEAPROUS_SESSION_SECRET", RANDOM), ("WEAPROUS_CLUSTER_SECRET", PUBLIC)], "WEAPROUS_CLUSTER_SECRET unset"),
    ];
    for args in services {
        for (envs, names) in secrets {
            let (code, stderr) = run(args, envs);
            assert_eq!(code, Some(64), "{args:?} {envs:?}: {stderr}");
            assert!(
                stderr.contains(names) && stderr.contains("public value") && stderr.contains("WEAPROUS_DEV=1"),
                "{args:?} {envs:?}: the message names the secret and the way out: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn development_mode_accepts_the_public_secret_and_files_hold_real_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.csv").display().to_string();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_weaprous"));
    let args: Vec<String> =
        ["auth", "--server-ip", "127.0.0.1", "--server-port", "0", "--db", &db].map(String::from).to_vec();

    let dev = testkit::Child::spawn(
        binary,
        "auth-dev",
        &args,
        &[
            ("WEAPROUS_DEV", "1".into()),
            ("WEAPROUS_SESSION_SECRET", PUBLIC.into()),
            ("WEAPROUS_CLUSTER_SECRET", PUBLIC.into()),
        ],
    )
    .await;
    assert!(
        dev.logs().iter().any(|line| line.contains("development mode")),
        "the public secret is accepted with a warning: {:?}",
        dev.logs()
    );
    drop(dev);

    // Secrets mounted as files (compose and Kubernetes): `WEAPROUS_*_FILE`.
    let session = dir.path().join("session_secret");
    let cluster = dir.path().join("cluster_secret");
    std::fs::write(&session, format!("{RANDOM}\n")).unwrap();
    std::fs::write(&cluster, "another-random-value-0123456789abcdef\n").unwrap();
    let from_files = testkit::Child::spawn(
        binary,
        "auth-files",
        &args,
        &[
            ("WEAPROUS_SESSION_SECRET_FILE", session.display().to_string()),
            ("WEAPROUS_CLUSTER_SECRET_FILE", cluster.display().to_string()),
        ],
    )
    .await;
    assert!(from_files.port() > 0);

    // A file holding the public value is refused like the variable.
    std::fs::write(&session, PUBLIC).unwrap();
    let session_file = session.display().to_string();
    let cluster_file = cluster.display().to_string();
    let (code, stderr) = run(
        &["auth", "--server-port", "0", "--db", &db],
        &[("WEAPROUS_SESSION_SECRET_FILE", &session_file), ("WEAPROUS_CLUSTER_SECRET_FILE", &cluster_file)],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("WEAPROUS_SESSION_SECRET unset or set to a public value"), "{stderr}");
}
