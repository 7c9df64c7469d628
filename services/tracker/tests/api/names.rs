//! New channel names meet the profile of new names, and a name that looks like an
//! existing channel's is taken.

use serde_json::{Value, json};

use crate::{Backend, Storage, Tracker, on_both_backends};

on_both_backends!(look_alike_and_invisible_channel_names_are_refused);

async fn look_alike_and_invisible_channel_names_are_refused(backend: Backend) {
    let Some(storage) = Storage::new(backend, "look_alike_and_invisible_channel_names_are_refused").await else {
        return;
    };
    let tracker = storage.start().await;
    assert_eq!(create(&tracker, "cop").await.0, 201);
    // U+217C SMALL ROMAN NUMERAL FIFTY, full width, and Cyrillic с, о, р: taken.
    for alike in ["genera\u{217C}", "ＧＥＮＥＲＡＬ", "\u{441}\u{43E}\u{440}"] {
        let (status, body) = create(&tracker, alike).await;
        assert_eq!(status, 409, "{alike}: {body}");
        assert_eq!(body["status"], "error");
    }
    // A Cyrillic е among Latin letters, the Hangul filler alone, a right-to-left
    // override: refused.
    for bad in ["gen\u{435}ral", "\u{3164}", "\u{202E}lareneg"] {
        let (status, body) = create(&tracker, bad).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
    }
    let channels: Value = tracker
        .client
        .user_get(tracker.at("get-all-channels"), &tracker.token("bob"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(channels["channels"].as_array().unwrap().len(), 6, "{channels}");
}

async fn create(tracker: &Tracker, name: &str) -> (u16, Value) {
    let response = tracker
        .client
        .user_post(tracker.at("create-channel"), &tracker.token("bob"), &json!({ "channel_name": name }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Two replicas creating look-alike channels at once: exactly one gets the name.
#[tokio::test]
async fn concurrent_creations_of_look_alike_channels_on_two_replicas_give_exactly_one_success() {
    let Some(storage) =
        Storage::new(Backend::Postgres, "concurrent_creations_of_look_alike_channels_on_two_replicas").await
    else {
        return;
    };
    let (a, b) = (storage.start().await, storage.start().await);
    for (through_a, through_b) in [("cop", "\u{441}\u{43E}\u{440}"), ("room7", "room７"), ("lobby", "LOBBY")] {
        let ((status_a, body_a), (status_b, body_b)) = tokio::join!(create(&a, through_a), create(&b, through_b));
        let mut statuses = [status_a, status_b];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{through_a} / {through_b}: {body_a} / {body_b}");
    }
}
