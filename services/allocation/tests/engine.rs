//! The engine against a real Postgres: each test gets its own database from `#[sqlx::test]`, migrated.

mod common;

use allocation::engine::Applied;
use backorder_proto::v1::{
    AllocationCreated, CustomerEvent, OrderStatus, ReorderNeeded, customer_event::Kind,
    order_status::Status,
};
use common::*;
use sqlx::PgPool;

#[sqlx::test]
async fn given_70_in_stock_an_order_of_100_allocates_70_and_backorders_30(pool: PgPool) {
    apply(&pool, &[adjust("init", "SKU-A", 70)]).await;
    let applied = apply(&pool, &[order("SO-1", 0, 0, &[("SKU-A", 100)])]).await;
    assert_eq!(applied, [Applied::Done]);
    assert_eq!(line(&pool, "SO-1", 1).await, (70, 30, 0));

    let allocations: Vec<AllocationCreated> = outbox(&pool, "t.out.allocation").await;
    assert_eq!(allocations.len(), 1);
    assert_eq!(allocations[0].lines[0].quantity, 70);
    let statuses: Vec<OrderStatus> = outbox(&pool, "t.out.order.status").await;
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        (statuses[0].status(), statuses[0].version),
        (Status::PartiallyAllocated, 1)
    );
    let events: Vec<CustomerEvent> = outbox(&pool, "t.customer.event").await;
    assert_eq!(events[0].kind(), Kind::Backordered);
    assert_eq!(
        (events[0].lines[0].quantity, events[0].lines[0].allocated),
        (30, 70)
    );
    let reorders: Vec<ReorderNeeded> = outbox(&pool, "t.reorder.needed").await;
    assert_eq!(
        (
            reorders[0].sku.as_str(),
            reorders[0].shortage,
            reorders[0].backordered
        ),
        ("SKU-A", 30, 30)
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_receipt_fills_backorders_by_priority_then_first_come_first_served(pool: PgPool) {
    apply(
        &pool,
        &[
            order("SO-1", 0, 1, &[("SKU-A", 20)]),
            order("SO-2", 0, 2, &[("SKU-A", 25)]),
            order("SO-3", 5, 3, &[("SKU-A", 4)]),
        ],
    )
    .await;
    apply(&pool, &[receive("R-1", "SKU-A", 30)]).await;
    // The priority-5 order came last but is served first; then SO-1 in full, then SO-2 with the rest.
    assert_eq!(line(&pool, "SO-3", 1).await, (4, 0, 0));
    assert_eq!(line(&pool, "SO-1", 1).await, (20, 0, 0));
    assert_eq!(line(&pool, "SO-2", 1).await, (6, 19, 0));
    let why: Vec<String> =
        sqlx::query_scalar("select detail from line_history where change = 'filled' order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        why,
        [
            "queue position 1 at priority 5",
            "queue position 2 at priority 0",
            "queue position 3 at priority 0"
        ]
    );
    let ready: Vec<CustomerEvent> = outbox(&pool, "t.customer.event").await;
    assert_eq!(
        ready
            .iter()
            .filter(|e| e.kind() == Kind::ReadyToShip)
            .count(),
        3
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_redelivered_message_and_a_second_order_with_the_same_id_change_nothing(pool: PgPool) {
    let first = [
        adjust("init", "SKU-A", 10),
        order("SO-1", 0, 0, &[("SKU-A", 5)]),
    ];
    assert_eq!(apply(&pool, &first).await, [Applied::Done, Applied::Done]);
    let outbox_rows = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from outbox")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let before = outbox_rows().await;
    assert_eq!(
        apply(&pool, &first).await,
        [Applied::Duplicate, Applied::Duplicate]
    );
    // Same order id, other content: refused as a conflict (tests/hardening.rs), nothing allocated; the OMS is
    // told once.
    assert!(matches!(
        &apply(&pool, &[order("SO-1", 0, 0, &[("SKU-A", 7)])]).await[..],
        [Applied::Refused(_)]
    ));
    assert_eq!(
        apply(&pool, &[order("SO-1", 0, 0, &[("SKU-A", 7)])]).await,
        [Applied::Duplicate]
    );
    let before = before + 1;
    // And twice in one batch.
    assert_eq!(
        apply(&pool, &[receive("R", "SKU-A", 1), receive("R", "SKU-A", 1)]).await,
        [Applied::Done, Applied::Duplicate]
    );
    assert_eq!(outbox_rows().await, before);
    let on_hand: i64 = sqlx::query_scalar("select on_hand from stock where sku = 'SKU-A'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(on_hand, 11);
    assert_eq!(line(&pool, "SO-1", 1).await, (5, 0, 0));
}

#[sqlx::test]
async fn shipments_complete_the_order_and_bad_ones_are_refused_without_effect(pool: PgPool) {
    apply(
        &pool,
        &[
            adjust("init", "SKU-A", 70),
            order("SO-1", 0, 0, &[("SKU-A", 100)]),
        ],
    )
    .await;
    let refused = apply(
        &pool,
        &[
            ship("S-bad", "SO-1", &[(1, 71)]),
            ship("S-none", "SO-9", &[(1, 1)]),
        ],
    )
    .await;
    assert!(
        matches!(&refused[0], Applied::Refused(r) if r.contains("71 shipped but only 70 released")),
        "{refused:?}"
    );
    assert!(
        matches!(&refused[1], Applied::Refused(r) if r.contains("order SO-9 is unknown")),
        "{refused:?}"
    );

    apply(&pool, &[ship("S-1", "SO-1", &[(1, 70)])]).await;
    apply(&pool, &[receive("R-1", "SKU-A", 30)]).await;
    assert_eq!(line(&pool, "SO-1", 1).await, (30, 0, 70));
    apply(&pool, &[ship("S-2", "SO-1", &[(1, 30)])]).await;
    assert_eq!(line(&pool, "SO-1", 1).await, (0, 0, 100));

    let statuses: Vec<OrderStatus> = outbox(&pool, "t.out.order.status").await;
    let seen: Vec<(Status, u64)> = statuses.iter().map(|s| (s.status(), s.version)).collect();
    assert_eq!(
        seen,
        [
            (Status::PartiallyAllocated, 1),
            (Status::PartiallyShipped, 2),
            (Status::PartiallyShipped, 3),
            (Status::Completed, 4)
        ]
    );
    let kinds: Vec<Kind> = outbox::<CustomerEvent>(&pool, "t.customer.event")
        .await
        .iter()
        .map(|e| e.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            Kind::Backordered,
            Kind::Shipped,
            Kind::ReadyToShip,
            Kind::Completed
        ]
    );
    // A shipment that is redelivered after the order completed changes nothing.
    assert_eq!(
        apply(&pool, &[ship("S-2", "SO-1", &[(1, 30)])]).await,
        [Applied::Duplicate]
    );
    assert_invariants(&pool).await;
}

/// Two engines on one database, racing over the same SKUs with orders, receipts and shipments: no unit is
/// given twice, nothing deadlocks, every line adds up.
#[sqlx::test]
async fn two_engines_racing_over_the_same_skus_keep_the_books_straight(pool: PgPool) {
    let skus = ["A", "B", "C"];
    apply(&pool, &skus.map(|s| adjust(&format!("init-{s}"), s, 20))).await;
    let mut tasks = Vec::new();
    for worker in 0..2 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..30 {
                let id = format!("SO-{worker}-{round}");
                // Lines over the SKUs in a different order per worker, to tempt a deadlock.
                let (a, b) = if worker == 0 {
                    (skus[round % 3], skus[(round + 1) % 3])
                } else {
                    (skus[(round + 1) % 3], skus[round % 3])
                };
                let batch = [
                    order(&id, (round % 3) as i32, round as i64, &[(a, 3), (b, 2)]),
                    receive(&format!("R-{worker}-{round}"), b, 2),
                    adjust(&format!("adj-{worker}-{round}"), a, 1),
                ];
                engine(&pool).apply(&batch).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let orders: i64 = sqlx::query_scalar("select count(*) from orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orders, 60);
    assert_invariants(&pool).await;
}

/// Two engines filling the two SKUs of the same ship-complete orders at the same moment: each order is released
/// once both its lines are in, never stuck, never released early.
#[sqlx::test]
async fn two_engines_filling_two_skus_of_one_ship_complete_order_release_it_once(pool: PgPool) {
    const ORDERS: usize = 20;
    let orders: Vec<_> = (0..ORDERS)
        .map(|i| {
            let (a, b) = (format!("A-{i}"), format!("B-{i}"));
            ship_complete(order(
                &format!("SO-{i:02}"),
                0,
                i as i64,
                &[(&a, 1), (&b, 1)],
            ))
        })
        .collect();
    apply(&pool, &orders).await;
    let mut tasks = Vec::new();
    for prefix in ["A", "B"] {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..ORDERS {
                let sku = format!("{prefix}-{i}");
                engine(&pool)
                    .apply(&[receive(&format!("R-{sku}"), &sku, 1)])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_invariants(&pool).await;
    let allocations: Vec<AllocationCreated> = outbox(&pool, "t.out.allocation").await;
    assert_eq!(allocations.len(), ORDERS, "each order released once");
    assert!(allocations.iter().all(|a| a.lines.len() == 2));
}

#[sqlx::test]
async fn new_orders_of_one_batch_are_accepted_as_one_by_one_with_repeated_ids_decided_in_turn(
    pool: PgPool,
) {
    apply(&pool, &[adjust("init", "SKU-A", 10)]).await;
    let applied = apply(
        &pool,
        &[
            order("SO-1", 0, 0, &[("SKU-A", 6)]),
            order("SO-1", 0, 0, &[("SKU-A", 6)]),
            order("SO-1", 0, 0, &[("SKU-A", 7)]),
            order("SO-2", 0, 1, &[("SKU-A", 6)]),
        ],
    )
    .await;
    assert_eq!(applied[..2], [Applied::Done, Applied::Duplicate]);
    assert!(matches!(&applied[2], Applied::Refused(reason) if reason.contains("conflict")));
    assert_eq!(applied[3], Applied::Done);
    assert_eq!(line(&pool, "SO-1", 1).await, (6, 0, 0));
    assert_eq!(line(&pool, "SO-2", 1).await, (4, 2, 0));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_request_kept_for_an_order_is_carried_out_before_the_next_order_of_its_batch(
    pool: PgPool,
) {
    apply(&pool, &[adjust("init", "SKU-A", 8)]).await;
    // The cancellation overtook its order: kept until the order comes.
    assert_eq!(
        apply(&pool, &[cancel("C-2", "SO-2", &[(1, 4)])]).await,
        [Applied::Done]
    );
    let applied = apply(
        &pool,
        &[
            order("SO-1", 0, 0, &[("SKU-A", 4)]),
            order("SO-2", 0, 1, &[("SKU-A", 4)]),
            order("SO-3", 0, 2, &[("SKU-A", 4)]),
        ],
    )
    .await;
    assert_eq!(applied, [Applied::Done, Applied::Done, Applied::Done]);
    assert_eq!(line_in_full(&pool, "SO-2", 1).await, (0, 0, 0, 4, 0));
    // SO-2's units went back to stock before SO-3 was split: SO-3 never waited.
    assert_eq!(line(&pool, "SO-3", 1).await, (4, 0, 0));
    let waited: i64 = sqlx::query_scalar(
        "select count(*) from line_history where order_id = 'SO-3' and change = 'backordered'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(waited, 0);
    assert_invariants(&pool).await;
}
