//! Health and metrics for operators, over HTTP on `BO_HTTP_ADDR` (`0.0.0.0:<port>` in a container, so the
//! orchestrator's probes reach it): `GET /health` (or `/livez`) answers while the process runs, `GET /ready` (or
//! `/readyz`) only while what it depends on answers (NATS; allocation adds its database), `GET /metrics` gives
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

/// Serves `/health`, `/livez`, `/ready`, `/readyz` and `/metrics` on `addr` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    checks: Vec<Check>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for health and metrics on {addr} (BO_HTTP_ADDR)"))?;
    tracing::info!(addr = %listener.local_addr()?, "health and metrics served");
    axum::serve(listener, router(checks))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// The routes: `/livez` and `/readyz` are the names Kubernetes-style probes expect, the same answers as
/// `/health` and `/ready`.
fn router(checks: Vec<Check>) -> Router {
    let handle = metrics();
    Router::new()
        .route("/health", get(live))
        .route("/livez", get(live))
        .route("/ready", get(ready))
        .route("/readyz", get(ready))
        .route("/metrics", get(move || async move { handle.render() }))
        .with_state(Probes { checks })
}

async fn live() -> &'static str {
    "ok\n"
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Status and body of `GET path`, over a plain HTTP/1.1 connection.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, body)
    }

    /// Serves `checks` on every interface, as `BO_HTTP_ADDR=0.0.0.0:<port>` asks, and returns a loopback
    /// address that reaches it.
    async fn start(checks: Vec<Check>) -> SocketAddr {
        let config =
            crate::CommonConfig::from_source(&HashMap::from([("BO_HTTP_ADDR", "0.0.0.0:0")]))
                .unwrap();
        let addr = config.http_addr("order-intake");
        assert!(addr.ip().is_unspecified(), "{addr}");
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, router(checks)).await });
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn check(result: Result<(), &'static str>) -> Check {
        Arc::new(move || Box::pin(async move { result.map_err(str::to_string) }))
    }

    #[tokio::test]
    async fn livez_and_readyz_answer_as_health_and_ready_do() {
        let up = start(vec![check(Ok(()))]).await;
        assert_eq!(get(up, "/health").await, (200, "ok\n".into()));
        assert_eq!(get(up, "/livez").await, get(up, "/health").await);
        assert_eq!(get(up, "/ready").await, (200, "ready\n".into()));
        assert_eq!(get(up, "/readyz").await, get(up, "/ready").await);

        let down = start(vec![check(Ok(())), check(Err("NATS is disconnected"))]).await;
        assert_eq!(get(down, "/livez").await, (200, "ok\n".into()));
        let ready = get(down, "/ready").await;
        assert_eq!(ready, (503, "not ready: NATS is disconnected\n".into()));
        assert_eq!(get(down, "/readyz").await, ready);
        assert_eq!(get(down, "/nothing").await.0, 404);
    }
}
