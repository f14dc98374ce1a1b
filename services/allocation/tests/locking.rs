//! Two engines on one database (two allocation instances, or the timer loop beside a consumer) changing the
//! same order at the same moment: each change is announced once, and a customer's answer to a delay is not
//! overridden by its deadline passing at the same time. A third connection holds a lock so both transactions
//! are under way and waiting before either commits, which makes the race happen on every run.

mod common;

use std::time::Duration;

use allocation::engine::{Applied, Engine};
use backorder_proto::v1::{AllocationCreated, CustomerEvent, OrderStatus, customer_event::Kind};
use common::*;
use sqlx::{PgPool, Postgres, Transaction};

/// A second engine like `engine`, on a pool of its own: another instance.
async fn other_instance(engine: &Engine) -> Engine {
    let options = (*engine.pool.connect_options()).clone();
    Engine {
        pool: PgPool::connect_with(options).await.unwrap(),
        ..engine.clone()
    }
}

/// Waits until `n` backends of this test's database wait for a lock.
async fn until_waiting(pool: &PgPool, n: i64) {
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} transactions never waited for the lock");
}

/// Holds `lock` (a `select ... for update`) in a transaction of its own until the returned one ends.
async fn hold(pool: &PgPool, lock: &str) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(lock.to_string()))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

async fn max_outbox_id(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select coalesce(max(id), 0) from outbox")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Decoded outbox messages on `subject` written after outbox id `after`.
async fn since<M: prost::Message + Default>(pool: &PgPool, subject: &str, after: i64) -> Vec<M> {
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("select payload from outbox where subject = $1 and id > $2 order by id")
            .bind(subject)
            .bind(after)
            .fetch_all(pool)
            .await
            .unwrap();
    rows.iter()
        .map(|r| M::decode(r.as_slice()).unwrap())
        .collect()
}

#[sqlx::test]
async fn a_receipt_and_a_timer_on_the_same_order_announce_the_fill_once(pool: PgPool) {
    let consumer = at_day(&pool, 1);
    let timers = other_instance(&consumer).await;
    consumer
        .apply(&[order("SO-1", 0, 0, &[("A", 5), ("B", 5)])])
        .await
        .unwrap();
    // An ETA notice falls due for SO-1 on day 1 (as when one was coalesced); nothing else is due then.
    sqlx::query("update orders set eta_notify_due = $1 where order_id = 'SO-1'")
        .bind(day(1))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update stock set eta_check_at = null")
        .execute(&pool)
        .await
        .unwrap();
    let mark = max_outbox_id(&pool).await;

    // The receipt fills line 1 while the timer fires for the same order; both are under way before either
    // commits, the receipt first.
    let blocker = hold(
        &pool,
        "select 1 from orders where order_id = 'SO-1' for update",
    )
    .await;
    let receipt = tokio::spawn({
        let consumer = consumer.clone();
        async move { consumer.apply(&[receive("R-1", "A", 5)]).await.unwrap() }
    });
    until_waiting(&pool, 1).await;
    let tick = tokio::spawn({
        let timers = timers.clone();
        async move { timers.tick(day(1)).await.unwrap() }
    });
    until_waiting(&pool, 2).await;
    blocker.rollback().await.unwrap();
    assert_eq!(receipt.await.unwrap(), [Applied::Done]);
    tick.await.unwrap();

    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (5, 0, 0, 0, 5));
    let told: Vec<Kind> = since::<CustomerEvent>(&pool, "t.customer.event", mark)
        .await
        .iter()
        .map(|e| e.kind())
        .collect();
    assert_eq!(told, [Kind::ReadyToShip], "the fill is told once");
    let allocations = since::<AllocationCreated>(&pool, "t.out.allocation", mark).await;
    assert_eq!(allocations.len(), 1);
    let versions: Vec<u64> = since::<OrderStatus>(&pool, "t.out.order.status", mark)
        .await
        .iter()
        .map(|s| s.version)
        .collect();
    let mut unique = versions.clone();
    unique.dedup();
    assert_eq!(versions, unique, "each status version once");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn receipts_and_timers_racing_on_shared_orders_announce_each_change_once(pool: PgPool) {
    // The same race without a helping lock, many times: receipts of one SKU and timer ticks of orders that
    // also wait on another, on two instances.
    let consumer = at_day(&pool, 1);
    let timers = other_instance(&consumer).await;
    let rounds = 20;
    for i in 0..rounds {
        consumer
            .apply(&[order(&format!("SO-{i}"), 0, i, &[("A", 1), ("B", 1)])])
            .await
            .unwrap();
    }
    sqlx::query("update orders set eta_notify_due = $1")
        .bind(day(1))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update stock set eta_check_at = null")
        .execute(&pool)
        .await
        .unwrap();
    let mark = max_outbox_id(&pool).await;
    for i in 0..rounds {
        let commands = [receive(&format!("R-{i}"), "A", 1)];
        let receipt = consumer.apply(&commands);
        let tick = timers.tick(day(1));
        let (receipt, tick) = tokio::join!(receipt, tick);
        receipt.unwrap();
        tick.unwrap();
        // Owed again, so the next tick touches every waiting order once more.
        sqlx::query("update orders set eta_notify_due = $1")
            .bind(day(1))
            .execute(&pool)
            .await
            .unwrap();
    }
    let ready = since::<CustomerEvent>(&pool, "t.customer.event", mark)
        .await
        .into_iter()
        .filter(|e| e.kind() == Kind::ReadyToShip)
        .count();
    assert_eq!(ready, rounds as usize, "one ready-to-ship per filled order");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_yes_to_a_delay_committing_as_its_deadline_passes_is_not_overridden(pool: PgPool) {
    let consumer = at_day(&pool, 0);
    consumer
        .apply(&[
            adjust("init", "D", 2),
            supply("PO-1", "D", 10, 10, 1),
            order("SO-1", 0, 0, &[("D", 5)]),
        ])
        .await
        .unwrap();
    // Pushed to day 45: SO-1 is asked to consent by day 7.
    consumer
        .apply(&[supply("PO-1", "D", 10, 45, 2)])
        .await
        .unwrap();
    let due: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select consent_due from orders where order_id = 'SO-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(due, Some(day(7)));
    consumer.clock.advance(day(7)).unwrap();
    let timers = other_instance(&consumer).await;

    // The customer's yes arrives first and commits while the deadline's timer is already firing.
    let blocker = hold(&pool, "select 1 from stock where sku = 'D' for update").await;
    let answer = tokio::spawn({
        let consumer = consumer.clone();
        async move {
            consumer
                .apply(&[delay_answer("YES", "SO-1", true)])
                .await
                .unwrap()
        }
    });
    until_waiting(&pool, 1).await;
    let tick = tokio::spawn({
        let timers = timers.clone();
        async move { timers.tick(day(7)).await.unwrap() }
    });
    until_waiting(&pool, 2).await;
    blocker.rollback().await.unwrap();
    assert_eq!(answer.await.unwrap(), [Applied::Done]);
    tick.await.unwrap();

    // The yes stands: the 3 waiting units still wait, promised the new date.
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (2, 3, 0, 0, 2));
    let kinds: Vec<Kind> = outbox::<CustomerEvent>(&pool, "t.customer.event")
        .await
        .iter()
        .map(|e| e.kind())
        .collect();
    assert!(!kinds.contains(&Kind::Cancelled), "{kinds:?}");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_deadline_that_fired_first_refuses_the_late_answer(pool: PgPool) {
    let consumer = at_day(&pool, 0);
    consumer
        .apply(&[
            adjust("init", "D", 2),
            supply("PO-1", "D", 10, 10, 1),
            order("SO-1", 0, 0, &[("D", 5)]),
        ])
        .await
        .unwrap();
    consumer
        .apply(&[supply("PO-1", "D", 10, 45, 2)])
        .await
        .unwrap();
    consumer.clock.advance(day(7)).unwrap();
    let timers = other_instance(&consumer).await;

    // The other way round: the timer is first in line, then the answer.
    let blocker = hold(&pool, "select 1 from stock where sku = 'D' for update").await;
    let tick = tokio::spawn({
        let timers = timers.clone();
        async move { timers.tick(day(7)).await.unwrap() }
    });
    until_waiting(&pool, 1).await;
    let answer = tokio::spawn({
        let consumer = consumer.clone();
        async move {
            consumer
                .apply(&[delay_answer("YES", "SO-1", true)])
                .await
                .unwrap()
        }
    });
    until_waiting(&pool, 2).await;
    blocker.rollback().await.unwrap();
    tick.await.unwrap();
    let answered = answer.await.unwrap();
    assert!(
        matches!(&answered[0], Applied::Refused(r) if r.contains("no consent to a delay is awaited")),
        "{answered:?}"
    );
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (2, 0, 0, 3, 2));
    assert_invariants(&pool).await;
}
