//! A storm of log-ins against a hash gate of one turn and one place in the queue:
//! the overflow gets a fast JSON `503` with `Retry-After`, no more than one hash runs
//! at once, and the user logs in right after (issue 11: unbounded Argon2id runs took
//! auth past its memory limit).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::{Backend, Storage, spawn_on};

on_both_backends!(a_storm_of_log_ins_beyond_the_hash_queue_gets_fast_503s_and_the_user_still_logs_in);

const STORM: usize = 10;

async fn a_storm_of_log_ins_beyond_the_hash_queue_gets_fast_503s_and_the_user_still_logs_in(backend: Backend) {
    let Some(mut storage) = Storage::new(backend, true).await else { return };
    {
        let config = &mut Arc::get_mut(&mut storage).expect("the only handle").config;
        config.hash_concurrency = 1;
        config.hash_queue = 1;
        // Long enough that the one queued check always gets its turn: every 503 here
        // comes from the full queue, at once.
        config.hash_queue_wait_ms = 60_000;
    }
    let auth = spawn_on(&storage).await;
    auth.state.users.add(&wire::names::Username::parse("alice").unwrap(), "password1").await.unwrap();

    // Right and wrong passwords and an unknown name (its dummy check costs the same);
    // at most 4 wrong ones for alice, under the throttle's limit.
    let storm = (0..STORM).map(|i| {
        let client = auth.client.clone();
        let url = format!("{}/login", auth.url);
        let (body, expected) = match i % 3 {
            0 => ("username=alice&password=password1".to_owned(), 200),
            1 => ("username=alice&password=wrong-password".to_owned(), 401),
            _ => (format!("username=nobody{i}&password=password1"), 401),
        };
        tokio::spawn(async move {
            let response = client.post(url).body(body).send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            (expected, status, retry_after, body)
        })
    });
    let mut busy = 0;
    let mut answered = 0;
    for reply in futures_join(storm).await {
        let (expected, status, retry_after, body) = reply;
        if status == 503 {
            busy += 1;
            assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
            assert_eq!(body["status"], "error", "{body}");
            assert!(body["message"].as_str().unwrap().contains("try again"), "{body}");
        } else {
            answered += 1;
            assert_eq!(status, expected, "{body}");
        }
    }
    assert!(busy > 0, "{STORM} log-ins at once past a queue of 1, and none refused");
    assert!(answered > 0, "every log-in refused");

    // The refusals came from the full queue, without waiting; the metrics count them.
    let metrics = auth.client.get(format!("{}/metrics", auth.url)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(&format!("auth_hashes_refused_total{{reason=\"queue_full\"}} {busy}")),
        "{busy} refused:\n{metrics}"
    );
    // Counted inside the blocking task around each check: never two at once.
    assert_eq!(auth.state.users.hashing().peak_running(), 1, "hashes ran at once past the limit");

    // Right after the storm, the user logs in.
    let (status, body) = auth.post("/login", "username=alice&password=password1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "alice");
    // Once the storm is over nothing is left running or queued.
    let metrics = auth.client.get(format!("{}/metrics", auth.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("auth_hashes{stage=\"queued\"} 0"), "{metrics}");
    assert!(metrics.contains("auth_hashes{stage=\"running\"} 0"), "{metrics}");
}

/// Awaits every task, in order.
async fn futures_join<T: 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let tasks: Vec<_> = tasks.collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(tokio::time::timeout(Duration::from_secs(60), task).await.expect("a log-in hung").unwrap());
    }
    results
}
