//! The backorder desk's web dashboard: server-rendered pages over the query API (`<p>.api.*`, see
//! `proto/backorder/v1/api.proto`), so it runs beside the services on any machine that reaches NATS. It keeps
//! no state of its own; reads need nothing, the two actions that change state (a dead-letter replay, a
//! re-prioritisation) need the console token ([`auth`]).
//!
//! Every page is plain HTML with its CSS inline and its charts as inline SVG: nothing is fetched from
//! anywhere, and the Content-Security-Policy says so to the browser too.

mod action_handlers;
pub mod api;
pub mod auth;
pub mod chart;
pub mod config;
mod page_handlers;
pub mod pages;
pub mod query;
pub mod view;

use backorder_runtime::vars::Var;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;
use tracing::Instrument;

pub use config::Config;

use action_handlers::{change_priority, forget, replay};
use api::{Api, Failure};
use page_handlers::{dead_letters, find, kpis, not_found, order, ready, sku, worklist};
use pages::{Frame, Section};

/// The environment variables this service reads besides [`backorder_runtime::vars::COMMON`].
pub const ENV: &[Var] = &[
    Var {
        name: "BO_CONSOLE_ADDR",
        default: Some(crate::config::DEFAULT_ADDR),
        about: "where the pages, /health, /livez, /ready and /readyz are served; 0.0.0.0:<port> binds every interface (in a container)",
        secret: false,
    },
    Var {
        name: "BO_CONSOLE_TOKEN",
        default: None,
        about: "the token replays and re-prioritising ask for (at least 12 characters); unset: read-only",
        secret: true,
    },
    Var {
        name: "BO_CONSOLE_TIMEOUT_MS",
        default: Some("5000"),
        about: "how long a page waits for the query API",
        secret: false,
    },
];

/// Every environment variable the binary reads: the shared ones, then [`ENV`].
pub fn env_vars() -> Vec<Var> {
    backorder_runtime::vars::service_vars("console", ENV)
}

/// What every handler shares.
#[derive(Clone)]
pub struct Console {
    api: Api,
    token: Option<Arc<str>>,
}

impl Console {
    pub fn new(api: Api, token: Option<String>) -> Self {
        Self {
            api,
            token: token.map(Arc::from),
        }
    }

    fn frame(&self, headers: &HeaderMap) -> Frame<'_> {
        let remembered = auth::cookie(headers, auth::TOKEN_COOKIE);
        Frame {
            prefix: self.api.prefix(),
            actions_enabled: self.token.is_some(),
            token_remembered: auth::is_remembered(self.token.as_deref(), remembered.as_deref()),
            operator: auth::operator(headers),
        }
    }
}

/// Connects to NATS (in the background), binds `config.addr`, logs `console serving on http://ADDR` with the
/// address bound (port 0 gets a free one) and serves until `shutdown`.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    bind(config).await?.run(shutdown).await
}

/// The console bound to its address, not yet serving.
pub struct Bound {
    listener: tokio::net::TcpListener,
    console: Console,
    prefix: String,
}

/// Connects to NATS in the background (the pages say 503 until it answers) and binds `config.addr`.
pub async fn bind(config: Config) -> anyhow::Result<Bound> {
    let api = Api::connect(&config.nats, config.subjects.clone(), config.timeout).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("listening on {} (BO_CONSOLE_ADDR)", config.addr))?;
    if config.token.is_none() {
        tracing::info!("no BO_CONSOLE_TOKEN: replays and re-prioritisation are refused");
    }
    Ok(Bound {
        listener,
        console: Console::new(api, config.token),
        prefix: config.subjects.prefix().to_string(),
    })
}

impl Bound {
    pub fn addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the console is reachable from the network: its pages need no token to read");
        }
        tracing::info!(prefix = %self.prefix, "console serving on http://{addr}");
        axum::serve(self.listener, router(self.console))
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("console stopped");
        Ok(())
    }
}

pub fn router(console: Console) -> Router {
    let metrics = backorder_runtime::ops::metrics();
    Router::new()
        .route("/", get(worklist))
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/priority", post(change_priority))
        .route("/skus/{sku}", get(sku))
        .route("/kpis", get(kpis))
        .route("/deadletters", get(dead_letters))
        .route("/deadletters/{sequence}/replay", post(replay))
        .route("/find", get(find))
        .route("/forget", post(forget))
        .route("/health", get(|| async { "ok\n" }))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/readyz", get(ready))
        .route("/metrics", get(move || async move { metrics.render() }))
        .fallback(not_found)
        .layer(middleware::from_fn(observe))
        .with_state(console)
}

/// A span and a count per request, and the headers every page carries: nothing may be loaded from anywhere
/// (no script at all), nothing cached, no framing.
async fn observe(request: Request, next: Next) -> Response {
    let page = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .map(|p| if p.is_empty() { "worklist" } else { p })
        .unwrap_or("worklist")
        .to_string();
    let page = match page.as_str() {
        "worklist" | "orders" | "skus" | "kpis" | "deadletters" | "find" | "forget" | "health"
        | "livez" | "ready" | "readyz" | "metrics" => page,
        _ => "other".into(),
    };
    let span = tracing::info_span!("page", page = %page, method = %request.method(), path = %request.uri().path());
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(
            status,
            took_ms = started.elapsed().as_millis() as u64,
            "served"
        )
    });
    metrics::counter!("bo_console_requests_total", "page" => page.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("bo_console_request_seconds", "page" => page)
        .record(started.elapsed().as_secs_f64());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn html_page(code: u16, markup: Markup) -> Response {
    (status(code), markup).into_response()
}

fn failure_page(
    console: &Console,
    headers: &HeaderMap,
    section: Section,
    failure: &Failure,
) -> Response {
    html_page(
        failure.status,
        pages::failure_page(&console.frame(headers), section, failure),
    )
}

/// A query string or form axum could not read at all, as a 400 page.
fn unreadable(
    console: &Console,
    headers: &HeaderMap,
    section: Section,
    error: impl std::fmt::Display,
) -> Response {
    failure_page(
        console,
        headers,
        section,
        &Failure::new(
            400,
            format!("The address or form could not be read: {error}"),
        ),
    )
}

#[cfg(test)]
mod env_tests {
    #[test]
    fn every_variable_the_source_reads_is_listed() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        backorder_runtime::vars::assert_listed_as_read(&src, &super::env_vars(), super::ENV);
    }
}
