//! Re-prioritisation against a real Postgres, on a simulated clock: a raised order moves ahead in its queues,
//! the ETAs of both orders are projected again and both customers hear their new dates, the next receipt
//! serves the raised order first; redeliveries, reused ids, bounds, and a change that overtook its order.

mod common;

use allocation::command::Command;
use allocation::engine::Applied;
use backorder_proto::Message;
use backorder_proto::v1::{
    CustomerEvent, OrderPriorityChanged, OrderStatus, RequestRefused, customer_event::Kind,
};
use backorder_runtime::{Subjects, time};
use common::*;
use sqlx::PgPool;

fn change(id: &str, order_id: &str, priority: i32, reason: &str) -> Command {
    Command::ChangePriority(OrderPriorityChanged {
        request_id: id.into(),
        order_id: order_id.into(),
        priority,
        reason: reason.into(),
    })
}

/// The orders waiting on `sku`, in fill order.
async fn queue(pool: &PgPool, sku: &str) -> Vec<String> {
    sqlx::query_scalar(
        "select order_id from order_lines where sku = $1 and backordered > 0
         order by priority desc, placed_at, order_id, line_no",
    )
    .bind(sku)
    .fetch_all(pool)
    .await
    .unwrap()
}

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

fn days(at: &backorder_proto::Timestamp) -> i64 {
    (time::from_proto(at).unwrap() - day(0)).num_days()
}

/// (kind, ETA day) of line 1 of every customer event of `order_id`.
async fn told(pool: &PgPool, order_id: &str) -> Vec<(Kind, Option<i64>)> {
    outbox::<CustomerEvent>(pool, "t.customer.event")
        .await
        .into_iter()
        .filter(|e| e.order_id == order_id)
        .map(|e| (e.kind(), e.lines[0].eta.as_ref().map(days)))
        .collect()
}

/// (ETA day, estimated) of line 1 in the last status of `order_id`.
async fn last_status(pool: &PgPool, order_id: &str) -> (Option<i64>, bool) {
    let statuses = outbox::<OrderStatus>(pool, "t.out.order.status").await;
    let status = statuses
        .iter()
        .rev()
        .find(|s| s.order_id == order_id)
        .unwrap();
    let line = &status.lines[0];
    (line.eta.as_ref().map(days), line.eta_estimated)
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn priority_of(pool: &PgPool, order_id: &str) -> (i32, Vec<i32>) {
    let order: i32 = sqlx::query_scalar("select priority from orders where order_id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap();
    let lines: Vec<i32> =
        sqlx::query_scalar("select priority from order_lines where order_id = $1 order by line_no")
            .bind(order_id)
            .fetch_all(pool)
            .await
            .unwrap();
    (order, lines)
}

#[sqlx::test]
async fn a_raised_order_jumps_the_queue_the_etas_swap_both_customers_hear_it_and_stock_serves_it_first(
    pool: PgPool,
) {
    let engine = at_day(&pool, 0);
    // PO-1 brings 5 units on day 10: enough for the first order in line only.
    engine
        .apply(&[
            supply("PO-1", "W", 5, 10, 1),
            order("SO-1", 0, 0, &[("W", 5)]),
            order("SO-2", 0, 10, &[("W", 5), ("X", 1)]),
        ])
        .await
        .unwrap();
    assert_eq!(queue(&pool, "W").await, ["SO-1", "SO-2"]);
    assert_eq!(eta(&pool, "SO-1").await, (Some(11), false));
    assert_eq!(eta(&pool, "SO-2").await, (Some(15), true));
    let events_before = count(&pool, "select count(*) from outbox").await;

    assert_eq!(
        engine
            .apply(&[change("P-1", "SO-2", 5, "store order")])
            .await
            .unwrap(),
        [Applied::Done]
    );
    assert_eq!(priority_of(&pool, "SO-2").await, (5, vec![5, 5]));
    assert_eq!(queue(&pool, "W").await, ["SO-2", "SO-1"]);
    // SO-2 takes PO-1's units; SO-1 waits on an estimate from the lead time.
    assert_eq!(eta(&pool, "SO-2").await, (Some(11), false));
    assert_eq!(eta(&pool, "SO-1").await, (Some(15), true));
    // Both customers hear their new date, SO-1 too although its own order did not change.
    assert_eq!(
        told(&pool, "SO-2").await,
        [(Kind::Backordered, Some(15)), (Kind::EtaChanged, Some(11))]
    );
    assert_eq!(
        told(&pool, "SO-1").await,
        [(Kind::Backordered, Some(11)), (Kind::EtaChanged, Some(15))]
    );
    assert_eq!(last_status(&pool, "SO-2").await, (Some(11), false));
    assert_eq!(last_status(&pool, "SO-1").await, (Some(15), true));
    let trail: Vec<(i32, String, i64, String)> = sqlx::query_as(
        "select line_no, change, quantity, detail from line_history
         where order_id = 'SO-2' and change = 'reprioritised' order by line_no",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        trail,
        [
            (
                1,
                "reprioritised".to_string(),
                5,
                "priority 0 -> 5: store order".to_string()
            ),
            (
                2,
                "reprioritised".to_string(),
                1,
                "priority 0 -> 5: store order".to_string()
            ),
        ]
    );
    let cause: String = sqlx::query_scalar(
        "select cause from line_history where order_id = 'SO-1' and change = 'eta' order by id desc limit 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(cause, "priority/P-1", "SO-1's new date names what moved it");

    // Delivered again: nothing more happens.
    let events = count(&pool, "select count(*) from outbox").await;
    assert!(events > events_before);
    assert_eq!(
        engine
            .apply(&[change("P-1", "SO-2", 5, "store order")])
            .await
            .unwrap(),
        [Applied::Duplicate]
    );
    assert_eq!(count(&pool, "select count(*) from outbox").await, events);

    // PO-1 arrives: the raised order is filled first.
    engine
        .apply(&[receive_on_po("R-1", "W", 5, "PO-1")])
        .await
        .unwrap();
    assert_eq!(line(&pool, "SO-2", 1).await, (5, 0, 0));
    assert_eq!(line(&pool, "SO-1", 1).await, (0, 5, 0));
    assert_eq!(queue(&pool, "W").await, ["SO-1"]);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn the_same_priority_again_changes_nothing_and_a_reused_id_is_refused(pool: PgPool) {
    let engine = at_day(&pool, 0);
    engine
        .apply(&[
            order("SO-1", 0, 0, &[("W", 2)]),
            order("SO-2", 3, 1, &[("W", 2)]),
        ])
        .await
        .unwrap();
    let events = count(&pool, "select count(*) from outbox").await;
    let history = count(&pool, "select count(*) from line_history").await;
    assert_eq!(
        engine.apply(&[change("P-1", "SO-2", 3, "")]).await.unwrap(),
        [Applied::Done]
    );
    assert_eq!(count(&pool, "select count(*) from outbox").await, events);
    assert_eq!(
        count(&pool, "select count(*) from line_history").await,
        history
    );

    // P-1 again, asking for something else: a conflict, refused by name; nothing moves.
    let refused = engine
        .apply(&[change("P-1", "SO-2", -4, "")])
        .await
        .unwrap();
    assert!(
        matches!(&refused[0], Applied::Refused(r)
            if r.contains("priority change P-1 was already used for order SO-2, priority 3")),
        "{refused:?}"
    );
    assert_eq!(priority_of(&pool, "SO-2").await, (3, vec![3]));
    assert_eq!(queue(&pool, "W").await, ["SO-2", "SO-1"]);
    let answer = outbox::<RequestRefused>(&pool, "t.out.request.refused").await;
    assert_eq!(answer.len(), 1);
    assert_eq!(
        (
            answer[0].request_id.as_str(),
            answer[0].order_id.as_str(),
            answer[0].subject.as_str()
        ),
        ("priority/P-1", "SO-2", "t.in.order.priority")
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_priority_that_overtook_its_order_is_kept_and_applied_when_the_order_arrives(
    pool: PgPool,
) {
    let engine = at_day(&pool, 0);
    engine
        .apply(&[
            supply("PO-1", "W", 4, 10, 1),
            order("SO-1", 0, 0, &[("W", 4)]),
        ])
        .await
        .unwrap();
    assert_eq!(
        engine
            .apply(&[change("P-9", "SO-9", 9, "retailer contract")])
            .await
            .unwrap(),
        [Applied::Done]
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from pending_requests where order_id = 'SO-9' and kind = 'priority'"
        )
        .await,
        1
    );
    // The order comes (placed later, at the default priority): it arrives raised, ahead of SO-1, and takes
    // PO-1's date.
    engine
        .apply(&[order("SO-9", 0, 5, &[("W", 4)])])
        .await
        .unwrap();
    assert_eq!(priority_of(&pool, "SO-9").await, (9, vec![9]));
    assert_eq!(queue(&pool, "W").await, ["SO-9", "SO-1"]);
    assert_eq!(eta(&pool, "SO-9").await, (Some(11), false));
    assert_eq!(eta(&pool, "SO-1").await, (Some(15), true));
    assert_eq!(
        told(&pool, "SO-1").await,
        [(Kind::Backordered, Some(11)), (Kind::EtaChanged, Some(15))]
    );
    // SO-9's customer hears one date: the one after the change.
    assert_eq!(told(&pool, "SO-9").await, [(Kind::Backordered, Some(11))]);
    assert_eq!(
        count(&pool, "select count(*) from pending_requests").await,
        0
    );
    let detail: String = sqlx::query_scalar(
        "select detail from line_history where order_id = 'SO-9' and change = 'reprioritised'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(detail, "priority 0 -> 9: retailer contract");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_priority_out_of_bounds_or_without_ids_is_refused_by_name(pool: PgPool) {
    let subjects = Subjects::new("t").unwrap();
    let decode = |message: OrderPriorityChanged| {
        Command::decode(
            &subjects,
            "t.in.order.priority",
            &message.encode_to_vec(),
            day(0),
            1,
        )
    };
    apply(&pool, &[order("SO-1", 0, 0, &[("W", 2)])]).await;
    let too_high = decode(OrderPriorityChanged {
        request_id: "P-1".into(),
        order_id: "SO-1".into(),
        priority: 1_000_001,
        reason: "x".repeat(1001),
    })
    .unwrap();
    assert!(matches!(too_high, Command::Refuse { .. }), "{too_high:?}");
    let applied = apply(&pool, &[too_high]).await;
    let Applied::Refused(reason) = &applied[0] else {
        panic!("{applied:?}")
    };
    for expected in [
        "priority change P-1",
        "priority: 1000001 is outside -1000000..=1000000",
        "reason: ",
        "at most 1000",
    ] {
        assert!(reason.contains(expected), "{expected:?} not in {reason}");
    }
    assert_eq!(priority_of(&pool, "SO-1").await, (0, vec![0]));
    let answer = outbox::<RequestRefused>(&pool, "t.out.request.refused").await;
    assert_eq!(answer.len(), 1);
    assert!(answer[0].reason.contains("priority"), "{answer:?}");

    // Without a request id there is nobody to answer: not a command at all (the consumer parks it).
    let error = decode(OrderPriorityChanged {
        order_id: "SO-1".into(),
        priority: 2,
        ..Default::default()
    })
    .unwrap_err();
    assert!(error.contains("request_id"), "{error}");
    // Not a message at all.
    let error =
        Command::decode(&subjects, "t.in.order.priority", b"\xff\xff", day(0), 1).unwrap_err();
    assert!(
        error.contains("cannot decode t.in.order.priority"),
        "{error}"
    );
    // In bounds, lowest and highest.
    for (id, priority) in [("P-2", -1_000_000), ("P-3", 1_000_000)] {
        let command = decode(OrderPriorityChanged {
            request_id: id.into(),
            order_id: "SO-1".into(),
            priority,
            reason: String::new(),
        })
        .unwrap();
        assert_eq!(command.message_id(), format!("priority/{id}"));
        assert_eq!(apply(&pool, &[command]).await, [Applied::Done]);
    }
    assert_eq!(
        priority_of(&pool, "SO-1").await,
        (1_000_000, vec![1_000_000])
    );
    assert_invariants(&pool).await;
}
