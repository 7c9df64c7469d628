//! `auth import-csv`: users from a CSV file into the configured store (the CSV user
//! database, or PostgreSQL), for moving the original's users, or an embedded auth's,
//! into cluster mode.
//!
//! Two formats, told apart by the first line as [`crate::users::convert_plaintext`]
//! and [`crate::users::UserDb::open`] tell them:
//! - the original's plaintext `username,password` (its `db/database.csv`), with
//!   that header line or none: each password is hashed with Argon2id;
//! - the hashed `username,password_hash` (always with its header, as auth writes
//!   it): the hashes are taken as they are.
//!
//! Users that exist already are left as they are (a re-import adds only the new
//! ones). A bad line is reported with its number and skipped; the rest goes in.

use std::path::Path;

use anyhow::Context;
use argon2::password_hash::phc::PasswordHash;
use wire::names::Username;

use crate::store::UserStore;
use crate::users;

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Users added.
    pub added: usize,
    /// Users left as they were, as the name (in any case, or a look-alike of it) was
    /// taken already.
    pub skipped: usize,
    /// Lines that could not be imported, in file order.
    pub bad_lines: Vec<BadLine>,
}

/// A line of the file that was skipped, and why.
#[derive(Debug)]
pub struct BadLine {
    /// 1-based, as an editor shows it.
    pub line: u64,
    pub reason: String,
}

/// The two forms of user file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Plaintext,
    Hashed,
}

/// Imports the users of the CSV file at `path` into `store`.
pub async fn import_csv(store: &UserStore, path: &Path) -> anyhow::Result<ImportReport> {
    let path = path.to_owned();
    // Reading and hashing cost CPU time (Argon2id per plaintext password): off the
    // async threads.
    let FileUsers { users, bad_lines } =
        tokio::task::spawn_blocking(move || read_users(&path)).await.context("import task failed")??;
    let added = store.add_hashed(users).await?;
    let added_count = added.iter().filter(|&&added| added).count();
    Ok(ImportReport { added: added_count, skipped: added.len() - added_count, bad_lines })
}

/// What a user file holds.
struct FileUsers {
    /// The valid users, each with its (computed or given) hash.
    users: Vec<(Username, String)>,
    bad_lines: Vec<BadLine>,
}

fn read_users(path: &Path) -> anyhow::Result<FileUsers> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    let mut format = None;
    let mut users = Vec::new();
    let mut bad_lines = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let Some(line) = err.position().map(csv::Position::line) else {
                    // No position: the file itself failed to read, not one line.
                    return Err(err).with_context(|| format!("failed to read {}", path.display()));
                };
                bad_lines.push(BadLine { line, reason: "not valid CSV text (UTF-8)".to_owned() });
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        let fields: Vec<&str> = record.iter().collect();
        let format = match format {
            Some(format) => format,
            None => {
                let (detected, is_header) = match fields.as_slice() {
                    ["username", "password_hash"] => (Format::Hashed, true),
                    ["username", "password"] => (Format::Plaintext, true),
                    // The original's file may have no header: plaintext from line 1.
                    _ => (Format::Plaintext, false),
                };
                format = Some(detected);
                if is_header {
                    continue;
                }
                detected
            }
        };
        match parse_line(format, &fields) {
            Ok(user) => users.push(user),
            Err(reason) => bad_lines.push(BadLine { line, reason }),
        }
    }
    Ok(FileUsers { users, bad_lines })
}

/// One data line: the user and its hash, or why the line is bad.
fn parse_line(format: Format, fields: &[&str]) -> Result<(Username, String), String> {
    let [name, secret] = fields else {
        return Err(format!("expected 2 fields (username and password), found {}", fields.len()));
    };
    let username = Username::parse(name).map_err(|err| err.to_string())?;
    match format {
        Format::Hashed => {
            if PasswordHash::new(secret).is_err() {
                return Err("the password hash is not a PHC string (`$argon2id$...`)".to_owned());
            }
            Ok((username, (*secret).to_owned()))
        }
        Format::Plaintext => {
            if secret.is_empty() {
                return Err("the password is empty".to_owned());
            }
            // A hash taken for a password would lock the user out without a word.
            if secret.starts_with("$argon2") && PasswordHash::new(secret).is_ok() {
                return Err("a password hash in a file without the `username,password_hash` header".to_owned());
            }
            Ok((username, users::hash_password(secret).map_err(|err| err.to_string())?))
        }
    }
}
