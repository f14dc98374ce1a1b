//! Writes the seed corpora, `fuzz/corpus/<target>/seed-<name>`: the messages the end-to-end tests and the
//! demo send (built with `backorder_test_support::messages`, as the tests build them), framed the way each target
//! reads its input. Not a fuzz target: a binary of the fuzz build (so it costs no build of its own) that
//! writes the seeds and exits at start. Run from `fuzz/`: `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none seeds`.
#![no_main]

use std::path::Path;

use backorder_test_support::messages;
use backorder_fuzz::{frame, now};
use backorder_proto::v1::{
    ClockAdvanced, CustomerPreferences, DeadLetter, DelayAnswer, OrderAccepted, OrderPriorityChanged,
    ReorderNeeded, ReorderRule, SkuUpserted, SupplyUpdated,
};
use backorder_runtime::time;
use chrono::Duration;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn write(target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("seed-{name}")), bytes)
}

/// A message behind the byte that picks its subject or kind.
fn picked(pick: u8, message: &impl Message) -> Vec<u8> {
    let mut out = vec![pick];
    out.extend(message.encode_to_vec());
    out
}

fn write_all() -> std::io::Result<()> {
    let customer = messages::customer("C-7", "buyer@example.com", "+4915112345678", "de-DE");
    let order = messages::order(
        "SO-1042",
        customer.clone(),
        &[("CHAIR-OAK", 1200), ("TABLE-ASH", 4), ("LAMP-BRASS", 3)],
    );
    let complete = messages::ship_complete(messages::order(
        "SO-1043",
        messages::customer("C-8", "", "", "en"),
        &[("CHAIR-OAK", 2)],
    ));

    // order-intake: orders as the OMS sends them, one it refuses, and bytes that do not decode.
    write("order_intake", "order", &order.encode_to_vec())?;
    write("order_intake", "ship-complete", &complete.encode_to_vec())?;
    let mut bad = order.clone();
    bad.lines[1].quantity = 0;
    bad.customer.as_mut().unwrap().email = "not-an-address".into();
    write("order_intake", "refused", &bad.encode_to_vec())?;
    let mut truncated = order.encode_to_vec();
    truncated.truncate(truncated.len() / 2);
    write("order_intake", "truncated", &truncated)?;

    // allocation: one message per subject it consumes (the pick byte of allocation_command.rs).
    let accepted = OrderAccepted {
        order: Some(order.clone()),
        accepted_at: Some(time::to_proto(now())),
        digest: backorder_runtime::digest::of(&order),
    };
    let supply = SupplyUpdated {
        po_id: "PO-8100".into(),
        line_no: 1,
        sku: "CHAIR-OAK".into(),
        quantity_open: 60,
        expected_at: Some(time::to_proto(now() + Duration::days(5))),
        cancelled: false,
        request_id: "pr/e-1".into(),
    };
    let sku = SkuUpserted {
        reorder_rule: ReorderRule::MinMax as i32,
        min_level: 10,
        max_level: 50,
        pack_size: 12,
        min_order_quantity: 24,
        safety_stock: 5,
        urgent_shortage: 100,
        ..messages::sku("CHAIR-OAK", true, 500, false)
    };
    let alloc = "allocation_command";
    write(alloc, "order-accepted", &picked(0, &accepted))?;
    let receipt = messages::receipt("RCPT-1", "CHAIR-OAK", 60, "PO-8100");
    write(alloc, "stock-received", &picked(1, &receipt))?;
    let adjustment = messages::adjustment("ADJ-1", "CHAIR-OAK", -3, "damaged");
    write(alloc, "stock-adjusted", &picked(2, &adjustment))?;
    let shipment = messages::shipment("SHIP-1", "SO-1042", &[(1, 700), (2, 1)]);
    write(alloc, "shipment-confirmed", &picked(3, &shipment))?;
    let cancel = messages::cancellation("CXL-1", "SO-1042", &[(2, 1), (3, 0)], "customer asked");
    write(alloc, "order-cancel", &picked(4, &cancel))?;
    write(alloc, "sku-upserted", &picked(5, &sku))?;
    write(alloc, "supply-updated", &picked(6, &supply))?;
    let answer = DelayAnswer {
        answer_id: "ANS-1".into(),
        order_id: "SO-1042".into(),
        agree: true,
    };
    write(alloc, "delay-answer", &picked(7, &answer))?;
    let priority = OrderPriorityChanged {
        request_id: "desk/1".into(),
        order_id: "SO-1042".into(),
        priority: 10,
        reason: "retailer contract (by ops)".into(),
    };
    write(alloc, "order-priority", &picked(8, &priority))?;

    // replenishment-trigger: a product-master upsert, then shortage reports, the second answered by a PO.
    let report =
        |event_id: &str, shortage: i64, answered: &[&str], supply_added: i64| ReorderNeeded {
            sku: "CHAIR-OAK".into(),
            shortage,
            backordered: shortage + 10,
            on_hand: 10,
            inbound: 0,
            event_id: event_id.into(),
            occurred_at: Some(time::to_proto(now())),
            available: 10,
            orders_waiting: 2,
            needed_by: Some(time::to_proto(now() + Duration::days(3))),
            answered_requests: answered.iter().map(|s| s.to_string()).collect(),
            supply_added,
        };
    let first = report("e-1", 490, &[], 0);
    write(
        "replenishment_event",
        "report",
        &frame(&[picked(0, &first)]),
    )?;
    write(
        "replenishment_event",
        "upsert-reports-answer",
        &frame(&[
            picked(1, &sku),
            picked(0, &first),
            picked(0, &report("e-2", 520, &["pr/e-1"], 0)),
            picked(0, &report("e-3", 30, &[], 60)),
        ]),
    )?;
    let policies = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/reorder-policies.toml"),
    )?;
    write("replenishment_policy_file", "deploy-example", &policies)?;

    // notifier: the sample events its template check uses, per kind, with the default quiet hours.
    for kind in [
        "backordered",
        "cancelled",
        "completed",
        "delay_consent_required",
        "eta_changed",
        "preordered",
        "ready_to_ship",
        "shipped",
        "update",
    ] {
        let mut parts = vec![b"21:00-08:00".to_vec()];
        parts.extend(
            notifier::context::sample_events(kind)
                .iter()
                .map(Message::encode_to_vec),
        );
        write("notifier_event", kind, &frame(&parts))?;
    }
    let prefs = |sms_opt_out: bool, days: i64| CustomerPreferences {
        customer_id: "C-7".into(),
        email_opt_out: false,
        sms_opt_out,
        updated_at: Some(time::to_proto(now() + Duration::days(days))),
    };
    write(
        "notifier_preferences",
        "opt-out-then-in",
        &frame(&[
            prefs(true, 0).encode_to_vec(),
            prefs(false, 1).encode_to_vec(),
        ]),
    )?;

    // runtime: the demo's clock step, and a dead letter as the consume loop writes one.
    let clock = ClockAdvanced {
        to: Some(time::to_proto(now() + Duration::days(6))),
    };
    write("runtime_control", "clock", &picked(0, &clock))?;
    let letter = DeadLetter {
        service: "allocation".into(),
        subject: "bo.in.stock.received".into(),
        stream: "BO_IN".into(),
        stream_sequence: 7,
        payload: receipt.encode_to_vec(),
        error: "receipt RCPT-1: quantity must be positive, got 0".into(),
        deliveries: 1,
        failed_at: Some(time::to_proto(now())),
        message_id: "RCPT-1".into(),
    };
    write("runtime_control", "dead-letter", &picked(1, &letter))?;
    Ok(())
}

fuzz_target!(
    init: {
        write_all().expect("seeds written");
        std::process::exit(0);
    },
    |_data: &[u8]| {}
);
