//! Helpers shared by the engine tests: commands, reading lines and the outbox, and the invariants.
#![allow(dead_code)]

use allocation::command::Command;
use allocation::engine::{Applied, Engine};
use backorder_proto::v1::{
    CancelLine, OrderCancelRequested, OrderLine, OrderPlaced, ShipPolicy, ShipmentConfirmed,
    ShipmentLine, SkuUpserted, StockAdjusted, StockReceived,
};
use backorder_proto::{Message, Timestamp};
use backorder_runtime::Subjects;
use sqlx::PgPool;

pub fn engine(pool: &PgPool) -> Engine {
    Engine::new(pool.clone(), Subjects::new("t").unwrap())
}

/// 2026-12-01 00:00 UTC plus `n` days.
pub fn day(n: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
        + chrono::Duration::days(n)
}

/// An engine on a simulated clock that reads `day(n)`; advance it with `engine.clock.advance`.
pub fn at_day(pool: &PgPool, n: i64) -> Engine {
    Engine {
        clock: backorder_runtime::Clock::simulated(day(n)),
        ..engine(pool)
    }
}

pub fn order(id: &str, priority: i32, placed_at: i64, lines: &[(&str, i64)]) -> Command {
    Command::AcceptOrder {
        order: OrderPlaced {
            order_id: id.into(),
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, (sku, quantity))| OrderLine {
                    line_no: i as u32 + 1,
                    sku: sku.to_string(),
                    quantity: *quantity,
                })
                .collect(),
            priority,
            placed_at: Some(Timestamp {
                seconds: 1_700_000_000 + placed_at,
                nanos: 0,
            }),
            ..Default::default()
        },
        digest: String::new(),
    }
}

pub fn adjust(id: &str, sku: &str, delta: i64) -> Command {
    Command::AdjustStock(StockAdjusted {
        adjustment_id: id.into(),
        sku: sku.into(),
        delta,
        reason: "count".into(),
    })
}

pub fn receive(id: &str, sku: &str, quantity: i64) -> Command {
    Command::ReceiveStock(StockReceived {
        receipt_id: id.into(),
        sku: sku.into(),
        quantity,
        ..Default::default()
    })
}

pub fn ship(id: &str, order_id: &str, lines: &[(u32, i64)]) -> Command {
    Command::ConfirmShipment {
        shipment: ShipmentConfirmed {
            shipment_id: id.into(),
            order_id: order_id.into(),
            lines: lines
                .iter()
                .map(|(line_no, quantity)| ShipmentLine {
                    line_no: *line_no,
                    quantity: *quantity,
                })
                .collect(),
            shipped_at: None,
        },
        shipped_at: chrono::Utc::now(),
    }
}

pub fn ship_complete(command: Command) -> Command {
    match command {
        Command::AcceptOrder { order, digest } => Command::AcceptOrder {
            order: OrderPlaced {
                ship_policy: ShipPolicy::ShipComplete as i32,
                ..order
            },
            digest,
        },
        other => other,
    }
}

/// `lines` empty: the whole order; a quantity of 0: the whole line.
pub fn cancel(id: &str, order_id: &str, lines: &[(u32, i64)]) -> Command {
    Command::CancelOrder(OrderCancelRequested {
        request_id: id.into(),
        order_id: order_id.into(),
        lines: lines
            .iter()
            .map(|(line_no, quantity)| CancelLine {
                line_no: *line_no,
                quantity: *quantity,
            })
            .collect(),
        reason: "customer changed their mind".into(),
    })
}

pub fn sku_rule(
    sku: &str,
    backorderable: bool,
    max_backorder: i64,
    preorder: bool,
    sequence: u64,
) -> Command {
    Command::UpsertSku {
        sku: SkuUpserted {
            sku: sku.into(),
            backorderable,
            max_backorder_quantity: max_backorder,
            preorder,
            ..Default::default()
        },
        sequence,
        published: chrono::DateTime::UNIX_EPOCH,
    }
}

pub async fn apply(pool: &PgPool, commands: &[Command]) -> Vec<Applied> {
    engine(pool).apply(commands).await.unwrap()
}

/// (allocated, backordered, shipped) of a line.
pub async fn line(pool: &PgPool, order_id: &str, line_no: i32) -> (i64, i64, i64) {
    let (allocated, backordered, shipped, _, _) = line_in_full(pool, order_id, line_no).await;
    (allocated, backordered, shipped)
}

/// (allocated, backordered, shipped, cancelled, released) of a line.
pub async fn line_in_full(
    pool: &PgPool,
    order_id: &str,
    line_no: i32,
) -> (i64, i64, i64, i64, i64) {
    sqlx::query_as(
        "select allocated, backordered, shipped, cancelled, released from order_lines
         where order_id = $1 and line_no = $2",
    )
    .bind(order_id)
    .bind(line_no)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Decoded outbox messages on `subject`, oldest first.
pub async fn outbox<M: Message + Default>(pool: &PgPool, subject: &str) -> Vec<M> {
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("select payload from outbox where subject = $1 order by id")
            .bind(subject)
            .fetch_all(pool)
            .await
            .unwrap();
    rows.iter()
        .map(|r| M::decode(r.as_slice()).unwrap())
        .collect()
}

/// The invariants that must hold after anything (see `allocation::invariants`).
pub async fn assert_invariants(pool: &PgPool) {
    let broken = allocation::invariants::violations(pool).await.unwrap();
    assert!(broken.is_empty(), "invariants broken: {broken:#?}");
}

/// A purchase-order line of `open` units of `sku` expected on `day(expected)`; `sequence` orders updates.
pub fn supply(po: &str, sku: &str, open: i64, expected: i64, sequence: u64) -> Command {
    Command::UpdateSupply {
        supply: backorder_proto::v1::SupplyUpdated {
            po_id: po.into(),
            line_no: 1,
            sku: sku.into(),
            quantity_open: open,
            expected_at: Some(backorder_runtime::time::to_proto(day(expected))),
            cancelled: false,
            request_id: String::new(),
        },
        sequence,
        published: chrono::DateTime::UNIX_EPOCH,
    }
}

pub fn receive_on_po(id: &str, sku: &str, quantity: i64, po: &str) -> Command {
    Command::ReceiveStock(StockReceived {
        receipt_id: id.into(),
        sku: sku.into(),
        quantity,
        po_id: po.into(),
        ..Default::default()
    })
}

pub fn delay_answer(id: &str, order_id: &str, agree: bool) -> Command {
    Command::AnswerDelay(backorder_proto::v1::DelayAnswer {
        answer_id: id.into(),
        order_id: order_id.into(),
        agree,
    })
}

/// Moves the engine's simulated clock to `day(n)`, firing every timer due on the way, each at its own time
/// (as the service's timer loop does).
pub async fn run_clock_to(engine: &Engine, n: i64) {
    engine.clock.advance(day(n)).unwrap();
    let mut fired = 0;
    while let Some(due) = engine.next_due().await.unwrap() {
        if due > engine.clock.now() {
            break;
        }
        fired += 1;
        assert!(fired < 1000, "a timer at {due} does not move on when fired");
        engine.tick(due).await.unwrap();
    }
}
