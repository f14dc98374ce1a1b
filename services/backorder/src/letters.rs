//! A parked message's payload in readable form: decoded as the contract's message for its original subject
//! (protobuf JSON with the proto field names, timestamps in RFC 3339, enums by name), else its bytes in hex.

use std::sync::OnceLock;

use backorder_runtime::Subjects;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value;

/// The contract's descriptors, compiled from `proto/backorder/v1` by build.rs.
const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/backorder.bin"));

fn pool() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).ok())
        .as_ref()
}

/// The message every subject of the contract carries (`backorder.v1.<Name>`).
pub fn message_for(subjects: &Subjects, subject: &str) -> Option<&'static str> {
    let known = [
        (subjects.order_placed(), "OrderPlaced"),
        (subjects.order_cancel(), "OrderCancelRequested"),
        (subjects.stock_received(), "StockReceived"),
        (subjects.stock_adjusted(), "StockAdjusted"),
        (subjects.shipment_confirmed(), "ShipmentConfirmed"),
        (subjects.supply_updated(), "SupplyUpdated"),
        (subjects.sku_upserted(), "SkuUpserted"),
        (subjects.delay_answer(), "DelayAnswer"),
        (subjects.customer_preferences(), "CustomerPreferences"),
        (subjects.order_priority(), "OrderPriorityChanged"),
        (subjects.clock(), "ClockAdvanced"),
        (subjects.order_accepted(), "OrderAccepted"),
        (subjects.replenishment_tick(), "ReplenishmentTick"),
        (subjects.reorder_needed(), "ReorderNeeded"),
        (subjects.customer_event(), "CustomerEvent"),
        (subjects.order_rejected(), "OrderRejected"),
        (subjects.order_status(), "OrderStatus"),
        (subjects.allocation_created(), "AllocationCreated"),
        (subjects.allocation_cancelled(), "AllocationCancelled"),
        (subjects.request_refused(), "RequestRefused"),
        (subjects.purchase_request(), "PurchaseRequest"),
        (subjects.notify_email(), "EmailMessage"),
        (subjects.notify_sms(), "SmsMessage"),
    ];
    known
        .into_iter()
        .find(|(s, _)| s == subject)
        .map(|(_, name)| name)
}

/// What a payload is, readably.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// `backorder.v1.<Name>` when it decoded as that; `None`: shown as hex.
    pub message: Option<String>,
    /// The message as JSON, or the bytes in hex.
    pub body: Value,
}

/// Decodes `payload` as the message its subject carries. Bytes that do not decode, or decode only with
/// fields the message does not have, are not that message: they are shown in hex.
pub fn decode(subjects: &Subjects, subject: &str, payload: &[u8]) -> Decoded {
    let hex = || Decoded {
        message: None,
        body: Value::String(hex::encode(payload)),
    };
    let Some(name) = message_for(subjects, subject).map(|n| format!("backorder.v1.{n}")) else {
        return hex();
    };
    let Some(descriptor) = pool().and_then(|p| p.get_message_by_name(&name)) else {
        return hex();
    };
    let Ok(message) = DynamicMessage::decode(descriptor, payload) else {
        return hex();
    };
    if message.unknown_fields().next().is_some() {
        return hex();
    }
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    match message.serialize_with_options(serde_json::value::Serializer, &options) {
        Ok(body) => Decoded {
            message: Some(name),
            body,
        },
        Err(_) => hex(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::v1::{CancelLine, OrderCancelRequested, StockReceived};
    use prost::Message;
    use serde_json::json;

    fn subjects() -> Subjects {
        Subjects::new("shop").unwrap()
    }

    #[test]
    fn every_subject_names_a_message_of_the_contract() {
        let s = subjects();
        let pool = pool().expect("the contract's descriptors decode");
        for subject in [
            s.order_placed(),
            s.order_cancel(),
            s.stock_received(),
            s.stock_adjusted(),
            s.shipment_confirmed(),
            s.supply_updated(),
            s.sku_upserted(),
            s.delay_answer(),
            s.customer_preferences(),
            s.order_priority(),
            s.clock(),
            s.order_accepted(),
            s.replenishment_tick(),
            s.reorder_needed(),
            s.customer_event(),
            s.order_rejected(),
            s.order_status(),
            s.allocation_created(),
            s.allocation_cancelled(),
            s.request_refused(),
            s.purchase_request(),
            s.notify_email(),
            s.notify_sms(),
        ] {
            let name = message_for(&s, &subject).unwrap_or_else(|| panic!("{subject}"));
            assert!(
                pool.get_message_by_name(&format!("backorder.v1.{name}"))
                    .is_some(),
                "{name}"
            );
        }
        assert_eq!(message_for(&s, "other.in.order.placed"), None);
    }

    #[test]
    fn a_contract_message_is_shown_with_its_field_names_numbers_and_dates() {
        let s = subjects();
        let cancel = OrderCancelRequested {
            request_id: "X-1".into(),
            order_id: "SO-1".into(),
            lines: vec![CancelLine {
                line_no: 2,
                quantity: 0,
            }],
            reason: "customer".into(),
        };
        let decoded = decode(&s, &s.order_cancel(), &cancel.encode_to_vec());
        assert_eq!(
            decoded,
            Decoded {
                message: Some("backorder.v1.OrderCancelRequested".into()),
                body: json!({
                    "request_id": "X-1", "order_id": "SO-1",
                    "lines": [{"line_no": 2, "quantity": 0}], "reason": "customer"
                }),
            }
        );
        let receipt = StockReceived {
            receipt_id: "R-1".into(),
            sku: "W".into(),
            quantity: 30,
            po_id: String::new(),
            received_at: Some(prost_types::Timestamp {
                seconds: 1_795_453_500,
                nanos: 0,
            }),
        };
        let body = decode(&s, &s.stock_received(), &receipt.encode_to_vec()).body;
        assert_eq!(body["quantity"], json!(30));
        assert_eq!(body["received_at"], json!("2026-11-23T17:05:00Z"));
    }

    #[test]
    fn bytes_that_are_not_the_subjects_message_are_shown_in_hex() {
        let s = subjects();
        let junk = b"\xff\xff not protobuf";
        assert_eq!(
            decode(&s, &s.order_placed(), junk),
            Decoded {
                message: None,
                body: json!(hex::encode(junk))
            }
        );
        // A StockReceived decodes as an OrderCancelRequested only with a field that message lacks.
        let receipt = StockReceived {
            receipt_id: "R-1".into(),
            quantity: 30,
            ..Default::default()
        };
        assert_eq!(
            decode(&s, &s.order_cancel(), &receipt.encode_to_vec()).message,
            None
        );
        assert_eq!(decode(&s, "shop.unknown", b"\x01").body, json!("01"));
    }
}
