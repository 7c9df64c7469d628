//! Process limits a server needs raised at start, and how long a client may take.

use std::time::Duration;

/// How long a client may take to send a request head (slow clients must not hold
/// connections open for free): the services' `kit::http::serve` and the proxy's
/// metrics listener alike.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Raises the soft limit on open files to the hard limit, as Go's runtime does. Every
/// connection is a file, and the usual soft limit (1024) would stop a peer at about a
/// thousand event streams, or the proxy at half that many, long before memory or CPU.
/// Logs what it did; a failure only warns.
pub fn raise_open_files() {
    let (soft, hard) = match rlimit::Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(err) => return tracing::warn!(%err, "could not read the open-file limit"),
    };
    if soft >= hard {
        return tracing::debug!(soft, "open-file limit");
    }
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(raised) => tracing::info!(from = soft, to = raised, "raised the open-file limit"),
        Err(err) => tracing::warn!(%err, soft, hard, "could not raise the open-file limit"),
    }
}

/// The soft and hard limits on open files of process `pid` ("self" for this one), from
/// `/proc` (Linux): how a test or an operator checks what a running service got.
pub fn open_files_of(pid: &str) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    let mut numbers = line["Max open files".len()..].split_whitespace().map(str::parse);
    Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
}
