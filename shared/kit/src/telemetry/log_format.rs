//! Log lines that lead to traces: every line written inside a span ends with the
//! `trace_id` and `span_id` of that span, in JSON (two more keys) and in text
//! (`trace_id=… span_id=…`). Search the trace store for the `trace_id`.

use std::fmt;
use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing::Subscriber;
use tracing::dispatcher::WeakDispatch;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The process's subscriber, to ask its OpenTelemetry layer for span contexts.
static DISPATCH: OnceLock<WeakDispatch> = OnceLock::new();

/// Remembers the global subscriber once it is installed.
pub(super) fn remember_dispatch() {
    tracing::dispatcher::get_default(|dispatch| {
        let _ = DISPATCH.set(dispatch.downgrade());
    });
}

/// The layer that writes log lines to `writer`: JSON lines, or text (coloured when
/// `ansi`), each ending with the ids of its span.
pub(super) fn layer<S, W>(json: bool, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    if json {
        // The span list alone: the current span is its last entry already.
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .map_event_format(|format| WithTraceIds::new(format, true))
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .map_event_format(|format| WithTraceIds::new(format.with_ansi(ansi), false))
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed()
    }
}

/// Wraps a line format (`json` or text) and appends the trace and span ids.
struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceIds<F> {
    fn new(inner: F, json: bool) -> Self {
        Self { inner, json }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let Some((trace_id, span_id)) = ids(ctx) else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.trim_end_matches('\n');
        match line.strip_suffix('}') {
            Some(object) if self.json => {
                writeln!(writer, r#"{object},"trace_id":"{trace_id}","span_id":"{span_id}"}}"#)
            }
            _ => writeln!(writer, "{line} trace_id={trace_id} span_id={span_id}"),
        }
    }
}

/// The trace and span ids of the innermost span around the event that is traced
/// (spans of the exporter's own HTTP stack are not).
fn ids<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<(String, String)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let span = ctx.parent_span()?;
    let dispatch = DISPATCH.get()?.upgrade()?;
    span.scope().find_map(|span| {
        let context = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::capture::CapturedLines;

    #[test]
    fn lines_inside_a_span_end_with_its_trace_and_span_ids_in_text_and_json() {
        let (text, json) = (CapturedLines::default(), CapturedLines::default());
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let (text_writer, json_writer) = (text.clone(), json.clone());
        let subscriber = tracing_subscriber::registry()
            .with(layer(false, false, move || text_writer.clone()))
            .with(layer(true, false, move || json_writer.clone()))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _default = tracing::subscriber::set_default(subscriber);
        remember_dispatch();

        tracing::info!("before any span");
        let span = tracing::info_span!("request", route = "/send-peer");
        let inner = span.in_scope(|| {
            let inner = tracing::info_span!("handler");
            inner.in_scope(|| tracing::info!(status = 200, "inside"));
            inner
        });
        let trace_id = span.context().span().span_context().trace_id().to_string();
        let span_id = inner.context().span().span_context().span_id().to_string();

        let text = text.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(!lines[0].contains("trace_id"), "{}", lines[0]);
        assert!(lines[1].ends_with(&format!("status=200 trace_id={trace_id} span_id={span_id}")), "{}", lines[1]);

        let json = json.text();
        let lines: Vec<serde_json::Value> = json.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines[0].get("trace_id"), None);
        assert_eq!(lines[1]["trace_id"], trace_id.as_str());
        assert_eq!(lines[1]["span_id"], span_id.as_str());
        assert_eq!(lines[1]["message"], "inside");
        // The request span appears once, in the span list.
        assert_eq!(lines[1].get("span"), None, "{}", lines[1]);
        assert_eq!(lines[1]["spans"][0]["route"], "/send-peer");
    }
}
