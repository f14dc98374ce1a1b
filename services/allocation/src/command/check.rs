//! The bounds a command's fields are held to (docs/contract.md, "Limits"), apart from decoding them: a message
//! out of bounds is refused by name, not dropped.

use backorder_proto::v1::{OrderPlaced, SkuUpserted};
use backorder_runtime::limits::{self, Check};

use super::Command;

impl Command {
    /// The bounds of every field the engine takes (docs/contract.md, "Limits"). Out of bounds, the message is
    /// refused by name ([`Command::Refuse`]): the sender hears the field, its value and the limit.
    pub fn check(&self) -> Result<(), String> {
        let mut c = Check::new();
        match self {
            // order-intake validated it; a publisher that skipped intake is held to the same bounds.
            Command::AcceptOrder { order, .. } => check_order(&mut c, order),
            Command::ReceiveStock(r) => {
                c.id("receipt_id", &r.receipt_id);
                c.id("sku", &r.sku);
                c.quantity("quantity", r.quantity, 1);
                c.optional_id("po_id", &r.po_id);
                c.date("received_at", r.received_at.as_ref());
            }
            Command::AdjustStock(a) => {
                c.id("adjustment_id", &a.adjustment_id);
                c.id("sku", &a.sku);
                c.delta("delta", a.delta);
                c.text("reason", &a.reason, limits::MAX_TEXT_LEN);
            }
            Command::ConfirmShipment { shipment, .. } => {
                c.id("shipment_id", &shipment.shipment_id);
                c.id("order_id", &shipment.order_id);
                lines(
                    &mut c,
                    shipment.lines.iter().map(|l| (l.line_no, l.quantity)),
                    1,
                );
                c.date("shipped_at", shipment.shipped_at.as_ref());
            }
            Command::CancelOrder(cancel) => {
                c.id("request_id", &cancel.request_id);
                c.id("order_id", &cancel.order_id);
                // A quantity of 0 cancels the whole line.
                lines(
                    &mut c,
                    cancel.lines.iter().map(|l| (l.line_no, l.quantity)),
                    0,
                );
                c.text("reason", &cancel.reason, limits::MAX_TEXT_LEN);
            }
            Command::UpdateSupply { supply, .. } => {
                c.id("po_id", &supply.po_id);
                c.id("sku", &supply.sku);
                if supply.line_no == 0 {
                    c.fail("line_no", "is 0 (line numbers start at 1)");
                }
                c.quantity("quantity_open", supply.quantity_open, 0);
                let expected = c.date("expected_at", supply.expected_at.as_ref());
                if !supply.cancelled && expected.is_none() && supply.expected_at.is_none() {
                    c.fail("expected_at", "is missing");
                }
                c.optional_id("request_id", &supply.request_id);
            }
            Command::AnswerDelay(a) => {
                c.id("answer_id", &a.answer_id);
                c.id("order_id", &a.order_id);
            }
            Command::ChangePriority(p) => {
                c.id("request_id", &p.request_id);
                c.id("order_id", &p.order_id);
                c.priority("priority", p.priority);
                c.text("reason", &p.reason, limits::MAX_TEXT_LEN);
            }
            Command::UpsertSku { sku, .. } => check_sku(&mut c, sku),
            Command::Refuse { .. } => {}
        }
        c.result()
            .map_err(|violations| format!("{}: {violations}", self.what()))
    }
}

/// Line numbers from 1, each once; quantities in `min..=MAX_QUANTITY`.
fn lines(c: &mut Check, lines: impl Iterator<Item = (u32, i64)>, min: i64) {
    let mut seen = std::collections::HashSet::new();
    for (i, (line_no, quantity)) in lines.enumerate() {
        if line_no == 0 {
            c.fail(
                format!("lines[{i}].line_no"),
                "is 0 (line numbers start at 1)",
            );
        } else if !seen.insert(line_no) {
            c.fail(
                format!("lines[{i}].line_no"),
                format!("line number {line_no} appears more than once"),
            );
        }
        c.quantity(&format!("lines[{i}].quantity"), quantity, min);
    }
}

/// The bounds order-intake holds an order to.
fn check_order(c: &mut Check, o: &OrderPlaced) {
    c.id("order_id", &o.order_id);
    if o.lines.is_empty() {
        c.fail("lines", "an order needs at least one line");
    }
    for (i, l) in o.lines.iter().enumerate() {
        if l.line_no == 0 {
            c.fail(
                format!("lines[{i}].line_no"),
                "is 0 (line numbers start at 1)",
            );
        }
        c.id(&format!("lines[{i}].sku"), &l.sku);
        c.quantity(&format!("lines[{i}].quantity"), l.quantity, 1);
    }
    c.priority("priority", o.priority);
    c.date("placed_at", o.placed_at.as_ref());
    if let Some(customer) = &o.customer {
        c.optional_id("customer.id", &customer.id);
        c.email("customer.email", &customer.email);
        c.phone("customer.phone", &customer.phone);
        c.locale("customer.locale", &customer.locale);
        c.time_zone("customer.time_zone", &customer.time_zone);
    }
    c.name("channel", &o.channel);
}

/// The bounds of a product-master record.
fn check_sku(c: &mut Check, sku: &SkuUpserted) {
    c.id("sku", &sku.sku);
    c.quantity("max_backorder_quantity", sku.max_backorder_quantity, 0);
    c.optional_id("supplier_id", &sku.supplier_id);
    c.lead_time_days("lead_time_days", sku.lead_time_days);
    for (field, value) in [
        ("pack_size", sku.pack_size),
        ("min_order_quantity", sku.min_order_quantity),
        ("min_level", sku.min_level),
        ("max_level", sku.max_level),
        ("safety_stock", sku.safety_stock),
        ("urgent_shortage", sku.urgent_shortage),
    ] {
        c.quantity(field, value, 0);
    }
}
