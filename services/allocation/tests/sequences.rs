//! Property test over random sequences of operations against the real engine and Postgres: orders (some
//! ship-complete, some high priority), receipts, corrections up and down, shipments (some bad), cancellations
//! (some impossible), SKU rule changes, purchase orders created and re-dated, and the clock moving on, applied
//! alone or in batches and redelivered at random. After every step the books' invariants hold; every waiting
//! line has a date after now, never earlier than a line ahead of it; a step that gives stock out gives it to
//! the head of the queue; a correction down takes from the weakest claims; a redelivery changes nothing.
//!
//! The sequences come from proptest strategies; each case runs on a fresh store in the test's own database.
//! A failing case prints its whole sequence.

mod common;

use std::collections::HashMap;

use allocation::command::Command;
use allocation::engine::{Applied, Engine};
use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use sqlx::PgPool;

const SKUS: [&str; 3] = ["A", "B", "C"];

#[derive(Debug, Clone)]
enum Op {
    Place {
        priority: i32,
        ship_complete: bool,
        lines: Vec<(usize, i64)>,
    },
    Receive {
        sku: usize,
        quantity: i64,
    },
    Adjust {
        sku: usize,
        delta: i64,
    },
    /// Ships up to `quantity` of each released line of an order; `too_much` ships one more than released.
    Ship {
        order: usize,
        quantity: i64,
        too_much: bool,
    },
    /// `line` None: the whole order.
    Cancel {
        order: usize,
        line: Option<u32>,
        quantity: i64,
    },
    Rule {
        sku: usize,
        backorderable: bool,
        cap: i64,
    },
    /// A purchase-order line (one of a few per SKU) created or re-dated: `open` units in `days` from now.
    Supply {
        sku: usize,
        po: usize,
        open: i64,
        days: i64,
    },
    /// The clock moves on by `hours`; the timers due on the way fire.
    Clock {
        hours: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i32..3, proptest::bool::weighted(0.3), proptest::collection::vec((0usize..3, 1i64..8), 1..4))
            .prop_map(|(priority, ship_complete, lines)| Op::Place { priority, ship_complete, lines }),
        2 => (0usize..3, 1i64..12).prop_map(|(sku, quantity)| Op::Receive { sku, quantity }),
        2 => (0usize..3, -10i64..10).prop_filter("a correction changes something", |(_, d)| *d != 0)
            .prop_map(|(sku, delta)| Op::Adjust { sku, delta }),
        2 => (0usize..50, 1i64..6, proptest::bool::weighted(0.1))
            .prop_map(|(order, quantity, too_much)| Op::Ship { order, quantity, too_much }),
        1 => (0usize..50, proptest::option::of(1u32..4), 0i64..6)
            .prop_map(|(order, line, quantity)| Op::Cancel { order, line, quantity }),
        1 => (0usize..3, proptest::bool::weighted(0.8), 0i64..10)
            .prop_map(|(sku, backorderable, cap)| Op::Rule { sku, backorderable, cap }),
        2 => (0usize..3, 0usize..3, 0i64..15, 0i64..20)
            .prop_map(|(sku, po, open, days)| Op::Supply { sku, po, open, days }),
        1 => (1i64..200).prop_map(|hours| Op::Clock { hours }),
    ]
}

/// Steps: a batch of one to three operations, and whether it is delivered a second time.
fn steps() -> impl Strategy<Value = Vec<(Vec<Op>, bool)>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(op(), 1..4),
            proptest::bool::weighted(0.2),
        ),
        10..40,
    )
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Line {
    order_id: String,
    line_no: i32,
    sku: String,
    ordered: i64,
    allocated: i64,
    backordered: i64,
    shipped: i64,
    cancelled: i64,
    released: i64,
}

async fn lines(pool: &PgPool) -> HashMap<(String, i32), Line> {
    let rows: Vec<Line> = sqlx::query_as(
        "select order_id, line_no, sku, ordered, allocated, backordered, shipped, cancelled, released
         from order_lines",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|l| ((l.order_id.clone(), l.line_no), l))
        .collect()
}

/// The queue a fill walks, or the tail a take-back walks, as (order, line, units), in walking order.
async fn walk(pool: &PgPool, sku: &str, take_back: bool) -> Vec<(String, i32, i64)> {
    let query = if take_back {
        "select order_id, line_no, allocated from order_lines where sku = $1 and allocated > 0
         order by priority, allocated_at desc nulls last, placed_at desc, order_id desc, line_no desc"
    } else {
        "select order_id, line_no, backordered from order_lines where sku = $1 and backordered > 0
         order by priority desc, placed_at, order_id, line_no"
    };
    sqlx::query_as(query)
        .bind(sku)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Units moved along a walk must form a prefix: every line served in full until one that is served in part
/// or not at all, and nothing after it.
fn assert_prefix(walked: &[(String, i32, i64)], moved: impl Fn(&str, i32) -> i64, what: &str) {
    let mut stopped = false;
    for (order_id, line_no, units) in walked {
        let m = moved(order_id, *line_no);
        assert!(
            m >= 0 && m <= *units,
            "{what}: {order_id}/{line_no} moved {m} of {units}"
        );
        if stopped {
            assert_eq!(
                m, 0,
                "{what}: {order_id}/{line_no} was served after a line left short"
            );
        }
        if m < *units {
            stopped = true;
        }
    }
}

async fn outbox_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from outbox")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Turns an operation into a command against the current store; None when it names an order that does not
/// exist yet, or moves the clock.
async fn command(
    engine: &Engine,
    op: &Op,
    step: usize,
    orders: &mut Vec<String>,
) -> Option<Command> {
    let pool = &engine.pool;
    let id = format!("{step}-{}", orders.len());
    let existing = |i: usize| orders.get(i % orders.len().max(1)).cloned();
    Some(match op {
        Op::Place {
            priority,
            ship_complete: complete,
            lines,
        } => {
            let order_id = format!("SO-{:03}", orders.len());
            orders.push(order_id.clone());
            let lines: Vec<(&str, i64)> = lines.iter().map(|(s, q)| (SKUS[*s], *q)).collect();
            let placed = order(&order_id, *priority, step as i64, &lines);
            if *complete {
                ship_complete(placed)
            } else {
                placed
            }
        }
        Op::Receive { sku, quantity } => receive(&format!("R-{id}"), SKUS[*sku], *quantity),
        Op::Adjust { sku, delta } => adjust(&format!("ADJ-{id}"), SKUS[*sku], *delta),
        Op::Ship {
            order,
            quantity,
            too_much,
        } => {
            let order_id = existing(*order)?;
            let released: Vec<(i32, i64)> = sqlx::query_as(
                "select line_no, released from order_lines where order_id = $1 and released > 0 order by line_no",
            )
            .bind(&order_id)
            .fetch_all(pool)
            .await
            .unwrap();
            let lines: Vec<(u32, i64)> = released
                .iter()
                .map(|(l, r)| {
                    (
                        *l as u32,
                        if *too_much {
                            r + 1
                        } else {
                            (*r).min(*quantity)
                        },
                    )
                })
                .collect();
            ship(&format!("S-{id}"), &order_id, &lines)
        }
        Op::Cancel {
            order,
            line,
            quantity,
        } => {
            let order_id = existing(*order)?;
            let lines: Vec<(u32, i64)> = line.map(|l| vec![(l, *quantity)]).unwrap_or_default();
            cancel(&format!("C-{id}"), &order_id, &lines)
        }
        Op::Rule {
            sku,
            backorderable,
            cap,
        } => sku_rule(SKUS[*sku], *backorderable, *cap, false, step as u64 + 1),
        Op::Supply {
            sku,
            po,
            open,
            days,
        } => {
            let expected = engine.clock.now() + chrono::Duration::days(*days);
            Command::UpdateSupply {
                supply: backorder_proto::v1::SupplyUpdated {
                    po_id: format!("PO-{}-{po}", SKUS[*sku]),
                    line_no: 1,
                    sku: SKUS[*sku].into(),
                    quantity_open: *open,
                    expected_at: Some(backorder_runtime::time::to_proto(expected)),
                    cancelled: false,
                    request_id: String::new(),
                },
                sequence: step as u64 + 1,
                published: chrono::DateTime::UNIX_EPOCH,
            }
        }
        Op::Clock { hours } => {
            let to = engine.clock.now() + chrono::Duration::hours(*hours);
            engine.clock.advance(to).unwrap();
            let mut fired = Vec::new();
            while let Some(due) = engine.next_due().await.unwrap() {
                if due > to {
                    break;
                }
                // A timer that does not move on when fired would fire for ever.
                assert!(
                    fired.len() < 1000,
                    "timers do not move on: {:?}",
                    &fired[990..]
                );
                fired.push(due);
                engine.tick(due).await.unwrap();
            }
            return None;
        }
    })
}

/// Every waiting line has a date after now, and dates never decrease along a SKU's queue.
async fn assert_promises(engine: &Engine, step: usize) {
    let rows: Vec<(String, String, i32, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "select sku, order_id, line_no, eta from order_lines where backordered > 0
         order by sku, priority desc, placed_at, order_id, line_no",
    )
    .fetch_all(&engine.pool)
    .await
    .unwrap();
    let now = engine.clock.now();
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.0 == b.0 {
            assert!(
                a.3 <= b.3,
                "step {step}: {}/{} is due after {}/{} behind it",
                a.1,
                a.2,
                b.1,
                b.2
            );
        }
    }
    for (sku, order_id, line_no, eta) in rows {
        assert!(
            eta.is_some_and(|eta| eta > now),
            "step {step}: {order_id}/{line_no} of {sku} waits with the date {eta:?}, now is {now}"
        );
    }
}

async fn run_case(pool: &PgPool, case: &[(Vec<Op>, bool)]) {
    sqlx::query(
        "truncate stock, orders, order_lines, allocations, allocation_lines, shipments, line_history,
                  processed_messages, outbox, skus, demand, allocation_cancellations,
                  allocation_cancellation_lines, supply, pending_requests, lost_units
         restart identity cascade",
    )
    .execute(pool)
    .await
    .unwrap();
    let engine = at_day(pool, 0);
    let mut orders = Vec::new();
    for (step, (ops, redeliver)) in case.iter().enumerate() {
        let mut batch = Vec::new();
        for op in ops {
            if let Some(command) = command(&engine, op, step, &mut orders).await {
                batch.push(command);
            }
        }
        assert_promises(&engine, step).await;
        if batch.is_empty() {
            continue;
        }
        let before = lines(pool).await;
        // For a single command, what its walk looked like before it ran.
        let walked = match (ops.as_slice(), batch.len()) {
            ([Op::Receive { sku, .. }], 1) => Some((walk(pool, SKUS[*sku], false).await, false)),
            ([Op::Adjust { sku, delta }], 1) if *delta > 0 => {
                Some((walk(pool, SKUS[*sku], false).await, false))
            }
            ([Op::Adjust { sku, .. }], 1) => Some((walk(pool, SKUS[*sku], true).await, true)),
            _ => None,
        };

        engine.apply(&batch).await.unwrap();
        assert_invariants(pool).await;
        assert_promises(&engine, step).await;
        let after = lines(pool).await;
        for (key, old) in &before {
            let new = &after[key];
            assert_eq!((new.ordered, &new.sku), (old.ordered, &old.sku), "{key:?}");
            assert!(
                new.shipped >= old.shipped && new.cancelled >= old.cancelled,
                "{key:?}"
            );
        }
        if let Some((walked, take_back)) = walked {
            let moved = |order_id: &str, line_no: i32| {
                let key = (order_id.to_string(), line_no);
                if take_back {
                    before[&key].allocated - after[&key].allocated
                } else {
                    before[&key].backordered - after[&key].backordered
                }
            };
            assert_prefix(&walked, moved, if take_back { "take-back" } else { "fill" });
        }

        if *redeliver {
            let outbox = outbox_count(pool).await;
            let again = engine.apply(&batch).await.unwrap();
            assert!(
                again.iter().all(|a| *a == Applied::Duplicate),
                "step {step}: a redelivery is a duplicate: {again:?}"
            );
            assert_eq!(
                lines(pool).await,
                after,
                "step {step}: a redelivery changed lines"
            );
            assert_eq!(
                outbox_count(pool).await,
                outbox,
                "step {step}: a redelivery emitted"
            );
        }
    }
}

#[sqlx::test]
async fn random_sequences_keep_every_invariant(pool: PgPool) {
    let config = Config {
        cases: 32,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let strategy = steps();
    for _ in 0..config.cases {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let outcome = tokio::spawn({
            let pool = pool.clone();
            let case = case.clone();
            async move { run_case(&pool, &case).await }
        })
        .await;
        if let Err(panic) = outcome {
            panic!("failed on the sequence {case:#?}: {panic}");
        }
    }
}
