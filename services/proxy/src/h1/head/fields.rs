//! What requests and responses share: room for headers, the framing of a body, the
//! headers the proxy treats specially, and the rules for `Connection` and
//! `Content-Length` values (RFC 9112 §6.3, §7.6.1).

use std::mem::MaybeUninit;

use httparse::{Header, Status};

/// The most headers a head may have (hyper's default); more is a 431 (or a 502 from
/// a backend).
pub const MAX_HEADERS: usize = 100;

/// Room for the headers of one head, left uninitialized: filling 100 empty headers
/// (3.2 KB) for every parse would cost more than the parse.
pub type HeaderSlots<'a> = [MaybeUninit<Header<'a>>; MAX_HEADERS];

/// Fresh [`HeaderSlots`].
pub fn header_slots<'a>() -> HeaderSlots<'a> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// A head that breaks the rules; the text says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("{0}")]
    Malformed(&'static str),
    #[error("too many headers")]
    TooManyHeaders,
}

/// Header names listed in `Connection`: they belong to this hop only.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Named<'a> {
    names: [&'a str; 8],
    count: usize,
}

/// The headers the proxy treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Name {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    /// Hop-by-hop headers dropped as they are: `Keep-Alive`, `Proxy-Connection`,
    /// `TE`, `Trailer`.
    HopByHop,
    Upgrade,
    Expect,
    Accept,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    Traceparent,
    Tracestate,
    Other,
}

/// The head's length once `httparse` has all of it; `None` while it is partial.
pub(super) fn complete(parsed: httparse::Result<usize>, malformed: &'static str) -> Result<Option<usize>, Invalid> {
    match parsed {
        Ok(Status::Complete(len)) => Ok(Some(len)),
        Ok(Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(Invalid::TooManyHeaders),
        Err(_) => Err(Invalid::Malformed(malformed)),
    }
}

pub(super) fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A status code as its three digits (`httparse` and `http` both keep it in 100..=999).
pub(super) fn push_status(out: &mut Vec<u8>, code: u16) {
    let code = code.clamp(100, 999);
    out.extend_from_slice(&[b'0' + (code / 100) as u8, b'0' + (code / 10 % 10) as u8, b'0' + (code % 10) as u8]);
}

/// What the `Connection` headers say.
#[derive(Debug, Default)]
pub(super) struct Connection<'a> {
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) upgrade: bool,
    pub(super) named: Named<'a>,
}

impl<'a> Connection<'a> {
    pub(super) fn add(&mut self, value: &'a [u8]) -> Result<(), Invalid> {
        // Nearly every message says one of these, alone.
        if value.eq_ignore_ascii_case(b"keep-alive") {
            self.keep_alive = true;
            return Ok(());
        }
        if value.eq_ignore_ascii_case(b"close") {
            self.close = true;
            return Ok(());
        }
        let text = std::str::from_utf8(value).map_err(|_| Invalid::Malformed("unreadable connection header"))?;
        for token in text.split(',').map(str::trim).filter(|token| !token.is_empty()) {
            if token.eq_ignore_ascii_case("close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case("keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case("upgrade") {
                self.upgrade = true;
            } else {
                self.named.add(token)?;
            }
        }
        Ok(())
    }
}

impl<'a> Named<'a> {
    pub(super) fn add(&mut self, name: &'a str) -> Result<(), Invalid> {
        if self.count == self.names.len() {
            return Err(Invalid::Malformed("too many connection options"));
        }
        self.names[self.count] = name;
        self.count += 1;
        Ok(())
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        self.names[..self.count].iter().any(|named| named.eq_ignore_ascii_case(name))
    }
}

/// `Content-Length` values: each a number, all equal (RFC 9112 §6.3, item 5).
#[derive(Debug, Default)]
pub(super) struct Lengths {
    pub(super) value: Option<u64>,
}

impl Lengths {
    pub(super) fn add(&mut self, value: &[u8]) -> Result<(), Invalid> {
        for part in value.split(|byte| *byte == b',') {
            let part = trimmed(part);
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(Invalid::Malformed("bad content-length"));
            }
            let length = part.iter().fold(0u64, |total, digit| total * 10 + u64::from(digit - b'0'));
            match self.value {
                Some(seen) if seen != length => return Err(Invalid::Malformed("conflicting content-length values")),
                _ => self.value = Some(length),
            }
        }
        Ok(())
    }
}

pub(super) fn classify(name: &str) -> Name {
    let is = |known: &str| name.eq_ignore_ascii_case(known);
    match name.len() {
        2 if is("te") => Name::HopByHop,
        4 if is("host") => Name::Host,
        6 if is("accept") => Name::Accept,
        6 if is("expect") => Name::Expect,
        7 if is("upgrade") => Name::Upgrade,
        7 if is("trailer") => Name::HopByHop,
        10 if is("connection") => Name::Connection,
        10 if is("keep-alive") => Name::HopByHop,
        10 if is("tracestate") => Name::Tracestate,
        11 if is("traceparent") => Name::Traceparent,
        14 if is("content-length") => Name::ContentLength,
        15 if is("x-forwarded-for") => Name::XForwardedFor,
        16 if is("x-forwarded-host") => Name::XForwardedHost,
        16 if is("proxy-connection") => Name::HopByHop,
        17 if is("transfer-encoding") => Name::TransferEncoding,
        17 if is("x-forwarded-proto") => Name::XForwardedProto,
        _ => Name::Other,
    }
}

pub(super) fn trimmed(value: &[u8]) -> &[u8] {
    value.trim_ascii()
}

/// Visible ASCII and spaces: what a header value must be to be read as text.
pub(super) fn is_visible(value: &[u8]) -> bool {
    value.iter().all(|byte| (0x20..0x7f).contains(byte) || *byte == b'\t')
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle))
}
