//! `/skus/{sku}`: stock, the queue in fill order, the inbound supply and what it covers, and the what-if of a
//! receipt (a preview: nothing changes).

use backorder_proto::v1 as pb;
use maud::{Markup, html};

use super::{Frame, Section, cards, heading, layout, notice};
use crate::api::Failure;
use crate::chart;
use crate::query::{SkuQuery, WorklistQuery, encode};
use crate::view;

/// Colours of the purchase orders in the coverage bar, in turn.
const SUPPLY_COLOURS: [&str; 4] = ["#1c7ed6", "#4dabf7", "#1864ab", "#74c0fc"];
const UNCOVERED_COLOUR: &str = "#f03e3e";

pub fn page(
    frame: &Frame,
    sku: &str,
    queue: &pb::GetSkuQueueReply,
    asked: &SkuQuery,
    preview: Option<&Result<pb::PreviewReceiptReply, Failure>>,
) -> Markup {
    let worklist = WorklistQuery {
        sku: sku.to_string(),
        ..Default::default()
    };
    let body = html! {
        (heading(html! { "SKU " span class="mono" { (sku) } }, Some(rules(queue.rules.as_ref()))))
        div class="columns" {
            div class="main" {
                (stock_cards(queue.stock.as_ref()))
                @if let Some(preview) = preview {
                    @match preview {
                        Ok(reply) => (preview_result(reply)),
                        Err(failure) => (notice("bad", "The preview could not be made:", html! { (failure.message) })),
                    }
                }
                section {
                    h2 { "Queue in fill order "
                        span class="count" { (queue.queue.len()) }
                        " " a class="small" href=(worklist.href()) { "in the worklist →" }
                    }
                    (queue_table(&queue.queue, false))
                }
                section {
                    h2 { "Inbound supply" }
                    (coverage(queue))
                    (supply_table(&queue.supply))
                }
            }
            aside {
                (what_if_form(sku, asked, queue))
            }
        }
    };
    layout(frame, Section::None, &format!("SKU {sku}"), body)
}

fn rules(rules: Option<&pb::SkuRules>) -> Markup {
    let Some(r) = rules else { return html! {} };
    html! {
        @if !r.known { span class="badge warn" title="The product master never sent this SKU" { "not in the product master" } " defaults apply · " }
        @if r.backorderable { "backorderable" } @else { "not backorderable" }
        @if r.max_backorder_quantity > 0 { " up to " (r.max_backorder_quantity) " units" }
        @if r.preorder { " · pre-order" }
        @if !r.supplier_id.is_empty() { " · supplier " (r.supplier_id) }
        @if r.lead_time_days > 0 { " · lead time " (r.lead_time_days) " days" }
    }
}

fn stock_cards(stock: Option<&pb::StockFigures>) -> Markup {
    let s = stock.cloned().unwrap_or_default();
    html! { div class="stock" { (cards(&[
        ("on hand", html! { (s.on_hand) }),
        ("allocated", html! { (s.allocated) }),
        ("available", html! { (s.available) }),
        ("backordered", html! { span class=[(s.backordered > 0).then_some("bad")] { (s.backordered) } }),
        ("inbound", html! { (s.inbound) }),
        ("received", html! { (s.received) }),
        ("shipped", html! { (s.shipped) }),
    ])) } }
}

/// The queue's waiting units as one bar: the part each purchase order covers, then what nothing covers.
fn coverage(queue: &pb::GetSkuQueueReply) -> Markup {
    let mut segments: Vec<chart::Segment> = queue
        .supply
        .iter()
        .filter(|s| s.covers_units > 0)
        .enumerate()
        .map(|(i, s)| chart::Segment {
            units: s.covers_units,
            colour: SUPPLY_COLOURS[i % SUPPLY_COLOURS.len()].into(),
            label: s.po_id.clone(),
            title: format!(
                "{}/{}: {} units for queue positions {}–{}, expected {}",
                s.po_id,
                s.line_no,
                s.covers_units,
                s.first_position,
                s.last_position,
                view::date(s.expected_at.as_ref())
            ),
        })
        .collect();
    if queue.uncovered > 0 {
        segments.push(chart::Segment {
            units: queue.uncovered,
            colour: UNCOVERED_COLOUR.into(),
            label: "not covered".into(),
            title: format!(
                "{} waiting units no open purchase order covers",
                queue.uncovered
            ),
        });
    }
    let waiting: i64 = segments.iter().map(|s| s.units).sum();
    if waiting == 0 {
        return html! {};
    }
    html! {
        figure class="coverage" {
            (chart::stacked(&segments))
            figcaption class="muted" {
                (waiting) " units waiting: "
                (waiting - queue.uncovered) " covered by open purchase orders"
                @if queue.uncovered > 0 { ", " strong class="bad" { (queue.uncovered) " not covered" } " (their ETAs are estimates)" }
                "."
            }
        }
    }
}

fn queue_table(entries: &[pb::QueueEntry], after_preview: bool) -> Markup {
    if entries.is_empty() {
        return html! { p class="muted" { @if after_preview { "Nothing would wait any more." } @else { "Nothing waits for this SKU." } } };
    }
    html! {
        div class="table-wrap" {
            table class="grid" {
                thead {
                    tr {
                        th class="num" { "#" } th { "Order" } th { "Customer" } th class="num" { "Priority" }
                        th { "Placed" } th class="num" { "Waiting" } th class="num" { "Ahead" }
                        @if after_preview { th { "ETA before" } th { "ETA after" } } @else { th { "ETA" } }
                        th { "Promised" } th { "Covered by" }
                    }
                }
                tbody {
                    @for e in entries {
                        @let place = e.place.as_ref();
                        tr {
                            td class="num" { (place.map(|p| p.position).unwrap_or(0)) }
                            td class="nowrap" { (view::order_link(&e.order_id)) span class="muted" { " · " (e.line_no) }
                                @if e.preorder { " " span class="badge info" { "pre-order" } } }
                            td { (e.customer_id) }
                            td class="num" { (e.priority) }
                            td class="nowrap" { (view::date(e.placed_at.as_ref())) }
                            td class="num" { strong { (e.backordered) } }
                            td class="num" { (place.map(|p| p.units_ahead).unwrap_or(0)) }
                            @if after_preview {
                                td class="nowrap muted" { @if e.eta_before.is_some() { (view::date(e.eta_before.as_ref())) } @else { "no date" } }
                            }
                            td { (view::eta(e.promise.as_ref())) }
                            td { (view::promised(e.promise.as_ref())) }
                            td { (view::covering_po(place)) }
                        }
                    }
                }
            }
        }
    }
}

fn supply_table(supply: &[pb::SupplyCover]) -> Markup {
    if supply.is_empty() {
        return html! { p class="muted" { "No open purchase order for this SKU." } };
    }
    html! {
        div class="table-wrap" {
            table class="grid" {
                thead {
                    tr {
                        th { "Purchase order" } th class="num" { "Open" } th { "Expected" }
                        th { "Covers positions" } th class="num" { "Units to the queue" } th class="num" { "To stock" }
                    }
                }
                tbody {
                    @for s in supply {
                        tr {
                            td class="nowrap mono" { (s.po_id) "/" (s.line_no) }
                            td class="num" { (s.quantity_open) }
                            td class="nowrap" {
                                (view::date(s.expected_at.as_ref()))
                                @if s.overdue { " " span class="badge warn" { "overdue" } }
                            }
                            td { @if s.first_position > 0 { "#" (s.first_position) @if s.last_position != s.first_position { "–#" (s.last_position) } } @else { span class="muted" { "none" } } }
                            td class="num" { (s.covers_units) }
                            td class="num" { (s.quantity_open - s.covers_units) }
                        }
                    }
                }
            }
        }
    }
}

fn what_if_form(sku: &str, asked: &SkuQuery, queue: &pb::GetSkuQueueReply) -> Markup {
    html! {
        form class="panel" method="get" action={"/skus/" (encode(sku))} id="what-if" {
            h2 { "What if a receipt arrives?" }
            p class="hint" { "Runs the same rules as a real receipt and changes nothing." }
            label { span { "Units received" } input type="number" name="preview" min="1" value=(asked.preview) required placeholder="e.g. 20"; }
            @if !queue.supply.is_empty() {
                label {
                    span { "On purchase order" }
                    select name="po" {
                        option value="" { "none" }
                        @for s in &queue.supply {
                            option value=(s.po_id) selected[asked.po == s.po_id] { (s.po_id) " (" (s.quantity_open) " open)" }
                        }
                    }
                }
            }
            button type="submit" class="primary" { "Preview" }
        }
    }
}

fn preview_result(p: &pb::PreviewReceiptReply) -> Markup {
    let filled: i64 = p.fills.iter().map(|f| f.quantity).sum();
    let released = p.orders.iter().filter(|o| !o.released.is_empty()).count();
    let complete = p.orders.iter().filter(|o| o.complete).count();
    html! {
        section class="preview" id="preview" {
            h2 { "Preview: " (p.quantity) " units of " span class="mono" { (p.sku) } " received now" }
            (notice("info", "Nothing was changed.", html! {
                "This receipt would fill " strong data-filled=(filled) { (p.fills.len()) " " (if p.fills.len() == 1 { "line" } else { "lines" }) " with " (filled) " units" }
                ", release units of " strong { (released) } " " (if released == 1 { "order" } else { "orders" }) " to the warehouse and complete "
                strong { (complete) } "; " strong { (p.waiting.len()) } " " (if p.waiting.len() == 1 { "line" } else { "lines" }) " would still wait"
                @if p.as_of.is_some() { " (as of " (view::datetime(p.as_of.as_ref())) ")" }
                "."
            }))
            div class="columns even" {
                div {
                    h3 { "Fills" }
                    @if p.fills.is_empty() {
                        p class="muted" { "No waiting line gets anything: the units go to stock." }
                    } @else {
                        div class="table-wrap" { table class="grid fills" {
                            thead { tr { th class="num" { "#" } th { "Order" } th class="num" { "Units" } th class="num" { "Still waiting" } } }
                            tbody {
                                @for f in &p.fills {
                                    tr {
                                        td class="num" { (f.position) }
                                        td class="nowrap" { (view::order_link(&f.order_id)) span class="muted" { " · " (f.line_no) } }
                                        td class="num" { strong { "+" (f.quantity) } }
                                        td class="num" { @if f.backordered_after == 0 { span class="badge good" { "filled" } } @else { (f.backordered_after) } }
                                    }
                                }
                            }
                        } }
                    }
                }
                div {
                    h3 { "Orders" }
                    @if p.orders.is_empty() {
                        p class="muted" { "No order is touched." }
                    } @else {
                        div class="table-wrap" { table class="grid" {
                            thead { tr { th { "Order" } th { "To the warehouse" } th { "Then" } } }
                            tbody {
                                @for o in &p.orders {
                                    tr {
                                        td { (view::order_link(&o.order_id)) }
                                        td {
                                            @if o.released.is_empty() { span class="muted" title="A ship-complete order holds its units until it is complete" { "held" } }
                                            @for (i, l) in o.released.iter().enumerate() {
                                                @if i > 0 { ", " }
                                                span class="nowrap" { (l.quantity) " × " (l.sku) }
                                            }
                                        }
                                        td {
                                            @if o.complete { span class="badge good" { "complete" } }
                                            @if o.waiting { span class="badge warn" { "still waits" } }
                                            " " (view::status_badge(o.status_after))
                                        }
                                    }
                                }
                            }
                        } }
                    }
                }
            }
            h3 { "Still waiting, with their new ETAs" }
            (queue_table(&p.waiting, true))
            h3 { "Stock after" }
            (stock_cards(p.stock_after.as_ref()))
        }
    }
}
