//! `/deadletters`: the messages the services parked, and replaying one (with the token).

use backorder_proto::v1 as pb;
use maud::{Markup, html};

use super::{Frame, Section, credentials, heading, layout, notice};
use crate::api::Failure;
use crate::query::{DeadLetterQuery, link};
use crate::view;

/// The services that park messages, for the filter.
const SERVICES: [&str; 5] = [
    "order-intake",
    "allocation",
    "allocation-outbox",
    "replenishment-trigger",
    "notifier",
];

pub fn page(
    frame: &Frame,
    query: &DeadLetterQuery,
    reply: Result<&pb::ListDeadLettersReply, &Failure>,
) -> Markup {
    let sub = reply.ok().map(|r| {
        html! {
            strong data-total=(r.total) { (r.total) } " parked " (if r.total == 1 { "message" } else { "messages" })
            @if !query.service.trim().is_empty() { " from " (query.service.trim()) }
            ", newest first. A replay publishes the stored original again to its subject, with a new message id."
        }
    });
    let body = html! {
        (heading(html! { "Dead letters" }, sub))
        @if !query.replayed.is_empty() {
            (notice("good", "Replayed.", html! {
                "Dead letter #" (query.replayed) " was published again"
                @if !query.id.is_empty() { " as " code { (query.id) } }
                "; its replay is listed below."
            }))
        }
        form class="filters tight" method="get" action="/deadletters" {
            label {
                span { "Service" }
                select name="service" {
                    option value="" { "all" }
                    @for s in SERVICES { option value=(s) selected[query.service == s] { (s) } }
                }
            }
            div class="buttons" { button type="submit" class="primary" { "Apply" } }
        }
        @match reply {
            Err(failure) => (notice("bad", super::failure_title(failure), html! { (failure.message) })),
            Ok(reply) => (table(frame, query, reply)),
        }
    };
    layout(frame, Section::DeadLetters, "Dead letters", body)
}

fn table(frame: &Frame, query: &DeadLetterQuery, reply: &pb::ListDeadLettersReply) -> Markup {
    if reply.dead_letters.is_empty() {
        return html! { div class="empty-state" { p { "No parked messages. Every message was handled." } } };
    }
    html! {
        div class="table-wrap" {
            table class="grid deadletters" {
                thead {
                    tr {
                        th class="num" { "#" } th { "Parked" } th { "Service" } th { "Subject" } th { "Reason" }
                        th class="num" { "Deliveries" } th { "Replays" } th {}
                    }
                }
                tbody {
                    @for entry in &reply.dead_letters {
                        @let letter = entry.letter.clone().unwrap_or_default();
                        tr id={"dl-" (entry.sequence)} data-sequence=(entry.sequence) {
                            td class="num mono" { (entry.sequence) }
                            td class="nowrap" { (view::datetime(entry.parked_at.as_ref().or(letter.failed_at.as_ref()))) }
                            td { span class="badge" { (letter.service) } }
                            td {
                                div class="mono nowrap" { (letter.subject) }
                                div class="muted small" {
                                    (letter.payload.len()) " bytes"
                                    @if !letter.message_id.is_empty() { " · id " span class="mono" { (letter.message_id) } }
                                }
                            }
                            td class="reason" { (letter.error) }
                            td class="num" { (letter.deliveries) }
                            td class="replays" {
                                @if entry.replays.is_empty() { span class="muted" { "never" } }
                                @for r in &entry.replays {
                                    div class="replay" {
                                        span class="badge good" { "replayed" } " "
                                        (view::datetime(r.at.as_ref())) " by " strong { (r.operator) }
                                        div class="muted small mono" { (r.message_id) @if r.stream_sequence > 0 { " → seq " (r.stream_sequence) } }
                                        @if !r.reason.is_empty() { div class="small" { (r.reason) } }
                                    }
                                }
                            }
                            td class="action" {
                                details {
                                    summary class="button" { "Replay…" }
                                    form class="panel compact" method="post" action={"/deadletters/" (entry.sequence) "/replay"} {
                                        label { span { "Reason" } input type="text" name="reason" placeholder="e.g. fixed the SKU" maxlength="200"; }
                                        (credentials(frame))
                                        @if !query.service.is_empty() { input type="hidden" name="service" value=(query.service); }
                                        button type="submit" class="primary" { "Replay #" (entry.sequence) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !reply.next_page_token.is_empty() {
            div class="pager" {
                a class="button" rel="next" href=(link("/deadletters", &[("service", query.service.trim()), ("page", &reply.next_page_token)])) { "Older →" }
            }
        }
    }
}
