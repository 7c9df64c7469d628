//! Message heads: parsed by `httparse` (hyper's own parser), checked against the
//! framing rules that keep a proxy safe from request smuggling (RFC 9112 §6), and
//! written out again for the next hop, hop-by-hop headers left behind.
//!
//! Everything here borrows the connection's buffer and does no IO, so it is tested
//! on byte strings.

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

/// The `Host` a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostField<'a> {
    Missing,
    One(&'a str),
    Several,
    /// A value that is not visible ASCII.
    Unreadable,
}

/// A parsed request head, borrowing the bytes it came from.
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// The target in origin form: an absolute-form target loses its scheme and
    /// authority (the authority becomes the Host).
    target: &'a str,
    pub http10: bool,
    /// Length of the head in bytes, blank line included.
    pub len: usize,
    /// The authority of an absolute-form target, else the Host header.
    pub host: HostField<'a>,
    authority_form: bool,
    pub framing: Framing,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// The `Upgrade` value of a request that asks to switch protocols.
    pub upgrade: Option<&'a [u8]>,
    /// The client waits for `100 Continue` before sending its body (HTTP/1.1 only).
    pub expect_continue: bool,
    /// `Expect: 100-continue` was sent (an HTTP/1.0 client's is ignored, RFC 9110
    /// §10.1.1, and not forwarded either).
    expect_100: bool,
    /// Whether `Accept` names `text/event-stream`.
    pub accepts_event_stream: bool,
    headers: &'a [Header<'a>],
    named: Named<'a>,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead<'a> {
    pub code: u16,
    reason: &'a str,
    pub len: usize,
    pub framing: Framing,
    /// Whether the backend keeps the connection open after this response.
    pub keep_alive: bool,
    headers: &'a [Header<'a>],
    named: Named<'a>,
}

/// How a request head is rewritten on its way upstream.
#[derive(Debug, Default)]
pub struct Upstream<'a> {
    /// The client's address, appended to `X-Forwarded-For`.
    pub client_ip: &'a str,
    /// `traceparent` (and `tracestate`) replacing the client's: the proxy's own span.
    pub trace: Option<(&'a str, Option<&'a str>)>,
    /// Ask the backend to close the connection after this response.
    pub close: bool,
}

/// How a response head is rewritten on its way to the client.
#[derive(Debug, Default)]
pub struct Downstream<'a> {
    /// A `Set-Cookie` value to add (the sticky pin).
    pub set_cookie: Option<&'a [u8]>,
    /// The proxy closes the client connection after this response.
    pub close: bool,
    /// An HTTP/1.0 client that keeps the connection open.
    pub keep_alive_10: bool,
    /// The body goes out with the backend's `Transfer-Encoding`, as it came.
    pub transfer_encoding: bool,
}

/// Header names listed in `Connection`: they belong to this hop only.
#[derive(Debug, Default, Clone, Copy)]
struct Named<'a> {
    names: [&'a str; 8],
    count: usize,
}

/// The headers the proxy treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
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

// === Requests ===

/// Parses a request head at the start of `bytes`: `Ok(None)` until it is complete.
pub fn parse_request<'a>(
    bytes: &'a [u8],
    headers: &'a mut HeaderSlots<'a>,
) -> Result<Option<RequestHead<'a>>, Invalid> {
    let mut request = httparse::Request::new(&mut []);
    let parsed = request.parse_with_uninit_headers(bytes, headers);
    let Some(len) = complete(parsed, "malformed request head")? else {
        return Ok(None);
    };
    let httparse::Request { method, path, version, headers } = request;
    let headers: &'a [Header<'a>] = headers;
    // A complete parse has all three.
    let (Some(method), Some(path), Some(version)) = (method, path, version) else {
        return Err(Invalid::Malformed("malformed request line"));
    };
    if method == "CONNECT" {
        return Err(Invalid::Malformed("CONNECT is not supported"));
    }
    let http10 = version == 0;

    let (target, authority) = split_target(path)?;
    let mut host = authority.map_or(HostField::Missing, HostField::One);
    let mut connection = Connection::default();
    let mut lengths = Lengths::default();
    let mut chunked = None;
    let mut upgrade = None;
    let mut expect_100 = false;
    let mut accepts_event_stream = false;
    for header in headers {
        match classify(header.name) {
            Name::Host if authority.is_none() => {
                host = match (host, std::str::from_utf8(header.value)) {
                    (HostField::Missing, Ok(value)) if is_visible(header.value) => HostField::One(value),
                    (HostField::Missing, _) => HostField::Unreadable,
                    _ => HostField::Several,
                };
            }
            Name::ContentLength => lengths.add(header.value)?,
            Name::TransferEncoding => {
                // Only `chunked`, once: anything else a backend might read another way.
                if chunked.is_some() || !trimmed(header.value).eq_ignore_ascii_case(b"chunked") {
                    return Err(Invalid::Malformed("unsupported transfer-encoding"));
                }
                chunked = Some(());
            }
            Name::Connection => connection.add(header.value)?,
            Name::Upgrade => upgrade = Some(header.value),
            Name::Expect => expect_100 |= trimmed(header.value).eq_ignore_ascii_case(b"100-continue"),
            Name::Accept => accepts_event_stream |= contains(header.value, b"text/event-stream"),
            _ => {}
        }
    }
    let framing = match (chunked, lengths.value) {
        (Some(()), Some(_)) => return Err(Invalid::Malformed("both content-length and transfer-encoding")),
        (Some(()), None) if http10 => return Err(Invalid::Malformed("transfer-encoding in an HTTP/1.0 request")),
        (Some(()), None) => Framing::Chunked,
        (None, Some(0) | None) => Framing::Empty,
        (None, Some(length)) => Framing::Length(length),
    };
    let keep_alive = if http10 { connection.keep_alive && !connection.close } else { !connection.close };
    let upgrade = upgrade.filter(|_| connection.upgrade && !http10);
    Ok(Some(RequestHead {
        method,
        target,
        http10,
        len,
        host,
        authority_form: authority.is_some(),
        framing,
        keep_alive,
        upgrade,
        expect_continue: expect_100 && !http10,
        expect_100,
        accepts_event_stream,
        headers,
        named: connection.named,
    }))
}

impl RequestHead<'_> {
    /// The target in origin form (`/path?query`).
    pub fn path(&self) -> &str {
        self.target
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Whether doing the request twice has the effect of doing it once (RFC 9110 §9.2.2).
    pub fn is_idempotent(&self) -> bool {
        matches!(self.method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE")
    }

    /// The value of the named cookie, if the request carries it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|header| header.name.eq_ignore_ascii_case("cookie"))
            .filter_map(|header| std::str::from_utf8(header.value).ok())
            .flat_map(|value| value.split(';'))
            .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
    }

    /// The first value of a header, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        let header = self.headers.iter().find(|header| header.name.eq_ignore_ascii_case(name))?;
        std::str::from_utf8(header.value).ok()
    }

    /// Writes the head as the backend gets it: HTTP/1.1, hop-by-hop headers (and
    /// those `Connection` names) out, `X-Forwarded-For`/`-Proto`/`-Host` in, the Host
    /// as the client sent it, and the trace context carried on.
    pub fn write_upstream(&self, rewrite: &Upstream<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if self.authority_form
            && let HostField::One(authority) = self.host
        {
            put_header(out, b"host", authority.as_bytes());
        }
        let mut earlier_forwarded_for = false;
        for header in self.headers {
            let keep = match classify(header.name) {
                Name::Host => !self.authority_form,
                Name::ContentLength => self.framing != Framing::Chunked,
                Name::Expect => !self.expect_100,
                Name::Traceparent | Name::Tracestate => rewrite.trace.is_none(),
                Name::Other | Name::Accept => !self.named.contains(header.name),
                Name::XForwardedFor => {
                    earlier_forwarded_for = true;
                    false
                }
                Name::TransferEncoding
                | Name::Connection
                | Name::HopByHop
                | Name::Upgrade
                | Name::XForwardedProto
                | Name::XForwardedHost => false,
            };
            if keep {
                put_header(out, header.name.as_bytes(), header.value);
            }
        }
        // Earlier proxies' addresses, then the client's, in one list.
        out.extend_from_slice(b"x-forwarded-for: ");
        if earlier_forwarded_for {
            let earlier = self.headers.iter().filter(|header| classify(header.name) == Name::XForwardedFor);
            for header in earlier.filter(|header| is_visible(header.value) && !trimmed(header.value).is_empty()) {
                out.extend_from_slice(trimmed(header.value));
                out.extend_from_slice(b", ");
            }
        }
        out.extend_from_slice(rewrite.client_ip.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(b"x-forwarded-proto: http\r\n");
        if let HostField::One(host) = self.host {
            put_header(out, b"x-forwarded-host", host.as_bytes());
        }
        if self.framing == Framing::Chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if let Some((traceparent, tracestate)) = rewrite.trace {
            put_header(out, b"traceparent", traceparent.as_bytes());
            if let Some(tracestate) = tracestate {
                put_header(out, b"tracestate", tracestate.as_bytes());
            }
        }
        match self.upgrade {
            Some(protocol) => {
                out.extend_from_slice(b"connection: upgrade\r\n");
                put_header(out, b"upgrade", protocol);
            }
            None if rewrite.close => out.extend_from_slice(b"connection: close\r\n"),
            None => {}
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The head's length once `httparse` has all of it; `None` while it is partial.
fn complete(parsed: httparse::Result<usize>, malformed: &'static str) -> Result<Option<usize>, Invalid> {
    match parsed {
        Ok(Status::Complete(len)) => Ok(Some(len)),
        Ok(Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(Invalid::TooManyHeaders),
        Err(_) => Err(Invalid::Malformed(malformed)),
    }
}

/// Splits a request target into the origin-form path and, for an absolute-form
/// target (`http://host/path`), its authority.
fn split_target(target: &str) -> Result<(&str, Option<&str>), Invalid> {
    if target.starts_with('/') || target == "*" {
        return Ok((target, None));
    }
    let scheme = b"http://";
    if target.len() > scheme.len() && target.as_bytes()[..scheme.len()].eq_ignore_ascii_case(scheme) {
        // The scheme is ASCII, so this is a character boundary.
        let rest = &target[scheme.len()..];
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return Err(Invalid::Malformed("bad authority in the request target"));
        }
        return match path.as_bytes().first() {
            Some(b'/') => Ok((path, Some(authority))),
            // `http://host` and `http://host?q` have an empty path: send `/`.
            None => Ok(("/", Some(authority))),
            Some(_) => Err(Invalid::Malformed("a query without a path in the request target")),
        };
    }
    Err(Invalid::Malformed("unsupported request target"))
}

// === Responses ===

/// Parses a response head at the start of `bytes`: `Ok(None)` until it is complete.
/// `head_request`: the request was a HEAD, so the response has no body.
pub fn parse_response<'a>(
    bytes: &'a [u8],
    headers: &'a mut HeaderSlots<'a>,
    head_request: bool,
) -> Result<Option<ResponseHead<'a>>, Invalid> {
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, bytes, headers);
    let Some(len) = complete(parsed, "malformed response head")? else {
        return Ok(None);
    };
    let httparse::Response { version, code, reason, headers } = response;
    let headers: &'a [Header<'a>] = headers;
    let (Some(version), Some(code)) = (version, code) else {
        return Err(Invalid::Malformed("malformed status line"));
    };
    let mut connection = Connection::default();
    let mut lengths = Lengths::default();
    let mut transfer_encoding = None;
    for header in headers {
        match classify(header.name) {
            Name::ContentLength => lengths.add(header.value)?,
            // The last coding is what delimits the body.
            Name::TransferEncoding => transfer_encoding = Some(header.value),
            Name::Connection => connection.add(header.value)?,
            _ => {}
        }
    }
    let framing = if head_request || code < 200 || code == 204 || code == 304 {
        Framing::Empty
    } else if let Some(codings) = transfer_encoding {
        let last = codings.rsplit(|byte| *byte == b',').next().map(trimmed).unwrap_or_default();
        if last.eq_ignore_ascii_case(b"chunked") { Framing::Chunked } else { Framing::UntilClose }
    } else {
        match lengths.value {
            Some(length) => Framing::Length(length),
            None => Framing::UntilClose,
        }
    };
    let keep_alive = version == 1 && !connection.close && framing != Framing::UntilClose;
    Ok(Some(ResponseHead {
        code,
        reason: reason.unwrap_or_default(),
        len,
        framing,
        keep_alive,
        headers,
        named: connection.named,
    }))
}

impl ResponseHead<'_> {
    /// Whether the body has a transfer coding besides (or instead of) `chunked`.
    pub fn has_codings(&self) -> bool {
        self.headers.iter().any(|header| {
            classify(header.name) == Name::TransferEncoding && !trimmed(header.value).eq_ignore_ascii_case(b"chunked")
        })
    }

    /// Whether the body is an event stream (`Content-Type: text/event-stream`).
    pub fn is_event_stream(&self) -> bool {
        self.headers.iter().any(|header| {
            header.name.eq_ignore_ascii_case("content-type")
                && trimmed(header.value).len() >= 17
                && header.value.trim_ascii_start()[..17].eq_ignore_ascii_case(b"text/event-stream")
        })
    }

    /// Writes the head as the client gets it: hop-by-hop headers out (a 101 keeps
    /// its `Upgrade`), the proxy's own framing and connection headers in.
    pub fn write_downstream(&self, rewrite: &Downstream<'_>, out: &mut Vec<u8>) {
        let switching = self.code == 101;
        out.extend_from_slice(b"HTTP/1.1 ");
        push_status(out, self.code);
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        for header in self.headers {
            let keep = match classify(header.name) {
                // A length beside a transfer-encoding is wrong and must go.
                Name::ContentLength => matches!(self.framing, Framing::Length(_) | Framing::Empty),
                Name::Upgrade => switching,
                // The body is relayed as it came, so its codings are told as they came.
                Name::TransferEncoding => rewrite.transfer_encoding,
                Name::Connection | Name::HopByHop => false,
                _ => !self.named.contains(header.name),
            };
            if keep {
                put_header(out, header.name.as_bytes(), header.value);
            }
        }
        if let Some(cookie) = rewrite.set_cookie {
            put_header(out, b"set-cookie", cookie);
        }
        if switching {
            out.extend_from_slice(b"connection: upgrade\r\n");
        } else if rewrite.close {
            out.extend_from_slice(b"connection: close\r\n");
        } else if rewrite.keep_alive_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

// === Writing ===

/// Writes a whole response made by the proxy: status, these headers, a `Date`, the
/// length, and the body (not for a HEAD request: `send_body` false).
pub fn write_response(
    out: &mut Vec<u8>,
    code: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    send_body: bool,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status(out, code);
    out.push(b' ');
    let reason = http::StatusCode::from_u16(code).ok().and_then(|status| status.canonical_reason());
    out.extend_from_slice(reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        put_header(out, name.as_bytes(), value.as_bytes());
    }
    put_header(out, b"date", httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    put_header(out, b"content-length", body.len().to_string().as_bytes());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if send_body {
        out.extend_from_slice(body);
    }
}

fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A status code as its three digits (`httparse` and `http` both keep it in 100..=999).
fn push_status(out: &mut Vec<u8>, code: u16) {
    let code = code.clamp(100, 999);
    out.extend_from_slice(&[b'0' + (code / 100) as u8, b'0' + (code / 10 % 10) as u8, b'0' + (code % 10) as u8]);
}

// === Header values ===

/// What the `Connection` headers say.
#[derive(Debug, Default)]
struct Connection<'a> {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    named: Named<'a>,
}

impl<'a> Connection<'a> {
    fn add(&mut self, value: &'a [u8]) -> Result<(), Invalid> {
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
    fn add(&mut self, name: &'a str) -> Result<(), Invalid> {
        if self.count == self.names.len() {
            return Err(Invalid::Malformed("too many connection options"));
        }
        self.names[self.count] = name;
        self.count += 1;
        Ok(())
    }

    fn contains(&self, name: &str) -> bool {
        self.names[..self.count].iter().any(|named| named.eq_ignore_ascii_case(name))
    }
}

/// `Content-Length` values: each a number, all equal (RFC 9112 §6.3, item 5).
#[derive(Debug, Default)]
struct Lengths {
    value: Option<u64>,
}

impl Lengths {
    fn add(&mut self, value: &[u8]) -> Result<(), Invalid> {
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

fn classify(name: &str) -> Name {
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

fn trimmed(value: &[u8]) -> &[u8] {
    value.trim_ascii()
}

/// Visible ASCII and spaces: what a header value must be to be read as text.
fn is_visible(value: &[u8]) -> bool {
    value.iter().all(|byte| (0x20..0x7f).contains(byte) || *byte == b'\t')
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests;
