//! Delivery promises against a real Postgres, on a simulated clock: ETAs from purchase orders, re-dates,
//! overdue suppliers, coalesced ETA_CHANGED, delay consent, and the shortage net of what is on order.

mod common;

use allocation::command::Command;
use allocation::engine::{Applied, Engine, Policy};
use backorder_proto::v1::{CustomerEvent, OrderStatus, ReorderNeeded, customer_event::Kind};
use backorder_runtime::time;
use common::*;
use sqlx::PgPool;

/// (kind, ETA day, estimated, late) of the first line of each customer event of `order_id`.
async fn told(pool: &PgPool, order_id: &str) -> Vec<(Kind, Option<i64>, bool, bool)> {
    outbox::<CustomerEvent>(pool, "t.customer.event")
        .await
        .into_iter()
        .filter(|e| e.order_id == order_id)
        .map(|e| {
            let line = &e.lines[0];
            (
                e.kind(),
                line.eta.as_ref().map(days),
                line.eta_estimated,
                line.eta_late,
            )
        })
        .collect()
}

fn days(at: &backorder_proto::Timestamp) -> i64 {
    (time::from_proto(at).unwrap() - day(0)).num_days()
}

/// The ETA day of a line as the store has it.
async fn eta_day(pool: &PgPool, order_id: &str) -> Option<i64> {
    let eta: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select eta from order_lines where order_id = $1 and line_no = 1")
            .bind(order_id)
            .fetch_one(pool)
            .await
            .unwrap();
    eta.map(|at| (at - day(0)).num_days())
}

#[sqlx::test]
async fn a_backorder_gets_its_po_date_one_eta_change_per_move_then_ready_to_ship(pool: PgPool) {
    let engine = at_day(&pool, 0);
    let apply = |commands: Vec<Command>| {
        let engine = engine.clone();
        async move { engine.apply(&commands).await.unwrap() }
    };
    apply(vec![supply("PO-1", "W", 50, 10, 1)]).await;
    apply(vec![order("SO-1", 0, 0, &[("W", 30)])]).await;
    // Confirmed by PO-1: day 10 plus a day of handling.
    let statuses = outbox::<OrderStatus>(&pool, "t.out.order.status").await;
    let line = &statuses[0].lines[0];
    assert_eq!(
        (
            line.eta.as_ref().map(days),
            line.eta_estimated,
            line.promised_eta.as_ref().map(days)
        ),
        (Some(11), false, Some(11))
    );

    // The supplier moves PO-1 to day 20: the customer hears it at once.
    apply(vec![supply("PO-1", "W", 50, 20, 2)]).await;
    // And again by a day, within the hour: that waits for the order's interval (a day) to pass.
    apply(vec![supply("PO-1", "W", 50, 21, 3)]).await;
    assert_eq!(
        told(&pool, "SO-1").await,
        [
            (Kind::Backordered, Some(11), false, false),
            (Kind::EtaChanged, Some(21), false, false)
        ]
    );
    run_clock_to(&engine, 1).await;
    let heard = told(&pool, "SO-1").await;
    assert_eq!(heard[2], (Kind::EtaChanged, Some(22), false, false));

    // A re-date below the threshold (one hour) is stored, but nobody is bothered.
    apply(vec![Command::UpdateSupply {
        supply: backorder_proto::v1::SupplyUpdated {
            po_id: "PO-1".into(),
            line_no: 1,
            sku: "W".into(),
            quantity_open: 50,
            expected_at: Some(time::to_proto(day(21) + chrono::Duration::hours(1))),
            cancelled: false,
            request_id: String::new(),
        },
        sequence: 4,
        published: chrono::DateTime::UNIX_EPOCH,
    }])
    .await;
    run_clock_to(&engine, 5).await;
    assert_eq!(told(&pool, "SO-1").await.len(), 3);

    // Received on PO-1: ready to ship; the PO's open quantity drops by what came.
    apply(vec![receive_on_po("R-1", "W", 30, "PO-1")]).await;
    let heard = told(&pool, "SO-1").await;
    assert_eq!(heard.len(), 4);
    assert_eq!(heard[3].0, Kind::ReadyToShip);
    assert_eq!(eta_day(&pool, "SO-1").await, None);
    let open: i64 = sqlx::query_scalar("select quantity_open from supply where po_id = 'PO-1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 20);
    let trail: i64 = sqlx::query_scalar(
        "select count(*) from line_history where order_id = 'SO-1' and change = 'eta'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(trail, 4, "each change of the ETA is in the audit trail");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_late_supplier_slips_the_eta_from_now_and_the_customer_is_told_before_asking(
    pool: PgPool,
) {
    let engine = at_day(&pool, 0);
    engine
        .apply(&[
            supply("PO-7", "G", 10, 5, 1),
            order("SO-1", 0, 0, &[("G", 4)]),
        ])
        .await
        .unwrap();
    assert_eq!(eta_day(&pool, "SO-1").await, Some(6));
    // Day 5 passes without a receipt: the PO is late; it slips to now + 3 days of grace.
    run_clock_to(&engine, 6).await;
    assert_eq!(eta_day(&pool, "SO-1").await, Some(9));
    let heard = told(&pool, "SO-1").await;
    assert_eq!(heard[1], (Kind::EtaChanged, Some(9), false, true));
    // Never in the past: each time the slipped date comes, it slips again.
    run_clock_to(&engine, 12).await;
    assert_eq!(eta_day(&pool, "SO-1").await, Some(15));
    assert!(told(&pool, "SO-1").await.iter().all(|t| t.1.unwrap() >= 6));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_line_no_po_covers_gets_an_estimate_from_the_lead_time_that_does_not_creep(pool: PgPool) {
    let engine = at_day(&pool, 0);
    engine
        .apply(&[
            sku_rule_with_lead_time("L", 20),
            order("SO-1", 0, 0, &[("L", 4)]),
        ])
        .await
        .unwrap();
    assert_eq!(eta_day(&pool, "SO-1").await, Some(21));
    let statuses = outbox::<OrderStatus>(&pool, "t.out.order.status").await;
    assert!(statuses[0].lines[0].eta_estimated);
    // Days pass: the estimate stands while it is ahead; the customer is not told a new date every day.
    run_clock_to(&engine, 15).await;
    assert_eq!(eta_day(&pool, "SO-1").await, Some(21));
    assert_eq!(told(&pool, "SO-1").await.len(), 1);
    // It fell due with nothing on order: a new estimate, and the customer hears it.
    run_clock_to(&engine, 22).await;
    assert_eq!(eta_day(&pool, "SO-1").await, Some(42));
    assert_eq!(
        told(&pool, "SO-1").await[1],
        (Kind::EtaChanged, Some(42), true, false)
    );
}

fn sku_rule_with_lead_time(sku: &str, days: i32) -> Command {
    Command::UpsertSku {
        sku: backorder_proto::v1::SkuUpserted {
            sku: sku.into(),
            backorderable: true,
            lead_time_days: days,
            ..Default::default()
        },
        sequence: 1,
        published: chrono::DateTime::UNIX_EPOCH,
    }
}

#[sqlx::test]
async fn a_delay_past_30_days_needs_consent_and_without_an_answer_the_waiting_units_are_cancelled(
    pool: PgPool,
) {
    let engine = at_day(&pool, 0);
    engine
        .apply(&[
            adjust("init", "D", 2),
            supply("PO-1", "D", 10, 10, 1),
            order("SO-1", 0, 0, &[("D", 5)]),
            order("SO-2", 0, 1, &[("D", 3)]),
        ])
        .await
        .unwrap();
    assert_eq!(eta_day(&pool, "SO-1").await, Some(11));
    // The supplier pushes PO-1 to day 45: 34 days past what SO-1 and SO-2 were promised.
    engine
        .apply(&[supply("PO-1", "D", 10, 45, 2)])
        .await
        .unwrap();
    let heard = told(&pool, "SO-1").await;
    assert_eq!(
        heard.last().unwrap(),
        &(Kind::DelayConsentRequired, Some(46), false, false)
    );
    let asked = outbox::<CustomerEvent>(&pool, "t.customer.event").await;
    let asked = asked
        .iter()
        .find(|e| e.order_id == "SO-1" && e.kind() == Kind::DelayConsentRequired)
        .unwrap();
    assert_eq!(asked.respond_by.as_ref().map(days), Some(7));
    assert_eq!(asked.lines[0].promised_eta.as_ref().map(days), Some(11));
    let statuses = outbox::<OrderStatus>(&pool, "t.out.order.status").await;
    let last = statuses
        .iter()
        .rev()
        .find(|s| s.order_id == "SO-1")
        .unwrap();
    assert_eq!(last.delay_consent_due.as_ref().map(days), Some(7));

    // SO-2 agrees: its promise is the new date. SO-1 says nothing: on day 7 its 3 waiting units are
    // cancelled; the 2 allocated stay.
    assert_eq!(
        engine
            .apply(&[delay_answer("A-2", "SO-2", true)])
            .await
            .unwrap(),
        [Applied::Done]
    );
    run_clock_to(&engine, 8).await;
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (2, 0, 0, 3, 2));
    assert_eq!(line(&pool, "SO-2", 1).await, (0, 3, 0));
    let promised: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select promised_eta from order_lines where order_id = 'SO-2'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(promised, Some(day(46)));
    assert_eq!(told(&pool, "SO-1").await.last().unwrap().0, Kind::Cancelled);
    // Answering after the deadline, or when nothing was asked, is refused.
    let late = engine
        .apply(&[delay_answer("A-1", "SO-1", true)])
        .await
        .unwrap();
    assert!(
        matches!(&late[0], Applied::Refused(r) if r.contains("no consent to a delay is awaited"))
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn declining_a_delay_cancels_what_waits_and_keeping_is_configurable(pool: PgPool) {
    let keep = Engine {
        policy: Policy {
            cancel_without_consent: false,
            ..Policy::default()
        },
        ..at_day(&pool, 0)
    };
    keep.apply(&[
        supply("PO-1", "K", 10, 5, 1),
        order("SO-1", 0, 0, &[("K", 4)]),
        order("SO-2", 0, 1, &[("K", 4)]),
    ])
    .await
    .unwrap();
    keep.apply(&[supply("PO-1", "K", 10, 60, 2)]).await.unwrap();
    keep.apply(&[delay_answer("NO", "SO-1", false)])
        .await
        .unwrap();
    assert_eq!(line_in_full(&pool, "SO-1", 1).await, (0, 0, 0, 4, 0));
    run_clock_to(&keep, 10).await;
    // SO-2 did not answer and the policy keeps it: still waiting, promised the new date.
    assert_eq!(line(&pool, "SO-2", 1).await, (0, 4, 0));
    let promised: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select promised_eta from order_lines where order_id = 'SO-2'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(promised, Some(day(61)));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn the_shortage_counts_only_what_neither_stock_nor_open_supply_covers(pool: PgPool) {
    let engine = at_day(&pool, 0);
    engine
        .apply(&[
            supply("PO-1", "S", 20, 10, 1),
            order("SO-1", 0, 0, &[("S", 30)]),
        ])
        .await
        .unwrap();
    let reorders = outbox::<ReorderNeeded>(&pool, "t.reorder.needed").await;
    let last = reorders.last().unwrap();
    assert_eq!(
        (last.backordered, last.inbound, last.shortage),
        (30, 20, 10)
    );
}
