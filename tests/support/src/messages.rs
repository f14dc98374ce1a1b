//! What an OMS and a WMS publish, built the way they would build it.

use backorder_proto::v1::{
    CancelLine, Customer, OrderCancelRequested, OrderLine, OrderPlaced, ShipPolicy,
    ShipmentConfirmed, ShipmentLine, SkuUpserted, StockAdjusted, StockReceived,
};
use backorder_runtime::time;

pub fn customer(id: &str, email: &str, phone: &str, locale: &str) -> Customer {
    Customer {
        id: id.into(),
        email: email.into(),
        phone: phone.into(),
        locale: locale.into(),
        ..Default::default()
    }
}

/// An order with lines numbered from 1.
pub fn order(order_id: &str, customer: Customer, lines: &[(&str, i64)]) -> OrderPlaced {
    OrderPlaced {
        order_id: order_id.into(),
        customer: Some(customer),
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, (sku, quantity))| OrderLine {
                line_no: i as u32 + 1,
                sku: sku.to_string(),
                quantity: *quantity,
            })
            .collect(),
        priority: 0,
        ship_policy: ShipPolicy::ShipPartial as i32,
        placed_at: Some(time::to_proto(chrono::Utc::now())),
        channel: "b2b-portal".into(),
    }
}

pub fn adjustment(adjustment_id: &str, sku: &str, delta: i64, reason: &str) -> StockAdjusted {
    StockAdjusted {
        adjustment_id: adjustment_id.into(),
        sku: sku.into(),
        delta,
        reason: reason.into(),
    }
}

pub fn receipt(receipt_id: &str, sku: &str, quantity: i64, po_id: &str) -> StockReceived {
    StockReceived {
        receipt_id: receipt_id.into(),
        sku: sku.into(),
        quantity,
        po_id: po_id.into(),
        received_at: Some(time::to_proto(chrono::Utc::now())),
    }
}

pub fn shipment(shipment_id: &str, order_id: &str, lines: &[(u32, i64)]) -> ShipmentConfirmed {
    ShipmentConfirmed {
        shipment_id: shipment_id.into(),
        order_id: order_id.into(),
        lines: lines
            .iter()
            .map(|(line_no, quantity)| ShipmentLine {
                line_no: *line_no,
                quantity: *quantity,
            })
            .collect(),
        shipped_at: Some(time::to_proto(chrono::Utc::now())),
    }
}

/// `lines` empty: the whole order; a quantity of 0: every outstanding unit of the line.
pub fn cancellation(
    request_id: &str,
    order_id: &str,
    lines: &[(u32, i64)],
    reason: &str,
) -> OrderCancelRequested {
    OrderCancelRequested {
        request_id: request_id.into(),
        order_id: order_id.into(),
        lines: lines
            .iter()
            .map(|(line_no, quantity)| CancelLine {
                line_no: *line_no,
                quantity: *quantity,
            })
            .collect(),
        reason: reason.into(),
    }
}

pub fn sku(
    sku: &str,
    backorderable: bool,
    max_backorder_quantity: i64,
    preorder: bool,
) -> SkuUpserted {
    SkuUpserted {
        sku: sku.into(),
        backorderable,
        max_backorder_quantity,
        preorder,
        supplier_id: "SUP-1".into(),
        lead_time_days: 14,
        ..Default::default()
    }
}

/// The order with SHIP_COMPLETE: held until every line is allocated.
pub fn ship_complete(order: OrderPlaced) -> OrderPlaced {
    OrderPlaced {
        ship_policy: ShipPolicy::ShipComplete as i32,
        ..order
    }
}
