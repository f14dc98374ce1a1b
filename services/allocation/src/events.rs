//! The messages allocation emits, built from what a transaction decided. They go to the outbox, never
//! straight to NATS.

use backorder_proto::v1::{
    AllocationCancelled, AllocationCreated, AllocationLine, Customer, CustomerEvent,
    CustomerEventLine, FieldError, OrderPlaced, OrderRejected, OrderStatus, OrderStatusLine,
    ReorderNeeded, RequestRefused, customer_event::Kind, order_status,
};
use backorder_runtime::{Subjects, time};
use chrono::{DateTime, Utc};
use prost::Message;

use crate::command::Command;
use crate::rules::{LineUnits, Status};

/// A row for the outbox: the message id doubles as `Nats-Msg-Id`.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub message_id: String,
    pub subject: String,
    pub payload: Vec<u8>,
    /// The trace context of the message that caused it, published with it.
    pub traceparent: Option<String>,
}

/// A line as it stands, with the units an event is about.
#[derive(Debug, Clone)]
pub struct LineState {
    pub line_no: i32,
    pub sku: String,
    pub units: LineUnits,
    pub preorder: bool,
    /// Allocated units reserved for a ship-complete order and not yet released to the WMS.
    pub held: i64,
    pub eta: Option<DateTime<Utc>>,
    pub eta_estimated: bool,
    pub eta_late: bool,
    pub promised_eta: Option<DateTime<Utc>>,
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn allocation_created(
    subjects: &Subjects,
    allocation_id: &str,
    order_id: &str,
    lines: &[(i32, String, i64)],
    at: DateTime<Utc>,
) -> Outgoing {
    let message = AllocationCreated {
        allocation_id: allocation_id.to_string(),
        order_id: order_id.to_string(),
        lines: allocation_lines(lines),
        created_at: Some(time::to_proto(at)),
    };
    Outgoing {
        message_id: allocation_id.to_string(),
        subject: subjects.allocation_created(),
        payload: message.encode_to_vec(),
        traceparent: None,
    }
}

/// Tells the WMS to stop picking units it was told to pick.
pub fn allocation_cancelled(
    subjects: &Subjects,
    cancellation_id: &str,
    order_id: &str,
    lines: &[(i32, String, i64)],
    reason: &str,
    at: DateTime<Utc>,
) -> Outgoing {
    let message = AllocationCancelled {
        cancellation_id: cancellation_id.to_string(),
        order_id: order_id.to_string(),
        lines: allocation_lines(lines),
        reason: reason.to_string(),
        created_at: Some(time::to_proto(at)),
    };
    Outgoing {
        message_id: cancellation_id.to_string(),
        subject: subjects.allocation_cancelled(),
        payload: message.encode_to_vec(),
        traceparent: None,
    }
}

/// Tells the sender of `command` (id `request_id`) that it will never be carried out, and why.
/// `claim`: the record of the refusal, the request's id (or, for another message under a used id, the id and
/// its digest).
pub fn request_refused(
    subjects: &Subjects,
    claim: &str,
    request_id: &str,
    command: &Command,
    reason: &str,
    at: DateTime<Utc>,
) -> Outgoing {
    let refusal_id = format!("refused/{claim}");
    let message = RequestRefused {
        refusal_id: refusal_id.clone(),
        request_id: request_id.to_string(),
        subject: command.subject(subjects),
        order_id: command.order_id().unwrap_or_default().to_string(),
        reason: reason.to_string(),
        refused_at: Some(time::to_proto(at)),
    };
    Outgoing {
        message_id: refusal_id,
        subject: subjects.request_refused(),
        payload: message.encode_to_vec(),
        traceparent: None,
    }
}

fn allocation_lines(lines: &[(i32, String, i64)]) -> Vec<AllocationLine> {
    lines
        .iter()
        .map(|(line_no, sku, quantity)| AllocationLine {
            line_no: *line_no as u32,
            sku: sku.clone(),
            quantity: *quantity,
        })
        .collect()
}

/// `lines` pairs each line's state with the units the event is about; `respond_by` only for
/// DELAY_CONSENT_REQUIRED.
pub fn customer_event(
    subjects: &Subjects,
    kind: Kind,
    order_id: &str,
    customer: &Customer,
    lines: &[(LineState, i64)],
    respond_by: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Outgoing {
    let event_id = new_id();
    let message = CustomerEvent {
        event_id: event_id.clone(),
        kind: kind as i32,
        order_id: order_id.to_string(),
        customer: Some(customer.clone()),
        lines: lines
            .iter()
            .map(|(line, quantity)| CustomerEventLine {
                line_no: line.line_no as u32,
                sku: line.sku.clone(),
                quantity: *quantity,
                eta: line.eta.map(time::to_proto),
                ordered: line.units.ordered,
                allocated: line.units.allocated,
                backordered: line.units.backordered,
                shipped: line.units.shipped,
                cancelled: line.units.cancelled,
                preorder: line.preorder,
                eta_estimated: line.eta_estimated,
                eta_late: line.eta_late,
                promised_eta: line.promised_eta.map(time::to_proto),
            })
            .collect(),
        occurred_at: Some(time::to_proto(at)),
        respond_by: respond_by.map(time::to_proto),
    };
    Outgoing {
        message_id: event_id,
        subject: subjects.customer_event(),
        payload: message.encode_to_vec(),
        traceparent: None,
    }
}

pub fn order_status(
    subjects: &Subjects,
    order_id: &str,
    status: Status,
    version: i64,
    lines: &[LineState],
    delay_consent_due: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Outgoing {
    let message = OrderStatus {
        order_id: order_id.to_string(),
        status: proto_status(status) as i32,
        lines: lines
            .iter()
            .map(|line| OrderStatusLine {
                line_no: line.line_no as u32,
                sku: line.sku.clone(),
                ordered: line.units.ordered,
                allocated: line.units.allocated,
                backordered: line.units.backordered,
                shipped: line.units.shipped,
                cancelled: line.units.cancelled,
                eta: line.eta.map(time::to_proto),
                preorder: line.preorder,
                held: line.held,
                eta_estimated: line.eta_estimated,
                eta_late: line.eta_late,
                promised_eta: line.promised_eta.map(time::to_proto),
            })
            .collect(),
        version: version as u64,
        updated_at: Some(time::to_proto(at)),
        delay_consent_due: delay_consent_due.map(time::to_proto),
    };
    Outgoing {
        message_id: format!("status/{order_id}/{version}"),
        subject: subjects.order_status(),
        payload: message.encode_to_vec(),
        traceparent: None,
    }
}

pub struct StockFigures {
    pub backordered: i64,
    pub on_hand: i64,
    pub available: i64,
    pub inbound: i64,
}

/// Who waits for a SKU and what purchasing answered: the rest of a ReorderNeeded.
#[derive(Debug, Default)]
pub struct Demand {
    pub orders_waiting: i64,
    pub needed_by: Option<DateTime<Utc>>,
    pub answered_requests: Vec<String>,
    pub supply_added: i64,
}

pub fn reorder_needed(
    subjects: &Subjects,
    sku: &str,
    figures: &StockFigures,
    demand: &Demand,
    at: DateTime<Utc>,
) -> Outgoing {
    let event_id = new_id();
    let message = ReorderNeeded {
        sku: sku.to_string(),
        shortage: crate::rules::shortage(figures.backordered, figures.available, figures.inbound),
        backordered: figures.backordered,
        on_hand: figures.on_hand,
        inbound: figures.inbound,
        event_id: event_id.clone(),
        occurred_at: Some(time::to_proto(at)),
        available: figures.available,
        orders_waiting: demand.orders_waiting,
        needed_by: demand.needed_by.map(time::to_proto),
        answered_requests: demand.answered_requests.clone(),
        supply_added: demand.supply_added,
    };
    Outgoing {
        message_id: event_id,
        subject: subjects.reorder_needed(),
        payload: message.encode_to_vec(),
        traceparent: None,
    }
}

fn proto_status(status: Status) -> order_status::Status {
    use order_status::Status as P;
    match status {
        Status::Open => P::Open,
        Status::PartiallyAllocated => P::PartiallyAllocated,
        Status::Backordered => P::Backordered,
        Status::Allocated => P::Allocated,
        Status::PartiallyShipped => P::PartiallyShipped,
        Status::Completed => P::Completed,
        Status::Cancelled => P::Cancelled,
        Status::Preordered => P::Preordered,
    }
}

/// An order allocation refuses (another order under a used id): told to the OMS where order-intake tells it
/// about orders it refuses.
pub fn order_rejected(
    subjects: &Subjects,
    claim: &str,
    order: &OrderPlaced,
    reason: &str,
) -> Outgoing {
    let rejection_id = format!("rejected/{claim}");
    let message = OrderRejected {
        order_id: order.order_id.clone(),
        errors: vec![FieldError {
            field: "order_id".into(),
            message: reason.to_string(),
        }],
        rejection_id: rejection_id.clone(),
        subject: subjects.order_accepted(),
        stream_sequence: 0,
        payload: order.encode_to_vec(),
    };
    Outgoing {
        message_id: rejection_id,
        subject: subjects.order_rejected(),
        payload: message.encode_to_vec(),
        traceparent: None,
    }
}
