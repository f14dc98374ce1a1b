//! Replies of the query API as sections of rows: pure functions of the reply, one per command.
//!
//! Column names are the contract's field names, flattened (a line's `promise.eta` is `eta`, its
//! `queue.position` is `position`; a purchase-order line is `po`, `<po_id>/<line_no>` as the audit trail
//! names it), so the JSON output reads like the contract. Timestamps are RFC 3339 in UTC, to the second;
//! enums by their contract name; unset or empty is null.

mod dead_letters;
mod kpis;
mod sku_queue;

pub use dead_letters::{dead_letter, dead_letters, replay};
pub use kpis::kpis;
pub use sku_queue::{preview, sku};

use backorder_proto::Timestamp;
use backorder_proto::v1::{
    AuditEntry, ChangePriorityReply, GetOrderReply, ListBackordersReply, OrderLineView, Promise,
    QueuePlace, ShipPolicy, order_status::Status,
};
use chrono::SecondsFormat;
use serde_json::{Value, json};

use crate::render::{Body, Output, Table};

/// RFC 3339, or null when unset (or out of range).
pub fn ts(at: Option<&Timestamp>) -> Value {
    at.and_then(backorder_runtime::time::from_proto)
        .map(|at| Value::String(at.to_rfc3339_opts(SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

fn text(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.into())
    }
}

fn status(status: i32) -> Value {
    Status::try_from(status)
        .map(|s| json!(s.as_str_name()))
        .unwrap_or_else(|_| json!(status))
}

/// `<po_id>/<line_no>`, as the audit trail names a purchase-order line; null when none.
fn po(po_id: &str, line_no: u32) -> Value {
    if po_id.is_empty() {
        Value::Null
    } else {
        json!(format!("{po_id}/{line_no}"))
    }
}

/// eta, estimated, eta_late, promised_eta, late
fn promise_cells(promise: Option<&Promise>) -> Vec<Value> {
    let p = promise.cloned().unwrap_or_default();
    vec![
        ts(p.eta.as_ref()),
        json!(p.eta_estimated),
        json!(p.eta_late),
        ts(p.promised_eta.as_ref()),
        json!(p.late),
    ]
}

const PROMISE: [&str; 5] = ["eta", "estimated", "eta_late", "promised_eta", "late"];

/// position (null when the line does not wait), units_ahead, po, po_expected_at
fn place_cells(place: Option<&QueuePlace>) -> Vec<Value> {
    let q = place.cloned().unwrap_or_default();
    if q.position == 0 {
        return vec![Value::Null, Value::Null, Value::Null, Value::Null];
    }
    vec![
        json!(q.position),
        json!(q.units_ahead),
        po(&q.po_id, q.po_line_no),
        ts(q.po_expected_at.as_ref()),
    ]
}

const PLACE: [&str; 4] = ["position", "units_ahead", "po", "po_expected_at"];

fn columns(groups: &[&[&'static str]]) -> Vec<&'static str> {
    groups.concat()
}

pub fn backorders(reply: &ListBackordersReply) -> Output {
    let mut table = Table::new(&columns(&[
        &[
            "order_id",
            "line_no",
            "sku",
            "customer_id",
            "backordered",
            "ordered",
            "allocated",
            "priority",
            "age_days",
            "backordered_since",
        ],
        &PROMISE,
        &PLACE,
        &["preorder", "order_status", "placed_at"],
    ]));
    for row in &reply.backorders {
        let mut cells = vec![
            json!(row.order_id),
            json!(row.line_no),
            json!(row.sku),
            text(&row.customer_id),
            json!(row.backordered),
            json!(row.ordered),
            json!(row.allocated),
            json!(row.priority),
            json!(row.age_days),
            ts(row.backordered_since.as_ref()),
        ];
        cells.extend(promise_cells(row.promise.as_ref()));
        cells.extend(place_cells(row.queue.as_ref()));
        cells.extend([
            json!(row.preorder),
            status(row.order_status),
            ts(row.placed_at.as_ref()),
        ]);
        table.push(cells);
    }
    let shown = reply.backorders.len() as u64;
    let mut output = Output::default()
        .section("backorders", Body::Table(table))
        .fields(
            "summary",
            vec![
                ("total", json!(reply.total)),
                ("total_units", json!(reply.total_units)),
                ("shown", json!(shown)),
            ],
        );
    if shown < reply.total {
        output = output.note(format!(
            "showing {shown} of {} backordered lines: --all for every one, --limit for more",
            reply.total
        ));
    }
    output
}

fn order_fields(order: &GetOrderReply) -> Vec<(&'static str, Value)> {
    let policy = ShipPolicy::try_from(order.ship_policy)
        .map(|p| json!(p.as_str_name()))
        .unwrap_or_else(|_| json!(order.ship_policy));
    vec![
        ("order_id", json!(order.order_id)),
        ("customer_id", text(&order.customer_id)),
        ("status", status(order.status)),
        ("priority", json!(order.priority)),
        ("ship_policy", policy),
        ("channel", text(&order.channel)),
        ("placed_at", ts(order.placed_at.as_ref())),
        ("accepted_at", ts(order.accepted_at.as_ref())),
        ("updated_at", ts(order.updated_at.as_ref())),
        ("version", json!(order.version)),
        ("delay_consent_due", ts(order.delay_consent_due.as_ref())),
    ]
}

fn lines(lines: &[OrderLineView]) -> Body {
    let mut table = Table::new(&columns(&[
        &[
            "line_no",
            "sku",
            "ordered",
            "allocated",
            "held",
            "backordered",
            "shipped",
            "cancelled",
        ],
        &PROMISE,
        &PLACE,
        &["preorder", "backordered_since", "ready_at"],
    ]));
    for line in lines {
        let mut cells = vec![
            json!(line.line_no),
            json!(line.sku),
            json!(line.ordered),
            json!(line.allocated),
            json!(line.held),
            json!(line.backordered),
            json!(line.shipped),
            json!(line.cancelled),
        ];
        cells.extend(promise_cells(line.promise.as_ref()));
        cells.extend(place_cells(line.queue.as_ref()));
        cells.extend([
            json!(line.preorder),
            ts(line.backordered_since.as_ref()),
            ts(line.ready_at.as_ref()),
        ]);
        table.push(cells);
    }
    Body::Table(table)
}

fn history(history: &[AuditEntry]) -> Body {
    let mut table = Table::new(&[
        "at", "line_no", "sku", "change", "quantity", "cause", "detail",
    ]);
    for entry in history {
        table.push(vec![
            ts(entry.at.as_ref()),
            json!(entry.line_no),
            json!(entry.sku),
            json!(entry.change),
            json!(entry.quantity),
            text(&entry.cause),
            text(&entry.detail),
        ]);
    }
    Body::Table(table)
}

pub fn order(reply: &GetOrderReply) -> Output {
    Output::default()
        .fields("order", order_fields(reply))
        .section("lines", lines(&reply.lines))
        .section("history", history(&reply.history))
}

pub fn priority(reply: &ChangePriorityReply, order_id: &str, priority: i32) -> Output {
    let mut output = Output::default().fields(
        "priority",
        vec![
            ("order_id", json!(order_id)),
            ("priority", json!(priority)),
            ("request_id", json!(reply.request_id)),
            ("applied", json!(reply.applied)),
        ],
    );
    if let Some(order) = &reply.order {
        output = output.section("lines", lines(&order.lines));
    }
    if !reply.applied {
        output = output.note("not applied yet: it waits in the inbound stream and will be");
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::Message;
    use backorder_proto::v1::{
        Aging, AgingBucket, AllocationLine, BackorderRow, DeadLetter, DeadLetterEntry, FillRate,
        GetKpisReply, GetSkuQueueReply, ListDeadLettersReply, OrderCancelRequested, PreviewFill,
        PreviewOrder, PreviewReceiptReply, QueueEntry, Replay, StockFigures, SupplyCover,
    };
    use backorder_runtime::Subjects;

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    const NOV_23: i64 = 1_795_392_000; // 2026-11-23T00:00:00Z

    fn table<'a>(output: &'a Output, name: &str) -> &'a Table {
        match output.get(name) {
            Some(Body::Table(t)) => t,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn record<'a>(output: &'a Output, name: &str) -> &'a [(&'static str, Value)] {
        match output.get(name) {
            Some(Body::Record(r)) => r,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn field<'a>(fields: &'a [(&'static str, Value)], name: &str) -> &'a Value {
        &fields.iter().find(|(k, _)| *k == name).unwrap().1
    }

    #[test]
    fn timestamps_are_rfc_3339_to_the_second_and_unset_is_null() {
        assert_eq!(ts(at(NOV_23).as_ref()), json!("2026-11-23T00:00:00Z"));
        assert_eq!(
            ts(Some(&Timestamp {
                seconds: NOV_23 + 61,
                nanos: 999
            })),
            json!("2026-11-23T00:01:01Z")
        );
        assert_eq!(ts(None), Value::Null);
        assert_eq!(
            ts(Some(&Timestamp {
                seconds: 0,
                nanos: -1
            })),
            Value::Null
        );
    }

    #[test]
    fn a_backorder_row_flattens_its_promise_and_queue_place() {
        let reply = ListBackordersReply {
            backorders: vec![BackorderRow {
                order_id: "SO-1".into(),
                line_no: 1,
                sku: "W".into(),
                customer_id: "C-1".into(),
                ordered: 100,
                backordered: 30,
                allocated: 70,
                priority: 2,
                age_days: 8,
                backordered_since: at(NOV_23),
                promise: Some(Promise {
                    eta: at(NOV_23 + 86_400),
                    eta_estimated: false,
                    eta_late: true,
                    promised_eta: at(NOV_23),
                    late: true,
                }),
                queue: Some(QueuePlace {
                    position: 1,
                    units_ahead: 0,
                    po_id: "PO-9".into(),
                    po_line_no: 2,
                    po_expected_at: at(NOV_23),
                }),
                order_status: Status::PartiallyAllocated as i32,
                ..Default::default()
            }],
            next_page_token: "next".into(),
            total: 3,
            total_units: 50,
        };
        let output = backorders(&reply);
        let rows = table(&output, "backorders");
        assert_eq!(rows.column("backordered"), vec![&json!(30)]);
        assert_eq!(rows.column("eta"), vec![&json!("2026-11-24T00:00:00Z")]);
        assert_eq!(rows.column("late"), vec![&json!(true)]);
        assert_eq!(rows.column("po"), vec![&json!("PO-9/2")]);
        assert_eq!(rows.column("position"), vec![&json!(1)]);
        assert_eq!(
            rows.column("order_status"),
            vec![&json!("PARTIALLY_ALLOCATED")]
        );
        assert_eq!(rows.column("placed_at"), vec![&Value::Null]);
        let summary = record(&output, "summary");
        assert_eq!(field(summary, "total"), &json!(3));
        assert_eq!(field(summary, "total_units"), &json!(50));
        assert_eq!(output.notes.len(), 1, "1 of 3 shown: a note says so");
    }

    #[test]
    fn an_order_has_its_header_lines_and_timeline() {
        let reply = GetOrderReply {
            order_id: "SO-1".into(),
            status: Status::Backordered as i32,
            ship_policy: ShipPolicy::ShipComplete as i32,
            lines: vec![OrderLineView {
                line_no: 1,
                sku: "W".into(),
                ordered: 5,
                backordered: 5,
                queue: Some(QueuePlace::default()),
                ..Default::default()
            }],
            history: vec![AuditEntry {
                at: at(NOV_23),
                line_no: 1,
                sku: "W".into(),
                change: "backordered".into(),
                quantity: 5,
                cause: "order/SO-1".into(),
                detail: String::new(),
            }],
            ..Default::default()
        };
        let output = order(&reply);
        let header = record(&output, "order");
        assert_eq!(field(header, "status"), &json!("BACKORDERED"));
        assert_eq!(field(header, "ship_policy"), &json!("SHIP_COMPLETE"));
        assert_eq!(field(header, "customer_id"), &Value::Null);
        let lines = table(&output, "lines");
        assert_eq!(
            lines.column("position"),
            vec![&Value::Null],
            "not waiting in a queue"
        );
        let history = table(&output, "history");
        assert_eq!(history.column("change"), vec![&json!("backordered")]);
        assert_eq!(history.column("detail"), vec![&Value::Null]);
        assert_eq!(history.column("at"), vec![&json!("2026-11-23T00:00:00Z")]);
        let json = serde_json::to_value(&output).unwrap();
        assert_eq!(json["order_id"], json!("SO-1"));
        assert_eq!(json["lines"][0]["backordered"], json!(5));
        assert_eq!(json["history"][0]["cause"], json!("order/SO-1"));
    }

    #[test]
    fn a_sku_shows_stock_rules_queue_and_supply() {
        let reply = GetSkuQueueReply {
            sku: "W".into(),
            stock: Some(StockFigures {
                on_hand: 7,
                available: 2,
                allocated: 5,
                ..Default::default()
            }),
            queue: vec![QueueEntry {
                order_id: "SO-2".into(),
                line_no: 1,
                backordered: 4,
                place: Some(QueuePlace {
                    position: 1,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            supply: vec![
                SupplyCover {
                    po_id: "PO-1".into(),
                    line_no: 1,
                    quantity_open: 10,
                    first_position: 1,
                    last_position: 1,
                    covers_units: 4,
                    ..Default::default()
                },
                SupplyCover {
                    po_id: "PO-2".into(),
                    line_no: 1,
                    quantity_open: 10,
                    ..Default::default()
                },
            ],
            uncovered: 0,
            rules: None,
        };
        let output = sku(&reply);
        assert_eq!(field(record(&output, "sku"), "available"), &json!(2));
        assert_eq!(
            table(&output, "queue").column("order_id"),
            vec![&json!("SO-2")]
        );
        let supply = table(&output, "supply");
        assert_eq!(
            supply.column("po"),
            vec![&json!("PO-1/1"), &json!("PO-2/1")]
        );
        assert_eq!(
            supply.column("first_position"),
            vec![&json!(1), &Value::Null],
            "PO-2 covers nobody"
        );
    }

    #[test]
    fn a_preview_lists_fills_orders_released_and_the_queue_after() {
        let reply = PreviewReceiptReply {
            sku: "W".into(),
            quantity: 10,
            fills: vec![PreviewFill {
                order_id: "SO-1".into(),
                line_no: 1,
                quantity: 10,
                position: 1,
                backordered_after: 0,
            }],
            orders: vec![PreviewOrder {
                order_id: "SO-1".into(),
                released: vec![
                    AllocationLine {
                        line_no: 1,
                        sku: "W".into(),
                        quantity: 10,
                    },
                    AllocationLine {
                        line_no: 2,
                        sku: "G".into(),
                        quantity: 1,
                    },
                ],
                complete: true,
                waiting: false,
                status_after: Status::Allocated as i32,
            }],
            waiting: vec![QueueEntry {
                order_id: "SO-2".into(),
                eta_before: at(NOV_23),
                ..Default::default()
            }],
            ..Default::default()
        };
        let output = preview(&reply, "PO-1");
        assert_eq!(field(record(&output, "preview"), "po_id"), &json!("PO-1"));
        let orders = table(&output, "orders");
        assert_eq!(orders.column("released_units"), vec![&json!(11)]);
        assert_eq!(orders.column("released"), vec![&json!("1:W=10 2:G=1")]);
        assert_eq!(orders.column("status_after"), vec![&json!("ALLOCATED")]);
        let waiting = table(&output, "waiting");
        assert_eq!(
            waiting.column("eta_before"),
            vec![&json!("2026-11-23T00:00:00Z")]
        );
        assert_eq!(table(&output, "fills").column("quantity"), vec![&json!(10)]);
    }

    #[test]
    fn kpis_keep_rates_as_numbers_and_an_open_ended_bucket_as_null() {
        let reply = GetKpisReply {
            fill_rate: Some(FillRate {
                lines: 4,
                lines_filled: 3,
                line_fill_rate: 0.75,
                ..Default::default()
            }),
            aging: Some(Aging {
                buckets: vec![
                    AgingBucket {
                        label: "0-2".into(),
                        min_days: 0,
                        max_days: 2,
                        lines: 1,
                        units: 30,
                    },
                    AgingBucket {
                        label: "31+".into(),
                        min_days: 31,
                        max_days: -1,
                        lines: 0,
                        units: 0,
                    },
                ],
                open_lines: 1,
                oldest_order_id: "SO-1".into(),
                oldest_line_no: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let output = kpis(&reply, "", "W");
        let summary = record(&output, "kpis");
        assert_eq!(field(summary, "line_fill_rate"), &json!(0.75));
        assert_eq!(field(summary, "oldest"), &json!("SO-1/1"));
        assert_eq!(field(summary, "customer_id"), &Value::Null);
        assert_eq!(field(summary, "sku"), &json!("W"));
        assert_eq!(
            table(&output, "aging").column("max_days"),
            vec![&json!(2), &Value::Null]
        );
    }

    #[test]
    fn a_dead_letter_is_shown_with_its_payload_decoded() {
        let subjects = Subjects::new("bo").unwrap();
        let cancel = OrderCancelRequested {
            request_id: "X-1".into(),
            order_id: "SO-1".into(),
            ..Default::default()
        };
        let entry = DeadLetterEntry {
            sequence: 7,
            letter: Some(DeadLetter {
                service: "allocation".into(),
                subject: subjects.order_cancel(),
                payload: cancel.encode_to_vec(),
                error: "nothing left to cancel".into(),
                ..Default::default()
            }),
            replays: vec![Replay {
                operator: "ann".into(),
                message_id: "replay/7/1".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let output = dead_letter(&entry, &subjects);
        assert_eq!(
            field(record(&output, "letter"), "payload_type"),
            &json!("backorder.v1.OrderCancelRequested")
        );
        match output.get("payload") {
            Some(Body::Document(body)) => assert_eq!(body["order_id"], json!("SO-1")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            table(&output, "replays").column("message_id"),
            vec![&json!("replay/7/1")]
        );
        let listed = dead_letters(&ListDeadLettersReply {
            dead_letters: vec![entry],
            next_page_token: String::new(),
            total: 1,
        });
        assert_eq!(
            table(&listed, "dead_letters").column("replays"),
            vec![&json!(1)]
        );
        assert!(listed.notes.is_empty());
    }
}
