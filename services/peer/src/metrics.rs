//! The peer's metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The peer's metrics, and the registry they render from.
#[derive(Clone)]
pub struct PeerMetrics {
    pub registry: kit::metrics::Metrics,
    pub http: kit::metrics::HttpMetrics,
    /// Browsers' event streams open now.
    pub sse_streams: Gauge,
    /// Of those, the ones alone on their connection, served without hyper's buffers.
    pub sse_streams_own_connection: Gauge,
    /// Direct messages users of this peer sent.
    pub dms_sent: Counter,
    /// Direct messages handed to the recipient's peer (at once or from the outbox).
    pub dms_delivered: Counter,
    /// Direct messages filed for users of this peer.
    pub dms_received: Counter,
    /// Delivery attempts from the outbox.
    pub outbox_retries: Counter,
    /// Messages waiting in the outbox.
    pub outbox_depth: Gauge,
    /// Events received on the tracker's push stream.
    pub pushes_received: Counter,
}

impl PeerMetrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            registry: kit::metrics::Metrics::new(Registry::default()),
            http: kit::metrics::HttpMetrics::register(&mut registry),
            sse_streams: Gauge::default(),
            sse_streams_own_connection: Gauge::default(),
            dms_sent: Counter::default(),
            dms_delivered: Counter::default(),
            dms_received: Counter::default(),
            outbox_retries: Counter::default(),
            outbox_depth: Gauge::default(),
            pushes_received: Counter::default(),
        };
        registry.register("peer_sse_streams_open", "Browser event streams open", metrics.sse_streams.clone());
        registry.register(
            "peer_sse_streams_own_connection",
            "Browser event streams open alone on their connection (served without hyper's buffers)",
            metrics.sse_streams_own_connection.clone(),
        );
        registry.register(
            "peer_direct_messages_sent",
            "Direct messages sent by users of this peer",
            metrics.dms_sent.clone(),
        );
        registry.register(
            "peer_direct_messages_delivered",
            "Direct messages handed to the recipient's peer",
            metrics.dms_delivered.clone(),
        );
        registry.register(
            "peer_direct_messages_received",
            "Direct messages filed for users of this peer",
            metrics.dms_received.clone(),
        );
        registry.register("peer_outbox_retries", "Delivery attempts from the outbox", metrics.outbox_retries.clone());
        registry.register("peer_outbox_depth", "Direct messages waiting in the outbox", metrics.outbox_depth.clone());
        registry.register(
            "peer_tracker_pushes_received",
            "Events received from the tracker",
            metrics.pushes_received.clone(),
        );
        Self { registry: kit::metrics::Metrics::new(registry), ..metrics }
    }
}
