//! The backorder desk's web dashboard: server-rendered pages over the query API (`<p>.api.*`, see
//! `proto/backorder/v1/api.proto`), so it runs beside the services on any machine that reaches NATS. It keeps
//! no state of its own; reads need nothing, the two actions that change state (a dead-letter replay, a
//! re-prioritisation) need the console token ([`auth`]).
//!
//! Every page is plain HTML with its CSS inline and its charts as inline SVG: nothing is fetched from
//! anywhere, and the Content-Security-Policy says so to the browser too.

pub mod api;
pub mod auth;
pub mod chart;
pub mod config;
pub mod pages;
pub mod query;
pub mod view;

use backorder_runtime::vars::Var;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use backorder_proto::v1 as pb;
use maud::{Markup, html};
use serde::Deserialize;
use tracing::Instrument;

pub use config::Config;

use api::{Api, Failure};
use pages::{Frame, Section};
use query::{DeadLetterQuery, KpiQuery, OrderQuery, SkuQuery, WorklistQuery};

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

async fn not_found(State(console): State<Console>, headers: HeaderMap) -> Response {
    failure_page(
        &console,
        &headers,
        Section::None,
        &Failure::new(404, "There is no such page in the console."),
    )
}

async fn ready(State(console): State<Console>) -> (StatusCode, &'static str) {
    if console.api.is_connected() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NATS is not connected\n")
    }
}

async fn worklist(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<WorklistQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(error) => return unreadable(&console, &headers, Section::Worklist, error),
    };
    let reply = match query.to_request() {
        Ok(request) => console.api.backorders(&request).await,
        Err(message) => Err(Failure::new(400, message)),
    };
    let frame = console.frame(&headers);
    match &reply {
        Err(failure) if failure.is_unavailable() => {
            failure_page(&console, &headers, Section::Worklist, failure)
        }
        Err(failure) => html_page(
            failure.status,
            pages::worklist::page(&frame, &query, Err(failure)),
        ),
        Ok(reply) => html_page(200, pages::worklist::page(&frame, &query, Ok(reply))),
    }
}

async fn order(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    query: Result<Query<OrderQuery>, QueryRejection>,
) -> Response {
    let flash = query.map(|Query(q)| q).unwrap_or_default();
    let span = tracing::info_span!("order", order_id = %order_id);
    match console.api.order(&order_id).instrument(span).await {
        Ok(reply) => html_page(
            200,
            pages::order::page(&console.frame(&headers), &reply, &flash),
        ),
        Err(failure) => failure_page(&console, &headers, Section::None, &failure),
    }
}

async fn sku(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(sku): Path<String>,
    query: Result<Query<SkuQuery>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(query)) => sku_page(&console, &headers, &sku, &query).await,
        Err(error) => unreadable(&console, &headers, Section::None, error),
    }
}

async fn sku_page(console: &Console, headers: &HeaderMap, sku: &str, query: &SkuQuery) -> Response {
    let span = tracing::info_span!("sku", sku = %sku);
    let preview = async {
        match query.to_preview(sku)? {
            Ok(request) => Some(console.api.preview(&request).await),
            Err(message) => Some(Err(Failure::new(400, message))),
        }
    };
    let (queue, preview) = async { tokio::join!(console.api.sku_queue(sku), preview) }
        .instrument(span)
        .await;
    match queue {
        Err(failure) => failure_page(console, headers, Section::None, &failure),
        Ok(queue) => {
            let code = match &preview {
                Some(Err(failure)) => failure.status,
                _ => 200,
            };
            html_page(
                code,
                pages::sku::page(
                    &console.frame(headers),
                    sku,
                    &queue,
                    query,
                    preview.as_ref(),
                ),
            )
        }
    }
}

async fn kpis(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<KpiQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(error) => return unreadable(&console, &headers, Section::Kpis, error),
    };
    let reply = match query.to_request() {
        Ok(request) => console.api.kpis(&request).await,
        Err(message) => Err(Failure::new(400, message)),
    };
    let frame = console.frame(&headers);
    match &reply {
        Err(failure) if failure.is_unavailable() => {
            failure_page(&console, &headers, Section::Kpis, failure)
        }
        Err(failure) => html_page(
            failure.status,
            pages::kpis::page(&frame, &query, Err(failure)),
        ),
        Ok(reply) => html_page(200, pages::kpis::page(&frame, &query, Ok(reply))),
    }
}

async fn dead_letters(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(error) => return unreadable(&console, &headers, Section::DeadLetters, error),
    };
    let reply = console.api.dead_letters(&query.to_request()).await;
    let frame = console.frame(&headers);
    match &reply {
        Err(failure) if failure.is_unavailable() => {
            failure_page(&console, &headers, Section::DeadLetters, failure)
        }
        Err(failure) => html_page(
            failure.status,
            pages::deadletters::page(&frame, &query, Err(failure)),
        ),
        Ok(reply) => html_page(200, pages::deadletters::page(&frame, &query, Ok(reply))),
    }
}

/// The fields every form that changes state carries.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Credentials {
    operator: String,
    token: String,
}

/// Checks a form's token and operator.
fn authorize(
    console: &Console,
    headers: &HeaderMap,
    credentials: &Credentials,
) -> Result<auth::Grant, auth::Refusal> {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if !auth::same_origin(
        header(header::HeaderName::from_static("sec-fetch-site")),
        header(header::ORIGIN),
        header(header::HOST),
    ) {
        tracing::warn!("a state-changing form posted from another site refused");
        return Err(auth::Refusal::CrossSite);
    }
    let remembered = auth::cookie(headers, auth::TOKEN_COOKIE);
    auth::authorize(
        console.token.as_deref(),
        &credentials.token,
        remembered.as_deref(),
        &credentials.operator,
    )
    .inspect_err(|refusal| tracing::info!(?refusal, "action refused"))
}

/// A refused action as its own page, with the way back.
fn refused(console: &Console, headers: &HeaderMap, refusal: auth::Refusal, back: &str) -> Response {
    html_page(
        refusal.status(),
        pages::layout(
            &console.frame(headers),
            Section::None,
            refusal.title(),
            html! {
                div class="error-page" {
                    p class="code" { (refusal.status()) }
                    h1 { (refusal.title()) }
                    p class="message" { (refusal.message()) }
                    p { a href=(back) { "← Back" } }
                }
            },
        ),
    )
}

/// 303 to `location`, remembering the operator (and the token when it was typed).
fn done(console: &Console, grant: &auth::Grant, location: &str) -> Response {
    let mut response = Redirect::to(location).into_response();
    if let Some(token) = console.token.as_deref() {
        for cookie in auth::remember(token, grant) {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
    }
    response
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PriorityForm {
    priority: String,
    reason: String,
    #[serde(flatten)]
    credentials: Credentials,
}

async fn change_priority(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    form: Result<Form<PriorityForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(error) => return unreadable(&console, &headers, Section::None, error),
    };
    let back = query::order_href(&order_id);
    let grant = match authorize(&console, &headers, &form.credentials) {
        Ok(grant) => grant,
        Err(refusal) => return refused(&console, &headers, refusal, &back),
    };
    let Some(priority) = form
        .priority
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|p| (-1_000_000..=1_000_000).contains(p))
    else {
        return failure_page(
            &console,
            &headers,
            Section::None,
            &Failure::new(
                400,
                format!(
                    "The priority must be a whole number from -1000000 to 1000000, not {:?}.",
                    form.priority.trim()
                ),
            ),
        );
    };
    let request = pb::ChangePriorityRequest {
        order_id: order_id.clone(),
        priority,
        reason: form.reason.trim().to_string(),
        operator: grant.operator.clone(),
    };
    let span = tracing::info_span!("change_priority", order_id = %order_id, priority, operator = %grant.operator);
    match console.api.change_priority(&request).instrument(span).await {
        Ok(reply) => {
            tracing::info!(order_id = %order_id, priority, operator = %grant.operator, applied = reply.applied, "re-prioritised");
            let applied = if reply.applied { "1" } else { "" };
            let location = query::link(
                &back,
                &[
                    ("reprioritised", &priority.to_string()),
                    ("applied", applied),
                ],
            );
            done(&console, &grant, &location)
        }
        Err(failure) => failure_page(&console, &headers, Section::None, &failure),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReplayForm {
    reason: String,
    /// The list's filter, to come back to.
    service: String,
    #[serde(flatten)]
    credentials: Credentials,
}

async fn replay(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(sequence): Path<String>,
    form: Result<Form<ReplayForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(error) => return unreadable(&console, &headers, Section::DeadLetters, error),
    };
    let back = query::link("/deadletters", &[("service", form.service.trim())]);
    let grant = match authorize(&console, &headers, &form.credentials) {
        Ok(grant) => grant,
        Err(refusal) => return refused(&console, &headers, refusal, &back),
    };
    let Some(sequence) = sequence.parse::<u64>().ok().filter(|s| *s > 0) else {
        return failure_page(
            &console,
            &headers,
            Section::DeadLetters,
            &Failure::new(
                400,
                format!("{sequence:?} is not a dead letter's sequence number."),
            ),
        );
    };
    let request = pb::ReplayDeadLetterRequest {
        sequence,
        operator: grant.operator.clone(),
        reason: form.reason.trim().to_string(),
    };
    let span = tracing::info_span!("replay", sequence, operator = %grant.operator);
    match console.api.replay(&request).instrument(span).await {
        Ok(reply) => {
            let id = reply.replay.map(|r| r.message_id).unwrap_or_default();
            tracing::info!(sequence, operator = %grant.operator, message_id = %id, "dead letter replayed");
            let location = query::link(
                "/deadletters",
                &[
                    ("service", form.service.trim()),
                    ("replayed", &sequence.to_string()),
                    ("id", &id),
                ],
            );
            done(&console, &grant, &location)
        }
        Err(failure) => failure_page(&console, &headers, Section::DeadLetters, &failure),
    }
}

async fn forget() -> Response {
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&auth::forget()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Find {
    q: String,
}

/// The search box: an order id opens the order, a SKU its page, anything else searches the worklist.
async fn find(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<Find>, QueryRejection>,
) -> Response {
    let text = query
        .map(|Query(f)| f.q)
        .unwrap_or_default()
        .trim()
        .to_string();
    if text.is_empty() {
        return Redirect::to("/").into_response();
    }
    match console.api.order(&text).await {
        Ok(_) => return Redirect::to(&query::order_href(&text)).into_response(),
        Err(failure) if failure.is_unavailable() => {
            return failure_page(&console, &headers, Section::None, &failure);
        }
        Err(_) => {}
    }
    if let Ok(queue) = console.api.sku_queue(&text).await {
        let known = queue.rules.as_ref().is_some_and(|r| r.known)
            || !queue.queue.is_empty()
            || queue
                .stock
                .as_ref()
                .is_some_and(|s| s.on_hand != 0 || s.received != 0 || s.inbound != 0);
        if known {
            return Redirect::to(&query::sku_href(&text)).into_response();
        }
    }
    let search = WorklistQuery {
        q: text,
        ..Default::default()
    };
    Redirect::to(&search.href()).into_response()
}

#[cfg(test)]
mod env_tests {
    #[test]
    fn every_variable_the_source_reads_is_listed() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        backorder_runtime::vars::assert_listed_as_read(&src, &super::env_vars(), super::ENV);
    }
}
