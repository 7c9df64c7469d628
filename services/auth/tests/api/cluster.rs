//! Two auth replicas on one PostgreSQL database, each with its own state and server,
//! as behind the proxy in cluster mode: whatever one does, the other sees.

use auth::throttle::Throttle;
use serde_json::Value;
use wire::names::Username;

use crate::{Backend, Storage, TestAuth, spawn_on};

/// Two replicas on one fresh database, with `alice` (`password1`); `None` without a
/// PostgreSQL server.
async fn two_replicas() -> Option<(TestAuth, TestAuth)> {
    let storage = Storage::new(Backend::Postgres, true).await?;
    let (a, b) = (spawn_on(&storage).await, spawn_on(&storage).await);
    a.state.users.add(&Username::parse("alice").unwrap(), "password1").await.unwrap();
    Some((a, b))
}

#[tokio::test]
async fn a_user_signed_up_through_one_replica_logs_in_through_the_other() {
    let Some((a, b)) = two_replicas().await else { return };
    let (status, body) = a.post("/register", "username=bob&password=bobs-password").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = b.post("/login", "username=bob&password=bobs-password").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(b.post("/login", "username=bob&password=wrong-password").await.0, 401);
    assert_eq!(b.post("/register", "username=BOB&password=another-one").await.0, 409, "taken, in any case");
    // Sessions are signed with the shared secret: a token from one replica works on the other.
    let token = body["token"].as_str().unwrap();
    let session = a.client.get(format!("{}/session", a.url)).bearer_auth(token).send().await.unwrap();
    assert_eq!(session.status(), 200);
    assert_eq!(session.json::<Value>().await.unwrap()["username"], "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ups_of_one_name_on_both_replicas_give_exactly_one_success() {
    let Some((a, b)) = two_replicas().await else { return };
    // Several rounds, each a real race; the last differs in case only.
    let rounds = [
        ("carol", "carol"),
        ("dave", "dave"),
        ("erin", "erin"),
        ("frank", "frank"),
        ("grace", "grace"),
        ("heidi", "heidi"),
        ("ivan", "ivan"),
        ("Judy", "jUDY"),
    ];
    for (through_a, through_b) in rounds {
        let (body_a, body_b) =
            (format!("username={through_a}&password=password-a"), format!("username={through_b}&password=password-b"));
        let (status_a, status_b) = tokio::join!(a.post("/register", &body_a), b.post("/register", &body_b));
        let mut statuses = [status_a.0, status_b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{through_a} / {through_b}: {} / {}", status_a.1, status_b.1);
        let (winner, password) = if status_a.0 == 201 { (through_a, "password-a") } else { (through_b, "password-b") };
        for replica in [&a, &b] {
            let (status, body) = replica.post("/login", &format!("username={winner}&password={password}")).await;
            assert_eq!(status, 200, "the winner logs in everywhere: {body}");
        }
    }
    assert_eq!(a.state.users.count().await.unwrap(), 1 + rounds.len() as u64, "alice and one user per round");
}

#[tokio::test]
async fn failed_log_ins_are_counted_across_replicas() {
    let Some((a, b)) = two_replicas().await else { return };
    // The guesser alternates between the replicas, as a proxy would spread them.
    for attempt in 0..=Throttle::FREE_FAILURES {
        let replica = if attempt % 2 == 0 { &a } else { &b };
        assert_eq!(replica.post("/login", "username=alice&password=guess").await.0, 401, "attempt {attempt}");
    }
    for replica in [&a, &b] {
        let (status, body) = replica.post("/login", "username=alice&password=password1").await;
        assert_eq!(status, 429, "locked out on every replica, even with the right password: {body}");
    }
}

#[tokio::test]
async fn five_failures_through_one_replica_lock_the_name_on_the_other() {
    let Some((a, b)) = two_replicas().await else { return };
    for _ in 0..=Throttle::FREE_FAILURES {
        assert_eq!(a.post("/login", "username=alice&password=guess").await.0, 401);
    }
    let (status, body) = b.post("/login", "username=ALICE&password=guess").await;
    assert_eq!(status, 429, "{body}");
    assert!(body["message"].as_str().unwrap().contains("try again"), "{body}");
}

#[tokio::test]
async fn a_session_ended_through_one_replica_is_over_on_the_other() {
    let Some((a, b)) = two_replicas().await else { return };
    let (status, body) = a.post("/login", "username=alice&password=password1").await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let session = |replica: &TestAuth| replica.client.get(format!("{}/session", replica.url)).bearer_auth(token).send();
    assert_eq!(session(&b).await.unwrap().status(), 200);
    let logout = a.client.post(format!("{}/logout", a.url)).bearer_auth(token).send().await.unwrap();
    assert_eq!(logout.status(), 200);
    for replica in [&b, &a, &b] {
        let after = session(replica).await.unwrap();
        assert_eq!(after.status(), 401);
        assert!(after.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("session ended"));
    }
}
