//! `/orders/{id}`: an order's lines with their ETAs and queue places, its timeline, and re-prioritisation.

use backorder_proto::v1 as pb;
use maud::{Markup, html};

use super::{Frame, Section, credentials, heading, layout, notice};
use crate::query::{OrderQuery, WorklistQuery, encode};
use crate::view;

pub fn page(frame: &Frame, order: &pb::GetOrderReply, flash: &OrderQuery) -> Markup {
    let customer = WorklistQuery {
        customer: order.customer_id.clone(),
        ..Default::default()
    };
    let sub = html! {
        "Customer " a href=(customer.href()) title="This customer's open backorders" { (order.customer_id) }
        " · placed " (view::datetime(order.placed_at.as_ref()))
        @if !order.channel.is_empty() { " · " (order.channel) }
        " · " (view::ship_policy(order.ship_policy))
    };
    let waiting: i64 = order.lines.iter().map(|l| l.backordered).sum();
    let body = html! {
        (heading(html! { "Order " span class="mono" { (order.order_id) } " " (view::status_badge(order.status)) }, Some(sub)))
        @if !flash.reprioritised.is_empty() {
            @if flash.applied() {
                (notice("good", "Re-prioritised.", html! { "Priority is now " strong { (flash.reprioritised) } "; the waiting lines moved in their queues and their ETAs were projected again." }))
            } @else {
                (notice("info", "Re-prioritisation sent.", html! { "Priority " strong { (flash.reprioritised) } " is on its way and applies in a moment; reload to see it." }))
            }
        }
        @if let Some(due) = order.delay_consent_due.as_ref() {
            (notice("info", "Waiting for the customer's consent", html! { "to the delay, due " (view::datetime(Some(due))) "." }))
        }
        div class="columns" {
            div class="main" {
                section {
                    h2 { "Lines" }
                    (lines(order))
                }
                section {
                    h2 { "Timeline" }
                    (timeline(&order.history))
                }
            }
            aside {
                (super::cards(&[
                    ("priority", html! { (order.priority) }),
                    ("waiting", html! { (waiting) }),
                    ("version", html! { (order.version) }),
                ]))
                dl class="facts" {
                    dt { "Accepted" } dd { (view::datetime(order.accepted_at.as_ref())) }
                    dt { "Last change" } dd { (view::datetime(order.updated_at.as_ref())) }
                }
                (priority_form(frame, order))
            }
        }
    };
    layout(
        frame,
        Section::None,
        &format!("Order {}", order.order_id),
        body,
    )
}

fn lines(order: &pb::GetOrderReply) -> Markup {
    html! {
        div class="table-wrap" {
            table class="grid" {
                thead {
                    tr {
                        th { "Line" } th { "SKU" }
                        th class="num" { "Ordered" } th class="num" { "Allocated" } th class="num" { "Waiting" }
                        th class="num" { "Shipped" } th class="num" { "Cancelled" }
                        th { "ETA" } th { "Promised" } th { "Queue" } th { "Covered by" }
                    }
                }
                tbody {
                    @for line in &order.lines {
                        tr class=[(line.backordered > 0).then_some("waiting")] {
                            td { (line.line_no) }
                            td class="nowrap" {
                                (view::sku_link(&line.sku))
                                @if line.preorder { " " span class="badge info" { "pre-order" } }
                            }
                            td class="num" { (line.ordered) }
                            td class="num" {
                                (line.allocated)
                                @if line.held > 0 { " " span class="muted" title="Held for a ship-complete order" { "(" (line.held) " held)" } }
                            }
                            td class="num" { @if line.backordered > 0 { strong { (line.backordered) } } @else { span class="muted" { "0" } } }
                            td class="num" { (line.shipped) }
                            td class="num" { (line.cancelled) }
                            td { @if line.backordered > 0 { (view::eta(line.promise.as_ref())) } @else if line.ready_at.is_some() { span class="badge good" title="Nothing of the line waits" { "ready " (view::date(line.ready_at.as_ref())) } } @else { span class="muted" { "–" } } }
                            td { (view::promised(line.promise.as_ref())) }
                            td {
                                (view::queue_place(line.queue.as_ref()))
                                @if line.backordered > 0 && line.backordered_since.is_some() { div class="muted small nowrap" { "since " (view::date(line.backordered_since.as_ref())) } }
                            }
                            td { @if line.backordered > 0 { (view::covering_po(line.queue.as_ref())) } @else { span class="muted" { "–" } } }
                        }
                    }
                }
            }
        }
    }
}

/// The class of a change's badge in the timeline.
fn change_class(change: &str) -> &'static str {
    match change {
        "allocated" | "filled" | "released" | "shipped" => "badge good",
        "backordered" => "badge bad",
        "cancelled" | "withdrawn" | "taken back" => "badge muted",
        "reprioritised" | "held" => "badge info",
        _ => "badge",
    }
}

fn timeline(history: &[pb::AuditEntry]) -> Markup {
    if history.is_empty() {
        return html! { p class="muted" { "Nothing recorded yet." } };
    }
    html! {
        ol class="timeline" {
            @for entry in history {
                li {
                    time { (view::datetime(entry.at.as_ref())) }
                    div {
                        span class=(change_class(&entry.change)) { (entry.change) }
                        @if entry.quantity != 0 { " " strong { (entry.quantity) } }
                        @if entry.line_no > 0 { " · line " (entry.line_no) }
                        @if !entry.sku.is_empty() { " · " (view::sku_link(&entry.sku)) }
                        @if !entry.detail.is_empty() { div class="detail" { (entry.detail) } }
                        @if !entry.cause.is_empty() { div class="cause mono" { (entry.cause) } }
                    }
                }
            }
        }
    }
}

fn priority_form(frame: &Frame, order: &pb::GetOrderReply) -> Markup {
    html! {
        form class="panel" method="post" action={"/orders/" (encode(&order.order_id)) "/priority"} {
            h2 { "Re-prioritise" }
            p class="hint" { "Higher is served first. The order's waiting lines move in their queues at once; customers whose date moves are told." }
            label { span { "Priority" } input type="number" name="priority" value=(order.priority) min="-1000000" max="1000000" required; }
            label { span { "Reason" } input type="text" name="reason" placeholder="e.g. retailer contract" maxlength="200"; }
            (credentials(frame))
            button type="submit" class="primary" { "Re-prioritise" }
        }
    }
}
