//! OpenTelemetry trace context across NATS. A publish carries the current span's context in the W3C
//! `traceparent` (and `tracestate`) headers; the span that handles a delivered message is made its child, so
//! one trace follows an order from the OMS through every service to the email. Spans are exported over
//! OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see `telemetry`).

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

struct Collect(Vec<(String, String)>);

impl Injector for Collect {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

struct Read<'a>(&'a [(String, String)]);

impl Extractor for Read<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// The current span's context as headers; empty when tracing to OpenTelemetry is not set up.
pub fn current() -> Vec<(String, String)> {
    let context = tracing::Span::current().context();
    let mut headers = Collect(Vec::new());
    TraceContextPropagator::new().inject_context(&context, &mut headers);
    headers.0
}

/// The current span's `traceparent`, to store beside an event that is published later (the outbox).
pub fn traceparent() -> Option<String> {
    current()
        .into_iter()
        .find(|(k, _)| k == TRACEPARENT)
        .map(|(_, v)| v)
}

/// The trace headers of a received message.
pub fn from_headers(headers: Option<&HeaderMap>) -> Vec<(String, String)> {
    let Some(headers) = headers else {
        return Vec::new();
    };
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|key| {
            headers
                .get(key)
                .map(|value| (key.to_string(), value.as_str().to_string()))
        })
        .collect()
}

/// Makes `span` a child of the context the headers carry (no-op without one).
pub fn follow(span: &tracing::Span, headers: &[(String, String)]) {
    if headers.is_empty() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Read(headers));
    // Fails only when the span is disabled; then there is nothing to link.
    let _ = span.set_parent(parent);
}

/// [`follow`] for a stored `traceparent`.
pub fn follow_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(value) = traceparent {
        follow(span, &[(TRACEPARENT.to_string(), value.to_string())]);
    }
}
