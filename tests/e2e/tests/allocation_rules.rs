//! The allocation rules end to end, over NATS with the four services as processes: ship-complete orders,
//! cancellations, stock corrections that take units back, poison messages, and two allocation processes on one
//! database.

use std::collections::HashMap;

use backorder_proto::v1::{
    AllocationCancelled, AllocationCreated, CustomerEvent, DeadLetter, EmailMessage, OrderStatus,
    RequestRefused, customer_event::Kind, order_status::Status,
};
use backorder_test_support::{System, load_stock, messages, wait_for_value};

fn buyer(id: &str) -> backorder_proto::v1::Customer {
    messages::customer(id, &format!("{id}@shop.example"), "", "en")
}

/// (order, line, quantity) of the messages' lines.
fn lines_of(
    orders: impl IntoIterator<Item = (String, Vec<(u32, i64)>)>,
) -> Vec<(String, u32, i64)> {
    orders
        .into_iter()
        .flat_map(|(order, lines)| lines.into_iter().map(move |(l, q)| (order.clone(), l, q)))
        .collect()
}

#[tokio::test]
async fn a_ship_complete_order_is_held_until_complete_and_a_cancellation_frees_its_stock_for_the_next()
-> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    let seen = &system.seen;
    load_stock(&system.bus, &system.db, "DESK", 10).await?;

    // SO-1 wants 6 desks and 2 lamps, all at once; no lamp is in stock. SO-2 takes what is left.
    let so1 = messages::ship_complete(messages::order(
        "SO-1",
        buyer("c1"),
        &[("DESK", 6), ("LAMP", 2)],
    ));
    system.publish(s.order_placed(), "SO-1", &so1).await?;
    seen.wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-1")
        .await?;
    let so2 = messages::order("SO-2", buyer("c2"), &[("DESK", 8)]);
    system.publish(s.order_placed(), "SO-2", &so2).await?;
    let held = seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-2")
        .await?;
    assert_eq!((held.lines[0].allocated, held.lines[0].backordered), (4, 4));
    let first = seen.all::<OrderStatus>(&s.order_status());
    assert_eq!(
        (
            first[0].status(),
            first[0].lines[0].held,
            first[0].lines[1].backordered
        ),
        (Status::PartiallyAllocated, 6, 2)
    );

    // The lamps are dropped from SO-1: it is complete now, and released to the WMS in full.
    system
        .publish(
            s.order_cancel(),
            "X-1",
            &messages::cancellation("X-1", "SO-1", &[(2, 0)], "lamp no longer wanted"),
        )
        .await?;
    let released = seen
        .wait_for::<AllocationCreated>(&s.allocation_created(), |a| a.order_id == "SO-1")
        .await?;
    assert_eq!(
        released
            .lines
            .iter()
            .map(|l| (l.line_no, l.quantity))
            .collect::<Vec<_>>(),
        [(1, 6)]
    );

    // Then the whole order is cancelled: the WMS stops picking its 6 desks and they go to SO-2.
    system
        .publish(
            s.order_cancel(),
            "X-2",
            &messages::cancellation("X-2", "SO-1", &[], "customer cancelled"),
        )
        .await?;
    let withdrawn = seen
        .wait_for::<AllocationCancelled>(&s.allocation_cancelled(), |a| a.order_id == "SO-1")
        .await?;
    assert_eq!(withdrawn.reason, "cancelled: customer cancelled");
    seen.wait_for::<OrderStatus>(&s.order_status(), |o| {
        o.order_id == "SO-2" && o.lines[0].backordered == 0
    })
    .await?;
    let picks = lines_of(
        seen.all::<AllocationCreated>(&s.allocation_created())
            .into_iter()
            .map(|a| {
                (
                    a.order_id,
                    a.lines.iter().map(|l| (l.line_no, l.quantity)).collect(),
                )
            }),
    );
    assert_eq!(
        picks,
        [
            ("SO-2".into(), 1, 4),
            ("SO-1".into(), 1, 6),
            ("SO-2".into(), 1, 4)
        ]
    );
    let cancelled = seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| {
            o.order_id == "SO-1" && o.status() == Status::Cancelled
        })
        .await?;
    assert_eq!(cancelled.lines[0].cancelled, 6);
    // The customer is told, by email.
    seen.wait_for::<EmailMessage>(&s.notify_email(), |m| {
        m.order_id == "SO-1" && m.kind() == Kind::Cancelled
    })
    .await?;

    // Cancelling it once more is refused, to the OMS and in the dead-letter stream.
    system
        .publish(
            s.order_cancel(),
            "X-3",
            &messages::cancellation("X-3", "SO-1", &[], "again"),
        )
        .await?;
    let refused = seen
        .wait_for::<RequestRefused>(&s.request_refused(), |r| r.request_id == "cancel/X-3")
        .await?;
    assert!(
        refused.reason.contains("nothing left to cancel"),
        "{}",
        refused.reason
    );
    let parked = seen
        .wait_for::<DeadLetter>(&s.dead_letter("allocation"), |d| {
            d.subject == s.order_cancel()
        })
        .await?;
    assert!(
        parked.error.contains("nothing left to cancel"),
        "{}",
        parked.error
    );

    assert_eq!(system.invariant_violations().await?, Vec::<String>::new());
    system.stop().await
}

#[tokio::test]
async fn a_count_that_finds_less_takes_units_back_and_a_poison_message_does_not_stop_the_flow()
-> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    let seen = &system.seen;
    load_stock(&system.bus, &system.db, "GEAR", 10).await?;
    let mut vip = messages::order("SO-VIP", buyer("vip"), &[("GEAR", 5)]);
    vip.priority = 5;
    system.publish(s.order_placed(), "SO-VIP", &vip).await?;
    let plain = messages::order("SO-PLAIN", buyer("plain"), &[("GEAR", 5)]);
    system.publish(s.order_placed(), "SO-PLAIN", &plain).await?;
    wait_for_value(
        &system.db,
        "select coalesce(sum(allocated), 0)::bigint from order_lines where sku = $1",
        "GEAR",
        10,
    )
    .await?;

    // Bytes that are no StockAdjusted, then the real count: 3 gears are missing.
    system
        .bus
        .publish_bytes(s.stock_adjusted(), "garbage", vec![0xff, 0x01, 0x02].into())
        .await?;
    system
        .publish(
            s.stock_adjusted(),
            "CC-1",
            &messages::adjustment("CC-1", "GEAR", -3, "cycle count"),
        )
        .await?;
    let parked = seen
        .wait_for::<DeadLetter>(&s.dead_letter("allocation"), |d| {
            d.subject == s.stock_adjusted()
        })
        .await?;
    assert!(parked.error.contains("cannot decode"), "{}", parked.error);

    // The lower-priority order gives 3 back: the WMS stops picking them, the customer hears it.
    let withdrawn = seen
        .wait_for::<AllocationCancelled>(&s.allocation_cancelled(), |a| a.order_id == "SO-PLAIN")
        .await?;
    assert_eq!(
        (withdrawn.lines[0].quantity, withdrawn.reason.as_str()),
        (3, "stock correction")
    );
    let event = seen
        .wait_for::<CustomerEvent>(&s.customer_event(), |e| {
            e.order_id == "SO-PLAIN" && e.kind() == Kind::Backordered
        })
        .await?;
    assert_eq!((event.lines[0].quantity, event.lines[0].allocated), (3, 2));
    assert!(
        seen.all::<AllocationCancelled>(&s.allocation_cancelled())
            .iter()
            .all(|a| a.order_id != "SO-VIP")
    );

    // The missing gears turn up in a receipt: SO-PLAIN is whole again.
    system
        .publish(
            s.stock_received(),
            "R-1",
            &messages::receipt("R-1", "GEAR", 3, ""),
        )
        .await?;
    seen.wait_for::<OrderStatus>(&s.order_status(), |o| {
        o.order_id == "SO-PLAIN" && o.status() == Status::Allocated
    })
    .await?;
    assert_eq!(system.invariant_violations().await?, Vec::<String>::new());
    system.stop().await
}

/// Two allocation processes on one database and one durable consumer, under concurrent orders, receipts,
/// counts and cancellations: afterwards every order is in, and the books' invariants hold.
#[tokio::test]
async fn two_allocation_processes_under_concurrent_load_keep_the_books_straight()
-> anyhow::Result<()> {
    const ORDERS: usize = 200;
    let skus = ["P-1", "P-2", "P-3", "P-4"];
    let mut system = System::start_with(&HashMap::from([("BO_BATCH_SIZE", "16")])).await?;
    system.add_instance("allocation")?;
    let s = system.subjects().clone();
    for sku in skus {
        load_stock(&system.bus, &system.db, sku, 40).await?;
    }

    let orders = {
        let bus = system.bus.clone();
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..ORDERS {
                let id = format!("SO-{i:04}");
                let lines = [(skus[i % 4], 3), (skus[(i + 1) % 4], 2)];
                let mut order = messages::order(&id, buyer("c"), &lines);
                order.priority = (i % 3) as i32;
                bus.publish(s.order_placed(), &id, &order).await?;
                if i % 10 == 9 {
                    let cancel = format!("X-{i}");
                    let request =
                        messages::cancellation(&cancel, &format!("SO-{:04}", i - 5), &[], "");
                    bus.publish(s.order_cancel(), &cancel, &request).await?;
                }
            }
            anyhow::Ok(())
        })
    };
    let warehouse = {
        let bus = system.bus.clone();
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                let sku = skus[i % 4];
                let id = format!("R-{i}");
                bus.publish(s.stock_received(), &id, &messages::receipt(&id, sku, 5, ""))
                    .await?;
                if i % 6 == 5 {
                    let id = format!("CC-{i}");
                    let count = messages::adjustment(&id, sku, -4, "cycle count");
                    bus.publish(s.stock_adjusted(), &id, &count).await?;
                }
            }
            anyhow::Ok(())
        })
    };
    orders.await??;
    warehouse.await??;

    wait_for_value(
        &system.db,
        "select count(*) from orders where $1 = ''",
        "",
        ORDERS as i64,
    )
    .await?;
    // Every receipt, count (4 initial loads and 10) and cancellation applied (or refused and kept).
    wait_for_value(
        &system.db,
        "select count(*) from processed_messages where message_id ~ '^(receipt|adjustment|cancel)/' and $1 = ''",
        "",
        60 + skus.len() as i64 + 10 + (ORDERS / 10) as i64,
    )
    .await?;
    wait_for_value(
        &system.db,
        "select count(*)::bigint from outbox where $1 = ''",
        "",
        0,
    )
    .await?;
    system.assert_running()?;
    assert_eq!(system.invariant_violations().await?, Vec::<String>::new());
    system.stop().await
}
