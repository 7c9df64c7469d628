//! The tracker's tables in the shared database, prefixed `tracker_`. Timestamps are
//! integers, as in the embedded schema: milliseconds, and seconds for token expiry.

/// Applied in order through `kit::pg::migrate`; never edit one once released.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE tracker_channels (
        name       TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        created_by TEXT
    );
    CREATE TABLE tracker_members (
        channel   TEXT NOT NULL REFERENCES tracker_channels(name),
        username  TEXT NOT NULL,
        joined_at BIGINT NOT NULL,
        PRIMARY KEY (channel, username)
    );
    CREATE INDEX tracker_members_by_user ON tracker_members(username);
    CREATE TABLE tracker_messages (
        id          BIGSERIAL PRIMARY KEY,
        channel     TEXT NOT NULL REFERENCES tracker_channels(name),
        username    TEXT NOT NULL,
        sender_ip   TEXT NOT NULL,
        sender_port INTEGER NOT NULL,
        text        TEXT NOT NULL,
        ts          BIGINT NOT NULL,
        traceparent TEXT
    );
    CREATE INDEX tracker_messages_by_channel ON tracker_messages(channel, id);
    -- Events for the peers draw their ids from the messages' sequence: the two tables
    -- are one log, which followers read in one order.
    CREATE TABLE tracker_events (
        id          BIGINT PRIMARY KEY DEFAULT nextval('tracker_messages_id_seq'),
        event       TEXT NOT NULL,
        targets     TEXT,
        traceparent TEXT,
        created_at  BIGINT NOT NULL
    );
    CREATE INDEX tracker_events_by_age ON tracker_events(created_at);
    CREATE TABLE tracker_directory (
        username   TEXT PRIMARY KEY,
        ip         TEXT NOT NULL,
        port       INTEGER NOT NULL,
        online     BOOLEAN NOT NULL,
        active     BOOLEAN NOT NULL DEFAULT FALSE,
        updated_at BIGINT NOT NULL
    );
    CREATE INDEX tracker_directory_by_peer ON tracker_directory(ip, port);
    CREATE TABLE tracker_revoked (
        sid        TEXT PRIMARY KEY,
        expires_at BIGINT NOT NULL
    );
    CREATE TABLE tracker_peers (
        ip            TEXT NOT NULL,
        port          INTEGER NOT NULL,
        registration  BIGSERIAL,
        registered_at BIGINT NOT NULL,
        last_beat_ms  BIGINT NOT NULL,
        PRIMARY KEY (ip, port)
    );
    INSERT INTO tracker_channels (name, created_at) VALUES
        ('general', 0), ('random', 0), ('project', 0), ('help', 0), ('announcements', 0);
"#,
    // Each log row records the transaction that wrote it: readers going by id take only
    // rows whose transaction ended before every running one began writing (see
    // `store/postgres.rs`). Rows written before this migration count as long ended.
    // The messages' foreign key to their channel goes: every post's insert checks that
    // the poster is a member, and members reference their channel, while the key
    // share-locked the channel's row once per message (channels are never deleted).
    r#"
    ALTER TABLE tracker_messages DROP CONSTRAINT tracker_messages_channel_fkey;
    ALTER TABLE tracker_messages ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
    ALTER TABLE tracker_messages ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
    ALTER TABLE tracker_events ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
    ALTER TABLE tracker_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
"#,
    // Ended sessions in the order they ended, for peers that ask what ended since
    // their last call. Every insert takes the log's lock, so numbers are given in
    // commit order. The store's id tells a cursor of this database from another's.
    r#"
    ALTER TABLE tracker_revoked ADD COLUMN seq BIGSERIAL;
    CREATE UNIQUE INDEX tracker_revoked_by_seq ON tracker_revoked(seq);
    CREATE TABLE tracker_store (id TEXT NOT NULL);
    INSERT INTO tracker_store (id) VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 16));
"#,
    // Issue 13: private channels and topics; read state per member (members had read
    // everything so far); edits, tombstones, replies and mentions of messages;
    // reactions; and mentions by user, to count them.
    r#"
    ALTER TABLE tracker_channels ADD COLUMN private BOOLEAN NOT NULL DEFAULT FALSE;
    ALTER TABLE tracker_channels ADD COLUMN topic TEXT NOT NULL DEFAULT '';
    ALTER TABLE tracker_members ADD COLUMN last_read BIGINT NOT NULL DEFAULT 0;
    UPDATE tracker_members m SET last_read =
        (SELECT COALESCE(MAX(id), 0) FROM tracker_messages WHERE channel = m.channel);
    ALTER TABLE tracker_messages ADD COLUMN edited_at BIGINT;
    ALTER TABLE tracker_messages ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
    ALTER TABLE tracker_messages ADD COLUMN reply_to BIGINT;
    ALTER TABLE tracker_messages ADD COLUMN mentions TEXT;
    CREATE TABLE tracker_reactions (
        seq        BIGSERIAL PRIMARY KEY,
        message_id BIGINT NOT NULL,
        emoji      TEXT NOT NULL,
        username   TEXT NOT NULL,
        UNIQUE (message_id, emoji, username)
    );
    CREATE TABLE tracker_mentions (
        username   TEXT NOT NULL,
        channel    TEXT NOT NULL,
        message_id BIGINT NOT NULL,
        PRIMARY KEY (username, channel, message_id)
    );
"#,
    // Full-text search (`search.rs`): the words of each row's text, computed by the
    // database on every insert and every update of the text (an edit, a deletion's
    // tombstone), whoever writes them. `simple`: no stemming or stop words (chat is in
    // many languages). ASCII punctuation becomes space first, so words are runs of
    // letters and digits as in the embedded store's FTS5 index (PostgreSQL's parser
    // would keep `foo-bar`, `bob@example.com` or `a.b/c` whole).
    r##"
    ALTER TABLE tracker_messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', translate(text, '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', repeat(' ', 32)))
    ) STORED;
    CREATE INDEX tracker_messages_search ON tracker_messages USING GIN (search);
"##,
];
