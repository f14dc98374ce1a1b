//! What allocation is asked to do, decoded and checked from the messages it consumes.

mod check;

use backorder_proto::v1::{
    DelayAnswer, OrderAccepted, OrderCancelRequested, OrderPlaced, OrderPriorityChanged,
    ShipmentConfirmed, SkuUpserted, StockAdjusted, StockReceived, SupplyUpdated,
};
use backorder_runtime::limits::{self, Check};
use backorder_runtime::{Subjects, digest, time};
use chrono::{DateTime, Utc};
use prost::Message;

#[derive(Debug, Clone)]
pub enum Command {
    /// `digest`: `OrderAccepted.digest`, the order as the OMS sent it (empty from older releases).
    AcceptOrder {
        order: OrderPlaced,
        digest: String,
    },
    ReceiveStock(StockReceived),
    AdjustStock(StockAdjusted),
    ConfirmShipment {
        shipment: ShipmentConfirmed,
        shipped_at: DateTime<Utc>,
    },
    CancelOrder(OrderCancelRequested),
    /// `published`, `sequence`: where its stream stored the upsert, which orders upserts of one SKU (the
    /// stored time first: a recreated stream starts its sequence numbers again at 1).
    UpsertSku {
        sku: SkuUpserted,
        published: DateTime<Utc>,
        sequence: u64,
    },
    /// `published`, `sequence` order updates of one purchase-order line.
    UpdateSupply {
        supply: SupplyUpdated,
        published: DateTime<Utc>,
        sequence: u64,
    },
    AnswerDelay(DelayAnswer),
    /// A new priority for an order's lines (from the OMS or the desk): its waiting lines move in their queues.
    ChangePriority(OrderPriorityChanged),
    /// A message with a field out of bounds: refused by name, nothing else happens.
    Refuse {
        command: Box<Command>,
        reason: String,
    },
}

impl Command {
    /// Decodes a message by its subject. An `Err` names what is wrong with bytes that are no message at all (no
    /// id to answer to); a message with a field out of bounds decodes to [`Command::Refuse`].
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
            Command::AcceptOrder {
                order: accepted.order.ok_or("OrderAccepted without an order")?,
                digest: accepted.digest,
            }
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
                .filter(|at| limits::in_years(*at))
                .unwrap_or(published);
            Command::ConfirmShipment {
                shipment,
                shipped_at,
            }
        } else if subject == subjects.order_cancel() {
            Command::CancelOrder(OrderCancelRequested::decode(payload).map_err(bad)?)
        } else if subject == subjects.sku_upserted() {
            let sku = SkuUpserted::decode(payload).map_err(bad)?;
            Command::UpsertSku {
                sku,
                published,
                sequence,
            }
        } else if subject == subjects.supply_updated() {
            let supply = SupplyUpdated::decode(payload).map_err(bad)?;
            Command::UpdateSupply {
                supply,
                published,
                sequence,
            }
        } else if subject == subjects.delay_answer() {
            Command::AnswerDelay(DelayAnswer::decode(payload).map_err(bad)?)
        } else if subject == subjects.order_priority() {
            Command::ChangePriority(OrderPriorityChanged::decode(payload).map_err(bad)?)
        } else {
            return Err(format!("allocation does not handle subject {subject}"));
        };
        Ok(match command.check() {
            Ok(()) => command,
            Err(reason) if command.has_id() => Command::Refuse {
                command: Box::new(command),
                reason,
            },
            // Without a usable id there is nobody to answer and nothing to record: the dead letter keeps it.
            Err(reason) => return Err(reason),
        })
    }

    /// Whether the message's own id is usable for the record of its refusal.
    fn has_id(&self) -> bool {
        let id = match self {
            Command::AcceptOrder { order, .. } => &order.order_id,
            Command::ReceiveStock(r) => &r.receipt_id,
            Command::AdjustStock(a) => &a.adjustment_id,
            Command::ConfirmShipment { shipment, .. } => &shipment.shipment_id,
            Command::CancelOrder(c) => &c.request_id,
            Command::UpsertSku { sku, .. } => &sku.sku,
            Command::UpdateSupply { supply, .. } => &supply.po_id,
            Command::AnswerDelay(a) => &a.answer_id,
            Command::ChangePriority(p) => &p.request_id,
            Command::Refuse { command, .. } => return command.has_id(),
        };
        let mut c = Check::new();
        c.id("id", id);
        c.violations.is_empty()
    }

    /// The id under which its effects are stored once: a redelivery with the same id does nothing, and another
    /// message under the same id is a conflict (see [`digest`](Self::digest)). Upserts are states, named by
    /// where their stream stored them: the same state sent again later is applied again (harmlessly), and the
    /// newest wins.
    pub fn message_id(&self) -> String {
        match self {
            Command::AcceptOrder { order, .. } => format!("order/{}", order.order_id),
            Command::ReceiveStock(r) => format!("receipt/{}", r.receipt_id),
            Command::AdjustStock(a) => format!("adjustment/{}", a.adjustment_id),
            Command::ConfirmShipment { shipment, .. } => {
                format!("shipment/{}", shipment.shipment_id)
            }
            Command::CancelOrder(c) => format!("cancel/{}", c.request_id),
            Command::UpsertSku {
                sku,
                published,
                sequence,
            } => format!("sku/{}/{}", sku.sku, position(*published, *sequence)),
            Command::UpdateSupply {
                supply,
                published,
                sequence,
            } => format!(
                "supply/{}/{}/{}",
                supply.po_id,
                supply.line_no,
                position(*published, *sequence)
            ),
            Command::AnswerDelay(a) => format!("delay-answer/{}", a.answer_id),
            Command::ChangePriority(p) => format!("priority/{}", p.request_id),
            Command::Refuse { command, .. } => command.message_id(),
        }
    }

    /// The subject it arrived on.
    pub fn subject(&self, subjects: &Subjects) -> String {
        match self {
            Command::AcceptOrder { .. } => subjects.order_accepted(),
            Command::ReceiveStock(_) => subjects.stock_received(),
            Command::AdjustStock(_) => subjects.stock_adjusted(),
            Command::ConfirmShipment { .. } => subjects.shipment_confirmed(),
            Command::CancelOrder(_) => subjects.order_cancel(),
            Command::UpsertSku { .. } => subjects.sku_upserted(),
            Command::UpdateSupply { .. } => subjects.supply_updated(),
            Command::AnswerDelay(_) => subjects.delay_answer(),
            Command::ChangePriority(_) => subjects.order_priority(),
            Command::Refuse { command, .. } => command.subject(subjects),
        }
    }

    /// The existing order whose lines (and so whose SKUs' stock) it changes.
    pub fn named_order(&self) -> Option<&str> {
        match self {
            Command::ConfirmShipment { shipment, .. } => Some(&shipment.order_id),
            Command::CancelOrder(c) => Some(&c.order_id),
            Command::AnswerDelay(a) => Some(&a.order_id),
            Command::ChangePriority(p) => Some(&p.order_id),
            _ => None,
        }
    }

    /// The SKUs whose stock it may touch, where the message names them (a shipment names only its order). A
    /// refused message touches none (its SKU may be 10 KB of garbage).
    pub fn named_skus(&self) -> Vec<&str> {
        match self {
            Command::AcceptOrder { order, .. } => {
                order.lines.iter().map(|l| l.sku.as_str()).collect()
            }
            Command::ReceiveStock(r) => vec![&r.sku],
            Command::AdjustStock(a) => vec![&a.sku],
            Command::UpdateSupply { supply, .. } => vec![&supply.sku],
            Command::UpsertSku { sku, .. } => vec![&sku.sku],
            Command::ConfirmShipment { .. }
            | Command::CancelOrder(_)
            | Command::AnswerDelay(_)
            | Command::ChangePriority(_)
            | Command::Refuse { .. } => vec![],
        }
    }

    /// For log spans.
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Command::AcceptOrder { order, .. } => Some(&order.order_id),
            Command::ConfirmShipment { shipment, .. } => Some(&shipment.order_id),
            Command::CancelOrder(c) => Some(&c.order_id),
            Command::AnswerDelay(a) => Some(&a.order_id),
            Command::ChangePriority(p) => Some(&p.order_id),
            Command::Refuse { command, .. } => command.order_id(),
            _ => None,
        }
    }

    /// The message as a person names it: "receipt R-1", "order SO-1".
    pub fn what(&self) -> String {
        let (kind, id) = match self {
            Command::AcceptOrder { order, .. } => ("order", order.order_id.as_str()),
            Command::ReceiveStock(r) => ("receipt", r.receipt_id.as_str()),
            Command::AdjustStock(a) => ("adjustment", a.adjustment_id.as_str()),
            Command::ConfirmShipment { shipment, .. } => {
                ("shipment", shipment.shipment_id.as_str())
            }
            Command::CancelOrder(c) => ("cancellation", c.request_id.as_str()),
            Command::UpsertSku { sku, .. } => ("SKU upsert", sku.sku.as_str()),
            Command::UpdateSupply { supply, .. } => ("supply update of PO", supply.po_id.as_str()),
            Command::AnswerDelay(a) => ("delay answer", a.answer_id.as_str()),
            Command::ChangePriority(p) => ("priority change", p.request_id.as_str()),
            Command::Refuse { command, .. } => return command.what(),
        };
        format!("{kind} {}", limits::shown(id).trim_matches('"'))
    }

    /// The digest of the message's content: the same id with another digest is a conflict, not a duplicate.
    pub fn digest(&self) -> String {
        match self {
            Command::AcceptOrder { digest, .. } if !digest.is_empty() => digest.clone(),
            Command::AcceptOrder { order, .. } => digest::of(order),
            Command::ReceiveStock(r) => digest::of(r),
            Command::AdjustStock(a) => digest::of(a),
            Command::ConfirmShipment { shipment, .. } => digest::of(shipment),
            Command::CancelOrder(c) => digest::of(c),
            Command::UpsertSku { sku, .. } => digest::of(sku),
            Command::UpdateSupply { supply, .. } => digest::of(supply),
            Command::AnswerDelay(a) => digest::of(a),
            Command::ChangePriority(p) => digest::of(p),
            Command::Refuse { command, .. } => command.digest(),
        }
    }

    /// What the message asked for, in a few words, for the refusal of a later message that reuses its id.
    pub fn summary(&self) -> String {
        let lines = |lines: &mut dyn Iterator<Item = String>| {
            let all: Vec<String> = lines.collect();
            let shown: Vec<&str> = all.iter().take(3).map(String::as_str).collect();
            let more = all.len().saturating_sub(3);
            let mut text = shown.join(", ");
            if more > 0 {
                text.push_str(&format!(" and {more} more lines"));
            }
            text
        };
        match self {
            Command::AcceptOrder { order, .. } => format!(
                "customer {:?}, {}",
                order.customer.as_ref().map_or("", |c| c.id.as_str()),
                lines(
                    &mut order
                        .lines
                        .iter()
                        .map(|l| format!("{} x {}", l.sku, l.quantity))
                )
            ),
            Command::ReceiveStock(r) => format!("SKU {} x {}", r.sku, r.quantity),
            Command::AdjustStock(a) => format!("SKU {} by {:+}", a.sku, a.delta),
            Command::ConfirmShipment { shipment, .. } => format!(
                "order {}, {}",
                shipment.order_id,
                lines(
                    &mut shipment
                        .lines
                        .iter()
                        .map(|l| format!("line {} x {}", l.line_no, l.quantity))
                )
            ),
            Command::CancelOrder(c) if c.lines.is_empty() => {
                format!("order {}, every line", c.order_id)
            }
            Command::CancelOrder(c) => format!(
                "order {}, {}",
                c.order_id,
                lines(
                    &mut c
                        .lines
                        .iter()
                        .map(|l| format!("line {} x {}", l.line_no, l.quantity))
                )
            ),
            Command::UpsertSku { sku, .. } => format!("SKU {}", sku.sku),
            Command::UpdateSupply { supply, .. } => format!(
                "line {}: SKU {} x {}",
                supply.line_no, supply.sku, supply.quantity_open
            ),
            Command::AnswerDelay(a) => format!(
                "order {}, {}",
                a.order_id,
                if a.agree { "agreed" } else { "declined" }
            ),
            Command::ChangePriority(p) => format!("order {}, priority {}", p.order_id, p.priority),
            Command::Refuse { command, .. } => command.summary(),
        }
    }
}

/// Where a stream stored a message, as text that sorts like the position: nanoseconds since 1970, sequence.
fn position(published: DateTime<Utc>, sequence: u64) -> String {
    let nanos = published.timestamp_nanos_opt().unwrap_or(i64::MAX);
    format!("{nanos}.{sequence}")
}
