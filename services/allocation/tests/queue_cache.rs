//! Waiting queues kept across batches (`engine/queues.rs`) against a real Postgres: a queue is taken from the
//! cache only while the SKU's stock row is at the version it was kept at, so an instance re-projects from what
//! another instance changed since, not from the queue it kept.

mod common;

use allocation::command::Command;
use allocation::engine::Engine;
use backorder_proto::v1::OrderPriorityChanged;
use common::*;
use sqlx::PgPool;

/// (ETA day, estimated) of line 1 of an order.
async fn eta(pool: &PgPool, order_id: &str) -> (Option<i64>, bool) {
    let (eta, estimated): (Option<chrono::DateTime<chrono::Utc>>, bool) = sqlx::query_as(
        "select eta, eta_estimated from order_lines where order_id = $1 and line_no = 1",
    )
    .bind(order_id)
    .fetch_one(pool)
    .await
    .unwrap();
    (eta.map(|at| (at - day(0)).num_days()), estimated)
}

async fn run(engine: &Engine, commands: &[Command]) {
    engine.apply(commands).await.unwrap();
}

#[sqlx::test]
async fn an_instance_reprojects_from_what_another_instance_changed_not_from_the_queue_it_kept(
    pool: PgPool,
) {
    let a = at_day(&pool, 0);
    // Another instance on the same database, with queues of its own.
    let b = Engine {
        queues: Default::default(),
        ..a.clone()
    };
    // Nothing in stock: A, B and C wait on S in that order; one unit on a PO for day 10 covers A.
    run(
        &a,
        &[
            order("A", 0, 0, &[("S", 1)]),
            order("B", 0, 1, &[("S", 1)]),
            order("C", 0, 2, &[("S", 1)]),
            supply("PO", "S", 1, 10, 1),
        ],
    )
    .await;
    assert_eq!(eta(&pool, "A").await, (Some(11), false));
    assert!(eta(&pool, "C").await.1, "C waits on an estimate");

    // Re-dated to its own date: nothing moves, and the first instance keeps the queue as it read it.
    run(&a, &[supply("PO", "S", 1, 10, 2)]).await;
    if cfg!(debug_assertions) {
        // Release builds keep only long queues (MIN_LINES).
        assert_eq!(a.queues.lines(), 3, "the queue of S is kept");
    }

    // The other instance raises C: it is first in S's queue now.
    run(
        &b,
        &[Command::ChangePriority(OrderPriorityChanged {
            request_id: "raise-C".into(),
            order_id: "C".into(),
            priority: 5,
            reason: "key account".into(),
        })],
    )
    .await;
    assert_eq!(eta(&pool, "C").await, (Some(11), false));

    // The PO slips to day 12: the first instance must date C by it, not A as its kept queue had it.
    run(&a, &[supply("PO", "S", 1, 12, 3)]).await;
    assert_eq!(eta(&pool, "C").await, (Some(13), false));
    assert!(eta(&pool, "A").await.1, "A waits on an estimate now");
    assert!(eta(&pool, "B").await.1, "B waits on an estimate");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_queue_kept_by_an_instance_is_dropped_when_the_same_instance_changes_it(pool: PgPool) {
    let engine = at_day(&pool, 0);
    run(
        &engine,
        &[
            order("A", 0, 0, &[("S", 1)]),
            order("B", 0, 1, &[("S", 1)]),
            supply("PO", "S", 1, 10, 1),
        ],
    )
    .await;
    run(&engine, &[supply("PO", "S", 1, 10, 2)]).await;
    // A is cancelled: B is the head of the queue, and the next re-projection dates it by the PO.
    run(&engine, &[cancel("cancel-A", "A", &[(1, 1)])]).await;
    run(&engine, &[supply("PO", "S", 1, 12, 3)]).await;
    assert_eq!(eta(&pool, "B").await, (Some(13), false));
    assert_invariants(&pool).await;
}
