//! What a hostile or careless upstream did to the four real services before the hardening issue, each as it
//! was reported: a lead time that crashed allocation for every order behind it, a receipt id reused for another
//! SKU whose stock was never booked, and a cancellation that lost the race against its order while
//! order-intake was down.

use std::collections::HashMap;
use std::time::Duration;

use backorder_proto::v1::{AllocationCreated, OrderStatus, RequestRefused, order_status::Status};
use backorder_test_support::{System, load_stock, messages, wait_for_value};
use prost::Message as _;

#[tokio::test]
async fn a_lead_time_of_i32_max_is_refused_and_the_orders_behind_it_flow() -> anyhow::Result<()> {
    let mut system = System::start().await?;
    let s = system.subjects().clone();
    let mut sku = messages::sku("HUGE", true, 0, false);
    sku.lead_time_days = i32::MAX;
    system.publish(s.sku_upserted(), "HUGE/1", &sku).await?;
    let customer = messages::customer("C-1", "c@shop.example", "", "en");
    for id in ["SO-1", "SO-2"] {
        let order = messages::order(id, customer.clone(), &[("HUGE", 2)]);
        system.publish(s.order_placed(), id, &order).await?;
    }
    let refused = system
        .seen
        .wait_for::<RequestRefused>(&s.request_refused(), |r| r.subject == s.sku_upserted())
        .await?;
    assert!(
        refused
            .reason
            .contains("lead_time_days: 2147483647 days is outside 0..=3650"),
        "{refused:?}"
    );
    for id in ["SO-1", "SO-2"] {
        let status = system
            .seen
            .wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == id)
            .await?;
        assert_eq!(status.status(), Status::Backordered);
    }
    system.assert_running()?;
    system.stop().await
}

#[tokio::test]
async fn a_receipt_id_reused_for_another_sku_is_refused_naming_the_first() -> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    system
        .publish(
            s.stock_received(),
            "R-1",
            &messages::receipt("R-1", "A", 5, ""),
        )
        .await?;
    // A second message under the same id (and, as a careless WMS would, the same Nats-Msg-Id after the
    // duplicate window: here another one, so JetStream stores it).
    system
        .publish(
            s.stock_received(),
            "R-1/again",
            &messages::receipt("R-1", "B", 3, ""),
        )
        .await?;
    let refused = system
        .seen
        .wait_for::<RequestRefused>(&s.request_refused(), |r| r.request_id == "receipt/R-1")
        .await?;
    assert!(
        refused
            .reason
            .starts_with("receipt R-1 was already used for SKU A x 5 on "),
        "{refused:?}"
    );
    assert!(refused.reason.contains("(SKU B x 3)"), "{refused:?}");
    backorder_test_support::wait_for_stock(&system.db, "A", 5).await?;
    // Parked for an operator, with the reason.
    let parked = backorder_test_support::stream::wait_for_stored(
        &system.bus,
        backorder_runtime::subjects::StreamKind::DeadLetter,
        &s.dead_letter("allocation"),
        1,
    )
    .await?;
    let letter = backorder_proto::v1::DeadLetter::decode(parked[0].payload.as_ref())?;
    assert_eq!(letter.error, refused.reason);
    system.stop().await
}

#[tokio::test]
async fn a_cancellation_sent_while_intake_was_down_cancels_the_order_when_it_arrives()
-> anyhow::Result<()> {
    // Far shorter than intake's outage: before the hardening issue the cancellation was parked after this.
    let env = HashMap::from([("BO_MAX_WAIT_SECS", "1")]);
    let mut system = System::start_with(&env).await?;
    let s = system.subjects().clone();
    load_stock(&system.bus, &system.db, "A", 10).await?;
    system.kill("order-intake").await?;
    let customer = messages::customer("C-1", "c@shop.example", "", "en");
    let order = messages::order("SO-1", customer, &[("A", 4)]);
    system.publish(s.order_placed(), "SO-1", &order).await?;
    let cancel = messages::cancellation("X-1", "SO-1", &[], "customer changed their mind");
    system.publish(s.order_cancel(), "X-1", &cancel).await?;
    wait_for_value(
        &system.db,
        "select count(*) from pending_requests where order_id = $1",
        "SO-1",
        1,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    system.restart("order-intake")?;

    let status = system
        .seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-1")
        .await?;
    assert_eq!((status.status(), status.version), (Status::Cancelled, 1));
    wait_for_value(
        &system.db,
        "select count(*) from pending_requests where order_id = $1",
        "SO-1",
        0,
    )
    .await?;
    // Give a wrong pick time to show up: nothing reaches the WMS, the stock is all free.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        system
            .seen
            .all::<AllocationCreated>(&s.allocation_created())
            .is_empty(),
        "a cancelled order was sent to the WMS"
    );
    let allocated: i64 = sqlx::query_scalar("select allocated from stock where sku = 'A'")
        .fetch_one(&system.db)
        .await?;
    assert_eq!(allocated, 0);
    assert_eq!(system.invariant_violations().await?, Vec::<String>::new());
    system.stop().await
}
