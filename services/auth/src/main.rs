//! The `auth` binary: serve, or manage the user database.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use auth::config::{Config, Flags};
use auth::store::UserStore;
use auth::users;
use clap::{Parser, Subcommand};
use wire::names::Username;

#[derive(Parser)]
#[command(name = "auth", version, about = "WeApRous auth service: users, password hashes, session tokens")]
struct Cli {
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Add a user; the password is read from the first line of stdin.
    AddUser { name: String },
    /// Convert a database in the original's plaintext form (username,password) to
    /// Argon2id hashes, in place.
    HashDb { file: PathBuf },
    /// Import users from a CSV file into the configured store (PostgreSQL with
    /// --database-url, else the user database file): the original's plaintext
    /// `username,password` (the passwords are hashed) or `username,password_hash`.
    /// Users that exist already are left as they are; bad lines are reported and skipped.
    ImportCsv { file: PathBuf },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return auth::run_command(&cli.flags).await;
    };
    let config = Config::load(&cli.flags).unwrap_or_else(|err| err.exit());
    match command {
        Command::AddUser { name } => {
            let username = Username::parse_new(&name)?;
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("failed to read the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let store = UserStore::open(&config).await?;
            store.add(&username, password).await?;
            eprintln!("added {username} to {}", store.describe());
            Ok(())
        }
        Command::ImportCsv { file } => {
            let store = UserStore::open(&config).await?;
            let report = auth::import::import_csv(&store, &file).await?;
            for bad in &report.bad_lines {
                eprintln!("{}: line {}: {} (skipped)", file.display(), bad.line, bad.reason);
            }
            eprintln!(
                "imported {} into {}: {} added, {} skipped (already there), {} bad lines",
                file.display(),
                store.describe(),
                report.added,
                report.skipped,
                report.bad_lines.len()
            );
            Ok(())
        }
        Command::HashDb { file } => {
            let count = users::convert_plaintext(&file)?;
            eprintln!("hashed {count} passwords in {}", file.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
