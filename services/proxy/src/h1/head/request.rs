//! Request heads: parsed, checked against the framing rules, and written out for
//! the backend.

use httparse::Header;

use super::fields::{
    Connection, Framing, HeaderSlots, Invalid, Lengths, Name, Named, classify, complete, contains, is_visible,
    put_header, trimmed,
};

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

/// How a request head is rewritten on its way upstream.
#[derive(Debug, Default)]
pub struct Upstream<'a> {
    /// The client's address, appended to `X-Forwarded-For`.
    pub client_ip: &'a str,
    /// The client came over TLS: `X-Forwarded-Proto: https`.
    pub https: bool,
    /// `traceparent` (and `tracestate`) replacing the client's: the proxy's own span.
    pub trace: Option<(&'a str, Option<&'a str>)>,
    /// Ask the backend to close the connection after this response.
    pub close: bool,
}

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
        out.extend_from_slice(if rewrite.https {
            b"x-forwarded-proto: https\r\n"
        } else {
            b"x-forwarded-proto: http\r\n"
        });
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

/// Splits a request target into the origin-form path and, for an absolute-form
/// target (`http://host/path`), its authority.
pub(super) fn split_target(target: &str) -> Result<(&str, Option<&str>), Invalid> {
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
