//! `/readyz` follows the database: a tracker on PostgreSQL whose database is dropped
//! under it stops counting as ready, while `/healthz` (the process) still answers.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::{Backend, Storage, on_both_backends};

on_both_backends!(readyz_answers_while_the_database_does);

async fn readyz_answers_while_the_database_does(backend: Backend) {
    let Some(storage) = Storage::new(backend, "readyz_answers_while_the_database_does").await else { return };
    let tracker = storage.start().await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let ready = client.get(tracker.at("readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_on_postgres_fails_once_the_database_is_dropped() {
    let test = "readyz_on_postgres_fails_once_the_database_is_dropped";
    let Some(mut storage) = Storage::new(Backend::Postgres, test).await else { return };
    let tracker = storage.start().await;
    let client = reqwest::Client::new();
    assert_eq!(client.get(tracker.at("readyz")).send().await.unwrap().status(), 200);

    // Drops the database with its connections (`WITH (FORCE)`).
    drop(storage.database.take());

    // The answer before is reused for at most 2 s; each check gives up within 1 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let not_ready = loop {
        let started = Instant::now();
        let response = client.get(tracker.at("readyz")).send().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3), "a probe is answered quickly");
        if response.status() == 503 {
            break response;
        }
        assert_eq!(response.status(), 200);
        assert!(Instant::now() < deadline, "/readyz still says ready 10 s after the database was dropped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let body: Value = not_ready.json().await.unwrap();
    assert_eq!(
        (&body["status"], &body["message"]),
        (&Value::from("error"), &Value::from("the database does not answer"))
    );
    assert_eq!(client.get(tracker.at("healthz")).send().await.unwrap().status(), 200, "the process still answers");
}
