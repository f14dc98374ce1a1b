//! `/`: the open backorder worklist, one row per waiting line, coloured by age.

use backorder_proto::v1 as pb;
use maud::{Markup, html};

use super::{Frame, Section, heading, layout, notice};
use crate::api::Failure;
use crate::query::{PAGE_SIZES, WorklistQuery};
use crate::view;

pub fn page(
    frame: &Frame,
    query: &WorklistQuery,
    reply: Result<&pb::ListBackordersReply, &Failure>,
) -> Markup {
    let summary = match reply {
        Ok(reply) => Some(html! {
            strong data-total=(reply.total) { (reply.total) } " " (if reply.total == 1 { "line" } else { "lines" }) " waiting, "
            strong { (reply.total_units) } " units"
            @if query.is_filtered() { " matching the filters" }
        }),
        Err(_) => None,
    };
    let body = html! {
        (heading(html! { "Open backorders" }, summary))
        (filters(query))
        @match reply {
            Err(failure) => (notice("bad", super::failure_title(failure), html! { (failure.message) })),
            Ok(reply) => (table(query, reply)),
        }
    };
    layout(frame, Section::Worklist, "Worklist", body)
}

fn filters(query: &WorklistQuery) -> Markup {
    html! {
        form class="filters" method="get" action="/" {
            label { span { "SKU" } input type="text" name="sku" value=(query.sku) placeholder="any"; }
            label { span { "Customer" } input type="text" name="customer" value=(query.customer) placeholder="any"; }
            label {
                span { "Waiting at least" }
                input type="text" name="older" value=(query.older) placeholder="e.g. 7d" list="ages" size="6";
                datalist id="ages" {
                    @for b in &view::AGE_BUCKETS[1..] { option value={(b.min_days) "d"} {} }
                }
            }
            label { span { "Search" } input type="search" name="q" value=(query.q) placeholder="order, customer, SKU"; }
            label class="check" { input type="checkbox" name="late" checked[query.late_only()]; " Late only" }
            label class="check" { input type="checkbox" name="estimated" checked[query.estimated_only()]; " Estimated only" }
            @if !query.sort.is_empty() { input type="hidden" name="sort" value=(query.sort); }
            @if query.descending() { input type="hidden" name="desc" value="on"; }
            label {
                span { "Rows" }
                select name="size" {
                    @for size in PAGE_SIZES {
                        option value=(size) selected[query.page_size().ok() == Some(size)] { (size) }
                    }
                }
            }
            div class="buttons" {
                button type="submit" class="primary" { "Apply" }
                @if query.is_filtered() { a class="button" href="/" { "Clear" } }
            }
        }
        div class="legend" {
            span class="muted" { "Age in days: " }
            @for b in &view::AGE_BUCKETS { span class={"age " (b.class)} { (b.label) } }
        }
    }
}

/// A sortable column heading: a link that sorts by it (or reverses), with an arrow on the one that sorts.
fn sortable(query: &WorklistQuery, column: &str, label: &str, numeric: bool) -> Markup {
    let active = query.sort_name() == column;
    let arrow = match (active, query.descending()) {
        (false, _) => "",
        (true, false) => " ▲",
        (true, true) => " ▼",
    };
    html! {
        th class=[numeric.then_some("num")] aria-sort=[active.then_some(if query.descending() { "descending" } else { "ascending" })] {
            a href=(query.sorted_by(column).href()) title={"Sort by " (label)} { (label) (arrow) }
        }
    }
}

fn table(query: &WorklistQuery, reply: &pb::ListBackordersReply) -> Markup {
    if reply.backorders.is_empty() {
        return html! {
            div class="empty-state" {
                @if query.is_filtered() {
                    p { "No open backorder matches these filters." }
                    a class="button" href="/" { "Show all" }
                } @else {
                    p { "No open backorders: every order line is filled." }
                }
            }
        };
    }
    let first = query.offset() + 1;
    let last = query.offset() + reply.backorders.len() as u64;
    html! {
        div class="table-wrap" {
            table class="grid worklist" {
                thead {
                    tr {
                        (sortable(query, "age", "Age", false))
                        (sortable(query, "order", "Order", false))
                        (sortable(query, "customer", "Customer", false))
                        (sortable(query, "queue", "SKU", false))
                        (sortable(query, "units", "Waiting", true))
                        (sortable(query, "eta", "ETA", false))
                        th { "Promised" }
                        th { "Queue" }
                        th { "Covered by" }
                        th class="num" { "Priority" }
                        th { "Status" }
                    }
                }
                tbody {
                    @for row in &reply.backorders {
                        tr class=(view::age_bucket(row.age_days).class) data-sku=(row.sku) data-order=(row.order_id) {
                            td { (view::age_badge(row.age_days)) }
                            td class="nowrap" {
                                (view::order_link(&row.order_id))
                                span class="muted" { " · " (row.line_no) }
                            }
                            td { a href=(query.only("customer", &row.customer_id).href()) title="Only this customer" { (row.customer_id) } }
                            td class="nowrap" {
                                (view::sku_link(&row.sku))
                                " " a class="filter" href=(query.only("sku", &row.sku).href()) title="Only this SKU" aria-label={"Only " (row.sku)} { (view::funnel()) }
                                @if row.preorder { " " span class="badge info" { "pre-order" } }
                            }
                            td class="num" { strong { (row.backordered) } span class="muted" { " / " (row.ordered) } }
                            td { (view::eta(row.promise.as_ref())) }
                            td { (view::promised(row.promise.as_ref())) }
                            td { (view::queue_place(row.queue.as_ref())) }
                            td { (view::covering_po(row.queue.as_ref())) }
                            td class="num" { (row.priority) }
                            td { (view::status_badge(row.order_status)) }
                        }
                    }
                }
            }
        }
        div class="pager" {
            span class="muted" { "Rows " (first) "–" (last) " of " (reply.total) }
            @if query.offset() > 0 || !query.page.is_empty() {
                a class="button" href=(query.first_page().href()) { "⟲ First page" }
            }
            @if !reply.next_page_token.is_empty() {
                a class="button" rel="next" href=(query.next_page(&reply.next_page_token, reply.backorders.len()).href()) { "Next page →" }
            }
        }
    }
}
