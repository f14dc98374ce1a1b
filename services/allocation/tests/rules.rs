//! Each allocation rule against a real Postgres: ship-complete, cancellation, stock corrections, SKU rules,
//! shipments in parts, the demand signal, the audit trail and refusals.

mod common;

use allocation::command::Command;
use allocation::engine::{Applied, Engine, Policy};
use allocation::report::{self, Subject, history};
use backorder_proto::v1::{
    AllocationCancelled, AllocationCreated, AllocationLine, CustomerEvent, OrderStatus,
    RequestRefused, customer_event::Kind, order_status::Status,
};
use backorder_runtime::Subjects;
use common::*;
use sqlx::PgPool;

fn kinds(events: &[CustomerEvent]) -> Vec<(String, Kind)> {
    events
        .iter()
        .map(|e| (e.order_id.clone(), e.kind()))
        .collect()
}

/// (order, line, quantity) of every line of the messages, in order.
fn picked(allocations: &[AllocationCreated]) -> Vec<(String, u32, i64)> {
    units(allocations.iter().map(|a| (&a.order_id, &a.lines)))
}

fn unpicked(cancellations: &[AllocationCancelled]) -> Vec<(String, u32, i64)> {
    units(cancellations.iter().map(|a| (&a.order_id, &a.lines)))
}

fn units<'a>(
    messages: impl Iterator<Item = (&'a String, &'a Vec<AllocationLine>)>,
) -> Vec<(String, u32, i64)> {
    messages
        .flat_map(|(order_id, lines)| {
            lines
                .iter()
                .map(|l| (order_id.clone(), l.line_no, l.quantity))
        })
        .collect()
}

#[sqlx::test]
async fn a_ship_complete_order_is_announced_only_when_every_line_is_allocated_and_keeps_its_units(
    pool: PgPool,
) {
    apply(
        &pool,
        &[adjust("init-a", "A", 10), adjust("init-b", "B", 2)],
    )
    .await;
    apply(
        &pool,
        &[ship_complete(order("SO-1", 0, 0, &[("A", 10), ("B", 5)]))],
    )
    .await;
    // Reserved but not announced; the status shows the held units.
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (10, 0, 0, 0, 0));
    assert_eq!(line_in_full(&pool, "SO-1", 2).await, (2, 3, 0, 0, 0));
    assert!(
        outbox::<AllocationCreated>(&pool, "t.out.allocation")
            .await
            .is_empty()
    );
    let status = outbox::<OrderStatus>(&pool, "t.out.order.status").await;
    assert_eq!(status[0].lines[0].held, 10);

    // A later ship-partial order of A finds nothing free: SO-1's reserved units are not given away.
    apply(&pool, &[order("SO-2", 9, 1, &[("A", 4)])]).await;
    assert_eq!(line(&pool, "SO-2", 1).await, (0, 4, 0));
    // The WMS cannot ship what it was never told to pick.
    let refused = apply(&pool, &[ship("S-early", "SO-1", &[(1, 10)])]).await;
    assert!(
        matches!(&refused[0], Applied::Refused(r) if r.contains("10 more held for a ship-complete order")),
        "{refused:?}"
    );

    apply(&pool, &[receive("R-1", "B", 3)]).await;
    let allocations = outbox::<AllocationCreated>(&pool, "t.out.allocation").await;
    assert_eq!(
        picked(&allocations),
        [("SO-1".into(), 1, 10), ("SO-1".into(), 2, 5)]
    );
    let events = outbox::<CustomerEvent>(&pool, "t.customer.event").await;
    assert_eq!(
        kinds(&events),
        [
            ("SO-1".into(), Kind::Backordered),
            ("SO-2".into(), Kind::Backordered),
            ("SO-1".into(), Kind::ReadyToShip)
        ]
    );
    apply(&pool, &[ship("S-1", "SO-1", &[(1, 10), (2, 5)])]).await;
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn cancelling_allocated_units_gives_them_at_once_to_the_next_backorders(pool: PgPool) {
    apply(&pool, &[adjust("init", "A", 10)]).await;
    apply(
        &pool,
        &[
            order("SO-1", 0, 0, &[("A", 10), ("B", 4)]),
            order("SO-2", 0, 1, &[("A", 6)]),
        ],
    )
    .await;
    let applied = apply(&pool, &[cancel("C-1", "SO-1", &[(1, 7)])]).await;
    assert_eq!(applied, [Applied::Done]);
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (3, 0, 0, 7, 3));
    // The 7 units freed went to SO-2, next in line.
    assert_eq!(line(&pool, "SO-2", 1).await, (6, 0, 0));

    let withdrawn = outbox::<AllocationCancelled>(&pool, "t.out.allocation.cancelled").await;
    assert_eq!(unpicked(&withdrawn), [("SO-1".into(), 1, 7)]);
    assert_eq!(
        withdrawn[0].reason,
        "cancelled: customer changed their mind"
    );
    let allocations = outbox::<AllocationCreated>(&pool, "t.out.allocation").await;
    assert_eq!(
        picked(&allocations),
        [("SO-1".into(), 1, 10), ("SO-2".into(), 1, 6)]
    );
    let events = outbox::<CustomerEvent>(&pool, "t.customer.event").await;
    assert_eq!(
        kinds(&events)[2..],
        [
            ("SO-1".into(), Kind::Cancelled),
            ("SO-2".into(), Kind::ReadyToShip)
        ]
    );
    assert_eq!(events[2].lines[0].quantity, 7);

    // The whole rest of the order: 3 allocated units of A and the 4 backordered of B.
    apply(&pool, &[cancel("C-2", "SO-1", &[])]).await;
    assert_eq!(line_in_full(&pool, "SO-1", 2).await, (0, 0, 0, 4, 0));
    let statuses = outbox::<OrderStatus>(&pool, "t.out.order.status").await;
    let last = statuses
        .iter()
        .rev()
        .find(|s| s.order_id == "SO-1")
        .unwrap();
    assert_eq!(last.status(), Status::Cancelled);
    let backordered_b: i64 = sqlx::query_scalar(
        "select coalesce(sum(backordered), 0)::bigint from order_lines where sku = 'B'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(backordered_b, 0, "cancelled backorders leave the queue");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn shipped_units_cannot_be_cancelled_and_the_sender_is_told_why(pool: PgPool) {
    apply(&pool, &[adjust("init", "A", 10)]).await;
    apply(&pool, &[order("SO-1", 0, 0, &[("A", 10)])]).await;
    apply(&pool, &[ship("S-1", "SO-1", &[(1, 6)])]).await;
    let refused = apply(&pool, &[cancel("C-1", "SO-1", &[(1, 5)])]).await;
    let reason = "cancel C-1 for order SO-1: line 1: 5 units to cancel but only 4 outstanding \
                  (6 shipped, which cannot be cancelled; 0 cancelled already)";
    assert_eq!(refused, [Applied::Refused(reason.into())]);
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (4, 0, 6, 0, 4));
    let told = outbox::<RequestRefused>(&pool, "t.out.request.refused").await;
    assert_eq!(told.len(), 1);
    assert_eq!(
        (
            told[0].request_id.as_str(),
            told[0].order_id.as_str(),
            told[0].subject.as_str(),
            told[0].reason.as_str()
        ),
        ("cancel/C-1", "SO-1", "t.in.order.cancel", reason)
    );
    // Redelivered: neither applied nor refused (and announced) again.
    assert_eq!(
        apply(&pool, &[cancel("C-1", "SO-1", &[(1, 5)])]).await,
        [Applied::Duplicate]
    );
    assert_eq!(
        outbox::<RequestRefused>(&pool, "t.out.request.refused")
            .await
            .len(),
        1
    );
    // A cancellation for an order allocation has not seen yet is kept for it, not refused (tests/hardening.rs).
    let early = apply(&pool, &[cancel("C-2", "SO-9", &[])]).await;
    assert_eq!(early, [Applied::Done]);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_count_below_what_is_allocated_takes_back_from_the_lowest_priority_most_recent_lines(
    pool: PgPool,
) {
    apply(&pool, &[adjust("init", "A", 20)]).await;
    apply(&pool, &[order("SO-VIP", 5, 0, &[("A", 5)])]).await;
    apply(&pool, &[order("SO-OLD", 0, 1, &[("A", 5)])]).await;
    apply(&pool, &[order("SO-NEW", 0, 2, &[("A", 5)])]).await;
    apply(&pool, &[ship("S-NEW", "SO-NEW", &[(1, 2)])]).await;
    // 18 on hand, 13 allocated; the count finds 10 less: 5 units must come back.
    let applied = apply(&pool, &[adjust("count", "A", -10)]).await;
    assert_eq!(applied, [Applied::Done]);
    // SO-NEW was allocated last at priority 0: its 3 unshipped units go first, then 2 of SO-OLD.
    assert_eq!(line(&pool, "SO-NEW", 1).await, (0, 3, 2));
    assert_eq!(line(&pool, "SO-OLD", 1).await, (3, 2, 0));
    assert_eq!(line(&pool, "SO-VIP", 1).await, (5, 0, 0));
    let withdrawn = outbox::<AllocationCancelled>(&pool, "t.out.allocation.cancelled").await;
    assert_eq!(
        unpicked(&withdrawn),
        [("SO-NEW".into(), 1, 3), ("SO-OLD".into(), 1, 2)]
    );
    assert!(withdrawn.iter().all(|w| w.reason == "stock correction"));
    let events = outbox::<CustomerEvent>(&pool, "t.customer.event").await;
    let back: Vec<(String, i64)> = events
        .iter()
        .filter(|e| e.kind() == Kind::Backordered)
        .map(|e| (e.order_id.clone(), e.lines[0].quantity))
        .collect();
    assert_eq!(back, [("SO-NEW".into(), 3), ("SO-OLD".into(), 2)]);
    let why: Vec<String> = sqlx::query_scalar(
        "select detail from line_history where change = 'taken back' order by order_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        why,
        [
            "stock correction (count): taken back as position 1 at priority 0",
            "stock correction (count): taken back as position 2 at priority 0"
        ]
    );
    // Found again: they are back in the queue at their old places, SO-OLD before SO-NEW.
    apply(&pool, &[adjust("found", "A", 4)]).await;
    assert_eq!(line(&pool, "SO-OLD", 1).await, (5, 0, 0));
    assert_eq!(line(&pool, "SO-NEW", 1).await, (2, 1, 2));
    // Less than nothing on hand cannot be.
    let refused = apply(&pool, &[adjust("typo", "A", -100)]).await;
    assert!(matches!(&refused[0], Applied::Refused(r) if r.contains("on hand would be -88")));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_take_back_from_a_released_ship_complete_order_holds_all_of_it_again(pool: PgPool) {
    apply(&pool, &[adjust("init-a", "A", 5), adjust("init-b", "B", 5)]).await;
    apply(
        &pool,
        &[ship_complete(order("SO-1", 0, 0, &[("A", 5), ("B", 5)]))],
    )
    .await;
    apply(&pool, &[adjust("count", "B", -1)]).await;
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (5, 0, 0, 0, 0));
    assert_eq!(line_in_full(&pool, "SO-1", 2).await, (4, 1, 0, 0, 0));
    let withdrawn = outbox::<AllocationCancelled>(&pool, "t.out.allocation.cancelled").await;
    assert_eq!(
        unpicked(&withdrawn),
        [("SO-1".into(), 1, 5), ("SO-1".into(), 2, 5)]
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn sku_rules_cancel_shortfalls_beyond_what_the_sku_may_backorder(pool: PgPool) {
    apply(
        &pool,
        &[
            sku_rule("NOBO", false, 0, false, 1),
            sku_rule("CAP", true, 6, false, 2),
            sku_rule("NEW", true, 0, true, 3),
            adjust("init", "NOBO", 3),
        ],
    )
    .await;
    apply(
        &pool,
        &[order("SO-1", 0, 0, &[("NOBO", 5), ("CAP", 4), ("NEW", 2)])],
    )
    .await;
    apply(&pool, &[order("SO-2", 0, 1, &[("CAP", 4)])]).await;
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (3, 0, 0, 2, 3));
    assert_eq!(line_in_full(&pool, "SO-1", 2).await, (0, 4, 0, 0, 0));
    assert_eq!(line_in_full(&pool, "SO-2", 1).await, (0, 2, 0, 2, 0));
    let demand: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "select sku, ordered, short, backordered, cancelled_short from demand order by sku",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        demand,
        [
            ("CAP".into(), 8, 8, 6, 2),
            ("NEW".into(), 2, 2, 2, 0),
            ("NOBO".into(), 5, 2, 0, 2)
        ]
    );
    let events = outbox::<CustomerEvent>(&pool, "t.customer.event").await;
    assert_eq!(
        kinds(&events),
        [
            ("SO-1".into(), Kind::Cancelled),
            ("SO-1".into(), Kind::Backordered),
            ("SO-1".into(), Kind::Preordered),
            ("SO-2".into(), Kind::Cancelled),
            ("SO-2".into(), Kind::Backordered)
        ]
    );
    assert!(events[2].lines[2].preorder);
    let statuses = outbox::<OrderStatus>(&pool, "t.out.order.status").await;
    assert!(statuses[0].lines[2].preorder);

    // An older upsert redelivered after a newer one does not undo it.
    apply(&pool, &[sku_rule("CAP", true, 0, false, 9)]).await;
    apply(&pool, &[sku_rule("CAP", true, 6, false, 5)]).await;
    apply(&pool, &[order("SO-3", 0, 2, &[("CAP", 10)])]).await;
    assert_eq!(line(&pool, "SO-3", 1).await, (0, 10, 0));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn unknown_skus_take_no_backorders_when_configured_so(pool: PgPool) {
    let strict = Engine {
        policy: Policy {
            unknown_sku_backorderable: false,
            ..Policy::default()
        },
        ..Engine::new(pool.clone(), Subjects::new("t").unwrap())
    };
    strict
        .apply(&[order("SO-1", 0, 0, &[("MYSTERY", 3)])])
        .await
        .unwrap();
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (0, 0, 0, 3, 0));
    let statuses = outbox::<OrderStatus>(&pool, "t.out.order.status").await;
    assert_eq!(statuses[0].status(), Status::Cancelled);
}

#[sqlx::test]
async fn shipments_come_in_parts_and_bad_ones_are_refused(pool: PgPool) {
    apply(&pool, &[adjust("init", "A", 10), adjust("init-b", "B", 10)]).await;
    apply(&pool, &[order("SO-1", 0, 0, &[("A", 10), ("B", 2)])]).await;
    for (id, lines) in [
        ("S-1", vec![(1, 3)]),
        ("S-2", vec![(1, 3), (2, 2)]),
        ("S-3", vec![(1, 4)]),
    ] {
        assert_eq!(
            apply(&pool, &[ship(id, "SO-1", &lines)]).await,
            [Applied::Done]
        );
    }
    assert_eq!(line(&pool, "SO-1", 1).await, (0, 0, 10));
    let statuses = outbox::<OrderStatus>(&pool, "t.out.order.status").await;
    assert_eq!(statuses.last().unwrap().status(), Status::Completed);
    let refused = apply(
        &pool,
        &[
            ship("S-4", "SO-1", &[(1, 1)]),
            ship("S-5", "SO-1", &[(3, 1)]),
            ship("S-6", "SO-404", &[(1, 1)]),
        ],
    )
    .await;
    let reasons: Vec<String> = refused
        .iter()
        .map(|r| match r {
            Applied::Refused(reason) => reason.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        reasons[0].contains("1 shipped but only 0 released"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("line 3: the order has no such line"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("order SO-404 is unknown"),
        "{reasons:?}"
    );
    let kept: Vec<String> = sqlx::query_scalar(
        "select message_id from processed_messages where refusal is not null order by message_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(kept, ["shipment/S-4", "shipment/S-5", "shipment/S-6"]);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn the_audit_trail_explains_every_change_of_a_line_per_order_and_per_sku(pool: PgPool) {
    let engine = at_day(&pool, 0);
    let apply = |commands: Vec<Command>| {
        let engine = engine.clone();
        async move { engine.apply(&commands).await.unwrap() }
    };
    apply(vec![adjust("init", "A", 3)]).await;
    apply(vec![order("SO-1", 0, 0, &[("A", 5)])]).await;
    apply(vec![receive("R-1", "A", 2)]).await;
    apply(vec![ship("S-1", "SO-1", &[(1, 4)])]).await;
    apply(vec![cancel("C-1", "SO-1", &[])]).await;
    let trail: Vec<(String, i64, String, String)> = history(&pool, Subject::Order("SO-1"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.change, e.quantity, e.cause, e.detail))
        .collect();
    let expected = [
        (
            "allocated",
            3,
            "order/SO-1",
            "in stock when the order arrived",
        ),
        (
            "backordered",
            2,
            "order/SO-1",
            "not in stock when the order arrived; queued as a backorder",
        ),
        (
            "eta",
            2,
            "order/SO-1",
            "ETA 2026-12-16 00:00, estimated: no purchase order covers the line; lead time 14 days",
        ),
        ("filled", 2, "receipt/R-1", "queue position 1 at priority 0"),
        ("shipped", 4, "shipment/S-1", "shipment S-1"),
        (
            "cancelled",
            1,
            "cancel/C-1",
            "cancelled: customer changed their mind (0 backordered, 1 allocated)",
        ),
    ];
    let expected: Vec<(String, i64, String, String)> = expected
        .iter()
        .map(|(c, q, cause, d)| (c.to_string(), *q, cause.to_string(), d.to_string()))
        .collect();
    assert_eq!(trail, expected);
    let per_sku = history(&pool, Subject::Sku("A")).await.unwrap();
    assert_eq!(per_sku.len(), 6);
    assert!(
        report::line(&per_sku[3])
            .ends_with("SO-1/1  A  filled 2  receipt/R-1  queue position 1 at priority 0"),
        "{}",
        report::line(&per_sku[3])
    );
}
