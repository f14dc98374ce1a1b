//! allocation's decoder: `Command::decode` for every subject it consumes (the first byte picks the subject,
//! the rest is the payload), then the pure rules the engine runs on the decoded command, with state made
//! from the command itself (the stock a receipt brings, a queue behind a new supply line or lead time).
//!
//! Besides not panicking: a refusal is cut, and the rules keep their invariants (a split adds up to the
//! line, ETAs never fall before now and never decrease along the queue).
#![no_main]

use std::collections::{BTreeMap, HashMap};

use allocation::command::Command;
use allocation::eta::{self, Settings, Supply, Waiting};
use allocation::rules::{self, LineUnits, LineView, Queued, Room, Shippable};
use backorder_fuzz::{MAX_REASON_LEN, now};
use backorder_proto::v1::ShipPolicy;
use backorder_runtime::{Subjects, limits, time};
use chrono::Duration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let subjects = Subjects::new("fz").expect("a valid prefix");
    let subject = match pick % 10 {
        0 => subjects.order_accepted(),
        1 => subjects.stock_received(),
        2 => subjects.stock_adjusted(),
        3 => subjects.shipment_confirmed(),
        4 => subjects.order_cancel(),
        5 => subjects.sku_upserted(),
        6 => subjects.supply_updated(),
        7 => subjects.delay_answer(),
        8 => subjects.order_priority(),
        // A subject allocation does not consume.
        _ => subjects.order_placed(),
    };
    let command = match Command::decode(&subjects, &subject, payload, now(), u64::from(pick)) {
        Ok(command) => command,
        Err(reason) => {
            assert!(
                reason.len() <= MAX_REASON_LEN,
                "reason not cut: {} bytes: {reason:.200}",
                reason.len()
            );
            return;
        }
    };
    let _ = (
        command.message_id(),
        command.named_skus(),
        command.named_order(),
        command.order_id(),
    );
    assert_eq!(command.subject(&subjects), subject);
    rules_on(&command);
});

/// The engine's default policy's settings for a SKU with `lead_time_days` of its own.
fn settings(lead_time_days: Option<i32>) -> Settings {
    allocation::engine::Policy::default().settings(lead_time_days)
}

/// ETAs of a small queue against `supply`, checked for the projection's promises.
fn project(supply: &[Supply], settings: &Settings) {
    let queue: Vec<Waiting> = [3, 1_000, 7]
        .into_iter()
        .map(|units| Waiting {
            units,
            current: None,
        })
        .collect();
    let etas = eta::project(now(), &queue, supply, settings);
    assert_eq!(etas.len(), queue.len());
    for pair in etas.windows(2) {
        assert!(pair[0].at <= pair[1].at, "ETAs decrease along the queue");
    }
    assert!(etas.iter().all(|e| e.at >= now()), "an ETA before now");
    let _ = eta::next_check(now(), supply, &etas, settings);
    // Projected again, with the estimates it gave as the current ones (the next projection of the SKU).
    let again: Vec<Waiting> = queue
        .iter()
        .zip(&etas)
        .map(|(w, e)| Waiting {
            units: w.units,
            current: Some(e.clone()),
        })
        .collect();
    let _ = eta::project(now() + Duration::days(1), &again, supply, settings);
}

/// Units the store can hold for a line: orders come through order-intake, which bounds each line.
fn stored(units: i64) -> i64 {
    units.clamp(0, limits::MAX_QUANTITY)
}

fn rules_on(command: &Command) {
    match command {
        Command::AcceptOrder { order, .. } => {
            // Half of each line in stock, room for a quarter more on backorder.
            let mut available: HashMap<String, i64> = order
                .lines
                .iter()
                .map(|l| (l.sku.clone(), l.quantity / 2))
                .collect();
            let mut room: HashMap<String, Room> = order
                .lines
                .iter()
                .map(|l| (l.sku.clone(), Room::Limited(l.quantity / 4)))
                .collect();
            let splits = rules::split_order(
                order.lines.iter().map(|l| (l.sku.as_str(), l.quantity)),
                &mut available,
                &mut room,
            );
            let units: Vec<LineUnits> = order
                .lines
                .iter()
                .zip(&splits)
                .map(|(l, s)| LineUnits {
                    ordered: l.quantity,
                    allocated: s.allocated,
                    backordered: s.backordered,
                    shipped: 0,
                    cancelled: s.cancelled,
                })
                .collect();
            for u in &units {
                assert!(u.adds_up(), "a split that does not add up: {u:?}");
            }
            // The engine's totals for the log line (engine/intake.rs).
            let _: i64 = splits.iter().map(|s| s.allocated).sum();
            let _: i64 = splits.iter().map(|s| s.backordered).sum();
            let _ = rules::order_status(&units, false);
            let _ = rules::releasable(order.ship_policy == ShipPolicy::ShipComplete as i32, &units);
            let after: Vec<LineView> = units
                .iter()
                .map(|u| LineView {
                    units: *u,
                    released: u.allocated,
                    preorder: false,
                })
                .collect();
            let before = vec![LineView::default(); after.len()];
            let _ = rules::notices(&before, &after);
            // The new backorders, as the engine appends them to the SKUs' queues.
            let waiting: Vec<Waiting> = splits
                .iter()
                .map(|s| Waiting {
                    units: s.backordered,
                    current: None,
                })
                .collect();
            let _ = eta::project(now(), &waiting, &[], &settings(None));
        }
        Command::ReceiveStock(receipt) => {
            let queue: Vec<Queued> = (1..=3)
                .map(|i| Queued {
                    order_id: format!("O-{i}"),
                    line_no: i,
                    units: receipt.quantity / 2,
                })
                .collect();
            let fills = rules::fill_queue(receipt.quantity, &queue);
            let given: i64 = fills.iter().map(|f| f.quantity).sum();
            assert!(given <= receipt.quantity, "more given than received");
            let _ = rules::shortage(receipt.quantity, given, 0);
        }
        Command::AdjustStock(adjustment) => {
            let _ = rules::shortage(1_000, adjustment.delta, 0);
            let _ = rules::fill_queue(adjustment.delta, &[]);
        }
        Command::ConfirmShipment { shipment, .. } => {
            let lines: HashMap<i32, Shippable> = shipment
                .lines
                .iter()
                .map(|l| {
                    (
                        l.line_no as i32,
                        Shippable {
                            allocated: stored(l.quantity),
                            released: stored(l.quantity),
                        },
                    )
                })
                .collect();
            let shipped: Vec<(i32, i64)> = shipment
                .lines
                .iter()
                .map(|l| (l.line_no as i32, l.quantity))
                .collect();
            if rules::check_shipment(&lines, &shipped).is_ok() {
                let _: i64 = shipped.iter().map(|s| s.1).sum();
            }
        }
        Command::CancelOrder(cancel) => {
            let lines: BTreeMap<i32, LineUnits> = cancel
                .lines
                .iter()
                .map(|l| {
                    let q = stored(l.quantity).max(1);
                    (
                        l.line_no as i32,
                        LineUnits {
                            ordered: q,
                            allocated: q / 2,
                            backordered: q - q / 2,
                            shipped: 0,
                            cancelled: 0,
                        },
                    )
                })
                .collect();
            let requested: Vec<(i32, i64)> = cancel
                .lines
                .iter()
                .map(|l| (l.line_no as i32, l.quantity))
                .collect();
            if let Ok(plan) = rules::plan_cancel(&lines, &requested) {
                let _: i64 = plan
                    .iter()
                    .map(|c| c.from_allocated + c.from_backordered)
                    .sum();
            }
        }
        Command::UpsertSku { sku, .. } => project(&[], &settings(Some(sku.lead_time_days))),
        Command::UpdateSupply { supply, .. } => {
            if supply.cancelled {
                return;
            }
            let expected_at = supply
                .expected_at
                .as_ref()
                .and_then(time::from_proto)
                .expect("decode checks expected_at");
            let line = Supply {
                id: format!("{}/{}", supply.po_id, supply.line_no),
                expected_at,
                open: supply.quantity_open,
            };
            project(std::slice::from_ref(&line), &settings(None));
        }
        Command::AnswerDelay(_) => {}
        // Bounded where it decodes; the engine only stores it and re-projects the queues it moves.
        Command::ChangePriority(change) => {
            assert!(limits::PRIORITIES.contains(&change.priority));
        }
        // Refused by name: the engine records the refusal and runs no rule.
        Command::Refuse { reason, .. } => assert!(
            reason.len() <= MAX_REASON_LEN,
            "reason not cut: {} bytes: {reason:.200}",
            reason.len()
        ),
    }
}
