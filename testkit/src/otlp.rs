//! An OTLP/HTTP trace receiver for tests: `POST /v1/traces` on 127.0.0.1:0, keeping
//! every span it is sent, with the `service.name` of its resource.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// One received span.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    /// Every attribute, as text whatever its type.
    pub attributes: HashMap<String, String>,
    /// The attributes sent as integers (OTLP `intValue`), to tell `200` from `"200"`.
    pub int_attributes: HashMap<String, i64>,
    /// The attributes of the resource the span was sent with (`service.name`,
    /// `service.version`, `service.instance.id`, ...).
    pub resource: HashMap<String, String>,
    /// Trace ids this span links to.
    pub links: Vec<String>,
}

/// A running receiver. Cloning shares the spans.
#[derive(Clone)]
pub struct Collector {
    pub endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    pub async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port for the collector");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let app = Router::new().route("/v1/traces", post(receive)).with_state(spans.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, spans }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        self.spans().into_iter().filter(|span| span.trace_id == trace_id).collect()
    }
}

async fn receive(State(spans): State<Arc<Mutex<Vec<Span>>>>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let resource: HashMap<String, String> = resource_spans
            .resource
            .as_ref()
            .map(|resource| resource.attributes.iter().filter_map(|kv| Some((kv.key.clone(), text(kv)?))).collect())
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                received.push(Span {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    parent_span_id: hex::encode(span.parent_span_id),
                    kind: span.kind,
                    attributes: span.attributes.iter().filter_map(|kv| Some((kv.key.clone(), text(kv)?))).collect(),
                    int_attributes: span
                        .attributes
                        .iter()
                        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            AnyValue::IntValue(number) => Some((kv.key.clone(), *number)),
                            _ => None,
                        })
                        .collect(),
                    resource: resource.clone(),
                    links: span.links.iter().map(|link| hex::encode(&link.trace_id)).collect(),
                });
            }
        }
    }
    spans.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(received);
    ([(header::CONTENT_TYPE, "application/x-protobuf")], ExportTraceServiceResponse::default().encode_to_vec())
        .into_response()
}

fn text(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(text) => Some(text.clone()),
        AnyValue::IntValue(number) => Some(number.to_string()),
        AnyValue::BoolValue(flag) => Some(flag.to_string()),
        AnyValue::DoubleValue(number) => Some(number.to_string()),
        _ => None,
    }
}
