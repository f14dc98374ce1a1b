//! What allocation is asked to do, decoded and checked from the messages it consumes.

use backorder_proto::v1::{
    DelayAnswer, OrderAccepted, OrderCancelRequested, OrderPlaced, ShipmentConfirmed, SkuUpserted,
    StockAdjusted, StockReceived, SupplyUpdated,
};
use backorder_runtime::{Subjects, time};
use chrono::{DateTime, Utc};
use prost::Message;

#[derive(Debug, Clone)]
pub enum Command {
    AcceptOrder(OrderPlaced),
    ReceiveStock(StockReceived),
    AdjustStock(StockAdjusted),
    ConfirmShipment {
        shipment: ShipmentConfirmed,
        shipped_at: DateTime<Utc>,
    },
    CancelOrder(OrderCancelRequested),
    /// `sequence`: the upsert's place in its stream, which orders upserts of one SKU.
    UpsertSku {
        sku: SkuUpserted,
        sequence: u64,
    },
    /// `sequence` orders updates of one purchase-order line.
    UpdateSupply {
        supply: SupplyUpdated,
        sequence: u64,
    },
    AnswerDelay(DelayAnswer),
}

impl Command {
    /// Decodes a message by its subject. An `Err` names what is wrong; such a message can never succeed.
    pub fn decode(
        subjects: &Subjects,
        subject: &str,
        payload: &[u8],
        published: DateTime<Utc>,
        sequence: u64,
    ) -> Result<Self, String> {
        let bad = |e: prost::DecodeError| format!("cannot decode {subject}: {e}");
        let command = if subject == subjects.order_accepted() {
            let accepted = OrderAccepted::decode(payload).map_err(bad)?;
            Command::AcceptOrder(accepted.order.ok_or("OrderAccepted without an order")?)
        } else if subject == subjects.stock_received() {
            Command::ReceiveStock(StockReceived::decode(payload).map_err(bad)?)
        } else if subject == subjects.stock_adjusted() {
            Command::AdjustStock(StockAdjusted::decode(payload).map_err(bad)?)
        } else if subject == subjects.shipment_confirmed() {
            let shipment = ShipmentConfirmed::decode(payload).map_err(bad)?;
            let shipped_at = shipment
                .shipped_at
                .as_ref()
                .and_then(time::from_proto)
                .unwrap_or(published);
            Command::ConfirmShipment {
                shipment,
                shipped_at,
            }
        } else if subject == subjects.order_cancel() {
            Command::CancelOrder(OrderCancelRequested::decode(payload).map_err(bad)?)
        } else if subject == subjects.sku_upserted() {
            let sku = SkuUpserted::decode(payload).map_err(bad)?;
            Command::UpsertSku { sku, sequence }
        } else if subject == subjects.supply_updated() {
            let supply = SupplyUpdated::decode(payload).map_err(bad)?;
            Command::UpdateSupply { supply, sequence }
        } else if subject == subjects.delay_answer() {
            Command::AnswerDelay(DelayAnswer::decode(payload).map_err(bad)?)
        } else {
            return Err(format!("allocation does not handle subject {subject}"));
        };
        command.check()?;
        Ok(command)
    }

    /// The id under which its effects are stored once: a redelivery with the same id does nothing.
    pub fn message_id(&self) -> String {
        match self {
            Command::AcceptOrder(o) => format!("order/{}", o.order_id),
            Command::ReceiveStock(r) => format!("receipt/{}", r.receipt_id),
            Command::AdjustStock(a) => format!("adjustment/{}", a.adjustment_id),
            Command::ConfirmShipment { shipment, .. } => {
                format!("shipment/{}", shipment.shipment_id)
            }
            Command::CancelOrder(c) => format!("cancel/{}", c.request_id),
            Command::UpsertSku { sku, sequence } => format!("sku/{}/{sequence}", sku.sku),
            Command::UpdateSupply { supply, sequence } => {
                format!("supply/{}/{}/{sequence}", supply.po_id, supply.line_no)
            }
            Command::AnswerDelay(a) => format!("delay-answer/{}", a.answer_id),
        }
    }

    /// The subject it arrived on.
    pub fn subject(&self, subjects: &Subjects) -> String {
        match self {
            Command::AcceptOrder(_) => subjects.order_accepted(),
            Command::ReceiveStock(_) => subjects.stock_received(),
            Command::AdjustStock(_) => subjects.stock_adjusted(),
            Command::ConfirmShipment { .. } => subjects.shipment_confirmed(),
            Command::CancelOrder(_) => subjects.order_cancel(),
            Command::UpsertSku { .. } => subjects.sku_upserted(),
            Command::UpdateSupply { .. } => subjects.supply_updated(),
            Command::AnswerDelay(_) => subjects.delay_answer(),
        }
    }

    /// The existing order whose lines (and so whose SKUs' stock) it changes.
    pub fn named_order(&self) -> Option<&str> {
        match self {
            Command::ConfirmShipment { shipment, .. } => Some(&shipment.order_id),
            Command::CancelOrder(c) => Some(&c.order_id),
            Command::AnswerDelay(a) => Some(&a.order_id),
            _ => None,
        }
    }

    /// The SKUs whose stock it may touch, where the message names them (a shipment names only its order).
    pub fn named_skus(&self) -> Vec<&str> {
        match self {
            Command::AcceptOrder(o) => o.lines.iter().map(|l| l.sku.as_str()).collect(),
            Command::ReceiveStock(r) => vec![&r.sku],
            Command::AdjustStock(a) => vec![&a.sku],
            Command::UpdateSupply { supply, .. } => vec![&supply.sku],
            Command::UpsertSku { sku, .. } => vec![&sku.sku],
            Command::ConfirmShipment { .. } | Command::CancelOrder(_) | Command::AnswerDelay(_) => {
                vec![]
            }
        }
    }

    /// For log spans.
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Command::AcceptOrder(o) => Some(&o.order_id),
            Command::ConfirmShipment { shipment, .. } => Some(&shipment.order_id),
            Command::CancelOrder(c) => Some(&c.order_id),
            Command::AnswerDelay(a) => Some(&a.order_id),
            _ => None,
        }
    }

    fn check(&self) -> Result<(), String> {
        let present = |what: &str, value: &str| {
            if value.trim().is_empty() {
                Err(format!("{what} is missing"))
            } else {
                Ok(())
            }
        };
        match self {
            // order-intake validated it; only what the engine relies on is checked again.
            Command::AcceptOrder(o) => {
                present("order_id", &o.order_id)?;
                if o.lines.is_empty() || o.lines.iter().any(|l| l.quantity <= 0 || l.line_no == 0) {
                    return Err(format!(
                        "order {} has no lines or a line without a positive quantity",
                        o.order_id
                    ));
                }
                Ok(())
            }
            Command::ReceiveStock(r) => {
                present("receipt_id", &r.receipt_id)?;
                present("sku", &r.sku)?;
                if r.quantity <= 0 {
                    return Err(format!(
                        "receipt {}: quantity must be positive, got {}",
                        r.receipt_id, r.quantity
                    ));
                }
                Ok(())
            }
            Command::AdjustStock(a) => {
                present("adjustment_id", &a.adjustment_id)?;
                present("sku", &a.sku)?;
                if a.delta == 0 {
                    return Err(format!("adjustment {}: delta is 0", a.adjustment_id));
                }
                Ok(())
            }
            Command::ConfirmShipment { shipment, .. } => {
                present("shipment_id", &shipment.shipment_id)?;
                present("order_id", &shipment.order_id)
            }
            Command::CancelOrder(c) => {
                present("request_id", &c.request_id)?;
                present("order_id", &c.order_id)?;
                if let Some((i, l)) = c.lines.iter().enumerate().find(|(_, l)| l.line_no == 0) {
                    return Err(format!(
                        "cancel {}: lines[{i}].line_no is 0 (line numbers start at 1); quantity {}",
                        c.request_id, l.quantity
                    ));
                }
                Ok(())
            }
            Command::UpdateSupply { supply, .. } => {
                present("po_id", &supply.po_id)?;
                present("sku", &supply.sku)?;
                let what = format!("supply {}/{}", supply.po_id, supply.line_no);
                if supply.line_no == 0 {
                    return Err(format!("{what}: line_no is 0 (line numbers start at 1)"));
                }
                if supply.quantity_open < 0 {
                    return Err(format!(
                        "{what}: quantity_open must not be negative, got {}",
                        supply.quantity_open
                    ));
                }
                if !supply.cancelled
                    && supply
                        .expected_at
                        .as_ref()
                        .and_then(time::from_proto)
                        .is_none()
                {
                    return Err(format!("{what}: expected_at is missing"));
                }
                Ok(())
            }
            Command::AnswerDelay(a) => {
                present("answer_id", &a.answer_id)?;
                present("order_id", &a.order_id)
            }
            Command::UpsertSku { sku, .. } => {
                present("sku", &sku.sku)?;
                if sku.max_backorder_quantity < 0 {
                    return Err(format!(
                        "sku {}: max_backorder_quantity must not be negative, got {}",
                        sku.sku, sku.max_backorder_quantity
                    ));
                }
                Ok(())
            }
        }
    }
}
