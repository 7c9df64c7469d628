//! Full-text search of channel messages, on each backend.

use kit::search::SearchQuery;

use super::{Fixture, channel, fixtures, peer, text, user};
use crate::store::*;

fn query(q: &str) -> SearchQuery {
    SearchQuery::parse(q).unwrap()
}

async fn texts(store: &Store, who: &str, q: &str, only: Option<&str>, limit: u64) -> Vec<String> {
    let only = only.map(channel);
    let found = store.search(&user(who), &query(q), only.as_ref(), limit).await.unwrap();
    found.into_iter().map(|message| message.text.as_str().to_owned()).collect()
}

/// Runs `sql` on the fixture's database from outside the store, as another writer
/// (an edit or a deletion elsewhere in the code) would.
async fn execute(fixture: &Fixture, sql: &str) {
    match fixture {
        Fixture::Sqlite(dir) => {
            let conn = rusqlite::Connection::open(dir.path().join("tracker.db")).unwrap();
            conn.execute_batch(sql).unwrap();
        }
        Fixture::Postgres(database) => {
            let (client, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client.batch_execute(sql).await.unwrap();
        }
    }
}

#[tokio::test]
async fn search_finds_messages_with_every_word_newest_first_in_the_callers_channels_only() {
    for fixture in fixtures("search_finds_every_word_in_the_callers_channels").await {
        let store = fixture.open().await;
        store.create_channel(&channel("rust"), &user("alice"), false).await.unwrap();
        store.join(&channel("general"), &user("alice")).await.unwrap();
        store.create_channel(&channel("secret"), &user("bob"), true).await.unwrap();
        let post = |room: &'static str, who: &'static str, body: &'static str| {
            let store = store.clone();
            async move { store.post(&channel(room), &user(who), &peer(9001), &text(body)).await.unwrap() }
        };
        post("rust", "alice", "the deploy failed").await;
        post("general", "alice", "Deploy went fine, the build too").await;
        post("secret", "bob", "deploy the build secretly").await;
        post("rust", "alice", "unrelated chatter").await;
        post("rust", "alice", "build and deploy again").await;

        assert_eq!(
            texts(&store, "alice", "deploy", None, 10).await,
            ["build and deploy again", "Deploy went fine, the build too", "the deploy failed"],
            "newest first, case folded, not bob's channel"
        );
        assert_eq!(texts(&store, "alice", "BUILD deploy", None, 10).await.len(), 2, "every word");
        assert_eq!(texts(&store, "alice", "deploy", None, 1).await, ["build and deploy again"]);
        assert_eq!(texts(&store, "alice", "deploy", Some("general"), 10).await, ["Deploy went fine, the build too"]);
        assert!(texts(&store, "alice", "deploy", Some("secret"), 10).await.is_empty(), "not a member");
        assert!(texts(&store, "alice", "depl", None, 10).await.is_empty(), "whole words");
        assert_eq!(texts(&store, "bob", "deploy", None, 10).await, ["deploy the build secretly"]);

        store.leave(&channel("general"), &user("alice")).await.unwrap();
        assert_eq!(
            texts(&store, "alice", "deploy", None, 10).await,
            ["build and deploy again", "the deploy failed"],
            "a channel left is no longer searched"
        );
        assert!(texts(&store, "carol", "deploy", None, 10).await.is_empty(), "no channels, no results");
    }
}

#[tokio::test]
async fn query_syntax_characters_are_searched_as_text() {
    for fixture in fixtures("query_syntax_characters_are_searched_as_text").await {
        let store = fixture.open().await;
        store.join(&channel("general"), &user("alice")).await.unwrap();
        let body = r#"say "hi" AND col:x* NEAR(a b) ^start -minus OR'ed"#;
        store.post(&channel("general"), &user("alice"), &peer(9001), &text(body)).await.unwrap();
        for q in [r#""hi""#, "AND", "col:x*", "NEAR(a", "^start", "-minus", "OR'ed", r#"say" OR "x"#, "x*", "(b)"] {
            assert_eq!(texts(&store, "alice", q, None, 10).await, [body], "query {q}");
        }
        assert!(texts(&store, "alice", "NOT hi", None, 10).await.is_empty(), "NOT is a word to find");

        // Both backends cut words at punctuation alike (PostgreSQL's parser alone
        // would keep `foo-bar` and `bob@example.com` whole).
        let mail = "mail bob@example.com about foo-bar v1.2";
        store.post(&channel("general"), &user("alice"), &peer(9001), &text(mail)).await.unwrap();
        for q in ["example", "bob@example.com", "foo", "bar-foo", "v1 2"] {
            assert_eq!(texts(&store, "alice", q, None, 10).await, [mail], "query {q}");
        }
    }
}

#[tokio::test]
async fn the_index_follows_edits_and_deletions_of_the_text() {
    for fixture in fixtures("the_index_follows_edits_and_deletions_of_the_text").await {
        let store = fixture.open().await;
        store.join(&channel("general"), &user("alice")).await.unwrap();
        let first = store.post(&channel("general"), &user("alice"), &peer(9001), &text("typo here")).await.unwrap();
        let second = store.post(&channel("general"), &user("alice"), &peer(9001), &text("typo again")).await.unwrap();
        let table = match fixture {
            Fixture::Sqlite(_) => "messages",
            Fixture::Postgres(_) => "tracker_messages",
        };
        execute(&fixture, &format!("UPDATE {table} SET text = 'fixed here' WHERE id = {}", first.id)).await;
        execute(&fixture, &format!("DELETE FROM {table} WHERE id = {}", second.id)).await;
        assert!(texts(&store, "alice", "typo", None, 10).await.is_empty());
        assert_eq!(texts(&store, "alice", "fixed", None, 10).await, ["fixed here"]);
    }
}

#[tokio::test]
async fn a_caller_in_many_channels_still_finds_only_theirs() {
    for fixture in fixtures("a_caller_in_many_channels_still_finds_only_theirs").await {
        let store = fixture.open().await;
        // More channels than the embedded store asks its index for by name.
        for n in 0..20 {
            let room = channel(&format!("room-{n}"));
            store.create_channel(&room, &user("alice"), false).await.unwrap();
            store.post(&room, &user("alice"), &peer(9001), &text(&format!("hello from {n}"))).await.unwrap();
        }
        store.create_channel(&channel("elsewhere"), &user("bob"), false).await.unwrap();
        store.post(&channel("elsewhere"), &user("bob"), &peer(9001), &text("hello from bob")).await.unwrap();
        let found = texts(&store, "alice", "hello", None, 100).await;
        assert_eq!(found.len(), 20, "{found:?}");
        assert!(!found.contains(&"hello from bob".to_owned()));
        assert_eq!(found[0], "hello from 19", "newest first");
        assert_eq!(texts(&store, "alice", "hello", Some("room-3"), 100).await, ["hello from 3"]);
        assert_eq!(texts(&store, "bob", "hello", None, 100).await, ["hello from bob"]);

        // Now alice is in less than a quarter of the channels: the embedded store asks
        // its index for her 20, and must find the same.
        for n in 0..60 {
            store.create_channel(&channel(&format!("other-{n}")), &user("bob"), false).await.unwrap();
        }
        assert_eq!(texts(&store, "alice", "hello", None, 100).await, found);
    }
}
