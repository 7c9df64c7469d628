//! Sending spans to the collector: over OTLP/HTTP only (a gRPC setting is refused at
//! start), with failures logged (throttled), and, in a process that runs several
//! services (`weaprous up`), each service's spans under its own `service.name`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, TraceContextExt};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor};

use super::throttle::Throttle;

/// The span attribute that names the service a span belongs to: set on request spans,
/// inherited by their in-process children.
pub(super) const SERVICE_ATTRIBUTE: &str = "service";

/// Why the configured OTLP protocol cannot be used, if it cannot: only
/// `http/protobuf` is built in. Sending HTTP to a gRPC port would lose every span
/// without a word, so a gRPC setting stops the service at start instead.
pub(super) fn unsupported_protocol() -> Option<String> {
    for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        match std::env::var(name).map(|value| value.trim().to_owned()).as_deref() {
            Ok("") | Err(_) => continue,
            Ok("http/protobuf") => return None,
            Ok(other) => {
                return Some(format!(
                    "{name}={other} is not supported: traces are sent over OTLP/HTTP only; set it to \
                     http/protobuf (or unset it) and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's \
                     OTLP/HTTP port (4318), not its gRPC port (4317)"
                ));
            }
        }
    }
    None
}

/// An OTLP exporter whose failures are logged with their reason: the first at once,
/// then one every [`super::throttle::WARN_EVERY`] with how many were held back, and
/// once more when spans get through again.
#[derive(Debug)]
pub(super) struct Reporting<E> {
    inner: E,
    endpoint: String,
    /// Shared by every exporter of the process, so a collector that is down is one
    /// warning, not one per service.
    outcome: Arc<Mutex<Outcome>>,
}

#[derive(Debug, Default)]
pub(super) struct Outcome {
    failures: Throttle,
    /// Whether any export has succeeded yet: the first says so.
    succeeded: bool,
}

impl<E> Reporting<E> {
    pub(super) fn new(inner: E, endpoint: String, outcome: Arc<Mutex<Outcome>>) -> Self {
        Self { inner, endpoint, outcome }
    }
}

impl<E: SpanExporter> SpanExporter for Reporting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(()) => {
                let recovered = outcome.failures.clear();
                if recovered || !outcome.succeeded {
                    tracing::info!(endpoint = %self.endpoint, "exporting traces over OTLP");
                }
                outcome.succeeded = true;
            }
            Err(err) => {
                if let Some(held_back) = outcome.failures.hit(Instant::now()) {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        %err,
                        spans,
                        failures_held_back = held_back,
                        "failed to export traces over OTLP; spans are dropped"
                    );
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Makes a batch processor for one service's spans.
pub(super) type MakeProcessor = Box<dyn Fn() -> Option<BatchSpanProcessor> + Send + Sync>;

/// Hands each span to the batch processor of its service, so that a process running
/// several services exports each under its own `service.name`. A span's service is
/// its [`SERVICE_ATTRIBUTE`], or its in-process parent's; spans of no service go
/// under the process's own name.
pub(super) struct ByService {
    own: BatchSpanProcessor,
    own_name: String,
    make: MakeProcessor,
    resource: Option<Resource>,
    others: Mutex<HashMap<String, Arc<BatchSpanProcessor>>>,
    /// The service of each span still open, for its children.
    open: Mutex<HashMap<opentelemetry::trace::SpanId, Value>>,
}

impl std::fmt::Debug for ByService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByService").field("own_name", &self.own_name).finish_non_exhaustive()
    }
}

impl ByService {
    pub(super) fn new(own_name: String, make: MakeProcessor) -> Option<Self> {
        let own = make()?;
        Some(Self { own, own_name, make, resource: None, others: Mutex::default(), open: Mutex::default() })
    }

    /// The processor for `service`'s spans, made on first use.
    fn processor(&self, service: &str) -> Option<Arc<BatchSpanProcessor>> {
        let mut others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(processor) = others.get(service) {
            return Some(processor.clone());
        }
        let mut processor = (self.make)()?;
        if let Some(resource) = &self.resource {
            processor.set_resource(&with_service_name(resource, service));
        }
        let processor = Arc::new(processor);
        others.insert(service.to_owned(), processor.clone());
        Some(processor)
    }
}

impl SpanProcessor for ByService {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        // A span that names its service (a request span) belongs to it, whatever its
        // parent: in the all-in-one, the caller's span may be in this process too.
        let own = span
            .exported_data()
            .and_then(|data| data.attributes.into_iter().find(|kv| kv.key.as_str() == SERVICE_ATTRIBUTE))
            .map(|kv| kv.value);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let service = match own {
            Some(own) => Some(own),
            None => {
                let inherited = open.get(&cx.span().span_context().span_id()).cloned();
                if let Some(inherited) = &inherited {
                    span.set_attribute(KeyValue::new(SERVICE_ATTRIBUTE, inherited.clone()));
                }
                inherited
            }
        };
        if let Some(service) = service {
            open.insert(span.span_context().span_id(), service);
        }
        drop(open);
        self.own.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&span.span_context.span_id());
        let service = span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == SERVICE_ATTRIBUTE)
            .map(|kv| kv.value.as_str().into_owned());
        match service {
            Some(service) if service != self.own_name => match self.processor(&service) {
                Some(processor) => processor.on_end(span),
                None => self.own.on_end(span),
            },
            _ => self.own.on_end(span),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let others: Vec<_> = self.others.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        others.iter().try_for_each(|processor| processor.force_flush())?;
        self.own.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let others: Vec<_> = self.others.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        // All at once, so that the exit waits `timeout` at most, not once per service.
        std::thread::scope(|scope| {
            for processor in &others {
                scope.spawn(|| processor.shutdown_with_timeout(timeout));
            }
            self.own.shutdown_with_timeout(timeout)
        })
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.own.set_resource(resource);
        self.resource = Some(resource.clone());
    }
}

/// `resource` with `service.name` replaced.
fn with_service_name(resource: &Resource, service: &str) -> Resource {
    let attributes = resource
        .iter()
        .filter(|(key, _)| key.as_str() != "service.name")
        .map(|(key, value)| KeyValue::new(key.clone(), value.clone()));
    Resource::builder_empty().with_attributes(attributes).with_service_name(service.to_owned()).build()
}

#[cfg(test)]
mod tests {

    use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;

    /// Every span exported, as (the resource's `service.name`, the span's name).
    type Seen = Arc<Mutex<Vec<(String, String)>>>;

    /// An exporter that keeps what it is sent, or fails every export.
    #[derive(Debug)]
    struct Recorder {
        seen: Seen,
        service: String,
        fail: bool,
    }

    impl SpanExporter for Recorder {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if self.fail {
                return Err(OTelSdkError::InternalFailure("connection refused".into()));
            }
            let mut seen = self.seen.lock().unwrap();
            seen.extend(batch.into_iter().map(|span| (self.service.clone(), span.name.into_owned())));
            Ok(())
        }

        fn set_resource(&mut self, resource: &Resource) {
            self.service = resource.get(&"service.name".into()).map(|name| name.to_string()).unwrap_or_default();
        }
    }

    #[test]
    fn each_service_of_a_process_exports_under_its_own_name_and_children_follow_their_parent() {
        let seen = Seen::default();
        let recorded = seen.clone();
        let make: MakeProcessor = Box::new(move || {
            let recorder = Recorder { seen: recorded.clone(), service: String::new(), fail: false };
            Some(BatchSpanProcessor::builder(recorder).build())
        });
        let provider = SdkTracerProvider::builder()
            .with_resource(Resource::builder_empty().with_service_name("weaprous").build())
            .with_span_processor(ByService::new("weaprous".into(), make).unwrap())
            .build();
        let tracer = provider.tracer("test");

        let mut request = tracer
            .span_builder("GET /lookup")
            .with_attributes([KeyValue::new(SERVICE_ATTRIBUTE, "tracker")])
            .start(&tracer);
        let parent = Context::current().with_remote_span_context(request.span_context().clone());
        tracer.start_with_context("query", &parent).end();
        // A callee in the same process (the all-in-one) keeps its own service.
        tracer
            .span_builder("POST /login")
            .with_attributes([KeyValue::new(SERVICE_ATTRIBUTE, "auth")])
            .start_with_context(&tracer, &parent)
            .end();
        request.end();
        tracer
            .span_builder("POST /send-peer")
            .with_attributes([KeyValue::new(SERVICE_ATTRIBUTE, "peer")])
            .start(&tracer)
            .end();
        tracer.start("background").end();
        provider.force_flush().unwrap();

        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        let expected = [
            ("auth", "POST /login"),
            ("peer", "POST /send-peer"),
            ("tracker", "GET /lookup"),
            ("tracker", "query"),
            ("weaprous", "background"),
        ];
        assert_eq!(seen, expected.map(|(service, name)| (service.to_owned(), name.to_owned())));
    }

    #[tokio::test]
    async fn export_failures_are_warned_with_their_reason_once_per_interval() {
        let lines = crate::telemetry::capture::CapturedLines::default();
        let _default = tracing::subscriber::set_default(lines.subscriber());
        let recorder = Recorder { seen: Seen::default(), service: String::new(), fail: true };
        let exporter = Reporting::new(recorder, "http://collector:4318".into(), Arc::default());
        for _ in 0..20 {
            assert!(exporter.export(Vec::new()).await.is_err());
        }
        let logged = lines.text();
        let warnings: Vec<&str> = logged.lines().filter(|line| line.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{logged}");
        assert!(warnings[0].contains("connection refused"), "the reason: {}", warnings[0]);
        assert!(warnings[0].contains("http://collector:4318"), "the endpoint: {}", warnings[0]);
    }
}
