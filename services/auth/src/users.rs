//! The user database: `username,password_hash` rows in a CSV file, the hashes in
//! Argon2id PHC form.
//!
//! Writes take an exclusive lock on `<file>.lock` (so the running server and the
//! `auth add-user` command never interleave), re-read the file, and replace it
//! atomically: write a temporary file beside it, fsync, rename. A reader never sees
//! a half-written file, and a crash leaves the old or the new file, never a mix.
//! The server re-reads the file when its modification time changes, so a user added
//! from the command line can log in at once.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::SystemTime;

use anyhow::Context;
use argon2::password_hash::phc::PasswordHash;
use wire::names::Username;

use crate::hashing::HashError;

/// The header of a database with hashed passwords.
pub const HEADER: [&str; 2] = ["username", "password_hash"];

/// Password length limits for sign-up.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The user database. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct UserDb {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    users: RwLock<Loaded>,
}

#[derive(Default)]
struct Loaded {
    /// User name to PHC hash string.
    hashes: HashMap<String, String>,
    modified: Option<SystemTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum AddUserError {
    #[error("user `{0}` already exists")]
    Exists(String),
    #[error("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long")]
    BadPassword,
    /// The hash gate is full ([`HashError::Busy`]).
    #[error("too many sign-ups and log-ins at once; try again in a second")]
    Busy,
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

impl From<HashError> for AddUserError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => Self::Busy,
            HashError::Failed(cause) => Self::Io(cause),
        }
    }
}

impl UserDb {
    /// Opens the database at `path`; a missing file is an empty database, created on
    /// the first sign-up.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let loaded = load(path)?;
        Ok(Self { shared: Arc::new(Shared { path: path.to_owned(), users: RwLock::new(loaded) }) })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    pub fn len(&self) -> usize {
        self.read().hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The PHC hash of `username`, if there is such a user; re-reads the file first if
    /// it changed on disk.
    pub fn hash_of(&self, username: &str) -> anyhow::Result<Option<String>> {
        self.reload_if_changed()?;
        Ok(self.read().hashes.get(username).cloned())
    }

    /// Signs up a new user, hashing on the calling thread (the command line and tests;
    /// the server hashes through [`crate::hashing::HashGate`]). Names are unique
    /// regardless of case and of look-alike letters ([`Username::key`]), checked under
    /// the file's lock.
    pub fn add_blocking(&self, username: &Username, password: &str) -> Result<(), AddUserError> {
        check_password(password)?;
        let hash = hash_password(password)?;
        let path = &self.shared.path;
        let _lock = lock_file(path)?;
        let mut current = load(path)?;
        let key = username.key();
        if current.hashes.keys().any(|existing| wire::names::name_key(existing) == key) {
            return Err(AddUserError::Exists(username.to_string()));
        }
        current.hashes.insert(username.to_string(), hash);
        write_atomically(path, &current.hashes)?;
        current.modified = modified(path);
        *self.shared.users.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = current;
        Ok(())
    }

    /// Adds users whose hashes are computed already (an import), under one lock and
    /// with one write; for each, whether it was added (`false`: the name, in any case
    /// or a look-alike of it, was taken, before or earlier in `users`).
    pub fn add_hashed_blocking(&self, users: &[(Username, String)]) -> anyhow::Result<Vec<bool>> {
        let path = &self.shared.path;
        let _lock = lock_file(path)?;
        let mut current = load(path)?;
        let mut taken: HashSet<String> = current.hashes.keys().map(|name| wire::names::name_key(name)).collect();
        let added: Vec<bool> = users
            .iter()
            .map(|(username, hash)| {
                let fresh = taken.insert(username.key());
                if fresh {
                    current.hashes.insert(username.to_string(), hash.clone());
                }
                fresh
            })
            .collect();
        if added.contains(&true) {
            write_atomically(path, &current.hashes)?;
            current.modified = modified(path);
            *self.shared.users.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = current;
        }
        Ok(added)
    }

    fn reload_if_changed(&self) -> anyhow::Result<()> {
        let on_disk = modified(&self.shared.path);
        if on_disk != self.read().modified {
            let loaded = load(&self.shared.path)?;
            tracing::info!(users = loaded.hashes.len(), "user database changed on disk; reloaded");
            *self.shared.users.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = loaded;
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.shared.users.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Argon2id with the crate's default (OWASP) parameters and a random salt, in memory
/// of its own (the command line, imports; the server hashes through the gate, in
/// memory it keeps: [`crate::password`]).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    crate::password::hash(password, &mut crate::password::memory())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    crate::password::verify(password, phc, &mut crate::password::memory())
}

/// Rewrites a database in the original's plaintext form (`username,password`) with
/// Argon2id hashes, in place. Returns how many users it converted. The original's
/// header row was itself a valid login; here it is only a header.
pub fn convert_plaintext(path: &Path) -> anyhow::Result<usize> {
    let _lock = lock_file(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    let mut hashes = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: bad CSV", path.display()))?;
        let (Some(name), Some(password)) = (record.get(0), record.get(1)) else {
            anyhow::bail!("{}: line {} needs two fields", path.display(), index + 1);
        };
        if index == 0 && name == "username" {
            anyhow::ensure!(
                password == "password",
                "{} already holds hashes (header `username,{password}`)",
                path.display()
            );
            continue;
        }
        let username = Username::parse(name).map_err(|err| anyhow::anyhow!("line {}: {err}", index + 1))?;
        hashes.insert(username.to_string(), hash_password(password)?);
    }
    write_atomically(path, &hashes)?;
    Ok(hashes.len())
}

/// Whether `password` matches `hash`; no hash (an unknown user) costs a check against
/// a dummy hash, so timing does not tell which names exist. Blocking: run it through
/// the hash gate.
pub(crate) fn check_against(hash: Option<&str>, password: &str, memory: &mut crate::password::Memory) -> bool {
    match hash {
        Some(hash) => crate::password::verify(password, hash, memory),
        None => {
            let _ = crate::password::verify(password, &DUMMY_HASH, memory);
            false
        }
    }
}

pub(crate) fn check_password(password: &str) -> Result<(), AddUserError> {
    let chars = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) { Ok(()) } else { Err(AddUserError::BadPassword) }
}

/// A hash to verify against when the user does not exist, so both cases cost the same.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("no user has this password").expect("hashing a constant works"));

fn load(path: &Path) -> anyhow::Result<Loaded> {
    let modified = modified(path);
    if modified.is_none() && !path.exists() {
        return Ok(Loaded::default());
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("failed to open the user database {}", path.display()))?;
    let headers = reader.headers().with_context(|| format!("{}: bad CSV header", path.display()))?.clone();
    if headers.iter().collect::<Vec<_>>() == ["username", "password"] {
        anyhow::bail!(
            "{} holds plaintext passwords (header `username,password`); convert it with `auth hash-db {}`",
            path.display(),
            path.display()
        );
    }
    anyhow::ensure!(
        headers.iter().collect::<Vec<_>>() == HEADER,
        "{}: expected the header `username,password_hash`",
        path.display()
    );
    let mut hashes = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: bad CSV on row {}", path.display(), index + 2))?;
        match (record.get(0), record.get(1)) {
            (Some(name), Some(hash)) if PasswordHash::new(hash).is_ok() => {
                hashes.insert(name.to_owned(), hash.to_owned());
            }
            _ => anyhow::bail!("{}: row {} is not `username,argon2 hash`", path.display(), index + 2),
        }
    }
    Ok(Loaded { hashes, modified })
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

fn lock_file(path: &Path) -> anyhow::Result<File> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("failed to open the lock file {}", Path::new(&lock_path).display()))?;
    file.lock().context("failed to lock the user database")?;
    Ok(file)
}

fn write_atomically(path: &Path, hashes: &HashMap<String, String>) -> anyhow::Result<()> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut temp_name = path.file_name().context("the database path has no file name")?.to_owned();
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = dir.join(temp_name);
    let result = (|| {
        let mut file = File::create(&temp)?;
        {
            let mut writer = csv::Writer::from_writer(&mut file);
            writer.write_record(HEADER)?;
            let mut names: Vec<_> = hashes.keys().collect();
            names.sort();
            for name in names {
                writer.write_record([name.as_str(), hashes[name].as_str()])?;
            }
            writer.flush()?;
        }
        file.flush()?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        // The rename itself is durable once the directory is synced.
        File::open(dir)?.sync_all()?;
        anyhow::Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.with_context(|| format!("failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("password1").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("password1", &hash));
        assert!(!verify_password("password2", &hash));
        assert!(!verify_password("password1", "not a hash"));
    }

    #[test]
    fn added_users_survive_a_reopen_and_names_are_unique_regardless_of_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.csv");
        let db = UserDb::open(&path).unwrap();
        db.add_blocking(&name("alice"), "correct horse").unwrap();
        assert!(matches!(db.add_blocking(&name("ALICE"), "whatever123"), Err(AddUserError::Exists(_))));
        // Cyrillic а: a look-alike of the name taken.
        assert!(matches!(db.add_blocking(&name("\u{430}lice"), "whatever123"), Err(AddUserError::Exists(_))));
        assert!(matches!(db.add_blocking(&name("bob"), "short"), Err(AddUserError::BadPassword)));
        let reopened = UserDb::open(&path).unwrap();
        assert_eq!(reopened.len(), 1);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("username,password_hash\n") && !text.contains("correct horse"));
    }

    #[test]
    fn concurrent_sign_ups_from_two_handles_lose_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.csv");
        let handles: Vec<_> = (0..2)
            .map(|worker| {
                let db = UserDb::open(&path).unwrap();
                std::thread::spawn(move || {
                    for i in 0..4 {
                        db.add_blocking(&name(&format!("w{worker}u{i}")), "password123").unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(UserDb::open(&path).unwrap().len(), 8);
    }

    #[test]
    fn the_original_plaintext_file_is_refused_then_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("database.csv");
        fs::write(&path, "username,password\nuser1,password1\nadmin,1\n").unwrap();
        let err = UserDb::open(&path).err().unwrap().to_string();
        assert!(err.contains("auth hash-db"), "{err}");
        assert_eq!(convert_plaintext(&path).unwrap(), 2);
        let db = UserDb::open(&path).unwrap();
        assert_eq!(db.len(), 2);
        assert!(convert_plaintext(&path).is_err(), "converting twice must fail");
    }
}
