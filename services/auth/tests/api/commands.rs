//! The `auth` binary's user commands, on both backends, beside a running server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use secrecy::ExposeSecret;

use crate::{Backend, Storage, spawn_on};

on_both_backends!(import_csv_imports_into_the_configured_store, add_user_adds_to_the_configured_store);

/// Runs `auth ARGS` on `storage`'s store, with `stdin` as its input.
fn auth_command(storage: &Storage, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auth"));
    // Nothing from this environment: no config file, no database URL but the one given.
    command.current_dir(storage.dir.path()).env_remove("WEAPROUS_DATABASE_URL").env_remove("AUTH_CONFIG");
    match &storage.config.secrets.database_url {
        Some(url) => command.args(["--database-url", url.expose_secret()]),
        None => command.arg("--db").arg(&storage.config.db),
    };
    let mut child =
        command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

async fn import_csv_imports_into_the_configured_store(backend: Backend) {
    let Some(storage) = Storage::new(backend, true).await else { return };
    let auth = spawn_on(&storage).await;
    let file = storage.dir.path().join("database.csv");
    std::fs::write(&file, "username,password\nuser1,password1\nnot a name,password1\n").unwrap();
    let output = auth_command(&storage, &["import-csv", file.to_str().unwrap()], "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("line 3:"), "the bad line is named: {stderr}");
    assert!(stderr.contains("1 added, 0 skipped"), "{stderr}");
    // The running server sees the user the command added.
    assert_eq!(auth.post("/login", "username=user1&password=password1").await.0, 200);
}

async fn add_user_adds_to_the_configured_store(backend: Backend) {
    let Some(storage) = Storage::new(backend, true).await else { return };
    let auth = spawn_on(&storage).await;
    let output = auth_command(&storage, &["add-user", "zoe"], "zoes-password\n");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(auth.post("/login", "username=zoe&password=zoes-password").await.0, 200);
    let again = auth_command(&storage, &["add-user", "ZOE"], "another-password\n");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && stderr.contains("already exists"), "{stderr}");
    assert_eq!(auth.post("/login", "username=zoe&password=zoes-password").await.0, 200);
}
