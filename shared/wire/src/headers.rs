//! Header and cookie names that several services agree on.

/// The cookie that carries the session token to the tracker and the peers.
pub const SESSION_COOKIE: &str = "weaprous_session";

/// The same cookie when set over HTTPS: `Secure`, and with the `__Host-` prefix, which
/// browsers accept only from a secure origin, for the whole host and no domain (so a
/// sibling host cannot plant or overwrite it).
pub const SECURE_SESSION_COOKIE: &str = "__Host-weaprous_session";

/// The signature of a service-to-service request: `t=<unix seconds>,v1=<hex hmac>`,
/// an HMAC-SHA256 with the cluster secret over the method, path, time and body.
pub const SIGNATURE: &str = "x-weaprous-signature";

/// Set by the proxy on errors it made itself (no route, upstream down or slow), so
/// clients can tell them from the upstream's own errors.
pub const PROXY_ERROR: &str = "x-proxy-error";

/// Set by every service on its replies: which instance answered (`peer@127.0.0.1:9001`).
pub const SERVED_BY: &str = "x-served-by";
