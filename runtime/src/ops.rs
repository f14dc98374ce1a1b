//! Health and metrics for operators, over HTTP on `BO_HTTP_ADDR`: `GET /health` answers while the process runs,
//! `GET /ready` only while what it depends on answers (NATS; allocation adds its database), `GET /metrics` gives
//! the service's counters in the Prometheus text format.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// One check `/ready` runs: `Err` says what does not answer.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The check that the NATS connection is up.
pub fn nats_check(client: async_nats::Client) -> Check {
    Arc::new(move || {
        let client = client.clone();
        Box::pin(async move {
            match client.connection_state() {
                async_nats::connection::State::Connected => Ok(()),
                state => Err(format!("NATS is {state}")),
            }
        })
    })
}

/// The process-wide recorder behind the `metrics` macros, installed once.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (two applications in one test process); then this one
        // only renders what it saw.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

#[derive(Clone)]
struct Probes {
    checks: Vec<Check>,
}

/// Serves `/health`, `/ready` and `/metrics` on `addr` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    checks: Vec<Check>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = metrics();
    let app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(move || async move { handle.render() }))
        .with_state(Probes { checks });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for health and metrics on {addr} (BO_HTTP_ADDR)"))?;
    tracing::info!(addr = %listener.local_addr()?, "health and metrics served");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn ready(State(probes): State<Probes>) -> (StatusCode, String) {
    let mut failures = Vec::new();
    for check in &probes.checks {
        if let Err(reason) = check().await {
            failures.push(reason);
        }
    }
    if failures.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", failures.join("; ")),
        )
    }
}
