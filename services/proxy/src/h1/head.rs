//! Message heads: parsed by `httparse` (hyper's own parser), checked against the
//! framing rules that keep a proxy safe from request smuggling (RFC 9112 §6), and
//! written out again for the next hop, hop-by-hop headers left behind.
//!
//! Everything here borrows the connection's buffer and does no IO, so it is tested
//! on byte strings.

//!
//! - `fields`: what both share: header slots, [`Framing`], the headers the proxy
//!   treats specially, `Connection` and `Content-Length` rules.
//! - `request`: request heads, and the head the backend gets.
//! - `response`: response heads, the head the client gets, and the proxy's own
//!   responses.

mod fields;
mod request;
mod response;

pub use fields::{Framing, HeaderSlots, Invalid, MAX_HEADERS, header_slots};
pub use request::{HostField, RequestHead, Upstream, parse_request};
pub use response::{Downstream, ResponseHead, parse_response, write_response};

#[cfg(test)]
mod tests;
