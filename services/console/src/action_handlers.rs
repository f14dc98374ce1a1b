//! The forms that change state (a re-prioritisation, a dead-letter replay): each is checked for its site,
//! token and operator before the query API is asked, and answers with a redirect (303) back to where it came
//! from.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use backorder_proto::v1 as pb;
use maud::html;
use serde::Deserialize;
use tracing::Instrument;

use crate::api::Failure;
use crate::pages::{self, Section};
use crate::{Console, auth, failure_page, html_page, query, unreadable};

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
pub(crate) struct PriorityForm {
    priority: String,
    reason: String,
    #[serde(flatten)]
    credentials: Credentials,
}

pub(crate) async fn change_priority(
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
pub(crate) struct ReplayForm {
    reason: String,
    /// The list's filter, to come back to.
    service: String,
    #[serde(flatten)]
    credentials: Credentials,
}

pub(crate) async fn replay(
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

pub(crate) async fn forget() -> Response {
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&auth::forget()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
