use super::*;
use crate::check;
use crate::names::{ChannelName, MessageText, Username};

fn name(raw: &str) -> Username {
    Username::parse(raw).unwrap()
}

#[test]
fn revoked_sessions_are_a_list_of_ids_with_expiries() {
    let sessions = RevokedSessions {
        sessions: vec![RevokedSession { sid: "s1".into(), expires_at: 1_800_000_000 }],
        ..RevokedSessions::default()
    };
    check(&sessions, r#"{"sessions":[{"sid":"s1","expires_at":1800000000}]}"#);
    let asked = RevokedSessions { since: Some("ab.7".into()), ..RevokedSessions::default() };
    check(&asked, r#"{"sessions":[],"since":"ab.7"}"#);
    let answered = RevokedSessions { cursor: Some("ab.9".into()), ..RevokedSessions::default() };
    check(&answered, r#"{"sessions":[],"cursor":"ab.9"}"#);
}

#[test]
fn replies_keep_the_original_shape() {
    check(&ErrorBody::new("channel not found"), r#"{"status":"error","message":"channel not found"}"#);
    check(&Ack::success("Joined channel general"), r#"{"status":"success","message":"Joined channel general"}"#);
    check(&Done::success(), r#"{"status":"success"}"#);
    check(
        &ChannelList {
            status: Status::Success,
            channels: vec![ChannelName::parse("general").unwrap()],
            summaries: None,
        },
        r#"{"status":"success","channels":["general"]}"#,
    );
    check(
        &UserInfo { ip: "127.0.0.1".into(), port: 9002, username: name("bob"), active: true, reclaim: false },
        r#"{"ip":"127.0.0.1","port":9002,"username":"bob","active":true}"#,
    );
}

#[test]
fn channel_history_nests_the_channel_under_messages() {
    let history = ChannelHistory {
        status: Status::Success,
        messages: ChannelView {
            channel: ChannelName::parse("general").unwrap(),
            members: vec![Member {
                username: name("alice"),
                ip: Some("127.0.0.1".into()),
                port: Some(9001),
                online: true,
            }],
            messages: vec![ChannelMessage {
                ts: 1_700_000_000_000,
                ..ChannelMessage::new(
                    7,
                    ChannelName::parse("general").unwrap(),
                    ("127.0.0.1".into(), 9001),
                    name("alice"),
                    MessageText::parse("hello & friends").unwrap(),
                )
            }],
            has_more: false,
        },
    };
    check(
        &history,
        concat!(
            r#"{"status":"success","messages":{"channel":"general","#,
            r#""members":[{"username":"alice","ip":"127.0.0.1","port":9001,"online":true}],"#,
            r#""messages":[{"id":7,"channel":"general","sender_ip":"127.0.0.1","sender_port":9001,"#,
            r#""username":"alice","text":"hello & friends","ts":1700000000000}],"has_more":false}}"#
        ),
    );
}

#[test]
fn conversations_list_the_other_user_the_last_message_and_the_unread_count() {
    let conversations = Conversations {
        status: Status::Success,
        conversations: vec![ConversationSummary {
            with: name("bob"),
            last: DirectMessage {
                id: "0190".into(),
                message: MessageText::parse("see you").unwrap(),
                sender_ip: "127.0.0.1".into(),
                sender_port: 9002,
                username: name("bob"),
                to: name("alice"),
                ts: 1_700_000_000_000,
                broadcast: false,
                seq: Some(12),
                delivered: None,
                edited_at: None,
                deleted: false,
                reply_to: None,
                reply: None,
                reactions: Vec::new(),
            },
            unread: 2,
            last_read: 10,
        }],
    };
    check(
        &conversations,
        concat!(
            r#"{"status":"success","conversations":[{"with":"bob","last":{"id":"0190","message":"see you","#,
            r#""sender_ip":"127.0.0.1","sender_port":9002,"username":"bob","to":"alice","ts":1700000000000,"#,
            r#""broadcast":false,"seq":12},"unread":2,"last_read":10}]}"#
        ),
    );
}

#[test]
fn original_forms_parse() {
    let join: ChannelRequest =
        serde_urlencoded::from_str("channel_name=general&peer_ip=127.0.0.1&peer_port=9001&username=alice").unwrap();
    assert_eq!(join.channel_name.as_str(), "general");

    let send: SendPeer = serde_urlencoded::from_str("ip=127.0.0.1&port=9002&message=hi+bob+%21").unwrap();
    assert_eq!(send.port, Some(9002));
    assert_eq!(send.message.as_str(), "hi bob !");

    let register: PeerRegistration = serde_urlencoded::from_str("ip=127.0.0.1&port=9001&username=n/a").unwrap();
    assert_eq!(register.port, 9001);

    let history: HistoryRequest = serde_urlencoded::from_str("channel_name=general&limit=&before=12").unwrap();
    assert_eq!((history.before, history.limit), (Some(12), None));
}

#[test]
fn ports_are_accepted_as_numbers_or_text_but_must_be_valid() {
    let dm = r#"{"id":"x","message":"hi","sender_ip":"127.0.0.1","sender_port":"9001","username":"alice","to":"bob","ts":1}"#;
    assert_eq!(serde_json::from_str::<DirectMessage>(dm).unwrap().sender_port, 9001);
    assert!(serde_urlencoded::from_str::<SendPeer>("ip=a&port=99999&message=x").is_err());
    assert!(serde_urlencoded::from_str::<SendPeer>("ip=a&port=abc&message=x").is_err());
    assert!(serde_json::from_str::<PeerRegistration>(r#"{"ip":"a","port":0}"#).is_err());
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let credentials = Credentials { username: "alice".into(), password: "hunter22".into() };
    assert!(!format!("{credentials:?}").contains("hunter22"));
    let grant =
        SessionGrant { status: Status::Success, username: name("alice"), token: "tok.en.sig".into(), expires_at: 1 };
    assert!(!format!("{grant:?}").contains("tok.en.sig"));
}

#[test]
fn message_changes_take_ids_as_text_or_numbers_and_flags_as_forms_send_them() {
    let edit: EditMessage = serde_urlencoded::from_str("id=0190ab&message=fixed").unwrap();
    assert_eq!((edit.id.as_str(), edit.channel_name, edit.message.as_str()), ("0190ab", None, "fixed"));
    let edit: EditMessage = serde_json::from_str(r#"{"id":12,"channel_name":"general","message":"x"}"#).unwrap();
    assert_eq!((edit.id.as_str(), edit.channel_name.map(String::from)), ("12", Some("general".to_owned())));
    assert!(serde_urlencoded::from_str::<DeleteMessage>("id=").is_err(), "an empty id");

    let react: React = serde_urlencoded::from_str("id=7&emoji=%F0%9F%91%8D").unwrap();
    assert_eq!((react.emoji.as_str(), react.on), ("👍", true), "on by default");
    for (form, on) in [("on=false", false), ("on=0", false), ("on=true", true), ("on=1", true)] {
        let react: React = serde_urlencoded::from_str(&format!("id=7&emoji=%F0%9F%91%8D&{form}")).unwrap();
        assert_eq!(react.on, on, "{form}");
    }
    let react: React = serde_json::from_str(r#"{"id":"7","emoji":"🎉","on":false}"#).unwrap();
    assert!(!react.on);
    assert!(serde_urlencoded::from_str::<React>("id=7&emoji=%F0%9F%91%8D&on=maybe").is_err());
    assert!(serde_urlencoded::from_str::<React>("id=7&emoji=ok").is_err(), "not an emoji");

    let mark: MarkRead = serde_urlencoded::from_str("with=bob&up_to=4").unwrap();
    assert_eq!((mark.with.map(String::from), mark.up_to), (Some("bob".to_owned()), Some(4)));
    let reply: SendPeer = serde_urlencoded::from_str("username=bob&message=yes&reply_to=0190").unwrap();
    assert_eq!(reply.reply_to.as_deref(), Some("0190"));
    let typing: TypingRequest = serde_urlencoded::from_str("to=bob").unwrap();
    assert_eq!((typing.to.map(String::from), typing.channel_name), (Some("bob".to_owned()), None));
}

#[test]
fn a_direct_message_shows_only_what_happened_to_it() {
    let mut message = DirectMessage::new(
        "0190".into(),
        name("bob"),
        name("alice"),
        MessageText::parse("see you").unwrap(),
        ("127.0.0.1".into(), 9002),
        1,
    );
    let plain = r#"{"id":"0190","message":"see you","sender_ip":"127.0.0.1","sender_port":9002,"username":"bob","to":"alice","ts":1,"broadcast":false"#;
    check(&message, &format!("{plain}}}"));
    message.edited_at = Some(5);
    message.reply_to = Some("018f".into());
    message.reply = Some(ReplyPreview::of(MessageKey::Direct("018f".into()), name("alice"), &"a".repeat(250), false));
    message.reactions =
        vec![Reaction { emoji: crate::names::Emoji::parse("👍").unwrap(), users: vec![name("alice")] }];
    let json = serde_json::to_string(&message).unwrap();
    let preview = format!(r#""reply":{{"id":"018f","username":"alice","text":"{}","deleted":false}}"#, "a".repeat(200));
    let expected = format!(
        r#"{plain},"edited_at":5,"reply_to":"018f",{preview},"reactions":[{{"emoji":"👍","users":["alice"]}}]}}"#
    );
    assert_eq!(json, expected);
    assert_eq!(serde_json::from_str::<DirectMessage>(&json).unwrap(), message);
    let tombstone = DirectMessage { message: MessageText::tombstone(), deleted: true, ..message };
    let json = serde_json::to_string(&tombstone).unwrap();
    assert!(json.contains(r#""message":"","#) && json.contains(r#""deleted":true"#), "{json}");
    assert_eq!(serde_json::from_str::<DirectMessage>(&json).unwrap(), tombstone);
}

#[test]
fn search_results_say_their_kind_and_carry_segments() {
    let snippet = vec![Segment { text: "say ".into(), hit: false }, Segment { text: "<b>hi</b>".into(), hit: true }];
    let results = SearchResults {
        status: Status::Success,
        results: vec![
            SearchHit::Channel {
                channel: ChannelName::parse("general").unwrap(),
                id: 7,
                username: name("alice"),
                ts: 5,
                snippet: snippet.clone(),
            },
            SearchHit::Direct { with: name("bob"), id: "m-1".into(), username: name("bob"), ts: 4, snippet },
        ],
    };
    let segments = r#"[{"text":"say ","hit":false},{"text":"<b>hi</b>","hit":true}]"#;
    check(
        &results,
        &format!(
            r#"{{"status":"success","results":[{{"kind":"channel","channel":"general","id":7,"username":"alice","ts":5,"snippet":{segments}}},{{"kind":"direct","with":"bob","id":"m-1","username":"bob","ts":4,"snippet":{segments}}}]}}"#
        ),
    );
    let form: SearchRequest = serde_urlencoded::from_str("q=hello+world&channel_name=general&limit=5").unwrap();
    assert_eq!(form.q, "hello world");
    assert_eq!(form.limit, Some(5));
    assert_eq!(form.with, None);
}
