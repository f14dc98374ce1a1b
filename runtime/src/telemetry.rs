//! Logging and traces: `tracing` with `RUST_LOG`-style filtering (default `info`); `BO_LOG_FORMAT=json` for one
//! JSON object per line, as log shippers want it. Spans also go to OpenTelemetry, so their context travels in
//! NATS headers (see `trace`); with `OTEL_EXPORTER_OTLP_ENDPOINT` set they are exported over OTLP/HTTP.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::Source;

/// Keeps the tracer provider alive; dropping it flushes the spans not yet exported.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("flushing traces: {error}");
        }
    }
}

/// Sets up logging and tracing for `service`. Keep the result until the process ends.
pub fn init(source: &impl Source, service: &'static str) -> Telemetry {
    let filter = source
        .get("RUST_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let mut provider = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build(),
    );
    let mut exporting = None;
    if let Some(endpoint) = source.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        use opentelemetry_otlp::WithExportConfig;
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .build()
        {
            Ok(exporter) => {
                provider = provider.with_batch_exporter(exporter);
                exporting = Some(Ok(endpoint));
            }
            Err(error) => exporting = Some(Err(error.to_string())),
        }
    }
    let provider = provider.build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    // `try_init`: a test that starts two applications in one process must not panic on the second.
    let _ = if source.get("BO_LOG_FORMAT").as_deref() == Some("json") {
        registry.with(fmt.json()).try_init()
    } else {
        registry.with(fmt).try_init()
    };
    match exporting {
        Some(Ok(endpoint)) => tracing::info!(%endpoint, "exporting traces over OTLP/HTTP"),
        Some(Err(error)) => tracing::warn!(%error, "cannot export traces; logging only"),
        None => {}
    }
    Telemetry { provider }
}
