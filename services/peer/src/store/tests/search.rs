//! Full-text search of mailboxes, on every backend.

use kit::search::SearchQuery;
use wire::api::{DirectChange, DirectChangeKind};
use wire::names::MessageText;

use super::{Backend, dm, user};

async fn found(backend: &Backend, owner: &str, q: &str, with: Option<&str>, limit: u64) -> Vec<String> {
    let store = backend.store().await;
    let with = with.map(user);
    let query = SearchQuery::parse(q).unwrap();
    let messages = store.search(&user(owner), &query, with.as_ref(), limit).await.unwrap();
    messages.into_iter().map(|message| message.id).collect()
}

async fn a_search_reads_only_the_owners_mailbox_newest_first(backend: Backend) {
    let store = backend.store().await;
    let mut sent = dm("m1", "alice", "bob", "lunch at noon?");
    sent.ts = 10;
    store.save_outgoing(&sent).await.unwrap();
    let mut received = dm("m2", "bob", "alice", "Lunch sounds good");
    received.ts = 20;
    store.save_incoming(&received).await.unwrap();
    let mut other = dm("m3", "carol", "alice", "no lunch for me, \"NEAR( x*");
    other.ts = 30;
    store.save_incoming(&other).await.unwrap();
    let mut private = dm("m4", "carol", "dave", "secret lunch plans");
    private.ts = 40;
    store.save_incoming(&private).await.unwrap();

    assert_eq!(found(&backend, "alice", "LUNCH", None, 10).await, ["m3", "m2", "m1"]);
    assert_eq!(found(&backend, "alice", "lunch", None, 2).await, ["m3", "m2"]);
    assert_eq!(found(&backend, "alice", "lunch", Some("bob"), 10).await, ["m2", "m1"]);
    assert_eq!(found(&backend, "alice", "lunch good", None, 10).await, ["m2"], "every word");
    assert_eq!(found(&backend, "alice", "\"NEAR( x*", None, 10).await, ["m3"], "syntax is text");
    assert!(found(&backend, "alice", "secret", None, 10).await.is_empty(), "not alice's mailbox");
    assert_eq!(found(&backend, "dave", "secret", None, 10).await, ["m4"]);
    assert!(found(&backend, "bob", "lunch", None, 10).await.is_empty(), "bob's copies are in his own mailbox");
}

/// Embedded storage only: there, mailboxes move with their owners.
#[tokio::test]
async fn a_handed_over_mailbox_leaves_the_index_with_its_rows() {
    let backend = Backend::sqlite();
    let store = backend.store().await;
    let seq = store.save_incoming(&dm("m1", "bob", "alice", "moving day")).await.unwrap().unwrap();
    let handover = store.handover().unwrap();
    handover.drop_mailbox(&user("alice"), seq).await.unwrap();
    assert!(found(&backend, "alice", "moving", None, 10).await.is_empty());
    store.import_mailbox(&user("alice"), vec![dm("m1", "bob", "alice", "moving day")], Vec::new()).await.unwrap();
    assert_eq!(found(&backend, "alice", "moving", None, 10).await, ["m1"]);
}

async fn edits_and_deletions_keep_the_index_right(backend: Backend) {
    let store = backend.store().await;
    store.save_outgoing(&dm("m1", "alice", "bob", "helo wrold")).await.unwrap();
    store.save_outgoing(&dm("m2", "alice", "bob", "wrold again")).await.unwrap();
    let edit = DirectChangeKind::Edit {
        message_id: "m1".into(),
        message: MessageText::parse("hello world").unwrap(),
        edited_at: 10,
    };
    let change = |id: &str, kind| DirectChange { id: id.into(), from: user("alice"), to: user("bob"), change: kind };
    store.apply_change(&user("alice"), &change("c1", edit), true).await.unwrap();
    store
        .apply_change(&user("alice"), &change("c2", DirectChangeKind::Delete { message_id: "m2".into() }), true)
        .await
        .unwrap();
    assert_eq!(found(&backend, "alice", "world", None, 10).await, ["m1"], "the edited text");
    assert!(found(&backend, "alice", "helo", None, 10).await.is_empty(), "not the text before the edit");
    assert!(found(&backend, "alice", "wrold", None, 10).await.is_empty(), "nothing of a deleted message");
}

on_every_backend!(a_search_reads_only_the_owners_mailbox_newest_first, edits_and_deletions_keep_the_index_right);
