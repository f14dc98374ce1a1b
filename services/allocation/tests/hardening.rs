//! Careless and hostile senders against the real engine and Postgres: fields out of bounds, ids reused for
//! other content, cancellations that overtake their order by any length of time, upserts of a recreated
//! stream.

mod common;

use allocation::command::Command;
use allocation::engine::Applied;
use backorder_proto::Message;
use backorder_proto::v1::{
    AllocationCreated, DelayAnswer, OrderCancelRequested, OrderRejected, OrderStatus,
    RequestRefused, SkuUpserted, StockReceived, order_status::Status,
};
use backorder_runtime::Subjects;
use chrono::{DateTime, Duration, Utc};
use common::*;
use sqlx::PgPool;

fn subjects() -> Subjects {
    Subjects::new("t").unwrap()
}

/// What the consume loop hands the engine for `payload` on `subject`.
fn decode(subject: &str, payload: &[u8]) -> Result<Command, String> {
    Command::decode(&subjects(), subject, payload, day(0), 1)
}

async fn on_hand(pool: &PgPool, sku: &str) -> Option<i64> {
    sqlx::query_scalar("select on_hand from stock where sku = $1")
        .bind(sku)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_lead_time_of_i32_max_is_refused_by_name_and_a_stored_one_cannot_crash_the_engine(
    pool: PgPool,
) {
    let upsert = SkuUpserted {
        sku: "A".into(),
        backorderable: true,
        lead_time_days: i32::MAX,
        ..Default::default()
    };
    let command = decode(&subjects().sku_upserted(), &upsert.encode_to_vec()).unwrap();
    let Command::Refuse { reason, .. } = &command else {
        panic!("not refused: {command:?}");
    };
    assert!(
        reason.contains("lead_time_days: 2147483647 days is outside 0..=3650"),
        "{reason}"
    );
    assert!(matches!(
        &apply(&pool, &[command]).await[0],
        Applied::Refused(_)
    ));
    let refused = outbox::<RequestRefused>(&pool, "t.out.request.refused").await;
    assert_eq!(refused.len(), 1);
    assert!(refused[0].reason.contains("lead_time_days"), "{refused:?}");

    // The same lead time stored by a release that did not bound it: an order for the SKU is dated, no panic.
    let unbounded = Command::UpsertSku {
        sku: upsert,
        published: day(0),
        sequence: 2,
    };
    assert_eq!(apply(&pool, &[unbounded]).await, [Applied::Done]);
    assert_eq!(
        apply(&pool, &[order("SO-1", 0, 0, &[("A", 3)])]).await,
        [Applied::Done]
    );
    assert_eq!(line(&pool, "SO-1", 1).await, (0, 3, 0));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn every_out_of_bounds_field_is_named_with_its_limit_and_touches_no_stock(pool: PgPool) {
    let receipt = StockReceived {
        receipt_id: "R-1".into(),
        sku: "S".repeat(10_000),
        quantity: 10_000_000_000,
        received_at: Some(backorder_proto::Timestamp {
            seconds: 253_402_300_800,
            nanos: 0,
        }),
        ..Default::default()
    };
    let command = decode(&subjects().stock_received(), &receipt.encode_to_vec()).unwrap();
    assert_eq!(apply(&pool, &[command]).await.len(), 1);
    let refused = outbox::<RequestRefused>(&pool, "t.out.request.refused").await;
    let reason = &refused[0].reason;
    for expected in [
        "receipt R-1",
        "sku: ",
        "is 10000 bytes long; at most 128",
        "(10000 characters)",
        "quantity: 10000000000 is more than 1000000000",
        "received_at: ",
        "outside the years 2000..=2199",
    ] {
        assert!(reason.contains(expected), "{expected:?} not in {reason}");
    }
    assert!(
        reason.len() < 1_000,
        "the value is cut: {} bytes",
        reason.len()
    );
    let stock_rows: i64 = sqlx::query_scalar("select count(*) from stock")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stock_rows, 0, "a refused message creates no stock row");

    // Without an id there is nobody to answer: the consume loop parks the bytes.
    let anonymous = StockReceived {
        quantity: -1,
        ..Default::default()
    };
    let error = decode(&subjects().stock_received(), &anonymous.encode_to_vec()).unwrap_err();
    assert!(error.contains("receipt_id: is missing"), "{error}");
}

#[sqlx::test]
async fn a_receipt_id_reused_for_another_sku_is_refused_as_a_conflict_naming_the_first(
    pool: PgPool,
) {
    assert_eq!(
        apply(&pool, &[receive("R-1", "A", 5)]).await,
        [Applied::Done]
    );
    let other = receive("R-1", "B", 3);
    let applied = apply(&pool, std::slice::from_ref(&other)).await;
    let [Applied::Refused(reason)] = applied.as_slice() else {
        panic!("not refused: {applied:?}");
    };
    assert!(
        reason.starts_with("receipt R-1 was already used for SKU A x 5 on "),
        "{reason}"
    );
    assert!(reason.contains("(SKU B x 3)"), "{reason}");
    assert_eq!(
        on_hand(&pool, "B").await,
        Some(0),
        "B's stock is not booked"
    );
    let refused = outbox::<RequestRefused>(&pool, "t.out.request.refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].request_id, "receipt/R-1");
    assert_eq!(refused[0].reason, *reason);

    // Redeliveries of either are duplicates: nothing booked twice, nobody told twice.
    assert_eq!(apply(&pool, &[other]).await, [Applied::Duplicate]);
    assert_eq!(
        apply(&pool, &[receive("R-1", "A", 5)]).await,
        [Applied::Duplicate]
    );
    assert_eq!(on_hand(&pool, "A").await, Some(5));
    assert_eq!(
        outbox::<RequestRefused>(&pool, "t.out.request.refused")
            .await
            .len(),
        1
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn reused_adjustment_shipment_and_order_ids_with_other_content_are_conflicts(pool: PgPool) {
    apply(&pool, &[adjust("ADJ-1", "A", 10)]).await;
    assert!(matches!(
        &apply(&pool, &[adjust("ADJ-1", "A", 7)]).await[0],
        Applied::Refused(r) if r.contains("adjustment ADJ-1 was already used for SKU A by +10")
    ));
    apply(&pool, &[order("SO-1", 0, 0, &[("A", 4)])]).await;
    // Another order under SO-1: the OMS hears of it as a rejected order.
    let applied = apply(&pool, &[order("SO-1", 0, 0, &[("A", 9)])]).await;
    assert!(
        matches!(&applied[0], Applied::Refused(r) if r.contains("order SO-1 was already used for customer \"\", A x 4")),
        "{applied:?}"
    );
    let rejected = outbox::<OrderRejected>(&pool, "t.out.order.rejected").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].order_id, "SO-1");
    assert_eq!(rejected[0].errors[0].field, "order_id");
    assert_eq!(
        line(&pool, "SO-1", 1).await,
        (4, 0, 0),
        "the first order stands"
    );
    // The same order again is a duplicate, as before.
    assert_eq!(
        apply(&pool, &[order("SO-1", 0, 0, &[("A", 4)])]).await,
        [Applied::Duplicate]
    );

    apply(&pool, &[ship("SH-1", "SO-1", &[(1, 2)])]).await;
    assert!(matches!(
        &apply(&pool, &[ship("SH-1", "SO-1", &[(1, 1)])]).await[0],
        Applied::Refused(r) if r.contains("shipment SH-1 was already used for order SO-1, line 1 x 2")
    ));
    assert_eq!(line(&pool, "SO-1", 1).await, (2, 0, 2));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_cancellation_that_overtook_its_order_by_any_time_cancels_it_on_arrival(pool: PgPool) {
    apply(&pool, &[adjust("init", "A", 10)]).await;
    // Long before the order (order-intake was down for days): kept, acked.
    assert_eq!(
        apply(&pool, &[cancel("X-1", "SO-1", &[])]).await,
        [Applied::Done]
    );
    let engine = at_day(&pool, 5);
    assert_eq!(
        engine
            .apply(&[order("SO-1", 0, 0, &[("A", 4), ("B", 2)])])
            .await
            .unwrap(),
        [Applied::Done]
    );
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (0, 0, 0, 4, 0));
    assert_eq!(line_in_full(&pool, "SO-1", 2).await, (0, 0, 0, 2, 0));
    assert!(
        outbox::<AllocationCreated>(&pool, "t.out.allocation")
            .await
            .is_empty(),
        "nothing goes to the WMS"
    );
    let statuses = outbox::<OrderStatus>(&pool, "t.out.order.status").await;
    assert_eq!(
        statuses.iter().map(|s| s.status()).collect::<Vec<_>>(),
        [Status::Cancelled],
        "the OMS hears CANCELLED once"
    );
    assert_eq!(on_hand(&pool, "A").await, Some(10));
    let kept: i64 = sqlx::query_scalar("select count(*) from pending_requests")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 0, "applied once, then gone");
    // A redelivered order changes nothing.
    assert_eq!(
        apply(&pool, &[order("SO-1", 0, 0, &[("A", 4), ("B", 2)])]).await,
        [Applied::Duplicate]
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_partial_cancellation_and_a_delay_answer_before_the_order_are_applied_in_their_order(
    pool: PgPool,
) {
    apply(&pool, &[adjust("init", "A", 10)]).await;
    let early = OrderCancelRequested {
        request_id: "X-1".into(),
        order_id: "SO-1".into(),
        lines: vec![backorder_proto::v1::CancelLine {
            line_no: 1,
            quantity: 1,
        }],
        reason: "one less".into(),
    };
    let answer = DelayAnswer {
        answer_id: "DA-1".into(),
        order_id: "SO-1".into(),
        agree: true,
    };
    assert_eq!(
        apply(
            &pool,
            &[Command::CancelOrder(early), Command::AnswerDelay(answer)]
        )
        .await,
        [Applied::Done, Applied::Done]
    );
    apply(&pool, &[order("SO-1", 0, 0, &[("A", 3)])]).await;
    // 2 allocated and released to the WMS, 1 cancelled.
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (2, 0, 0, 1, 2));
    // No consent was awaited: the answer is refused now, when it can be judged.
    let refused = outbox::<RequestRefused>(&pool, "t.out.request.refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].request_id, "delay-answer/DA-1");
    assert!(
        refused[0]
            .reason
            .contains("no consent to a delay is awaited")
    );
    let picked = outbox::<AllocationCreated>(&pool, "t.out.allocation").await;
    assert_eq!(picked.len(), 1);
    assert_eq!(
        picked[0].lines[0].quantity, 2,
        "only what was not cancelled"
    );
    assert_invariants(&pool).await;
}

fn rule(sku: &str, max_backorder: i64, published: DateTime<Utc>, sequence: u64) -> Command {
    Command::UpsertSku {
        sku: SkuUpserted {
            sku: sku.into(),
            backorderable: true,
            max_backorder_quantity: max_backorder,
            ..Default::default()
        },
        published,
        sequence,
    }
}

async fn max_backorder(pool: &PgPool, sku: &str) -> i64 {
    sqlx::query_scalar("select max_backorder_quantity from skus where sku = $1")
        .bind(sku)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn upserts_of_a_recreated_stream_win_and_an_old_redelivery_never_does(pool: PgPool) {
    let t0 = day(0);
    apply(&pool, &[rule("A", 5, t0, 900)]).await;
    // The stream was recreated: sequences start at 1 again, the stored time is later.
    let later = t0 + Duration::hours(1);
    assert_eq!(
        apply(&pool, &[rule("A", 7, later, 1)]).await,
        [Applied::Done]
    );
    assert_eq!(max_backorder(&pool, "A").await, 7);
    // The first upsert delivered again: older, it loses; so does anything stored before the newest.
    apply(&pool, &[rule("A", 5, t0, 900)]).await;
    apply(&pool, &[rule("A", 3, t0 + Duration::minutes(30), 950)]).await;
    assert_eq!(max_backorder(&pool, "A").await, 7);
    // A state sent again later (the product master reverting a change) applies again.
    apply(&pool, &[rule("A", 5, later + Duration::hours(1), 2)]).await;
    assert_eq!(max_backorder(&pool, "A").await, 5);
}

#[sqlx::test]
async fn a_cancellation_kept_while_its_order_is_being_accepted_is_not_lost(pool: PgPool) {
    apply(&pool, &[adjust("init", "A", 10)]).await;
    // A third connection holds the order's lock, so both transactions are under way (the order inserted but
    // not committed, the cancellation finding no order) before either may decide.
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("select pg_advisory_lock(hashtextextended('order/SO-1', 0))")
        .execute(&mut *holder)
        .await
        .unwrap();
    let accept = tokio::spawn({
        let pool = pool.clone();
        async move { apply(&pool, &[order("SO-1", 0, 0, &[("A", 4)])]).await }
    });
    let cancel = tokio::spawn({
        let pool = pool.clone();
        async move { apply(&pool, &[cancel("X-1", "SO-1", &[])]).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sqlx::query("select pg_advisory_unlock(hashtextextended('order/SO-1', 0))")
        .execute(&mut *holder)
        .await
        .unwrap();
    assert_eq!(accept.await.unwrap(), [Applied::Done]);
    assert_eq!(cancel.await.unwrap(), [Applied::Done]);
    assert_eq!(
        line_in_full(&pool, "SO-1", 1).await.3,
        4,
        "the order is cancelled"
    );
    let kept: i64 = sqlx::query_scalar("select count(*) from pending_requests")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 0);
    assert_eq!(on_hand(&pool, "A").await, Some(10));
    let allocated: i64 = sqlx::query_scalar("select allocated from stock where sku = 'A'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(allocated, 0);
    assert_invariants(&pool).await;
}
