//! An embedded SQLite database in WAL mode, with group commit.
//!
//! One thread owns the write connection. Writers send it closures; it takes every
//! closure waiting in its queue, runs each inside its own savepoint of one
//! transaction, commits once (one fsync for the whole batch, `synchronous=FULL`), and
//! only then answers each caller. So a success reply means the data is on disk, and
//! many concurrent writers share one fsync. A second thread owns a read-only
//! connection, so reads never wait for a commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

/// The most closures one commit takes; bounds the latency of a batch.
const MAX_BATCH: usize = 2048;
/// Writes waiting beyond this many make writers wait (back-pressure).
const QUEUE: usize = 8192;

/// A handle on the database. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct Db {
    writer: mpsc::Sender<WriteJob>,
    reader: mpsc::Sender<ReadJob>,
    path: Arc<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("commit failed: {0}")]
    Commit(Arc<rusqlite::Error>),
    #[error("the database is closed")]
    Closed,
}

type Completion = Box<dyn FnOnce(Result<(), Arc<rusqlite::Error>>) + Send>;
type WriteJob = Box<dyn FnOnce(&Connection) -> Completion + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

impl Db {
    /// Opens (or creates) the database at `path` and applies the `migrations` it has
    /// not seen yet, in order, each in its own transaction (tracked in `user_version`).
    pub fn open(path: &Path, migrations: &'static [&'static str]) -> anyhow::Result<Self> {
        Self::open_and_load(path, migrations, |_| Ok(())).map(|(db, ())| db)
    }

    /// Like [`Db::open`], and reads what the caller keeps in memory (`load`) before
    /// any write can happen; usable inside or outside a runtime.
    pub fn open_and_load<T>(
        path: &Path,
        migrations: &'static [&'static str],
        load: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> anyhow::Result<(Self, T)> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
        }
        let mut write_conn =
            Connection::open(path).with_context(|| format!("failed to open the database {}", path.display()))?;
        write_conn
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .context("failed to configure the database")?;
        migrate(&mut write_conn, migrations).with_context(|| format!("failed to migrate {}", path.display()))?;
        let read_conn = Connection::open(path)?;
        read_conn.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")?;
        let loaded = load(&read_conn).with_context(|| format!("failed to load {}", path.display()))?;

        let (writer, write_rx) = mpsc::channel(QUEUE);
        let (reader, read_rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new().name("db-writer".into()).spawn(move || write_loop(write_conn, write_rx))?;
        std::thread::Builder::new().name("db-reader".into()).spawn(move || read_loop(read_conn, read_rx))?;
        Ok((Self { writer, reader, path: Arc::new(path.to_owned()) }, loaded))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in the next batch transaction; answers once that batch is committed.
    /// An error from `f` rolls back only `f`'s own changes.
    pub async fn write<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        self.write_then(f, |_| {}).await
    }

    /// Like [`Db::write`], and once the batch is committed runs `on_commit` with
    /// `f`'s result on the writer thread, before answering. Hooks run in commit order,
    /// so in-memory views and event streams fed from them see writes in the order the
    /// database has them.
    pub async fn write_then<R, F, H>(&self, f: F, on_commit: H) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
        H: FnOnce(&R) + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: WriteJob = Box::new(move |conn: &Connection| {
            let result = in_savepoint(conn, f);
            Box::new(move |committed: Result<(), Arc<rusqlite::Error>>| {
                let outcome = match committed {
                    Ok(()) => result.map_err(DbError::from),
                    Err(err) => Err(DbError::Commit(err)),
                };
                if let Ok(value) = &outcome {
                    on_commit(value);
                }
                let _ = reply.send(outcome);
            })
        });
        self.writer.send(job).await.map_err(|_| DbError::Closed)?;
        answer.await.map_err(|_| DbError::Closed)?
    }

    /// Runs `f` on the read-only connection.
    pub async fn read<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn: &Connection| {
            let _ = reply.send(f(conn).map_err(DbError::from));
        });
        self.reader.send(job).await.map_err(|_| DbError::Closed)?;
        answer.await.map_err(|_| DbError::Closed)?
    }
}

/// Reads a text column through a parser (a wire type's `parse`). Stored data was
/// parsed on the way in, so a failure means the file was edited by hand.
pub fn parse_column<T, E>(
    row: &rusqlite::Row<'_>,
    index: usize,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> rusqlite::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(index)?;
    parse(&text)
        .map_err(|err| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(err)))
}

fn in_savepoint<R>(conn: &Connection, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> rusqlite::Result<R> {
    // Cached statements: every write of a busy service passes here.
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    match f(conn) {
        Ok(value) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
            Ok(value)
        }
        Err(err) => {
            conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
            conn.prepare_cached("RELEASE job")?.execute([])?;
            Err(err)
        }
    }
}

fn write_loop(conn: Connection, mut jobs: mpsc::Receiver<WriteJob>) {
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let begun = conn.execute_batch("BEGIN IMMEDIATE").map_err(Arc::new);
        let completions: Vec<Completion> = match &begun {
            Ok(()) => batch.drain(..).map(|job| job(&conn)).collect(),
            Err(_) => Vec::new(),
        };
        let committed = begun.and_then(|()| conn.execute_batch("COMMIT").map_err(Arc::new));
        if let Err(err) = &committed {
            tracing::error!(%err, "database commit failed");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for complete in completions {
            complete(committed.clone());
        }
        // Jobs never run (BEGIN failed) are dropped: their callers see `Closed`.
        batch.clear();
    }
}

fn read_loop(conn: Connection, mut jobs: mpsc::Receiver<ReadJob>) {
    while let Some(job) = jobs.blocking_recv() {
        job(&conn);
    }
}

fn migrate(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, migration) in migrations.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: &[&str] = &["CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);"];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_all_committed_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), MIGRATIONS).unwrap();
        let writes = (0..500).map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |conn| conn.execute("INSERT INTO notes (body) VALUES (?1)", [format!("n{i}")])).await
            })
        });
        for write in writes {
            write.await.unwrap().unwrap();
        }
        let count: i64 =
            db.read(|conn| conn.query_row("SELECT COUNT(*) FROM notes", [], |row| row.get(0))).await.unwrap();
        assert_eq!(count, 500);
    }

    #[tokio::test]
    async fn a_failing_write_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), MIGRATIONS).unwrap();
        db.write(|conn| conn.execute("INSERT INTO notes (body) VALUES ('a')", [])).await.unwrap();
        let duplicate = db.write(|conn| {
            conn.execute("INSERT INTO notes (body) VALUES ('b')", [])?;
            conn.execute("INSERT INTO notes (body) VALUES ('a')", [])
        });
        let fine = db.write(|conn| conn.execute("INSERT INTO notes (body) VALUES ('c')", []));
        let (duplicate, fine) = tokio::join!(duplicate, fine);
        assert!(duplicate.is_err());
        fine.unwrap();
        let bodies: Vec<String> = db
            .read(|conn| {
                let mut statement = conn.prepare("SELECT body FROM notes ORDER BY body")?;
                let rows = statement.query_map([], |row| row.get(0))?;
                rows.collect()
            })
            .await
            .unwrap();
        assert_eq!(bodies, ["a", "c"]);
    }

    #[test]
    fn reopening_applies_only_new_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Db::open(&path, MIGRATIONS).unwrap());
        const MORE: &[&str] = &[MIGRATIONS[0], "ALTER TABLE notes ADD COLUMN tag TEXT;"];
        let (_db, version) = Db::open_and_load(&path, MORE, |conn| {
            conn.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
        })
        .unwrap();
        assert_eq!(version, 2);
    }
}
