//! The pages that only read: each asks the query API and renders the reply, or the failure, as a page.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tracing::Instrument;

use crate::api::Failure;
use crate::pages::{self, Section};
use crate::query::{self, DeadLetterQuery, KpiQuery, OrderQuery, SkuQuery, WorklistQuery};
use crate::{Console, failure_page, html_page, unreadable};

pub(crate) async fn not_found(State(console): State<Console>, headers: HeaderMap) -> Response {
    failure_page(
        &console,
        &headers,
        Section::None,
        &Failure::new(404, "There is no such page in the console."),
    )
}

pub(crate) async fn ready(State(console): State<Console>) -> (StatusCode, &'static str) {
    if console.api.is_connected() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NATS is not connected\n")
    }
}

pub(crate) async fn worklist(
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

pub(crate) async fn order(
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

pub(crate) async fn sku(
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

pub(crate) async fn kpis(
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

pub(crate) async fn dead_letters(
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Find {
    q: String,
}

/// The search box: an order id opens the order, a SKU its page, anything else searches the worklist.
pub(crate) async fn find(
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
