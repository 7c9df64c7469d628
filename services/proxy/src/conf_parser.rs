//! The `proxy.conf` grammar, kept from the original project:
//!
//! ```text
//! # A comment runs to the end of the line.
//! host "localhost:8080" {
//!     proxy_pass http://$HOST:9001;
//!     proxy_pass http://{{HOST}}:9002;
//!     dist_policy sticky
//!     default;
//!     deny /metrics /receive-message;
//! }
//! ```
//!
//! A file is a list of `host NAME { ... }` blocks. Inside a block, `proxy_pass
//! http://HOST[:PORT]` adds an upstream (port 80 when absent), `dist_policy` picks
//! `round-robin` (the default), `least-conn` or `sticky`, `default` makes the block
//! answer hosts that no block names, and `allow PATH...` and `deny PATH...` say which
//! paths the block passes on (see [`crate::config::paths`]). A statement may end with `;`. `$HOST` and
//! `{{HOST}}` are replaced in names and addresses before they are read.
//!
//! Unlike the original, comments are skipped, a host named twice is an error rather
//! than "the later block wins", and every error says where it is and what was expected.

use crate::config::paths::{self, PathRule, PathRules};
use crate::config::vhost::{HttpsRules, Policy, TlsFiles, Upstream, VhostConfig};

/// A malformed file: where, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line of the offending token.
    pub line: usize,
    /// 1-based column (in characters) of the offending token.
    pub column: usize,
    pub message: String,
}

/// Parses a whole file, replacing `$HOST` and `{{HOST}}` by `host_replacement`.
pub fn parse(text: &str, host_replacement: &str) -> Result<Vec<VhostConfig>, ParseError> {
    let mut parser = Parser { lexer: Lexer { text, offset: 0, line: 1, column: 1 }, host_replacement };
    parser.file()
}

/// The placeholders replaced by `--host` (or `--server-ip`).
pub const PLACEHOLDERS: [&str; 2] = ["{{HOST}}", "$HOST"];

// === Lexer ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    line: usize,
    column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Quoted(&'a str),
    OpenBrace,
    CloseBrace,
    Semicolon,
    End,
}

impl Token<'_> {
    fn describe(&self) -> String {
        match self {
            Token::Word(word) => format!("`{word}`"),
            Token::Quoted(text) => format!("\"{text}\""),
            Token::OpenBrace => "`{`".to_owned(),
            Token::CloseBrace => "`}`".to_owned(),
            Token::Semicolon => "`;`".to_owned(),
            Token::End => "the end of the file".to_owned(),
        }
    }
}

struct Lexer<'a> {
    text: &'a str,
    /// Byte offset of the next unread character.
    offset: usize,
    line: usize,
    column: usize,
}

impl<'a> Lexer<'a> {
    fn position(&self) -> Position {
        Position { line: self.line, column: self.column }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.offset..]
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let next = self.peek_char()?;
        self.offset += next.len_utf8();
        if next == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(next)
    }

    fn skip_blanks_and_comments(&mut self) {
        while let Some(next) = self.peek_char() {
            if next.is_whitespace() {
                self.bump();
            } else if next == '#' {
                while let Some(skipped) = self.bump() {
                    if skipped == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn next_token(&mut self) -> Result<(Token<'a>, Position), ParseError> {
        self.skip_blanks_and_comments();
        let start = self.position();
        let Some(next) = self.peek_char() else {
            return Ok((Token::End, start));
        };
        let token = match next {
            '{' if !self.rest().starts_with(PLACEHOLDERS[0]) => {
                self.bump();
                Token::OpenBrace
            }
            '}' => {
                self.bump();
                Token::CloseBrace
            }
            ';' => {
                self.bump();
                Token::Semicolon
            }
            '"' => {
                self.bump();
                let begin = self.offset;
                loop {
                    match self.peek_char() {
                        Some('"') => break,
                        Some('\n') | None => {
                            return Err(error_at(start, "unterminated string: expected a closing `\"` on this line"));
                        }
                        Some(_) => {
                            self.bump();
                        }
                    }
                }
                let quoted = &self.text[begin..self.offset];
                self.bump();
                Token::Quoted(quoted)
            }
            _ => {
                let begin = self.offset;
                while let Some(next) = self.peek_char() {
                    if self.rest().starts_with(PLACEHOLDERS[0]) {
                        for _ in 0..PLACEHOLDERS[0].len() {
                            self.bump();
                        }
                        continue;
                    }
                    if next.is_whitespace() || matches!(next, '{' | '}' | ';' | '"') {
                        break;
                    }
                    self.bump();
                }
                Token::Word(&self.text[begin..self.offset])
            }
        };
        Ok((token, start))
    }
}

// === Parser ===

struct Parser<'a> {
    lexer: Lexer<'a>,
    host_replacement: &'a str,
}

impl Parser<'_> {
    fn file(&mut self) -> Result<Vec<VhostConfig>, ParseError> {
        let mut vhosts: Vec<(VhostConfig, Position)> = Vec::new();
        let mut default_at: Option<Position> = None;
        loop {
            let (token, position) = self.lexer.next_token()?;
            match token {
                Token::End => break,
                Token::Word("host") => {}
                other => return Err(expected(position, "`host`", &other)),
            }
            let (vhost, name_at, is_default_at) = self.block(position)?;
            if let Some((_, first_at)) = vhosts.iter().find(|(existing, _)| existing.name == vhost.name) {
                return Err(error_at(
                    name_at,
                    format!("host \"{}\" is defined twice (first at line {})", vhost.name, first_at.line),
                ));
            }
            if let Some(here) = is_default_at {
                if let Some(first) = default_at {
                    return Err(error_at(
                        here,
                        format!("a second `default` block (the first is at line {}): only one is allowed", first.line),
                    ));
                }
                default_at = Some(here);
            }
            vhosts.push((vhost, name_at));
        }
        if vhosts.is_empty() {
            return Err(error_at(self.lexer.position(), "expected at least one `host \"NAME\" { ... }` block"));
        }
        Ok(vhosts.into_iter().map(|(vhost, _)| vhost).collect())
    }

    /// Everything after the `host` keyword of a block.
    fn block(&mut self, host_at: Position) -> Result<(VhostConfig, Position, Option<Position>), ParseError> {
        let (token, name_at) = self.lexer.next_token()?;
        let raw_name = match token {
            Token::Quoted(name) | Token::Word(name) => name,
            other => return Err(expected(name_at, "a host name in quotes, such as \"localhost:8080\"", &other)),
        };
        let name = validate_host_name(&self.substitute(raw_name)).map_err(|message| error_at(name_at, message))?;
        let (token, position) = self.lexer.next_token()?;
        if token != Token::OpenBrace {
            return Err(expected(position, "`{`", &token));
        }
        let mut upstreams = Vec::new();
        let mut policy: Option<(Policy, Position)> = None;
        let mut default_at = None;
        let mut rules = Vec::new();
        let (mut certificate, mut certificate_key) = (None, None);
        let mut https = HttpsRules::default();
        loop {
            let (token, position) = self.lexer.next_token()?;
            match token {
                Token::CloseBrace => break,
                Token::Semicolon => continue,
                Token::Word("proxy_pass") => {
                    let (token, address_at) = self.lexer.next_token()?;
                    let address = match token {
                        Token::Word(address) | Token::Quoted(address) => address,
                        other => {
                            return Err(expected(address_at, "an address such as `http://127.0.0.1:9001`", &other));
                        }
                    };
                    let upstream =
                        parse_upstream(&self.substitute(address)).map_err(|message| error_at(address_at, message))?;
                    upstreams.push(upstream);
                }
                Token::Word("dist_policy") => {
                    let (token, value_at) = self.lexer.next_token()?;
                    let parsed = match token {
                        Token::Word(value) | Token::Quoted(value) => Policy::parse(value).ok_or_else(|| {
                            error_at(
                                value_at,
                                format!(
                                    "unknown dist_policy `{value}`: expected `round-robin`, `least-conn` or `sticky`"
                                ),
                            )
                        })?,
                        other => {
                            return Err(expected(value_at, "`round-robin`, `least-conn` or `sticky`", &other));
                        }
                    };
                    if let Some((_, first)) = policy {
                        return Err(error_at(
                            position,
                            format!("dist_policy is set twice in this block (first at line {})", first.line),
                        ));
                    }
                    policy = Some((parsed, position));
                }
                Token::Word("default") => default_at = Some(position),
                Token::Word(keyword @ ("tls_certificate" | "tls_certificate_key")) => {
                    let (token, file_at) = self.lexer.next_token()?;
                    let file = match token {
                        Token::Word(file) | Token::Quoted(file) => std::path::PathBuf::from(file),
                        other => return Err(expected(file_at, "a PEM file, such as `certs/site.pem`", &other)),
                    };
                    let slot = if keyword == "tls_certificate" { &mut certificate } else { &mut certificate_key };
                    if slot.replace((file, position)).is_some() {
                        return Err(error_at(position, format!("{keyword} is set twice in this block")));
                    }
                }
                Token::Word("redirect_to_https") => https.redirect = true,
                Token::Word("hsts") => {
                    let (token, value_at) = self.lexer.next_token()?;
                    let seconds = match token {
                        Token::Word(value) => value.parse::<u64>().ok(),
                        _ => None,
                    };
                    let Some(seconds) = seconds else {
                        return Err(expected(value_at, "a max-age in seconds, such as `31536000`", &token));
                    };
                    https.hsts_max_age_secs = Some(seconds);
                }
                Token::Word(keyword @ ("allow" | "deny")) => self.path_rules(keyword == "allow", &mut rules)?,
                Token::End => {
                    return Err(error_at(
                        position,
                        format!("expected `}}` to close the host block opened at line {}", host_at.line),
                    ));
                }
                other => {
                    return Err(expected(
                        position,
                        "`proxy_pass`, `dist_policy`, `default`, `allow`, `deny`, `tls_certificate` or `}`",
                        &other,
                    ));
                }
            }
        }
        if upstreams.is_empty() {
            return Err(error_at(host_at, format!("host \"{name}\" has no `proxy_pass`: add at least one upstream")));
        }
        let policy = policy.map(|(policy, _)| policy).unwrap_or_default();
        let tls = match (certificate, certificate_key) {
            (Some((certificate, _)), Some((key, _))) => Some(TlsFiles { certificate, key }),
            (None, None) => None,
            (Some((_, at)), None) | (None, Some((_, at))) => {
                return Err(error_at(at, "tls_certificate and tls_certificate_key go together: set both"));
            }
        };
        let paths = PathRules::new(rules);
        let vhost = VhostConfig { name, upstreams, policy, default: default_at.is_some(), paths, tls, https };
        Ok((vhost, name_at, default_at))
    }

    /// The paths of an `allow` or `deny` statement: every word up to a `;` or to the
    /// next statement.
    fn path_rules(&mut self, allow: bool, rules: &mut Vec<PathRule>) -> Result<(), ParseError> {
        let before = rules.len();
        loop {
            let (offset, line, column) = (self.lexer.offset, self.lexer.line, self.lexer.column);
            let (token, position) = self.lexer.next_token()?;
            match token {
                Token::Word(path) | Token::Quoted(path) if path.starts_with('/') || rules.len() == before => {
                    let path = paths::validate_rule_path(path).map_err(|message| error_at(position, message))?;
                    rules.push(PathRule { path, allow });
                }
                Token::Semicolon if rules.len() > before => return Ok(()),
                _ if rules.len() > before => {
                    // The next statement (or the block's end): leave it to the block.
                    (self.lexer.offset, self.lexer.line, self.lexer.column) = (offset, line, column);
                    return Ok(());
                }
                other => {
                    let keyword = if allow { "allow" } else { "deny" };
                    return Err(expected(position, &format!("a path after `{keyword}`, such as `/metrics`"), &other));
                }
            }
        }
    }

    fn substitute(&self, raw: &str) -> String {
        PLACEHOLDERS.iter().fold(raw.to_owned(), |text, placeholder| text.replace(placeholder, self.host_replacement))
    }
}

fn error_at(position: Position, message: impl Into<String>) -> ParseError {
    ParseError { line: position.line, column: position.column, message: message.into() }
}

fn expected(position: Position, what: &str, found: &Token<'_>) -> ParseError {
    error_at(position, format!("expected {what}, found {}", found.describe()))
}

/// Lowercases a vhost name and checks it is `name` or `name:port`.
pub fn validate_host_name(raw: &str) -> Result<String, String> {
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err("a host name cannot be empty".to_owned());
    }
    if name.chars().any(|character| character.is_whitespace() || character.is_control() || character == '/') {
        return Err(format!("\"{raw}\" is not a host name: expected a name such as \"localhost:8080\""));
    }
    let (_, port) = crate::routing::split_host_port(&name);
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!("\"{raw}\" has an invalid port: expected a number from 0 to 65535 after `:`"));
    }
    Ok(name)
}

/// Parses `http://HOST[:PORT][/]`.
pub fn parse_upstream(raw: &str) -> Result<Upstream, String> {
    let expected = "expected an address such as `http://127.0.0.1:9001`";
    let Some(rest) = raw.strip_prefix("http://") else {
        if raw.starts_with("https://") {
            return Err(format!("`{raw}`: https upstreams are not supported, {expected}"));
        }
        return Err(format!("`{raw}` is not an http address: {expected}"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(format!("`{raw}`: a path, query or user in proxy_pass is not supported, {expected}"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(format!("`{raw}`: unclosed `[` in an IPv6 address, {expected}"));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{raw}`: `{host}` is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("`{raw}`: expected `:PORT` after the IPv6 address")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{raw}` has no host: {expected}"));
    }
    if !host.contains(':')
        && !host.chars().all(|character| character.is_ascii_alphanumeric() || matches!(character, '.' | '-' | '_'))
    {
        return Err(format!("`{raw}`: `{host}` is not a host name or IP address"));
    }
    let port = match port {
        None => 80,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(format!("`{raw}`: `{port}` is not a port (1 to 65535)")),
        },
    };
    Ok(Upstream { host: host.to_ascii_lowercase(), port })
}

#[cfg(test)]
mod tests;
