//! Peer addresses: where a peer answers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a peer answers: the address it advertised, not the one it bound.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerAddr {
    pub ip: String,
    pub port: u16,
}

impl PeerAddr {
    /// Checks an advertised address: a host name or IP other people can reach.
    pub fn parse(ip: &str, port: u16) -> Result<Self, String> {
        let ip = ip.trim();
        if ip.is_empty() || ip.len() > 253 {
            return Err("peer ip is empty or too long".into());
        }
        if ip == "0.0.0.0" || ip == "::" {
            return Err(format!("{ip} is a bind address, not one other peers can reach; advertise a real one"));
        }
        if !ip.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')) {
            return Err(format!("`{ip}` is not a host name or an IP address"));
        }
        Ok(Self { ip: ip.to_owned(), port })
    }

    /// The peer's base URL, `http://ip:port`.
    pub fn url(&self) -> String {
        if self.ip.contains(':') { format!("http://[{}]:{}", self.ip, self.port) } else { format!("http://{self}") }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_or_odd_addresses_are_refused() {
        assert!(PeerAddr::parse("0.0.0.0", 9001).is_err());
        assert!(PeerAddr::parse("", 9001).is_err());
        assert!(PeerAddr::parse("a b", 9001).is_err());
        assert_eq!(PeerAddr::parse("peer-2", 9001).unwrap().url(), "http://peer-2:9001");
        assert_eq!(PeerAddr::parse("::1", 9001).unwrap().url(), "http://[::1]:9001");
    }
}
