//! The proxy's HTTP/1.1 engine: the message-level pieces that the sessions
//! ([`crate::downstream`], [`crate::upstream`]) and [`crate::forward`] use.
//!
//! Why not hyper's server and hyper-util's pooled client, which the proxy used first:
//! a proxy relays messages it hardly needs to understand, and through hyper each
//! request went through two full HTTP/1 state machines, a `HeaderMap` built and
//! re-serialized twice, and the client's dispatch channel and pool. Measured on this
//! project's benchmark (`bench/proxy.sh`), that was 0.74x nginx's requests per second
//! at 1.55x its CPU per request, with the proxy's own code about 1.5 % of the
//! profile. Here a head is parsed once, by `httparse` (hyper's own parser), where it
//! lies in the connection's buffer, and written out again for the next hop in one
//! pass; bodies are relayed as they come, their framing followed, not re-encoded.
//!
//! - [`head`]: parsing, the framing rules (RFC 9112 §6), and the rewrites.
//! - [`chunked`]: following a chunked body's framing as it passes.
//! - [`pool`]: idle keep-alive connections to backends, one pool per worker.

pub mod chunked;
pub mod head;
pub mod pool;
