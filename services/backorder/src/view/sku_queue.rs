//! A SKU's stock and queue in fill order, and what a receipt of it would do to them (the preview).

use backorder_proto::v1::{GetSkuQueueReply, PreviewReceiptReply, QueueEntry, StockFigures};
use serde_json::{Value, json};

use super::{PROMISE, po, promise_cells, status, text, ts};
use crate::render::{Body, Output, Table};

fn stock(stock: Option<&StockFigures>) -> Vec<(&'static str, Value)> {
    let s = stock.cloned().unwrap_or_default();
    vec![
        ("on_hand", json!(s.on_hand)),
        ("allocated", json!(s.allocated)),
        ("available", json!(s.available)),
        ("backordered", json!(s.backordered)),
        ("inbound", json!(s.inbound)),
        ("received", json!(s.received)),
        ("shipped", json!(s.shipped)),
    ]
}

/// A queue in fill order; with `before`, the ETA each line had before (a preview).
fn queue(entries: &[QueueEntry], before: bool) -> Body {
    let mut names = vec![
        "position",
        "order_id",
        "line_no",
        "customer_id",
        "priority",
        "backordered",
        "units_ahead",
    ];
    if before {
        names.push("eta_before");
    }
    names.extend(PROMISE);
    names.extend(["po", "po_expected_at", "preorder", "placed_at"]);
    let mut table = Table::new(&names);
    for entry in entries {
        let place = entry.place.clone().unwrap_or_default();
        let mut cells = vec![
            json!(place.position),
            json!(entry.order_id),
            json!(entry.line_no),
            text(&entry.customer_id),
            json!(entry.priority),
            json!(entry.backordered),
            json!(place.units_ahead),
        ];
        if before {
            cells.push(ts(entry.eta_before.as_ref()));
        }
        cells.extend(promise_cells(entry.promise.as_ref()));
        cells.extend([
            po(&place.po_id, place.po_line_no),
            ts(place.po_expected_at.as_ref()),
            json!(entry.preorder),
            ts(entry.placed_at.as_ref()),
        ]);
        table.push(cells);
    }
    Body::Table(table)
}

pub fn sku(reply: &GetSkuQueueReply) -> Output {
    let rules = reply.rules.clone().unwrap_or_default();
    let mut record = vec![("sku", json!(reply.sku))];
    record.extend(stock(reply.stock.as_ref()));
    record.extend([
        ("uncovered", json!(reply.uncovered)),
        ("known", json!(rules.known)),
        ("backorderable", json!(rules.backorderable)),
        (
            "max_backorder_quantity",
            json!(rules.max_backorder_quantity),
        ),
        ("preorder", json!(rules.preorder)),
        ("supplier_id", text(&rules.supplier_id)),
        ("lead_time_days", json!(rules.lead_time_days)),
    ]);
    let mut supply = Table::new(&[
        "po",
        "quantity_open",
        "expected_at",
        "overdue",
        "first_position",
        "last_position",
        "covers_units",
    ]);
    for cover in &reply.supply {
        let positions = |p: u32| {
            if cover.first_position == 0 {
                Value::Null
            } else {
                json!(p)
            }
        };
        supply.push(vec![
            po(&cover.po_id, cover.line_no),
            json!(cover.quantity_open),
            ts(cover.expected_at.as_ref()),
            json!(cover.overdue),
            positions(cover.first_position),
            positions(cover.last_position),
            json!(cover.covers_units),
        ]);
    }
    Output::default()
        .fields("sku", record)
        .section("queue", queue(&reply.queue, false))
        .section("supply", Body::Table(supply))
}

pub fn preview(reply: &PreviewReceiptReply, po_id: &str) -> Output {
    let mut fills = Table::new(&[
        "position",
        "order_id",
        "line_no",
        "quantity",
        "backordered_after",
    ]);
    for fill in &reply.fills {
        fills.push(vec![
            json!(fill.position),
            json!(fill.order_id),
            json!(fill.line_no),
            json!(fill.quantity),
            json!(fill.backordered_after),
        ]);
    }
    let mut orders = Table::new(&[
        "order_id",
        "released_units",
        "released",
        "complete",
        "waiting",
        "status_after",
    ]);
    for order in &reply.orders {
        let released: Vec<String> = order
            .released
            .iter()
            .map(|l| format!("{}:{}={}", l.line_no, l.sku, l.quantity))
            .collect();
        orders.push(vec![
            json!(order.order_id),
            json!(order.released.iter().map(|l| l.quantity).sum::<i64>()),
            text(&released.join(" ")),
            json!(order.complete),
            json!(order.waiting),
            status(order.status_after),
        ]);
    }
    Output::default()
        .fields(
            "preview",
            vec![
                ("sku", json!(reply.sku)),
                ("quantity", json!(reply.quantity)),
                ("po_id", text(po_id)),
                ("as_of", ts(reply.as_of.as_ref())),
            ],
        )
        .section("fills", Body::Table(fills))
        .section("orders", Body::Table(orders))
        .section("waiting", queue(&reply.waiting, true))
        .section(
            "stock_after",
            Body::Record(stock(reply.stock_after.as_ref())),
        )
}
