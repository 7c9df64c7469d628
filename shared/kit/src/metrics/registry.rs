//! A service's finished registry and how it is rendered.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use super::exposition;

/// A finished registry, rendered on `GET /metrics`. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct Metrics(Arc<Registry>);

impl Metrics {
    pub fn new(registry: Registry) -> Self {
        Self(Arc::new(registry))
    }

    /// The registry in OpenMetrics text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut text, &self.0).expect("metrics encode into a String");
        text
    }

    /// The registry in the format a request's `Accept` asks for, with its media type.
    pub fn render_for(&self, accept: Option<&str>) -> (&'static str, String) {
        let text = self.render();
        if exposition::wants_openmetrics(accept) {
            (exposition::OPENMETRICS, text)
        } else {
            (exposition::CLASSIC, exposition::to_classic(&text))
        }
    }
}
