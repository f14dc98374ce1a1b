//! The KPIs of docs/kpis.md on scenarios driven through the real engine (simulated clock, real Postgres), every
//! expected figure worked out by hand in the comments; and `<p>.api.kpi.get` over a real NATS.

mod common;

use allocation::api::kpi::{Window, kpis};
use allocation::command::Command;
use allocation::engine::Engine;
use backorder_proto::v1::{
    AgingBucket, Customer, CustomerCompliance, ErrorCount, FillRate, GetKpisReply, GetKpisRequest,
    LostDemandRow, OrderPlaced, Otif, SkuUpserted,
};
use backorder_runtime::time::to_proto;
use chrono::{DateTime, Duration, Utc};
use common::*;
use sqlx::PgPool;

/// An order of `customer` placed now (by the engine's clock), lines numbered from 1.
fn placed(engine: &Engine, id: &str, customer: &str, lines: &[(&str, i64)]) -> Command {
    let Command::AcceptOrder { order, digest } = order(id, 0, 0, lines) else {
        unreachable!("order() builds an AcceptOrder")
    };
    Command::AcceptOrder {
        order: OrderPlaced {
            customer: Some(Customer {
                id: customer.into(),
                ..Default::default()
            }),
            placed_at: Some(to_proto(engine.clock.now())),
            ..order
        },
        digest,
    }
}

/// A backorderable SKU with a lead time of a year: its estimates never fall due in these scenarios.
fn slow_sku(sku: &str) -> Command {
    Command::UpsertSku {
        sku: SkuUpserted {
            sku: sku.into(),
            backorderable: true,
            lead_time_days: 365,
            ..Default::default()
        },
        sequence: 1,
        published: chrono::DateTime::UNIX_EPOCH,
    }
}

/// Moves the simulated clock to `at`, firing every timer due on the way at its own time.
async fn run_to(engine: &Engine, at: DateTime<Utc>) {
    engine.clock.advance(at).unwrap();
    while let Some(due) = engine.next_due().await.unwrap() {
        if due > at {
            break;
        }
        engine.tick(due).await.unwrap();
    }
}

async fn run(engine: &Engine, commands: &[Command]) {
    for applied in engine.apply(commands).await.unwrap() {
        assert_eq!(applied, allocation::engine::Applied::Done);
    }
}

fn window(from: i64, to: i64) -> Window {
    Window {
        from: day(from),
        to: day(to),
    }
}

async fn figures(engine: &Engine, window: Window, customer: &str, sku: &str) -> GetKpisReply {
    kpis(&engine.pool, engine.clock.now(), window, customer, sku)
        .await
        .unwrap()
}

fn fill(lines: u64, filled: u64, units: i64, units_filled: i64) -> FillRate {
    FillRate {
        lines,
        lines_filled: filled,
        line_fill_rate: filled as f64 / lines as f64,
        units,
        units_filled,
        unit_fill_rate: units_filled as f64 / units as f64,
    }
}

fn otif(lines: u64, on_time: u64) -> Otif {
    Otif {
        lines,
        lines_on_time: on_time,
        rate: if lines == 0 {
            0.0
        } else {
            on_time as f64 / lines as f64
        },
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[sqlx::test]
async fn fill_rate_counts_what_stock_covered_when_each_line_was_placed(pool: PgPool) {
    let engine = at_day(&pool, 0);
    // Day 0: 10 units of A. SO-1 and SO-2 (C1) take 3 each: both filled, 4 left.
    run(
        &engine,
        &[
            adjust("init", "A", 10),
            placed(&engine, "SO-1", "C1", &[("A", 3)]),
            placed(&engine, "SO-2", "C1", &[("A", 3)]),
        ],
    )
    .await;
    // Day 1: SO-3 (C2) takes 2 (filled, 2 left); SO-4 (C2) wants 6 and gets the last 2 (not filled); SO-5 (C1)
    // wants 5 of B, which has none (not filled).
    run_to(&engine, day(1)).await;
    run(
        &engine,
        &[
            placed(&engine, "SO-3", "C2", &[("A", 2)]),
            placed(&engine, "SO-4", "C2", &[("A", 6)]),
            placed(&engine, "SO-5", "C1", &[("B", 5)]),
        ],
    )
    .await;
    // Later supply fills the backorders: the fill rate at order time does not move.
    run(&engine, &[receive("R-A", "A", 4), receive("R-B", "B", 5)]).await;

    let all = figures(&engine, window(0, 2), "", "").await;
    // 5 lines, 3 filled: 0.6. Units ordered 3+3+2+6+5 = 19, filled from stock 3+3+2+2+0 = 10.
    assert_eq!(all.fill_rate, Some(fill(5, 3, 19, 10)));
    // Day 0: 2 of 2 lines, 6 of 6 units. Day 1: 1 of 3 lines, units 2+6+5 = 13, filled 2+2 = 4.
    let daily: Vec<(String, Option<FillRate>)> = all
        .daily_fill_rate
        .iter()
        .map(|d| (d.day.clone(), d.fill_rate))
        .collect();
    assert_eq!(
        daily,
        [
            ("2026-12-01".to_string(), Some(fill(2, 2, 6, 6))),
            ("2026-12-02".to_string(), Some(fill(3, 1, 13, 4))),
        ]
    );
    // C1: SO-1, SO-2, SO-5: 2 of 3 lines, 6 of 11 units. C2: SO-3, SO-4: 1 of 2 lines, 4 of 8 units.
    let by_customer: Vec<(String, Option<FillRate>)> = all
        .customers
        .iter()
        .map(|c| (c.customer_id.clone(), c.fill_rate))
        .collect();
    assert_eq!(
        by_customer,
        [
            ("C1".to_string(), Some(fill(3, 2, 11, 6))),
            ("C2".to_string(), Some(fill(2, 1, 8, 4))),
        ]
    );
    // SKU A only: 4 lines, 3 filled: 0.75; units 10 of 14.
    let a = figures(&engine, window(0, 2), "", "A").await;
    assert_eq!(a.fill_rate, Some(fill(4, 3, 14, 10)));
    assert!(close(a.fill_rate.unwrap().line_fill_rate, 0.75));
    // C2 only: SO-3 and SO-4.
    let c2 = figures(&engine, window(0, 2), "C2", "").await;
    assert_eq!(c2.fill_rate, Some(fill(2, 1, 8, 4)));
    assert_eq!(c2.customers.len(), 1);
    // The window [day 1, day 2): the orders of day 1 only.
    let day1 = figures(&engine, window(1, 2), "", "").await;
    assert_eq!(day1.fill_rate, Some(fill(3, 1, 13, 4)));
    assert_eq!(day1.daily_fill_rate.len(), 1);
    // A window without orders: zeros, not NaN.
    let none = figures(&engine, window(5, 6), "", "").await;
    assert_eq!(none.fill_rate, Some(FillRate::default()));
    assert!(none.daily_fill_rate.is_empty() && none.customers.is_empty());
}

#[sqlx::test]
async fn lost_demand_records_all_four_reasons_and_only_units_that_were_waiting(pool: PgPool) {
    let engine = at_day(&pool, 0);
    run(
        &engine,
        &[
            sku_rule("N", false, 0, false, 1),
            sku_rule("M", true, 5, false, 1),
            adjust("init", "W", 2),
            supply("PO-D", "D", 10, 10, 1),
        ],
    )
    .await;
    run(
        &engine,
        &[
            // N takes no backorders: 3 units lost, not_backorderable.
            placed(&engine, "SO-1", "C1", &[("N", 3)]),
            // M takes at most 5: SO-2 backorders 5 and loses 3 over the cap; SO-3 finds the cap reached and
            // loses its 2, over the cap as well (M does take backorders, just no more).
            placed(&engine, "SO-2", "C1", &[("M", 8)]),
            placed(&engine, "SO-3", "C2", &[("M", 2)]),
            // 2 of W allocated, 4 backordered.
            placed(&engine, "SO-4", "C2", &[("W", 6)]),
            // Both wait for PO-D (day 10): ETA and promise day 11.
            placed(&engine, "SO-5", "C1", &[("D", 5)]),
            placed(&engine, "SO-6", "C2", &[("D", 2)]),
        ],
    )
    .await;
    // The customer cancels SO-4: its 4 waiting units are lost, the 2 allocated ones go back to stock.
    run(&engine, &[cancel("X-4", "SO-4", &[])]).await;
    // SO-7 takes those 2 and is cancelled too: nothing of it waited, nothing is lost.
    run(&engine, &[placed(&engine, "SO-7", "C1", &[("W", 2)])]).await;
    run(&engine, &[cancel("X-7", "SO-7", &[])]).await;
    // PO-D slips to day 45 (ETA 46, more than 30 days past day 11): both must consent. SO-5 declines at once
    // (5 units lost, no_consent); SO-6 does not answer and loses its 2 at the deadline, day 7.
    run(&engine, &[supply("PO-D", "D", 10, 45, 2)]).await;
    run(&engine, &[delay_answer("A-5", "SO-5", false)]).await;
    run_to(&engine, day(8)).await;

    /// order, SKU, customer, reason, units, cause, at
    type Lost = (String, String, String, String, i64, String, DateTime<Utc>);
    let rows: Vec<Lost> = sqlx::query_as(
        "select order_id, sku, customer_id, reason, units, cause, at from lost_units order by id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let row = |o: &str, s: &str, c: &str, r: &str, u: i64, cause: &str, at| {
        (o.into(), s.into(), c.into(), r.into(), u, cause.into(), at)
    };
    assert_eq!(
        rows,
        [
            row(
                "SO-1",
                "N",
                "C1",
                "not_backorderable",
                3,
                "order/SO-1",
                day(0)
            ),
            row("SO-2", "M", "C1", "over_cap", 3, "order/SO-2", day(0)),
            row("SO-3", "M", "C2", "over_cap", 2, "order/SO-3", day(0)),
            row(
                "SO-4",
                "W",
                "C2",
                "customer_cancelled",
                4,
                "cancel/X-4",
                day(0)
            ),
            row(
                "SO-5",
                "D",
                "C1",
                "no_consent",
                5,
                "delay-answer/A-5",
                day(0)
            ),
            row(
                "SO-6",
                "D",
                "C2",
                "no_consent",
                2,
                &format!("clock/{}", day(7).to_rfc3339()),
                day(7)
            ),
        ]
    );

    let lost = |reason: &str, sku: &str, units: i64, lines: u64| LostDemandRow {
        reason: reason.into(),
        sku: sku.into(),
        units,
        lines,
    };
    // Most units first: no_consent D 5+2 = 7 (2 lines), over_cap M 3+2 = 5 (2 lines), customer_cancelled W 4,
    // not_backorderable N 3; in all 19 units of 6 lines.
    let all = figures(&engine, window(0, 30), "", "")
        .await
        .lost_demand
        .unwrap();
    assert_eq!((all.units, all.lines), (19, 6));
    assert_eq!(
        all.rows,
        [
            lost("no_consent", "D", 7, 2),
            lost("over_cap", "M", 5, 2),
            lost("customer_cancelled", "W", 4, 1),
            lost("not_backorderable", "N", 3, 1),
        ]
    );
    // C2: W 4, then D 2 and M 2 (equal units: by reason); 8 units of 3 lines.
    let c2 = figures(&engine, window(0, 30), "C2", "")
        .await
        .lost_demand
        .unwrap();
    assert_eq!((c2.units, c2.lines), (8, 3));
    assert_eq!(
        c2.rows,
        [
            lost("customer_cancelled", "W", 4, 1),
            lost("no_consent", "D", 2, 1),
            lost("over_cap", "M", 2, 1),
        ]
    );
    // SKU D: the 7 lost for want of consent.
    let d = figures(&engine, window(0, 30), "", "D")
        .await
        .lost_demand
        .unwrap();
    assert_eq!(d.rows, [lost("no_consent", "D", 7, 2)]);
    // [day 0, day 7) ends before the deadline: SO-6's 2 units are not in it (19 - 2 = 17 of 5 lines).
    let early = figures(&engine, window(0, 7), "", "")
        .await
        .lost_demand
        .unwrap();
    assert_eq!((early.units, early.lines), (17, 5));
    assert_eq!(early.rows[0], lost("no_consent", "D", 5, 1));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn aging_buckets_the_open_lines_by_whole_days_waited_as_the_clock_moves(pool: PgPool) {
    let engine = at_day(&pool, 0);
    run(&engine, &[slow_sku("X"), slow_sku("Y"), slow_sku("Z")]).await;
    let place_at = |at: DateTime<Utc>, id: &'static str, customer: &'static str, sku, units| {
        let engine = engine.clone();
        async move {
            run_to(&engine, at).await;
            run(&engine, &[placed(&engine, id, customer, &[(sku, units)])]).await;
        }
    };
    place_at(day(0), "SO-1", "C1", "X", 5).await;
    place_at(day(10), "SO-2", "C1", "X", 3).await;
    place_at(day(25), "SO-3", "C2", "Y", 2).await;
    place_at(day(33), "SO-4", "C2", "Y", 4).await;
    place_at(day(37), "SO-5", "C1", "X", 1).await;
    // SO-6 waits half a day and is filled: it is no longer open.
    place_at(day(39) + Duration::hours(12), "SO-6", "C2", "Z", 6).await;
    run(&engine, &[receive("R-Z", "Z", 6)]).await;
    place_at(day(40), "SO-7", "C1", "Z", 2).await;

    let bucket = |label: &str, min_days, max_days, lines, units| AgingBucket {
        label: label.into(),
        min_days,
        max_days,
        lines,
        units,
    };
    // Day 40: ages SO-1 40, SO-2 30, SO-3 15, SO-4 7, SO-5 3, SO-7 0.
    // 0-2: SO-7 (2 units); 3-7: SO-4, SO-5 (4+1); 8-14: none; 15-30: SO-2, SO-3 (3+2); 31+: SO-1 (5).
    let aging = figures(&engine, window(39, 40), "", "")
        .await
        .aging
        .unwrap();
    assert_eq!(
        aging.buckets,
        [
            bucket("0-2", 0, 2, 1, 2),
            bucket("3-7", 3, 7, 2, 5),
            bucket("8-14", 8, 14, 0, 0),
            bucket("15-30", 15, 30, 2, 5),
            bucket("31+", 31, -1, 1, 5),
        ]
    );
    assert_eq!((aging.open_lines, aging.open_units), (6, 17));
    assert_eq!(
        (
            aging.oldest_order_id.as_str(),
            aging.oldest_line_no,
            aging.oldest_age_days,
            aging.oldest_since
        ),
        ("SO-1", 1, 40, Some(to_proto(day(0))))
    );

    // Day 41 12:00: every age one day more (whole days: 41.5 is 41). SO-2 reaches 31, SO-4 8.
    run_to(&engine, day(41) + Duration::hours(12)).await;
    let aging = figures(&engine, window(0, 1), "", "").await.aging.unwrap();
    assert_eq!(
        aging.buckets,
        [
            bucket("0-2", 0, 2, 1, 2),
            bucket("3-7", 3, 7, 1, 1),
            bucket("8-14", 8, 14, 1, 4),
            bucket("15-30", 15, 30, 1, 2),
            bucket("31+", 31, -1, 2, 8),
        ]
    );
    assert_eq!(aging.oldest_age_days, 41);
    // C2: SO-3 (16 days, 2 units) and SO-4 (8 days, 4 units); the oldest is SO-3.
    let c2 = figures(&engine, window(0, 1), "C2", "")
        .await
        .aging
        .unwrap();
    let lines: Vec<(u64, i64)> = c2.buckets.iter().map(|b| (b.lines, b.units)).collect();
    assert_eq!(lines, [(0, 0), (0, 0), (1, 4), (1, 2), (0, 0)]);
    assert_eq!(
        (c2.oldest_order_id.as_str(), c2.oldest_age_days),
        ("SO-3", 16)
    );
    // Two units of X come: SO-1 (first in line) still waits for 3 and still since day 0.
    run(&engine, &[receive("R-X", "X", 2)]).await;
    let x = figures(&engine, window(0, 1), "", "X").await.aging.unwrap();
    let lines: Vec<(u64, i64)> = x.buckets.iter().map(|b| (b.lines, b.units)).collect();
    assert_eq!(lines, [(0, 0), (1, 1), (0, 0), (0, 0), (2, 6)]);
    assert_eq!(
        (x.oldest_order_id.as_str(), x.oldest_age_days),
        ("SO-1", 41)
    );
    // Nothing open for a customer without lines: empty buckets, no oldest.
    let nobody = figures(&engine, window(0, 1), "C9", "")
        .await
        .aging
        .unwrap();
    assert_eq!((nobody.open_lines, nobody.oldest_since), (0, None));
    assert_eq!(nobody.buckets.len(), 5);
}

/// Day 0: seven backorder lines, each covered by a purchase order, and one line filled from stock.
///
/// | order | customer | line        | PO, day | promised | what happens                                   |
/// |-------|----------|-------------|---------|----------|------------------------------------------------|
/// | SO-1  | C1       | P 4         | 10      | 11       | received day 9: ready day 9, on time (-2)      |
/// | SO-2  | C1       | Q 3         | 10      | 11       | received day 11 20:00: ready day 11, on time (0) |
/// | SO-3  | C2       | R 5         | 10 → 14 | 11       | received day 14: ready day 14, late (+3)       |
/// | SO-4  | C2       | S 3 (1 in stock) | 10 → 50 | 11  | declines the delay day 2: no consent, not on time |
/// | SO-5  | C1       | T 3 (1 in stock) | 10 | 11       | cancels its 2 waiting units day 3: left out    |
/// | SO-6  | C1       | U 1         | 12 → 25 | 13       | still waiting on day 20: due, not on time, late now |
/// | SO-7  | C2       | V 1         | 30 → 33 | 31       | not due on day 20; late now (ETA 34 > 31)      |
/// | SO-8  | C1       | W 5 (in stock) | -    | -        | never waited: not a backorder line             |
async fn promises_kept_and_broken(pool: &PgPool) -> Engine {
    let engine = at_day(pool, 0);
    run(
        &engine,
        &[
            adjust("S0", "S", 1),
            adjust("T0", "T", 1),
            adjust("W0", "W", 5),
            supply("PO-P", "P", 4, 10, 1),
            supply("PO-Q", "Q", 3, 10, 1),
            supply("PO-R", "R", 5, 10, 1),
            supply("PO-S", "S", 2, 10, 1),
            supply("PO-T", "T", 2, 10, 1),
            supply("PO-U", "U", 1, 12, 1),
            supply("PO-V", "V", 1, 30, 1),
        ],
    )
    .await;
    run(
        &engine,
        &[
            placed(&engine, "SO-1", "C1", &[("P", 4)]),
            placed(&engine, "SO-2", "C1", &[("Q", 3)]),
            placed(&engine, "SO-3", "C2", &[("R", 5)]),
            placed(&engine, "SO-4", "C2", &[("S", 3)]),
            placed(&engine, "SO-5", "C1", &[("T", 3)]),
            placed(&engine, "SO-6", "C1", &[("U", 1)]),
            placed(&engine, "SO-7", "C2", &[("V", 1)]),
            placed(&engine, "SO-8", "C1", &[("W", 5)]),
        ],
    )
    .await;
    run(
        &engine,
        &[
            supply("PO-R", "R", 5, 14, 2),
            supply("PO-S", "S", 2, 50, 2),
            supply("PO-U", "U", 1, 25, 2),
            supply("PO-V", "V", 1, 33, 2),
        ],
    )
    .await;
    let promised: Vec<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "select order_id, promised_eta from order_lines where order_id <> 'SO-8' order by order_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let days: Vec<i64> = promised
        .iter()
        .map(|(_, p)| (p.unwrap() - day(0)).num_days())
        .collect();
    assert_eq!(days, [11, 11, 11, 11, 11, 13, 31], "the first promises");
    run_to(&engine, day(2)).await;
    run(&engine, &[delay_answer("A-4", "SO-4", false)]).await;
    run_to(&engine, day(3)).await;
    run(&engine, &[cancel("X-5", "SO-5", &[(1, 2)])]).await;
    run_to(&engine, day(9)).await;
    run(&engine, &[receive_on_po("R-P", "P", 4, "PO-P")]).await;
    run_to(&engine, day(11) + Duration::hours(20)).await;
    run(&engine, &[receive_on_po("R-Q", "Q", 3, "PO-Q")]).await;
    run_to(&engine, day(14)).await;
    run(&engine, &[receive_on_po("R-R", "R", 5, "PO-R")]).await;
    run_to(&engine, day(20)).await;
    engine
}

#[sqlx::test]
async fn otif_judges_due_backorder_lines_against_the_first_promise(pool: PgPool) {
    let engine = promises_kept_and_broken(&pool).await;
    // Due in [day 0, day 60) on day 20: SO-1 and SO-2 on time; SO-3 late; SO-4 lost for want of consent (though
    // its one allocated unit is ready); SO-6 due and waiting. SO-5 is left out, SO-7 is not due yet.
    // 2 of 5: 0.4.
    let all = figures(&engine, window(0, 60), "", "").await;
    assert_eq!(all.otif, Some(otif(5, 2)));
    // [day 12, day 60): only SO-6 (promised day 13) is due in it; SO-7 (day 31) is not due yet.
    let later = figures(&engine, window(12, 60), "", "").await;
    assert_eq!(later.otif, Some(otif(1, 0)));
    // SKU P: SO-1 alone, on time. Customer C2: SO-3 and SO-4, neither on time.
    let p = figures(&engine, window(0, 60), "", "P").await;
    assert_eq!(p.otif, Some(otif(1, 1)));
    let c2 = figures(&engine, window(0, 60), "C2", "").await;
    assert_eq!(c2.otif, Some(otif(2, 0)));

    // The rest of docs/kpis.md's worked example. Fill rate: 8 lines, SO-8 alone filled; units
    // 4+3+5+3+3+1+1+5 = 25, from stock 1 (SO-4) + 1 (SO-5) + 5 (SO-8) = 7.
    assert_eq!(all.fill_rate, Some(fill(8, 1, 25, 7)));
    // Aging on day 20: SO-6 and SO-7 wait since day 0, 20 days: bucket 15-30; the oldest SO-6 (by order id).
    let aging = all.aging.clone().unwrap();
    let lines: Vec<(u64, i64)> = aging.buckets.iter().map(|b| (b.lines, b.units)).collect();
    assert_eq!(lines, [(0, 0), (0, 0), (0, 0), (2, 2), (0, 0)]);
    assert_eq!(
        (aging.oldest_order_id.as_str(), aging.oldest_age_days),
        ("SO-6", 20)
    );
    // Lost: T 2 customer_cancelled, S 2 no_consent (equal units: by reason); 4 units of 2 lines.
    let lost = all.lost_demand.clone().unwrap();
    let rows: Vec<(&str, &str, i64)> = lost
        .rows
        .iter()
        .map(|r| (r.reason.as_str(), r.sku.as_str(), r.units))
        .collect();
    assert_eq!(
        rows,
        [("customer_cancelled", "T", 2), ("no_consent", "S", 2)]
    );
    assert_eq!((lost.units, lost.lines), (4, 2));

    // The compliance view, worst OTIF first.
    // C2: OTIF 0 of 2. Open: SO-7; late now: SO-7 (ETA day 34 after the promised day 31), 1 unit. Fill rate:
    //     SO-3 (0 of 5), SO-4 (1 of 3), SO-7 (0 of 1): 0 of 3 lines, 1 of 9 units.
    // C1: OTIF 2 of 3 (SO-1, SO-2 on time, SO-6 not). Open: SO-6; late now: SO-6 (promised day 13 has passed),
    //     1 unit. Fill rate: SO-1 (0/4), SO-2 (0/3), SO-5 (1/3), SO-6 (0/1), SO-8 (5/5): 1 of 5 lines, 6 of 16
    //     units.
    let customer =
        |id: &str, otif: Otif, late: (u64, i64), open: u64, fill: FillRate| CustomerCompliance {
            customer_id: id.into(),
            otif: Some(otif),
            late_lines: late.0,
            late_units: late.1,
            open_lines: open,
            fill_rate: Some(fill),
        };
    assert_eq!(
        all.customers,
        [
            customer("C2", otif(2, 0), (1, 1), 1, fill(3, 0, 9, 1)),
            customer("C1", otif(3, 2), (1, 1), 1, fill(5, 1, 16, 6)),
        ]
    );
    // SKU R: only C2 has a line in scope.
    let r = figures(&engine, window(0, 60), "", "R").await;
    assert_eq!(
        r.customers,
        [customer("C2", otif(1, 0), (0, 0), 0, fill(1, 0, 5, 0))]
    );
    // SO-6 is filled on day 21: ready after its promised day 13, so still not on time; nothing is late now.
    run_to(&engine, day(21)).await;
    run(&engine, &[receive_on_po("R-U", "U", 1, "PO-U")]).await;
    let after = figures(&engine, window(0, 60), "C1", "").await;
    assert_eq!(after.otif, Some(otif(3, 2)));
    assert_eq!(
        (after.customers[0].late_lines, after.customers[0].open_lines),
        (0, 0)
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn eta_accuracy_measures_the_ready_day_against_the_first_promised_day(pool: PgPool) {
    let engine = promises_kept_and_broken(&pool).await;
    // Ready in [day 0, day 60) with a promise: SO-1 (day 9 - day 11 = -2), SO-2 (day 11 - day 11 = 0), SO-3
    // (day 14 - day 11 = +3). SO-4 and SO-5 got a ready_at when their wait was cancelled: not filled, left out.
    // Mean (-2 + 0 + 3) / 3 = 1/3; mean absolute (2 + 0 + 3) / 3 = 5/3; p90 of the absolute errors [0, 2, 3]:
    // rank 0.9 * (3 - 1) = 1.8, so 2 + 0.8 * (3 - 2) = 2.8; within one day: SO-2 only, 1/3.
    let all = figures(&engine, window(0, 60), "", "")
        .await
        .eta_accuracy
        .unwrap();
    assert_eq!(all.lines, 3);
    assert!(close(all.mean_error_days, 1.0 / 3.0), "{all:?}");
    assert!(close(all.mean_abs_error_days, 5.0 / 3.0), "{all:?}");
    assert!(close(all.p90_abs_error_days, 2.8), "{all:?}");
    assert!(close(all.within_one_day, 1.0 / 3.0), "{all:?}");
    let count = |error_days, lines| ErrorCount { error_days, lines };
    assert_eq!(all.distribution, [count(-2, 1), count(0, 1), count(3, 1)]);
    // [day 12, day 60): SO-3 alone (ready day 14): every figure 3, none within a day.
    let later = figures(&engine, window(12, 60), "", "")
        .await
        .eta_accuracy
        .unwrap();
    assert_eq!(later.lines, 1);
    assert!(close(later.mean_error_days, 3.0) && close(later.p90_abs_error_days, 3.0));
    assert!(close(later.within_one_day, 0.0));
    assert_eq!(later.distribution, [count(3, 1)]);
    // C1: SO-1 (-2) and SO-2 (0): mean -1, mean absolute 1, p90 of [0, 2]: 0 + 0.9 * (2 - 0) = 1.8; within
    // one day: SO-2 only, 1 of 2.
    let c1 = figures(&engine, window(0, 60), "C1", "")
        .await
        .eta_accuracy
        .unwrap();
    assert_eq!(c1.lines, 2);
    assert!(close(c1.mean_error_days, -1.0) && close(c1.mean_abs_error_days, 1.0));
    assert!(close(c1.p90_abs_error_days, 1.8) && close(c1.within_one_day, 0.5));
    // SKU U: nothing ready yet.
    let u = figures(&engine, window(0, 60), "", "U")
        .await
        .eta_accuracy
        .unwrap();
    assert_eq!((u.lines, u.distribution.len()), (0, 0));
    assert!(close(u.mean_error_days, 0.0) && close(u.p90_abs_error_days, 0.0));
}

mod endpoint {
    use super::*;
    use allocation::api::Api;
    use backorder_proto::Message;
    use backorder_runtime::Subjects;
    use backorder_runtime::jetstream::Bus;
    use backorder_runtime::subjects::StreamKind;

    async fn bus() -> Bus {
        let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let prefix = format!("kpi{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Bus::connect(
            &backorder_runtime::nats::NatsOptions::env_with_url(&url).unwrap(),
            Subjects::new(&prefix).unwrap(),
            "kpi-test",
        )
        .await
        .unwrap()
    }

    /// The reply to `request` on `<p>.api.kpi.get`, asked again while the service is not subscribed yet.
    async fn ask(bus: &Bus, request: &GetKpisRequest) -> async_nats::Message {
        let subject = bus.subjects.api("kpi.get");
        for _ in 0..100 {
            match bus
                .client
                .request(subject.clone(), request.encode_to_vec().into())
                .await
            {
                Ok(reply) => return reply,
                Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                Err(error) => panic!("kpi.get: {error}"),
            }
        }
        panic!("nobody serves {subject}")
    }

    fn header(reply: &async_nats::Message, name: &str) -> Option<String> {
        reply
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    }

    #[sqlx::test]
    async fn kpi_get_answers_over_nats_with_the_default_window_and_refuses_an_empty_one(
        pool: PgPool,
    ) {
        let bus = bus().await;
        let engine = Engine {
            subjects: bus.subjects.clone(),
            ..at_day(&pool, 0)
        };
        // C1's order is filled from stock; C2's waits (no B in stock).
        run(
            &engine,
            &[
                adjust("init", "A", 2),
                placed(&engine, "SO-1", "C1", &[("A", 2)]),
                placed(&engine, "SO-2", "C2", &[("B", 1)]),
            ],
        )
        .await;
        run_to(&engine, day(1)).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let api = Api {
            pool: pool.clone(),
            engine: engine.clone(),
            bus: bus.clone(),
        };
        let served = tokio::spawn(api.serve(async {
            let _ = stopped.await;
        }));

        // No window: the 30 days before now (day 1).
        let reply = ask(
            &bus,
            &GetKpisRequest {
                customer_id: "C1".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(header(&reply, "Nats-Service-Error-Code"), None);
        let kpis = GetKpisReply::decode(reply.payload.as_ref()).unwrap();
        assert_eq!(
            (kpis.from, kpis.to, kpis.as_of),
            (
                Some(to_proto(day(-29))),
                Some(to_proto(day(1))),
                Some(to_proto(day(1)))
            )
        );
        // Narrowed to C1: SO-1 alone, 1 of 1 lines and 2 of 2 units filled, nothing waiting.
        assert_eq!(kpis.fill_rate, Some(fill(1, 1, 2, 2)));
        assert_eq!(kpis.customers.len(), 1);
        assert_eq!(kpis.aging.unwrap().open_lines, 0);

        // from >= to: 400 with the reason.
        let empty = ask(
            &bus,
            &GetKpisRequest {
                from: Some(to_proto(day(1))),
                to: Some(to_proto(day(1))),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            header(&empty, "Nats-Service-Error-Code").as_deref(),
            Some("400")
        );
        let why = header(&empty, "Nats-Service-Error").unwrap();
        assert!(why.contains("is not before `to`"), "{why}");
        assert!(empty.payload.is_empty());
        // Too long a window, and an id out of bounds: 400, each named.
        let long = ask(
            &bus,
            &GetKpisRequest {
                from: Some(to_proto(day(-500))),
                customer_id: "C".repeat(200),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            header(&long, "Nats-Service-Error-Code").as_deref(),
            Some("400")
        );
        let why = header(&long, "Nats-Service-Error").unwrap();
        assert!(why.contains("at most 400"), "{why}");
        assert!(why.contains("customer_id"), "{why}");

        stop.send(()).unwrap();
        served.await.unwrap().unwrap();
        for kind in StreamKind::ALL {
            let _ = bus.js.delete_stream(bus.subjects.stream(kind)).await;
        }
    }
}
