//! Bad configuration stops a service at start, with a clear message and exit code 64.

use std::process::Command;

fn run(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_weaprous"))
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("WEAPROUS_SESSION_SECRET")
        .output()
        .expect("the binary runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
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
