//! The proxy's service tests: real backends and the real proxy on 127.0.0.1:0.

mod binary;
mod failover;
mod framing;
mod helpers;
mod http;
mod http2;
mod metrics;
mod reload;
mod routing;
mod sticky;
mod streaming;
mod tls;
