//! New names meet one profile, and a name that looks like a taken one is taken.

use crate::{Backend, Storage, spawn, spawn_on};

on_both_backends!(look_alikes_of_a_taken_name_are_taken, invisible_and_stray_mark_names_are_refused);

/// `user1` taken: its look-alikes in full width or upper case are the same name
/// (409), so is `сор` in Cyrillic beside `cop`; `uѕer1` with a Cyrillic `ѕ` mixes
/// scripts (400).
async fn look_alikes_of_a_taken_name_are_taken(backend: Backend) {
    let Some(auth) = spawn(backend, true).await else { return };
    assert_eq!(auth.post("/register", "username=user1&password=password1").await.0, 201);
    assert_eq!(auth.post("/register", "username=cop&password=password1").await.0, 201);
    for alike in ["user%EF%BC%91", "%EF%BC%B5%EF%BC%B3%EF%BC%A5%EF%BC%B21", "%D1%81%D0%BE%D1%80"] {
        let (status, body) = auth.post("/register", &format!("username={alike}&password=password1")).await;
        assert_eq!(status, 409, "{alike}: {body}");
        assert_eq!(body["status"], "error");
    }
    for mixed in ["u%D1%95er1", "%D0%B0lice"] {
        let (status, body) = auth.post("/register", &format!("username={mixed}&password=password1")).await;
        assert_eq!(status, 400, "{mixed}: {body}");
    }
    // Vietnamese keeps working, and a different name is a different name.
    assert_eq!(auth.post("/register", "username=Nguy%E1%BB%85n&password=password1").await.0, 201);
    assert_eq!(auth.post("/register", "username=user2&password=password1").await.0, 201);
}

/// U+3164 alone, a right-to-left override, a zero-width space, a combining mark on
/// a digit, and two scripts in one name are refused (400).
async fn invisible_and_stray_mark_names_are_refused(backend: Backend) {
    let Some(auth) = spawn(backend, true).await else { return };
    for bad in ["%E3%85%A4", "%E2%80%AEuser", "us%E2%80%8Ber", "user1%CC%88", "u%D1%95er9"] {
        let (status, body) = auth.post("/register", &format!("username={bad}&password=password1")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["status"], "error");
    }
}

/// A user stored before names had keys (the column empty) gets one when auth opens
/// the table, so its look-alikes are refused too.
#[tokio::test]
async fn users_from_before_name_keys_get_theirs_at_start() {
    let Some(storage) = Storage::new(Backend::Postgres, true).await else { return };
    let first = spawn_on(&storage).await;
    assert_eq!(first.post("/register", "username=cop&password=password1").await.0, 201);
    let pool = first.state.users.pool().unwrap().clone();
    pool.get().await.unwrap().execute("UPDATE auth_users SET name_skeleton = NULL", &[]).await.unwrap();
    let second = spawn_on(&storage).await;
    // Cyrillic с, о, р.
    assert_eq!(second.post("/register", "username=%D1%81%D0%BE%D1%80&password=password1").await.0, 409);
    assert_eq!(second.post("/login", "username=cop&password=password1").await.0, 200);
}

/// Two replicas signing up look-alike names at once (Cyrillic `сор` and Latin `cop`,
/// full-width and plain digits): exactly one of each pair gets the name.
#[tokio::test]
async fn concurrent_sign_ups_of_look_alikes_on_two_replicas_give_exactly_one_success() {
    let Some(storage) = Storage::new(Backend::Postgres, true).await else { return };
    let (a, b) = (spawn_on(&storage).await, spawn_on(&storage).await);
    for (through_a, through_b) in [("cop", "%D1%81%D0%BE%D1%80"), ("user7", "user%EF%BC%97"), ("Bob2", "bob2")] {
        let (body_a, body_b) =
            (format!("username={through_a}&password=password1"), format!("username={through_b}&password=password1"));
        let (status_a, status_b) = tokio::join!(a.post("/register", &body_a), b.post("/register", &body_b));
        let mut statuses = [status_a.0, status_b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{through_a} / {through_b}: {} / {}", status_a.1, status_b.1);
    }
}
