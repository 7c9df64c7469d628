//! Response heads: parsed, checked, and written out for the client; and the
//! responses the proxy makes itself.

use httparse::Header;

use super::fields::{
    Connection, Framing, HeaderSlots, Invalid, Lengths, Name, Named, classify, complete, push_status, put_header,
    trimmed,
};

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

/// How a response head is rewritten on its way to the client.
#[derive(Debug, Default)]
pub struct Downstream<'a> {
    /// A `Set-Cookie` value to add (the sticky pin).
    pub set_cookie: Option<&'a [u8]>,
    /// A `Strict-Transport-Security` value, replacing the backend's.
    pub hsts: Option<&'a [u8]>,
    /// The proxy closes the client connection after this response.
    pub close: bool,
    /// An HTTP/1.0 client that keeps the connection open.
    pub keep_alive_10: bool,
    /// The body goes out with the backend's `Transfer-Encoding`, as it came.
    pub transfer_encoding: bool,
}

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

    /// The end-to-end headers, as an HTTP/2 response carries them: those of the
    /// connection (`Connection` and what it names, `Keep-Alive`, `Transfer-Encoding`,
    /// `Upgrade`...) left out, as RFC 9113 §8.2.2 requires.
    pub fn end_to_end(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .filter(|header| match classify(header.name) {
                Name::Connection | Name::HopByHop | Name::Upgrade | Name::TransferEncoding => false,
                _ => !self.named.contains(header.name),
            })
            .map(|header| (header.name, header.value))
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
            let replaced = rewrite.hsts.is_some() && header.name.eq_ignore_ascii_case("strict-transport-security");
            if keep && !replaced {
                put_header(out, header.name.as_bytes(), header.value);
            }
        }
        if let Some(cookie) = rewrite.set_cookie {
            put_header(out, b"set-cookie", cookie);
        }
        if let Some(hsts) = rewrite.hsts {
            put_header(out, b"strict-transport-security", hsts);
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

// === The proxy's own responses ===

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
