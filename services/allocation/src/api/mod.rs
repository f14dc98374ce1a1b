//! The backorder desk's query API: request/reply on `<p>.api.*` (protobuf, `proto/backorder/v1/api.proto`),
//! served as the NATS micro service `backorder` so `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` discover it.
//!
//! Reads go straight to the store (allocation owns it); the two requests that change something publish a
//! message into `<P>_IN` like any other sender (a priority change) or republish a parked one (a replay), so
//! every state change still goes through the consumers, the transaction and the outbox. A request that cannot
//! be answered gets the micro services error headers with a specific message, never a timeout.

mod backorders;
mod deadletters;
pub mod kpi;
mod order;
mod preview;
mod priority;
mod queue;
mod view;

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::service::{self, ServiceExt};
use backorder_runtime::jetstream::Bus;
use futures::StreamExt;
use prost::Message;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::engine::Engine;

/// The micro service's name, as `$SRV.PING.backorder` finds it.
pub const SERVICE_NAME: &str = "backorder";

/// Every endpoint, by its subject under `<p>.api.`; its micro service name is the same with `-` for `.`.
pub const ENDPOINTS: [&str; 8] = [
    "order.get",
    "backorders.list",
    "sku.queue",
    "receipt.preview",
    "kpi.get",
    "deadletters.list",
    "deadletters.replay",
    "order.priority",
];

/// Why a request gets no reply body: sent as `Nats-Service-Error-Code` and `Nats-Service-Error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or out of bounds.
    #[error("{0}")]
    BadRequest(String),
    /// 404: what it names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 409: it cannot be done in the state things are in.
    #[error("{0}")]
    Conflict(String),
    /// 503: the store or the bus does not answer; try again.
    #[error("{0}")]
    Unavailable(String),
    /// 500
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> usize {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if crate::is_unavailable(&error) {
            ApiError::Unavailable(format!("the database is unavailable: {error}"))
        } else {
            ApiError::Internal(format!("database: {error}"))
        }
    }
}

/// What the endpoints read and publish with.
#[derive(Clone)]
pub struct Api {
    pub pool: PgPool,
    /// For the preview (the same rules as a real receipt), the policy, the clock and the subjects.
    pub engine: Engine,
    pub bus: Bus,
}

/// Requests handled at once; the rest wait on the subscription (NATS buffers them).
const CONCURRENCY: usize = 16;

impl Api {
    /// Serves every endpoint until `shutdown`, then stops the micro service (it deregisters) and lets the
    /// requests in hand finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let subjects = self.engine.subjects.clone();
        let service = self
            .bus
            .client
            .service_builder()
            .description("backorder desk query API (docs/contract.md)")
            .metadata(HashMap::from([(
                "prefix".to_string(),
                subjects.prefix().to_string(),
            )]))
            .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
            .await
            .map_err(|e| anyhow::anyhow!("starting the {SERVICE_NAME} micro service: {e}"))?;
        let mut requests = futures::stream::SelectAll::new();
        for name in ENDPOINTS {
            let endpoint = service
                .endpoint_builder()
                .name(name.replace('.', "-"))
                .add(subjects.api(name))
                .await
                .map_err(|e| anyhow::anyhow!("adding endpoint {name}: {e}"))?;
            requests.push(endpoint.map(move |request| (name, request)));
        }
        tracing::info!(service = SERVICE_NAME, subjects = %subjects.api(">"), "query API serving");
        let api = Arc::new(self);
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                next = requests.next() => {
                    let Some((endpoint, request)) = next else { break };
                    let permit = permits.clone().acquire_owned().await?;
                    let api = api.clone();
                    tokio::spawn(async move {
                        api.answer(endpoint, request).await;
                        drop(permit);
                    });
                }
            }
        }
        drop(requests);
        let _ = permits.acquire_many(CONCURRENCY as u32).await;
        service
            .stop()
            .await
            .map_err(|e| anyhow::anyhow!("stopping the {SERVICE_NAME} micro service: {e}"))?;
        Ok(())
    }

    async fn answer(&self, endpoint: &'static str, request: service::Request) {
        let span = tracing::info_span!(
            "api",
            endpoint,
            order_id = tracing::field::Empty,
            sku = tracing::field::Empty
        );
        backorder_runtime::trace::follow(
            &span,
            &backorder_runtime::trace::from_headers(request.message.headers.as_ref()),
        );
        let started = std::time::Instant::now();
        let result = self
            .handle(endpoint, &request.message.payload)
            .instrument(span.clone())
            .await;
        let code = match &result {
            Ok(_) => 200,
            Err(error) => error.code(),
        };
        metrics::counter!("bo_api_requests_total", "endpoint" => endpoint, "code" => code.to_string())
            .increment(1);
        metrics::histogram!("bo_api_request_seconds", "endpoint" => endpoint)
            .record(started.elapsed().as_secs_f64());
        let reply = match result {
            Ok(body) => Ok(body.into()),
            Err(error) => {
                span.in_scope(|| match &error {
                    ApiError::Internal(_) | ApiError::Unavailable(_) => {
                        tracing::error!(%error, code, "request failed")
                    }
                    _ => tracing::info!(%error, code, "request refused"),
                });
                Err(service::error::Error {
                    status: error.to_string(),
                    code,
                })
            }
        };
        if let Err(error) = request.respond(reply).await {
            tracing::warn!(%error, endpoint, "could not send the reply");
        }
    }

    /// Decodes the request, runs the endpoint and encodes its reply.
    pub async fn handle(&self, endpoint: &str, payload: &[u8]) -> Result<Vec<u8>, ApiError> {
        match endpoint {
            "order.get" => call(payload, |r| self.order_get(r)).await,
            "backorders.list" => call(payload, |r| self.backorders_list(r)).await,
            "sku.queue" => call(payload, |r| self.sku_queue(r)).await,
            "receipt.preview" => call(payload, |r| self.receipt_preview(r)).await,
            "kpi.get" => call(payload, |r| self.kpi_get(r)).await,
            "deadletters.list" => call(payload, |r| self.deadletters_list(r)).await,
            "deadletters.replay" => call(payload, |r| self.deadletters_replay(r)).await,
            "order.priority" => call(payload, |r| self.order_priority(r)).await,
            other => Err(ApiError::NotFound(format!("no endpoint {other}"))),
        }
    }
}

async fn call<Req, Rep, F>(
    payload: &[u8],
    endpoint: impl FnOnce(Req) -> F,
) -> Result<Vec<u8>, ApiError>
where
    Req: Message + Default,
    Rep: Message,
    F: Future<Output = Result<Rep, ApiError>>,
{
    let request = Req::decode(payload).map_err(|e| {
        let name = std::any::type_name::<Req>()
            .rsplit("::")
            .next()
            .unwrap_or("request");
        ApiError::BadRequest(format!("the body is not a {name}: {e}"))
    })?;
    Ok(endpoint(request).await?.encode_to_vec())
}
